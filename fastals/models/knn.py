r"""Neighbourhood (memory-based) recommenders: item-item, user-user and content-based.

All three keep a sparse similarity matrix with at most K neighbours per row, computed by the
top-K similarity kernel (:mod:`fastals.similarity`, :mod:`fastals._kernels._similarity`):

* :class:`ItemKNN` -- items are similar when the same users interacted with them
  (``implicit``'s ``CosineRecommender``, ``TFIDFRecommender`` and ``BM25Recommender`` are
  :class:`CosineRecommender`, :class:`TFIDFRecommender`, :class:`BM25Recommender` here). A user u
  is scored for item i by summing over the items j they interacted with:
  ``score(u, i) = sum_j r_uj S[j, i]``  (``user_items @ S``).
* :class:`UserKNN` -- users are similar when they rated items alike. It predicts ratings from
  the K most similar users who rated the item, and scores items for recommendation by
  ``score(u, i) = sum_v S[u, v] r_vi`` over u's K neighbours v.
* :class:`ContentKNN` -- items are similar when their features are (genres, tags, TF-IDF of
  descriptions); recommends the neighbours of the items a user liked, like ItemKNN.

An item (user) is never among its own K neighbours; :meth:`similar_items` still returns the
item itself first, with its self-similarity, as every fastals model does.

Imports: the public functions of :mod:`fastals.similarity` (every similarity kernel call goes
through them; no kernel module and no private name of it is imported here), the checks of
:mod:`fastals._validation` and :mod:`fastals._threads`, and the base class of
:mod:`fastals.models.base`.
"""
from __future__ import annotations

import time
from typing import NoReturn

import numpy as np
import scipy.sparse as sp

from fastals._threads import resolve_threads
from fastals._typing import (
    ArrayLike,
    DTypeLike,
    FitCallback,
    IdsAndScores,
    Indices,
    Self,
    SparseMatrix,
)
from fastals._validation import (
    CSR,
    as_csr,
    check_bool,
    check_choice,
    check_dtype,
    check_float,
    check_ids,
    check_int,
    check_num_threads,
    take_rows,
)
from fastals.models.base import RecommenderBase, check_fit_arguments
from fastals.similarity import (
    as_rows,
    columns_top_k,
    dense_similarity,
    predict_neighbours,
    prescaled,
    query_top_k,
    row_statistics,
    rows_top_k,
    self_similarity,
    weigh,
)

#: item-item similarities: "tfidf" and "bm25" weight the interactions first
ITEM_SIMILARITIES = ("cosine", "tfidf", "bm25", "pearson", "jaccard", "dot")
USER_SIMILARITIES = ("cosine", "pearson", "jaccard", "dot")
# the similarity measure behind each name, and the weighting applied before it
_MEASURE = {"cosine": "cosine", "tfidf": "cosine", "bm25": "dot", "pearson": "pearson",
            "jaccard": "jaccard", "dot": "dot"}
_WEIGHTING = {"tfidf": "tfidf", "bm25": "bm25"}


def _pack(name, matrix):
    """The arrays that save a CSR matrix (with its shape)."""
    return {f"{name}_indptr": matrix.indptr, f"{name}_indices": matrix.indices,
            f"{name}_data": matrix.data, f"{name}_shape": np.asarray(matrix.shape, dtype=np.int64)}


def _store(owner, name, matrix):
    """Keep a CSR matrix as the arrays :func:`_pack` names (and forget cached matrices)."""
    for key, value in _pack(name, matrix).items():
        setattr(owner, key, value)
    owner.__dict__.pop("_matrices", None)


def _stored_matrix(name: str, doc: str) -> property:
    """A read-only property: the scipy CSR matrix over the arrays stored under `name`."""
    def get(self) -> sp.csr_matrix | None:
        if getattr(self, f"{name}_data", None) is None:
            return None
        cache = self.__dict__.setdefault("_matrices", {})
        if name not in cache:
            cache[name] = sp.csr_matrix(
                (getattr(self, f"{name}_data"), getattr(self, f"{name}_indices"),
                 getattr(self, f"{name}_indptr")),
                shape=tuple(int(n) for n in getattr(self, f"{name}_shape")))
        return cache[name]
    return property(get, doc=doc)


