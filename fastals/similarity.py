r"""Top-K similarity between the rows of sparse matrices, without any dense n x n matrix.

For each row a of A, :func:`top_k_similarity` finds the K rows b of B (B = A by default) with
the largest similarity

* ``"dot"``      a . b
* ``"cosine"``   a . b / (|a| |b|)
* ``"pearson"``  the correlation np.corrcoef(a, b) of the dense rows: the means are taken over
                 all columns, missing entries counting as 0 (as the worked example in the tests does
                 for rating vectors); pairs sharing no column are correlated too, and found
* ``"jaccard"``  |a & b| / |a | b| over the sets of stored columns (values are ignored)

and returns them as a CSR matrix with at most K entries per row, sorted by column. Similarities
that are exactly 0 are not stored; among equal similarities the lower column wins, so the
result is exact and deterministic for any number of threads. Rows that are all-zero (cosine),
constant (pearson) or empty have no neighbours.

Before a similarity the models may weight the counts with TF-IDF or BM25 (:func:`weigh`),
with `implicit`'s formulas (those of ``fastals.data.tfidf_weight`` / ``bm25_weight``), in
either orientation, so that item-item weighting needs no transposed copy:

* TF-IDF:  w = sqrt(x) idf(t),                          idf(t) = log(n) - log(1 + df(t))
* BM25:    w = x (K1 + 1) / (K1 L(d) + x) idf(t),    L(d) = 1 - B + B len(d) / mean(len)

(n documents, df(t) the documents holding term t, len(d) the total count of document d).

The kernel (:mod:`fastals._kernels._similarity`) multiplies row by row against B^T into a
per-thread dense accumulator of n_b values and keeps a bounded heap per row, so memory is
O(threads x n_b + output). Its numpy oracle is :mod:`fastals.reference.similarity`.

This room sits between the data and the models: every call of the similarity kernels goes
through it (the neighbourhood models and the TF-IDF / BM25 weighting of :mod:`fastals.data`
use its functions). May import: numpy, scipy, the kernel room, :mod:`fastals._threads`,
:mod:`fastals._validation` and :mod:`fastals.data.weighting` (its parameter checks); never
a model.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from fastals._kernels import _similarity
from fastals._threads import resolve_threads
from fastals._typing import ArrayLike, DTypeLike, SparseMatrix
from fastals._validation import (
    CSR,
    as_csr,
    check_bool,
    check_choice,
    check_dtype,
    check_int,
    check_num_threads,
    log,
)
from fastals.data.weighting import bm25_parameters

SIMILARITIES = ("cosine", "dot", "pearson", "jaccard")
_MODE = {"dot": "dot", "cosine": "scaled", "pearson": "pearson", "jaccard": "jaccard"}
# Rows are processed in blocks of about this many multiply-adds (for progress and Ctrl-C).
_BLOCK_WORK = 1 << 27
# A row whose multiply-adds reach this fraction of n_b is accumulated and scanned densely.
_DENSE_FRACTION = 0.25


def top_k_similarity(A: SparseMatrix | ArrayLike, B: SparseMatrix | ArrayLike | None = None,
                     K: int = 20, similarity: str = "cosine", skip_self: bool | None = None,
                     dtype: DTypeLike = np.float32, num_threads: int = 0,
                     show_progress: bool = False) -> sp.csr_matrix:
    """The K most similar rows of B for every row of A, as a sparse matrix.

    Parameters
    ----------
    A : sparse matrix or 2-D array (n_a x f)
        Query rows (any scipy sparse format; dense arrays are converted).
    B : sparse matrix or 2-D array (n_b x f), optional
        Candidate rows; A itself when omitted.
    K : int
        Neighbours kept per row (all non-zero ones when fewer exist).
    similarity : {"cosine", "dot", "pearson", "jaccard"}
        See the module docstring.
    skip_self : bool, optional
        Never pair row i of A with row i of B. Defaults to True when B is omitted (an item
        is not its own neighbour) and False otherwise.
    dtype : float32 or float64
        Precision of the arithmetic and of the result.
    num_threads : int
        OpenMP threads; 0 uses every core.
    show_progress : bool
        Show a progress bar.

    Returns
    -------
    scipy.sparse.csr_matrix (n_a x n_b) of similarities, rows sorted by column.

    Examples
    --------
    >>> import numpy as np, fastals
    >>> shows = np.array([[1, 1, 1, 1, 1, 0], [1, 1, 0, 0, 0, 1], [1, 1, 1, 1, 0, 1]])
    >>> S = fastals.top_k_similarity(shows, K=2)
    >>> print(np.round(S[0].toarray(), 3))
    [[0.    0.516 0.8  ]]
    """
    K = check_int("K", K, minimum=1)
    check_choice("similarity", similarity, SIMILARITIES)
    dtype = check_dtype("dtype", dtype)
    threads = resolve_threads(check_num_threads(num_threads))
    show_progress = check_bool("show_progress", show_progress)
    rows_a = as_rows(A, "A", dtype)
    if B is None:
        rows_b = rows_a
        skip_self = True if skip_self is None else check_bool("skip_self", skip_self)
    else:
        rows_b = as_rows(B, "B", dtype, n_cols=rows_a.shape[1])
        skip_self = False if skip_self is None else check_bool("skip_self", skip_self)
    if skip_self and rows_a.shape[0] > rows_b.shape[0]:
        raise ValueError(f"skip_self needs A to have no more rows than B, got {rows_a.shape[0]} "
                         f"and {rows_b.shape[0]}")
    return rows_top_k(rows_a, None if rows_b is rows_a else rows_b, K, similarity, skip_self,
                      threads, show_progress)


def rows_top_k(A: CSR, B: CSR | None, K, similarity, skip_self, num_threads,
               show_progress=False, desc="similarity"):
    """:func:`top_k_similarity` on validated rows (B None: A against itself).

    Cosine runs as a dot product of rows scaled to unit length, Pearson on rows scaled by
    1/|a - mean| (the scaled copies are made here; the inputs are not modified): the dot
    products are then of order 1 whatever the scale of the values, so they neither
    underflow (values near 1e-30 in float32) nor overflow (near 1e30).
    """
    stats_a = row_statistics(A, similarity, num_threads)
    stats_b = stats_a if B is None else row_statistics(B, similarity, num_threads)
    Bt = A.transpose() if B is None else B.transpose()
    if similarity in ("cosine", "pearson"):
        A = scaled_rows(A, stats_a["scale"], num_threads)
        if similarity == "cosine":
            return top_k_csr(A, Bt, K, "dot", {}, {}, skip_self, num_threads, show_progress,
                             desc, bt_factors=stats_b["scale"])
        return top_k_csr(A, Bt, K, "pearson", _unit_scale(stats_a), _unit_scale(stats_b),
                         skip_self, num_threads, show_progress, desc,
                         bt_factors=stats_b["scale"])
    return top_k_csr(A, Bt, K, similarity, stats_a, stats_b, skip_self, num_threads,
                     show_progress, desc)


def query_top_k(Q: CSR, Bt: CSR, stats_b, K, similarity, num_threads):
    """The K most similar rows of B for each row of Q, B given as B^T with its
    :func:`row_statistics` (the stored rows of a fitted model; no row is skipped).

    For cosine and Pearson the query rows are pre-scaled (:func:`prescaled`) and B's scale
    is applied to the dot products: these are then of the order of B's values, never of
    their squares, so they neither underflow nor overflow, and B is not copied.
    """
    Q, stats_q = prescaled(Q, similarity, row_statistics(Q, similarity, num_threads),
                           num_threads)
    return top_k_csr(Q, Bt, K, similarity, stats_q, stats_b, False, num_threads)


def prescaled(rows: CSR, similarity, stats, num_threads):
    """(rows, stats) as the kernels should get them: for cosine and Pearson a copy of the rows
    multiplied by their scale and the statistics of that copy (scale 1), else unchanged."""
    if similarity not in ("cosine", "pearson"):
        return rows, stats
    return scaled_rows(rows, stats["scale"], num_threads), _unit_scale(stats)


def _unit_scale(stats):
    """Pearson statistics of rows already multiplied by their scale."""
    return dict(stats, scale=np.ones_like(stats["scale"]))


def columns_top_k(X: CSR, K, similarity, num_threads, weighting=None, K1=1.2, B=0.75,
                  show_progress=False, desc="similarity", name="X"):
    """The K most similar columns of X for each column (items of a users x items X).

    `weighting` ("tfidf" or "bm25", documents = columns) is applied first; a column is never
    its own neighbour. Returns (the n_cols x n_cols CSR, each column's similarity with
    itself). Memory beyond X and the result: one transposed copy and one array of values.
    `name` is how errors call X.
    """
    values = X.data
    if weighting is not None:
        values = weigh(X, weighting, "columns", K1, B, num_threads, name=name)
    W = CSR(X.indptr, X.indices, values, X.shape)
    A = W.transpose()  # columns as rows: our own copy
    del values
    stats = row_statistics(A, similarity, num_threads)
    diagonal = self_similarity(A, similarity, stats, num_threads)
    if similarity in ("cosine", "pearson"):  # on scaled rows, as in rows_top_k
        scale = stats["scale"]
        _similarity.scale_rows(A.indptr, A.data, scale, num_threads)
        if similarity == "cosine":
            S = top_k_csr(A, W, K, "dot", {}, {}, True, num_threads, show_progress, desc,
                          bt_factors=scale)
        else:
            unit = _unit_scale(stats)
            S = top_k_csr(A, W, K, "pearson", unit, unit, True, num_threads, show_progress,
                          desc, bt_factors=scale)
    else:
        S = top_k_csr(A, W, K, similarity, stats, stats, True, num_threads, show_progress, desc)
    return S, diagonal


def self_similarity(rows: CSR, similarity, stats, num_threads):
    """Each row's similarity with itself (0 for all-zero, constant or empty rows)."""
    if similarity == "dot":
        total, squares = np.empty(rows.shape[0]), np.empty(rows.shape[0])
        _similarity.row_moments(rows.indptr, rows.data, total, squares, num_threads)
        return squares
    return (stats["count" if similarity == "jaccard" else "scale"] > 0).astype(np.float64)


