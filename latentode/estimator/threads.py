"""The thread policy: how many torch intra-op threads ``fit`` and the query methods use.

latentode's models are small (tens of units per layer, batches of tens of series), so
a CPU step is a long chain of tiny ops whose cost is per-op overhead, not arithmetic:
a second intra-op thread barely helps when the machine is idle, and when another
process holds a core every parallel op waits for the busy one. On 2 cores, the clinical
training step at the 2019 paper's size took 0.13 s idle and 1.67 s (12.9x) next to
one CPU-bound process with torch's default 2 threads, but 0.137 s idle and 0.135 s
busy with 1 thread; ``predict`` collapsed the same way. So by default (``threads=None``)
every public entry runs with :data:`POLICY_THREADS` intra-op thread, and an estimator's
``threads=k`` overrides it.

:func:`thread_count` sets the count for a block and restores the caller's afterwards
(also on an exception); :func:`with_thread_policy` applies it to an estimator method.
The count only concerns ops on the CPU: CUDA kernels do not use it. Under Lightning's
DDP the policy is set in each process that runs ``fit``, but Lightning's launcher then
sets every rank's count for training itself (cores divided by processes, unless
``OMP_NUM_THREADS`` is set); the caller's count is still restored when ``fit`` returns.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import numpy as np
import torch

from latentode.errors import LatentODEError

#: intra-op threads with ``threads=None``: what survives a busy machine for small models
POLICY_THREADS = 1

_Method = TypeVar("_Method", bound=Callable)


def resolve_threads(threads: int | None) -> int:
    """The intra-op thread count for an estimator's ``threads`` parameter.

    Raises:
        LatentODEError: ``threads`` is neither None nor a whole number >= 1.
    """
    if threads is None:
        return POLICY_THREADS
    whole = isinstance(threads, (int, np.integer)) and not isinstance(threads, (bool, np.bool_))
    if not whole or threads < 1:
        raise LatentODEError(
            f"threads must be a whole number >= 1 (torch intra-op threads) or None (the "
            f"thread policy: {POLICY_THREADS} thread, which stays fast on a busy machine), "
            f"got {threads!r}."
        )
    return int(threads)


@contextmanager
def thread_count(threads: int | None) -> Iterator[int]:
    """Run the block with :func:`resolve_threads` (``threads``) torch intra-op threads,
    then restore the caller's count, also when the block raises. Yields the count.

    Raises:
        LatentODEError: for a bad ``threads``, before anything changes.
    """
    n = resolve_threads(threads)
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield n
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def with_thread_policy(method: _Method) -> _Method:
    """Decorate an estimator method to run under ``thread_count(self.threads)``.

    Not for generator methods: their body runs after the call has returned.
    """

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with thread_count(getattr(self, "threads", None)):
            return method(self, *args, **kwargs)

    return run  # type: ignore[return-value]
