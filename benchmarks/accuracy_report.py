"""The accuracy benchmark's summaries and tables (see ``accuracy.py``): means over seeds,
the latent ODE's ratio to each task's reference baseline, two runs side by side
(``--compare``) and runs merged into one (``--merge``)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

TASKS = ("interp", "forecast")
REFERENCE = {"interp": "linear", "forecast": "locf"}  # what the latent ODE must beat
COVERAGE_TARGET = (0.80, 0.97)


def mean_se(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and standard error (None with fewer than two values) of the non-None values."""
    vals = np.array([v for v in values if v is not None], dtype=float)
    if len(vals) == 0:
        return None, None
    se = float(vals.std(ddof=1) / np.sqrt(len(vals))) if len(vals) > 1 else None
    return float(vals.mean()), se


def summarise(records: list[dict]) -> list[dict]:
    """Mean and standard error over seeds per (set, task, method); for the latent ODE also
    its mse ratio to the task's reference baseline (paired by seed) and the targets met."""
    by = defaultdict(list)
    for r in records:
        by[r["set"], r["task"], r["method"]].append(r)
    rows = []
    for (name, task, method), rs in by.items():
        row = {"set": name, "task": task, "method": method, "seeds": [r["seed"] for r in rs]}
        row["skipped"] = [r["skipped"] for r in rs]  # per seed
        for key in ("mse", "mae", "coverage", "fit_s"):
            row[key], row[f"{key}_se"] = mean_se([r.get(key) for r in rs])
        row["errors"] = sorted({r["error"] for r in rs if r.get("error")})
        if method == "latentode":
            ref = {r["seed"]: r["mse"] for r in by.get((name, task, REFERENCE[task]), [])}
            ratios = [r["mse"] / ref[r["seed"]] for r in rs if r["mse"] and ref.get(r["seed"])]
            row["ratio"], row["ratio_se"] = mean_se(ratios)
            row["beats_reference"] = row["ratio"] is not None and row["ratio"] < 1
            cov = row["coverage"]
            row["coverage_ok"] = cov is not None and COVERAGE_TARGET[0] <= cov <= COVERAGE_TARGET[1]
        rows.append(row)
    return rows


def paired_records(before: dict, after: dict) -> dict[str, list[dict]]:
    """The records of two results files that can be compared: those of the seeds both
    hold (a one-seed screen against a three-seed run compares that seed alone; where
    both files have the latent ODE on a set and task, the seeds both have it for, so a
    run stopped part way compares what it finished), and in a file without the reference
    baselines' records for a (set, task, seed) the other file's (the baselines do not
    depend on the model, so a screen may run the latent ODE alone). Returns
    {"before": [...], "after": [...]}."""
    seeds = set(before["seeds"]) & set(after["seeds"])
    if not seeds:
        raise SystemExit(
            f"--compare: the files share no seed ({before['seeds']} / {after['seeds']})"
        )
    fitted = [
        {(r["set"], r["task"], r["seed"]) for r in result["records"] if r["method"] == "latentode"}
        for result in (before, after)
    ]
    both = fitted[0] & fitted[1]
    in_both = {(name, task) for name, task, _ in both}

    def comparable(r: dict) -> bool:
        if r["seed"] not in seeds:
            return False
        return (r["set"], r["task"]) not in in_both or (r["set"], r["task"], r["seed"]) in both

    kept = {
        which: [r for r in result["records"] if comparable(r)]
        for which, result in (("before", before), ("after", after))
    }
    references = set(REFERENCE.values())
    out = {}
    for which, other in (("before", "after"), ("after", "before")):
        have = {(r["set"], r["task"], r["method"], r["seed"]) for r in kept[which]}
        borrowed = [
            r
            for r in kept[other]
            if r["method"] in references
            and (r["set"], r["task"], r["method"], r["seed"]) not in have
        ]
        out[which] = kept[which] + borrowed
    return out


