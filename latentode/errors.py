"""The one error type latentode raises for bad input, and its warnings' way to the user."""

from __future__ import annotations

import sys
import warnings


class LatentODEError(ValueError):
    """Bad input to latentode: a file, column, row, series or setting that cannot be used.

    The message names what is wrong (file, column, row or series) and says how to fix it.
    Subclasses ValueError so ``except ValueError`` keeps working.
    """


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` attributed to the first caller outside the
    latentode package (the user's line), however deep inside it the warning arises: a
    fixed ``stacklevel`` breaks whenever a layer is added or a generator steps in."""
    frame, level = sys._getframe(1), 2  # level 2: the caller of warn_user
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] == (
        "latentode"
    ):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
