"""How a command ends: its exit code, an error as one line in flag words, and the
library's log messages shown on stderr."""

from __future__ import annotations

import argparse
import re
import sys

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def run_command(args: argparse.Namespace) -> int:
    """Run the command ``args`` names (``args.command(args)``) and return its exit code.

    Bad input (:class:`~latentode.LatentODEError`, ``OSError``) prints
    ``latentode: error: <message>`` on stderr and gives :data:`EXIT_BAD_INPUT`;
    Ctrl-C prints ``latentode: interrupted`` and gives :data:`EXIT_INTERRUPTED`.
    """
    show_library_messages()
    try:
        return _report_bad_input(args)
    except KeyboardInterrupt:
        print("latentode: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def show_library_messages() -> None:
    """Print the library's log messages (``latentode`` logger, INFO and up) on stderr."""
    import logging

    logger = logging.getLogger("latentode")
    if not logger.handlers:
        handler = logging.StreamHandler()  # stderr
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _report_bad_input(args: argparse.Namespace) -> int:
    from latentode.errors import LatentODEError

    try:
        return args.command(args)
    except (LatentODEError, OSError) as err:
        message = in_cli_words(" ".join(str(err).split()) or type(err).__name__)
        print(f"latentode: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT


def in_cli_words(message: str) -> str:
    """The library's advice (``id_col=``, ``drop_empty=True``) in flags (``--id-col``)."""
    from latentode.data.columns import ColumnSpec

    for name in (*ColumnSpec.names(), "sep", "horizon"):
        flag = "--" + name.replace("_", "-")
        message = re.sub(rf"\b{name}=True\b", flag, message)
        message = re.sub(rf"\b{name}=(?=['\"\w])", flag + " ", message)
        message = re.sub(rf"\b{name}=", flag, message)
    return message
