"""What every module of :mod:`fastals.data` shares: the DataWarning category and pandas.

pandas is optional: it is imported when first asked for, if installed. Every data module
asks through :func:`_pandas` here, which calls the ``fastals.data`` package's own
``_pandas``: replacing that one attribute (the tests set it to ``lambda: None`` to run the
standard-library CSV fallback) switches pandas off for the whole package at once.

May import: the standard library only.
"""
import sys


class DataWarning(UserWarning):
    """Rows were dropped or changed while building the interaction matrix."""


def _find_pandas():
    """The pandas module, or None when it is not installed (``fastals.data._pandas``)."""
    try:
        import pandas
    except ImportError:
        return None
    return pandas


def _pandas():
    """The pandas module or None, as ``fastals.data._pandas`` says (see the module doc)."""
    return sys.modules["fastals.data"]._pandas()


def _require_pandas(purpose):
    pd = _pandas()
    if pd is None:
        raise ImportError(f"{purpose} needs pandas: pip install pandas")
    return pd
