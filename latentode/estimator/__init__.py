"""The front door: scikit-learn style estimators with pandas in and out.

``LatentODE(...)`` stores parameters; ``fit`` validates the data, fits the scaler on
the training series only, trains with Lightning and returns ``self``; ``predict``
interpolates and forecasts with uncertainty in the user's own units; ``save`` and
``load`` use one safetensors file with a JSON header (no pickle).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator

from latentode import __version__
from latentode.data.batching import collate
from latentode.data.dataset import Series, SeriesDataset
from latentode.data.io import from_dataframe
from latentode.data.scaling import Scaler
from latentode.data.tasks import TaskConfig
from latentode.data.time_axis import UNIT_NANOSECONDS, TimeAxis
from latentode.errors import LatentODEError
from latentode.models import build_network
from latentode.models.latent_ode import LatentODEConfig
from latentode.models.odernn import AutoregressiveConfig
from latentode.nn.solve import ADAPTIVE_METHODS, SolverConfig, nfe_counter

FILE_FORMAT = "latentode-model"
FILE_FORMAT_VERSION = 1
_HEADER_KEY = "latentode"
#: predict/score keyword → SolverConfig field, for per-call solver overrides
_SOLVER_OVERRIDES = {
    "solver": "method",
    "rtol": "rtol",
    "atol": "atol",
    "step_size": "step_size",
    "adjoint": "adjoint",
}


class NotFittedError(LatentODEError, AttributeError):
    """The estimator was used before ``fit`` (or ``load``)."""


class _SeriesEstimator(BaseEstimator):
    """What every latentode estimator shares: fit, predict, score, save and load.

    Subclasses define ``__init__`` (parameters only), ``_kind`` (the network registry
    name) and ``_network_config(data)``.
    """

    _kind: str

    def _solver_config(self, **override) -> SolverConfig:
        unknown = sorted(set(override) - set(_SOLVER_OVERRIDES))
        if unknown:
            raise LatentODEError(
                f"unknown solver option(s) {unknown}; predict and score take "
                f"{', '.join(f'{k}=' for k in _SOLVER_OVERRIDES)}."
            )
        base = {
            "method": self.solver,
            "rtol": self.rtol,
            "atol": self.atol,
            "step_size": self.step_size,
            "adjoint": self.adjoint,
        }
        given = {_SOLVER_OVERRIDES[k]: v for k, v in override.items() if v is not None}
        if given.get("method") in ADAPTIVE_METHODS and "step_size" not in given:
            base["step_size"] = None  # an adaptive method chooses its own steps
        base.update(given)
        return SolverConfig(**base)

    # ---- fit ----------------------------------------------------------------------
    def fit(
        self,
        train: SeriesDataset | pd.DataFrame,
        val: SeriesDataset | pd.DataFrame | None = None,
        max_epochs: int = 100,
        accelerator: str = "auto",
        devices: int | str = "auto",
        log_dir: str | os.PathLike | None = None,
        progress_bar: bool = True,
        resume: bool = False,
        **trainer_kwargs,
    ) -> _SeriesEstimator:
        """Train on ``train`` (a dataset, or a DataFrame read with ``id_col=``/``time_col=``...).

        Without ``val``, a seeded ``val_frac`` share of the training series is held out
        for early stopping and checkpoint selection (a message says how many). Logs
        and checkpoints (``checkpoints/best.ckpt`` and ``last.ckpt``, rewritten
        atomically after every epoch) go to ``log_dir`` (a new temporary folder by
        default; see ``log_dir_``); a ``log_dir`` that already holds a run is refused
        unless ``resume=True``. Extra keyword arguments go to ``lightning.Trainer``
        (column arguments such as ``id_col=`` go to :func:`latentode.from_dataframe`);
        ``callbacks=`` are added to fit's own checkpoint and early-stopping callbacks.

        ``resume=True`` continues the run in ``log_dir`` from its last complete epoch
        (after a crash, a kill or Ctrl-C); with the same data and parameters it ends
        with the same weights as a run that was never stopped (on CPU). Without a
        checkpoint there, training starts from the beginning.

        Ctrl-C stops training cleanly: the checkpoints of the last complete epoch stay,
        a message says where, and fit returns with the best weights so far and
        ``interrupted_ = True``.

        Returns:
            self, with ``history_`` (per-epoch metrics), ``scaler_``, ``channels_``,
            ``best_checkpoint_``, ``interval_scale_`` (per-channel factor applied to
            predicted stds and quantile intervals, calibrated on the validation series so
            that 90% intervals cover 90%) and the trained network.
        """
        import lightning as L
        from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
        from lightning.pytorch.loggers import CSVLogger

        from latentode.data.datamodule import SeriesDataModule
        from latentode.models.checkpoints import AtomicCheckpointIO, read_checkpoint
        from latentode.models.history import read_history, set_aside
        from latentode.models.training import (
            InterruptWatch,
            NonFiniteLossError,
            OptimConfig,
            TrainingModule,
        )

        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise LatentODEError(f"seed must be a non-negative integer, got {self.seed!r}.")
        if self.seed < 0:
            raise LatentODEError(f"seed must be a non-negative integer, got {self.seed}.")
        if resume and log_dir is None:
            raise LatentODEError(
                "resume=True continues the run in log_dir=; pass the log_dir of the run "
                "(the folder that holds its checkpoints/)."
            )
        column_kwargs = _pop_column_kwargs(trainer_kwargs)
        train = _as_dataset(train, "train", column_kwargs)
        _check_trainable(train, "train")
        if val is not None:
            val = _as_dataset(val, "val", column_kwargs)
            _check_same_channels(val, train.channels, "val")
            val = val[[i for i, s in enumerate(val) if len(s) >= 2]]
        elif self.val_frac and len(train) >= 10:
            train, val = train.split(test_size=self.val_frac, seed=self.seed)
            print(
                f"latentode: holding out {len(val)} of {len(train) + len(val)} training series "
                f"(val_frac={self.val_frac}, seed={self.seed}) for early stopping; pass val= "
                "to choose them yourself."
            )
        if val is not None and len(val) == 0:
            val = None

        scaler = Scaler.fit(train)
        static_scaler = _fit_static_scaler(train)
        config = self._network_config(train)
        optim = OptimConfig(
            lr=self.lr, lr_decay=self.lr_decay, kl_warmup_epochs=self.kl_warmup_epochs
        ).to_dict()
        log_dir = (
            Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="latentode-"))
        )
        hparams = {
            "kind": self._kind,
            "config": config,
            "optim": optim,
            "seed": self.seed,
            "data": _fingerprint(train, val),
        }
        resume_from = _resume_point(log_dir, resume, hparams)
        if resume_from is not None:
            set_aside(log_dir / "logs")  # Lightning's CSV logger would delete it
        L.seed_everything(self.seed, verbose=False)
        module = TrainingModule(**hparams)
        datamodule = SeriesDataModule(
            train,
            scaler,
            val=val,
            batch_size=self.batch_size,
            task=TaskConfig(task=self.train_task),
            static_scaler=static_scaler,
            seed=self.seed,
        )
        monitor = "val_mse" if val is not None else "train_loss"
        checkpoint = ModelCheckpoint(
            dirpath=log_dir / "checkpoints",
            filename="best",
            monitor=monitor,
            mode="min",
            save_last=True,
        )
        user_callbacks = trainer_kwargs.pop("callbacks", None) or []
        if not isinstance(user_callbacks, (list, tuple)):
            user_callbacks = [user_callbacks]
        watch = InterruptWatch()
        callbacks = [checkpoint, watch, *user_callbacks]  # the user's run alongside fit's own
        if val is not None and self.patience:
            callbacks.append(EarlyStopping(monitor=monitor, patience=self.patience, mode="min"))
        trainer_args = {
            "max_epochs": max_epochs,
            "accelerator": accelerator,
            "devices": devices,
            "gradient_clip_val": self.gradient_clip,
            "callbacks": callbacks,
            # flushed every step, so a killed run's history survives for its resume
            "logger": CSVLogger(str(log_dir), name="logs", version="", flush_logs_every_n_steps=1),
            "enable_progress_bar": progress_bar,
            "enable_model_summary": False,
            "num_sanity_val_steps": 0,
            "log_every_n_steps": 1,
            "default_root_dir": str(log_dir),
            "plugins": [AtomicCheckpointIO()],
        }
        if val is None:
            trainer_args["limit_val_batches"] = 0
        trainer_args.update(trainer_kwargs)
        previous_sigint = signal.getsignal(signal.SIGINT)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*does not have many workers.*")
            warnings.filterwarnings("ignore", ".*Checkpoint directory.*exists.*")
            warnings.filterwarnings("ignore", ".*Experiment logs directory.*")  # set aside
            warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
            trainer = L.Trainer(**trainer_args)
            try:
                trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
            except SystemExit:  # Lightning's answer to Ctrl-C: graceful shutdown, then exit
                if not watch.interrupted:
                    raise
                signal.signal(signal.SIGINT, previous_sigint)  # Lightning left it ignored
            except NonFiniteLossError as err:
                kept = log_dir / "checkpoints"
                raise NonFiniteLossError(
                    f"{err} The checkpoints of the last good epoch are in {kept}."
                ) from None

        self.interrupted_ = watch.interrupted
        best = checkpoint.best_model_path
        if watch.interrupted:
            _report_interrupt(log_dir, watch.epoch, best)
        if best and Path(best).exists():
            state = read_checkpoint(Path(best))["state_dict"]
            module.load_state_dict(state)
        self.network_ = module.net.cpu().eval()
        self.kind_ = self._kind
        self.config_ = config
        self.scaler_ = scaler
        self.static_scaler_ = static_scaler
        self._set_data_meta(train)
        self.log_dir_ = str(log_dir)
        self.best_checkpoint_ = best or None
        self.history_ = read_history(log_dir / "logs")
        self.interval_scale_ = self._calibrate_intervals(val)
        return self

    def _calibrate_intervals(self, val: SeriesDataset | None) -> list[float]:
        """Per-channel factor that makes the central 90% interval cover 90% of held-out
        validation values (hide half of each validation series, predict it); 1.0 for a
        channel with fewer than 20 such values or without validation data.

        Training fits the noise level on harder contexts than prediction sees (random
        subsets and cuts, single posterior samples), so raw intervals tend to be too wide.
        """
        n_c = len(self.channels_)
        self.interval_scale_ = [1.0] * n_c
        if val is None:
            return self.interval_scale_
        context, target = val.subsample(0.5, seed=self.seed)
        keep = [i for i, (c, t) in enumerate(zip(context, target)) if c.n_observed and len(t)]
        if not keep:
            return self.interval_scale_
        context, target = context[keep], target[keep]
        times = {t.id: context.time_axis.to_user(t.times) for t in target}
        pred = self.predict(context, times, n_samples=50, quantiles=(0.05, 0.95), seed=self.seed)
        truth = np.concatenate([t.values for t in target])  # [N, C]
        scale = []
        for j, c in enumerate(self.channels_):
            y, m = truth[:, j], pred[c].to_numpy()
            lo, hi = pred[f"{c}_q5"].to_numpy(), pred[f"{c}_q95"].to_numpy()
            obs = ~np.isnan(y)
            if obs.sum() < 20:
                scale.append(1.0)
                continue
            y, m, lo, hi = y[obs], m[obs], lo[obs], hi[obs]
            with np.errstate(divide="ignore", invalid="ignore"):
                needed = np.where(y >= m, (y - m) / (hi - m), (m - y) / (m - lo))
            needed = needed[np.isfinite(needed)]
            scale.append(float(np.quantile(needed, 0.9)) if needed.size else 1.0)
        return scale

    def _set_data_meta(self, data: SeriesDataset) -> None:
        self.channels_ = list(data.channels)
        self.time_axis_ = data.time_axis
        self.static_names_ = list(data.static_names)
        self.label_name_ = data.label_name
        self.id_name_ = data.id_name
        self.time_name_ = data.time_name
        self.n_features_in_ = len(self.channels_)

    # ---- helpers for prediction -----------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(...) or "
                f"{type(self).__name__}.load(path) first."
            )

    def _context(self, context, what: str = "context") -> SeriesDataset:
        self._check_fitted()
        kwargs = {
            "id_col": self.id_name_,
            "time_col": self.time_name_,
            "time_unit": self.time_axis_.unit,  # datetimes become floats in the model's unit
        }
        if self.static_names_:
            kwargs["static_cols"] = self.static_names_
        ds = _as_dataset(
            context,
            what,
            kwargs,
            expected_channels=self.channels_,
            ignore=[self.label_name_] if self.label_name_ else (),
        )
        _check_same_channels(ds, self.channels_, what)
        if len(ds) == 0:
            raise LatentODEError(
                f"{what} has no series; pass at least one series with an observed value."
            )
        if ds.time_axis.is_datetime != self.time_axis_.is_datetime:
            kind = "datetimes" if self.time_axis_.is_datetime else "numbers"
            raise LatentODEError(
                f"{what} times must be {kind} like the training data's, not "
                f"{'datetimes' if ds.time_axis.is_datetime else 'numbers'}."
            )
        if not ds.time_axis.is_datetime and ds.time_axis.unit != self.time_axis_.unit:
            ds = _relabel_time_unit(ds, self.time_axis_)
        elif ds.time_axis.unit != self.time_axis_.unit:
            ds = _convert_time_unit(ds, self.time_axis_.unit)
        empty = [s.id for s in ds if s.n_observed == 0]
        if empty:
            raise LatentODEError(
                f"{what} series {empty[:5]} have no observed point; the model needs at least "
                "one observation per series to infer its state."
            )
        if ds.static_names != tuple(self.static_names_):
            raise LatentODEError(
                f"{what} static covariates {list(ds.static_names)} differ from the training "
                f"data's {self.static_names_}."
            )
        return ds

    def _targets(self, ds: SeriesDataset, times, horizon: float | None = None) -> list[Series]:
        """The query times per series, as empty Series (float times in the dataset's unit).

        With ``horizon`` (see :meth:`predict`), refuses query times more than ``horizon``
        training spans before or after a series' observed context, and contexts that
        themselves span more than ``horizon`` training spans.
        """
        n_c = len(self.channels_)
        axis = ds.time_axis
        if isinstance(times, (str, bytes)):
            raise LatentODEError(
                f"times is a single string ({times!r:.40}); pass a list of times, e.g. "
                f"times=[{times!r:.40}], a dict {{id: times}} or a DataFrame of "
                f"({self.id_name_!r}, {self.time_name_!r}) rows."
            )

        def query(sid, t_user) -> Series:
            t_user = _query_array(t_user, sid)
            if t_user.size == 0:  # a dict or frame of times that leaves this series out
                t = np.zeros(0)
            else:
                t = np.unique(_from_user(axis, t_user, f"times for series {sid!r}"))
            if np.isnan(t).any() or np.isinf(t).any():
                raise LatentODEError(
                    f"times for series {sid!r} contain missing or infinite values."
                )
            if (
                axis.is_datetime
                and len(t)
                and np.abs(t).max() * UNIT_NANOSECONDS[axis.unit] >= 2**63
            ):
                raise LatentODEError(
                    f"times for series {sid!r} include a datetime about "
                    f"{np.abs(t).max() * UNIT_NANOSECONDS[axis.unit] / 3.156e16:.0f} years from "
                    f"the data ({axis.origin}), more than the 292 years datetimes can span; "
                    "pass times closer to the data."
                )
            empty = np.full((len(t), n_c), np.nan)
            return Series(sid, t, empty, np.zeros((len(t), n_c), dtype=bool))

        if times is None:
            targets = [query(s.id, axis.to_user(s.times)) for s in ds]
        elif isinstance(times, pd.DataFrame):
            id_col, time_col = self.id_name_, self.time_name_
            _check_times_frame(times, id_col, time_col)
            groups = {k: g[time_col].to_numpy() for k, g in times.groupby(id_col, sort=False)}
            unknown = [k for k in groups if k not in set(ds.ids)]
            if unknown:
                raise LatentODEError(
                    f"the times DataFrame has ids not in the context: {unknown[:5]}"
                    f"{_known_ids(ds)}."
                )
            targets = [query(s.id, groups.get(s.id, [])) for s in ds]
        elif isinstance(times, Mapping):
            unknown = [k for k in times if k not in set(ds.ids)]
            if unknown:
                raise LatentODEError(
                    f"times has ids not in the context: {unknown[:5]}{_known_ids(ds)}."
                )
            targets = [query(s.id, times.get(s.id, [])) for s in ds]
        else:
            targets = [query(s.id, times) for s in ds]
        if horizon is not None:
            _check_horizon(ds, targets, horizon, self.scaler_.time_scale)
        return targets

    def _batches(self, ds: SeriesDataset, targets: list[Series], batch_size: int):
        for start in range(0, len(ds), batch_size):
            stop = start + batch_size
            yield collate(
                list(ds[start:stop]), self.scaler_, targets[start:stop], self.static_scaler_
            )

    # ---- prediction -----------------------------------------------------------------
    def predict(
        self,
        context: SeriesDataset | pd.DataFrame,
        times=None,
        n_samples: int = 100,
        quantiles: list[float] | tuple[float, ...] | None = None,
        seed: int | None = None,
        batch_size: int = 256,
        horizon: float | None = 10.0,
        **solver_override,
    ) -> pd.DataFrame:
        """Posterior predictive mean and std at ``times``, given the observed ``context``.

        Args:
            context: the observed points (dataset, or DataFrame with the training's
                id/time/channel columns).
            times: where to predict, in the data's own units (numbers or datetimes): one
                array for every series, a dict ``{id: array}``, a DataFrame of (id, time)
                rows, or None for the context's own times. Times before, between or
                after the observed ones all work (interpolation and forecasting).
            n_samples: posterior samples of z0 per series.
            quantiles: e.g. ``(0.05, 0.95)`` adds ``<c>_q5`` and ``<c>_q95`` columns.
            seed: seeds the samples (default: the estimator's seed).
            solver_override: ``solver=``, ``rtol=``, ``atol=``, ``step_size=`` for this
                call only (e.g. a looser tolerance for speed). ``step_size`` is in model
                time, where the longest training series spans 1 (``scaler_.time_scale``
                data units).
            horizon: how far from a series' observed context (before its first or after
                its last observation) a query time may lie, in training spans (one span
                = ``scaler_.time_scale``, the longest training series); a context may
                itself span at most ``horizon`` training spans. None: no limit.

                Why 10: the model never saw a gap longer than one span, so far beyond it
                predictions are extrapolations of the learned vector field (for a tiny
                spiral model, the predicted std going backwards grows from 4.5 at one
                span to 7.4 at 10, 35 at 100 and 2,400 at 10,000); the solver's work
                grows linearly with the distance (about 20 function evaluations per span:
                200 at 10 spans, 1,200 at 100, 83,000 and 6 s for one series at 10,000;
                a time of 1e12 runs for many seconds before it fails on the step limit);
                and series predicted in one call share one read-out grid, so one far
                query moves the other series' predictions (by 1e-4 at 10 spans, 1e-3 at
                30, 3e-2 at 100). Ten spans is a long forecast yet costs little; raise it
                (or pass None) to forecast further on purpose.

        Returns:
            DataFrame with the id and time columns, and per channel ``<c>`` (mean) and
            ``<c>_std`` (std, incl. observation noise), in original units.
            ``df.attrs["nfe"]`` holds the solver's function evaluations.

        Raises:
            LatentODEError: an unusable context or times (unknown ids, other channels,
                times of the wrong kind, NaN/inf, beyond ``horizon``) or argument.
        """
        quantiles = _check_quantiles(quantiles)
        draws = self._draw(
            context, times, n_samples, seed, batch_size, solver_override, horizon=horizon
        )
        return self._summarise(draws, quantiles)

    def predict_stream(
        self,
        contexts: Iterable[SeriesDataset | pd.DataFrame] | SeriesDataset | pd.DataFrame,
        times=None,
        n_samples: int = 100,
        quantiles: list[float] | tuple[float, ...] | None = None,
        seed: int | None = None,
        series_per_chunk: int = 1000,
        batch_size: int = 256,
        horizon: float | None = 10.0,
        **solver_override,
    ) -> Iterator[pd.DataFrame]:
        """:meth:`predict`, one chunk of series at a time: memory does not grow with the data.

        Args:
            contexts: an iterable of chunks (datasets or DataFrames), e.g.
                ``latentode.iter_csv(path)``, or one dataset or DataFrame, which is cut
                into chunks of ``series_per_chunk`` series. A series must not come back
                in a later chunk.
            times: as in :meth:`predict`; a dict or DataFrame of (id, time) is matched to
                each chunk's ids, and ids that no chunk holds raise at the end. Or a
                function ``times(chunk)`` → that chunk's times (any form ``predict``
                takes), called with each chunk as a SeriesDataset.
            seed: chunk ``k`` (0, 1, ...) is predicted with seed ``seed + k`` (default
                seed: the estimator's), so a run is repeatable and the first chunk, or
                data in one chunk, gets what :meth:`predict` gives with ``seed``.
            n_samples, quantiles, batch_size, horizon, solver_override: as in
                :meth:`predict`.

        Yields:
            Per chunk, the DataFrame :meth:`predict` returns for that chunk's series and
            seed (``attrs["nfe"]`` included).
        """
        self._check_fitted()
        if isinstance(series_per_chunk, bool) or not (
            isinstance(series_per_chunk, (int, np.integer)) and series_per_chunk >= 1
        ):
            raise LatentODEError(
                f"series_per_chunk must be a whole number >= 1, got {series_per_chunk!r}."
            )
        if isinstance(contexts, (SeriesDataset, pd.DataFrame)):
            whole = self._context(contexts)
            contexts = (
                whole[start : start + series_per_chunk]
                for start in range(0, len(whole), series_per_chunk)
            )
        elif not isinstance(contexts, Iterable):
            raise LatentODEError(
                "contexts must be a SeriesDataset, a DataFrame or an iterable of them (e.g. "
                f"latentode.iter_csv(path)), got {type(contexts).__name__}."
            )
        by_id = rows_of = None
        if isinstance(times, pd.DataFrame):
            _check_times_frame(times, self.id_name_, self.time_name_)
            rows_of = times.groupby(self.id_name_, sort=False).indices  # id → row positions
        elif isinstance(times, Mapping):
            by_id = times
        per_chunk = times if by_id is None and rows_of is None and callable(times) else None
        unmatched = set(by_id if by_id is not None else rows_of or ())
        base = self.seed if seed is None else seed
        for k, chunk in enumerate(contexts):
            ds = self._context(chunk, f"context chunk {k}")
            chunk_times = times if per_chunk is None else per_chunk(ds)
            if by_id is not None:
                chunk_times = {i: by_id[i] for i in ds.ids if i in by_id}
                unmatched.difference_update(chunk_times)
            elif rows_of is not None:  # this chunk's rows of the frame, in its order
                found = [i for i in ds.ids if i in rows_of]
                unmatched.difference_update(found)
                rows = np.sort(np.concatenate([rows_of[i] for i in found] or [[]])).astype(int)
                chunk_times = times.iloc[rows]
            yield self.predict(
                ds,
                chunk_times,
                n_samples=n_samples,
                quantiles=quantiles,
                seed=base + k,
                batch_size=batch_size,
                horizon=horizon,
                **solver_override,
            )
        if unmatched:
            shown = sorted(
                (k.item() if isinstance(k, np.generic) else k for k in unmatched), key=repr
            )
            shown = shown[:5]
            raise LatentODEError(
                f"times has ids that no context chunk holds: {shown}; predict only the series "
                "in the context, or check the ids' type (text '7' is not the number 7)."
            )

    def _draw(self, context, times, n_samples, seed, batch_size, solver_override, horizon=10.0):
        _check_positive_int(n_samples, "n_samples")
        _check_positive_int(batch_size, "batch_size")
        if seed is not None and not _is_int(seed):
            raise LatentODEError(f"seed must be an int or None, got {seed!r}.")
        if horizon is not None and not (_is_real(horizon) and horizon > 0):
            raise LatentODEError(
                f"horizon must be a positive number of training spans or None, got {horizon!r}."
            )
        ds = self._context(context)
        targets = self._targets(ds, times, horizon)
        solver = self._solver_config(**solver_override) if solver_override else None
        gen = torch.Generator().manual_seed(self.seed if seed is None else seed)
        net = self.network_
        counter = nfe_counter(getattr(net, "dynamics", None))
        nfe0 = counter.total if counter is not None else 0
        chunks = []
        for batch, start in zip(
            self._batches(ds, targets, batch_size), range(0, len(ds), batch_size)
        ):
            out = net.sample(batch, n_samples, generator=gen, solver=solver)
            chunks.append((batch, out, targets[start : start + batch_size]))
        nfe = (counter.total - nfe0) if counter is not None else None
        return ds, chunks, nfe, gen

    def _summarise(self, draws, quantiles) -> pd.DataFrame:
        ds, chunks, nfe, gen = draws
        means, stds, qs, times, ids = [], [], [], [], []
        quantiles = tuple(quantiles or ())
        for q in quantiles:
            if not 0.0 < q < 1.0:
                raise LatentODEError(f"quantiles must lie strictly between 0 and 1, got {q}.")
        sc_mean, sc_std = np.asarray(self.scaler_.mean), np.asarray(self.scaler_.std)
        spread = np.asarray(self.interval_scale_)  # [C] calibrated interval width factor
        for _, out, targets in chunks:
            mu = out["mean"]  # [S, B, T', C]
            noise = out["noise_std"]  # [C]
            pred_mean = mu.mean(0)  # [B, T', C]
            pred_std = (mu.var(0, unbiased=False) + noise**2).sqrt()
            if quantiles:
                y = mu + noise * torch.randn(mu.shape, generator=gen, dtype=mu.dtype)
                qv = torch.quantile(y, torch.tensor(quantiles, dtype=mu.dtype), dim=0)
            if quantiles:  # widen or narrow around the mean by the calibrated scale
                qv = pred_mean + torch.as_tensor(spread, dtype=mu.dtype) * (qv - pred_mean)
            for b, tgt in enumerate(targets):
                n = len(tgt)
                means.append(pred_mean[b, :n].numpy() * sc_std + sc_mean)
                stds.append(pred_std[b, :n].numpy() * sc_std * spread)
                if quantiles:
                    qs.append(qv[:, b, :n].numpy() * sc_std + sc_mean)  # [Q, n, C]
                times.append(tgt.times)
                ids.extend([tgt.id] * n)
        frame = {
            self.id_name_: _id_array(ids),
            self.time_name_: _times_to_user(ds.time_axis, np.concatenate(times) if times else []),
        }
        mean_all = np.concatenate(means) if means else np.zeros((0, len(self.channels_)))
        std_all = np.concatenate(stds) if stds else np.zeros((0, len(self.channels_)))
        q_all = np.concatenate(qs, axis=1) if qs else None
        for j, c in enumerate(self.channels_):
            frame[c] = mean_all[:, j]
            frame[f"{c}_std"] = std_all[:, j]
            for k, q in enumerate(quantiles):
                frame[f"{c}_q{_pct(q)}"] = q_all[k, :, j]
        df = pd.DataFrame(frame)
        df.attrs["nfe"] = nfe
        return df

    def sample(
        self,
        context: SeriesDataset | pd.DataFrame,
        times=None,
        n_samples: int = 10,
        seed: int | None = None,
        with_noise: bool = False,
        batch_size: int = 256,
        horizon: float | None = 10.0,
        **solver_override,
    ) -> pd.DataFrame:
        """Posterior trajectory samples: one row per (id, time, sample) with a column per
        channel, in original units (``with_noise=True`` adds observation noise).
        ``horizon``: as :meth:`predict`."""
        ds, chunks, nfe, gen = self._draw(
            context, times, n_samples, seed, batch_size, solver_override, horizon=horizon
        )
        sc_mean, sc_std = np.asarray(self.scaler_.mean), np.asarray(self.scaler_.std)
        rows = []
        for _, out, targets in chunks:
            mu = out["mean"]
            if with_noise:
                mu = mu + out["noise_std"] * torch.randn(mu.shape, generator=gen, dtype=mu.dtype)
            for b, tgt in enumerate(targets):
                n = len(tgt)
                vals = mu[:, b, :n].numpy() * sc_std + sc_mean  # [S, n, C]
                part = pd.DataFrame(vals.reshape(-1, vals.shape[-1]), columns=self.channels_)
                part.insert(0, "sample", np.repeat(np.arange(n_samples), n))
                user_times = _times_to_user(ds.time_axis, tgt.times)
                part.insert(0, self.time_name_, np.tile(user_times, n_samples))
                part.insert(0, self.id_name_, [tgt.id] * len(part))
                rows.append(part)
        df = pd.concat(rows, ignore_index=True)
        df.attrs["nfe"] = nfe
        return df

    def encode(self, context: SeriesDataset | pd.DataFrame) -> pd.DataFrame:
        """Posterior q(z0 | context) per series: columns ``z0_<k>`` (mean) and ``z0_<k>_std``."""
        ds = self._context(context)
        targets = self._targets(ds, None)
        rows = []
        with torch.no_grad():
            for batch in self._batches(ds, targets, 256):
                mean, std = self.network_.encode(batch)
                rows.append(torch.cat([mean, std], dim=-1).numpy())
        arr = np.concatenate(rows)
        latent = arr.shape[1] // 2
        cols = [f"z0_{k}" for k in range(latent)] + [f"z0_{k}_std" for k in range(latent)]
        df = pd.DataFrame(arr, columns=cols)
        df.insert(0, self.id_name_, _id_array(ds.ids))
        return df

    def intensity(
        self,
        context: SeriesDataset | pd.DataFrame,
        times=None,
        n_samples: int = 20,
        seed: int | None = None,
        horizon: float | None = 10.0,
    ) -> pd.DataFrame:
        """Expected observation rate per channel (Poisson models only), in events per
        time unit of the data, averaged over posterior samples: columns ``<c>``.
        ``horizon``: as :meth:`predict`."""
        self._check_fitted()
        if getattr(self.network_, "intensity", None) is None:
            raise LatentODEError("this model has no Poisson head; fit with poisson=True.")
        ds, chunks, _, _ = self._draw(context, times, n_samples, seed, 256, {}, horizon=horizon)
        rows = []
        for _, out, targets in chunks:
            lam = out["log_intensity"].exp().mean(0) / self.scaler_.time_scale  # [B, T', C]
            for b, tgt in enumerate(targets):
                part = pd.DataFrame(lam[b, : len(tgt)].numpy(), columns=self.channels_)
                part.insert(0, self.time_name_, _times_to_user(ds.time_axis, tgt.times))
                part.insert(0, self.id_name_, [tgt.id] * len(tgt))
                rows.append(part)
        return pd.concat(rows, ignore_index=True)

    def predict_proba(
        self, context: SeriesDataset | pd.DataFrame, n_samples: int = 20, seed: int | None = None
    ) -> pd.DataFrame:
        """Probability of the fitted label (e.g. mortality) per series: columns id, ``p``."""
        self._check_fitted()
        if getattr(self.network_, "classifier", None) is None:
            raise LatentODEError(
                "this model was not fitted with labels; read the data with label_col= or "
                "labels= and fit with classify=True."
            )
        ds, chunks, _, _ = self._draw(context, None, n_samples, seed, 256, {})
        probs = [torch.sigmoid(out["label_logits"]).mean(0).numpy() for _, out, _ in chunks]
        return pd.DataFrame({self.id_name_: _id_array(ds.ids), "p": np.concatenate(probs)})

    def score(
        self,
        data: SeriesDataset | pd.DataFrame,
        task: str = "interp",
        frac: float = 0.5,
        n_samples: int = 100,
        seed: int | None = None,
        **solver_override,
    ) -> dict[str, float]:
        """Hide part of each series, predict it, and compare, in original units.

        ``task="interp"`` hides a random ``1 - frac`` of each series' points (seeded);
        ``task="extrap"`` hides everything after ``frac`` of each series' span.

        Returns:
            ``mse``, ``mae``, ``nll`` (Gaussian, per value), ``coverage_90`` (share of
            hidden values inside the central 90% interval), ``n_values``, ``nfe``, and
            ``roc_auc`` when the model predicts a label and the data has both classes.
        """
        from sklearn.metrics import mean_absolute_error, mean_squared_error, roc_auc_score

        ds = self._context(data, "data")
        seed = self.seed if seed is None else seed
        if task == "interp":
            context, target = ds.subsample(frac, seed=seed)
        elif task == "extrap":
            context, target = ds.split_time(frac=frac)
        else:
            raise LatentODEError(f"task must be 'interp' or 'extrap', got {task!r}.")
        keep = [i for i, (c, t) in enumerate(zip(context, target)) if c.n_observed and t.n_observed]
        if not keep:
            raise LatentODEError("no series has points both in the context and to predict.")
        context, target = context[keep], target[keep]
        times = {t.id: context.time_axis.to_user(t.times) for t in target}
        pred = self.predict(
            context,
            times,
            n_samples=n_samples,
            quantiles=(0.05, 0.95),
            seed=seed,
            **solver_override,
        )
        truth = np.concatenate([t.values for t in target])  # [N, C], NaN = not observed
        obs = ~np.isnan(truth)
        mean = pred[self.channels_].to_numpy()
        std = pred[[f"{c}_std" for c in self.channels_]].to_numpy()
        lo_q = pred[[f"{c}_q5" for c in self.channels_]].to_numpy()
        hi_q = pred[[f"{c}_q95" for c in self.channels_]].to_numpy()
        y, m, s = truth[obs], mean[obs], std[obs]
        out = {
            "mse": float(mean_squared_error(y, m)),
            "mae": float(mean_absolute_error(y, m)),
            "nll": float(np.mean(0.5 * np.log(2 * np.pi * s**2) + 0.5 * ((y - m) / s) ** 2)),
            "coverage_90": float(np.mean((y >= lo_q[obs]) & (y <= hi_q[obs]))),
            "n_values": int(obs.sum()),
            "nfe": pred.attrs.get("nfe"),
        }
        if getattr(self.network_, "classifier", None) is not None and ds.has_labels:
            labelled = [s for s in ds if s.label is not None]
            y_true = np.array([s.label for s in labelled])
            if len(np.unique(y_true)) == 2:
                proba = self.predict_proba(ds.with_series(labelled), seed=seed)["p"].to_numpy()
                out["roc_auc"] = float(roc_auc_score(y_true, proba))
        return out

    # ---- persistence ----------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write weights (safetensors) and a JSON header to one file, atomically."""
        from safetensors.torch import save_file

        self._check_fitted()
        header = {
            "format": FILE_FORMAT,
            "format_version": FILE_FORMAT_VERSION,
            "library_version": __version__,
            "estimator": type(self).__name__,
            "kind": self.kind_,
            "params": self.get_params(),
            "config": self.config_,
            "scaler": self.scaler_.to_dict(),
            "static_scaler": None
            if self.static_scaler_ is None
            else [np.asarray(a).tolist() for a in self.static_scaler_],
            "channels": self.channels_,
            "time_axis": self.time_axis_.to_dict(),
            "static_names": self.static_names_,
            "label_name": self.label_name_,
            "id_name": self.id_name_,
            "time_name": self.time_name_,
            "interval_scale": list(self.interval_scale_),
        }
        state = {k: v.detach().cpu().contiguous() for k, v in self.network_.state_dict().items()}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            save_file(state, str(tmp), metadata={_HEADER_KEY: json.dumps(header)})
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> _SeriesEstimator:
        """Read a model file written by :meth:`save`; nothing in it is executed."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(path)
        if not path.exists():
            raise LatentODEError(f"model file not found: {path}.")
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            state = load_file(str(path))
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
        if (
            header.get("format") != FILE_FORMAT
            or header.get("format_version") != FILE_FORMAT_VERSION
        ):
            raise LatentODEError(
                f"{path} has format {header.get('format')!r} version "
                f"{header.get('format_version')!r}; this latentode ({__version__}) reads "
                f"{FILE_FORMAT!r} version {FILE_FORMAT_VERSION}."
            )
        estimator_cls = _ESTIMATORS.get(header.get("estimator"))
        if estimator_cls is None:
            raise LatentODEError(
                f"{path} holds an unknown estimator {header.get('estimator')!r}; this "
                f"latentode knows {sorted(_ESTIMATORS)}."
            )
        if not issubclass(estimator_cls, cls):
            raise LatentODEError(
                f"{path} holds a {header.get('estimator')} model; load it with "
                f"{header.get('estimator')}.load()."
            )
        try:
            model = estimator_cls(**header["params"])
            net = build_network(header["kind"], header["config"])
            net.load_state_dict(state, strict=True)
            model.network_ = net.eval()
            model.kind_ = header["kind"]
            model.config_ = header["config"]
            model.scaler_ = Scaler.from_dict(header["scaler"])
            ss = header.get("static_scaler")
            model.static_scaler_ = None if ss is None else (np.asarray(ss[0]), np.asarray(ss[1]))
            model.channels_ = list(header["channels"])
            model.time_axis_ = TimeAxis.from_dict(header["time_axis"])
            model.static_names_ = list(header["static_names"])
            model.label_name_ = header["label_name"]
            model.id_name_ = header["id_name"]
            model.time_name_ = header["time_name"]
            model.interval_scale_ = [float(v) for v in header["interval_scale"]]
        except (TypeError, KeyError, IndexError, ValueError, RuntimeError) as err:
            raise LatentODEError(
                f"{path} does not match this latentode version's model ({err})."
            ) from None
        model.n_features_in_ = len(model.channels_)
        return model


class LatentODE(_SeriesEstimator):
    """Latent ODE for irregularly-sampled multivariate series (Rubanova et al. 2019).

    ``__init__`` only stores parameters (scikit-learn style: ``get_params``,
    ``set_params`` and ``sklearn.base.clone`` work). Defaults train well on a laptop CPU.

    Args:
        latent_dim: size of the latent state z.
        encoder: ``"odernn"`` (ODE-RNN, the paper's) or ``"rnn"`` (GRU with time gaps).
        encoder_hidden: size of the encoder's hidden state.
        hidden, depth: width and hidden layers of the ODE vector-field MLPs.
        n_samples: posterior samples per series in the training bound (IWAE K).
        poisson: also model *when* values are observed (Poisson intensity head).
        classify: learn the dataset's per-series label from z0 (``"auto"``: when the
            training data has labels).
        solver, rtol, atol, step_size, adjoint: the latent ODE solver (torchdiffeq
            method name; ``adjoint=True`` for constant-memory gradients).
        n_grid: read-out grid points over a batch's time span.
        dynamics: ``"ode"`` (the latent ODE) or ``"rnn"`` (a GRU steps z through the
            query times; with ``encoder="rnn"`` this is the RNN-VAE baseline of the paper).
        lr, lr_decay, kl_warmup_epochs: optimisation.
        batch_size: series per batch.
        train_task: ``"mixed"``, ``"interp"`` or ``"extrap"``: how training contexts hide points.
        val_frac: share of the training series held out for early stopping when
            ``fit`` gets no ``val``.
        patience: epochs without validation improvement before stopping.
        gradient_clip: gradient-norm clip value (None: off).
        seed: seeds the split, the training and the default prediction samples.
    """

    _kind = "latent_ode"

    def __init__(
        self,
        latent_dim: int = 8,
        encoder: str = "odernn",
        encoder_hidden: int = 32,
        hidden: int = 64,
        depth: int = 2,
        n_samples: int = 3,
        poisson: bool = False,
        classify: bool | str = "auto",
        noise_std: float = 0.1,
        learn_noise: bool = True,
        solver: str = "dopri5",
        rtol: float = 1e-3,
        atol: float = 1e-4,
        step_size: float | None = None,
        adjoint: bool = False,
        n_grid: int = 64,
        dynamics: str = "ode",
        lr: float = 1e-2,
        lr_decay: float = 0.99,
        kl_warmup_epochs: int = 10,
        batch_size: int = 16,
        train_task: str = "mixed",
        val_frac: float = 0.2,
        patience: int = 30,
        gradient_clip: float | None = 1.0,
        seed: int = 0,
    ):
        self.latent_dim = latent_dim
        self.encoder = encoder
        self.encoder_hidden = encoder_hidden
        self.hidden = hidden
        self.depth = depth
        self.n_samples = n_samples
        self.poisson = poisson
        self.classify = classify
        self.noise_std = noise_std
        self.learn_noise = learn_noise
        self.solver = solver
        self.rtol = rtol
        self.atol = atol
        self.step_size = step_size
        self.adjoint = adjoint
        self.n_grid = n_grid
        self.dynamics = dynamics
        self.lr = lr
        self.lr_decay = lr_decay
        self.kl_warmup_epochs = kl_warmup_epochs
        self.batch_size = batch_size
        self.train_task = train_task
        self.val_frac = val_frac
        self.patience = patience
        self.gradient_clip = gradient_clip
        self.seed = seed

    def _network_config(self, data: SeriesDataset) -> dict:
        classify = data.has_labels if self.classify == "auto" else bool(self.classify)
        if classify and not data.has_labels:
            raise LatentODEError(
                "classify=True but the training data has no labels; pass label_col= or "
                "labels= when reading the data, or set classify=False."
            )
        return LatentODEConfig(
            n_channels=len(data.channels),
            latent_dim=self.latent_dim,
            encoder=self.encoder,
            encoder_hidden=self.encoder_hidden,
            hidden=self.hidden,
            depth=self.depth,
            n_samples=self.n_samples,
            noise_std=self.noise_std,
            learn_noise=self.learn_noise,
            poisson=self.poisson,
            n_static=len(data.static_names),
            classify=classify,
            solver=self._solver_config().to_dict(),
            n_grid=self.n_grid,
            dynamics=self.dynamics,
        ).to_dict()


class ODERNN(_SeriesEstimator):
    """ODE-RNN (Rubanova et al. 2019) as a standalone autoregressive predictor.

    Reads each series forwards; to predict at time t it carries the hidden state from
    the last observation before t by a neural ODE (or, with ``cell="gru_dt"``, keeps
    it and gives the decoder the gap: the GRU-Δt baseline) and decodes a Gaussian
    mean and std. Same ``fit``/``predict``/``score``/``save`` as :class:`LatentODE`;
    its std is the decoder's (one deterministic path, no posterior samples).

    Args:
        cell: ``"odernn"`` or ``"gru_dt"``.
        hidden_dim: GRU state size. hidden, depth: MLP width and hidden layers.
        solver, step_size: per-gap solver on the series' own clock s ∈ [0, 1]
            (default Euler, four steps per gap); rtol, atol for adaptive methods.
        Other arguments as :class:`LatentODE`.
    """

    _kind = "autoregressive"

    def __init__(
        self,
        cell: str = "odernn",
        hidden_dim: int = 32,
        hidden: int = 64,
        depth: int = 2,
        solver: str = "euler",
        rtol: float = 1e-3,
        atol: float = 1e-4,
        step_size: float | None = 0.25,
        adjoint: bool = False,
        lr: float = 1e-2,
        lr_decay: float = 0.99,
        batch_size: int = 16,
        train_task: str = "mixed",
        val_frac: float = 0.2,
        patience: int = 30,
        gradient_clip: float | None = 1.0,
        seed: int = 0,
    ):
        self.cell = cell
        self.hidden_dim = hidden_dim
        self.hidden = hidden
        self.depth = depth
        self.solver = solver
        self.rtol = rtol
        self.atol = atol
        self.step_size = step_size
        self.adjoint = adjoint
        self.lr = lr
        self.lr_decay = lr_decay
        self.batch_size = batch_size
        self.train_task = train_task
        self.val_frac = val_frac
        self.patience = patience
        self.gradient_clip = gradient_clip
        self.seed = seed

    kl_warmup_epochs = 0  # no KL term

    def _network_config(self, data: SeriesDataset) -> dict:
        return AutoregressiveConfig(
            n_channels=len(data.channels),
            cell=self.cell,
            hidden_dim=self.hidden_dim,
            hidden=self.hidden,
            depth=self.depth,
            solver=self._solver_config().to_dict(),
        ).to_dict()


_ESTIMATORS: dict[str, type[_SeriesEstimator]] = {"LatentODE": LatentODE, "ODERNN": ODERNN}

_COLUMN_KWARGS = (
    "id_col",
    "time_col",
    "format",
    "variable_col",
    "value_col",
    "channels",
    "static_cols",
    "label_col",
    "labels",
    "time_unit",
    "duplicates",
    "drop_empty",
)


def _pop_column_kwargs(kwargs: dict) -> dict:
    return {k: kwargs.pop(k) for k in list(kwargs) if k in _COLUMN_KWARGS}


def _as_dataset(
    data, what: str, column_kwargs: dict, expected_channels=None, ignore=()
) -> SeriesDataset:
    """A dataset, or a DataFrame read with ``column_kwargs``.

    With ``expected_channels`` (a fitted model's), a wide DataFrame must hold exactly those
    channel columns besides the id, time and static columns and the columns in ``ignore``
    (e.g. the label): a missing or an unknown column raises, so nothing is silently dropped.
    """
    if isinstance(data, SeriesDataset):
        return data
    if isinstance(data, pd.DataFrame):
        kwargs = dict(column_kwargs)
        if expected_channels is not None and "channels" not in kwargs:
            absent = [c for c in expected_channels if c not in data.columns]
            is_long = kwargs.get("format") == "long"
            roles = [kwargs.get("id_col"), kwargs.get("time_col"), *kwargs.get("static_cols", ())]
            known = {str(c) for c in (*expected_channels, *roles, *ignore) if c is not None}
            extra = [c for c in data.columns if str(c) not in known]
            if absent and not is_long:
                other = f" It has other column(s) {extra}: rename them." if extra else ""
                raise LatentODEError(
                    f"{what} is missing channel column(s) {absent}; the model was trained on "
                    f"{list(expected_channels)}.{other}"
                )
            if extra and not is_long:
                raise LatentODEError(
                    f"{what} has column(s) {extra} that the model was not trained on (its "
                    f"channels are {list(expected_channels)}); drop them first, e.g. "
                    f"df.drop(columns={extra!r}), so that no data is ignored unseen."
                )
            if not is_long:
                kwargs["channels"] = list(expected_channels)
        return from_dataframe(data, **kwargs)
    raise LatentODEError(
        f"{what} must be a latentode SeriesDataset or a pandas DataFrame, "
        f"got {type(data).__name__}."
    )


def _check_trainable(data: SeriesDataset, what: str) -> None:
    if len(data) == 0:
        raise LatentODEError(f"{what} has no series.")
    if all(len(s) < 2 for s in data):
        raise LatentODEError(
            f"every {what} series has fewer than 2 time points; a latent ODE needs series "
            "with several observations to learn dynamics."
        )


def _check_same_channels(data: SeriesDataset, channels, what: str) -> None:
    have, want = list(data.channels), list(channels)
    if have != want:
        missing = [c for c in want if c not in have]
        extra = [c for c in have if c not in want]
        detail = [f"missing {missing}"] if missing else []
        detail += [f"not in the model: {extra}"] if extra else []
        raise LatentODEError(
            f"{what} has channels {have} but the model uses {want} "
            f"({'; '.join(detail) or 'same names, other order'}); read the data with "
            f"channels={want} (in that order), or rename its channels."
        )


def _relabel_time_unit(data: SeriesDataset, axis: TimeAxis) -> SeriesDataset:
    return SeriesDataset(
        list(data),
        data.channels,
        axis,
        data.static_names,
        data.label_name,
        data.id_name,
        data.time_name,
        data.truth,
    )


def _fit_static_scaler(data: SeriesDataset) -> tuple[np.ndarray, np.ndarray] | None:
    if not data.static_names:
        return None
    static = np.stack([s.static for s in data])  # [N, S]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nan_to_num(np.nanmean(static, axis=0))
        std = np.nanstd(static, axis=0)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    return mean, std


def _times_to_user(axis: TimeAxis, times) -> np.ndarray | pd.DatetimeIndex:
    """Query times [N] (floats in ``axis.unit``) → the user's numbers or datetimes.

    ``TimeAxis.to_user`` rounds datetimes to the training data's resolution, which is
    right for the data but would move a requested 01:30 to 02:00 for hourly data: here
    the resolution is the coarsest one that still holds every requested time exactly.
    """
    times = np.asarray(times, dtype=np.float64)
    if not axis.is_datetime or times.size == 0:
        return axis.to_user(times)
    ns = times * UNIT_NANOSECONDS[axis.unit]  # since the origin
    tol = 0.5 + 8 * np.finfo(np.float64).eps * np.abs(ns)  # float error of the times
    for res in sorted(UNIT_NANOSECONDS, key=UNIT_NANOSECONDS.__getitem__, reverse=True):
        step = UNIT_NANOSECONDS[res]
        if np.all(np.abs(ns - np.round(ns / step) * step) <= tol):
            break
    return replace(axis, resolution=res).to_user(times)


def _id_array(ids: list) -> np.ndarray:
    arr = np.empty(len(ids), dtype=object)
    arr[:] = ids
    if ids and all(isinstance(i, (int, np.integer)) for i in ids):
        return arr.astype(np.int64)
    return arr


def _pct(q: float) -> str:
    return f"{q * 100:g}".replace(".", "_")


def _fingerprint(train: SeriesDataset, val: SeriesDataset | None) -> str:
    """A SHA-256 of the training and validation series (ids, times, values, statics, labels)."""
    digest = hashlib.sha256()
    for part in (train, val if val is not None else []):
        digest.update(b"|part|")
        for s in part:
            digest.update(repr(s.id).encode())
            for array in (s.times, s.values, s.static, s.label):
                if array is not None:
                    digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    return digest.hexdigest()


def _resume_point(log_dir: Path, resume: bool, hparams: dict) -> str | None:
    """The checkpoint ``fit`` resumes from (None: start afresh); refuses to overwrite a run."""
    from latentode.models.checkpoints import BEST, LAST, check_resumable, read_checkpoint

    folder = log_dir / "checkpoints"
    last = folder / LAST
    if not resume:
        if last.exists() or (folder / BEST).exists():
            raise LatentODEError(
                f"log_dir {log_dir} already holds a training run ({folder}); pass "
                "resume=True (CLI: --resume) to continue it, or choose another log_dir "
                "(CLI: --out) to start a new one."
            )
        return None
    if not last.exists():
        print(
            f"latentode: no checkpoint to resume in {folder}; training from the start.",
            file=sys.stderr,
        )
        return None
    check_resumable(read_checkpoint(last), last, hparams)
    return str(last)


def _report_interrupt(log_dir: Path, epoch: int, best: str) -> None:
    """Say where an interrupted run's checkpoints are, or re-raise if none was written."""
    last = log_dir / "checkpoints" / "last.ckpt"
    if not last.exists():
        print(
            f"latentode: training interrupted in epoch {epoch}, before any checkpoint was "
            "written; nothing to keep.",
            file=sys.stderr,
        )
        raise KeyboardInterrupt
    print(
        f"latentode: training interrupted in epoch {epoch}; the checkpoints of the last "
        f"complete epoch are kept: {last} (best: {best or last}). The model now holds the "
        f"best weights so far. To continue: fit(..., log_dir={str(log_dir)!r}, resume=True), "
        "or on the command line the same `latentode fit` with --resume.",
        file=sys.stderr,
    )


# ---- checks of predict's arguments ----------------------------------------------------------
_ARRAY_TYPES = (
    list,
    tuple,
    range,
    np.ndarray,
    pd.Series,
    pd.Index,
    pd.api.extensions.ExtensionArray,
)


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value) -> bool:
    """A real number (int or float, infinity allowed), not a bool and not NaN."""
    ok = isinstance(value, (int, float, np.integer, np.floating))
    return ok and not isinstance(value, (bool, np.bool_)) and not np.isnan(value)


def _check_positive_int(value, name: str) -> None:
    if not (_is_int(value) and value >= 1):
        raise LatentODEError(f"{name} must be a whole number >= 1, got {value!r}.")


def _check_quantiles(quantiles) -> tuple[float, ...] | None:
    """``quantiles`` → a tuple of floats in (0, 1), or None; anything else raises."""
    if quantiles is None:
        return None
    if isinstance(quantiles, (str, bytes, Mapping)) or not isinstance(quantiles, Iterable):
        raise LatentODEError(
            f"quantiles must be a list of numbers between 0 and 1, e.g. (0.05, 0.95), "
            f"got {quantiles!r}."
        )
    out = []
    for q in quantiles:
        if not (_is_real(q) and 0.0 < q < 1.0):
            raise LatentODEError(f"quantiles must lie strictly between 0 and 1, got {q!r}.")
        out.append(float(q))
    return tuple(out)


def _query_array(value, sid) -> np.ndarray:
    """One series' query times (an array, a list or one time) → a 1-d array; else raises."""
    where = f"times for series {sid!r}"
    if isinstance(value, (str, bytes)):
        raise LatentODEError(
            f"{where} is a single string ({value!r:.40}); pass a list of times, e.g. "
            f"[{value!r:.40}]."
        )
    if not (isinstance(value, _ARRAY_TYPES) or pd.api.types.is_scalar(value)) or value is None:
        raise LatentODEError(
            f"{where} must be an array or list of times (or one time), got "
            f"{type(value).__name__} {value!r:.60}."
        )
    try:
        arr = np.atleast_1d(np.asarray(value))
        shape = arr.shape
    except ValueError:  # ragged nested lists
        arr, shape = None, "ragged"
    if arr is None or arr.ndim != 1:
        raise LatentODEError(f"{where} must be a flat list of times, got shape {shape}.")
    kinds = {type(v) for v in arr} if arr.dtype == object else set()
    if arr.dtype.kind in "bc" or any(issubclass(k, (bool, np.bool_, complex)) for k in kinds):
        raise LatentODEError(
            f"{where} holds {'booleans' if arr.dtype.kind == 'b' else 'non-real values'} "
            f"({arr[:3].tolist()}...); pass real times."
        )
    return arr


def _from_user(axis: TimeAxis, values: np.ndarray, what: str) -> np.ndarray:
    """``axis.from_user`` with a clear error for datetimes nanoseconds cannot hold."""
    try:
        return axis.from_user(values, what)
    except (pd.errors.OutOfBoundsDatetime, OverflowError) as err:
        raise LatentODEError(
            f"{what}: a datetime lies outside the years 1678-2261 that pandas can hold in "
            f"nanoseconds ({str(err).splitlines()[0][:80]}); pass times in that range."
        ) from None


def _known_ids(ds: SeriesDataset) -> str:
    shown = ", ".join(repr(i) for i in ds.ids[:3])
    return (
        f" (the context's ids are e.g. {shown}; an id must match in type too: the text "
        "'7' is not the number 7)"
    )


def _check_horizon(
    ds: SeriesDataset, targets: list[Series], horizon: float, time_scale: float
) -> None:
    """Refuse query times beyond ``horizon`` training spans from a series' observed context,
    and contexts that span more than that (see ``predict``'s ``horizon``)."""
    unit, axis = ds.time_axis.unit, ds.time_axis
    limit = horizon * time_scale

    def show(t: float) -> str:
        user = _times_to_user(axis, np.array([t]))[0]
        return str(user) if axis.is_datetime else f"{float(user):g}"

    how = (
        f"horizon={horizon:g} training spans ({limit:.4g} {unit}; one span is the longest "
        f"training series, {time_scale:.4g} {unit})"
    )
    advice = "pass horizon= with a larger number (or None) to predict it anyway"
    for s, tgt in zip(ds, targets):
        seen = s.times[s.mask.any(axis=1)]
        lo, hi = float(seen[0]), float(seen[-1])
        if hi - lo > limit:
            raise LatentODEError(
                f"context series {s.id!r} spans {show(lo)} to {show(hi)}, "
                f"{(hi - lo) / time_scale:.3g} training spans, more than {how}. Check its "
                f"times for a wrong value, or {advice}."
            )
        if len(tgt):
            far = np.maximum(lo - tgt.times, tgt.times - hi)  # > 0 outside the context
            i = int(np.argmax(far))
            if far[i] > limit:
                side = "before" if tgt.times[i] < lo else "after"
                raise LatentODEError(
                    f"time {show(tgt.times[i])} for series {s.id!r} lies "
                    f"{far[i] / time_scale:.3g} training spans {side} its context "
                    f"({show(lo)} to {show(hi)}); predictions stop at {how}. Check the time, "
                    f"or {advice} (the solver's work grows with the distance)."
                )


def _convert_time_unit(data: SeriesDataset, unit: str) -> SeriesDataset:
    """A datetime dataset's float times → float times in ``unit`` (same instants)."""
    factor = UNIT_NANOSECONDS[data.time_axis.unit] / UNIT_NANOSECONDS[unit]
    return SeriesDataset(
        [replace(s, times=s.times * factor) for s in data],
        data.channels,
        replace(data.time_axis, unit=unit),
        data.static_names,
        data.label_name,
        data.id_name,
        data.time_name,
        data.truth,
    )


def _check_times_frame(times: pd.DataFrame, id_col: str, time_col: str) -> None:
    """A times DataFrame needs the id and time columns and an id on every row."""
    missing = [c for c in (id_col, time_col) if c not in times.columns]
    if missing:
        raise LatentODEError(
            f"the times DataFrame needs columns {id_col!r} and {time_col!r}; it has "
            f"{list(times.columns)}."
        )
    no_id = times[id_col].isna().to_numpy()
    if no_id.any():
        row = times.index[np.flatnonzero(no_id)[0]]
        row = row.item() if isinstance(row, np.generic) else row
        raise LatentODEError(
            f"the times DataFrame has no id in column {id_col!r} in the row with index "
            f"{row!r} ({int(no_id.sum())} row(s)); give every row the id of a context series."
        )
