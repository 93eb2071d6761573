"""Peak memory and wall time of streaming prediction as the number of series grows 10x.

Writes a wide CSV of N short spiral-like series (5 points, channels x and y) and predicts
every series at its own times, each run in a fresh process that reports its own peak
RSS (``VmHWM`` of /proc/self/status, Linux; ``ru_maxrss`` from ``os.wait4`` would not
do: a child forked from this process inherits its high-water mark):

- ``python``: ``lo.iter_csv`` + ``LatentODE.predict_stream``, each chunk's frame appended
  to a CSV (what a user's script would do);
- ``cli``: ``latentode.cli.main(["predict", ...])``, what the ``latentode predict``
  command runs (it streams the same way);
- ``whole``: the non-streamed reference, ``lo.read_csv`` + ``predict`` on every series and
  one ``to_csv``; its growth is what the streamed paths must not show.

The model: ``LatentODE()`` with the estimator's defaults, fitted for one epoch on 100
spirals (the weights do not change the cost). ``--n-samples`` defaults to 10 (not
``predict``'s 100) so that the 100,000-series runs take minutes, not most of an hour;
memory per chunk grows with it, the comparison between sizes does not.

    python benchmarks/predict_memory.py            # 10,000 and 100,000 series
    python benchmarks/predict_memory.py --quick    # 1,000 and 10,000 series

Target: peak RSS at 10 N / peak RSS at N < 1.25 for ``python`` and ``cli``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from harness import fit_quietly, header, machine_info, table

N_POINTS = 5
SERIES_PER_CHUNK = 1000
TARGET_RATIO = 1.25
QUANTILES = (0.05, 0.95)  # the CLI's default
MODES = ("python", "cli", "whole")


def write_csv(path: Path, n_series: int, seed: int = 0) -> None:
    """``n_series`` series of N_POINTS points (series_id, time in s, x, y), sorted by id."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(n_series), N_POINTS)
    # one time in each of N_POINTS slots of [0, 6): distinct after rounding
    slots = np.arange(N_POINTS) * (6.0 / N_POINTS)
    t = (slots + rng.uniform(0.0, 0.9 * 6.0 / N_POINTS, (n_series, N_POINTS))).reshape(-1)
    phase = rng.uniform(0, 2 * np.pi, n_series).repeat(N_POINTS)
    x, y = np.cos(t + phase) * (1 + t / 6), np.sin(t + phase) * (1 + t / 6)
    with open(path, "w") as f:
        f.write("series_id,time,x,y\n")
        for start in range(0, len(ids), 100_000):
            rows = slice(start, start + 100_000)
            f.write(
                "\n".join(
                    f"{i},{a:.4f},{b:.4f},{c:.4f}"
                    for i, a, b, c in zip(ids[rows], t[rows], x[rows], y[rows])
                )
                + "\n"
            )


def fit_model(path: Path) -> None:
    import latentode as lo

    model = fit_quietly(lo.LatentODE(seed=0), lo.datasets.spiral(100, seed=0), max_epochs=1)
    model.save(path)


def peak_kb() -> int:
    """This process's peak RSS in KiB (VmHWM)."""
    status = Path("/proc/self/status").read_text().splitlines()
    return int(next(line for line in status if line.startswith("VmHWM")).split()[1])


def child(mode: str, model_path: str, data: str, out: str, n_samples: int) -> None:
    """One prediction run in this fresh process; prints its peak RSS."""
    import latentode as lo

    try:
        run_child(lo, mode, model_path, data, out, n_samples)
    finally:
        print("PEAK_KB", peak_kb())


