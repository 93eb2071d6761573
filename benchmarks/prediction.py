"""Prediction cost: ``LatentODE.predict`` on 1,000 series x 100 query times, and the
error / function-evaluation trade-off of the decoder solve as its tolerance loosens.

Standalone (also imported by ``run.py``)::

    python benchmarks/prediction.py --quick                     # n_samples 10, 30, 100; 1 thread
    python benchmarks/prediction.py --model /tmp/m --threads 1 2  # fit once, reuse the model
    python benchmarks/prediction.py --outliers    # the outlying series' process: on, fixed, off
"""

from __future__ import annotations

import time

import numpy as np
import torch
from harness import fit_quietly, median, timed

import latentode as lo
from latentode.nn.likelihoods import masked_mse
from latentode.nn.solve import SolverConfig

N_SERIES, N_TIMES = 1000, 100
SPIRAL_T_MAX = 6.0


def fit_briefly(epochs: int, seed: int = 0) -> tuple[lo.LatentODE, float]:
    """A LatentODE (estimator defaults) fitted for ``epochs`` epochs on 200 spirals; (model, s)."""
    model = lo.LatentODE(seed=seed)
    data = lo.datasets.spiral(200, seed=seed)
    start = time.perf_counter()
    fit_quietly(model, data, max_epochs=epochs)
    return model, time.perf_counter() - start


def predict_timing(
    model: lo.LatentODE,
    sample_counts: list[int],
    thread_counts: list[int | None],
    repeats: int,
    seed: int = 1,
) -> list[dict]:
    """Seconds of ``model.predict`` on N_SERIES spirals (40 points each) at N_TIMES shared times.

    Every (samples, threads) setting is timed ``repeats`` times, interleaved with the
    others; the median is reported, wall and process CPU time (the latter is steadier
    on a shared machine at one thread). The estimator predicts on CPU, with its
    ``threads`` parameter set to each thread count (None: its thread policy, 1 thread, or
    2 where it finds idle cores); the model's own setting is restored afterwards. Each
    row's ``threads_used`` lists the count every run's network passes used.
    """
    context = lo.datasets.spiral(N_SERIES, seed=seed)
    times = np.linspace(0.0, SPIRAL_T_MAX, N_TIMES)
    settings = [(s, t) for s in sample_counts for t in thread_counts]
    seconds: dict[tuple[int, int], list[float]] = {k: [] for k in settings}
    cpu: dict[tuple[int, int], list[float]] = {k: [] for k in settings}  # process CPU time
    nfe: dict[tuple[int, int], int | None] = {}
    used: dict[tuple[int, int], list[int]] = {k: [] for k in settings}  # attrs["threads"]
    threads_before = model.threads
    model.predict(context[:50], times=times, n_samples=2)  # warm-up
    for r in range(repeats):
        for key in settings if r % 2 == 0 else settings[::-1]:
            model.set_params(threads=key[1])
            cpu_start = time.process_time()
            df, secs = timed(
                lambda key=key: model.predict(context, times=times, n_samples=key[0]),
                torch.device("cpu"),
            )
            seconds[key].append(secs)
            cpu[key].append(time.process_time() - cpu_start)
            nfe[key] = df.attrs["nfe"]
            used[key].append(df.attrs["threads"])
            if len(df) != N_SERIES * N_TIMES:
                raise SystemExit(f"predict returned {len(df)} rows, expected {N_SERIES * N_TIMES}")
    model.set_params(threads=threads_before)
    return [
        {
            "n_samples": s,
            "threads": t,
            "seconds": median(seconds[(s, t)]),
            "runs": seconds[(s, t)],
            "cpu_seconds": median(cpu[(s, t)]),
            "decoder_nfe": nfe[(s, t)],
            "threads_used": used[(s, t)],
        }
        for s, t in settings
    ]


