"""The training order: a seeded permutation per epoch, length-bucketed into batches."""

from __future__ import annotations

import numpy as np
import pytest

from latentode.data.datamodule import EpochShuffle


def _lengths(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(2, 300, n)


@pytest.mark.parametrize(("n", "batch_size"), [(1000, 50), (523, 16), (40, 16), (16, 16)])
def test_bucketed_order_is_a_permutation_of_every_series(n: int, batch_size: int) -> None:
    sampler = EpochShuffle(n, seed=3, lengths=_lengths(n), batch_size=batch_size)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert sorted(order) == list(range(n))  # nobody lost, nobody twice


def test_bucketed_batches_cut_the_sequential_steps() -> None:
    """Sum over batches of the longest member (the encoder's sequential steps): bucketing
    must cut it well below a plain shuffle's, and each batch's spread must be small."""
    n, bs = 2000, 50
    lengths = _lengths(n)
    plain, bucketed = EpochShuffle(n, 0), EpochShuffle(n, 0, lengths, bs)
    steps = {}
    for name, sampler in (("plain", plain), ("bucketed", bucketed)):
        batches = np.array(list(sampler)).reshape(-1, bs)
        steps[name] = lengths[batches].max(1).sum()
    # uniform lengths 2..299: plain batches' maxima are ~294; the whole set's mean is ~150
    assert steps["bucketed"] < 0.65 * steps["plain"]
    batches = np.array(list(bucketed)).reshape(-1, bs)
    spread = lengths[batches].max(1) / lengths[batches].min(1)
    assert np.median(spread) < 1.6


def test_order_depends_only_on_seed_and_epoch_and_batches_change_between_epochs() -> None:
    n, bs = 300, 16
    lengths = _lengths(n)
    a, b = EpochShuffle(n, 7, lengths, bs), EpochShuffle(n, 7, lengths, bs)
    a.set_epoch(4)
    b.set_epoch(4)
    assert list(a) == list(b)
    first = {frozenset(x) for x in np.array(list(a))[: (n // bs) * bs].reshape(-1, bs).tolist()}
    a.set_epoch(5)
    second = {frozenset(x) for x in np.array(list(a))[: (n // bs) * bs].reshape(-1, bs).tolist()}
    assert len(first & second) < len(first) // 4  # the jitter remixes similar lengths


def test_short_last_batch_stays_last_and_single_batch_sets_are_a_plain_shuffle() -> None:
    n, bs = 523, 16
    order = list(EpochShuffle(n, 1, _lengths(n), bs))
    full = np.array(order[: (n // bs) * bs]).reshape(-1, bs)
    assert len(order) - full.size == n % bs  # the 11 leftovers form the last batch
    small = EpochShuffle(12, 2, _lengths(12), 16)
    assert list(small) == list(EpochShuffle(12, 2))  # one batch: nothing to bucket


def _toy_series(n: int):
    from latentode.data.dataset import SeriesDataset, make_series

    rng = np.random.default_rng(0)
    return SeriesDataset(
        [
            make_series(i, np.sort(rng.uniform(0, 5, 30)), rng.normal(size=(30, 1)))
            for i in range(n)
        ],
        ("x",),
    )


@pytest.mark.parametrize(
    ("n_series", "draws"), [(1, 20), (3, 20), (4, 15), (13, 5), (20, 3), (500, 3)]
)
def test_held_out_draws_aim_at_sixty_pairs_within_bounds(n_series: int, draws: int) -> None:
    from latentode.data.datamodule import held_out_draws

    assert held_out_draws(n_series) == draws


def test_task_pairs_draw_more_contexts_of_few_validation_series() -> None:
    """4 validation series: 15 draws of distinct seeded contexts, each of every series;
    without validation series, the 4 training series get 3 draws."""
    from latentode.data.datamodule import SeriesDataModule

    data = _toy_series(4)
    assert len(SeriesDataModule(data, seed=1).task_pairs()) == 3
    dm = SeriesDataModule(data, val=_toy_series(4), seed=1)
    pairs = dm.task_pairs()
    assert len(pairs) == 15
    assert all(len(contexts) == 4 and len(whole) == 4 for contexts, whole in pairs)
    first = [tuple(c.times) for c in pairs[0][0]]
    assert any([tuple(c.times) for c in contexts] != first for contexts, _ in pairs[1:])


def test_task_pairs_of_the_training_series_on_request() -> None:
    """``training=True``: 3 draws of the training series even with validation series
    (the interval calibration pools both)."""
    from latentode.data.datamodule import SeriesDataModule

    train, val = _toy_series(5), _toy_series(4)
    dm = SeriesDataModule(train, val=val, seed=1)
    pairs = dm.task_pairs(training=True)
    assert len(pairs) == 3
    assert all(whole is not None and len(whole) == 5 for _, whole in pairs)
    assert [s.id for s in pairs[0][1]] == [s.id for s in dm.train_data]


def test_level_zero_is_the_scaled_origin_of_channels_never_negative() -> None:
    """z = (0 - mean) / std of the training values for a channel never below 0; NaN for
    one with a negative value."""
    from latentode.data.datamodule import SeriesDataModule
    from latentode.data.dataset import SeriesDataset, make_series

    rng = np.random.default_rng(2)
    values = [np.stack([rng.uniform(0, 5, 8), rng.normal(size=8)], 1) for _ in range(4)]
    values[2][3, 0] = np.nan  # unobserved: ignored
    data = SeriesDataset(
        [make_series(i, np.arange(8.0), v) for i, v in enumerate(values)], ("conc", "z")
    )
    zero = SeriesDataModule(data, seed=0, val_frac=0.0).level_zero()
    conc = np.concatenate([v[:, 0] for v in values])
    conc = conc[~np.isnan(conc)]
    assert zero[0] == pytest.approx(-conc.mean() / conc.std())
    assert np.isnan(zero[1])


@pytest.mark.parametrize(("n_series", "per_epoch"), [(5, 32), (20, 32), (32, 32), (100, 100)])
def test_an_epoch_holds_at_least_min_epoch_examples(n_series: int, per_epoch: int) -> None:
    """A training set smaller than MIN_EPOCH_EXAMPLES (32) gives each series
    floor or ceil of 32/n examples per epoch, with different contexts, and over epochs
    every series equally many; a larger set gives one example per series."""
    from latentode.data.datamodule import MIN_EPOCH_EXAMPLES, SeriesDataModule

    assert MIN_EPOCH_EXAMPLES == 32
    dm = SeriesDataModule(_toy_series(n_series), seed=4, batch_size=16)
    dm.set_epoch(2)
    examples = [dm._train[i] for i in dm.train_dataloader().sampler]
    assert len(examples) == per_epoch
    counts = np.bincount([int(whole.id) for _, whole in examples], minlength=n_series)
    assert counts.min() == per_epoch // n_series and counts.max() == -(-per_epoch // n_series)
    contexts_of_first = {tuple(c.times) for c, whole in examples if whole.id == 0}
    # each visit draws its own context (some task kinds, e.g. a cut, can repeat one)
    assert len(contexts_of_first) >= max(1, counts[0] // 2)
    assert counts[0] == 1 or len(contexts_of_first) > 1
    n_batches = len(dm.train_dataloader())
    assert n_batches == -(-per_epoch // 16)
    visits = np.zeros(n_series, dtype=int)
    for epoch in range(n_series):  # n epochs: n * per_epoch examples, per_epoch each
        dm.set_epoch(epoch)
        ids = [int(dm._train[i][1].id) for i in range(len(dm._train))]
        visits += np.bincount(ids, minlength=n_series)
    assert (visits == per_epoch).all()
    plain = SeriesDataModule(_toy_series(n_series), seed=4, min_epoch_examples=0)
    plain.setup("fit")
    assert len(plain._train) == n_series


def test_bucketed_small_sets_sort_the_series_each_epoch_visits() -> None:
    """5 series, 64 examples per epoch: the bucketing reads each example's own series
    length, whichever series the epoch's cyclic walk gives it."""
    from latentode.data.datamodule import example_series

    lengths = np.array([3, 300, 10, 100, 30])
    for epoch in (0, 1, 7):
        sampler = EpochShuffle(64, 5, lengths, batch_size=16)
        sampler.set_epoch(epoch)
        order = np.array(list(sampler))
        assert sorted(order.tolist()) == list(range(64))
        per_batch = lengths[example_series(epoch, order, 64, 5)].reshape(4, 16)
        spread = per_batch.max(1) / per_batch.min(1)
        assert np.median(spread) <= 10  # a plain shuffle mixes 3 and 300 in every batch


@pytest.mark.parametrize(
    ("n_series", "val_frac", "pooled"), [(15, 0.2, True), (130, 0.2, False), (15, 0.0, None)]
)
def test_calibration_pools_the_training_series_only_when_validation_series_are_few(
    n_series: int, val_frac: float, pooled: bool | None, monkeypatch, tmp_path
) -> None:
    """The interval calibration predicts the validation series and, with fewer than 20 of
    them (here 3), the training series too; with 26, only the validation series; with none,
    nothing (raw intervals)."""
    import latentode as lo
    import latentode.estimator.fitting as fitting

    seen: set = set()
    real = fitting.predict_held_out

    def spy(model, context, target, **kw):
        seen.update(s.id for s in context)
        return real(model, context, target, **kw)

    monkeypatch.setattr(fitting, "predict_held_out", spy)
    data = lo.datasets.spiral(n_series=n_series, n_points=8, n_observed=6, seed=0)
    params = {"latent_dim": 2, "encoder_hidden": 4, "hidden": 4, "depth": 1, "n_samples": 1}
    model = lo.LatentODE(**params, val_frac=val_frac, seed=0)
    model.fit(data, max_epochs=1, progress_bar=False, log_dir=tmp_path / "run")
    all_ids = {s.id for s in data}
    if pooled is None:
        assert not seen and list(model.interval_scale_) == [1.0] * len(model.channels_)
        return
    n_val = round(val_frac * n_series)
    assert len(seen) == (n_series if pooled else n_val) and seen <= all_ids
