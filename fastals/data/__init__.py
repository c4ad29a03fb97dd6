"""From raw interaction records to the matrices models read, and back to the caller's ids.

Models work on a users x items sparse matrix whose rows and columns are indices
``0..n-1``. Real data names users and items with anything hashable (sha1 strings, artist
names, integer ids that do not start at 0). This package does that plumbing, one module
per concern:

* :mod:`~fastals.data.ids` -- :class:`IdMapping`, a bidirectional map between the caller's
  ids and indices.
* :mod:`~fastals.data.interactions` -- :class:`Interactions`, the matrix plus both mappings
  (and optional timestamps and item metadata), built by :func:`from_dataframe` or
  :func:`from_arrays`. Duplicate (user, item) pairs are combined by a chosen policy (summed
  by default); rows with a missing user, item or value are dropped and counted in one
  :class:`DataWarning`.
* :mod:`~fastals.data.csv_reader` -- :func:`read_csv` for CSV / TSV files.
* :mod:`~fastals.data.weighting` -- confidence weighting: :func:`linear_weight`
  (``c = 1 + alpha r`` as in Hu et al.), :func:`log_weight`, :func:`bm25_weight` and
  :func:`tfidf_weight`.

:class:`IdRecommender` (any fitted model, taking and returning the caller's ids) and
:func:`score_pairs` need the models, so they live a room above, in
:mod:`fastals.id_recommender`; they are importable from here too, loaded on first use, so
that importing :mod:`fastals.data` imports no model and no compiled kernel.

pandas is optional: it is used when installed (faster CSV parsing, DataFrame input and
output); without it, CSV files are read with the standard ``csv`` module.

May import: numpy, scipy, the standard library, :mod:`fastals._validation`,
:mod:`fastals._files`, :mod:`fastals._typing`, :mod:`fastals.exceptions`; never the models or
the kernels (except :mod:`fastals.id_recommender` on first use of its two names).

Examples
--------
>>> import fastals
>>> from fastals.data import from_arrays, IdRecommender
>>> data = from_arrays(["ann", "ann", "bob", "bob", "cat"],
...                    ["jazz", "rock", "jazz", "blues", "rock"], [3, 1, 2, 5, 4])
>>> model = fastals.ImplicitALS(factors=4, iterations=3, random_state=0)
>>> rec = IdRecommender(model).fit(data, show_progress=False)
>>> items, scores = rec.recommend("ann", N=2)
"""
from typing import TYPE_CHECKING, Any

# Also importable from here, as when this package was one module: canonical_csr (used by
# fastals.evaluation), DUPLICATE_POLICIES, _open_text (fastals.datasets), _pandas (the
# switch described in _common) and _require_pandas.
from fastals.data._common import DataWarning, _require_pandas  # noqa: F401
from fastals.data._common import _find_pandas as _pandas  # noqa: F401
from fastals.data.csv_reader import _open_text, read_csv  # noqa: F401
from fastals.data.ids import IdMapping
from fastals.data.interactions import DUPLICATE_POLICIES, Interactions, canonical_csr, \
    from_arrays, from_dataframe  # noqa: F401
from fastals.data.weighting import bm25_weight, linear_weight, log_weight, tfidf_weight

if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ loads them on first use
    from fastals.id_recommender import IdRecommender, score_pairs

__all__ = [
    "DataWarning",
    "IdMapping",
    "IdRecommender",
    "Interactions",
    "bm25_weight",
    "from_arrays",
    "from_dataframe",
    "linear_weight",
    "log_weight",
    "read_csv",
    "score_pairs",
    "tfidf_weight",
]

# names that live above the models, imported on first use (PEP 562)
_ABOVE = {"IdRecommender": "fastals.id_recommender", "score_pairs": "fastals.id_recommender"}


def __getattr__(name: str) -> Any:
    module = _ABOVE.get(name)
    if module is None:
        raise AttributeError(f"module 'fastals.data' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ABOVE))
