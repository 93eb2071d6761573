"""The fitted state of an estimator, and the model file that holds it (no pickle).

:class:`FittedState` is everything ``fit`` learns. The estimator shows it as its
scikit-learn attributes (``network_``, ``scaler_``, ``channels_``, ``history_``...,
see :meth:`FittedState.attributes`); :func:`write_model_file` saves it whole as
safetensors weights plus a JSON header, and :func:`read_model_file` gives it back, so a
loaded model has every attribute a fitted one has. Nothing in a model file can run code.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from torch import nn

from latentode import __version__
from latentode.data.scaling import Scaler, StaticScaler
from latentode.data.schema import DataSchema
from latentode.errors import LatentODEError
from latentode.models import ResidualProcess, build_network

FILE_FORMAT = "latentode-model"
FILE_FORMAT_VERSION = 1
_HEADER_KEY = "latentode"


class NotFittedError(LatentODEError, SklearnNotFittedError):
    """The estimator was used before ``fit`` (or ``load``); also scikit-learn's
    ``NotFittedError`` (and so an AttributeError)."""


@dataclass(frozen=True)
class FittedState:
    """What ``fit`` learns, saved and loaded whole.

    Attributes:
        kind, config: the network's registry name and plain-typed configuration.
        network: the trained network (CPU, eval mode).
        scaler, static_scaler: value/time scaling and static-covariate scaling.
        schema: the training data's channels, time axis, statics and column names.
        interval_scale: per-channel factor on predicted stds and intervals [C] at query
            times within a series' context window (interpolation).
        forecast_interval_scale: the same beyond the context window (forecasting and
            backcasting) [C]; None: as ``interval_scale``.
        history: per-epoch training metrics (one row per epoch).
        log_dir, best_checkpoint: where fit wrote its logs and its best checkpoint.
        interrupted: whether training was stopped by Ctrl-C.
        residual: the residual process fitted after training (scaled units, model
            time; see :mod:`latentode.nn.residual_process`), or None.
    """

    kind: str
    config: dict
    network: nn.Module
    scaler: Scaler
    static_scaler: StaticScaler | None
    schema: DataSchema
    interval_scale: tuple[float, ...]
    history: pd.DataFrame
    log_dir: str | None = None
    best_checkpoint: str | None = None
    interrupted: bool = False
    residual: ResidualProcess | None = None
    forecast_interval_scale: tuple[float, ...] | None = None

    def attributes(self) -> dict[str, Any]:
        """The estimator's fitted attributes: each field as ``<name>_``, the schema's
        fields flattened (``channels_``, ``time_axis_``...) and ``n_features_in_``."""
        out = {f"{f.name}_": getattr(self, f.name) for f in fields(self) if f.name != "schema"}
        out.update({f"{f.name}_": getattr(self.schema, f.name) for f in fields(self.schema)})
        for name in ("channels_", "static_names_", "interval_scale_"):
            out[name] = list(out[name])
        if out["forecast_interval_scale_"] is not None:
            out["forecast_interval_scale_"] = list(out["forecast_interval_scale_"])
        out["n_features_in_"] = len(self.schema.channels)
        return out

    @classmethod
    def of(cls, estimator) -> FittedState:
        """The state an estimator holds in its attributes (set by fit or load).

        Raises:
            NotFittedError: when it has not been fitted.
        """
        if not hasattr(estimator, "network_"):
            name = type(estimator).__name__
            raise NotFittedError(
                f"this {name} is not fitted yet; call fit(...) or latentode.load(path) first."
            )
        schema = DataSchema.from_dict(
            {f.name: getattr(estimator, f"{f.name}_") for f in fields(DataSchema)}
        )
        values = {
            f.name: getattr(estimator, f"{f.name}_") for f in fields(cls) if f.name != "schema"
        }
        values["interval_scale"] = tuple(values["interval_scale"])
        if values["forecast_interval_scale"] is not None:
            values["forecast_interval_scale"] = tuple(values["forecast_interval_scale"])
        return cls(schema=schema, **values)


def write_model_file(path: str | os.PathLike, state: FittedState, estimator: str, params: dict):
    """Write ``state`` (and the estimator's class name and parameters) to ``path``
    atomically: safetensors weights, JSON header. Returns the path."""
    from safetensors.torch import save_file

    header = {
        "format": FILE_FORMAT,
        "format_version": FILE_FORMAT_VERSION,
        "library_version": __version__,
        "estimator": estimator,
        "params": params,
        "kind": state.kind,
        "config": state.config,
        "scaler": state.scaler.to_dict(),
        "static_scaler": None if state.static_scaler is None else state.static_scaler.to_dict(),
        **state.schema.to_dict(),
        "interval_scale": list(state.interval_scale),
        "history": {str(c): state.history[c].tolist() for c in state.history.columns},
        "log_dir": state.log_dir,
        "best_checkpoint": state.best_checkpoint,
        "interrupted": bool(state.interrupted),
        "residual": None if state.residual is None else state.residual.to_dict(),
        "forecast_interval_scale": None
        if state.forecast_interval_scale is None
        else list(state.forecast_interval_scale),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.network.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        save_file(tensors, str(tmp), metadata={_HEADER_KEY: json.dumps(header)})
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_model_file(path: str | os.PathLike) -> tuple[str, dict, FittedState]:
    """Read a file written by :func:`write_model_file`: (estimator class name, its
    parameters, the fitted state). Nothing in the file is executed.

    Raises:
        LatentODEError: for a missing, truncated, foreign or mismatched file.
    """
    header, tensors = _read_header_and_tensors(Path(path))
    try:
        net = build_network(header["kind"], header["config"])
        net.load_state_dict(tensors, strict=True)
        history = header.get("history")
        state = FittedState(
            kind=header["kind"],
            config=header["config"],
            network=net.eval(),
            scaler=Scaler.from_dict(header["scaler"]),
            static_scaler=StaticScaler.from_dict(header.get("static_scaler")),
            schema=DataSchema.from_dict(header),
            interval_scale=tuple(float(v) for v in header["interval_scale"]),
            history=pd.DataFrame(history or {}),
            log_dir=header.get("log_dir"),
            best_checkpoint=header.get("best_checkpoint"),
            interrupted=bool(header.get("interrupted", False)),
            residual=_residual_from(header.get("residual")),
            forecast_interval_scale=None
            if header.get("forecast_interval_scale") is None
            else tuple(float(v) for v in header["forecast_interval_scale"]),
        )
        n_c = len(state.schema.channels)
        per_channel = {
            "interval_scale": state.interval_scale,
            "forecast_interval_scale": state.forecast_interval_scale,
            "residual": None if state.residual is None else state.residual.kernel,
        }
        for name, values in per_channel.items():
            if values is not None and len(values) != n_c:
                raise ValueError(f"{name} has {len(values)} entries for {n_c} channels")
    except (TypeError, KeyError, IndexError, ValueError, RuntimeError) as err:
        raise LatentODEError(
            f"{path} does not match this latentode version's model ({err})."
        ) from None
    return header.get("estimator"), header["params"], state


def _residual_from(value) -> ResidualProcess | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TypeError(f"residual must be a mapping, got {type(value).__name__}")
    return ResidualProcess.from_dict(value)


def _read_header_and_tensors(path: Path) -> tuple[dict, dict]:
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    if not path.exists():
        raise LatentODEError(f"model file not found: {path}.")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise LatentODEError(
            f"{path} is not a readable latentode model file ({err}); it may be truncated "
            "or corrupt, or not a model file. Save it again with model.save(path)."
        ) from None
    try:
        header = json.loads(meta[_HEADER_KEY])
        if not isinstance(header, dict):
            raise TypeError(type(header).__name__)
    except (KeyError, TypeError, json.JSONDecodeError):
        raise LatentODEError(
            f"{path} is a safetensors file but has no latentode header; it was not written "
            "by latentode's save()."
        ) from None
    if header.get("format") != FILE_FORMAT or header.get("format_version") != FILE_FORMAT_VERSION:
        raise LatentODEError(
            f"{path} has format {header.get('format')!r} version "
            f"{header.get('format_version')!r}; this latentode ({__version__}) reads "
            f"{FILE_FORMAT!r} version {FILE_FORMAT_VERSION}."
        )
    return header, tensors
