r"""RP3beta: item-item similarities from a popularity-penalised three-step random walk.

Paudel, Christoffel, Newell & Bernstein (2017), "Updatable, accurate, diverse, and scalable
recommendations for interactive applications", walk the bipartite user-item graph
user -> item -> user -> item. With the transition probabilities

    P_ui = r_ui / sum_j r_uj      (a user to the items of their row, by value)
    P_iu = 1 / n_i                (an item to one of its n_i users, uniformly)

each stored probability raised to the power alpha, the item-item part of the walk, with the
arrival item j penalised by its popularity n_j, is

    W_ij = sum_u P_iu^alpha P_ui^alpha / n_j^beta

and each item keeps its K largest W_ij (j != i), optionally divided by their sum (l1 row
normalisation, as in the reference implementation of Dacrema et al. 2019). A user u is
scored by ``x_u W`` over the items of u's row, as :class:`~fastals.ItemKNN` scores.

W's top-K is the sparse top-K similarity kernel's dot product of the rows of P_iu with the
columns of P_ui, the columns scaled by n_j^-beta (:func:`fastals.similarity.top_k_csr`):
no dense items x items matrix is formed. The numpy oracle is
:mod:`fastals.reference.itemitem`.

May import: numpy, :mod:`fastals._validation`, :mod:`fastals._threads`, the public
functions of :mod:`fastals.similarity` (every similarity kernel call goes through them), and
the item-item model bases of :mod:`fastals.models.knn`.
"""
from __future__ import annotations

import time

import numpy as np

from fastals._threads import resolve_threads
from fastals._typing import DTypeLike, FitCallback, Self, SparseMatrix
from fastals._validation import (
    CSR,
    as_csr,
    check_bool,
    check_dtype,
    check_float,
    check_int,
    check_num_threads,
)
from fastals.models.base import check_fit_arguments
from fastals.models.knn import UserItemsModel, _SimilarItemsModel
from fastals.similarity import top_k_csr


