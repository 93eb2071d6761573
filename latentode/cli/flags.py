"""Flags more than one command takes: the CSV column flags and the sampling flags, the
value types of flags, and their translation into library arguments (a
:class:`~latentode.data.columns.ColumnSpec`, solver tolerances)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from latentode.data.columns import ColumnSpec
    from latentode.estimator import SeriesEstimator


# ---- flag groups ------------------------------------------------------------------------------
def add_column_args(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """The CSV column flags; ``defaults=False`` (a fitted model's commands) leaves the id,
    time and unit flags unset so that the model's own are used."""
    group = parser.add_argument_group(
        "CSV columns" + ("" if defaults else " (default: the model's)")
    )
    group.add_argument("--id-col", default="id" if defaults else None, help="series id column")
    group.add_argument("--time-col", default="time" if defaults else None, help="time column")
    group.add_argument("--format", choices=("wide", "long"), default="wide")
    group.add_argument("--variable-col", default="variable", help="long format: variable names")
    group.add_argument("--value-col", default="value", help="long format: values")
    group.add_argument(
        "--time-unit", default="h" if defaults else None, help="unit of the times (default h)"
    )
    group.add_argument(
        "--duplicates",
        choices=("error", "mean", "first", "last"),
        default="error",
        help="several values for one (id, time, channel)",
    )
    group.add_argument("--sep", default=",", help="field delimiter (default ,)")
    group.add_argument(
        "--drop-empty", action="store_true", help="drop series/channels with no observed value"
    )


#: ``latentode.estimator.base.PREDICT_SAMPLES``, written out so that ``--help`` imports
#: no torch (tests/test_cli.py checks that the two agree)
PREDICT_SAMPLES = 32


def add_sampling_args(parser: argparse.ArgumentParser) -> None:
    """Posterior samples, their seed and the solver tolerances of a fitted model's run."""
    parser.add_argument(
        "--n-samples",
        type=positive_int,
        default=PREDICT_SAMPLES,
        help=f"posterior samples, in antithetic pairs (default {PREDICT_SAMPLES})",
    )
    parser.add_argument("--seed", type=int, help="seed of the samples (default: the model's)")
    parser.add_argument("--rtol", type=float, help="solver relative tolerance for this run")
    parser.add_argument("--atol", type=float, help="solver absolute tolerance for this run")


# ---- value types ------------------------------------------------------------------------------
def positive_int(text: str) -> int:
    """A whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def names(text: str) -> tuple[str, ...]:
    """A non-empty comma list of names (blanks around names dropped)."""
    found = tuple(n.strip() for n in text.split(",") if n.strip())
    if not found:
        raise argparse.ArgumentTypeError("expected a comma-separated list of names")
    return found


def log_scale(text: str) -> str | tuple[str, ...]:
    """``auto`` or a comma list of channels to model on the log scale."""
    return "auto" if text.strip() == "auto" else names(text)


def floats(text: str) -> tuple[float, ...]:
    """A comma list of numbers."""
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def horizon(text: str) -> float | None:
    """A positive number, or ``none`` (None: no limit)."""
    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or 'none': {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


# ---- flags → library arguments ----------------------------------------------------------------
def columns(args: argparse.Namespace, model: SeriesEstimator | None = None) -> ColumnSpec:
    """The :class:`~latentode.data.columns.ColumnSpec` the flags ask for; with a fitted
    model, its columns, channels and time unit unless a flag says otherwise."""
    from latentode.data.columns import ColumnSpec
    from latentode.estimator import FittedState

    common = {
        "format": args.format,
        "variable_col": args.variable_col,
        "value_col": args.value_col,
        "duplicates": args.duplicates,
        "drop_empty": args.drop_empty,
    }
    if model is None:
        return ColumnSpec.of(
            **common,
            id_col=args.id_col,
            time_col=args.time_col,
            time_unit=args.time_unit,
            channels=args.channels or None,
            static_cols=args.static_cols,
            label_col=args.label_col,
        )
    schema = FittedState.of(model).schema
    given = {"id_col": args.id_col, "time_col": args.time_col, "time_unit": args.time_unit}
    given = {k: v for k, v in given.items() if v is not None}
    return schema.columns(**common, **given, channels=schema.channels)


def sampling(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments the sampling flags set: ``n_samples``, ``seed`` and the solver
    tolerances (``rtol``, ``atol``) given for this run."""
    tolerances = {n: getattr(args, n) for n in ("rtol", "atol") if getattr(args, n) is not None}
    return {"n_samples": args.n_samples, "seed": args.seed, **tolerances}