def outlier_cost(model: lo.LatentODE, repeats: int, seed: int = 1) -> dict[str, list[float]]:
    """Seconds of ``model.predict`` (its defaults) on N_SERIES spirals at N_TIMES times,
    interleaved in rotating order: with the residual kriging's outlying series' process
    as it is (``"with"``), with the fixed outlying process only (``"no own fit"``:
    ``OWN_FIT_MIN_POINTS`` out of reach) and without it (``OUTLIER_PRIOR`` 0)."""
    import latentode.nn.residual_kriging as rk

    context = lo.datasets.spiral(N_SERIES, seed=seed)
    times = np.linspace(0.0, SPIRAL_T_MAX, N_TIMES)
    defaults = {"OUTLIER_PRIOR": rk.OUTLIER_PRIOR, "OWN_FIT_MIN_POINTS": rk.OWN_FIT_MIN_POINTS}
    arms = {
        "with": defaults,
        "no own fit": {**defaults, "OWN_FIT_MIN_POINTS": 10**9},
        "without": {**defaults, "OUTLIER_PRIOR": 0.0},
    }
    seconds: dict[str, list[float]] = {name: [] for name in arms}
    model.predict(context[:50], times=times)  # warm-up
    names = list(arms)
    try:
        for r in range(repeats):
            for name in names[r % 3 :] + names[: r % 3]:
                for constant, value in arms[name].items():
                    setattr(rk, constant, value)
                _, secs = timed(lambda: model.predict(context, times=times), torch.device("cpu"))
                seconds[name].append(secs)
    finally:
        for constant, value in defaults.items():
            setattr(rk, constant, value)
    return seconds


@torch.no_grad()
def tolerance_tradeoff(
    net: torch.nn.Module,
    batches: list,
    rtols: list[float],
    device: torch.device,
    repeats: int = 3,
) -> list[dict]:
    """Decoder solve at each ``rtol`` (``atol = rtol / 10``) on validation interpolation batches.

    For each tolerance: the MSE of the posterior-mean prediction against the held-out
    values (scaled units), its RMS deviation from a tight solve (rtol 1e-7), the
    decoder's function evaluations per batch and the seconds per pass over the batches.
    """
    net = net.eval()
    means = [net.encode(b)[0].unsqueeze(0) for b in batches]  # [1, B, L] each

    def predict(solver: SolverConfig) -> list[torch.Tensor]:
        return [
            net.decoder(net.latent_paths(m, b.target_times, solver)[0])[0]
            for m, b in zip(means, batches)
        ]

    exact = predict(SolverConfig("dopri5", rtol=1e-7, atol=1e-8, max_steps=100_000))
    rows = []
    for rtol in rtols:
        solver = SolverConfig("dopri5", rtol=rtol, atol=rtol / 10)
        secs = []
        for _ in range(repeats):
            net.dynamics.nfe.reset()
            preds, s = timed(lambda solver=solver: predict(solver), device)
            secs.append(s)
        nfe = net.dynamics.nfe.forward / len(batches)
        sse = sum(
            float(masked_mse(p, b.target_values, b.target_mask) * b.target_mask.sum())
            for p, b in zip(preds, batches)
        )
        count = sum(float(b.target_mask.sum()) for b in batches)
        dev = [(p - e).square() * b.target_mask for p, e, b in zip(preds, exact, batches)]
        rows.append(
            {
                "rtol": rtol,
                "atol": rtol / 10,
                "val_mse": sse / count,
                "rms_vs_tight": (sum(float(d.sum()) for d in dev) / count) ** 0.5,
                "decoder_nfe_per_batch": nfe,
                "seconds": median(secs),
            }
        )
    return rows