def _without_values(owner, name, axis):
    """Which rows (axis 0) or columns (axis 1) of the matrix stored under `name` hold no
    value: a bool mask, cached until the matrix is replaced."""
    indices = getattr(owner, f"{name}_indices")
    cache = owner.__dict__.setdefault("_without_values", {})
    hit = cache.get((name, axis))
    if hit is not None and hit[0] is indices:
        return hit[1]
    indptr = getattr(owner, f"{name}_indptr")
    if axis == 0:
        mask = np.diff(indptr) == 0
    else:
        present = np.zeros(int(getattr(owner, f"{name}_shape")[1]), dtype=bool)
        step = 1 << 20  # bounded temporaries for the index conversion
        for lo in range(0, int(indptr[-1]), step):
            present[indices[lo:min(lo + step, int(indptr[-1]))]] = True
        mask = ~present
    cache[(name, axis)] = (indices, mask)
    return mask


def _unpack(owner, name, dtype):
    """Rebuild (and validate) the CSR matrix saved by :func:`_pack` from owner's attributes."""
    parts = [getattr(owner, f"{name}_{part}") for part in ("indptr", "indices", "data", "shape")]
    indptr, indices, data, shape = parts
    if np.ndim(shape) != 1 or len(shape) != 2:
        raise ValueError(f"{name}_shape must hold two sizes")
    try:
        matrix = sp.csr_matrix((data, indices, indptr), shape=tuple(int(n) for n in shape))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} is not a valid sparse matrix: {exc}") from None
    return as_csr(matrix, name, dtype).to_scipy()


def _owned(csr: CSR, original):
    """`csr` with arrays of its own (copies of those it shares with the caller's matrix)."""
    theirs = [getattr(original, part, None) for part in ("indptr", "indices", "data")]
    mine = []
    for array in (csr.indptr, csr.indices, csr.data):
        shared = any(isinstance(t, np.ndarray) and np.shares_memory(array, t) for t in theirs)
        mine.append(array.copy() if shared else array)
    return CSR(*mine, csr.shape)


def _check_fit_arguments(show_progress, callback):
    """Validate fit's show_progress and callback (as every model does); returns the start time."""
    check_fit_arguments(show_progress, callback)
    return time.perf_counter()


def _row_similarities(rows: CSR, stats, measure, ids, candidates, dtype):
    """Dense `measure` similarities (in `dtype`) of rows[ids] to every row or to the
    candidates; `stats` is :func:`row_statistics` of `rows`. What similar_items and
    similar_users rank for every neighbourhood model. The query rows are pre-scaled (as
    UserKNN's queries are for the kernels), so that cosine and Pearson of tiny or huge
    values do not underflow or overflow (a few rows: one thread scales them)."""
    query = as_csr(rows.to_scipy()[ids], "query", dtype, check_values=False)
    query, picked = prescaled(query, measure, {name: values[ids] for name, values in
                                               stats.items()}, 1)
    scores = dense_similarity(query, rows, measure, picked, stats).astype(dtype)
    return scores if candidates is None else scores[:, candidates]


def _dense_rows(matrix, rows, fill=-np.inf):
    """Rows of a sparse matrix as a dense array, absent entries set to `fill`."""
    block = matrix[rows].tocoo()
    out = np.full(block.shape, fill, dtype=matrix.dtype)
    out[block.row, block.col] = block.data
    return out


