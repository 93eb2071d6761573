"""The suite's sections for issue 14's figures: speed next to a CPU-bound process, the
union-grid step's parts, the clinical step against the baseline commit and read_csv
against pandas (registered after ``sections.py``'s by :func:`suite.section`).
"""

from __future__ import annotations

import resource

import busy
import read_csv
import step_speed
import training
import union_reference
from harness import header, table, timed
from suite import Context, Result, section


@section("busy")
def busy_section(sizes: dict, ctx: Context) -> Result:
    print("\n## Busy machine: idle against one CPU-bound process beside (benchmarks/busy.py)")
    result = busy.run(sizes)
    info = {**ctx.info, "device": "cpu (fit and predict on CPU)", "threads": "per row"}
    text = header("Speed on a busy machine: thread policy against torch's default", info)
    return Result(result, [text + busy.render(result)], result["figures"])


@section("union_profile", quick=False)  # minutes on CPU: full mode, or ask with --only
def union_profile_section(sizes: dict, ctx: Context) -> Result:
    setup = training.SETUPS["clinical"]
    data = setup.make(setup.batch_size, 0)
    _, _, union = training.make_paths(setup, data, ctx.device)
    batch = union.collate(training.epoch_batches(data, setup.batch_size, 0)[0])
    print("  timing the union path's parts on one clinical batch ...", flush=True)
    parts = union_reference.component_seconds(union.union, batch, ctx.device)
    rows = [{"part": k, **v} for k, v in parts.items()]
    before = resource.getrusage(resource.RUSAGE_SELF)
    _, seconds = timed(lambda: union.step(batch), ctx.device)
    after = resource.getrusage(resource.RUSAGE_SELF)
    rows.append(
        {
            "part": "whole training step",
            "total": seconds,
            "user": after.ru_utime - before.ru_utime,
            "sys": after.ru_stime - before.ru_stime,
            "backward_page_faults": after.ru_minflt - before.ru_minflt,
        }
    )
    text = header("Where the union-grid (2019) clinical step's time goes (B 50)", ctx.info)
    text += table(
        rows,
        [
            ("part", "part", ""),
            ("forward", "forward s", ".2f"),
            ("backward", "backward s", ".2f"),
            ("total", "step s", ".1f"),
            ("user", "user s", ".1f"),
            ("sys", "sys s", ".1f"),
            ("backward_page_faults", "page faults", ",d"),
        ],
    )
    text += (
        f"\nunion of {batch.times.shape[0]} stamps; each part timed apart (its own backward, "
        "page faults during it), then one whole step (page faults and CPU time over the step)."
    )
    return Result({"union_length": int(batch.times.shape[0]), "parts": rows}, [text])


@section("step_speed")
def step_speed_section(sizes: dict, ctx: Context) -> Result:
    print(f"\n## The clinical step through fit: this tree against {step_speed.BASELINE}")
    summary = step_speed.measure(sizes, step_speed.BASELINE)
    rows = [
        {"tree": f"baseline {step_speed.BASELINE}", **summary["baseline"]},
        {"tree": "this tree", **summary["current"]},
    ]
    for row in rows:
        row["fits"] = ", ".join(f"{s:.3f}" for s in row["per_fit_medians"])
        row["mse"] = ", ".join(f"{v:.3f}" for v in row["val_mse_per_epoch"])
    info = {**ctx.info, "device": "cpu", "threads": "1 (the thread policy)"}
    text = header("Clinical training step through LatentODE.fit, against the baseline", info)
    text += table(
        rows,
        [
            ("tree", "tree", ""),
            ("median_step_seconds", "s/step", ".3f"),
            ("fits", "per-fit medians", ""),
            ("mse", "val MSE per epoch", ""),
        ],
    )
    text += (
        f"\nspeedup {summary['speedup']:.2f}x. Batch {step_speed.BATCH}, 2019 size, "
        f"{sizes['n_train']} training / {sizes['n_val']} validation stays of the clinical "
        f"generator (1-minute times), {sizes['epochs']} epochs per fit, {sizes['rounds']} "
        "rounds alternating the trees; a step is timed by a Lightning callback (forward, "
        "backward, clip, Adam), the first of each fit left out."
    )
    figures = {
        "train_seconds_per_batch_clinical_1min": summary["current"]["median_step_seconds"],
        "train_seconds_per_batch_clinical_1min_baseline": summary["baseline"][
            "median_step_seconds"
        ],
        "train_step_speedup_vs_baseline": summary["speedup"],
    }
    return Result(summary, [text], figures)


@section("read_csv")
def read_csv_section(sizes: dict, ctx: Context) -> Result:
    print("\n## read_csv against pandas.read_csv (benchmarks/read_csv.py)")
    argv = list(sizes.get("argv", []))
    ratio = read_csv.main(argv)  # 1,000,000 rows in both modes: the size
    return Result({"ratio": ratio, "argv": argv}, figures={"read_csv_over_pandas": ratio})
