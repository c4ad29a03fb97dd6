"""A recommender that speaks the caller's ids: :class:`IdRecommender`, and :func:`score_pairs`.

* :class:`IdRecommender` -- wraps any fitted :class:`~fastals.RecommenderBase` so that
  ``recommend``, ``similar_items``, ``similar_users`` and ``predict`` take and return the
  caller's ids (optionally as a DataFrame joined with item metadata), and saves the ids and
  the training interactions in the same ``.npz`` file as the model.
* :func:`score_pairs` -- the score of (user, item) pairs for any fitted model (behind
  ``IdRecommender.predict`` and the rating metrics of :mod:`fastals.evaluation`).

This room sits above the models (it needs them); the id plumbing it translates with lives
below, in :mod:`fastals.data`, which re-exports both names.

May import: numpy, scipy, :mod:`fastals.data`, :mod:`fastals.models.base` (the models'
public interface), :mod:`fastals._files`, :mod:`fastals._validation`,
:mod:`fastals.exceptions`.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import scipy.sparse as sp

from fastals._files import atomic_path, describe, load_path, save_path
from fastals._typing import ArrayLike, CallerId, CallerIds, Indices, PathLike, Self, SparseMatrix
from fastals._validation import as_csr, check_ids
from fastals.data._common import _require_pandas
from fastals.data.ids import IdMapping, _is_scalar_id
from fastals.data.interactions import Interactions, _check_info, _info_frame, _labels, \
    canonical_csr
from fastals.exceptions import ModelFileError
from fastals.models.base import RecommenderBase, load as load_model

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["IdRecommender", "score_pairs"]

_IDS_HEADER = "__fastals_ids__"
_IDS_FORMAT = 1
_PAIR_BLOCK_CELLS = 1 << 22


def score_pairs(model: RecommenderBase, userids: Indices, itemids: Indices,
                user_items: SparseMatrix | None = None) -> np.ndarray:
    """The model's score of each (user, item) pair, for any fitted recommender.

    Uses the model's own ``predict`` when it has one (explicit models predict ratings);
    otherwise ``x_u . y_i`` for factor models, or the model's dense scores in blocks.
    `user_items` (users x items) is passed to models that score from a user's history.
    """
    if not isinstance(model, RecommenderBase):
        raise TypeError(f"model must be a fastals recommender, got {type(model).__name__}")
    model._check_fitted()
    users, _ = check_ids("userids", userids, model.n_users, allow_scalar=True)
    items, _ = check_ids("itemids", itemids, model.n_items, allow_scalar=True)
    if len(users) != len(items):
        raise ValueError(f"userids and itemids must have the same length, got {len(users)} "
                         f"and {len(items)}")
    predict = getattr(model, "predict", None)
    if callable(predict):
        result = predict(users, items)
        if isinstance(result, tuple):  # (predictions, flags) from models that report fallbacks
            result = result[0]
        return np.asarray(result)
    X, Y = getattr(model, "user_factors", None), getattr(model, "item_factors", None)
    if X is not None and Y is not None:
        out = np.empty(len(users), dtype=np.result_type(X, Y))  # the model's dtype
        step = max(1, _PAIR_BLOCK_CELLS // max(X.shape[1], 1))
        for lo in range(0, len(users), step):
            hi = lo + step
            out[lo:hi] = np.einsum("ij,ij->i", X[users[lo:hi]], Y[items[lo:hi]])
        return out
    order = np.argsort(users, kind="stable")
    unique_users, starts = np.unique(users[order], return_index=True)
    bounds = list(starts) + [len(order)]
    step = max(1, _PAIR_BLOCK_CELLS // max(model.n_items, 1))
    out = None
    for lo in range(0, max(len(unique_users), 1), step):  # once even without pairs: the dtype
        block_users = unique_users[lo:lo + step]
        scores = model._dense_scores(block_users, user_items)
        if out is None:
            out = np.empty(len(users), dtype=scores.dtype)
        pairs = order[bounds[lo]:bounds[lo + len(block_users)]]
        out[pairs] = scores[np.searchsorted(block_users, users[pairs]), items[pairs]]
    return out  # type: ignore[return-value]  # not None: the loop runs at least once


# --- a recommender that speaks the caller's ids -----------------------------------------------
class IdRecommender:
    """Any fastals recommender, taking and returning the caller's user and item ids.

    The wrapped model works on indices; this class keeps the :class:`IdMapping` of users and
    items (and the training interactions, to filter what a user already has) and translates
    at the boundary. It works with every :class:`~fastals.RecommenderBase` model unchanged.

    Parameters
    ----------
    model : RecommenderBase
        Fitted already (then give `data` or `users`/`items`), or fitted by :meth:`fit`.
    data : Interactions, optional
        The interactions the model was fit on: its ids, matrix and item metadata are kept.
    users, items : IdMapping, optional
        The ids when `data` is not given (default: ``0..n-1``).
    user_items : sparse matrix, optional
        The training matrix when `data` is not given.
    item_info : dict of str -> array, optional
        Item metadata aligned with the item indices.

    Unknown ids raise :class:`~fastals.IdOutOfRangeError` naming the id. A user unseen at fit
    time can still be served from their history: ``recommend(new_id, history=[...])`` folds
    the user in from the items given (for models that can recalculate users, e.g.
    ImplicitALS).

    Examples
    --------
    >>> rec = IdRecommender(fastals.ImplicitALS(factors=8)).fit(data)  # doctest: +SKIP
    >>> rec.recommend("alice", N=5)                                    # doctest: +SKIP
    >>> rec.similar_items("Jay-Z", as_frame=True)                      # doctest: +SKIP
    >>> rec.save("model.npz"); IdRecommender.load("model.npz")         # doctest: +SKIP
    """

    users: IdMapping | None
    items: IdMapping | None
    user_items: sp.csr_matrix | None
    item_info: dict[str, np.ndarray]

    def __init__(self, model: RecommenderBase, data: Interactions | SparseMatrix | None = None, *,
                 users: IdMapping | None = None, items: IdMapping | None = None,
                 user_items: SparseMatrix | None = None,
                 item_info: Mapping[str, ArrayLike] | None = None) -> None:
        if not isinstance(model, RecommenderBase):
            raise TypeError(f"model must be a fastals recommender, got {type(model).__name__}")
        self.model = model
        self.users, self.items, self.user_items, self.item_info = None, None, None, {}
        if data is not None:
            self._attach(data)
        else:
            self.users, self.items = users, items
            self.user_items = None if user_items is None else \
                sp.csr_matrix(canonical_csr(user_items, "user_items"))
            self.item_info = _check_info(item_info, len(items) if items is not None else 0,
                                         "item_info") if item_info else {}
        if model.is_fitted:
            self._check_sizes()

    def _attach(self, data):
        if isinstance(data, Interactions):
            self.users, self.items = data.users, data.items
            self.user_items, self.item_info = data.user_items, dict(data.item_info)
        elif sp.issparse(data):
            csr = sp.csr_matrix(canonical_csr(data, "data"))
            self.users = IdMapping.range(csr.shape[0], "user")
            self.items = IdMapping.range(csr.shape[1], "item")
            self.user_items, self.item_info = csr, {}
        else:
            raise TypeError("data must be fastals.data.Interactions or a scipy sparse matrix, "
                            f"got {type(data).__name__} (build one with fastals.data."
                            "from_dataframe or read_csv)")

    def _check_sizes(self):
        model = self.model
        if self.users is None:
            self.users = IdMapping.range(model.n_users, "user")
        if self.items is None:
            self.items = IdMapping.range(model.n_items, "item")
        if len(self.users) != model.n_users or len(self.items) != model.n_items:
            raise ValueError(f"the ids ({len(self.users)} users, {len(self.items)} items) do not "
                             f"match the model ({model.n_users} users, {model.n_items} items)")
        if self.user_items is not None and self.user_items.shape != (model.n_users, model.n_items):
            raise ValueError(f"user_items has shape {self.user_items.shape}, the model "
                             f"({model.n_users}, {model.n_items})")

    def __repr__(self):
        sizes = "" if self.users is None else f", {len(self.users)} users, {len(self.items)} items"
        return f"IdRecommender({self.model!r}{sizes})"

    def fit(self, data: Interactions | SparseMatrix, **fit_kwargs: Any) -> Self:
        """Fit the model on `data` (Interactions or a sparse matrix) and keep its ids; self."""
        self._attach(data)
        self.model.fit(self.user_items, **fit_kwargs)
        self._check_sizes()
        return self

    # --- queries ---
    def recommend(self, user: CallerIds, N: int = 10, filter_already_liked_items: bool = True,
                  filter_items: CallerIds | None = None, items: CallerIds | None = None,
                  history: CallerIds | Mapping[CallerId, float] | None = None,
                  as_frame: bool = False) -> tuple[np.ndarray, np.ndarray] | pd.DataFrame:
        """The N best items for a user (or each of a list of users), by the caller's ids.

        Parameters
        ----------
        user : id or sequence of ids
        N : int
        filter_already_liked_items : bool
            Leave out the items the user has in the training data (or in `history`).
        filter_items, items : sequences of item ids, optional
            Items never to return / the only items to rank.
        history : sequence of item ids, or dict item id -> value, optional
            The user's interactions, for a user unseen at fit time (or to refresh a known
            one): the user is folded in from them. One user only.
        as_frame : bool
            Return a DataFrame (user, rank, item, score, and the item metadata columns).

        Returns
        -------
        (item_ids, scores), best first; for a list of users, 2-D arrays with a row per user
        (short rows are padded with id None and score -inf, the ids then have dtype object).
        Or a DataFrame when `as_frame`.
        """
        self._require_fitted()
        scalar = _is_scalar_id(user)
        filter_liked = filter_already_liked_items
        filter_idx = None if filter_items is None else self._item_indices(filter_items)
        items_idx = None if items is None else self._item_indices(items)
        if history is not None:
            if not scalar:
                raise ValueError("history describes one user: pass a single user id with it")
            row = self._history_row(history)
            ids, scores = self.model.recommend(0, row, N=N,
                                               filter_already_liked_items=filter_liked,
                                               filter_items=filter_idx, items=items_idx,
                                               recalculate_user=True)
            users_out = [user]
        else:
            idx = self.users.index(user)
            user_items = self.user_items if filter_already_liked_items else None
            if filter_already_liked_items and user_items is None:
                raise ValueError("this IdRecommender has no training interactions to filter "
                                 "with: pass filter_already_liked_items=False")
            ids, scores = self.model.recommend(idx, user_items, N=N,
                                               filter_already_liked_items=filter_liked,
                                               filter_items=filter_idx, items=items_idx)
            users_out = [user] if scalar else list(user)  # type: ignore[arg-type]
        if as_frame:
            return self._frame("user", users_out, ids, scores)
        return self._item_ids(ids), scores

    def recommend_all(self, N: int = 10, filter_already_liked_items: bool = True,
                      filter_items: CallerIds | None = None, items: CallerIds | None = None,
                      users: CallerIds | None = None, batch_size: int | None = None,
                      max_memory: int | str = "1GB", show_progress: bool = False,
                      as_frame: bool = False) -> tuple[np.ndarray, np.ndarray] | pd.DataFrame:
        """The N best items of every user (or of `users`), by the caller's ids, in bounded
        memory: the model's :meth:`~fastals.RecommenderBase.recommend_all`.

        Returns (item_ids, scores), 2-D with a row per user in the order of `users`
        (default: every user, in the order of ``self.users``); short rows are padded with
        id None and score -inf (the ids then have dtype object). Or a DataFrame (user, rank,
        item, score, and the item metadata) when `as_frame` (needs pandas).
        """
        self._require_fitted()
        idx, kwargs = self._all_users_arguments(users, filter_already_liked_items,
                                                filter_items, items)
        ids, scores = self.model.recommend_all(
            N=N, users=idx, batch_size=batch_size, max_memory=max_memory,
            show_progress=show_progress, **kwargs)
        if as_frame:
            queries = self.users.ids if idx is None else self.users.ids[idx]
            return self._frame("user", list(queries), ids, scores)
        return self._item_ids(ids), scores

    def write_recommendations(self, path: PathLike, N: int = 10,
                              filter_already_liked_items: bool = True,
                              filter_items: CallerIds | None = None,
                              items: CallerIds | None = None, users: CallerIds | None = None,
                              batch_size: int | None = None, max_memory: int | str = "1GB",
                              show_progress: bool = True, format: str | None = None) -> str:
        """Stream :meth:`recommend_all` to CSV or Parquet (by the suffix of `path`, or
        `format`; Parquet needs pyarrow): one line per recommendation, ``user, rank, item,
        score`` in the caller's ids, one batch of users in memory at a time."""
        from fastals.models.retrieval import write_recommendations
        self._require_fitted()
        idx, kwargs = self._all_users_arguments(users, filter_already_liked_items,
                                                filter_items, items)
        return write_recommendations(
            self.model, path, N=N, users=idx, batch_size=batch_size, max_memory=max_memory,
            show_progress=show_progress, format=format, user_labels=self.users.ids,
            item_labels=self.items.ids, **kwargs)

    def _all_users_arguments(self, users, filter_already_liked_items, filter_items, items):
        """recommend_all's users as indices (or None: all), and its item arguments."""
        if filter_already_liked_items and self.user_items is None:
            raise ValueError("this IdRecommender has no training interactions to filter "
                             "with: pass filter_already_liked_items=False")
        idx = None if users is None else np.atleast_1d(self.users.index(_as_list(users)))
        return idx, dict(
            user_items=self.user_items, filter_already_liked_items=filter_already_liked_items,
            filter_items=None if filter_items is None else self._item_indices(filter_items),
            items=None if items is None else self._item_indices(items))

    def similar_items(self, item: CallerIds, N: int = 10, filter_items: CallerIds | None = None,
                      items: CallerIds | None = None, as_frame: bool = False
                      ) -> tuple[np.ndarray, np.ndarray] | pd.DataFrame:
        """The N items most similar to an item (or to each of a list), by the caller's ids.

        The item itself is included (its own best match) unless listed in `filter_items`.
        Returns (item_ids, scores) like :meth:`recommend`, or a DataFrame (item, rank,
        similar item, score, metadata) when `as_frame`.
        """
        self._require_fitted()
        scalar = _is_scalar_id(item)
        idx = self.items.index(item)
        ids, scores = self.model.similar_items(
            idx, N=N, filter_items=None if filter_items is None else
            self._item_indices(filter_items),
            items=None if items is None else self._item_indices(items))
        if as_frame:
            queries = [item] if scalar else list(item)  # type: ignore[arg-type]
            return self._frame("query_item", queries, ids, scores)
        return self._item_ids(ids), scores

    def similar_users(self, user: CallerIds, N: int = 10, filter_users: CallerIds | None = None,
                      users: CallerIds | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The N users most similar to a user (or to each of a list), by the caller's ids."""
        self._require_fitted()
        idx = self.users.index(user)
        ids, scores = self.model.similar_users(
            idx, N=N, filter_users=None if filter_users is None else
            np.atleast_1d(self.users.index(_as_list(filter_users))),
            users=None if users is None else np.atleast_1d(self.users.index(_as_list(users))))
        return _map_padded(self.users, ids), scores

    def predict(self, users: CallerIds, items: CallerIds) -> float | np.ndarray:
        """The model's score for each (user, item) pair, by the caller's ids.

        `users` and `items` are equal-length sequences (or one id each, giving a scalar).
        Explicit models predict ratings; implicit ones a preference score.
        """
        self._require_fitted()
        scalar = _is_scalar_id(users) and _is_scalar_id(items)
        u = np.atleast_1d(self.users.index(users))
        i = np.atleast_1d(self.items.index(items))
        if len(u) != len(i):
            raise ValueError(f"users and items must have the same length, got {len(u)} and "
                             f"{len(i)}")
        scores = score_pairs(self.model, u, i, self.user_items)
        return scores[0].item() if scalar else scores

    # --- helpers ---
    def _require_fitted(self):
        self.model._check_fitted()
        if self.users is None or self.items is None:
            self._check_sizes()

    def _item_indices(self, ids):
        return np.atleast_1d(self.items.index(_as_list(ids)))

    def _history_row(self, history):
        if isinstance(history, Mapping):
            keys, values = list(history.keys()), [float(v) for v in history.values()]
        else:
            keys = _as_list(history)
            values = [1.0] * len(keys)
        idx = np.atleast_1d(self.items.index(keys)) if keys else np.zeros(0, np.int64)
        row = sp.csr_matrix((np.asarray(values, dtype=np.float64),
                             (np.zeros(len(idx), dtype=np.int64), idx)),
                            shape=(1, len(self.items)))
        row.sum_duplicates()
        return row

    def _item_ids(self, ids):
        return _map_padded(self.items, ids)

    def item_labels(self, item_ids: CallerIds) -> np.ndarray:
        """Display names (``title``/``name`` metadata, else the id as text) of item ids."""
        idx = np.atleast_1d(self.items.index(_as_list(item_ids)))
        return _labels(self.items, self.item_info, idx)

    def _frame(self, query_name, queries, ids, scores):
        pd = _require_pandas("as_frame=True")
        ids2 = np.atleast_2d(ids)
        scores2 = np.atleast_2d(scores)
        n_rows, width = ids2.shape
        keep = ids2 >= 0
        row_of = np.repeat(np.arange(n_rows), width).reshape(n_rows, width)[keep]
        rank = np.tile(np.arange(1, width + 1), (n_rows, 1))[keep]
        item_idx = ids2[keep]
        query_values = np.empty(n_rows, dtype=object)
        query_values[:] = queries
        frame = pd.DataFrame({query_name: query_values[row_of], "rank": rank,
                              "item": self.items.ids[item_idx], "score": scores2[keep]})
        for column, values in self.item_info.items():
            if column not in frame.columns:
                frame[column] = values[item_idx]
        return frame

    @property
    def item_metadata(self) -> pd.DataFrame:
        """Item metadata as a DataFrame indexed by item id (needs pandas)."""
        return _info_frame(self.items, self.item_info, "item")

    # --- files ---
    def save(self, path: PathLike, include_interactions: bool = True) -> str:
        """Write the model, the ids, the item metadata and (by default) the training
        interactions to one ``.npz`` file without pickle: a path (``.npz`` appended if
        missing; written atomically; returns the path) or a binary file object open for
        writing (written at its current position and left open; returns it).

        The file is also a plain model file: :func:`fastals.load` reads the bare model from
        it. The interactions let ``recommend`` filter what users already have after loading.
        """
        self._require_fitted()
        file = save_path(path)
        extras = {}
        extras.update(self.users._to_arrays("__user_ids__"))
        extras.update(self.items._to_arrays("__item_ids__"))
        info_columns: list[str] = []
        for column, values in self.item_info.items():
            key = f"__item_info__{len(info_columns)}"
            extras.update(_info_to_arrays(key, values))
            info_columns.append(column)
        has_matrix = include_interactions and self.user_items is not None
        if has_matrix:
            m = sp.csr_matrix(self.user_items)
            extras["__user_items_indptr__"] = m.indptr
            extras["__user_items_indices__"] = m.indices
            extras["__user_items_data__"] = m.data
        header = {"format": _IDS_FORMAT, "item_info": info_columns, "user_items": has_matrix}
        extras[_IDS_HEADER] = np.array(json.dumps(header))
        if not isinstance(file, str):  # a file object: the whole file is made aside first
            with tempfile.TemporaryFile() as tmp:
                self._write(tmp, extras)
                tmp.seek(0)
                shutil.copyfileobj(tmp, file)
            return file
        with atomic_path(file) as tmp:
            self._write(tmp, extras)
        return file

    def _write(self, target, extras):
        """The model's own file, then the ids appended to the same zip, at `target` (a path
        or a readable and writable binary file at position 0)."""
        self.model.save(target)
        with zipfile.ZipFile(target, "a", compression=zipfile.ZIP_STORED,
                             allowZip64=True) as zf:
            for name, array in extras.items():
                with zf.open(name + ".npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)

    @classmethod
    def load(cls, path: PathLike | BinaryIO) -> Self:
        """Read a file written by :meth:`save` (or a plain model file: ids are then 0..n-1)
        from a path or a binary file object open for reading (read from its current
        position, left open)."""
        source = load_path(path)
        start = source.tell() if not isinstance(source, str) else None
        model = load_model(source)
        path = describe(source)
        if start is not None:
            source.seek(start)
        try:
            with np.load(source, allow_pickle=False) as npz:
                names = [n for n in npz.files if n.startswith("__") and n != "__fastals__"]
                arrays = {n: npz[n] for n in names}
        except (FileNotFoundError, PermissionError, MemoryError):
            raise
        except Exception as exc:  # damage that load_model did not read through
            raise ModelFileError(f"{path} is not a readable fastals model: "
                                 f"{type(exc).__name__}: {exc}") from None
        if _IDS_HEADER not in arrays:
            return cls(model)
        try:
            header = json.loads(str(arrays[_IDS_HEADER]))
            if header.get("format") != _IDS_FORMAT:
                raise ModelFileError(f"{path} has id format {header.get('format')!r} (this "
                                     f"version reads {_IDS_FORMAT})")
            users = IdMapping._from_arrays(arrays, "__user_ids__", "user")
            items = IdMapping._from_arrays(arrays, "__item_ids__", "item")
            info = {column: _info_from_arrays(arrays, f"__item_info__{k}")
                    for k, column in enumerate(header.get("item_info", []))}
            user_items = None
            if header.get("user_items"):
                user_items = sp.csr_matrix(
                    (arrays["__user_items_data__"], arrays["__user_items_indices__"],
                     arrays["__user_items_indptr__"]), shape=(model.n_users, model.n_items))
                as_csr(user_items, "the saved user_items", np.float64)  # structure check
            return cls(model, users=users, items=items, user_items=user_items, item_info=info)
        except (ModelFileError, MemoryError):
            raise
        except Exception as exc:  # missing or malformed id arrays
            raise ModelFileError(f"{path} has unreadable id data: "
                                 f"{type(exc).__name__}: {exc}") from None


def _as_list(ids):
    if _is_scalar_id(ids):
        return [ids]
    return list(ids)


def _map_padded(mapping, ids):
    """Caller's ids for an index array that may hold -1 padding (-> None)."""
    ids = np.asarray(ids)
    if not (ids < 0).any():
        return mapping.ids[ids]
    out = np.empty(ids.shape, dtype=object)
    out[...] = None
    found = ids >= 0
    out[found] = mapping.ids[ids[found]]
    return out


def _info_to_arrays(key, values):
    values = np.asarray(values)
    if values.dtype.kind in "biuf":
        return {key: values}
    items = []
    for v in values.tolist():
        if v is None or (isinstance(v, float) and v != v):
            items.append(None)
        elif isinstance(v, (str, int, float, bool)):
            items.append(v)
        else:
            items.append(str(v))
    blob = json.dumps(items, ensure_ascii=False).encode("utf-8")
    return {key + "_json": np.frombuffer(blob, dtype=np.uint8)}


def _info_from_arrays(arrays, key):
    if key in arrays:
        return arrays[key]
    values = json.loads(arrays[key + "_json"].tobytes().decode("utf-8"))
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
