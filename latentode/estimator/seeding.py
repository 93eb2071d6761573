"""Random streams per series: a series' draws depend on the seed and its id, nothing else.

A prediction call draws z0 samples and (for quantiles or noisy samples) observation
noise. Each series gets its own generators, seeded from a hash of ``(seed, stream, id)``,
so the numbers a series sees do not depend on which series share its batch, chunk or
dask partition, nor on their order. The hash is BLAKE2b of a canonical byte form of the
id (its kind and value, not its ``repr`` or Python's salted ``hash``), so it is the same
in every process and on every machine.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

#: the streams a prediction draws from: z0 samples, and observation noise
STREAMS = ("z0", "noise")


def id_bytes(series_id: Hashable) -> bytes:
    """A canonical byte form of a series id: ids that are equal as dict keys (``7``,
    ``np.int64(7)``, ``7.0``; ``"a"`` and ``np.str_("a")``) give the same bytes, and ids
    of different kinds (``7`` and ``"7"``) differ."""
    if isinstance(series_id, (bool, np.bool_)):
        series_id = int(series_id)
    if isinstance(series_id, (float, np.floating)):
        value = float(series_id)
        if math.isfinite(value) and value.is_integer():
            series_id = int(value)
        else:
            return b"f" + value.hex().encode()
    if isinstance(series_id, (int, np.integer)):
        return b"i" + str(int(series_id)).encode()
    if isinstance(series_id, str):
        return b"s" + series_id.encode("utf-8", "surrogatepass")
    if isinstance(series_id, bytes):
        return b"b" + series_id
    if isinstance(series_id, tuple):
        parts = [id_bytes(part) for part in series_id]
        return b"t" + b"".join(len(p).to_bytes(8, "little") + p for p in parts)
    kind = type(series_id)
    return b"o" + f"{kind.__module__}.{kind.__qualname__}:{series_id!r}".encode()


def stream_seed(seed: int, stream: str, series_id: Hashable) -> int:
    """The 64-bit seed of series ``series_id``'s ``stream`` under ``seed``."""
    key = b"%d\0%s\0" % (int(seed), stream.encode()) + id_bytes(series_id)
    digest = hashlib.blake2b(key, digest_size=8, person=b"latentode-rng").digest()
    return int.from_bytes(digest, "little")


@dataclass(frozen=True)
class SeriesRandom:
    """The random streams of one prediction call, seeded by ``seed``."""

    seed: int

    def generators(self, ids: Sequence[Hashable], stream: str) -> list[torch.Generator]:
        """One CPU generator per id for ``stream`` (one of :data:`STREAMS`)."""
        if stream not in STREAMS:
            raise ValueError(f"unknown random stream {stream!r}; use one of {STREAMS}.")
        return [torch.Generator().manual_seed(stream_seed(self.seed, stream, i)) for i in ids]

    def noise_like(
        self, ids: Sequence[Hashable], lengths: Sequence[int], like: torch.Tensor
    ) -> torch.Tensor:
        """Standard normal noise shaped like ``like`` [S, B, T', C]: series ``b`` (id
        ``ids[b]``) gets its own ``[S, lengths[b], C]`` draws from its noise stream, in
        its first ``lengths[b]`` times; padding stays zero."""
        n_s, _, _, n_c = like.shape
        eps = torch.zeros(like.shape, dtype=like.dtype)
        for b, (gen, n) in enumerate(zip(self.generators(ids, "noise"), lengths)):
            eps[:, b, :n] = torch.randn((n_s, n, n_c), generator=gen, dtype=like.dtype)
        return eps.to(like.device)
