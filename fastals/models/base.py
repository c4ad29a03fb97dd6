"""The contract every fastals recommender honours, and the plumbing they share.

The call shapes follow `implicit` so that switching is a rename:
``fit(user_items)``, ``recommend(userid, user_items, N=10, ...)``,
``similar_items(itemid, N=10)``, ``similar_users(userid, N=10)``, each returning
``(ids, scores)``: 1-D arrays for one id, 2-D arrays (one row per id) for a batch.

Subclasses provide scores; this module does the validation, the id bookkeeping, the
filtering and the top-N selection (one compiled kernel for every model), and save/load.

Validation while training (a held-out metric after each iteration, early stopping, the
best iteration kept) is one mechanism for every iterative model: :func:`prepare_validation`
and :func:`run_training`'s `validation` (:mod:`fastals.models.validation` says how a model
takes part).

May import: numpy, scipy, tqdm, the kernel room (dispatch, status), fastals' validation,
file, threading and typing helpers, :mod:`fastals.exceptions` and
:mod:`fastals.models.validation`; the model modules only inside :func:`load` (to find a
saved file's class).
"""
from __future__ import annotations

import importlib
import inspect
import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, BinaryIO, TypeVar, overload

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from fastals._files import describe, file_path, load_path, save_path, write_npz
from fastals._kernels.dispatch import kernels
from fastals._kernels.status import raise_for_status
from fastals._threads import resolve_threads
from fastals._typing import FitCallback, IdsAndScores, Indices, PathLike, Self, SparseMatrix
from fastals._validation import CSR, as_csr, check_bool, check_ids, check_int, take_rows
from fastals.exceptions import ModelFileError, NotFittedError
from fastals.models.validation import Validation, prepare_validation  # noqa: F401  (for models)

log = logging.getLogger("fastals")

FORMAT_VERSION = 1
_HEADER = "__fastals__"
_MODEL_CLASSES: dict[str, type[RecommenderBase]] = {}
# Where a class saved under an older name lives now (old files keep loading after a move).
_MOVED_CLASSES = {"fastals.evaluation.PopularityBaseline":
                  "fastals.models.popularity.PopularityBaseline"}
# The modules of fastals' own models: load() imports them, so that their classes are
# registered however little of the package has been imported.
_MODEL_MODULES = ("fastals.models.ease", "fastals.models.explicit_als",
                  "fastals.models.ials", "fastals.models.implicit_als", "fastals.models.knn",
                  "fastals.models.popularity", "fastals.models.ranking", "fastals.models.rp3beta",
                  "fastals.models.sgd")
# Dense score blocks are computed this many cells at a time (64 MiB of float32).
_SCORE_BLOCK_CELLS = 1 << 24


