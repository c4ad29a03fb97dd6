"""Confidence weighting of interaction matrices: linear, log, BM25 and TF-IDF.

* :func:`linear_weight` (``c = 1 + alpha r`` as in Hu et al.) and :func:`log_weight`.
* :func:`bm25_weight` and :func:`tfidf_weight`, with the formulas of ``implicit``.

Each takes a scipy sparse matrix or :class:`Interactions` and returns a new one of the same
kind; the input is never modified.

May import: numpy, scipy, :mod:`fastals._validation`, :mod:`fastals.data._common` and
``interactions``.
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp

from fastals._validation import as_csr, check_float
from fastals.data._common import DataWarning
from fastals.data.interactions import Interactions


def _weighting_input(X, name="X"):
    """(CSR copy as float64, a function that puts a weighted CSR back in X's container)."""
    if isinstance(X, Interactions):
        data = X

        def wrap(matrix):
            return data.with_matrix(matrix.astype(data.user_items.dtype), data.timestamps)
        source = X.user_items
    else:
        if not sp.issparse(X):
            as_csr(X, name, np.float64)  # raises the clear error for dense / wrong input
        source = X

        def wrap(matrix):
            return matrix
    csr = as_csr(source, name, np.float64)
    matrix = sp.csr_matrix((csr.data.copy(), csr.indices.copy(), csr.indptr.copy()),
                           shape=csr.shape)
    return matrix, wrap


def linear_weight(X, alpha=40.0):
    r"""Scale interactions linearly: stored values become :math:`\alpha r`.

    Hu, Koren & Volinsky's linear confidence is :math:`c = 1 + \alpha r`. fastals'
    :class:`~fastals.ImplicitALS` adds the 1 itself (``c = 1 + alpha_model * |value|``), so
    ``ImplicitALS(alpha=1).fit(linear_weight(X, 40))`` trains on ``c = 1 + 40 r`` -- the
    notebooks' ``data * alpha`` -- exactly like ``ImplicitALS(alpha=40).fit(X)``.

    `X` is any scipy sparse matrix (returned as a new CSR) or :class:`Interactions` (returned
    as a new Interactions with the same ids). The input is never modified.
    """
    alpha = check_float("alpha", alpha, minimum=0, exclusive=True)
    matrix, wrap = _weighting_input(X)
    matrix.data *= alpha
    return wrap(matrix)


def log_weight(X, alpha=1.0, epsilon=1.0):
    r"""Logarithmic scaling: stored values become :math:`\alpha \log(1 + r / \epsilon)`.

    Hu et al.'s alternative confidence :math:`c = 1 + \alpha \log(1 + r/\epsilon)` (fit with
    ``ImplicitALS(alpha=1)``, which adds the 1); it damps heavy users' huge play counts.
    Negative values keep their sign (``-alpha log(1 + |r|/epsilon)``: a weighted dislike).
    """
    alpha = check_float("alpha", alpha, minimum=0, exclusive=True)
    epsilon = check_float("epsilon", epsilon, minimum=0, exclusive=True)
    matrix, wrap = _weighting_input(X)
    matrix.data = np.sign(matrix.data) * alpha * np.log1p(np.abs(matrix.data) / epsilon)
    return wrap(matrix)


def _idf(matrix):
    """log(N) - log(1 + df) per column, as in `implicit` (N = rows, df = rows using it).

    N is taken as at least 1, as fastals.similarity.weigh does: a matrix without rows has
    no values to weight, and log(0) would only raise numpy's divide-by-zero warning.
    """
    n_rows = float(max(matrix.shape[0], 1))
    df = np.bincount(matrix.indices, minlength=matrix.shape[1])
    idf = np.log(n_rows) - np.log1p(df)
    if (idf[df > 0] <= 0).any():
        warnings.warn(f"{int((idf[df > 0] <= 0).sum())} columns are used by (nearly) every row, "
                      "so their IDF is <= 0 and their weights are <= 0", DataWarning,
                      stacklevel=3)
    return idf


def bm25_weight(X, K1=100.0, B=0.8):
    r"""Okapi BM25 weighting of the rows of `X`, with the formula of ``implicit``.

    Rows are documents and columns terms: for row d and column t,

    .. math:: w_{dt} = r_{dt} \frac{K_1 + 1}{K_1 ((1 - B) + B\,|d| / \overline{|d|}) + r_{dt}}
              \,\mathrm{idf}_t, \qquad \mathrm{idf}_t = \log N - \log(1 + \mathrm{df}_t)

    where :math:`|d|` is the row sum, N the number of rows and :math:`\mathrm{df}_t` the
    number of rows storing column t. ``implicit``'s Last.fm example weights the items x users
    matrix; with a users x items matrix write ``bm25_weight(user_items.T).T``. A column
    stored in every row gets a weight <= 0 (a warning says so).
    """
    K1 = check_float("K1", K1, minimum=0)
    B = check_float("B", B, minimum=0, maximum=1)
    matrix, wrap = _weighting_input(X)
    idf = _idf(matrix)
    row_sums = np.asarray(matrix.sum(axis=1)).ravel()
    mean_length = row_sums.mean() if row_sums.size and row_sums.mean() != 0 else 1.0
    length_norm = (1.0 - B) + B * row_sums / mean_length
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    r = matrix.data
    with np.errstate(divide="ignore", invalid="ignore"):
        weighted = r * (K1 + 1.0) / (K1 * length_norm[rows] + r) * idf[matrix.indices]
    if not np.isfinite(weighted).all():
        raise ValueError("bm25_weight produced non-finite weights: K1=0 with zero values, or "
                         "negative values; use K1 > 0 and non-negative values")
    matrix.data = weighted
    return wrap(matrix)


def tfidf_weight(X):
    r"""TF-IDF weighting of the rows of `X`, as ``implicit``: :math:`w = \sqrt{r}\,\mathrm{idf}_t`.

    Rows are documents, columns terms; idf as in :func:`bm25_weight`. Values must be >= 0.
    """
    matrix, wrap = _weighting_input(X)
    if (matrix.data < 0).any():
        raise ValueError("tfidf_weight needs non-negative values in X (it takes their square "
                         "root)")
    matrix.data = np.sqrt(matrix.data) * _idf(matrix)[matrix.indices]
    return wrap(matrix)
