"""How much does validation cost? ``latentode.read_csv`` against a bare ``pandas.read_csv``.

Builds a long-format CSV (one row per measurement: id, time, variable, value) shaped
like minute-resolution ICU data -- by default 5,000 series x 200 rows = 1,000,000 rows
over 30 variables, with datetime times at minute resolution -- in a temporary folder,
then reads it with both, interleaved, and prints the median of the repeats.

    python benchmarks/read_csv.py            # 1,000,000 rows (about a minute)
    python benchmarks/read_csv.py --quick    # 100,000 rows
    python benchmarks/read_csv.py --rows 300000 --repeats 5
    python benchmarks/read_csv.py --baseline 47159a0   # also this tree against a commit

The target is latentode <= 3x pandas: the validation (ids, datetime parsing, text and
infinite values, duplicates, long-to-wide) must stay vectorised.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROWS_PER_SERIES = 200
N_VARIABLES = 30


def write_long_csv(path: Path, n_rows: int, seed: int = 0, shuffle: bool = False) -> dict:
    """Write ``n_rows`` long-format rows to ``path``; returns what the file holds.

    Each series has about ``ROWS_PER_SERIES`` measurements at irregular minute-resolution
    datetimes over two days; at each time stamp a few of the ``N_VARIABLES`` variables are
    measured (never the same one twice), so the file has no duplicates. Rows are written
    in time order per series, as a hospital export would be, or in random order with
    ``shuffle`` (latentode must then sort them).
    """
    rng = np.random.default_rng(seed)
    n_series = max(1, n_rows // ROWS_PER_SERIES)
    per_series = np.full(n_series, n_rows // n_series)
    per_series[: n_rows - per_series.sum()] += 1
    variables = np.array([f"var{j:02d}" for j in range(N_VARIABLES)])
    start = np.datetime64("2024-01-01T00:00")
    ids, stamps, names = [], [], []
    for k, n in enumerate(per_series):
        # about 4 measurements per time stamp
        n_stamps = max(1, int(n) // 4)
        minutes = np.sort(rng.choice(48 * 60, size=n_stamps, replace=False))
        stamp_of_row = np.sort(rng.integers(0, n_stamps, size=int(n)))
        # distinct variables within a stamp: offset + rank within the stamp, mod N_VARIABLES
        first = np.r_[0, np.flatnonzero(np.diff(stamp_of_row)) + 1]
        rank = np.arange(int(n)) - np.repeat(first, np.diff(np.r_[first, int(n)]))
        var = (rng.integers(0, N_VARIABLES, size=n_stamps)[stamp_of_row] + rank) % N_VARIABLES
        ids.append(np.full(int(n), 100_000 + k))
        stamps.append(minutes[stamp_of_row])
        names.append(variables[var])
    minutes = np.concatenate(stamps)
    frame = pd.DataFrame(
        {
            "id": np.concatenate(ids),
            "time": (start + minutes.astype("timedelta64[m]")).astype("datetime64[s]"),
            "variable": np.concatenate(names),
            "value": np.round(rng.normal(size=n_rows) * 10 + 50, 2),
        }
    )
    if shuffle:
        frame = frame.sample(frac=1.0, random_state=seed)
    frame.to_csv(path, index=False, date_format="%Y-%m-%d %H:%M")
    return {"rows": n_rows, "series": n_series, "bytes": path.stat().st_size}


def time_once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


#: run in a subprocess with a tree's ``latentode`` first on the path: median seconds
_TIME_TREE = """
import sys, time, statistics
sys.path.insert(0, sys.argv[1])
import latentode
read = lambda: latentode.read_csv(sys.argv[2], id_col="id", time_col="time", format="long")
read()
runs = []
for _ in range(int(sys.argv[3])):
    t0 = time.perf_counter(); read(); runs.append(time.perf_counter() - t0)
