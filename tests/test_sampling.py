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