class _SimilarItemsModel(RecommenderBase):
    """A model holding a sparse item-item similarity matrix with K neighbours per item.

    Users are scored for items by ``user_items @ similarity_matrix``. The parameters are
    documented by the subclasses.
    """

    similarity_shape: np.ndarray  # (n_items, n_items) once fitted: see _store

    def __init__(self, K: int = 20, similarity: str = "cosine", K1: float = 1.2, B: float = 0.75,
                 dtype: DTypeLike = np.float32, num_threads: int = 0) -> None:
        self.K = K
        self.similarity = similarity
        self.K1 = K1
        self.B = B
        self.dtype = dtype
        self.num_threads = num_threads
        self._check_params()

    def _check_params(self):
        _check_knn_params(self, ITEM_SIMILARITIES)
        self.K1 = check_float("K1", self.K1, minimum=0)
        self.B = check_float("B", self.B, minimum=0, maximum=1)

    similarity_matrix = _stored_matrix(
        "similarity", "items x items CSR matrix of each item's K neighbours (not itself).")

    def _store_similarity(self, S, self_similarity):
        _store(self, "similarity", S)
        self.self_similarity = np.asarray(self_similarity, dtype=self.dtype)

    @property
    def n_items(self) -> int:
        return 0 if getattr(self, "similarity_shape", None) is None else int(self.similarity_shape[0])

    def _item_block(self, candidates):
        S = self.similarity_matrix
        return S if candidates is None else S.tocsc()[:, candidates].tocsr()

    def _stored_user_rows(self, userids):
        raise ValueError(f"{type(self).__name__} needs user_items to score users: pass the "
                         "users' interactions")

    def _user_scores(self, userids, rows, item_block, recalculate):
        R = rows.to_scipy() if rows is not None else self._stored_user_rows(userids)
        return np.asarray((R @ item_block).toarray(), dtype=self.dtype)

    def _similar_item_scores(self, ids, candidates):
        scores = _dense_rows(self.similarity_matrix, ids)
        scores[np.arange(len(ids)), ids] = self.self_similarity[ids]
        return scores if candidates is None else scores[:, candidates]

    def _restore(self, arrays, extra):
        super()._restore(arrays, extra)
        S = _unpack(self, "similarity", self.dtype)
        if S.shape[0] != S.shape[1]:
            raise ValueError(f"the similarity matrix must be square, got {S.shape}")
        self_similarity = np.asarray(self.self_similarity)
        if self_similarity.shape != (S.shape[0],) or not np.isfinite(self_similarity).all():
            raise ValueError("self_similarity must hold one finite value per item")
        self._store_similarity(S, self_similarity)


def _check_knn_params(model, similarities):
    model.K = check_int("K", model.K, minimum=1)
    model.similarity = check_choice("similarity", model.similarity, similarities)
    model.dtype = check_dtype("dtype", model.dtype)
    model.num_threads = check_num_threads(model.num_threads)


class UserItemsModel(RecommenderBase):
    """A model that keeps a copy of its training interactions (users x items) and scores a
    user from their row of it: the item-item models (:class:`ItemKNN`, ``EASE``,
    ``RP3beta``).

    Provides the users' side of the contract: :attr:`user_items`, `n_users`, the stored
    rows of known users, :meth:`similar_users` by the similarity (`_user_measure`) of the
    users' interaction rows, which users and items have no interactions, and saving the
    matrix. Subclasses provide the items' side (`n_items`, `_item_block`, `_user_scores`,
    `_similar_item_scores`) and call :meth:`_keep_user_items` in fit.
    """

    user_items_shape: np.ndarray
    #: the similarity of two users' interaction rows (similar_users)
    _user_measure = "cosine"

    user_items = _stored_matrix("user_items", "The training interactions (a copy).")

    def _keep_user_items(self, X: CSR, original):
        """Store the validated training matrix `X` (copying what it shares with the
        caller's `original`)."""
        _store(self, "user_items", _owned(X, original).to_scipy())

    @property
    def n_users(self) -> int:
        return 0 if getattr(self, "user_items_shape", None) is None else int(self.user_items_shape[0])

    def _stored_user_rows(self, userids):
        return self.user_items[userids]

    def _without_interactions(self, axis):
        return _without_values(self, "user_items", 1 if axis == "item" else 0)

    def _similar_scores(self, axis, ids, candidates):
        if axis == "item":
            return self._similar_item_scores(ids, candidates)
        measure = self._user_measure
        rows = as_csr(self.user_items, "user_items", self.dtype, check_values=False)
        cached = getattr(self, "_user_stats", None)
        if cached is None or cached[0] is not self.user_items_data:
            cached = (self.user_items_data,
                      row_statistics(rows, measure, resolve_threads(self.num_threads)))
            self._user_stats = cached
        return _row_similarities(rows, cached[1], measure, ids, candidates, self.dtype)

    def _restore(self, arrays, extra):
        super()._restore(arrays, extra)
        R = _unpack(self, "user_items", self.dtype)
        if R.shape[1] != self.n_items:
            raise ValueError(f"user_items has {R.shape[1]} items, the model {self.n_items}")
        _store(self, "user_items", R)


