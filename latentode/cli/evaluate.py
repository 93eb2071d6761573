"""``latentode evaluate``: hide part of each series, predict it and print the errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from latentode.cli.flags import add_column_args, add_sampling_args, columns, sampling
from latentode.cli.tables import fmt, table


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``evaluate`` and its flags to the subcommands ``sub``."""
    evaluate = sub.add_parser(
        "evaluate",
        help="score a fitted model on held-out points",
        description="Hide part of each series, predict it and print the errors.",
    )
    evaluate.add_argument("model", metavar="MODEL", help="model file written by fit")
    evaluate.add_argument("data", metavar="DATA.csv", help="series to evaluate on")
    evaluate.add_argument("--task", choices=("interp", "extrap"), default="interp")
    evaluate.add_argument(
        "--frac",
        type=float,
        default=0.5,
        help="interp: share of points kept as context; extrap: share of the span (default 0.5)",
    )
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    add_sampling_args(evaluate)
    add_column_args(evaluate, defaults=False)
    evaluate.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    """Print ``model.evaluate``'s metrics on the data file, as a table or as JSON."""
    import latentode as lo

    model = lo.load(args.model)
    data = lo.read_csv(args.data, columns(args, model), sep=args.sep)
    metrics = model.evaluate(
        data,
        task=args.task,
        frac=args.frac,
        **sampling(args),
    )
    if args.json:
        print(json.dumps(metrics))
        return 0
    print(f"{args.task} on {len(data)} series of {Path(args.data).name} (frac={args.frac})")
    print(table(["metric", "value"], [[k, fmt(v)] for k, v in metrics.items()]))
    return 0
