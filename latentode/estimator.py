"""The front door: scikit-learn style estimators with pandas in and out.

``LatentODE(...)`` stores parameters; ``fit`` validates the data, fits the scaler on
the training series only, trains with Lightning and returns ``self``; ``predict``
interpolates and forecasts with uncertainty in the user's own units; ``save`` and
``load`` use one safetensors file with a JSON header (no pickle).
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Mapping
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
        **trainer_kwargs,
    ) -> _SeriesEstimator:
        """Train on ``train`` (a dataset, or a DataFrame read with ``id_col=``/``time_col=``...).

        Without ``val``, a seeded ``val_frac`` share of the training series is held out
        for early stopping and checkpoint selection (a message says how many). Logs
        and checkpoints go to ``log_dir`` (a new temporary folder by default; see
        ``log_dir_``). Extra keyword arguments go to ``lightning.Trainer`` (column
        arguments such as ``id_col=`` go to :func:`latentode.from_dataframe`);
        ``callbacks=`` are added to fit's own checkpoint and early-stopping callbacks.

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
        from latentode.models.training import OptimConfig, TrainingModule

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
        L.seed_everything(self.seed, verbose=False)
        module = TrainingModule(self._kind, config, optim)
        datamodule = SeriesDataModule(
            train,
            scaler,
            val=val,
            batch_size=self.batch_size,
            task=TaskConfig(task=self.train_task),
            static_scaler=static_scaler,
            seed=self.seed,
        )
        log_dir = (
            Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="latentode-"))
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
        callbacks = [checkpoint, *user_callbacks]  # the user's run alongside fit's own
        if val is not None and self.patience:
            callbacks.append(EarlyStopping(monitor=monitor, patience=self.patience, mode="min"))
        trainer_args = {
            "max_epochs": max_epochs,
            "accelerator": accelerator,
            "devices": devices,
            "gradient_clip_val": self.gradient_clip,
            "callbacks": callbacks,
            "logger": CSVLogger(str(log_dir), name="logs", version=""),
            "enable_progress_bar": progress_bar,
            "enable_model_summary": False,
            "num_sanity_val_steps": 0,
            "log_every_n_steps": 1,
            "default_root_dir": str(log_dir),
        }
        if val is None:
            trainer_args["limit_val_batches"] = 0
        trainer_args.update(trainer_kwargs)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*does not have many workers.*")
            warnings.filterwarnings("ignore", ".*Checkpoint directory.*exists.*")
            warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
            trainer = L.Trainer(**trainer_args)
            trainer.fit(module, datamodule=datamodule)

        best = checkpoint.best_model_path
        if best and Path(best).exists():
            state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
            module.load_state_dict(state)
        self.network_ = module.net.cpu().eval()
        self.kind_ = self._kind
        self.config_ = config
        self.scaler_ = scaler
        self.static_scaler_ = static_scaler
        self._set_data_meta(train)
        self.log_dir_ = str(log_dir)
        self.best_checkpoint_ = best or None
        self.history_ = _read_history(log_dir / "logs")
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
        kwargs = {"id_col": self.id_name_, "time_col": self.time_name_}
        if self.static_names_:
            kwargs["static_cols"] = self.static_names_
        ds = _as_dataset(context, what, kwargs, expected_channels=self.channels_)
        _check_same_channels(ds, self.channels_, what)
        if ds.time_axis.is_datetime != self.time_axis_.is_datetime:
            kind = "datetimes" if self.time_axis_.is_datetime else "numbers"
            raise LatentODEError(
                f"{what} times must be {kind} like the training data's, not "
                f"{'datetimes' if ds.time_axis.is_datetime else 'numbers'}."
            )
        if not ds.time_axis.is_datetime and ds.time_axis.unit != self.time_axis_.unit:
            ds = _relabel_time_unit(ds, self.time_axis_)
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

    def _targets(self, ds: SeriesDataset, times) -> list[Series]:
        """The query times per series, as empty Series (float times in the dataset's unit)."""
        n_c = len(self.channels_)
        axis = ds.time_axis

        def query(sid, t_user) -> Series:
            t_user = np.atleast_1d(np.asarray(t_user))
            if t_user.size == 0:  # a dict or frame of times that leaves this series out
                t = np.zeros(0)
            else:
                t = np.unique(axis.from_user(t_user, f"times for {sid!r}"))
            if np.isnan(t).any() or np.isinf(t).any():
                raise LatentODEError(
                    f"times for series {sid!r} contain missing or infinite values."
                )
            empty = np.full((len(t), n_c), np.nan)
            return Series(sid, t, empty, np.zeros((len(t), n_c), dtype=bool))

        if times is None:
            return [query(s.id, axis.to_user(s.times)) for s in ds]
        if isinstance(times, pd.DataFrame):
            id_col, time_col = self.id_name_, self.time_name_
            missing = [c for c in (id_col, time_col) if c not in times.columns]
            if missing:
                raise LatentODEError(
                    f"the times DataFrame needs columns {id_col!r} and {time_col!r}; it has "
                    f"{list(times.columns)}."
                )
            groups = {k: g[time_col].to_numpy() for k, g in times.groupby(id_col, sort=False)}
            unknown = [k for k in groups if k not in set(ds.ids)]
            if unknown:
                raise LatentODEError(
                    f"the times DataFrame has ids not in the context: {unknown[:5]}."
                )
            return [query(s.id, groups.get(s.id, [])) for s in ds]
        if isinstance(times, Mapping):
            unknown = [k for k in times if k not in set(ds.ids)]
            if unknown:
                raise LatentODEError(f"times has ids not in the context: {unknown[:5]}.")
            return [query(s.id, times.get(s.id, [])) for s in ds]
        return [query(s.id, times) for s in ds]

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

        Returns:
            DataFrame with the id and time columns, and per channel ``<c>`` (mean) and
            ``<c>_std`` (std, incl. observation noise), in original units.
            ``df.attrs["nfe"]`` holds the solver's function evaluations.
        """
        draws = self._draw(context, times, n_samples, seed, batch_size, solver_override)
        return self._summarise(draws, quantiles)

    def _draw(self, context, times, n_samples, seed, batch_size, solver_override):
        ds = self._context(context)
        if n_samples < 1:
            raise LatentODEError(f"n_samples must be at least 1, got {n_samples}.")
        targets = self._targets(ds, times)
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
        **solver_override,
    ) -> pd.DataFrame:
        """Posterior trajectory samples: one row per (id, time, sample) with a column per
        channel, in original units (``with_noise=True`` adds observation noise)."""
        ds, chunks, nfe, gen = self._draw(
            context, times, n_samples, seed, batch_size, solver_override
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
    ) -> pd.DataFrame:
        """Expected observation rate per channel (Poisson models only), in events per
        time unit of the data, averaged over posterior samples: columns ``<c>``."""
        self._check_fitted()
        if getattr(self.network_, "intensity", None) is None:
            raise LatentODEError("this model has no Poisson head; fit with poisson=True.")
        ds, chunks, _, _ = self._draw(context, times, n_samples, seed, 256, {})
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


def _as_dataset(data, what: str, column_kwargs: dict, expected_channels=None) -> SeriesDataset:
    if isinstance(data, SeriesDataset):
        return data
    if isinstance(data, pd.DataFrame):
        kwargs = dict(column_kwargs)
        if expected_channels is not None and "channels" not in kwargs:
            absent = [c for c in expected_channels if c not in data.columns]
            is_long = kwargs.get("format") == "long"
            if absent and not is_long:
                raise LatentODEError(
                    f"{what} is missing channel column(s) {absent}; the model was trained on "
                    f"{list(expected_channels)}."
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
    if list(data.channels) != list(channels):
        raise LatentODEError(
            f"{what} has channels {list(data.channels)} but the model uses {list(channels)}; "
            "pass channels= in that order when reading the data."
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


def _read_history(log_dir: Path) -> pd.DataFrame:
    """Per-epoch metrics from the CSV logger (one row per epoch)."""
    files = sorted(log_dir.rglob("metrics.csv"))
    if not files:
        return pd.DataFrame()
    raw = pd.read_csv(files[-1])
    if "epoch" not in raw.columns:
        return raw
    return raw.groupby("epoch").mean(numeric_only=True).reset_index()