class ItemKNN(UserItemsModel, _SimilarItemsModel):
    r"""Item-item nearest neighbours for implicit feedback (plays, clicks, purchases).

    Fitting computes, for every item, its K most similar items over the users who
    interacted with them (the columns of ``user_items``); recommending scores item i for user
    u by ``sum_j r_uj S[j, i]`` over the items j in u's row.

    Parameters
    ----------
    K : int
        Neighbours kept per item.
    similarity : {"cosine", "tfidf", "bm25", "pearson", "jaccard", "dot"}
        ``cosine`` of the item columns; ``tfidf``: cosine after TF-IDF weighting (items are
        documents, users terms); ``bm25``: dot product after BM25 weighting with `K1`, `B`
        (both as in `implicit`); ``pearson``: correlation of the columns over all users;
        ``jaccard``: shared users / users of either; ``dot``: raw co-occurrence weights.
    K1, B : float
        BM25 parameters (``similarity="bm25"`` only).
    dtype : float32 or float64
        Precision of the similarities.
    num_threads : int
        OpenMP threads; 0 uses every core.

    Attributes
    ----------
    similarity_matrix : scipy.sparse.csr_matrix (n_items x n_items)
        Each item's K neighbours (never itself), by increasing item id.
    user_items : scipy.sparse.csr_matrix
        The training interactions (a copy), used when recommend() gets no user_items.

    Examples
    --------
    >>> import fastals, scipy.sparse as sp
    >>> user_items = sp.random(50, 40, density=0.1, format="csr", random_state=0)
    >>> model = fastals.ItemKNN(K=10).fit(user_items, show_progress=False)
    >>> ids, scores = model.recommend(0, user_items[0], N=5)
    """

    _state_names = ("similarity_indptr", "similarity_indices", "similarity_data",
                    "similarity_shape", "self_similarity", "user_items_indptr",
                    "user_items_indices", "user_items_data", "user_items_shape")

    def fit(self, user_items: SparseMatrix, show_progress: bool = True,
            callback: FitCallback | None = None) -> Self:
        """Compute each item's K neighbours from `user_items` (users x items, any sparse format).

        The input is never modified; the model keeps a copy of it to score users.
        `callback(0, seconds, None)` is called once when done. Returns self.
        """
        self._check_params()
        start = _check_fit_arguments(show_progress, callback)
        X = as_csr(user_items, "user_items", self.dtype, allow_empty=False)
        S, self_similarity = columns_top_k(
            X, self.K, _MEASURE[self.similarity], resolve_threads(self.num_threads),
            weighting=_WEIGHTING.get(self.similarity), K1=self.K1, B=self.B,
            show_progress=show_progress, desc=type(self).__name__, name="user_items")
        self._store_similarity(S, self_similarity)
        self._keep_user_items(X, user_items)
        if callback is not None:
            callback(0, time.perf_counter() - start, None)
        return self

    @property
    def _user_measure(self):
        """Users are compared by the same measure (cosine for tfidf/bm25)."""
        return {"tfidf": "cosine", "bm25": "cosine"}.get(self.similarity, self.similarity)


class CosineRecommender(ItemKNN):
    """Item-item cosine neighbours: ``implicit.nearest_neighbours.CosineRecommender``."""

    def __init__(self, K: int = 20, num_threads: int = 0, dtype: DTypeLike = np.float32) -> None:
        super().__init__(K=K, similarity="cosine", dtype=dtype, num_threads=num_threads)