#: (stage, function name, file suffix) whose cumulative time the stage profile reports
STAGES = [
    ("whole predict", "predict", "estimator/base.py"),
    ("encoder (ODE-RNN, fused pass)", "final_state", "nn/encoders.py"),
    ("decoder ODE solve (dopri5)", "solve", "nn/solve.py"),
    ("read-out at the query times", "interpolation_weights", "nn/readout.py"),
    ("residual kriging", "condition_residual", "nn/residual_kriging.py"),
    ("decoding z to channels", "rowwise", "models/latent_ode.py"),
    ("summaries: mean, std, quantiles", "predictive_summary", "estimator/summaries.py"),
    ("  of which the quantiles", "mixture_quantiles", "estimator/summaries.py"),
]


def stage_profile(
    model: lo.LatentODE, n_samples: int = 100, quantiles: tuple = (), seed: int = 1
) -> list[dict]:
    """Cumulative seconds of each predict stage (cProfile, one call, 1,000 x 100), with
    ``quantiles`` (the quantile branch: noise draws and ``torch.quantile``) or without."""
    import cProfile
    import pstats

    context = lo.datasets.spiral(N_SERIES, seed=seed)
    times = np.linspace(0.0, SPIRAL_T_MAX, N_TIMES)
    model.predict(context[:50], times=times, n_samples=2)  # warm-up
    prof = cProfile.Profile()
    prof.runcall(model.predict, context, times=times, n_samples=n_samples, quantiles=quantiles)
    stats = pstats.Stats(prof).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    rows = []
    for stage, name, suffix in STAGES:
        seconds = sum(
            v[3] for (file, _, fn), v in stats.items() if file.endswith(suffix) and fn == name
        )
        rows.append({"stage": stage, "seconds": seconds})
    total = rows[0]["seconds"]
    for row in rows:
        row["share"] = row["seconds"] / total if total else float("nan")
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    """Time ``predict`` on 1,000 x 100 (medians of interleaved runs); one row per setting."""
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats (default 5)")
    parser.add_argument("--samples", type=int, nargs="+", default=[10, 30, 100])
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--fit-epochs", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="also where predict's time goes")
    parser.add_argument(
        "--outliers", action="store_true", help="only: predict with and without outlying series"
    )
    parser.add_argument(
        "--model", type=Path, default=None, help="load this saved model, or fit and save it here"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.model is not None and args.model.exists():
        model = lo.LatentODE.load(args.model)
    else:
        model, fit_seconds = fit_briefly(args.fit_epochs)
        print(f"fitted for {args.fit_epochs} epochs in {fit_seconds:.1f} s")
        if args.model is not None:
            model.save(args.model)
    repeats = args.repeats or (3 if args.quick else 5)
    if args.outliers:
        seconds = outlier_cost(model, repeats)
        print(f"predict (defaults), {N_SERIES} series x {N_TIMES} times, median of {repeats}:")
        for name, runs in seconds.items():
            shown = ", ".join(f"{s:.2f}" for s in runs)
            print(f"  {name:>10}: {median(runs):.2f} s  ({shown})")
        base = median(seconds["without"])
        print(
            f"  ratios to without: with {median(seconds['with']) / base:.2f}, "
            f"no own fit {median(seconds['no own fit']) / base:.2f}"
        )
        return []
    rows = predict_timing(model, args.samples, args.threads, repeats)
    print(f"predict, {N_SERIES} series x {N_TIMES} times, median of {repeats} runs:")
    for row in rows:
        runs = ", ".join(f"{s:.2f}" for s in row["runs"])
        print(
            f"  n_samples {row['n_samples']:>4}  threads {row['threads']}  "
            f"{row['seconds']:.2f} s, CPU {row['cpu_seconds']:.2f} s  "
            f"(runs {runs}; decoder NFE {row['decoder_nfe']})"
        )
    if args.profile:
        for quantiles in ((), (0.05, 0.95)):
            print(
                f"where predict's time goes (cProfile, one call, {args.samples[-1]} samples, "
                f"quantiles={quantiles}):"
            )
            for row in stage_profile(model, args.samples[-1], quantiles):
                print(f"  {row['stage']:<34} {row['seconds']:6.2f} s  {row['share']:4.0%}")
    return rows


if __name__ == "__main__":
    main()
