"""Errors fastals raises beyond the built-in ValueError and TypeError.

May import: nothing (the bottom floor: every room may raise these).
"""


class ModelFitError(ArithmeticError):
    """Training produced a non-finite or unsolvable system; the message says what to change."""


class IdOutOfRangeError(ValueError, IndexError):
    """A user or item id the model does not know."""


class ModelFileError(ValueError):
    """A file that is not a (readable) fastals model."""


class NotFittedError(RuntimeError):
    """A method that needs a fitted model was called before fit()."""