class TFIDFRecommender(ItemKNN):
    """Item-item cosine after TF-IDF weighting: ``implicit``'s ``TFIDFRecommender``."""

    def __init__(self, K: int = 20, num_threads: int = 0, dtype: DTypeLike = np.float32) -> None:
        super().__init__(K=K, similarity="tfidf", dtype=dtype, num_threads=num_threads)


class BM25Recommender(ItemKNN):
    """Item-item dot product after BM25 weighting: ``implicit``'s ``BM25Recommender``."""

    def __init__(self, K: int = 20, K1: float = 1.2, B: float = 0.75, num_threads: int = 0,
                 dtype: DTypeLike = np.float32) -> None:
        super().__init__(K=K, similarity="bm25", K1=K1, B=B, dtype=dtype,
                         num_threads=num_threads)


class ContentKNN(_SimilarItemsModel):
    r"""Content-based neighbours: items are similar when their features are.

    Parameters
    ----------
    K : int
        Neighbours kept per item.
    similarity : {"cosine", "tfidf", "bm25", "pearson", "jaccard", "dot"}
        As for :class:`ItemKNN`, between the items' feature rows (``tfidf``/``bm25`` weight
        the features first, items being the documents).
    K1, B : float
        BM25 parameters.
    dtype, num_threads
        As for :class:`ItemKNN`.

    Notes
    -----
    :meth:`similar_items` computes exact similarities from the stored features (any N);
    :meth:`recommend` scores items by ``user_items @ similarity_matrix`` and needs the users'
    interactions (one row per requested user, or a users x items matrix to take them from).

    Examples
    --------
    >>> import numpy as np, fastals
    >>> genres = np.array([[1, 1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 1, 0],
    ...                    [1, 1, 1, 1, 0, 1, 0], [1, 1, 1, 0, 0, 0, 1]])
    >>> model = fastals.ContentKNN(K=3).fit(genres, show_progress=False)
    >>> ids, scores = model.similar_items(0, N=4)
    >>> print(ids, np.round(scores, 3))
    [0 2 3 1] [1.    0.8   0.671 0.516]
    """

    _state_names = ("similarity_indptr", "similarity_indices", "similarity_data",
                    "similarity_shape", "self_similarity", "features_indptr",
                    "features_indices", "features_data", "features_shape")

    def fit(self, item_features: SparseMatrix | ArrayLike, show_progress: bool = True,
            callback: FitCallback | None = None) -> Self:
        """Compute each item's K neighbours from `item_features` (items x features).

        `item_features` may be a dense array or any scipy sparse matrix (one-hot genres,
        TF-IDF of descriptions, ...); it is never modified. Returns self.
        """
        self._check_params()
        start = _check_fit_arguments(show_progress, callback)
        threads = resolve_threads(self.num_threads)
        F = as_rows(item_features, "item_features", self.dtype)
        if F.nnz == 0:
            raise ValueError(f"item_features is empty (shape {F.shape}, no non-zero values)")
        weighting = _WEIGHTING.get(self.similarity)
        if weighting is not None:
            values = weigh(F, weighting, "rows", self.K1, self.B, threads, name="item_features")
            F = CSR(F.indptr, F.indices, values, F.shape)
        measure = _MEASURE[self.similarity]
        S = rows_top_k(F, None, self.K, measure, True, threads, show_progress,
                       type(self).__name__)
        stats = row_statistics(F, measure, threads)
        self._store_similarity(S, self_similarity(F, measure, stats, threads))
        _store(self, "features", _owned(F, item_features).to_scipy())
        if callback is not None:
            callback(0, time.perf_counter() - start, None)
        return self

    @property
    def n_users(self) -> int:
        return 0

    def recommend(self, userid: Indices, user_items: SparseMatrix | None = None, N: int = 10,
                  filter_already_liked_items: bool = True, filter_items: Indices | None = None,
                  recalculate_user: bool = False, items: Indices | None = None
                  ) -> IdsAndScores:
        """The N best items for users given by their interactions (see RecommenderBase).

        `user_items` is required: one row per requested user, or a matrix holding the
        requested users' rows. `userid` only labels (or selects) those rows.
        """
        self._check_fitted()
        check_bool("recalculate_user", recalculate_user)  # (always recalculated from user_items)
        if user_items is None:
            raise ValueError("ContentKNN needs user_items to recommend: pass the users' "
                             "interactions (one row per user)")
        ids, _ = check_ids("userid", userid, np.iinfo(np.int64).max)
        if sp.issparse(user_items) and user_items.ndim == 2 and user_items.shape[0] != len(ids):
            check_ids("userid", ids, user_items.shape[0])
            user_items = take_rows(user_items, ids, "user_items")
        return super().recommend(userid, user_items, N, filter_already_liked_items,
                                 filter_items, True, items)

    def similar_users(self, userid: Indices, N: int = 10, filter_users: Indices | None = None,
                      users: Indices | None = None) -> NoReturn:
        raise TypeError("ContentKNN has no users: it compares items by their features")

    features = _stored_matrix("features", "The items' (weighted) feature rows.")

    def _without_interactions(self, axis):
        """Items without features (an empty row of item_features) have no similarity."""
        return _without_values(self, "features", 0)

    def _similar_scores(self, axis, ids, candidates):
        F = as_csr(self.features, "features", self.dtype, check_values=False)
        measure = _MEASURE[self.similarity]
        stats = row_statistics(F, measure, resolve_threads(self.num_threads))
        return _row_similarities(F, stats, measure, ids, candidates, self.dtype)

    def _restore(self, arrays, extra):
        super()._restore(arrays, extra)
        F = _unpack(self, "features", self.dtype)
        if F.shape[0] != self.n_items:
            raise ValueError(f"features has {F.shape[0]} items, the similarity {self.n_items}")
        _store(self, "features", F)


