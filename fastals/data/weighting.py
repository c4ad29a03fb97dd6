"""Confidence weighting of interaction matrices: linear, log, BM25 and TF-IDF, and the
choice of one for the data (``weighting="auto"``).

* :func:`linear_weight` (``c = 1 + alpha r`` as in Hu et al.) and :func:`log_weight`.
* :func:`choose_weighting` looks at the stored values and says whether they are counts
  (non-negative and heavy-tailed: play or click counts) or not (binary, ratings), and so
  which weighting ``"auto"`` means; :func:`apply_weighting` applies a weighting by name.
  The implicit models (``ImplicitALS(weighting=...)``) and the command line share them.
* :func:`bm25_weight` and :func:`tfidf_weight`, with the formulas of ``implicit``; they
  run :func:`fastals.similarity.term_weights`, the one TF-IDF / BM25 implementation, which
  is also the neighbourhood models' weighting, so the two agree by construction.

Each takes a scipy sparse matrix or :class:`Interactions` and returns a new one of the same
kind; the input is never modified.

May import: numpy, scipy, :mod:`fastals._validation`, :mod:`fastals._typing`,
:mod:`fastals.data._common` and ``interactions``; :mod:`fastals.similarity` (which runs the
compiled kernel) and :mod:`fastals._threads` only inside the functions that need them, so
importing this module loads no compiled kernel. Never a kernel module directly.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from fastals._typing import InteractionData
from fastals._validation import CSR, as_csr, check_choice, check_float
from fastals.data._common import DataWarning
from fastals.data.interactions import Interactions

log = logging.getLogger("fastals")


def _weighting_input(X, name="X"):
    """(validated float64 CSR of X, a function that puts new values in X's kind of container).

    The CSR's arrays may be the caller's own: never write to them. The function builds a new
    matrix from the values given (and copies of the structure), so the input is never
    modified.
    """
    if isinstance(X, Interactions):
        data = X

        def container(matrix):
            return data.with_matrix(matrix.astype(data.user_items.dtype), data.timestamps)
        source = X.user_items
    else:
        if not sp.issparse(X):
            as_csr(X, name, np.float64)  # raises the clear error for dense / wrong input
        source = X

        def container(matrix):
            return matrix
    csr = as_csr(source, name, np.float64)

    def wrap(values):
        return container(sp.csr_matrix((values, csr.indices.copy(), csr.indptr.copy()),
                                       shape=csr.shape))
    return csr, wrap


def linear_weight(X: InteractionData, alpha: float = 40.0) -> InteractionData:
    r"""Scale interactions linearly: stored values become alpha r.

    Hu, Koren & Volinsky's linear confidence is c_ui = 1 + alpha r_ui. fastals'
    :class:`~fastals.ImplicitALS` adds the 1 itself (``c = 1 + alpha_model * |value|``), so
    ``ImplicitALS(alpha=1).fit(linear_weight(X, 40))`` trains on ``c = 1 + 40 r`` -- the
    ``data * alpha`` of `implicit` tutorials -- exactly like ``ImplicitALS(alpha=40).fit(X)``.

    `X` is any scipy sparse matrix (returned as a new CSR) or :class:`Interactions` (returned
    as a new Interactions with the same ids). The input is never modified.
    """
    alpha = check_float("alpha", alpha, minimum=0, exclusive=True)
    counts, wrap = _weighting_input(X)
    return wrap(counts.data * alpha)


def log_weight(X: InteractionData, alpha: float = 1.0, epsilon: float = 1.0
               ) -> InteractionData:
    r"""Logarithmic scaling: stored values become alpha log(1 + r / epsilon).

    Hu et al.'s alternative confidence c_ui = 1 + alpha log(1 + r_ui / epsilon) (fit with
    ``ImplicitALS(alpha=1)``, which adds the 1); it damps heavy users' huge play counts.
    Negative values keep their sign (``-alpha log(1 + |r|/epsilon)``: a weighted dislike).
    """
    alpha = check_float("alpha", alpha, minimum=0, exclusive=True)
    epsilon = check_float("epsilon", epsilon, minimum=0, exclusive=True)
    counts, wrap = _weighting_input(X)
    return wrap(_log_values(counts.data, alpha, epsilon))


def _log_values(values, alpha=1.0, epsilon=1.0):
    """sign(r) alpha log(1 + |r| / epsilon), element-wise (a new array)."""
    return np.sign(values) * alpha * np.log1p(np.abs(values) / epsilon)


# --- TF-IDF and BM25: fastals.similarity.term_weights, the one implementation ---------------
def bm25_parameters(K1, B):
    """`K1` and `B` checked (K1 >= 0, 0 <= B <= 1), as floats."""
    return check_float("K1", K1, minimum=0), check_float("B", B, minimum=0, maximum=1)


def _weigh_rows(counts, scheme, K1=1.2, B=0.75):
    """term_weights of the rows of `counts` on every core, warning about ubiquitous columns."""
    from fastals._threads import resolve_threads
    from fastals.similarity import term_weights  # the similarity room runs the kernel

    weights, idf, df = term_weights(counts, scheme, "rows", K1, B, resolve_threads(0))
    ubiquitous = int((idf[df > 0] <= 0).sum())
    if ubiquitous:
        warnings.warn(f"{ubiquitous} columns are used by (nearly) every row, so their IDF is "
                      "<= 0 and their weights are <= 0", DataWarning, stacklevel=3)
    return weights


def bm25_weight(X: InteractionData, K1: float = 100.0, B: float = 0.8) -> InteractionData:
    r"""Okapi BM25 weighting of the rows of `X`, with the formula of ``implicit``.

    Rows are documents and columns terms: for row d and column t,

        w_dt = r_dt (K1 + 1) / (K1 ((1 - B) + B |d| / mean |d|) + r_dt) idf_t,
        idf_t = log N - log(1 + df_t)

    where |d| is the row sum, N the number of rows and df_t the
    number of rows storing column t. ``implicit``'s Last.fm example weights the items x users
    matrix; with a users x items matrix write ``bm25_weight(user_items.T).T``. A column
    stored in every row gets a weight <= 0 (a warning says so).
    """
    K1, B = bm25_parameters(K1, B)
    counts, wrap = _weighting_input(X)
    weights = _weigh_rows(counts, "bm25", K1, B)
    if not np.isfinite(weights).all():
        raise ValueError("bm25_weight produced non-finite weights: K1=0 with zero values, or "
                         "negative values; use K1 > 0 and non-negative values")
    return wrap(weights)


def tfidf_weight(X: InteractionData) -> InteractionData:
    r"""TF-IDF weighting of the rows of `X`, as ``implicit``: w_dt = sqrt(r_dt) idf_t.

    Rows are documents, columns terms; idf as in :func:`bm25_weight`. Values must be >= 0.
    """
    counts, wrap = _weighting_input(X)
    if (counts.data < 0).any():
        raise ValueError("tfidf_weight needs non-negative values in X (it takes their square "
                         "root)")
    return wrap(_weigh_rows(counts, "tfidf"))


# --- weighting="auto": counts get log damping, binary data and ratings stay as they are -------
#: the weightings a model's ``weighting`` parameter takes ("auto" resolves to one of the
#: other two; both are element-wise, so a fold-in row is weighted exactly like the training
#: rows)
WEIGHTINGS = ("auto", "none", "log")

#: values whose max / median reaches this are heavy-tailed counts. Ratings reach at most 10
#: (1..5 stars: 5 / 1 at the very worst, 1.25 on MovieLens 100K; 0.5..5 stars: 10), binary
#: data 1; play and click counts are far beyond (Last.fm: ~1,300; the demo data: 40).
COUNT_RATIO = 20.0
#: no longer part of the rule (kept importable): "auto" used to damp only counts whose median
#: reached this, as measured at ImplicitALS's former defaults (factors=100,
#: regularization=0.01). At the current ones (regularization="auto") log damping did better
#: on counts of every median measured (bench/RESULTS.md), so every heavy-tailed count gets it.
COUNT_MEDIAN = 100.0


@dataclass(frozen=True)
class WeightingChoice:
    """What ``weighting="auto"`` chose for some data, and why (one line, for the fit log)."""

    weighting: str
    reason: str


def choose_weighting(X: InteractionData) -> WeightingChoice:
    """The weighting that ``"auto"`` means for the stored values of `X`: ``"log"`` for
    counts, ``"none"`` for everything else.

    Counts are non-negative values that are heavy-tailed: max / median at least
    :data:`COUNT_RATIO`, 20 (play and click counts, not ratings). A few heavy rows would
    otherwise dominate the confidences ``1 + alpha r``, and log(1 + r) did as well or better
    at ImplicitALS's defaults on every count data set measured, whatever its median:
    nDCG@10 0.302 against 0.301 on the demo data (median 5, max 199), 0.25 against 0.17 on
    heavy-tailed counts (median 5, max 1e5), 0.19 against 0.04 on a Last.fm-like set (median
    215, max 350,000).
    Binary data (max / median 1), ratings (at most 10) and data with negative values
    (dislikes) are left as they are. Measured on MovieLens 100K (binary, ratings), the demo
    data, synthetic heavy-tailed counts and the Last.fm-like set, and checked on data not
    used to choose it: bench/defaults.py, bench/RESULTS.md.
    """
    csr, _ = _weighting_input(X)
    return choose_weighting_for_values(csr.data)


def choose_weighting_for_values(values: np.ndarray) -> WeightingChoice:
    """:func:`choose_weighting` from the stored values of a matrix (a 1-D array)."""
    values = values[values != 0]  # stored zeros carry nothing (the models ignore them)
    if values.size == 0:
        return WeightingChoice("none", "no stored values")
    if values.min() < 0:
        return WeightingChoice("none", "the values include negatives (dislikes), so they are "
                                       "not counts")
    median, top = float(np.median(values)), float(values.max())
    ratio = top / median
    summary = f"max/median = {top:.4g}/{median:.4g} = {ratio:.3g}"
    if ratio < COUNT_RATIO:
        kind = "binary" if ratio == 1 else "not heavy-tailed (ratings?)"
        return WeightingChoice("none", f"values look {kind}: {summary} < {COUNT_RATIO:g}")
    return WeightingChoice("log", f"values look like counts: non-negative, {summary} >= "
                                  f"{COUNT_RATIO:g}, so confidences use log(1 + r)")


def check_weighting(name: str, value: str) -> str:
    """`value` checked as one of :data:`WEIGHTINGS`."""
    return check_choice(name, value, WEIGHTINGS)


def resolve_weighting(values: np.ndarray, how: str, owner: str = "fastals") -> str:
    """`how` itself, or for ``"auto"`` what :func:`choose_weighting` picks for the stored
    `values` of a matrix, logged (logger ``"fastals"``, info) as `owner`'s choice with its
    reason."""
    how = check_weighting("weighting", how)
    if how != "auto":
        return how
    choice = choose_weighting_for_values(values)
    log.info("%s: weighting='auto' chose %r: %s (pass weighting='none' to train on the raw "
             "values)", owner, choice.weighting, choice.reason)
    return choice.weighting


def apply_weighting(X: InteractionData, how: str) -> InteractionData:
    """`X` weighted by a resolved name: ``"none"`` returns `X` itself, ``"log"`` is
    :func:`log_weight` (``log(1 + r)``). Never modifies `X`."""
    how = check_choice("weighting", how, ("none", "log"))
    return X if how == "none" else log_weight(X)


def weighted_values(values: np.ndarray, how: str) -> np.ndarray:
    """The stored values of a matrix after :func:`apply_weighting` (both weightings are
    element-wise): `values` itself for ``"none"``, else a new array."""
    how = check_choice("weighting", how, ("none", "log"))
    return values if how == "none" else _log_values(values)
