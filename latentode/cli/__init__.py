"""The ``latentode`` command line: ``fit``, ``predict``, ``evaluate`` and ``demo``.

Flags become estimator parameters and keyword arguments here; nothing below this
package sees argparse. Every module imports only the standard library at the top so
that ``latentode <command> --help`` answers at once; pandas, torch and Lightning are
imported inside the commands.

Bad input (a missing or malformed file, an unknown column, a corrupt model file) ends
with exit code 2 and one line ``latentode: error: <message>`` on stderr; Ctrl-C ends
with exit code 130.

Modules, one job each:

- this one: :func:`main`, the argument parser and the dispatch to a command;
- ``fit``, ``predict``, ``evaluate``, ``demo``: one command each, its flags and its run;
- ``flags``: the CSV column and sampling flags shared by commands, and value types;
- ``times``: the forms of ``predict --times``;
- ``reporting``: exit codes, errors in flag words, the library's messages on stderr;
- ``tables``: plain-text tables of metrics.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from latentode.cli import demo, evaluate, fit, predict
from latentode.cli.reporting import run_command

#: the commands, in the order ``latentode --help`` lists them
COMMANDS = (fit, predict, evaluate, demo)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``latentode`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    args = build_parser().parse_args(argv)
    return run_command(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command (standard library only)."""
    parser = argparse.ArgumentParser(
        prog="latentode",
        description="Latent ODE models for irregularly-sampled multivariate time series.",
    )
    sub = parser.add_subparsers(dest="name", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


__all__ = ["build_parser", "main"]