def comparison_table(before: dict, after: dict) -> str:
    """Markdown: per set and task, the latent ODE's ratio to the reference baseline and
    its 90% coverage in two results files (e.g. two commits on the same sets), over the
    seeds both hold (:func:`paired_records`)."""
    rows = {}
    for which, records in paired_records(before, after).items():
        for row in summarise(records):
            if row["method"] == "latentode":
                rows.setdefault((row["task"], row["set"]), {})[which] = row
    lines = [
        "| task | set | ratio before | ratio after | cov90 before | cov90 after |",
        "|---|---|---|---|---|---|",
    ]
    met, changes = Counter(), defaultdict(list)
    for (task, name), pair in sorted(rows.items()):
        b, a = pair.get("before", {}), pair.get("after", {})
        cells = [
            *(fmt(row.get("ratio"), row.get("ratio_se"), ".2f") for row in (b, a)),
            *(fmt(row.get("coverage"), None, ".2f") for row in (b, a)),
        ]
        lines.append(f"| {task} | {name} | " + " | ".join(cells) + " |")
        for which, row in (("before", b), ("after", a)):
            met[which, "wins"] += bool(row.get("beats_reference"))
            met[which, "covered"] += bool(row.get("coverage_ok"))
        if b.get("ratio") and a.get("ratio"):
            changes[task].append(float(np.log(a["ratio"] / b["ratio"])))
    lines.append(
        f"\nBeats the reference: {met['before', 'wins']} before, {met['after', 'wins']} after; "
        f"coverage within 80-97%: {met['before', 'covered']} before, "
        f"{met['after', 'covered']} after (of {len(rows)} set-task pairs)."
    )
    lines.append(
        "Geometric mean over sets of the ratio's change (after / before): "
        + "; ".join(f"{t} {np.exp(np.mean(v)):.3f} ({len(v)} sets)" for t, v in changes.items())
        + "."
    )
    return "\n".join(lines)


def fmt(mean: float | None, se: float | None, spec: str = ".3g") -> str:
    """``mean±se`` (``n/a`` without a mean, no ``±`` without a standard error)."""
    if mean is None:
        return "n/a"
    return format(mean, spec) + ("" if se is None else "±" + format(se, ".2g"))


def markdown_tables(summary: list[dict], methods: Sequence[str], sets: Sequence[str]) -> str:
    """One markdown table per task: scaled MSE per method, latent ODE coverage and ratio."""
    cell = {(r["set"], r["task"], r["method"]): r for r in summary}
    out = []
    for task in TASKS:
        lode = {name: cell.get((name, task, "latentode")) for name in sets}
        has_lode = any(lode.values())
        head = ["set", *methods]
        if has_lode:
            head += ["latentode cov90", f"latentode / {REFERENCE[task]}"]
        lines = [f"\n### {task}: scaled MSE (mean±se over seeds)\n", "| " + " | ".join(head) + " |"]
        lines.append("|" + "---|" * len(head))
        for name in sets:
            row = [name]
            for m in methods:
                r = cell.get((name, task, m)) or {"mse": None, "mse_se": None, "errors": []}
                row.append("error" if r["errors"] else fmt(r["mse"], r["mse_se"]))
            if (ode := lode[name]) is not None:
                row.append(fmt(ode["coverage"], ode["coverage_se"], ".2f"))
                row.append(fmt(ode["ratio"], ode["ratio_se"], ".2f"))
            lines.append("| " + " | ".join(row) + " |")
        skipped = {
            r["set"]: r["skipped"] for r in summary if r["task"] == task and any(r["skipped"])
        }
        if skipped:
            lines.append(f"\nSeries with fewer than 2 points, not scored: {skipped}")
        if has_lode and REFERENCE[task] not in methods:
            lines.append(f"\nNo ratio: add {REFERENCE[task]} to --methods.")
        elif has_lode:
            lo_c, hi_c = COVERAGE_TARGET
            wins = [n for n, r in lode.items() if r and r["beats_reference"]]
            cover = [n for n, r in lode.items() if r and r["coverage_ok"]]
            lines.append(
                f"\nTargets: latentode beats {REFERENCE[task]} on {len(wins)}/{len(sets)} sets "
                f"({', '.join(wins) or 'none'}); 90% coverage within {lo_c:.0%}-{hi_c:.0%} on "
                f"{len(cover)}/{len(sets)} ({', '.join(cover) or 'none'})."
            )
        out.append("\n".join(lines))
    return "\n".join(out)


def merge_results(results: list[dict]) -> dict:
    """One results dict from runs of other methods or other sets, with the same seeds and
    protocol (the first run's machine; sets and methods in order; the records of all)."""
    first = results[0]
    for other in results[1:]:
        for key in ("seeds", "protocol", "quick"):
            if other[key] != first[key]:
                raise SystemExit(f"--merge: the runs differ in {key}: {first[key]} / {other[key]}")
    records = [rec for r in results for rec in r["records"]]
    keys = [(rec["set"], rec["task"], rec["method"], rec["seed"]) for rec in records]
    if len(set(keys)) != len(keys):
        twice = sorted({k for k in keys if keys.count(k) > 1})
        raise SystemExit(f"--merge: a (set, task, method, seed) appears in two runs: {twice[0]}")
    sets = list(dict.fromkeys(n for r in results for n in r["sets"]))
    methods = list(dict.fromkeys(m for r in results for m in r["methods"]))
    complete = all(r.get("complete", True) for r in results)
    return {**first, "sets": sets, "methods": methods, "records": records,
            "summary": summarise(records), "complete": complete,
            "wall_s": sum(r["wall_s"] for r in results)}  # fmt: skip
