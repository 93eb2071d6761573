"""Monte Carlo error of ``predict``'s summaries against its number of posterior samples.

Per data set (``accuracy.py``'s loading, its first split at seed 0, quick generator
sizes): fit ``LatentODE()`` with its defaults on the training series, then for each task
(``interp``, ``forecast``, as in ``accuracy.py``, contexts drawn with seed 0) predict the
scored times with 5% and 95% quantiles at ``--reference`` samples (seed 999) and, for
each ``--samples`` count, at seeds 0 .. ``--seeds``-1. The error of a summary (mean,
std, q5, q95) is the root mean square over the scored rows of its difference from the
reference run, in units of the reference's predictive std; the table gives its average
over seeds and channels.

    python benchmarks/sampling_error.py                          # 5 sets, ~10 min on 2 cores
    python benchmarks/sampling_error.py --sets spiral,indometh --samples 16 32

Run it against another tree's library with ``PYTHONPATH=that_tree`` (the figures in
RESULTS.md for the code before antithetic draws and mixture quantiles came that way).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

SUMMARIES = {"mean": "", "std": "_std", "q5": "_q5", "q95": "_q95"}


def errors_by_samples(
    name: str, sample_counts: list[int], n_seeds: int, reference: int
) -> dict[str, dict[int, dict[str, float]]]:
    """{task: {samples: {summary: mean RMS error in reference stds}}} for one data set."""
    import accuracy

    df, channels = accuracy.load_set(name, quick=True)
    ids = list(dict.fromkeys(df[accuracy.ID]))
    train_ids, test_ids = accuracy.folds(ids, 0)[0]
    train = df[df[accuracy.ID].isin(train_ids)]
    test = df[df[accuracy.ID].isin(test_ids)]
    model, _, _ = accuracy.fit_model("latentode", train, 0, {}, None)
    out = {}
    for task in accuracy.TASKS:
        context, scored, _ = accuracy.make_task(test, task, np.random.default_rng(0))
        times = {
            sid: rows[accuracy.TIME].to_numpy()
            for sid, rows in scored.groupby(accuracy.ID, sort=False)
        }

        def predict(n_samples: int, seed: int, context=context, times=times):
            pred = model.predict(
                context, times=times, n_samples=n_samples, quantiles=(0.05, 0.95), seed=seed
            )
            return pred.sort_values([accuracy.ID, accuracy.TIME], kind="stable")

        ref = predict(reference, 999)
        out[task] = {}
        for n_samples in sample_counts:
            errs: dict[str, list[float]] = {k: [] for k in SUMMARIES}
            for seed in range(n_seeds):
                pred = predict(n_samples, seed)
                for c in channels:
                    std = ref[f"{c}_std"].to_numpy()
                    for key, suffix in SUMMARIES.items():
                        diff = pred[f"{c}{suffix}"].to_numpy() - ref[f"{c}{suffix}"].to_numpy()
                        errs[key].append(float(np.sqrt(np.nanmean((diff / std) ** 2))))
            out[task][n_samples] = {k: float(np.mean(v)) for k, v in errs.items()}
    return out


def main(argv: list[str] | None = None) -> dict:
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="theoph,oxboys,milk,spiral,indometh")
    parser.add_argument("--samples", type=int, nargs="+", default=[16, 32, 64, 100])
    parser.add_argument("--seeds", type=int, default=5, help="prediction seeds per count")
    parser.add_argument("--reference", type=int, default=4000, help="samples of the reference")
    parser.add_argument("--json", type=Path, help="where to write the results")
    args = parser.parse_args(argv)
    results = {}
    print("mean RMS error over seeds and channels, in predictive stds of the reference")
    print(f"{'set/task':<22}{'samples':>8}" + "".join(f"{k:>8}" for k in SUMMARIES))
    for name in args.sets.split(","):
        for task, rows in errors_by_samples(name, args.samples, args.seeds, args.reference).items():
            results[f"{name}/{task}"] = rows
            for n_samples, errs in rows.items():
                cells = "".join(f"{errs[k]:8.3f}" for k in SUMMARIES)
                print(f"{name + '/' + task:<22}{n_samples:>8}{cells}", flush=True)
    if args.json is not None:
        record = {"command": " ".join(["python", *sys.argv]), "results": results}
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