def scaled_rows(rows: CSR, factors, num_threads):
    """A copy of `rows` whose values are multiplied by one factor per row."""
    data = rows.data.copy()
    _similarity.scale_rows(rows.indptr, data, factors, num_threads)
    return CSR(rows.indptr, rows.indices, data, rows.shape)


def as_rows(X, name, dtype, n_cols=None):
    """A validated :class:`CSR` of a sparse matrix or of a dense 2-D array (finite values)."""
    if not sp.issparse(X) and X is not None and not isinstance(X, (str, bytes, dict)):
        try:
            dense = np.asarray(X)
        except (TypeError, ValueError) as exc:  # ragged nesting
            raise ValueError(f"{name} must be a sparse matrix or a 2-D array of numbers "
                             f"({exc})") from None
        if dense.dtype == object or dense.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers, got dtype {dense.dtype}")
        if dense.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got {dense.ndim}-D")
        if dense.dtype.kind == "f" and not np.isfinite(dense).all():
            bad = np.argwhere(~np.isfinite(dense))[0]
            raise ValueError(f"{name} contains NaN or infinite values (first at row {bad[0]}, "
                             f"column {bad[1]}: {dense[tuple(bad)]})")
        X = sp.csr_matrix(dense)
        log.debug("%s: converted the dense %s x %s array of %s to CSR", name, *dense.shape,
                  dense.dtype)
    return as_csr(X, name, dtype, shape=(None, n_cols))


