"""The prediction pipeline: context → query targets → batches → network samples.

Every query method (``predict``, ``sample``, ``latent``, ``intensity``,
``predict_proba``) runs :func:`draw` once and then summarises its :class:`Draws`
(:mod:`latentode.estimator.summaries`). The stages are separate functions so that one
can be inserted between them (e.g. a post-processing step on the samples):

1. :meth:`DataSchema.conform <latentode.data.schema.DataSchema.conform>`: the context as
   a dataset on the model's channels and time unit;
2. :func:`~latentode.estimator.queries.query_targets`: the query times per series;
3. :func:`batches`: padded, scaled tensors (the data layer's ``collate``);
4. :func:`sample_network`: posterior draws at the query times, in scaled units (each
   path conditioned on its context's residuals when the model has a residual process).

Random draws are seeded per series (:mod:`~latentode.estimator.seeding`): a series'
samples depend on the seed and its id, not on the batches, chunks or partitions it is
predicted in (its values still move within the solver's tolerance, since the series of
a batch share one solve).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from latentode.data.batching import Batch, collate
from latentode.data.dataset import Series, SeriesDataset
from latentode.estimator.model_file import FittedState
from latentode.estimator.queries import (
    check_horizon_value,
    check_positive_int,
    check_seed,
    query_targets,
)
from latentode.estimator.seeding import SeriesRandom
from latentode.estimator.threads import widen_if_idle
from latentode.models import SolverConfig, nfe_counter


@dataclass(frozen=True)
class Draws:
    """Network samples at each context series' query times (scaled units).

    Attributes:
        context: the conformed context.
        chunks: per batch, its target series and the network's outputs (``mean``
            [S, B, T', C], ``noise_std`` [C] (with a residual process [B, T', C]), ``z``
            [S, B, T', L], and ``log_intensity``, ``label_logits`` where the network has
            them).
        nfe: the solver's function evaluations over every batch (None: not counted).
        random: the call's per-series random streams (z0 came from their ``"z0"``
            streams; ``sample(with_noise=True)`` draws observation noise from their
            ``"noise"`` streams).
        threads: the torch intra-op thread count the network passes ran with.
    """

    context: SeriesDataset
    chunks: list[tuple[list[Series], dict[str, torch.Tensor]]]
    nfe: int | None
    random: SeriesRandom
    threads: int = 1

    def outputs(self, key: str) -> Iterator[tuple[list[Series], torch.Tensor]]:
        """Per batch: its targets and the output ``key``."""
        for targets, out in self.chunks:
            yield targets, out[key]


def draw(
    state: FittedState,
    context,
    times,
    *,
    n_samples: int,
    seed: int,
    batch_size: int = 256,
    solver: SolverConfig | None = None,
    horizon: float | None = 10.0,
    antithetic: bool = False,
    widen: bool = False,
) -> Draws:
    """Run the pipeline on ``context`` (a dataset or DataFrame) at ``times`` (any form
    :func:`~latentode.estimator.queries.query_targets` takes); ``antithetic``: as in
    :func:`sample_network`. ``widen``: the call runs under the thread policy, so a large
    one may give its network passes a thread per idle core
    (:func:`~latentode.estimator.threads.widen_if_idle`)."""
    check_positive_int(n_samples, "n_samples")
    check_positive_int(batch_size, "batch_size")
    check_seed(seed)
    check_horizon_value(horizon)
    ds = state.schema.conform(context)
    targets = query_targets(
        ds, times, state.schema.id_name, state.schema.time_name, state.scaler, horizon
    )
    if widen:
        widen_if_idle(n_samples * sum(len(t.times) for t in targets))
    return sample_network(state, ds, targets, n_samples, seed, batch_size, solver, antithetic)


def batches(
    state: FittedState, ds: SeriesDataset, targets: list[Series], batch_size: int
) -> Iterator[tuple[list[Series], Batch]]:
    """Per ``batch_size`` series: their targets and the padded, scaled :class:`Batch`."""
    for start in range(0, len(ds), batch_size):
        part = targets[start : start + batch_size]
        context = list(ds[start : start + batch_size])
        yield part, collate(context, state.scaler, part, state.static_scaler)


def sample_network(
    state: FittedState,
    ds: SeriesDataset,
    targets: list[Series],
    n_samples: int,
    seed: int,
    batch_size: int = 256,
    solver: SolverConfig | None = None,
    antithetic: bool = False,
) -> Draws:
    """``n_samples`` posterior draws per series at its target times; series ``i``'s z0
    samples come from its own stream, seeded by ``seed`` and its id. ``antithetic``:
    the z0 draws come in pairs ε, −ε (see ``LatentODENet.sample_z0``), which lowers the
    Monte Carlo error of the summaries over samples (means, stds, quantiles)."""
    random = SeriesRandom(int(seed))
    net = state.network
    counter = nfe_counter(getattr(net, "dynamics", None))
    nfe0 = counter.total if counter is not None else 0
    # the residual process, when fitted, conditions each path on its context's residuals
    extra = {} if state.residual is None else {"residual": state.residual}
    chunks = []
    for part, batch in batches(state, ds, targets, batch_size):
        gens = random.generators([t.id for t in part], "z0")
        out = net.sample(
            batch, n_samples, generator=gens, solver=solver, antithetic=antithetic, **extra
        )
        chunks.append((part, out))
    nfe = (counter.total - nfe0) if counter is not None else None
    return Draws(ds, chunks, nfe, random, torch.get_num_threads())
