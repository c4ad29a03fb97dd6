"""The type aliases of the public API's hints, defined once.

Hints only: nothing here is checked at run time, and every alias is an ordinary typing
object, so ``typing.get_type_hints`` resolves the hints that use them. pandas and pyspark
types are never imported at run time: modules that name them in hints import them under
``typing.TYPE_CHECKING``. Any room may import this module (it loads no kernel and no
model).

May import: the standard library, numpy and scipy.sparse (which every room that uses these
aliases imports anyway); of fastals only :class:`fastals.data.Interactions`, and only for
the type checker (under ``TYPE_CHECKING``).
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, DTypeLike, NDArray

if TYPE_CHECKING:
    from fastals.data.interactions import Interactions

if sys.version_info >= (3, 11):
    from typing import Self, TypeAlias
elif TYPE_CHECKING:
    from typing_extensions import Self, TypeAlias
else:  # Python 3.10 without typing_extensions: the hints read Any there
    Self = TypeAlias = Any

__all__ = ["ArrayLike", "CallerId", "CallerIds", "DTypeLike", "FitCallback", "IdsAndScores",
           "Indices", "InteractionData", "NDArray", "PathLike", "SeedLike", "Self", "SparseMatrix"]

#: any scipy sparse matrix or array, in any format (COO, CSR, CSC, DOK, LIL, ...)
if TYPE_CHECKING:
    SparseMatrix: TypeAlias = sp.spmatrix | sp.sparray
else:  # scipy.sparse.sparray is public from scipy 1.11; fastals accepts scipy 1.9
    SparseMatrix = sp.spmatrix | getattr(sp, "sparray", sp.spmatrix)

#: a model's user or item id (a row or column index): an int, or a 1-D array-like of them
Indices: TypeAlias = ArrayLike

#: (ids, scores), best first: 1-D arrays for one query, 2-D (a row per query) for several
IdsAndScores: TypeAlias = tuple[np.ndarray, np.ndarray]

#: one of the caller's own ids (a str, an int, ...: anything hashable)
CallerId: TypeAlias = Hashable

#: one of the caller's ids, or a sequence (list, array, Series) of them
CallerIds: TypeAlias = Hashable | Iterable[Hashable]

#: a file name
PathLike: TypeAlias = str | os.PathLike[str]

#: what ``random_state`` takes: None, an int seed, a SeedSequence or a Generator
SeedLike: TypeAlias = (int | np.integer | np.random.SeedSequence | np.random.Generator
                       | np.random.RandomState | None)

#: ``callback(iteration, seconds_since_start, loss_or_None)``, called after each iteration
FitCallback: TypeAlias = Callable[[int, float, float | None], object]

#: interactions either way fastals takes them: :class:`~fastals.data.Interactions` or a
#: scipy sparse matrix, for functions that return the kind they were given (splits, weighting)
InteractionData = TypeVar("InteractionData", "Interactions", SparseMatrix)
