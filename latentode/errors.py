"""The one error type latentode raises for bad input."""


class LatentODEError(ValueError):
    """Bad input to latentode: a file, column, row, series or setting that cannot be used.

    The message names what is wrong (file, column, row or series) and says how to fix it.
    Subclasses ValueError so ``except ValueError`` keeps working.
    """
