"""Confidence weighting of interaction matrices: linear, log, BM25 and TF-IDF.

* :func:`linear_weight` (``c = 1 + alpha r`` as in Hu et al.) and :func:`log_weight`.
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

import warnings

import numpy as np
import scipy.sparse as sp

from fastals._typing import InteractionData
from fastals._validation import CSR, as_csr, check_float
from fastals.data._common import DataWarning
from fastals.data.interactions import Interactions


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
    values = counts.data
    return wrap(np.sign(values) * alpha * np.log1p(np.abs(values) / epsilon))


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