class RecommenderBase(ABC):
    """Base class of every fastals recommender.

    Subclasses implement :meth:`fit` and the scoring hooks; this class provides
    :meth:`recommend`, :meth:`similar_items`, :meth:`similar_users`, :meth:`save` and
    :meth:`load` on top of them.

    The rooms above the models (:mod:`fastals.id_recommender`, :mod:`fastals.evaluation`)
    use the public methods, :meth:`_check_fitted` and, for scores other than top-N lists,
    :meth:`_dense_scores`; the scoring hooks are this class's and its subclasses' only.
    """

    #: arrays that make up a fitted model (saved and loaded by name)
    _state_names: tuple[str, ...] = ()
    #: arrays saved when not None and restored as None from files without them
    _optional_state_names: tuple[str, ...] = ()
    #: whether a stored zero in user_items is an observation (explicit ratings) or nothing
    _stored_zeros_are_data = False
    #: per-iteration values of the last fit, by name (the training loss, the validation
    #: metric, e.g. ``{"loss": [...], "ndcg@10": [...]}``); empty (and read-only) for models
    #: fitted in one go; each fit of an iterative model sets its own dict
    history: Mapping[str, list[float]] = MappingProxyType({})
    #: with validation: how many iterations the kept state had (1-based), else None
    best_iteration: int | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _MODEL_CLASSES[_class_key(cls)] = cls

    # --- what subclasses provide ---------------------------------------------------------
    @abstractmethod
    def fit(self, user_items: SparseMatrix, show_progress: bool = True,
            callback: FitCallback | None = None) -> Self:
        """Learn from a users x items sparse matrix; returns self."""

    @property
    @abstractmethod
    def n_users(self) -> int: ...

    @property
    @abstractmethod
    def n_items(self) -> int: ...

    @property
    def is_fitted(self) -> bool:
        return all(getattr(self, name, None) is not None for name in self._state_names)

    @abstractmethod
    def _item_block(self, candidates):
        """Whatever _user_scores needs about the candidate items (None means all items)."""

    @abstractmethod
    def _user_scores(self, userids, rows, item_block, recalculate):
        """Scores of users for the candidate items: a dense (len(userids) x n_candidates)
        array, or a :class:`FactorScores` for scores that are dot products.

        `rows` is a CSR of the users' interactions aligned with `userids` (or None).
        """

    @abstractmethod
    def _similar_scores(self, axis, ids, candidates):
        """Similarities of the given items (axis='item') or users to the candidates, as
        for _user_scores."""

    def _without_interactions(self, axis):
        """A bool mask over the items (axis='item') or the users: True for those with no
        stored value in the training data. Their similarity to anything is undefined, so
        similar_items / similar_users never return them and return nothing for them. None
        when the model knows of none."""
        return None

    # --- parameters ------------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """The constructor's parameters, as stored in a saved model."""
        signature = inspect.signature(type(self).__init__).parameters.values()
        names = [p.name for p in signature  # keyword-only: another library's switches,
                 if p.name != "self" and p.kind != p.KEYWORD_ONLY]  # translated, not stored
        return {name: getattr(self, name) for name in names}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _check_fitted(self):
        """Raise :class:`NotFittedError` unless the model is fitted."""
        if not self.is_fitted:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit() first")

    # --- recommend --------------------------------------------------------------------------
    def recommend(self, userid: Indices, user_items: SparseMatrix | None = None, N: int = 10,
                  filter_already_liked_items: bool = True, filter_items: Indices | None = None,
                  recalculate_user: bool = False, items: Indices | None = None
                  ) -> IdsAndScores:
        """The N best items for one user or a batch of users.

        Parameters
        ----------
        userid : int or array of int
            One user (results are 1-D) or several (results are 2-D, a row per user).
        user_items : sparse matrix, optional
            The users' interactions, needed to filter already-liked items or to recalculate
            the users. Either one row per requested user, in the order of `userid` (as in
            `implicit`), or the full users x items matrix, from which the rows of `userid`
            are taken.
        N : int
            How many items to return. When fewer items are allowed, all of them are returned
            (a batch pads short rows with id -1 and score -inf).
        filter_already_liked_items : bool
            Leave out the items stored in the user's row of `user_items`.
        filter_items : array of int, optional
            Items never to return.
        recalculate_user : bool
            Compute the users' factors from `user_items` instead of using the stored ones
            (for users whose interactions changed, or new users: then `userid` may be any
            id when `user_items` has one row per requested user).
        items : array of int, optional
            Rank only these items; as in `implicit`, every one of them is returned (up to
            N): those the already-liked filter removes, or that have no score, come last
            with score -inf. Items in `filter_items` are never returned.

        Returns
        -------
        (ids, scores) : arrays of item ids and their scores, best first.
        """
        self._check_fitted()
        N = check_int("N", N, minimum=1)
        filter_liked = check_bool("filter_already_liked_items", filter_already_liked_items)
        recalculate = check_bool("recalculate_user", recalculate_user)
        if recalculate and user_items is not None:
            userids, scalar = check_ids("userid", userid, np.iinfo(np.int64).max)
        else:
            userids, scalar = check_ids("userid", userid, self.n_users)
        rows = None
        if filter_liked or recalculate:
            if user_items is None:
                raise ValueError("user_items is required when filter_already_liked_items or "
                                 "recalculate_user is True (pass the users' interactions)")
            rows = self._rows_for(userids, user_items, "user_items", self.n_users, self.n_items)
        candidates = self._candidates("items", items, self.n_items)
        blocked = self._blocked("filter_items", filter_items, self.n_items, candidates)
        item_block = self._item_block(candidates)

        def score(lo, hi):
            block_rows = rows.rows(lo, hi) if rows is not None else None
            return self._user_scores(userids[lo:hi], block_rows, item_block, recalculate)

        exclude = rows if filter_liked else None
        return self._top_n(score, len(userids), N, candidates, self.n_items, exclude, blocked,
                           scalar)

    def recommend_all(self, user_items: SparseMatrix | None = None, N: int = 10,
                      filter_already_liked_items: bool = True,
                      filter_items: Indices | None = None, items: Indices | None = None,
                      users: Indices | None = None, batch_size: int | None = None,
                      max_memory: int | str = "1GB", show_progress: bool = False
                      ) -> IdsAndScores:
        """The N best items of every user (or of `users`), in bounded memory.

        Each user gets exactly what :meth:`recommend` gives them (the same ids and scores,
        ties broken alike). Factor models score users tile x items tile in cache, fused
        with the top-N selection and the already-liked filter, so no users x items matrix
        ever exists; the other models score a batch of users at a time.

        Parameters
        ----------
        user_items : sparse matrix, optional
            The users' interactions (needed to filter already-liked items, and by models
            that score from them): the full users x items matrix, or one row per id of
            `users`.
        N, filter_already_liked_items, filter_items, items
            As for :meth:`recommend`.
        users : array of int, optional
            The users to recommend for, in this order (default: all, 0..n_users-1).
        batch_size : int, optional
            Users per batch (default: as many as `max_memory` allows).
        max_memory : int or str
            What the call may hold beyond the model and the caller's arrays, in bytes or as
            ``"1GB"``, ``"512MiB"``, ...; the returned arrays count. Too small a budget for
            even one user raises ValueError.
        show_progress : bool
            A progress bar over the users.

        Returns
        -------
        (ids, scores) : 2-D arrays, a row per user, ``min(N, number of candidates)`` columns,
        best first; rows with fewer allowed items are padded with id -1 and score -inf.

        Examples
        --------
        >>> ids, scores = model.recommend_all(user_items, N=10)          # doctest: +SKIP
        """
        from fastals.models.retrieval import recommend_all
        return recommend_all(self, user_items, N, filter_already_liked_items, filter_items,
                             items, users, batch_size, max_memory, show_progress)

    def iter_recommend_all(self, user_items: SparseMatrix | None = None, N: int = 10,
                           filter_already_liked_items: bool = True,
                           filter_items: Indices | None = None, items: Indices | None = None,
                           users: Indices | None = None, batch_size: int | None = None,
                           max_memory: int | str = "1GB", show_progress: bool = False
                           ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """:meth:`recommend_all` a batch at a time: yields (userids, ids, scores) per batch,
        holding one batch only (its results count in `max_memory`, the others do not)."""
        from fastals.models.retrieval import iter_recommend_all
        return iter_recommend_all(self, user_items, N, filter_already_liked_items,
                                  filter_items, items, users, batch_size, max_memory,
                                  show_progress)

    def write_recommendations(self, path: PathLike, user_items: SparseMatrix | None = None,
                              N: int = 10, filter_already_liked_items: bool = True,
                              filter_items: Indices | None = None,
                              items: Indices | None = None, users: Indices | None = None,
                              batch_size: int | None = None, max_memory: int | str = "1GB",
                              show_progress: bool = True, format: str | None = None) -> str:
        """Stream :meth:`recommend_all` to a CSV or Parquet file (by the suffix of `path`,
        or `format`), one line per recommendation: user, rank, item, score. Parquet needs
        pyarrow. Holds one batch at a time; returns the path written."""
        from fastals.models.retrieval import write_recommendations
        return write_recommendations(self, path, user_items, N, filter_already_liked_items,
                                     filter_items, items, users, batch_size, max_memory,
                                     show_progress, format)

    def similar_items(self, itemid: Indices, N: int = 10, filter_items: Indices | None = None,
                      items: Indices | None = None, recalculate_item: bool = False,
                      item_users: SparseMatrix | None = None) -> IdsAndScores:
        """The N items most similar to an item (or to each of a batch), best first.

        The item itself is included (it is its own best match), as in `implicit`; pass it in
        `filter_items` to leave it out. Returns (ids, scores) like :meth:`recommend`.
        Items without interactions in the training data (no stored value in their column)
        have no similarity: they are never returned, and asking for their neighbours
        returns none (empty arrays; in a batch, a row of padding: id -1, score -inf).
        With ``recalculate_item=True`` the query items' factors are first solved from
        `item_users` (their rows of the items x users matrix, or all of it), as
        :meth:`recalculate_item` does, for models that can; `item_users` is otherwise
        unused, as in `implicit`.
        """
        vectors = None
        if check_bool("recalculate_item", recalculate_item):
            if not hasattr(self, "recalculate_item"):
                raise NotImplementedError(
                    f"{type(self).__name__} cannot recalculate items: similar_items uses its "
                    "fitted items only (recalculate_item=False)")
            if item_users is None:
                raise ValueError("recalculate_item=True needs item_users: the items' "
                                 "interactions with the users (items x users)")
            self._check_fitted()
            ids, _ = check_ids("itemid", itemid, np.iinfo(np.int64).max)
            rows = self._rows_for(ids, item_users, "item_users", self.n_items, self.n_users)
            vectors = np.atleast_2d(self.recalculate_item(ids, rows.to_scipy()))
            vectors = (vectors, np.diff(rows.indptr) == 0)  # and which have no interactions
        return self._similar("item", itemid, N, filter_items, items, self.n_items, vectors)

    def similar_users(self, userid: Indices, N: int = 10, filter_users: Indices | None = None,
                      users: Indices | None = None) -> IdsAndScores:
        """The N users most similar to a user (or to each of a batch), best first.

        As for :meth:`similar_items`: the user itself comes first, and users without
        interactions in the training data are never returned and have no neighbours.
        """
        return self._similar("user", userid, N, filter_users, users, self.n_users)

    def _similar(self, axis, ident, N, filter_ids, subset, upper, recalculated=None):
        """similar_items / similar_users; `recalculated` is (the queries' recalculated
        factors, which of them have no interactions) or None."""
        self._check_fitted()
        N = check_int("N", N, minimum=1)
        ids, scalar = check_ids(f"{axis}id", ident, upper if recalculated is None else
                                np.iinfo(np.int64).max)
        candidates = self._candidates(f"{axis}s", subset, upper)
        blocked = self._blocked(f"filter_{axis}s", filter_ids, upper, candidates)
        empty = self._without_interactions(axis)
        silent = None  # the queries without interactions
        if empty is not None and empty.any():
            if recalculated is None:
                silent = empty[ids]
            empty = (empty if candidates is None else empty[candidates]).astype(np.uint8)
            blocked = empty if not blocked.size else blocked | empty
        vectors = None
        if recalculated is not None:
            vectors, silent = recalculated

        def score(lo, hi):
            if vectors is not None:  # recalculated factors of the queries
                return self._similar_scores(axis, ids[lo:hi], candidates, vectors[lo:hi])
            return self._similar_scores(axis, ids[lo:hi], candidates)

        return self._top_n(score, len(ids), N, candidates, upper, None, blocked, scalar,
                           silent)

    # --- scores for the rooms above the models -----------------------------------------
    def _dense_scores(self, userids, user_items=None, items=None):
        """Scores of users for items, as a dense array in the model's score dtype.

        The one way the rooms above the models (``score_pairs``, ``IdRecommender``,
        :mod:`fastals.evaluation`) score users other than through :meth:`recommend`, so
        that they never call the hooks (``_rows_for``, ``_item_block``, ``_user_scores``).

        userids : int64 array
            Known users, validated by the caller.
        user_items : sparse matrix, optional
            The users' interactions, as for :meth:`recommend`: one row per id of `userids`
            or the full users x items matrix. Models that score from a user's history (the
            neighbourhood models) need it; the others ignore it.
        items : int64 array, optional
            Distinct candidate items, validated by the caller; all items when None.

        Returns a (len(userids) x number of candidates) array, possibly a read-only view.
        """
        self._check_fitted()
        n_candidates = self.n_items if items is None else len(items)
        if not len(userids):
            return np.zeros((0, n_candidates), dtype=self._score_dtype)
        rows = None
        if user_items is not None:
            rows = self._rows_for(userids, user_items, "user_items", self.n_users, self.n_items)
        scores = self._user_scores(userids, rows, self._item_block(items), False)
        if isinstance(scores, FactorScores):
            scores = scores.queries @ scores.items_t
        return np.asarray(scores, dtype=self._score_dtype)

    # --- shared plumbing ---------------------------------------------------------------
    def _rows_for(self, ids, matrix, name, n_known, n_cols):
        """The rows of `matrix` belonging to `ids`, as a validated CSR aligned with `ids`."""
        if not sp.issparse(matrix) or matrix.ndim != 2:
            return as_csr(matrix, name, self._score_dtype)  # raises the right error
        n_rows = matrix.shape[0]
        if n_rows != len(ids):
            if n_rows != n_known:
                raise ValueError(
                    f"{name} must have one row per requested id ({len(ids)}) or one row per "
                    f"known id ({n_known}), got {n_rows} rows")
            if ids.size and ids.max() >= n_known:
                raise ValueError(f"{name} has {n_rows} rows, so it cannot hold id {ids.max()}")
            matrix = take_rows(matrix, ids, name)
        return as_csr(matrix, name, self._score_dtype, shape=(None, n_cols),
                      keep_zeros=self._stored_zeros_are_data)

    @staticmethod
    def _candidates(name, subset, upper):
        if subset is None:
            return None
        candidates, _ = check_ids(name, subset, upper)
        if len(np.unique(candidates)) != len(candidates):
            raise ValueError(f"{name} contains duplicate ids")
        return candidates

    @staticmethod
    def _blocked(name, filter_ids, upper, candidates):
        """A byte mask over the candidate columns, or an empty array for no filter."""
        if filter_ids is None:
            return np.zeros(0, dtype=np.uint8)
        ids, _ = check_ids(name, filter_ids, upper)
        mask = np.zeros(upper, dtype=np.uint8)
        mask[ids] = 1
        return mask if candidates is None else mask[candidates]

    def _top_n(self, score, n_queries, N, candidates, upper, exclude, blocked, scalar,
               silent=None):
        """The top-N selection of every query. `silent` (bool per query, optional) marks
        queries that get no results at all."""
        n_cols = upper if candidates is None else len(candidates)
        width = min(N, n_cols)
        dtype = self._score_dtype
        ids = np.full((n_queries, width), -1, dtype=np.int64)
        scores = np.full((n_queries, width), -np.inf, dtype=dtype)
        if exclude is not None and candidates is not None:
            exclude = _restrict_columns(exclude, candidates, upper)
        step = max(1, _SCORE_BLOCK_CELLS // max(n_cols, 1))
        threads = resolve_threads(getattr(self, "num_threads", 0))
        empty = np.zeros(0, dtype=np.int32)
        topn = kernels("_topn")
        for lo in range(0, n_queries, step):
            hi = min(lo + step, n_queries)
            block = score(lo, hi)
            if exclude is not None:
                part = exclude.rows(lo, hi)
                indptr, indices = part.indptr, part.indices
            else:
                indptr, indices = empty, empty
            if not width:
                continue
            if isinstance(block, FactorScores):
                status = topn.dot_topn(block.queries, block.items_t, indptr, indices, blocked,
                                       ids[lo:hi], scores[lo:hi], threads)
            else:
                block = np.ascontiguousarray(block, dtype=dtype)
                status = topn.select_topn(block, indptr, indices, blocked, ids[lo:hi],
                                          scores[lo:hi], threads)
            raise_for_status(status, "the top-N kernel")
        if candidates is not None:
            _rank_the_rest(ids, scores, blocked, len(candidates))
            found = ids >= 0
            ids[found] = candidates[ids[found]]
        if silent is not None:
            ids[silent] = -1
            scores[silent] = -np.inf
        if upper <= np.iinfo(np.int32).max:  # implicit's id dtype, so that code written for
            ids = ids.astype(np.int32)  # it (e.g. its evaluation functions) takes ours
        counts = (ids >= 0).sum(axis=1)
        if scalar:
            return ids[0, :counts[0]], scores[0, :counts[0]]
        keep = int(counts.max()) if n_queries else width
        return ids[:, :keep], scores[:, :keep]

    @property
    def _score_dtype(self):
        return np.dtype(getattr(self, "dtype", np.float32)).type

    # --- save / load -------------------------------------------------------------------------
    def save(self, path: PathLike | BinaryIO) -> str | BinaryIO:
        """Write the model without pickle to `path`: a path (``.npz`` is appended if
        missing) or a binary file object open for writing, as in `implicit`.

        A path is written to a temporary name beside it and renamed into place, so a crash
        never leaves a half-written model; returns the path written. A file object is
        written at its current position (an ``.npz`` archive, as numpy.savez writes it) and
        left open; returns the file object.

        An unfitted model is saved too, as in `implicit`: its parameters only, and it loads
        as an unfitted model with the same parameters.
        """
        file = save_path(path)
        params = {k: _jsonable(k, v) for k, v in self.get_params().items()}
        header = {"format": FORMAT_VERSION, "class": _class_key(type(self)), "params": params}
        arrays = {}
        if self.is_fitted:
            header["extra"] = self._extra_state()
            arrays = {name: getattr(self, name) for name in self._state_names}
            arrays.update({name: getattr(self, name) for name in self._optional_state_names
                           if getattr(self, name, None) is not None})
        else:
            header["fitted"] = False
        return write_npz(file, {_HEADER: np.array(json.dumps(header)), **arrays})

    @classmethod
    def load(cls, path: PathLike | BinaryIO) -> Self:
        """Read a model written by :meth:`save` from a path or a binary file object open
        for reading (read from its current position; left open). Never executes code from
        the file."""
        return load(path, expected=cls)

    def _extra_state(self) -> dict:
        """JSON-able state beyond the constructor parameters and arrays."""
        return {}

    def _restore(self, arrays, extra):
        for name in self._state_names:
            setattr(self, name, arrays[name])
        for name in self._optional_state_names:
            setattr(self, name, arrays.get(name))


class FactorScores:
    """Scores that are dot products: queries (n x K) against items_t (K x n_candidates).

    The top-N kernel computes them block by block without forming the full score matrix,
    in a fixed summation order, so one query scores the same alone or in any batch.
    """

    __slots__ = ("queries", "items_t")

    def __init__(self, queries, items_t):
        self.queries = np.ascontiguousarray(queries)
        self.items_t = np.ascontiguousarray(items_t, dtype=self.queries.dtype)


def check_fit_arguments(show_progress, callback):
    """Validate the `show_progress` (True or False) and `callback` arguments of a fit."""
    check_bool("show_progress", show_progress)
    check_callback(callback)


def check_callback(callback):
    """A fit's `callback` must be None or a callable (called after each iteration)."""
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {callback!r}")


def run_training(name, count, step, show_progress, callback, step_name="iteration",
                 unit="it", metric="loss", validation=None, model=None):
    """Run ``step(i)`` for i in range(count) with a progress bar, logging and a callback.

    `step` does one iteration (or epoch) and returns the value to report, or None; it is
    shown on the bar (or logged when the bar is off) as `metric`, and passed to
    ``callback(i, seconds_since_start, value)``.

    `validation` (a :class:`~fastals.models.validation.Validation` from
    :func:`prepare_validation`) scores `model` on held-out data after each step, shows the
    score beside `metric` and stops the loop early once it stops improving; the model then
    calls ``validation.restore_best(model)``. The steps' values are recorded in
    ``model.history[metric]`` (when `model` is given and a step returns values).
    """
    start = time.perf_counter()
    values = []
    with tqdm(total=count, disable=not show_progress, desc=name, unit=unit) as bar:
        for i in range(count):
            value = step(i)
            shown = {}
            if value is not None:
                values.append(value)
                shown[metric] = value
            if validation is not None and validation.active:
                shown[validation.metric] = validation.update(model, i)
            if shown:
                bar.set_postfix({k: f"{v:.6g}" for k, v in shown.items()})
            bar.update(1)
            elapsed = time.perf_counter() - start
            if not show_progress:
                log.info("%s %s %d/%d: %.3f s%s", name, step_name, i + 1, count, elapsed,
                         "".join(f", {k} {v:.6g}" for k, v in shown.items()))
            if callback is not None:
                callback(i, elapsed, value)
            if validation is not None and validation.stopped:
                log.info("%s: %s did not improve for %d %ss: stopped after %d", name,
                         validation.metric, validation.early_stopping_rounds, step_name, i + 1)
                break
    if model is not None and values:
        if "history" not in vars(model):  # never the class's shared empty mapping
            model.history = {}
        model.history[metric] = values


def _class_key(cls):
    """How a saved file names its class: module and qualified name, so that a class of the
    same name elsewhere (a user's subclass, a test double) never stands in for another."""
    return f"{cls.__module__}.{cls.__qualname__}"


#: `path` as a str, or a TypeError naming it (its home is fastals._files)
model_path = file_path


_Model = TypeVar("_Model", bound=RecommenderBase)


@overload
def load(path: PathLike | BinaryIO, expected: None = None) -> RecommenderBase: ...
@overload
def load(path: PathLike | BinaryIO, expected: type[_Model]) -> _Model: ...
def load(path: PathLike | BinaryIO, expected: type[RecommenderBase] | None = None) -> RecommenderBase:
    """Load any fastals model saved with ``model.save(path)``.

    `path` is a path or a binary file object open for reading; a file object is read from
    its current position (the model must run to its end, as for numpy.load) and left open.
    Reads only arrays (``allow_pickle=False``) and a JSON header; the class is looked up
    among fastals' own models, never imported by name, so a load never executes code from
    the file. Raises :class:`ModelFileError` naming the problem for anything that is not a
    fastals model of this format (``FileNotFoundError`` if there is no file).
    """
    source = load_path(path)
    path = describe(source)
    try:
        with np.load(source, allow_pickle=False) as npz:
            if _HEADER not in npz.files:
                raise ModelFileError(f"{path} is not a fastals model (no {_HEADER} entry)")
            header = json.loads(str(npz[_HEADER]))
            arrays = {name: npz[name] for name in npz.files if name != _HEADER}
    except (FileNotFoundError, PermissionError, ModelFileError, MemoryError):
        raise
    except Exception as exc:  # zip, npy or JSON damage shows as many exception types
        raise ModelFileError(f"{path} is not a readable fastals model: "
                             f"{type(exc).__name__}: {exc}") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path} is not a fastals model (its {_HEADER} entry is not a "
                             "JSON object)")
    if header.get("format") != FORMAT_VERSION:
        raise ModelFileError(f"{path} has fastals format {header.get('format')!r} "
                             f"(this version reads format {FORMAT_VERSION})")
    if not isinstance(header.get("params"), dict) or not isinstance(header.get("extra", {}), dict):
        raise ModelFileError(f"{path} is not a readable fastals model: its parameters are "
                             "missing or not a JSON object")
    for module in _MODEL_MODULES:
        importlib.import_module(module)
    key = header.get("class")
    cls = _MODEL_CLASSES.get(_MOVED_CLASSES.get(key, key)) if isinstance(key, str) else None
    if cls is None or (expected is not None and not issubclass(cls, expected)):
        raise ModelFileError(f"{path} holds a {header.get('class')!r} model, "
                             f"not a {getattr(expected, '__name__', 'known fastals model')}")
    fitted = header.get("fitted", True)  # files of models saved unfitted say so
    if not isinstance(fitted, bool):
        raise ModelFileError(f"{path} is not a readable fastals model: its 'fitted' entry "
                             f"must be true or false, got {fitted!r}")
    missing = [name for name in cls._state_names if name not in arrays]
    if missing and fitted:
        raise ModelFileError(f"{path} is missing the arrays {missing}")
    try:
        model = cls(**header["params"])
        if fitted:
            model._restore(arrays, header.get("extra", {}))
    except MemoryError:
        raise
    except Exception as exc:  # parameters or arrays the model rejects
        raise ModelFileError(f"{path} holds an invalid {cls.__name__}: "
                             f"{type(exc).__name__}: {exc}") from None
    return model


def _jsonable(name, value):
    if isinstance(value, type) and issubclass(value, np.generic):
        return np.dtype(value).name
    if isinstance(value, np.dtype):
        return value.name
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.random.Generator, np.random.RandomState, np.random.SeedSequence)):
        return None  # a generator's state is not a parameter; the saved arrays are the model
    try:
        json.dumps(value)
    except TypeError:
        raise TypeError(f"parameter {name}={value!r} cannot be saved") from None
    return value


