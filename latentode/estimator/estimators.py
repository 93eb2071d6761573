"""The public estimators: parameters only, and the network each one builds.

:class:`LatentODE` and :class:`ODERNN` store their ``__init__`` arguments
(scikit-learn style) and say which network they train (``_kind``) and how it is
configured from the training data (``_network_config``); everything else is shared
(:class:`~latentode.estimator.base.SeriesEstimator`). :func:`load` reads a model file of
either kind.
"""

from __future__ import annotations

import os

from latentode.data.dataset import SeriesDataset
from latentode.data.scaling import LogScale
from latentode.errors import LatentODEError
from latentode.estimator.base import SeriesEstimator
from latentode.estimator.model_file import read_model_file
from latentode.models.latent_ode import LatentODEConfig
from latentode.models.odernn import AutoregressiveConfig


class LatentODE(SeriesEstimator):
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
        classify: learn the dataset's per-series label (``label_readout``; ``"auto"``: when the
            training data has labels).
        label_weight: weight of the label's negative log-likelihood (mean per labelled
            series) in the training loss, next to the bound per observed value. The 2019
            paper used 100; on 1,000 ``clinical`` stays that overfits the classifier and
            degrades z0 (test ROC AUC 0.65 at 100, 0.75 at 10, 0.79 at 1, MLP head on
            z0), and on 400 stays with the default head 0.1 beat 1 (0.788 against 0.752;
            0.79 from 0.01 to 0.1: see ``benchmarks/mortality.py``). Unused without a
            label.
        label_readout: the latent state the label is read from: ``"last"``, z at the
            end of the series' window (its last observation; z0 carried there by the
            latent dynamics), for outcomes after the window such as in-hospital death;
            ``"z0"``, the state at the series' clock origin (the paper's choice);
            ``"both"``, ``[z0, z_last]``. The head also reads the static covariates.
        label_hidden: the label head: 0, logistic regression on those features; k > 0,
            an MLP with one tanh layer of k units; None, such an MLP ``hidden`` wide.
        noise_std, learn_noise: initial observation-noise std per channel (scaled
            units) and whether training learns it.
        residual: after training, fit a residual process per channel (an
            Ornstein-Uhlenbeck or Matérn-3/2 Gaussian process in time, chosen and fitted
            on held-out series by the likelihood of what each context hid given what it
            saw) and condition every prediction on the context's residuals from the
            latent path: deviations that persist in time carry over to nearby query
            times, and fade back to the path far away.
            ``False``: the paper's model, with i.i.d. observation noise only.
        solver, rtol, atol, step_size, adjoint: the latent ODE solver (torchdiffeq
            method name; ``adjoint=True`` for constant-memory gradients).
        n_grid: read-out grid points over a batch's time span.
        dynamics: ``"ode"`` (the latent ODE) or ``"rnn"`` (a GRU steps z through the
            query times; with ``encoder="rnn"`` this is the RNN-VAE baseline of the paper).
        lr, lr_decay, kl_warmup_epochs: optimisation.
        horizon_warmup: a share of ``fit``'s ``max_epochs`` (0, the default: off). Over
            it, the points each training example is scored on widen from those within
            20% of the series' span of its context's first time to the whole series, by
            1/(share x max_epochs) of the span an epoch (0.3 of 100 epochs: the whole
            series from epoch 24). A latent ODE fitted to long oscillating series at once
            can settle on the wrong frequency and stay there: on spirals of 1.5 turns the
            best validation MSE was 0.48-0.55 over 3 seeds without it (the training mean
            scores about 1) and 0.008-0.021 with 0.3 (``benchmarks/horizon.py``). Not
            the default: on 19 real sets it changed interpolation errors little and made
            forecasts worse (geometric mean 1.10x at 0.1, 1.14x at 0.3, where one theoph
            fit also diverged), most of all the drug concentrations' (``benchmarks/
            RESULTS.md``, "Horizon warm-up").
        ema_decay: the weights kept are an exponential moving average of the weights
            after each optimiser step, ``avg <- d·avg + (1 - d)·w`` (Polyak averaging),
            and validation, early stopping and the best checkpoint use it; 0 turns it
            off. With 0.95 (about the last 20 steps) the errors on 39 real sets, 3
            seeds, were 0.966x (interpolation) and 0.909x (forecasts) those without, in
            geometric mean (``benchmarks/RESULTS.md``, "Weight averaging").
        origin: where each series' latent clock starts, the time whose state z0 the
            encoder infers and from which the decoder runs. ``"shared"``: when the
            training series start together (half of them within a quarter of the
            longest span of the earliest start), that earliest time (the 2019 model's
            choice: its clock started at the first time of the whole grid) for a series
            whose first context time is at most the longest training span after it,
            else that first context time; series in calendar time that start apart keep
            their own clocks.
            ``"context"``: each series' first context time, so points before it are
            reached by running the latent ODE backwards. With ``"shared"`` a context
            that misses a series' first points still has its origin before them, and
            series aligned at a common start (a dose, a birth) infer the state at the
            same moment: on 39 real sets (3 seeds) the errors were 0.927x
            (interpolation) and 1.009x (forecasts) those of ``"context"`` in geometric
            mean (``benchmarks/RESULTS.md``, "A shared clock origin").
        batch_size: series per batch.
        train_task: ``"mixed"``, ``"interp"`` or ``"extrap"``: how training contexts hide points.
        val_frac: share of the training series held out for early stopping when
            ``fit`` gets no ``val``.
        patience: epochs without validation improvement before stopping.
        gradient_clip: gradient-norm clip value (None: off).
        log_scale: which channels to model on the log scale: ``log(value)`` is
            standardised, and predictions come back in the user's units (the mean and std
            of the log-normal mixture, its quantiles exactly, intervals calibrated
            multiplicatively around the median); such a channel refuses values <= 0.
            ``False`` (default): none; ``True``: all; a list of channel names; or
            ``"auto"``: each channel whose training values are all positive and strongly
            right-skewed (skewness >= 2) while their logarithms are nearly symmetric
            (|skewness| <= 1). Not the default because on six real sets with such
            channels it helped some (remifentanil forecasts 0.25 -> 0.02 of the last
            value's error) and hurt others (grunfeld interpolation 0.91 -> 1.50 of linear
            interpolation's): the squared error in the user's units weighs the large
            values, which a fit on the log scale weighs no more than the small ones
            (``benchmarks/RESULTS.md``, "Log-scale channels").
        seed: seeds the split, the training and the default prediction samples.
        threads: torch intra-op CPU threads for ``fit`` and every query method (set for
            the call, the caller's count restored afterwards). None: the thread policy,
            1 thread. These models are small, so per-op overhead dominates and a second
            thread gains little, while next to another busy process it collapses: on 2
            cores the clinical training step at the 2019 paper's size took 0.13 s idle
            and 1.67 s (12.9x) beside one CPU-bound process with torch's default 2
            threads, and 0.137 s idle, 0.135 s busy with 1 thread (``predict`` alike).
            Under the policy a large query (from about 60 series x 100 times at the
            default 32 samples) looks for idle cores just before its network passes and
            uses up to 2 threads where it finds them (see
            :mod:`latentode.estimator.threads`). An int overrides the policy (e.g. a
            large model on an idle many-core machine). CUDA work does not use these
            threads.
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
        label_weight: float = 0.1,
        label_readout: str = "last",
        label_hidden: int | None = 0,
        noise_std: float = 0.1,
        learn_noise: bool = True,
        residual: bool = True,
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
        horizon_warmup: float = 0.0,
        ema_decay: float = 0.95,
        origin: str = "shared",
        batch_size: int = 16,
        train_task: str = "mixed",
        val_frac: float = 0.2,
        patience: int = 30,
        gradient_clip: float | None = 1.0,
        log_scale: LogScale = False,
        seed: int = 0,
        threads: int | None = None,
    ):
        self.latent_dim = latent_dim
        self.encoder = encoder
        self.encoder_hidden = encoder_hidden
        self.hidden = hidden
        self.depth = depth
        self.n_samples = n_samples
        self.poisson = poisson
        self.classify = classify
        self.label_weight = label_weight
        self.label_readout = label_readout
        self.label_hidden = label_hidden
        self.noise_std = noise_std
        self.learn_noise = learn_noise
        self.residual = residual
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
        self.horizon_warmup = horizon_warmup
        self.ema_decay = ema_decay
        self.origin = origin
        self.batch_size = batch_size
        self.train_task = train_task
        self.val_frac = val_frac
        self.patience = patience
        self.gradient_clip = gradient_clip
        self.log_scale = log_scale
        self.seed = seed
        self.threads = threads

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
            label_weight=self.label_weight,
            label_readout=self.label_readout,
            classifier_hidden=self.label_hidden,
            solver=self._solver_config().to_dict(),
            n_grid=self.n_grid,
            dynamics=self.dynamics,
        ).to_dict()