def run_child(lo, mode: str, model_path: str, data: str, out: str, n_samples: int) -> None:
    if mode == "cli":
        argv = ["predict", model_path, data, "--out", out, "--n-samples", str(n_samples)]
        argv += ["--seed", "0", "--series-per-chunk", str(SERIES_PER_CHUNK)]
        from latentode.cli import main

        if main(argv) != 0:
            raise SystemExit("latentode predict failed")
        return
    model = lo.LatentODE.load(model_path)
    if mode == "whole":
        context = lo.read_csv(data, id_col="series_id", time_unit="s")
        pred = model.predict(context, n_samples=n_samples, quantiles=QUANTILES, seed=0)
        pred.to_csv(out, index=False)
        return
    chunks = lo.iter_csv(data, id_col="series_id", time_unit="s", series_per_chunk=SERIES_PER_CHUNK)
    preds = model.predict_stream(chunks, n_samples=n_samples, quantiles=QUANTILES, seed=0)
    with open(out, "w", newline="") as f:
        for k, pred in enumerate(preds):
            pred.to_csv(f, index=False, header=k == 0)


def measure(mode: str, model: Path, data: Path, out: Path, n_samples: int) -> dict:
    """Run one mode in a fresh process; its peak RSS (MB) and wall seconds."""
    argv = [sys.executable, __file__, "--child", mode, str(model), str(data), str(out)]
    argv += ["--n-samples", str(n_samples)]
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if result.returncode != 0 or "PEAK_KB" not in result.stdout:
        raise SystemExit(f"{mode} failed:\n{result.stderr[-3000:]}")
    kb = int(result.stdout.split("PEAK_KB")[-1].split()[0])
    return {"peak_mb": kb / 1024, "seconds": seconds}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 and 10,000 series")
    parser.add_argument("--n-samples", type=int, default=10, help="posterior samples (10)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--child", nargs=4, metavar=("MODE", "MODEL", "DATA", "OUT"))
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child, n_samples=args.n_samples)
        return []
    sizes = (1_000, 10_000) if args.quick else (10_000, 100_000)
    info = machine_info(torch.device("cpu"), argv=None if argv is None else [__file__, *argv])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = tmp / "model.safetensors"
        fit_model(model)
        for n in sizes:
            write_csv(tmp / f"data{n}.csv", n)
        for mode in args.modes:
            for n in sizes:
                out = tmp / f"pred-{mode}-{n}.csv"
                row = {
                    "mode": mode,
                    "series": n,
                    **measure(mode, model, tmp / f"data{n}.csv", out, args.n_samples),
                }
                with open(out) as f:
                    row["rows"] = sum(1 for _ in f) - 1
                if row["rows"] != n * N_POINTS:
                    raise SystemExit(f"{mode}: {row['rows']} rows for {n} series")
                row["series_per_s"] = n / row["seconds"]
                rows.append(row)
                print(
                    f"  {mode:<6} {n:>7,} series: {row['peak_mb']:7.0f} MB {row['seconds']:7.1f} s",
                    flush=True,
                )
    for row in rows:
        small = next(r for r in rows if r["mode"] == row["mode"] and r["series"] == sizes[0])
        row["ratio"] = row["peak_mb"] / small["peak_mb"]
    title = (
        f"Streaming prediction: peak RSS and wall time, {sizes[0]:,} vs {sizes[1]:,} series "
        f"({N_POINTS} points each, n_samples={args.n_samples}, {SERIES_PER_CHUNK} series per chunk)"
    )
    print(header(title, info))
    columns = [
        ("mode", "mode", ""),
        ("series", "series", ","),
        ("peak_mb", "peak RSS MB", ".0f"),
        ("ratio", "vs smaller", ".2f"),
        ("seconds", "wall s", ".1f"),
        ("series_per_s", "series/s", ".0f"),
    ]
    print(table(rows, columns))
    for mode in ("python", "cli"):
        big = [r for r in rows if r["mode"] == mode and r["series"] == sizes[1]]
        if big:
            verdict = "ok" if big[0]["ratio"] < TARGET_RATIO else "ABOVE TARGET"
            print(
                f"{mode}: peak RSS x{big[0]['ratio']:.2f} for 10x the series "
                f"(target < {TARGET_RATIO}: {verdict})"
            )
    return rows


if __name__ == "__main__":
    main()