def _rank_the_rest(ids, scores, blocked, n_cols):
    """With an `items` list, every listed item is ranked, as in `implicit`: the ones that
    scored come first, then (score -inf) those the already-liked filter removed or that have
    no score (a neighbourhood model's non-neighbours), in list order, up to N. Items in
    `filter_items` (`blocked`, a mask over the list) never appear. `ids` holds positions in
    the list (-1: empty slot)."""
    n_queries, width = ids.shape
    counts = (ids >= 0).sum(axis=1)
    if n_queries == 0 or width == 0 or (counts == width).all():
        return
    free = np.ones((n_queries, n_cols), dtype=bool)
    rows, slots = np.nonzero(ids >= 0)
    free[rows, ids[rows, slots]] = False
    if blocked.size:
        free &= blocked[None, :] == 0
    order = np.argsort(~free, axis=1, kind="stable")  # free positions first, in list order
    k = np.arange(width)[None, :] - counts[:, None]    # which free position fills a slot
    take = (k >= 0) & (k < free.sum(axis=1)[:, None])
    rows, slots = np.nonzero(take)
    ids[rows, slots] = order[rows, k[rows, slots]]
    scores[rows, slots] = -np.inf


def _restrict_columns(rows: CSR, candidates, upper) -> CSR:
    """Re-express a CSR's column indices as positions in `candidates`, dropping the rest."""
    position = np.full(upper, -1, dtype=np.int64)
    position[candidates] = np.arange(len(candidates))
    mapped = position[rows.indices]
    keep = mapped >= 0
    row_of = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
    counts = np.bincount(row_of[keep], minlength=rows.shape[0])
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return CSR(indptr, mapped[keep], rows.data[keep], (rows.shape[0], len(candidates)))
