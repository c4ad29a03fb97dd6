r"""Term weightings applied before a similarity: TF-IDF and Okapi BM25.

Both read a matrix of counts as documents x terms (rows are documents, as in `implicit`):
for item-item recommenders the documents are the items and the terms are the users.
With n documents, df(t) the number of documents containing term t and x a stored count:

* TF-IDF:  w = sqrt(x) idf(t),                                  idf(t) = log(n) - log(1 + df(t))
* BM25:    w = x (K1 + 1) / (K1 L(d) + x) idf(t),    L(d) = 1 - B + B len(d) / mean(len)

where len(d) is the total count of document d. These are exactly `implicit`'s
``tfidf_weight`` and ``bm25_weight`` (so its TFIDF/BM25 recommenders and ours agree), computed
by a compiled kernel. Counts must be non-negative. The numpy oracle is
:func:`fastals.reference.similarity.tfidf_weight` / ``bm25_weight``.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fastals._kernels import _similarity
from fastals._threads import resolve_threads
from fastals._validation import CSR, as_csr, check_dtype, check_float

WEIGHTINGS = ("tfidf", "bm25")


def tfidf_weight(X, dtype=None, num_threads=0):
    """TF-IDF weights of a documents x terms count matrix (a new CSR matrix).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp, fastals
    >>> counts = sp.csr_matrix(np.array([[4.0, 0, 1], [0, 9, 1], [1, 0, 0], [0, 0, 4]]))
    >>> print(np.round(fastals.tfidf_weight(counts).toarray(), 3))
    [[0.575 0.    0.   ]
     [0.    2.079 0.   ]
     [0.288 0.    0.   ]
     [0.    0.    0.   ]]
    """
    return _public("tfidf", X, dtype, num_threads)


def bm25_weight(X, K1=1.2, B=0.75, dtype=None, num_threads=0):
    """Okapi BM25 weights of a documents x terms count matrix (a new CSR matrix)."""
    return _public("bm25", X, dtype, num_threads, K1=K1, B=B)


def _public(scheme, X, dtype, num_threads, K1=1.2, B=0.75):
    if dtype is None:
        dtype = X.dtype if getattr(X, "dtype", None) in (np.float32, np.float64) else np.float64
    dtype = check_dtype("dtype", dtype)
    counts = as_csr(X, "X", dtype)
    data = weigh(counts, scheme, "rows", K1, B, resolve_threads(num_threads))
    out = sp.csr_matrix((data, counts.indices.copy(), counts.indptr.copy()), shape=counts.shape)
    out.has_sorted_indices = True
    return out


def weigh(counts: CSR, scheme, documents="rows", K1=1.2, B=0.75, num_threads=1):
    """The weights of the stored values of a validated CSR, as a new array.

    `documents` says whether the rows or the columns of `counts` are the documents.
    """
    if scheme == "bm25":
        K1 = check_float("K1", K1, minimum=0)
        B = check_float("B", B, minimum=0, maximum=1)
    if counts.nnz and counts.data.min() < 0:
        raise ValueError(f"{scheme} weighting needs non-negative counts, got "
                         f"{counts.data.min()}")
    n_rows, n_cols = counts.shape
    by_rows = documents == "rows"
    n_docs = n_rows if by_rows else n_cols
    per_row = np.diff(counts.indptr)
    per_col = np.bincount(counts.indices, minlength=n_cols)
    df = per_col if by_rows else per_row
    idf = np.log(max(n_docs, 1)) - np.log1p(df.astype(np.float64))
    length_norm = np.zeros(0)
    if scheme == "bm25":
        if by_rows:
            length, squares = np.empty(n_rows), np.empty(n_rows)
            _similarity.row_moments(counts.indptr, counts.data, length, squares, num_threads)
        else:
            length = np.zeros(n_cols)
            _similarity.column_sums(counts.indices, counts.data, length)
        mean = length.mean() if n_docs else 0.0
        length_norm = (1.0 - B) + B * (length / mean if mean > 0 else length)
    out = np.empty_like(counts.data)
    _similarity.weigh(counts.indptr, counts.indices, counts.data, scheme == "bm25", by_rows,
                      idf, length_norm, float(K1), out, num_threads)
    return out