class RP3beta(UserItemsModel, _SimilarItemsModel):
    r"""RP3beta (Paudel et al. 2017): random-walk item-item neighbours with a popularity
    penalty.

    ``W_ij = sum_u P_iu^alpha P_ui^alpha / n_j^beta`` with ``P_ui = r_ui / sum_j r_uj`` and
    ``P_iu = 1 / n_i`` (n_i: the users of item i), each item keeping its K largest W_ij;
    user u is scored by ``sum_j r_uj W[j, i]``.

    Parameters
    ----------
    K : int
        Neighbours kept per item.
    alpha : float >= 0
        The exponent of the transition probabilities (1: the plain walk, P3; 0: every
        stored transition counts 1, so W counts co-occurrences).
    beta : float >= 0
        The popularity penalty: arrival items are divided by n_j^beta (0: none, P3alpha).
    normalize_similarity : bool
        Divide each item's K values by their sum, as the reference implementation can.
    dtype : float32 or float64
        Precision of the transition probabilities and of W.
    num_threads : int
        OpenMP threads; 0 uses every core.

    The defaults (K=100, alpha=1, beta=0.5, no normalisation) are 3% below the best point
    of ``bench/quality.py``'s grid (alpha 0.75-1, beta 0.3-0.7, K 100-200, with and without
    normalisation; binary data, 80/20 splits, 3 seeds) on MovieLens 100K (nDCG@10 0.387
    against 0.398 at beta=0.7, K=200, normalised) and 1% below it on the demo data (0.299
    against 0.302 at beta=0.5, K=200, normalised); no single point was best on both.

    Attributes
    ----------
    similarity_matrix : scipy.sparse.csr_matrix (n_items x n_items)
        W: each item's K neighbours (never itself), by increasing item id.
    self_similarity : ndarray (n_items,)
        The item's own score in :meth:`similar_items`, where it comes first: W_ii (the
        walk's return to the item it started from, scaled like the item's row when
        normalized), or, where that is lower, the next float above its best neighbour.
    user_items : scipy.sparse.csr_matrix
        The training interactions (a copy), used when recommend() gets no user_items.

    Examples
    --------
    >>> import fastals, scipy.sparse as sp
    >>> user_items = sp.random(50, 40, density=0.1, format="csr", random_state=0)
    >>> model = fastals.RP3beta(K=10, beta=0.5).fit(user_items, show_progress=False)
    >>> ids, scores = model.recommend(0, user_items[0], N=5)
    """

    _state_names = ("similarity_indptr", "similarity_indices", "similarity_data",
                    "similarity_shape", "self_similarity", "user_items_indptr",
                    "user_items_indices", "user_items_data", "user_items_shape")

    def __init__(self, K: int = 100, alpha: float = 1.0, beta: float = 0.5,
                 normalize_similarity: bool = False, dtype: DTypeLike = np.float32,
                 num_threads: int = 0) -> None:
        self.K = K
        self.alpha = alpha
        self.beta = beta
        self.normalize_similarity = normalize_similarity
        self.dtype = dtype
        self.num_threads = num_threads
        self._check_params()

    def _check_params(self):
        self.K = check_int("K", self.K, minimum=1)
        self.alpha = check_float("alpha", self.alpha, minimum=0)
        self.beta = check_float("beta", self.beta, minimum=0)
        self.normalize_similarity = check_bool("normalize_similarity",
                                               self.normalize_similarity)
        self.dtype = check_dtype("dtype", self.dtype)
        self.num_threads = check_num_threads(self.num_threads)

    def fit(self, user_items: SparseMatrix, show_progress: bool = True,
            callback: FitCallback | None = None) -> Self:
        """Compute each item's K walk neighbours from `user_items` (users x items, any
        sparse format, non-negative values).

        The input is never modified; the model keeps a copy of it to score users.
        `callback(0, seconds, None)` is called once when done. Returns self.
        """
        self._check_params()
        check_fit_arguments(show_progress, callback)
        start = time.perf_counter()
        X = as_csr(user_items, "user_items", self.dtype, allow_empty=False)
        if X.data.min() < 0:
            raise ValueError(f"RP3beta needs non-negative values in user_items (they are "
                             f"turned into transition probabilities), got {X.data.min()}")
        P_iu, P_ui, penalty, returns = transitions(X, self.alpha, self.beta)
        S = top_k_csr(P_iu, P_ui, self.K, "dot", {}, {}, True,
                      resolve_threads(self.num_threads), show_progress, "RP3beta",
                      bt_factors=penalty)
        if self.normalize_similarity:
            row_of = np.repeat(np.arange(S.shape[0]), np.diff(S.indptr))
            sums = np.bincount(row_of, weights=S.data, minlength=S.shape[0]).astype(float)
            scale = np.divide(1.0, sums, out=np.ones_like(sums), where=sums > 0)
            S.data *= np.repeat(scale, np.diff(S.indptr)).astype(S.dtype)
            returns *= scale
        self._store_similarity(S, _own_best_match(S, returns))
        self._keep_user_items(X, user_items)
        if callback is not None:
            callback(0, time.perf_counter() - start, None)
        return self


def _own_best_match(S, returns):
    """Each item's score for itself in similar_items: W_ii, or just above the item's best
    neighbour where that is higher, so that an item is its own best match (as for every
    fastals model)."""
    own = np.array(returns, dtype=np.float64)
    rows = np.flatnonzero(np.diff(S.indptr))
    if len(rows):
        best = np.maximum.reduceat(S.data, S.indptr[:-1][rows])  # in W's dtype
        own[rows] = np.maximum(own[rows], np.nextafter(best, np.inf).astype(np.float64))
    return own


def transitions(X: CSR, alpha, beta):
    """The walk's parts from validated non-negative interactions X (users x items):
    (P_iu^alpha as an items x users CSR, P_ui^alpha as a users x items CSR, the arrival
    penalty n_j^-beta per item (0 for items without users), and W_ii per item)."""
    n_users, n_items = X.shape
    counts = np.diff(X.indptr)
    row_of = np.repeat(np.arange(n_users), counts)
    totals = np.bincount(row_of, weights=X.data, minlength=n_users)
    popularity = np.bincount(X.indices, minlength=n_items).astype(np.float64)
    with np.errstate(divide="ignore"):
        p_ui = (X.data / totals[row_of]) ** alpha
        p_iu = (1.0 / popularity[X.indices]) ** alpha  # aligned with X's stored entries
        penalty = np.where(popularity > 0, popularity, 1.0) ** -beta
    penalty[popularity == 0] = 0
    dtype = X.data.dtype
    P_ui = CSR(X.indptr, X.indices, p_ui.astype(dtype), X.shape)
    P_iu = CSR(X.indptr, X.indices, p_iu.astype(dtype), X.shape).transpose()
    returns = np.bincount(X.indices, weights=p_ui * p_iu, minlength=n_items) * penalty
    return P_iu, P_ui, penalty, returns