class UserKNN(RecommenderBase):
    r"""User-user collaborative filtering, for explicit ratings and implicit feedback.

    Users are compared by the `similarity` of their rating rows (missing ratings are 0).

    * :meth:`predict` estimates r_ui from the K users most similar to u among those who
      rated i (ties: lower id); the ones with positive similarity s_uv vote:
      ``r_ui = sum_v s_uv r_vi / sum_v s_uv``, or with ``mean_centered=True``
      ``r_ui = mu_u + sum_v s_uv (r_vi - mu_v) / sum_v s_uv`` (mu: a user's mean rating).
      Without voters the estimate is mu_u (the global mean for a user without ratings).
    * :meth:`recommend` ranks items by ``sum_v S[u, v] r_vi`` over u's K nearest users.
    * :meth:`most_similar_users` compares a new user's rating vector with every user.

    Parameters
    ----------
    K : int
        Neighbours per user (and voters per predicted rating).
    similarity : {"cosine", "pearson", "jaccard", "dot"}
        ``pearson`` is np.corrcoef of the full rating rows (missing ratings count as 0).
    mean_centered : bool
        Predict deviations from the users' means (see above).
    dtype, num_threads
        As for :class:`ItemKNN`.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp, fastals
    >>> ratings = sp.csr_matrix(np.array([[5, 3, 4, 4, 5], [3, 1, 1, 2, 5], [4, 1, 2, 3, 4]]))
    >>> model = fastals.UserKNN(K=2).fit(ratings, show_progress=False)
    >>> ids, scores = model.most_similar_users([5, 0, 0, 0, 0], N=3)
    >>> print(ids, np.round(scores, 3))
    [2 0 1] [0.59  0.524 0.474]
    """

    _state_names = ("ratings_indptr", "ratings_indices", "ratings_data", "ratings_shape",
                    "neighbours_indptr", "neighbours_indices", "neighbours_data",
                    "neighbours_shape")
    ratings_shape: np.ndarray

    def __init__(self, K: int = 40, similarity: str = "cosine", mean_centered: bool = False,
                 dtype: DTypeLike = np.float32, num_threads: int = 0) -> None:
        self.K = K
        self.similarity = similarity
        self.mean_centered = mean_centered
        self.dtype = dtype
        self.num_threads = num_threads
        self._check_params()

    def _check_params(self):
        _check_knn_params(self, USER_SIMILARITIES)
        self.mean_centered = check_bool("mean_centered", self.mean_centered)

    def fit(self, user_items: SparseMatrix, show_progress: bool = True,
            callback: FitCallback | None = None) -> Self:
        """Store the ratings (users x items) and find each user's K nearest users."""
        self._check_params()
        start = _check_fit_arguments(show_progress, callback)
        R = _owned(as_csr(user_items, "user_items", self.dtype, allow_empty=False), user_items)
        S = rows_top_k(R, None, self.K, self.similarity, True,
                       resolve_threads(self.num_threads), show_progress, type(self).__name__)
        self._keep(R.to_scipy(), S)
        if callback is not None:
            callback(0, time.perf_counter() - start, None)
        return self

    ratings = _stored_matrix("ratings", "The training ratings, users x items (a copy).")
    neighbours = _stored_matrix("neighbours", "users x users: each user's K nearest users.")

    def _keep(self, R, S):
        _store(self, "ratings", R)
        _store(self, "neighbours", S)
        self._derive()

    def _derive(self):
        """Statistics rebuilt from the stored ratings (after fit or load)."""
        threads = resolve_threads(self.num_threads)
        self._rows = as_csr(self.ratings, "ratings", self.dtype, check_values=False)
        self._columns = self._rows.transpose()
        self._stats = row_statistics(self._rows, self.similarity, threads)
        self.user_means, counts = _row_means(self._rows)
        self.global_mean = float((self.user_means * counts).sum() / max(counts.sum(), 1))

    @property
    def n_users(self) -> int:
        return 0 if getattr(self, "ratings_shape", None) is None else int(self.ratings_shape[0])

    @property
    def n_items(self) -> int:
        return 0 if getattr(self, "ratings_shape", None) is None else int(self.ratings_shape[1])

    # --- explicit ratings ------------------------------------------------------------------
    def predict(self, userid: Indices, itemid: Indices,
                user_items: SparseMatrix | ArrayLike | None = None, return_neighbours: bool = False
                ) -> float | np.ndarray | tuple[float, int] | tuple[np.ndarray, np.ndarray]:
        """Predicted ratings of `itemid` by `userid` (scalars, or arrays of equal length).

        With `user_items` (one row of ratings per prediction, in the order of `userid`), the
        users' ratings are read from it instead of the training data, so new users can be
        predicted (`userid` then only labels the rows; no training user is left out).
        Returns a float, or an array of floats; with `return_neighbours`, also how many
        neighbours voted for each estimate (0: the fallback mean was used).
        """
        self._check_fitted()
        items, item_scalar = check_ids("itemid", itemid, self.n_items)
        if user_items is None:
            users, user_scalar = check_ids("userid", userid, self.n_users)
        else:
            users, user_scalar = check_ids("userid", userid, np.iinfo(np.int64).max)
        scalar = user_scalar and item_scalar
        if len(users) == 1 and len(items) > 1:
            users = np.repeat(users, len(items))
        if len(items) == 1 and len(users) > 1:
            items = np.repeat(items, len(users))
        if len(users) != len(items):
            raise ValueError(f"userid and itemid must have the same length, got {len(users)} "
                             f"and {len(items)}")
        if user_items is None:
            queries, rows_of = np.unique(users, return_inverse=True)
            Q = self._rows.to_scipy()[queries]
            self_ids = queries.astype(np.int64)
        else:
            Q = as_rows(user_items, "user_items", self.dtype, n_cols=self.n_items).to_scipy()
            if Q.shape[0] != len(users):
                raise ValueError(f"user_items must have one row per prediction ({len(users)}), "
                                 f"got {Q.shape[0]}")
            rows_of = np.arange(len(users))
            self_ids = np.full(len(users), -1, dtype=np.int64)
        estimates, voters = self._predict_rows(as_csr(Q, "user_items", self.dtype), self_ids,
                                               rows_of, items)
        if scalar:
            estimates, voters = float(estimates[0]), int(voters[0])
        return (estimates, voters) if check_bool("return_neighbours", return_neighbours) \
            else estimates

    def _predict_rows(self, Q: CSR, self_ids, rows_of, items):
        """Estimates (and voter counts) for the pairs (row rows_of[k] of Q, items[k])."""
        q_mean, counts = _row_means(Q)
        q_fallback = np.where(counts > 0, q_mean, self.global_mean)
        return predict_neighbours(Q, self_ids, rows_of, items, self._columns, self.similarity,
                                  self._stats, q_mean, q_fallback, self.user_means,
                                  self.mean_centered, self.K, resolve_threads(self.num_threads))

    # --- new users ----------------------------------------------------------------------------
    def most_similar_users(self, vector: SparseMatrix | ArrayLike, N: int = 10) -> IdsAndScores:
        """The N training users most similar to a new user's rating vector, best first.

        `vector` is a 1-D array of n_items ratings (0 = not rated) or a sparse 1 x n_items
        row; a 2-D array or matrix asks for several new users at once (2-D results, padded
        with id -1 and score -inf). Returns (ids, scores).
        """
        self._check_fitted()
        N = check_int("N", N, minimum=1)
        one = not sp.issparse(vector) and np.ndim(vector) == 1
        Q = as_rows(np.atleast_2d(vector) if one else vector, "vector", self.dtype,
                    n_cols=self.n_items)
        S = query_top_k(Q, self._columns, self._stats, N, self.similarity,
                        resolve_threads(self.num_threads))
        ids, scores = _best_first(S, min(N, self.n_users), self.dtype)
        if one:
            found = ids[0] >= 0
            return ids[0, found], scores[0, found]
        return ids, scores

    # --- implicit recommendation ------------------------------------------------------------
    def _item_block(self, candidates):
        return candidates

    def _user_scores(self, userids, rows, item_block, recalculate):
        if recalculate:
            nearest = query_top_k(rows, self._columns, self._stats, min(self.K, self.n_users),
                                  self.similarity, resolve_threads(self.num_threads))
        else:
            nearest = self.neighbours[userids]
        scores = np.asarray((nearest @ self.ratings).toarray(), dtype=self.dtype)
        return scores if item_block is None else scores[:, item_block]

    def _without_interactions(self, axis):
        return _without_values(self, "ratings", 0 if axis == "user" else 1)

    def _similar_scores(self, axis, ids, candidates):
        if axis == "user":
            rows, stats = self._rows, self._stats
        else:
            rows = self._columns
            stats = row_statistics(rows, self.similarity, resolve_threads(self.num_threads))
        return _row_similarities(rows, stats, self.similarity, ids, candidates, self.dtype)

    def _restore(self, arrays, extra):
        super()._restore(arrays, extra)
        R = _unpack(self, "ratings", self.dtype)
        S = _unpack(self, "neighbours", self.dtype)
        if S.shape != (R.shape[0], R.shape[0]):
            raise ValueError(f"neighbours must be {R.shape[0]} x {R.shape[0]}, got {S.shape}")
        self._keep(R, S)


def _row_means(rows: CSR):
    """(mean of each row's stored values, 0 for empty rows; stored values per row)."""
    counts = np.diff(rows.indptr)
    totals = np.zeros(len(counts))
    nonempty = counts > 0
    if rows.nnz:
        totals[nonempty] = np.add.reduceat(rows.data.astype(np.float64),
                                           rows.indptr[:-1][nonempty])
    return np.divide(totals, counts, out=np.zeros(len(counts)), where=nonempty), counts


def _best_first(S, width, dtype):
    """Each row's stored entries sorted by decreasing score (ties: lower id), padded."""
    n = S.shape[0]
    ids = np.full((n, width), -1, dtype=np.int64)
    scores = np.full((n, width), -np.inf, dtype=dtype)
    for row in range(n):
        lo, hi = S.indptr[row], S.indptr[row + 1]
        cols, vals = S.indices[lo:hi], S.data[lo:hi]
        order = np.lexsort((cols, -vals))[:width]
        ids[row, :len(order)] = cols[order]
        scores[row, :len(order)] = vals[order]
    return ids, scores
