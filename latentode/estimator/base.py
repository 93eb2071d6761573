"""What every latentode estimator shares: thin public methods over the pipelines.

``fit`` runs :mod:`~latentode.estimator.fitting`; the query methods run the prediction
pipeline (:mod:`~latentode.estimator.prediction`) and one summary
(:mod:`~latentode.estimator.summaries`); ``evaluate`` and ``score`` run the hold-out
evaluation (:mod:`~latentode.estimator.evaluation`); ``save`` and ``load`` the model
file (:mod:`~latentode.estimator.model_file`). Every method that computes runs with the
estimator's torch thread count (``threads``; :mod:`~latentode.estimator.threads`) and
gives the caller's count back when it returns.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator

from latentode.data.columns import ColumnSpec
from latentode.data.dataset import SeriesDataset
from latentode.errors import LatentODEError
from latentode.estimator import evaluation, summaries
from latentode.estimator.chunks import query_chunks
from latentode.estimator.fitting import fit_state
from latentode.estimator.model_file import FittedState, write_model_file
from latentode.estimator.prediction import Draws, batches, draw
from latentode.estimator.queries import check_quantiles, query_targets
from latentode.estimator.threads import with_thread_policy
from latentode.estimator.training_run import RunSettings
from latentode.models import ADAPTIVE_METHODS, SolverConfig

#: predict/evaluate keyword → SolverConfig field, for per-call solver overrides
_SOLVER_OVERRIDES = {
    "solver": "method",
    "rtol": "rtol",
    "atol": "atol",
    "step_size": "step_size",
    "adjoint": "adjoint",
}
_Data = SeriesDataset | pd.DataFrame

#: posterior samples per series that ``predict``, ``predict_stream``, ``evaluate`` and
#: ``score`` (and the CLI) draw unless told otherwise: 32, in antithetic pairs. Against
#: 4,000 draws (``benchmarks/sampling_error.py``: five real and generated sets,
#: interpolation and forecasts), their mean lies within 0.01-0.09 predictive stds of its
#: limit and their 5%/95% quantiles within 0.02-0.13; 100 independent draws with sampled
#: noise (the default before) put the quantiles 0.15-0.24 stds off, at three times the
#: cost.
PREDICT_SAMPLES = 32


class SeriesEstimator(BaseEstimator):
    """The shared base of :class:`~latentode.LatentODE` and :class:`~latentode.ODERNN`.

    Subclasses define ``__init__`` (parameters only), ``_kind`` (the network registry
    name) and ``_network_config(data)``.
    """

    _kind: str

    # ---- fit ----------------------------------------------------------------------
    @with_thread_policy
    def fit(
        self,
        train: _Data,
        val: _Data | None = None,
        max_epochs: int = 100,
        accelerator: str = "auto",
        devices: int | str = "auto",
        log_dir: str | os.PathLike | None = None,
        progress_bar: bool = True,
        resume: bool = False,
        **trainer_kwargs,
    ) -> SeriesEstimator:
        """Train on ``train`` (a dataset, or a DataFrame read with ``id_col=``/``time_col=``...).

        An epoch is one training-task example (a fresh context) of every training
        series, or :data:`~latentode.data.datamodule.MIN_EPOCH_EXAMPLES` (32) examples
        of fewer series, each series several times, so that small sets get more than
        one optimiser step per epoch.

        Without ``val``, a seeded ``val_frac`` share of the training series is held out
        for early stopping and checkpoint selection (logged at INFO level by the
        ``latentode`` logger). Logs and checkpoints (``checkpoints/best.ckpt`` and
        ``last.ckpt``, rewritten atomically after every epoch) go to ``log_dir`` (a new
        temporary folder by default; see ``log_dir_``); a ``log_dir`` that already holds
        a run is refused unless ``resume=True``. Extra keyword arguments go to
        ``lightning.Trainer`` (column arguments such as ``id_col=`` go to
        :func:`latentode.from_dataframe`); ``callbacks=`` are added to fit's own
        checkpoint and early-stopping callbacks.

        ``resume=True`` continues the run in ``log_dir`` from its last complete epoch
        (after a crash, a kill or Ctrl-C); with the same data and parameters it ends
        with the same weights as a run that was never stopped (on CPU). Without a
        checkpoint there, training starts from the beginning (with a logged warning).

        Ctrl-C stops training cleanly: the checkpoints of the last complete epoch stay,
        a logged warning says where, and fit returns with the best weights so far and
        ``interrupted_ = True``.

        Returns:
            self, with ``history_`` (per-epoch metrics), ``scaler_``, ``channels_``,
            ``best_checkpoint_``, ``interval_scale_`` (per-channel factor applied to
            predicted stds and quantile intervals, calibrated on held-out points of the
            validation and training series so that 90% intervals cover 90%) and the
            trained network ``network_``: the fields of
            :class:`~latentode.estimator.FittedState`.

        Raises:
            LatentODEError: unusable data or parameters, a channel named like another
                channel's output column (``x_std`` beside ``x``), a channel whose values
                cannot be scaled, a ``log_dir`` that holds another run, or a bad
                ``threads`` (raised by every method that computes).
        """
        columns = ColumnSpec.of(**ColumnSpec.take(trainer_kwargs))
        settings = RunSettings(
            max_epochs=max_epochs,
            accelerator=accelerator,
            devices=devices,
            progress_bar=progress_bar,
            gradient_clip=self.gradient_clip,
            patience=self.patience,
            trainer_kwargs=trainer_kwargs,
            ema_decay=getattr(self, "ema_decay", 0.0),  # ODERNN: none
        )
        state = fit_state(self, train, val, settings, log_dir, resume, columns)
        return self._adopt(state)

    def _adopt(self, state: FittedState) -> SeriesEstimator:
        """Show ``state`` as this estimator's fitted attributes."""
        for name, value in state.attributes().items():
            setattr(self, name, value)
        return self

    def _solver_config(self, **override) -> SolverConfig:
        unknown = sorted(set(override) - set(_SOLVER_OVERRIDES))
        if unknown:
            raise LatentODEError(
                f"unknown solver option(s) {unknown}; predict and evaluate take "
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

    def _draw(
        self,
        context,
        times,
        n_samples,
        seed,
        batch_size=256,
        horizon=10.0,
        antithetic=True,
        **override,
    ) -> tuple[FittedState, Draws]:
        """The fitted state and the prediction pipeline's draws for one call: antithetic
        pairs of z0 draws for the methods that summarise samples (mean, std, quantiles,
        probabilities), independent ones for :meth:`sample`, which returns them. Under
        the thread policy (``threads=None``) a large call may use idle cores."""
        state = FittedState.of(self)
        solver = self._solver_config(**override) if override else None
        seed = self.seed if seed is None else seed
        out = draw(
            state,
            context,
            times,
            n_samples=n_samples,
            seed=seed,
            batch_size=batch_size,
            solver=solver,
            horizon=horizon,
            antithetic=antithetic,
            widen=self.threads is None,
        )
        return state, out

    # ---- prediction -----------------------------------------------------------------
    @with_thread_policy
    def predict(
        self,
        context: _Data,
        times=None,
        n_samples: int = PREDICT_SAMPLES,
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
            n_samples: posterior samples of z0 per series (:data:`PREDICT_SAMPLES`),
                drawn in antithetic pairs; the mean, std and quantiles are those of the
                Gaussian mixture they define (each sample's prediction and its noise).
            quantiles: e.g. ``(0.05, 0.95)`` adds ``<c>_q5`` and ``<c>_q95`` columns.
            seed: seeds the samples (default: the estimator's seed), per series: a
                series' draws depend on the seed and its id only, so it gets the same
                prediction alone, in any batch, order or chunk (up to the solver's
                tolerance: the series of a batch share one solve).
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
            ``df.attrs["nfe"]`` holds the solver's function evaluations and
            ``df.attrs["threads"]`` the torch threads its network passes used (the
            policy's 1, or more on idle cores for a large call: ``threads``).

        Raises:
            LatentODEError: an unusable context or times (unknown ids, other channels,
                times of the wrong kind, NaN/inf, beyond ``horizon``) or argument.
        """
        quantiles = check_quantiles(quantiles)
        state, draws = self._draw(
            context, times, n_samples, seed, batch_size, horizon, **solver_override
        )
        return summaries.predictive_summary(state, draws, quantiles)

    def predict_stream(
        self,
        contexts: Iterable[_Data] | _Data,
        times=None,
        n_samples: int = PREDICT_SAMPLES,
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
            seed: every chunk is predicted with ``seed`` (default: the estimator's).
                Draws are seeded per series (by the seed and the series' id), so a
                series gets the same samples whatever chunk it lands in, and a run
                repeats exactly.
            n_samples, quantiles, batch_size, horizon, solver_override: as in
                :meth:`predict`.

        Each chunk runs through :meth:`predict`, with its thread count (``threads``);
        between chunks the caller's count holds.

        Yields:
            Per chunk, the DataFrame :meth:`predict` returns for that chunk's series and
            seed (``attrs["nfe"]`` included).
        """
        schema = FittedState.of(self).schema
        seed = self.seed if seed is None else seed
        for ds, chunk_times in query_chunks(schema, contexts, times, series_per_chunk):
            yield self.predict(
                ds,
                chunk_times,
                n_samples=n_samples,
                quantiles=quantiles,
                seed=seed,
                batch_size=batch_size,
                horizon=horizon,
                **solver_override,
            )

    @with_thread_policy
    def sample(
        self,
        context: _Data,
        times=None,
        n_samples: int = 10,
        seed: int | None = None,
        with_noise: bool = False,
        batch_size: int = 256,
        horizon: float | None = 10.0,
        **solver_override,
    ) -> pd.DataFrame:
        """Posterior trajectory samples: one row per (id, time, sample) with a column per
        channel, in original units. With a residual process (``residual=True``) each
        trajectory is its latent path plus the residual's conditional mean given the
        context. ``with_noise=True`` adds independent Gaussian noise at each time: the
        observation noise (with a residual process: the residual's conditional std,
        which does not correlate the noise across times). ``horizon``: as :meth:`predict`."""
        state, draws = self._draw(
            context, times, n_samples, seed, batch_size, horizon, False, **solver_override
        )
        return summaries.sample_rows(state, draws, with_noise)

    @with_thread_policy
    def latent(
        self,
        context: _Data,
        times=None,
        n_samples: int = 20,
        seed: int | None = None,
        horizon: float | None = 10.0,
    ) -> pd.DataFrame:
        """Latent trajectories z(t) given the observed ``context`` (models with a latent
        state: :class:`~latentode.LatentODE`).

        Args:
            context, times, seed, horizon: as in :meth:`predict`.
            n_samples: posterior samples of z0 per series; z(t) is summarised over them.

        Returns:
            DataFrame with the id and time columns, ``z0`` ... ``z{L-1}`` (the mean of
            z(t) over the samples) and ``z0_std`` ... (their std), one row per query time.

        Raises:
            LatentODEError: for a model without a latent path (ODERNN), or bad input.
        """
        state = FittedState.of(self)
        if state.kind != "latent_ode":
            raise LatentODEError(
                f"latent() needs a model with a latent state z(t) (LatentODE), not "
                f"{type(self).__name__}."
            )
        state, draws = self._draw(context, times, n_samples, seed, 256, horizon)
        return summaries.latent_rows(state, draws)

    @with_thread_policy
    def encode(self, context: _Data) -> pd.DataFrame:
        """Posterior q(z0 | context) per series: columns ``z0_<k>`` (mean) and ``z0_<k>_std``."""
        state = FittedState.of(self)
        ds = state.schema.conform(context)
        targets = query_targets(
            ds, None, state.schema.id_name, state.schema.time_name, state.scaler
        )
        means, stds = [], []
        with torch.no_grad():
            for _, batch in batches(state, ds, targets, 256):
                mean, std = state.network.encode(batch)  # [B, L] each
                means.append(mean.numpy())
                stds.append(std.numpy())
        return summaries.posterior_frame(state, ds.ids, np.concatenate(means), np.concatenate(stds))

    @with_thread_policy
    def intensity(
        self,
        context: _Data,
        times=None,
        n_samples: int = 20,
        seed: int | None = None,
        horizon: float | None = 10.0,
    ) -> pd.DataFrame:
        """Expected observation rate per channel (Poisson models only), in events per
        time unit of the data, averaged over posterior samples: columns ``<c>``.
        ``horizon``: as :meth:`predict`."""
        if getattr(FittedState.of(self).network, "intensity", None) is None:
            raise LatentODEError("this model has no Poisson head; fit with poisson=True.")
        state, draws = self._draw(context, times, n_samples, seed, 256, horizon)
        return summaries.intensity_rows(state, draws)

    @with_thread_policy
    def predict_proba(
        self, context: _Data, n_samples: int = 20, seed: int | None = None
    ) -> pd.DataFrame:
        """Probability of the fitted label (e.g. mortality) per series: columns id, ``p``."""
        if getattr(FittedState.of(self).network, "classifier", None) is None:
            raise LatentODEError(
                "this model was not fitted with labels; read the data with label_col= or "
                "labels= and fit with classify=True."
            )
        state, draws = self._draw(context, None, n_samples, seed)
        return summaries.label_probabilities(state, draws)

    # ---- evaluation -----------------------------------------------------------------
    @with_thread_policy
    def evaluate(
        self,
        data: _Data,
        task: str = "interp",
        frac: float = 0.5,
        n_samples: int = PREDICT_SAMPLES,
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
        from sklearn.metrics import roc_auc_score

        ds = FittedState.of(self).schema.conform(data, "data")
        seed = self.seed if seed is None else seed
        context, target = evaluation.task_split(ds, task, frac, seed)
        held_out = evaluation.predict_held_out(
            self, context, target, n_samples, seed, **solver_override
        )
        out = evaluation.metrics(held_out)
        if getattr(self.network_, "classifier", None) is not None and ds.has_labels:
            labelled = [s for s in ds if s.label is not None]
            y_true = np.array([s.label for s in labelled])
            if len(np.unique(y_true)) == 2:
                proba = self.predict_proba(ds.with_series(labelled), seed=seed)["p"].to_numpy()
                out["roc_auc"] = float(roc_auc_score(y_true, proba))
        return out

    @with_thread_policy
    def score(
        self,
        data: _Data,
        y=None,
        task: str = "interp",
        frac: float = 0.5,
        n_samples: int = PREDICT_SAMPLES,
        seed: int | None = None,
        **solver_override,
    ) -> float:
        """Negative mean squared error of the hidden points, in the data's units (higher
        is better), as scikit-learn's model selection (``GridSearchCV``,
        ``cross_val_score``) expects of ``score``.

        ``y`` is ignored (scikit-learn passes None); the other arguments are those of
        :meth:`evaluate`, which gives this and the other metrics as a dict.
        """
        return -self.evaluate(data, task, frac, n_samples, seed, **solver_override)["mse"]

    # ---- persistence ----------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted state to one file, atomically: safetensors weights and a JSON
        header (parameters, scalers, channels, time axis, history...). No pickle."""
        state = FittedState.of(self)
        return write_model_file(path, state, type(self).__name__, self.get_params())

    @classmethod
    def load(cls, path: str | os.PathLike) -> SeriesEstimator:
        """Read a model file written by :meth:`save`; nothing in it is executed.

        Raises:
            LatentODEError: for a file of another estimator (use :func:`latentode.load`,
                which reads either), or a missing, corrupt or foreign file.
        """
        from latentode.estimator.estimators import load

        model = load(path)
        if not isinstance(model, cls):
            name = type(model).__name__
            raise LatentODEError(
                f"{path} holds a {name} model; load it with {name}.load() or latentode.load()."
            )
        return model