class ODERNN(SeriesEstimator):
    """ODE-RNN (Rubanova et al. 2019) as a standalone autoregressive predictor.

    Reads each series forwards; to predict at time t it carries the hidden state from
    the last observation before t by a neural ODE (or, with ``cell="gru_dt"``, keeps
    it and gives the decoder the gap: the GRU-Δt baseline) and decodes a Gaussian
    mean and std. Same ``fit``/``predict``/``evaluate``/``save`` as :class:`LatentODE`;
    its std is the decoder's (one deterministic path, no posterior samples).

    Args:
        cell: ``"odernn"`` or ``"gru_dt"``.
        hidden_dim: GRU state size. hidden, depth: MLP width and hidden layers.
        solver, step_size: per-gap solver on the series' own clock s ∈ [0, 1]
            (default Euler, four steps per gap); rtol, atol for adaptive methods.
        Other arguments (``threads``, the thread policy, included) as :class:`LatentODE`.
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
        log_scale: LogScale = False,
        seed: int = 0,
        threads: int | None = None,
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
        self.log_scale = log_scale
        self.seed = seed
        self.threads = threads

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


ESTIMATORS: dict[str, type[SeriesEstimator]] = {"LatentODE": LatentODE, "ODERNN": ODERNN}


#: What a parameter meant in model files written before it existed: a file without the
#: key was fitted that way, and ``get_params()`` of the loaded model must say so.
PARAMS_BEFORE_THEY_EXISTED: dict[str, dict] = {
    "LatentODE": {
        "residual": False,  # no residual process
        "label_weight": 1.0,
        "label_readout": "z0",
        "label_hidden": None,  # the tanh MLP head
    },
}


def load(path: str | os.PathLike) -> SeriesEstimator:
    """A fitted :class:`LatentODE` or :class:`ODERNN` from a file written by ``save``,
    with every fitted attribute (``history_`` included); nothing in the file is executed.

    Raises:
        LatentODEError: for a missing, truncated, corrupt or foreign file, or one written
            by an estimator this latentode does not know.
    """
    name, params, state = read_model_file(path)
    cls = ESTIMATORS.get(name)
    if cls is None:
        raise LatentODEError(
            f"{path} holds an unknown estimator {name!r}; this latentode knows "
            f"{sorted(ESTIMATORS)}."
        )
    params = {**PARAMS_BEFORE_THEY_EXISTED.get(name, {}), **params}
    try:
        model = cls(**params)
    except TypeError as err:
        raise LatentODEError(
            f"{path} does not match this latentode version's model ({err})."
        ) from None
    return model._adopt(state)
