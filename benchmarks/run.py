"""latentode's benchmark suite: speed, memory and accuracy against the 2019 union-grid approach.

    python benchmarks/run.py --quick               # about 3-5 minutes on 2 CPU cores
    python benchmarks/run.py                       # full sizes and repeats (30-40 minutes)
    python benchmarks/run.py --device cuda         # the parts that run on a GPU, on the GPU
    python benchmarks/run.py --quick --only memory prediction

Sections (see benchmarks/README.md): encoder grid, training throughput, validation MSE
after equal epochs, time to quality, memory (adjoint against backprop), prediction,
solver tolerance, and a profile of our clinical training step. Every table is headed
by the machine, device, torch version, torch threads and the command. All figures go
to ``benchmarks/results/latest.json`` (``--out``) and the printed text next to it
(``latest.txt``).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import encoder_grid
import memory
import prediction
import torch
import training
import union_reference
from harness import Tee, header, machine_info, table, timed

RESULTS = Path(__file__).resolve().parent / "results"
SECTIONS = (
    "encoder_grid",
    "training",
    "quality",
    "memory",
    "prediction",
    "profile",
    "union_profile",
)
QUICK_SKIPS = ("union_profile",)  # minutes on CPU: full mode, or ask with --only

# Sizes per mode. Throughput: (rounds, our batches per round) -- each round times one
# union-grid batch; time to quality: spiral until the validation MSE reaches the target.
MODES = {
    "quick": {
        "throughput": {"spiral": (3, 2), "periodic": (2, 2), "clinical": (1, 3)},
        "quality": {"n_train": 200, "n_val": 48, "max_epochs": 40, "max_seconds": 30.0},
        "equal_epochs": {},
        "memory": {"horizons": [1, 10], "repeats": 1},
        "predict": {"samples": [100, 10], "repeats": 2, "fit_epochs": 5},
        "tolerance_repeats": 1,
    },
    "full": {
        "throughput": {"spiral": (5, 3), "periodic": (5, 2), "clinical": (3, 3)},
        "quality": {"n_train": 200, "n_val": 48, "max_epochs": 150, "max_seconds": 300.0},
        "equal_epochs": {
            "periodic": {"n_train": 160, "n_val": 48, "epochs": 5},
            "clinical": {"n_train": 100, "n_val": 50, "epochs": 2},
        },
        "memory": {"horizons": [1, 2, 5, 10], "repeats": 3},
        "predict": {"samples": [100, 10], "repeats": 5, "fit_epochs": 5},
        "tolerance_repeats": 3,
    },
}
TARGET_MSE = 0.2  # spiral validation interpolation MSE, scaled units (noise floor ~0.003)
MEMORY_BASE_STEPS = 10  # RK4 steps at horizon x1
RTOLS = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]


def run_encoder_grid(args, mode: str) -> dict:
    out = Path(tempfile.gettempdir()) / "latentode_encoder_grid.json"  # kept in latest.json
    argv = ["--device", args.device, "--threads", str(args.threads), "--out", str(out)]
    print("\n## Encoder: per-series clock against the union grid (benchmarks/encoder_grid.py)")
    result = encoder_grid.main(argv + (["--quick"] if mode == "quick" else []))
    at_64 = next((r["ratio"] for r in result["rows"] if r["B"] == 64), None)
    return {"result": result, "figures": {"encoder_grid_speedup_b64": at_64}}


def run_training(args, mode: str, info: dict, device: torch.device) -> dict:
    rows = []
    for name, (rounds, per_round) in MODES[mode]["throughput"].items():
        print(f"  timing {name} ...", flush=True)
        rows.append(training.throughput(name, rounds, per_round, device))
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
    print(header("Training throughput: ours (per-series) vs union grid (2019)", info))
    print(
        table(
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
    )
    print()
    print(
        table(
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
    )
    print(
        "One batch = forward + backward + clip + Adam step, median over batches (first "
        "batch of a path dropped when it timed more than one); speedup = ratio of series/s. "
        "s/epoch = s/batch x ceil(epoch size / B), epoch size "
        + ", ".join(f"{r['data']} {r['epoch_series']}" for r in rows)
        + ". T ctx/T tgt: longest context/target series per batch (ours: sequential encoder "
        "steps); union U: the batch's union of stamps (union: sequential encoder steps and "
        "decoder output times). NFE: vector-field calls per batch, forward (the read-out "
        "adds none). Clinical: " + training.SETUPS["clinical"].note + "."
    )
    by = {r["data"]: r for r in rows}
    figures = {
        "train_speedup_vs_union_clinical": by["clinical"]["speedup"],
        "train_seconds_per_batch_clinical_1min": by["clinical"]["ours"]["seconds_per_batch"],
        "train_seconds_per_batch_union_clinical_1min": by["clinical"]["union"]["seconds_per_batch"],
        "train_speedup_vs_union_spiral": by["spiral"]["speedup"],
        "train_speedup_vs_union_periodic": by["periodic"]["speedup"],
    }
    return {"rows": rows, "figures": figures}


def _strip(d: dict) -> dict:
    return {k: v for k, v in d.items() if not k.startswith("_")}


def run_quality(args, mode: str, info: dict, device: torch.device) -> dict:
    cfg = MODES[mode]["quality"]
    print(f"  training spiral, both paths, until val MSE <= {TARGET_MSE} ...", flush=True)
    spiral = training.train_interleaved(
        "spiral",
        cfg["n_train"],
        cfg["n_val"],
        TARGET_MSE,
        cfg["max_epochs"],
        cfg["max_seconds"],
        device,
    )
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
    print(header(f"Time to quality: spiral, val interpolation MSE <= {TARGET_MSE}", info))
    print(
        table(
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
    )
    print(
        f"{cfg['n_train']} training / {cfg['n_val']} validation spirals (B 16, LatentODE "
        f"defaults); epochs interleaved between the paths; caps: {cfg['max_epochs']} epochs "
        f"or {cfg['max_seconds']:.0f} s of training per path; validation (half of each "
        "series' points given, the other half scored) is not counted in the seconds."
    )

    # validation MSE after the same number of epochs
    same = []
    n = min(spiral["ours"]["epochs"], spiral["union"]["epochs"])
    same.append(_equal_epochs_row("spiral", spiral, n))
    for name, c in MODES[mode]["equal_epochs"].items():
        print(f"  training {name} for {c['epochs']} epochs, both paths ...", flush=True)
        res = training.train_interleaved(
            name, c["n_train"], c["n_val"], None, c["epochs"], float("inf"), device
        )
        same.append(_equal_epochs_row(name, res, c["epochs"]))
    print(header("Validation MSE after the same number of epochs", info))
    print(
        table(
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
    )
    if not MODES[mode]["equal_epochs"]:
        print(
            "periodic and clinical are compared in full mode only (a union-grid clinical "
            "batch takes minutes)."
        )
    ttq = {p: spiral[p]["seconds_to_target"] for p in ("ours", "union")}
    figures = {
        "time_to_target_seconds_spiral_ours": ttq["ours"],
        "time_to_target_seconds_spiral_union": ttq["union"],
        "time_to_target_reached_spiral_union": spiral["union"]["reached"],
    }
    return {
        "time_to_quality": _strip(spiral),
        "equal_epochs": same,
        "figures": figures,
        "_net": spiral["_ours"].net,
        "_val_batches": spiral["_val_batches"],
    }


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


def run_memory(args, mode: str, info: dict) -> dict:
    cfg = MODES[mode]["memory"]
    print("  one subprocess per configuration ...", flush=True)
    res = memory.measure(
        cfg["horizons"], MEMORY_BASE_STEPS, args.device, args.threads, cfg["repeats"]
    )
    print(header("Memory of one training step as the horizon grows (fixed-step RK4)", info))
    print(
        table(
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
    )
    s = res["sizes"]
    method = res["rows"][0]["method"]
    how = (
        "torch.cuda.max_memory_allocated during the step minus memory allocated before"
        if method == "cuda"
        else "peak RSS (VmHWM) after the step minus RSS just before it, in a fresh subprocess, "
        "with the high-water mark reset before the step and MALLOC_MMAP_THRESHOLD_=65536 (freed "
        "tensors leave the RSS)"
    )
    print(
        f"batch {s['batch']}, latent {s['latent']}, MLP {s['depth']} x {s['hidden']} tanh, "
        f"{s['outputs']} output times, linear decoder, MSE loss, Adam step; step size "
        f"{memory.STEP_SIZE}; peak = {how}; median of {res['repeats']} run(s).\n"
        f"ratio x{max(cfg['horizons'])}/x{min(cfg['horizons'])}: adjoint "
        f"{res['adjoint_memory_ratio']:.2f} (target < 1.3), backprop "
        f"{res['backprop_memory_ratio']:.2f}"
    )
    figures = {
        "adjoint_memory_ratio_10x": res["adjoint_memory_ratio"],
        "backprop_memory_ratio_10x": res["backprop_memory_ratio"],
    }
    return {"result": res, "figures": figures}


def run_prediction(args, mode: str, info: dict, device: torch.device, quality: dict | None):
    cfg = MODES[mode]["predict"]
    print(f"  fitting a LatentODE for {cfg['fit_epochs']} epochs ...", flush=True)
    model, fit_seconds = prediction.fit_briefly(cfg["fit_epochs"])
    threads = sorted({args.threads, 2})  # the target is on 2 cores: predict's default threads
    rows = prediction.predict_timing(model, cfg["samples"], threads, cfg["repeats"])
    cpu_info = {**info, "device": "cpu (the estimator predicts on CPU)"}
    title = f"LatentODE.predict: {prediction.N_SERIES} series x {prediction.N_TIMES} query times"
    print(header(title, cpu_info))
    print(
        table(
            rows,
            [
                ("n_samples", "samples", "d"),
                ("threads", "threads", "d"),
                ("seconds", "seconds", ".2f"),
                ("decoder_nfe", "decoder NFE", "d"),
            ],
        )
    )
    print(
        f"Model: LatentODE() defaults fitted for {cfg['fit_epochs']} epochs on 200 spirals "
        f"({fit_seconds:.1f} s, Lightning); context: {prediction.N_SERIES} spirals of 40 "
        f"points; the same {prediction.N_TIMES} times for every series; mean and std "
        f"from n_samples posterior samples (100 is predict's default), batch_size 256; "
        f"median of {cfg['repeats']} interleaved runs; target < 2 s."
    )
    by = {(r["n_samples"], r["threads"]): r["seconds"] for r in rows}
    figures = {
        "predict_1000x100_seconds": by[(100, 2)],  # both cores, as predict uses by default
        "predict_1000x100_seconds_10samples": by[(10, 2)],
        f"predict_1000x100_seconds_{args.threads}thread": by[(100, args.threads)],
    }
    out = {"fit_seconds": fit_seconds, "rows": rows, "figures": figures}

    if quality is not None:
        tol = prediction.tolerance_tradeoff(
            quality["_net"],
            quality["_val_batches"],
            RTOLS,
            device,
            MODES[mode]["tolerance_repeats"],
        )
        print(header("Decoder solve tolerance: error against function evaluations", info))
        print(
            table(
                tol,
                [
                    ("rtol", "rtol", ".0e"),
                    ("atol", "atol", ".0e"),
                    ("val_mse", "val MSE", ".4f"),
                    ("rms_vs_tight", "RMS vs rtol 1e-7", ".2e"),
                    ("decoder_nfe_per_batch", "NFE/batch", ".1f"),
                    ("seconds", "seconds", ".3f"),
                ],
            )
        )
        print(
            "dopri5 on the spiral model trained in 'time to quality' (our path), posterior "
            "mean, 48 validation spirals in batches of 16; MSE in scaled units against the "
            "held-out points; the read-out adds no evaluation."
        )
        out["tolerance"] = tol
    return out


def run_profile(args, info: dict, device: torch.device) -> dict:
    prof = training.profile_step("clinical", device)
    print(header("Where our clinical training step's time goes (B 50, 2019 settings)", info))
    total = sum(p["seconds"] for p in prof["phases"])
    for p in prof["phases"]:
        p["share"] = p["seconds"] / total
    columns = [("phase", "phase", ""), ("seconds", "s", ".3f"), ("share", "share", ".0%")]
    print(table(prof["phases"], columns))
    print(
        f"encoder alone, forward + backward: {prof['encoder_forward_backward_seconds']:.3f} s "
        f"(longest context {prof['series_length']}, longest target {prof['target_length']})\n"
    )
    print(
        table(
            prof["ops"],
            [
                ("op", "torch op (one step, forward + backward + Adam)", ""),
                ("calls", "calls", "d"),
                ("self_seconds", "self s", ".3f"),
                ("total_seconds", "total s", ".3f"),
            ],
        )
    )
    return prof


def run_union_profile(info: dict, device: torch.device) -> dict:
    setup = training.SETUPS["clinical"]
    data = setup.make(setup.batch_size, 0)
    _, _, union = training.make_paths(setup, data, device)
    batch = union.collate(training.epoch_batches(data, setup.batch_size, 0)[0])
    print("  timing the union path's parts on one clinical batch ...", flush=True)
    parts = union_reference.component_seconds(union.union, batch, device)
    rows = [{"part": k, **v} for k, v in parts.items()]
    before = resource.getrusage(resource.RUSAGE_SELF)
    _, seconds = timed(lambda: union.step(batch), device)
    after = resource.getrusage(resource.RUSAGE_SELF)
    whole = {
        "part": "whole training step",
        "total": seconds,
        "user": after.ru_utime - before.ru_utime,
        "sys": after.ru_stime - before.ru_stime,
        "backward_page_faults": after.ru_minflt - before.ru_minflt,
    }
    rows.append(whole)
    print(header("Where the union-grid (2019) clinical step's time goes (B 50)", info))
    columns = [
        ("part", "part", ""),
        ("forward", "forward s", ".2f"),
        ("backward", "backward s", ".2f"),
        ("total", "step s", ".1f"),
        ("user", "user s", ".1f"),
        ("sys", "sys s", ".1f"),
        ("backward_page_faults", "page faults", ",d"),
    ]
    print(table(rows, columns))
    print(
        f"union of {batch.times.shape[0]} stamps; each part timed apart (its own backward, "
        "page faults during it), then one whole step (page faults and CPU time over the step)."
    )
    return {"union_length": int(batch.times.shape[0]), "parts": rows}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads for everything timed (default 1: the ops are small)",
    )
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for but CUDA is not available here.")
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    mode = "quick" if args.quick else "full"
    sections = args.only or [s for s in SECTIONS if mode == "full" or s not in QUICK_SKIPS]
    tee = Tee(sys.stdout)
    sys.stdout = tee
    start = time.perf_counter()
    info = machine_info(device, ["benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)])
    results: dict = {"machine": info, "mode": mode, "sections": {}}
    figures: dict = {}
    try:
        if "encoder_grid" in sections:
            res = run_encoder_grid(args, mode)
            results["sections"]["encoder_grid"] = res["result"]
            figures.update(res["figures"])
        if "training" in sections:
            res = run_training(args, mode, info, device)
            results["sections"]["training"] = res["rows"]
            figures.update(res["figures"])
        quality = None
        if "quality" in sections:
            quality = run_quality(args, mode, info, device)
            results["sections"]["quality"] = _strip(quality)
            figures.update(quality["figures"])
        if "memory" in sections:
            res = run_memory(args, mode, info)
            results["sections"]["memory"] = res["result"]
            figures.update(res["figures"])
        if "prediction" in sections:
            res = run_prediction(args, mode, info, device, quality)
            results["sections"]["prediction"] = res
            figures.update(res["figures"])
        if "profile" in sections:
            results["sections"]["profile"] = run_profile(args, info, device)
        if "union_profile" in sections:
            results["sections"]["union_profile"] = run_union_profile(info, device)
        results["figures"] = figures
        results["seconds"] = time.perf_counter() - start
        print("\n## Figures")
        for key, value in figures.items():
            text = f"{value:.4g}" if isinstance(value, float) else str(value)
            print(f"{key:>45}: {text}")
        print(f"\ntotal {results['seconds']:.0f} s")
    finally:
        sys.stdout = tee.stream
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    args.out.with_suffix(".txt").write_text(tee.text())
    print(f"wrote {args.out} and {args.out.with_suffix('.txt')}")
    return results


if __name__ == "__main__":
    main()