def row_statistics(rows: CSR, similarity, num_threads):
    """What the kernel needs about each row for `similarity` (float64 arrays).

    scale: 1/|a| (cosine) or 1/|a - mean| (pearson); shift: sqrt(f) mean / |a - mean|
    (pearson); count: stored values per row (jaccard). Degenerate rows get 0.
    """
    n_rows, n_features = rows.shape
    if similarity in ("dot", "jaccard"):
        return {"count": np.diff(rows.indptr).astype(np.float64)} if similarity == "jaccard" else {}
    total, squares = np.empty(n_rows), np.empty(n_rows)
    _similarity.row_moments(rows.indptr, rows.data, total, squares, num_threads)
    if similarity == "cosine":
        return {"scale": _inverse_sqrt(squares)}
    mean = total / max(n_features, 1)
    centred = np.empty(n_rows)
    _similarity.centred_squares(rows.indptr, rows.data, n_features, mean, centred, num_threads)
    scale = _inverse_sqrt(centred)
    return {"scale": scale, "shift": np.sqrt(n_features) * mean * scale}


def _inverse_sqrt(values):
    out = np.zeros_like(values)
    positive = values > 0
    out[positive] = 1.0 / np.sqrt(values[positive])
    return out


def top_k_csr(A: CSR, Bt: CSR, K, similarity, stats_a, stats_b, skip_self, num_threads,
              show_progress=False, desc="similarity", bt_factors=None):
    """The kernel call behind :func:`top_k_similarity`, on validated inputs.

    A is n_a x f, Bt is B^T (f x n_b), both CSR with one float dtype; stats_* come from
    :func:`row_statistics` of the rows of A and of B. `bt_factors` (one per row of B) scale
    B's rows (in a copy of Bt's values).
    """
    n_a, n_b = A.shape[0], Bt.shape[1]
    dtype = A.data.dtype.type
    index = np.int64 if np.int64 in (A.indices.dtype.type, Bt.indices.dtype.type) else np.int32
    a_indptr, a_indices = A.indptr.astype(index, copy=False), A.indices.astype(index, copy=False)
    bt_indptr = Bt.indptr.astype(index, copy=False)
    bt_indices = Bt.indices.astype(index, copy=False)
    binary = similarity == "jaccard"
    empty = np.zeros(0, dtype=dtype)
    a_data = empty if binary else A.data
    bt_data = empty if binary else Bt.data.astype(dtype, copy=False)
    factors = np.zeros(0) if bt_factors is None else np.asarray(bt_factors, dtype=np.float64)
    K = min(K, n_b)

    col = {name: stats_b[name] for name in ("scale", "shift", "count") if name in stats_b}
    walk_up = walk_down = np.zeros(0, dtype=index)
    if similarity == "pearson":
        walk_up, walk_down = _walks(col["shift"].astype(dtype), index)
    if len(factors) and len(bt_data):
        scaled = np.empty_like(bt_data)
        _similarity.scale_columns(bt_indptr, bt_indices, bt_data, factors, scaled, num_threads)
        bt_data = scaled

    def row_array(name):
        return np.ascontiguousarray(stats_a[name], dtype=np.float64) if name in stats_a \
            else np.zeros(0)

    def col_array(name):
        return col[name].astype(dtype) if name in col else empty

    work = np.empty(n_a, dtype=np.int64)
    _similarity.row_work(a_indptr, a_indices, bt_indptr, work, num_threads)
    order = np.argsort(-work, kind="stable").astype(index)  # heaviest rows first
    threads = max(1, min(num_threads, n_a))
    # per thread: n_b accumulators (all-zero), then the heap of K
    scratch = np.zeros((threads, n_b + K), dtype=dtype)
    scratch_ids = np.empty((threads, n_b + K), dtype=index)
    out_ids = np.empty((n_a, K), dtype=index)
    out_scores = np.empty((n_a, K), dtype=dtype)
    counts = np.zeros(n_a, dtype=index)
    dense_threshold = max(1, int(_DENSE_FRACTION * n_b))
    mode = _similarity.MODES[_MODE[similarity]]
    args = ((a_indptr, a_indices, a_data), (bt_indptr, bt_indices, bt_data), mode,
            bool(skip_self), (row_array("scale"), row_array("shift"), row_array("count")),
            (col_array("scale"), col_array("shift"), col_array("count")), (walk_up, walk_down),
            work, dense_threshold, scratch, scratch_ids, out_ids, out_scores, counts, threads)
    with tqdm(total=n_a, disable=not show_progress, desc=desc, unit="row") as bar:
        for lo, hi in _work_ranges(work[order], _BLOCK_WORK):
            _similarity.top_k_rows(order[lo:hi], *args)
            bar.update(hi - lo)
    del scratch, scratch_ids, args, bt_indices, bt_data
    indptr = np.zeros(n_a + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.empty(indptr[-1], dtype=index)
    data = np.empty(indptr[-1], dtype=dtype)
    _similarity.compact(out_ids, out_scores, indptr, indices, data, threads)
    del out_ids, out_scores
    if not np.isfinite(data).all():
        raise OverflowError(f"{similarity} similarities overflow {np.dtype(dtype).name}: scale the "
                            "values down or use dtype=float64")
    result = sp.csr_matrix((data, indices, indptr.astype(index)), shape=(n_a, n_b), copy=False)
    result.has_sorted_indices = True
    return result


def predict_neighbours(Q: CSR, self_ids, rows_of, items, Rt: CSR, similarity, stats_users,
                       q_mean, q_fallback, user_mean, mean_centered, K, num_threads):
    """The kernel call behind ``UserKNN.predict``, on validated inputs.

    Estimates the rating of the pairs (row rows_of[k] of Q, items[k]) from the K training
    users most similar to the query row among those who rated the item (see
    :func:`fastals._kernels._similarity.predict_neighbours` for the vote). Q (queries x
    items) and Rt (items x training users, R^T) are CSR of one float dtype; stats_users is
    :func:`row_statistics` of the training users' rows; query q is training user
    self_ids[q] (-1: none), never its own neighbour; q_mean and user_mean are the mean
    ratings (for mean_centered), q_fallback[q] the estimate when no neighbour votes. The
    query rows are pre-scaled as in :func:`query_top_k` (Rt is not: its values are the
    votes). Returns (estimates, voters): float64 estimates in the order of the pairs, and how many
    neighbours voted for each.
    """
    dtype = Rt.data.dtype.type
    n_users = Rt.shape[1]
    index = np.int64 if np.int64 in (Q.indices.dtype.type, Rt.indices.dtype.type) else np.int32
    order = np.argsort(rows_of, kind="stable")  # the kernel takes pairs grouped by row
    pair_indptr = np.zeros(Q.shape[0] + 1, dtype=index)
    np.cumsum(np.bincount(rows_of, minlength=Q.shape[0]), out=pair_indptr[1:])
    Q, queries = prescaled(Q, similarity, row_statistics(Q, similarity, num_threads),
                           num_threads)
    workers = max(1, min(num_threads, Q.shape[0]))
    K = min(K, max(n_users, 1))
    none = np.zeros(0)

    def per_user(name):
        return stats_users[name].astype(dtype) if name in stats_users else none.astype(dtype)

    out = np.empty(len(items))
    voters = np.zeros(len(items), dtype=np.int64)
    _similarity.predict_neighbours(
        (Q.indptr.astype(index), Q.indices.astype(index), Q.data),
        (Rt.indptr.astype(index), Rt.indices.astype(index), Rt.data),
        (self_ids, pair_indptr, items[order].astype(index)),
        _similarity.MODES[_MODE[similarity]], similarity == "jaccard", bool(mean_centered),
        (queries.get("scale", none), queries.get("shift", none),
         queries.get("count", none), q_mean, q_fallback),
        (per_user("scale"), per_user("shift"), per_user("count"), user_mean), K,
        np.zeros((workers, n_users + K), dtype=dtype),  # accumulators, then the heap
        np.empty((workers, n_users + K), dtype=index), out, voters, workers)
    estimates = np.empty(len(items))
    estimates[order] = out
    counted = np.empty(len(items), dtype=np.int64)
    counted[order] = voters
    return estimates, counted


def _walks(col_shift, index):
    """Columns with a non-zero Pearson shift, by increasing and by decreasing shift (ties: id)."""
    nonzero = np.flatnonzero(col_shift != 0)
    values = col_shift[nonzero]
    up = nonzero[np.lexsort((nonzero, values))].astype(index)
    down = nonzero[np.lexsort((nonzero, -values))].astype(index)
    return up, down


def _work_ranges(work, target):
    """Consecutive ranges of rows with about `target` total work each."""
    n = len(work)
    if n == 0:
        return []
    ends = np.searchsorted(np.cumsum(work), np.arange(1, (int(work.sum()) // target) + 1) * target)
    bounds = np.unique(np.concatenate([[0], np.minimum(ends + 1, n), [n]]))
    return list(zip(bounds[:-1], bounds[1:]))


def dense_similarity(Q: CSR, B: CSR, similarity, stats_q, stats_b):
    """Dense similarities (n_q x n_b) of the rows of Q to the rows of B, for small queries."""
    q, b = Q.to_scipy(), B.to_scipy()
    if similarity == "jaccard":
        q, b = _binary(q), _binary(b)
    dots = np.asarray((q @ b.T).toarray(), dtype=np.float64)
    if similarity == "dot":
        return dots
    if similarity == "jaccard":
        union = stats_q["count"][:, None] + stats_b["count"][None, :] - dots
        return np.divide(dots, union, out=np.zeros_like(dots), where=union > 0)
    scores = dots * stats_q["scale"][:, None] * stats_b["scale"][None, :]
    if similarity == "pearson":
        scores -= stats_q["shift"][:, None] * stats_b["shift"][None, :]
    return scores


def _binary(matrix):
    out = matrix.copy()
    out.data = np.ones_like(out.data)
    return out


# --- term weightings --------------------------------------------------------------------------
def term_weights(counts: CSR, scheme, documents="rows", K1=1.2, B=0.75, num_threads=1):
    r"""TF-IDF or BM25 weights of the stored values of a validated CSR, in either orientation.

    `documents` says whether the rows or the columns of `counts` are the documents (the other
    axis holds the terms), so that item-item weighting needs no transposed copy. With n
    documents, df(t) those storing term t and len(d) the total count of document d:

    * idf(t) = log(max(n, 1)) - log(1 + df(t))
    * TF-IDF:  w = sqrt(x) idf(t)
    * BM25:    w = x (K1 + 1) / (K1 L(d) + x) idf(t),  L(d) = 1 - B + B len(d) / mean(len)
      (len(d) itself when the mean length is 0)

    the formulas of ``implicit``. Values, K1 and B are the callers' to check (see
    :func:`fastals.data.weighting.bm25_parameters`). The element-wise formula runs in the
    compiled similarity kernel. This is the one implementation: the weightings of
    :mod:`fastals.data` (``bm25_weight``, ``tfidf_weight``) call it too.

    Returns (weights aligned with ``counts.data``, idf per term, df per term).
    """
    n_rows, n_cols = counts.shape
    by_rows = documents == "rows"
    n_docs = n_rows if by_rows else n_cols
    df = np.bincount(counts.indices, minlength=n_cols) if by_rows else np.diff(counts.indptr)
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
        length_norm = (1.0 - B) + B * (length / mean if mean != 0 else length)
    weights = np.empty_like(counts.data)
    _similarity.weigh(counts.indptr, counts.indices, counts.data, scheme == "bm25", by_rows,
                      idf, length_norm, float(K1), weights, num_threads)
    return weights, idf, df


def weigh(counts: CSR, scheme, documents="rows", K1=1.2, B=0.75, num_threads=1,
          name="counts"):
    """The weights of the stored values of a validated CSR, as a new array.

    `documents` says whether the rows or the columns of `counts` are the documents; `name`
    is how errors call `counts`. The weighting itself is :func:`term_weights`, the one
    implementation, also behind ``fastals.data.tfidf_weight`` / ``bm25_weight``.
    """
    if scheme == "bm25":
        K1, B = bm25_parameters(K1, B)
    if counts.nnz and counts.data.min() < 0:
        raise ValueError(f"{scheme} weighting needs non-negative counts in {name}, got "
                         f"{counts.data.min()}")
    return term_weights(counts, scheme, documents, K1, B, num_threads)[0]
