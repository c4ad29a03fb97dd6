"""Approximate top-N for large catalogues: :class:`ApproximateIndex`, and :func:`recall_at_n`.

An HNSW graph (hnswlib, the optional extra ``pip install fastals[ann]``) over the item
factors of any factor model, searched for the largest inner products x_u . y_i. Two ways
to build it (`mips`):

* ``"ip"`` (the default): the graph is built and searched with the inner product itself
  (hnswlib's "ip" space on the raw factors).
* ``"augmented"``: the standard reduction of maximum inner product search to cosine
  (Bachrach et al., 2014): with M = max_i |y_i|, every item is stored as
  [y_i / M, sqrt(1 - |y_i|^2 / M^2)] (unit length) and a user queries with [x_u, 0], so the
  graph's inner product is x_u . y_i / M, a proper metric search in the model's order.

Both answer in the model's order; they differ in how well the graph navigates. On ALS
factors of power-law data the item norms span three orders of magnitude, the augmented
items then crowd around one pole of the sphere, and the augmented graph found 26% of the
exact top-10 where the inner-product graph found 98% at the same search breadth (60,000
Last.fm-sized items, M=16, ef=80; faiss' HNSW gave the same two figures), hence the
default. Each user's first N allowed candidates in the graph's order are scored exactly
(x_u . y_i) and ordered by that score, so the scores returned are the model's. Already-liked and filtered items are honoured by over-fetching: each user asks for
N + (their liked items) + (filtered items) candidates, and the few users left short after
filtering ask again with more.

The index is its own object rather than a ``recommend(..., approximate=True)`` switch: it
has its own build cost, parameters (graph degree, search breadth) and file, it answers
only for the factors it was built from, and the model's ``recommend`` stays exact.

This room sits above the models (it uses their public factors); may import numpy, scipy,
:mod:`fastals.models.base`, fastals' validation and file helpers, and hnswlib inside
functions only.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from fastals._files import atomic_path, file_path
from fastals._threads import resolve_threads
from fastals._typing import ArrayLike, IdsAndScores, Indices, PathLike, SparseMatrix
from fastals._validation import check_bool, check_choice, check_ids, check_int
from fastals.models.base import RecommenderBase

__all__ = ["ApproximateIndex", "recall_at_n"]

_FORMAT = 1
_MIPS = ("ip", "augmented")


def _hnswlib():
    try:
        import hnswlib
    except ImportError:
        raise ImportError("approximate search needs hnswlib: pip install 'fastals[ann]' "
                          "(or pip install hnswlib)") from None
    return hnswlib


def _factors(model, name):
    if not isinstance(model, RecommenderBase):
        raise TypeError(f"model must be a fastals recommender, got {type(model).__name__}")
    model._check_fitted()
    factors = getattr(model, name, None)
    if factors is None or getattr(model, "biases", False):
        raise TypeError(f"{type(model).__name__} does not score by x_u . y_i alone: an "
                        "approximate index needs a factor model without biases "
                        "(ImplicitALS, or an explicit model with biases=False)")
    return np.asarray(factors, dtype=np.float32)


def augment_items(Y):
    """[y_i / M, sqrt(1 - |y_i|^2 / M^2)] with M = max_i |y_i|: unit rows whose inner product
    with [x_u, 0] is x_u . y_i / M. Returns (rows, M)."""
    norms = np.linalg.norm(Y.astype(np.float64), axis=1)
    scale = float(norms.max()) if len(norms) and norms.max() > 0 else 1.0
    extra = np.sqrt(np.maximum(0.0, 1.0 - (norms / scale) ** 2))
    return np.hstack([Y / scale, extra[:, None]]).astype(np.float32), scale


class ApproximateIndex:
    """An HNSW index over a factor model's items, answering top-N queries approximately.

    Parameters
    ----------
    model : fitted factor model (ImplicitALS, ...)
        Its item factors are indexed now; later changes to the model are not seen.
    M : int
        Graph degree (hnswlib's M): higher is more accurate, bigger and slower to build.
    ef_construction : int
        Breadth of the search while building.
    ef : int
        Breadth of the search while querying (at least the number of candidates asked
        for); raise it for recall, lower it for speed.
    mips : {"ip", "augmented"}
        Search the inner product directly, or the augmented unit vectors (see above).
    num_threads : int
        Threads for building and querying (0: all cores).

    Examples
    --------
    >>> index = ApproximateIndex(model, ef=64)                            # doctest: +SKIP
    >>> ids, scores = index.recommend_all(user_items, N=10)               # doctest: +SKIP
    >>> index.save("model.ann")                                           # doctest: +SKIP
    >>> index = ApproximateIndex.load("model.ann", model)                 # doctest: +SKIP
    """

    def __init__(self, model: RecommenderBase, M: int = 32, ef_construction: int = 200,
                 ef: int = 64, num_threads: int = 0, mips: str = "ip",
                 _graph: Any = None) -> None:
        self.model = model
        self.M = check_int("M", M, minimum=2)
        self.ef_construction = check_int("ef_construction", ef_construction, minimum=1)
        self.ef = check_int("ef", ef, minimum=1)
        self.num_threads = check_int("num_threads", num_threads, minimum=0)
        self.mips = check_choice("mips", mips, _MIPS)
        Y = _factors(model, "item_factors")
        self.n_items = Y.shape[0]
        rows, self.scale = augment_items(Y) if self.mips == "augmented" else (Y, 1.0)
        if _graph is None:
            hnswlib = _hnswlib()
            _graph = hnswlib.Index(space="ip", dim=rows.shape[1])
            _graph.init_index(max_elements=max(self.n_items, 1), M=self.M,
                              ef_construction=self.ef_construction, random_seed=100)
            _graph.set_num_threads(resolve_threads(self.num_threads))
            if self.n_items:
                _graph.add_items(rows, np.arange(self.n_items))
        self._graph = _graph

    def __repr__(self):
        return (f"ApproximateIndex({type(self.model).__name__}, {self.n_items} items, "
                f"M={self.M}, ef={self.ef})")

    # --- queries ----------------------------------------------------------------------------
    def recommend(self, userid: Indices, user_items: SparseMatrix | None = None, N: int = 10,
                  filter_already_liked_items: bool = True, filter_items: Indices | None = None
                  ) -> IdsAndScores:
        """Approximately the model's ``recommend`` for a user (1-D results) or a batch
        (2-D, short rows padded with id -1 and score -inf). Scores are exact x_u . y_i."""
        ids, scalar = check_ids("userid", userid, self.model.n_users)
        out_ids, out_scores = self._query(ids, user_items, N, filter_already_liked_items,
                                          filter_items)
        if scalar:
            found = out_ids[0] >= 0
            return out_ids[0, found], out_scores[0, found]
        return out_ids, out_scores

    def recommend_all(self, user_items: SparseMatrix | None = None, N: int = 10,
                      filter_already_liked_items: bool = True,
                      filter_items: Indices | None = None, users: Indices | None = None,
                      batch_size: int = 65536) -> IdsAndScores:
        """Approximately the model's ``recommend_all``: (ids, scores), a row per user."""
        n = self.model.n_users
        userids = np.arange(n, dtype=np.int64) if users is None else \
            check_ids("users", users, n, allow_scalar=False)[0]
        batch_size = check_int("batch_size", batch_size, minimum=1)
        parts = [self._query(userids[lo:lo + batch_size], user_items, N,
                             filter_already_liked_items, filter_items)
                 for lo in range(0, max(len(userids), 1), batch_size)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _query(self, userids, user_items, N, filter_already_liked_items, filter_items):
        N = check_int("N", N, minimum=1)
        filter_liked = check_bool("filter_already_liked_items", filter_already_liked_items)
        model = self.model
        width = min(N, self.n_items)
        out_ids = np.full((len(userids), width), -1, dtype=np.int64)
        out_scores = np.full((len(userids), width), -np.inf, dtype=np.float32)
        if not len(userids) or not width:
            return out_ids, out_scores
        rows = None
        if filter_liked:
            if user_items is None:
                raise ValueError("user_items is required when filter_already_liked_items is "
                                 "True (pass the users' interactions)")
            rows = model._rows_for(userids, user_items, "user_items", model.n_users,
                                   model.n_items).to_scipy()
        blocked = np.zeros(self.n_items, dtype=bool)
        if filter_items is not None:
            blocked[check_ids("filter_items", filter_items, self.n_items)[0]] = True
        X = _factors(model, "user_factors")[userids]
        Y = _factors(model, "item_factors")
        liked = np.diff(rows.indptr) if rows is not None else np.zeros(len(userids), np.int64)
        allowed = self.n_items - int(blocked.sum())
        want = np.minimum(width, np.maximum(allowed - liked, 0))  # results each user can get
        # enough candidates for every filtered item to be among them, or the ef the search
        # visits anyway if fewer (a user left short asks again for twice as many)
        fetch = np.minimum(np.minimum(width + liked + int(blocked.sum()),
                                      max(self.ef, width)), self.n_items)
        todo = np.arange(len(userids))
        while len(todo):
            # users asking for similar numbers of candidates share a query (powers of two),
            # so one heavy user does not make the whole batch fetch thousands
            bucket = np.ceil(np.log2(np.maximum(fetch[todo], 1))).astype(np.int64)
            short = []
            for b in np.unique(bucket):
                group = todo[bucket == b]
                short += self._fill(group, X, Y, rows, blocked, fetch, want, width,
                                    out_ids, out_scores)
            todo = np.asarray(short, dtype=np.int64)
            fetch[todo] = np.minimum(2 * fetch[todo], self.n_items)
        return out_ids, out_scores

    def _fill(self, group, X, Y, rows, blocked, fetch, want, width, out_ids, out_scores):
        """Query the users `group` (positions in the batch) for their candidates, keep the
        allowed ones, score them exactly and write each user's best `width`; returns the
        users left short (fewer allowed candidates than they can have)."""
        k = int(fetch[group].max())
        labels = self._search(X[group], k, Y).astype(np.int64)
        keep = ~blocked[labels]
        if rows is not None:
            keep &= ~_liked_mask(rows, group, labels)
        count = keep.sum(axis=1)
        done = (count >= want[group]) | (k >= self.n_items)
        # each user's first `width` allowed candidates in the graph's order (its nearest
        # first), scored exactly and ordered by score, ties to the lower item
        first = np.argsort(~keep, axis=1, kind="stable")[:, :width]
        cand = np.take_along_axis(labels, first, axis=1)
        ok = np.take_along_axis(keep, first, axis=1) & done[:, None]
        scores = np.empty(cand.shape, dtype=np.float32)
        step = max(1, (1 << 22) // (width * Y.shape[1]))  # candidates' factors: 16 MB at a time
        for lo in range(0, len(group), step):
            part = slice(lo, lo + step)
            scores[part] = np.einsum("ukf,uf->uk", Y[cand[part]], X[group[part]])
        scores[~ok] = -np.inf
        by_id = np.argsort(cand, axis=1, kind="stable")
        cand = np.take_along_axis(cand, by_id, axis=1)
        scores = np.take_along_axis(scores, by_id, axis=1)
        best = np.argsort(-scores, axis=1, kind="stable")
        top_ids = np.take_along_axis(cand, best, axis=1)
        top_scores = np.take_along_axis(scores, best, axis=1)
        top_ids[top_scores == -np.inf] = -1
        n = top_ids.shape[1]
        out_ids[group[done], :n] = top_ids[done]
        out_scores[group[done], :n] = top_scores[done]
        short = list(group[~done])
        return short

    def _search(self, X, k, Y):
        """The graph's k candidates per row of X; all items, by exact score, when k is most
        of the catalogue or the graph cannot return k (users whose filters leave little)."""
        if 2 * k < self.n_items:
            queries = X
            if self.mips == "augmented":
                queries = np.hstack([X, np.zeros((len(X), 1), np.float32)])
            self._graph.set_ef(max(self.ef, k))
            try:
                labels, _ = self._graph.knn_query(queries, k=k,
                                                  num_threads=resolve_threads(self.num_threads))
                return labels
            except RuntimeError:  # "cannot return the results": fewer than k reachable
                pass
        labels = np.empty((len(X), k), dtype=np.int64)
        for lo in range(0, len(X), 256):
            scores = X[lo:lo + 256] @ Y.T
            labels[lo:lo + 256] = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return labels

    # --- files --------------------------------------------------------------------------
    def save(self, path: PathLike) -> str:
        """Write the graph to `path` and its parameters to ``path + '.json'`` (no pickle).

        Save it next to the model (``model.npz`` and ``model.ann``); :meth:`load` takes the
        same model back and checks that the index was built for its items."""
        path = file_path(path)
        with atomic_path(path, suffix=".ann") as tmp:
            self._graph.save_index(tmp)
        meta = {"format": _FORMAT, "M": self.M, "ef_construction": self.ef_construction,
                "ef": self.ef, "num_threads": self.num_threads, "n_items": self.n_items,
                "mips": self.mips,
                "scale": self.scale, "checksum": _checksum(_factors(self.model,
                                                                    "item_factors"))}
        with atomic_path(path + ".json", suffix=".json") as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(meta, f)
        return path

    @classmethod
    def load(cls, path: PathLike, model: RecommenderBase) -> ApproximateIndex:
        """Read an index written by :meth:`save`, for the model it was built from."""
        path = file_path(path)
        with open(path + ".json", encoding="utf-8") as f:
            meta = json.load(f)
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            raise ValueError(f"{path}.json is not a fastals approximate index description")
        Y = _factors(model, "item_factors")
        if meta.get("n_items") != Y.shape[0] or meta.get("checksum") != _checksum(Y):
            raise ValueError(f"the index {path} was built for other item factors "
                             f"({meta.get('n_items')} items) than this model's "
                             f"({Y.shape[0]} items): rebuild it")
        hnswlib = _hnswlib()
        mips = check_choice("mips", meta.get("mips"), _MIPS)
        graph = hnswlib.Index(space="ip", dim=Y.shape[1] + (mips == "augmented"))
        graph.load_index(path, max_elements=max(Y.shape[0], 1))
        graph.set_num_threads(resolve_threads(meta["num_threads"]))
        return cls(model, meta["M"], meta["ef_construction"], meta["ef"], meta["num_threads"],
                   mips, _graph=graph)


def _liked_mask(rows, todo, labels):
    """Whether labels[j, c] is in the row todo[j] of the CSR `rows`: one sorted search of
    (row, item) keys for the whole group."""
    n_items = rows.shape[1]
    starts, ends = rows.indptr[todo], rows.indptr[todo + 1]
    lengths = ends - starts
    take = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
    liked = np.repeat(np.arange(len(todo), dtype=np.int64), lengths) * n_items \
        + rows.indices[take]
    keys = np.arange(len(todo), dtype=np.int64)[:, None] * n_items + labels
    position = np.searchsorted(liked, keys)  # (liked is sorted: rows in order, sorted items)
    return liked[np.minimum(position, max(len(liked) - 1, 0))] == keys if len(liked) else \
        np.zeros(labels.shape, dtype=bool)


def _checksum(Y):
    """A cheap fingerprint of the item factors (shape and a few sums), to catch an index
    loaded for another model."""
    Y64 = Y.astype(np.float64)
    return [list(Y.shape), float(Y64.sum()), float((Y64[::97] ** 2).sum())]


def recall_at_n(approximate_ids: ArrayLike, exact_ids: ArrayLike) -> float:
    """The mean over users of |approximate top-N & exact top-N| / |exact top-N| (padding
    -1 ignored): how much of the exact answer an approximate one finds."""
    a, e = np.atleast_2d(approximate_ids), np.atleast_2d(exact_ids)
    if a.shape[0] != e.shape[0]:
        raise ValueError(f"approximate_ids and exact_ids must have a row per user each, got "
                         f"{a.shape[0]} and {e.shape[0]} rows")
    total, counted = 0.0, 0
    for row_a, row_e in zip(a, e):
        truth = set(row_e[row_e >= 0].tolist())
        if truth:
            total += len(truth & set(row_a[row_a >= 0].tolist())) / len(truth)
            counted += 1
    return total / counted if counted else 1.0
