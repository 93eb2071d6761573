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

Large queries are the exception. Their network passes (batches of hundreds of series
times tens of samples) gain from a second thread when a core is idle: ``predict`` of
1,000 series x 100 times took 1.37 s on 1 thread and 0.85 s on 2 (``benchmarks/run.py``).
So under the policy, a query with at least :data:`WIDEN_MIN_WORK` sample-points
counts the runnable tasks on the machine just before its network passes
(:func:`runnable_others`, a few readings of ``/proc/stat`` over
:data:`LOAD_READINGS` ms), and runs the passes and its summaries with one thread per
core that nothing else wants (:func:`widen_if_idle`): at most :data:`QUERY_THREADS_MAX`,
the CPUs it may use (affinity and cgroup quota) and ``OMP_NUM_THREADS`` where set. A
CPU-bound competitor is always runnable, so next to one the query keeps 1 thread.
Without ``/proc/stat`` the query keeps 1 thread; where it counts the tasks of a larger
host (some containers), they usually leave no core free and the query keeps 1 too.

:func:`thread_count` sets the count for a block and restores the caller's afterwards
(also on an exception); :func:`with_thread_policy` applies it to an estimator method.
The count only concerns ops on the CPU: CUDA kernels do not use it. Under Lightning's
DDP the policy is set in each process that runs ``fit``, but Lightning's launcher then
sets every rank's count for training itself (cores divided by processes, unless
``OMP_NUM_THREADS`` is set); the caller's count is still restored when ``fit`` returns.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from latentode.errors import LatentODEError

#: intra-op threads with ``threads=None``: what survives a busy machine for small models
POLICY_THREADS = 1
#: the most threads the policy gives a large query on idle cores (measured on 2 cores
#: only; ``threads=k`` sets any count)
QUERY_THREADS_MAX = 2
#: the smallest query the policy widens, in sample-points (posterior samples x query
#: points): 100 series x 100 times x 32 samples is 320,000, a tenth of the benchmark
WIDEN_MIN_WORK = 200_000
#: readings of the runnable tasks before widening, 1 ms apart
LOAD_READINGS = 5
#: a core counts as free when the other runnable tasks leave at least this much of it
FREE_SHARE = 0.75
_PROC_STAT = Path("/proc/stat")
_CGROUP = Path("/sys/fs/cgroup")

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


def usable_cpus() -> int:
    """The CPUs this process may use: its affinity, capped by a cgroup CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(n, math.floor(quota))) if quota is not None else n


def _cgroup_quota() -> float | None:
    """The cgroup's CPU quota in CPUs (v2 ``cpu.max`` or v1 ``cfs_quota_us``), or None."""
    try:
        text = (_CGROUP / "cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        v1 = _CGROUP / "cpu"
        quota = int((v1 / "cpu.cfs_quota_us").read_text())
        if quota > 0:
            return quota / int((v1 / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        pass
    return None


def runnable_others(readings: int = LOAD_READINGS) -> float | None:
    """The mean number of runnable tasks besides the calling thread (``procs_running`` of
    ``/proc/stat``, ``readings`` times 1 ms apart); None where it cannot be read."""
    counts = []
    for k in range(readings):
        if k:
            time.sleep(0.001)
        try:
            with _PROC_STAT.open() as stat:
                line = next((x for x in stat if x.startswith("procs_running")), None)
        except OSError:
            return None
        if line is None:
            return None
        counts.append(int(line.split()[1]))
    return max(sum(counts) / len(counts) - 1.0, 0.0)


def threads_for_load(others: float, cpus: int, ceiling: int) -> int:
    """One thread per core of ``cpus`` that ``others`` runnable tasks leave free (at least
    :data:`FREE_SHARE` of it), between 1 and ``ceiling``."""
    return max(1, min(ceiling, math.floor(cpus - others + 1.0 - FREE_SHARE)))


def query_ceiling(cpus: int) -> int:
    """The most threads :func:`widen_if_idle` sets: :data:`QUERY_THREADS_MAX`, the
    usable ``cpus``, and ``OMP_NUM_THREADS`` where that is a whole number."""
    ceiling = min(QUERY_THREADS_MAX, cpus)
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:
        ceiling = min(ceiling, int(env))
    return ceiling


def widen_if_idle(work: int, load: Callable[[], float | None] | None = None) -> int:
    """Raise the calling block's thread count to one per free core (see the module's
    docstring) when ``work`` (sample-points) is at least :data:`WIDEN_MIN_WORK`; never
    lowers it. Call it inside a policy block (:func:`thread_count` restores the
    caller's count). ``load`` counts the other runnable tasks (default
    :func:`runnable_others`). Returns the count now set."""
    current = torch.get_num_threads()
    if work < WIDEN_MIN_WORK:  # a small query reads no file
        return current
    cpus = usable_cpus()
    ceiling = query_ceiling(cpus)
    if ceiling <= current:
        return current
    others = (load or runnable_others)()
    if others is None:
        return current
    n = threads_for_load(others, cpus, ceiling)
    if n > current:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def with_thread_policy(method: _Method) -> _Method:
    """Decorate an estimator method to run under ``thread_count(self.threads)``.

    Not for generator methods: their body runs after the call has returned.
    """

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with thread_count(getattr(self, "threads", None)):
            return method(self, *args, **kwargs)

    return run  # type: ignore[return-value]