assert latentode.__file__.startswith(sys.argv[1]), latentode.__file__
print(statistics.median(runs))
"""


def against_baseline(path: Path, rev: str, rounds: int, repeats: int) -> dict[str, list[float]]:
    """Median read seconds of ``rev``'s latentode and of this tree's, each in its own
    fresh process, alternating for ``rounds`` rounds: {"baseline": [...], "this tree": [...]}."""
    import subprocess

    from step_speed import export_baseline

    root = Path(__file__).resolve().parents[1]
    medians: dict[str, list[float]] = {"baseline": [], "this tree": []}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"baseline": export_baseline(rev, Path(tmp)), "this tree": root}
        for r in range(rounds):
            for name in ("baseline", "this tree") if r % 2 == 0 else ("this tree", "baseline"):
                out = subprocess.run(
                    [sys.executable, "-c", _TIME_TREE, str(trees[name]), str(path), str(repeats)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                medians[name].append(float(out.stdout.strip().splitlines()[-1]))
    return medians


def machine_info() -> dict[str, str]:
    import torch

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu count": str(os.cpu_count()),
        "torch": torch.__version__,
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
    }


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the CSV")
    parser.add_argument("--quick", action="store_true", help="100,000 rows, for a smoke run")
    parser.add_argument("--repeats", type=int, default=3, help="timed reads per reader")
    parser.add_argument("--shuffle", action="store_true", help="rows in random order")
    parser.add_argument("--profile", action="store_true", help="cProfile one latentode read")
    parser.add_argument("--baseline", metavar="REV", help="also time this git revision's read")
    args = parser.parse_args(argv)
    n_rows = 100_000 if args.quick else args.rows

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import latentode

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.csv"
        t0 = time.perf_counter()
        info = write_long_csv(path, n_rows, shuffle=args.shuffle)
        print(
            f"wrote {info['rows']:,} rows, {info['series']:,} series, {N_VARIABLES} variables, "
            f"{info['bytes'] / 1e6:.1f} MB ({'shuffled' if args.shuffle else 'sorted by id, time'})"
            f" in {time.perf_counter() - t0:.1f} s"
        )

        def read_pandas():
            return pd.read_csv(path)

        def read_latentode():
            return latentode.read_csv(path, id_col="id", time_col="time", format="long")

        ds = read_latentode()  # warm-up, and a check that the file reads back whole
        if ds.n_observed != n_rows or len(ds) != info["series"]:
            raise SystemExit(f"read back {ds.n_observed} values in {len(ds)} series: wrong")
        if args.profile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.runcall(read_latentode)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)

        read_pandas()
        timings: dict[str, list[float]] = {"pandas.read_csv": [], "latentode.read_csv": []}
        for _ in range(args.repeats):  # interleaved, so drift hits both alike
            timings["pandas.read_csv"].append(time_once(read_pandas))
            timings["latentode.read_csv"].append(time_once(read_latentode))
        if args.baseline:
            versus = against_baseline(path, args.baseline, rounds=4, repeats=args.repeats)

    med = {k: statistics.median(v) for k, v in timings.items()}
    ratio = med["latentode.read_csv"] / med["pandas.read_csv"]
    print()
    for key, value in machine_info().items():
        print(f"{key:>10}: {value}")
    print()
    print(f"{'reader':<20} {'median s':>9}  runs (s)")
    for k, v in timings.items():
        runs = ", ".join(f"{t:.3f}" for t in v)
        print(f"{k:<20} {med[k]:>9.3f}  {runs}")
    verdict = "ok" if ratio <= 3.0 else "ABOVE TARGET"
    print(f"\nratio latentode / pandas: {ratio:.2f}x  (target <= 3x: {verdict})")
    if args.baseline:
        print(f"\nlatentode.read_csv, fresh processes alternating (median of {args.repeats} each):")
        for name, runs in versus.items():
            label = f"{name} ({args.baseline})" if name == "baseline" else name
            runs_text = ", ".join(f"{t:.3f}" for t in runs)
            print(f"  {label:<22} median {statistics.median(runs):.3f} s  runs {runs_text}")
        speedup = statistics.median(versus["baseline"]) / statistics.median(versus["this tree"])
        print(f"  this tree is {speedup:.2f}x as fast as {args.baseline}")
    return ratio


if __name__ == "__main__":
    main()
