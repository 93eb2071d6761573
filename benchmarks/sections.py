"""The suite's sections on the model itself: encoder grid, training throughput, time to
quality, memory, prediction, solver tolerance and the step's profile (registered in run
order by :func:`suite.section`; the registry and the sizes per mode are in ``suite.py``).
The one shared piece of work, the spiral model trained to the quality target, is the
fixture ``spiral_to_target``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import encoder_grid
import memory
import prediction
import training
from harness import header, table
from suite import Context, Result, section

from latentode.estimator.base import PREDICT_SAMPLES
from latentode.estimator.threads import POLICY_THREADS

TARGET_MSE = 0.2  # spiral validation interpolation MSE, scaled units (noise floor ~0.003)
MEMORY_BASE_STEPS = 10  # RK4 steps at horizon x1
RTOLS = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]


def _strip(d: dict) -> dict:
    """``d`` without its private (``_``-prefixed) entries: live objects, not results."""
    return {k: v for k, v in d.items() if not k.startswith("_")}


def spiral_to_target(ctx: Context) -> dict:
    """Spiral trained on both paths, epochs interleaved, until val MSE <= TARGET_MSE.

    ``training.train_interleaved``'s result: per path the trajectory, plus ``_ours`` (our
    trained path, with ``.net``) and ``_val_batches`` for later use.
    """
    cfg = ctx.sizes["spiral_to_target"]
    print(f"  training spiral, both paths, until val MSE <= {TARGET_MSE} ...", flush=True)
    return training.train_interleaved(
        "spiral",
        cfg["n_train"],
        cfg["n_val"],
        TARGET_MSE,
        cfg["max_epochs"],
        cfg["max_seconds"],
        ctx.device,
    )


@section("encoder_grid")
def encoder_grid_section(sizes: dict, ctx: Context) -> Result:
    out = Path(tempfile.gettempdir()) / "latentode_encoder_grid.json"  # kept in latest.json
    argv = ["--device", str(ctx.device), "--threads", str(ctx.threads), "--out", str(out)]
    print("\n## Encoder: per-series clock against the union grid (benchmarks/encoder_grid.py)")
    result = encoder_grid.main(argv + (["--quick"] if ctx.mode == "quick" else []))
    at_64 = next((r["ratio"] for r in result["rows"] if r["B"] == 64), None)
    return Result(result, figures={"encoder_grid_speedup_b64": at_64})


@section("training")
def training_section(sizes: dict, ctx: Context) -> Result:
    rows = []
    for name, (rounds, per_round) in sizes.items():
        print(f"  timing {name} ...", flush=True)
        rows.append(training.throughput(name, rounds, per_round, ctx.device))
    flat = [
        {
            "data": r["data"],
            "B": r["batch_size"],
            "T": r["series_length"],
            "Tt": r["target_length"],
            "U": r["union_length"],
            **{f"{p}_{k}": r[p][k] for p in ("ours", "union") for k in r[p]},
            "speedup": r["speedup"],
        }
        for r in rows
    ]
    speed = table(
        flat,
        [
            ("data", "data", ""),
            ("B", "B", "d"),
            ("ours_seconds_per_batch", "ours s/batch", ".3f"),
            ("union_seconds_per_batch", "union s/batch", ".2f"),
            ("ours_series_per_second", "ours series/s", ".0f"),
            ("union_series_per_second", "union series/s", ".2f"),
            ("speedup", "speedup", ".1f"),
            ("ours_seconds_per_epoch", "ours s/epoch", ".1f"),
            ("union_seconds_per_epoch", "union s/epoch", ".0f"),
            ("ours_batches_timed", "n ours", "d"),
            ("union_batches_timed", "n union", "d"),
        ],
    )
    work = table(
        flat,
        [
            ("data", "data", ""),
            ("T", "T ctx", ".0f"),
            ("Tt", "T tgt", ".0f"),
            ("U", "union U", ".0f"),
            ("ours_encoder_nfe_per_batch", "ours enc NFE", ".0f"),
            ("union_encoder_nfe_per_batch", "union enc NFE", ".0f"),
            ("ours_decoder_nfe_per_batch", "ours dec NFE", ".0f"),
            ("union_decoder_nfe_per_batch", "union dec NFE", ".0f"),
        ],
    )
    note = (
        "One batch = forward + backward + clip + Adam step, median over batches (first "
        "batch of a path dropped when it timed more than one); speedup = ratio of series/s. "
        "s/epoch = s/batch x ceil(epoch size / B), epoch size "
        + ", ".join(f"{r['data']} {r['epoch_series']}" for r in rows)
        + ". T ctx/T tgt: longest context/target series per batch (ours: sequential encoder "
        "steps); union U: the batch's union of stamps (union: sequential encoder steps and "
        "decoder output times). NFE: vector-field calls per batch, forward (the read-out "
        "adds none). Clinical: " + training.SETUPS["clinical"].note + "."
    )
    title = header("Training throughput: ours (per-series) vs union grid (2019)", ctx.info)
    by = {r["data"]: r for r in rows}
    figures = {}
    if "clinical" in by:
        clinical = by["clinical"]
        figures["train_speedup_vs_union_clinical"] = clinical["speedup"]
        figures["train_seconds_per_batch_clinical_1min_harness"] = clinical["ours"][
            "seconds_per_batch"
        ]
        figures["train_seconds_per_batch_union_clinical_1min"] = clinical["union"][
            "seconds_per_batch"
        ]
    for name in ("spiral", "periodic"):
        if name in by:
            figures[f"train_speedup_vs_union_{name}"] = by[name]["speedup"]
    return Result(rows, [title + speed + "\n", work + "\n" + note], figures)


def _equal_epochs_row(name: str, res: dict, epochs: int) -> dict:
    return {
        "data": name,
        "n_train": res["n_train"],
        "epochs": epochs,
        "ours_mse": res["ours"]["val_mse"][epochs - 1],
        "union_mse": res["union"]["val_mse"][epochs - 1],
        "ours_seconds": res["ours"]["train_seconds"][epochs - 1],
        "union_seconds": res["union"]["train_seconds"][epochs - 1],
    }


@section("quality")
def quality_section(sizes: dict, ctx: Context) -> Result:
    cfg = ctx.sizes["spiral_to_target"]
    spiral = ctx.fixture(spiral_to_target)
    rows = []
    for path in ("ours", "union"):
        run = spiral[path]
        rows.append(
            {
                "path": path,
                "reached": "yes" if run["reached"] else "no (cap hit)",
                "seconds": run["seconds_to_target"],
                "epochs": run["epochs_to_target"],
                "epochs_run": run["epochs"],
                "train_seconds": run["train_seconds"][-1],
                "best": min(run["val_mse"]),
                "last": run["val_mse"][-1],
            }
        )
    to_target = header(f"Time to quality: spiral, val interpolation MSE <= {TARGET_MSE}", ctx.info)
    to_target += table(
        rows,
        [
            ("path", "path", ""),
            ("reached", "reached", ""),
            ("seconds", "train s to target", ".1f"),
            ("epochs", "epochs to target", "d"),
            ("epochs_run", "epochs run", "d"),
            ("train_seconds", "train s run", ".1f"),
            ("best", "best val MSE", ".3f"),
            ("last", "last val MSE", ".3f"),
        ],
    )
    to_target += (
        f"\n{cfg['n_train']} training / {cfg['n_val']} validation spirals (B 16, LatentODE "
        f"defaults); epochs interleaved between the paths; caps: {cfg['max_epochs']} epochs "
        f"or {cfg['max_seconds']:.0f} s of training per path; validation (half of each "
        "series' points given, the other half scored) is not counted in the seconds."
    )

    # validation MSE after the same number of epochs
    n = min(spiral["ours"]["epochs"], spiral["union"]["epochs"])
    same = [_equal_epochs_row("spiral", spiral, n)]
    for name, c in sizes["equal_epochs"].items():
        print(f"  training {name} for {c['epochs']} epochs, both paths ...", flush=True)
        res = training.train_interleaved(
            name, c["n_train"], c["n_val"], None, c["epochs"], float("inf"), ctx.device
        )
        same.append(_equal_epochs_row(name, res, c["epochs"]))
    equal = header("Validation MSE after the same number of epochs", ctx.info)
    equal += table(
        same,
        [
            ("data", "data", ""),
            ("n_train", "train series", "d"),
            ("epochs", "epochs", "d"),
            ("ours_mse", "ours val MSE", ".3f"),
            ("union_mse", "union val MSE", ".3f"),
            ("ours_seconds", "ours train s", ".1f"),
            ("union_seconds", "union train s", ".1f"),
        ],
    )
    if not sizes["equal_epochs"]:
        equal += (
            "\nperiodic and clinical are compared in full mode only (a union-grid clinical "
            "batch takes minutes)."
        )
    figures = {
        "time_to_target_seconds_spiral_ours": spiral["ours"]["seconds_to_target"],
        "time_to_target_seconds_spiral_union": spiral["union"]["seconds_to_target"],
        "time_to_target_reached_spiral_union": spiral["union"]["reached"],
    }
    data = {"time_to_quality": _strip(spiral), "equal_epochs": same}
    return Result(data, [to_target, equal], figures)


@section("memory")
def memory_section(sizes: dict, ctx: Context) -> Result:
    print("  one subprocess per configuration ...", flush=True)
    res = memory.measure(
        sizes["horizons"], MEMORY_BASE_STEPS, str(ctx.device), ctx.threads, sizes["repeats"]
    )
    text = header("Memory of one training step as the horizon grows (fixed-step RK4)", ctx.info)
    text += table(
        res["rows"],
        [
            ("adjoint", "adjoint", ""),
            ("horizon", "horizon x", "d"),
            ("steps", "RK4 steps", "d"),
            ("peak_mib", "peak MiB", ".1f"),
            ("valid", "valid", ""),
            ("seconds", "step s", ".2f"),
            ("nfe_forward", "NFE fwd", "d"),
            ("nfe_backward", "NFE adjoint bwd", "d"),
        ],
    )
    s = res["sizes"]
    how = (
        "torch.cuda.max_memory_allocated during the step minus memory allocated before"
        if res["rows"][0]["method"] == "cuda"
        else "peak RSS (VmHWM) after the step minus RSS just before it, in a fresh subprocess, "
        "with the high-water mark reset before the step and MALLOC_MMAP_THRESHOLD_=65536 (freed "
        "tensors leave the RSS)"
    )
    text += (
        f"\nbatch {s['batch']}, latent {s['latent']}, MLP {s['depth']} x {s['hidden']} tanh, "
        f"{s['outputs']} output times, linear decoder, MSE loss, Adam step; step size "
        f"{memory.STEP_SIZE}; peak = {how}; median of {res['repeats']} run(s).\n"
        f"ratio x{max(sizes['horizons'])}/x{min(sizes['horizons'])}: adjoint "
        f"{res['adjoint_memory_ratio']:.2f} (target < 1.3), backprop "
        f"{res['backprop_memory_ratio']:.2f}"
    )
    figures = {
        "adjoint_memory_ratio_10x": res["adjoint_memory_ratio"],
        "backprop_memory_ratio_10x": res["backprop_memory_ratio"],
    }
    return Result(res, [text], figures)


@section("prediction")
def prediction_section(sizes: dict, ctx: Context) -> Result:
    print(f"  fitting a LatentODE for {sizes['fit_epochs']} epochs ...", flush=True)
    model, fit_seconds = prediction.fit_briefly(sizes["fit_epochs"])
    # None: the estimator's thread policy (1 thread, 2 on idle cores), predict's default
    threads = [None, *sorted({ctx.threads, 2} - {POLICY_THREADS}), POLICY_THREADS]
    rows = prediction.predict_timing(model, sizes["samples"], threads, sizes["repeats"])
    for row in rows:
        t, used = row["threads"], "/".join(str(n) for n in sorted(set(row["threads_used"])))
        row["threads_label"] = f"policy (ran {used})" if t is None else str(t)
    cpu_info = {**ctx.info, "device": "cpu (the estimator predicts on CPU)"}
    title = f"LatentODE.predict: {prediction.N_SERIES} series x {prediction.N_TIMES} query times"
    text = header(title, cpu_info)
    text += table(
        rows,
        [
            ("n_samples", "samples", "d"),
            ("threads_label", "threads", ""),
            ("seconds", "seconds", ".2f"),
            ("decoder_nfe", "decoder NFE", "d"),
        ],
    )
    text += (
        f"\nModel: LatentODE() defaults fitted for {sizes['fit_epochs']} epochs on 200 spirals "
        f"({fit_seconds:.1f} s, Lightning); context: {prediction.N_SERIES} spirals of 40 "
        f"points; the same {prediction.N_TIMES} times for every series; mean and std "
        f"from n_samples posterior samples ({PREDICT_SAMPLES} is predict's default, 100 "
        f"was), batch_size 256; median of {sizes['repeats']} interleaved runs; target < 1 s "
        f"on 2 cores. threads: the estimator's threads= (policy: threads=None, predict's "
        f"default, and the counts its runs chose: 1, or 2 where the machine had an idle "
        f"core)."
    )
    by = {(r["n_samples"], r["threads"]): r["seconds"] for r in rows}
    figures = {  # predict's defaults: PREDICT_SAMPLES, the thread policy
        "predict_1000x100_seconds": by.get((PREDICT_SAMPLES, None)),
        "predict_1000x100_seconds_2threads": by.get((PREDICT_SAMPLES, 2)),
        "predict_1000x100_seconds_100samples": by.get((100, None)),
        "predict_1000x100_seconds_100samples_2threads": by.get((100, 2)),
        "predict_1000x100_seconds_1thread": by.get((PREDICT_SAMPLES, POLICY_THREADS)),
    }
    return Result({"fit_seconds": fit_seconds, "rows": rows}, [text], figures)


@section("tolerance")
def tolerance_section(sizes: dict, ctx: Context) -> Result:
    spiral = ctx.fixture(spiral_to_target)
    rows = prediction.tolerance_tradeoff(
        spiral["_ours"].net, spiral["_val_batches"], RTOLS, ctx.device, sizes["repeats"]
    )
    text = header("Decoder solve tolerance: error against function evaluations", ctx.info)
    text += table(
        rows,
        [
            ("rtol", "rtol", ".0e"),
            ("atol", "atol", ".0e"),
            ("val_mse", "val MSE", ".4f"),
            ("rms_vs_tight", "RMS vs rtol 1e-7", ".2e"),
            ("decoder_nfe_per_batch", "NFE/batch", ".1f"),
            ("seconds", "seconds", ".3f"),
        ],
    )
    text += (
        "\ndopri5 on the spiral model trained to the quality target (our path; shared with "
        "the quality section), posterior mean, 48 validation spirals in batches of 16; MSE "
        "in scaled units against the held-out points; the read-out adds no evaluation."
    )
    return Result(rows, [text])


@section("profile")
def profile_section(sizes: dict, ctx: Context) -> Result:
    prof = training.profile_step("clinical", ctx.device)
    total = sum(p["seconds"] for p in prof["phases"])
    for p in prof["phases"]:
        p["share"] = p["seconds"] / total
    text = header("Where our clinical training step's time goes (B 50, 2019 settings)", ctx.info)
    text += table(
        prof["phases"], [("phase", "phase", ""), ("seconds", "s", ".3f"), ("share", "share", ".0%")]
    )
    text += (
        f"\nencoder alone, forward + backward: {prof['encoder_forward_backward_seconds']:.3f} s "
        f"(longest context {prof['series_length']}, longest target {prof['target_length']})\n"
    )
    ops = table(
        prof["ops"],
        [
            ("op", "torch op (one step, forward + backward + Adam)", ""),
            ("calls", "calls", "d"),
            ("self_seconds", "self s", ".3f"),
            ("total_seconds", "total s", ".3f"),
        ],
    )
    return Result(prof, [text, ops])
