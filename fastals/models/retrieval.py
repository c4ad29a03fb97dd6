"""Recommendations for every user (or many) in a memory budget: ``recommend_all`` and its
streaming form, shared by every model.

The users are taken a batch at a time, the batch sized so that everything the call holds
stays under ``max_memory``. Factor models (scores x_u . y_i, :class:`FactorScores`) go
through the tiled kernel of ``fastals._kernels._retrieval``: users tile x items tile
products kept in cache, fused with the top-N heap and the already-liked filter, never a
users x items matrix. Models that score densely from sparse products (the neighbourhood
models, popularity) score one batch with their own sparse kernel and select with
``_topn.select_topn``. Either way a user gets what the single-user ``recommend`` gives.

May import: numpy, scipy, tqdm, the kernel room (dispatch, status), fastals' validation,
file and threading helpers, :mod:`fastals.models.base`; pyarrow inside the Parquet writer.
"""
from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from fastals._files import atomic_path, file_path
from fastals._kernels.dispatch import kernels
from fastals._kernels.status import raise_for_status
from fastals._threads import resolve_threads
from fastals._validation import check_bool, check_ids, check_int, check_sparse
from fastals.models.base import FactorScores, _rank_the_rest, _restrict_columns

# The kernel's cache tiles, from the factor count and the precision: a task's users
# (F x user_tile factors, packed) and a block of items (F x item_tile, packed) take
# TILE_BYTES each of a core's L2 cache, which the users' factors make one pass over per
# block; every user tile is a multiple of 48 users (whole register panels of 8, 6 or 3
# users in every build) and every item block a multiple of 32 items (whole panels).
TILE_BYTES = 256 * 1024


def tile_sizes(F: int, itemsize: int) -> tuple[int, int]:
    """(user_tile, item_tile) for F factors of `itemsize` bytes: 1008 and 1024 at F = 64 in
    float32 (a users tile reads the item factors once from memory per 1008 users)."""
    per_column = max(F, 1) * itemsize
    user_tile = min(max(TILE_BYTES // per_column // 48 * 48, 48), 4032)
    item_tile = min(max(TILE_BYTES // per_column // 32 * 32, 32), 8192)
    return user_tile, item_tile
_UNITS = {"": 1, "b": 1, "k": 10 ** 3, "kb": 10 ** 3, "m": 10 ** 6, "mb": 10 ** 6,
          "g": 10 ** 9, "gb": 10 ** 9, "t": 10 ** 12, "tb": 10 ** 12, "kib": 2 ** 10,
          "mib": 2 ** 20, "gib": 2 ** 30, "tib": 2 ** 40}


def parse_memory(name: str, value) -> int:
    """A memory size in bytes: an int, or a str like ``"1GB"``, ``"512MiB"``, ``"2.5 GB"``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        size = int(value)
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([a-zA-Z]*)\s*", value)
        unit = match.group(2).lower() if match else None
        if unit not in _UNITS:
            raise ValueError(f"{name} must be a number of bytes or a size like '1GB' or "
                             f"'512MiB', got {value!r}")
        size = int(float(match.group(1)) * _UNITS[unit])
    else:
        raise TypeError(f"{name} must be a number of bytes or a size like '1GB', got {value!r}")
    if size <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return size


class _Plan:
    """What one recommend_all call does, validated: users, rows, candidates, batches."""

    def __init__(self, model, user_items, N, filter_already_liked_items, filter_items, items,
                 users, batch_size, max_memory, hold_output, user_tile=None,
                 item_tile=None):
        model._check_fitted()
        self.model = model
        self.N = check_int("N", N, minimum=1)
        self.filter_liked = check_bool("filter_already_liked_items", filter_already_liked_items)
        # a model that stores no users (ContentKNN) takes them as the rows of user_items
        self.n_known = model.n_users
        if not self.n_known and sp.issparse(user_items) and user_items.ndim == 2:
            self.n_known = user_items.shape[0]
        if users is None:
            self.userids = np.arange(self.n_known, dtype=np.int64)
        else:
            self.userids, _ = check_ids("users", users, self.n_known, allow_scalar=False)
        self.matrix = self._check_user_items(user_items, len(self.userids))
        self.candidates = model._candidates("items", items, model.n_items)
        self.blocked = model._blocked("filter_items", filter_items, model.n_items, self.candidates)
        self.n_cols = model.n_items if self.candidates is None else len(self.candidates)
        self.width = min(self.N, self.n_cols)
        self.item_block = model._item_block(self.candidates)
        self.factor = _factors(model) > 0
        self.threads = resolve_threads(getattr(model, "num_threads", 0))
        default_users, default_items = tile_sizes(_factors(model),
                                                  np.dtype(model._score_dtype).itemsize)
        self.user_tile = check_int("user_tile", default_users if user_tile is None
                                   else user_tile, minimum=4)
        self.item_tile = check_int("item_tile", default_items if item_tile is None
                                   else item_tile, minimum=16)
        if self.user_tile % 4 or self.item_tile % 16:
            raise ValueError("user_tile must be a multiple of 4 and item_tile a multiple of 16, "
                             f"got {user_tile} and {item_tile}")
        self.id_dtype = np.int32 if model.n_items <= np.iinfo(np.int32).max else np.int64
        self.max_memory = parse_memory("max_memory", max_memory)
        self.batch = self._batch_size(batch_size, hold_output)

    def _check_user_items(self, user_items, n_queries):
        self.aligned = False
        if user_items is None:
            if self.filter_liked:
                raise ValueError("user_items is required when filter_already_liked_items is "
                                 "True (pass the users' interactions: the users x items "
                                 "matrix)")
            return None
        if not sp.issparse(user_items) or user_items.ndim != 2:
            raise TypeError("user_items must be a scipy sparse matrix (users x items), got "
                            f"{type(user_items).__name__}")
        n_rows = user_items.shape[0]
        if n_rows not in (self.n_known, n_queries):
            raise ValueError(f"user_items must have one row per user of the model "
                             f"({self.n_known}) or one per requested user "
                             f"({n_queries}), got {n_rows} rows")
        check_sparse(user_items, "user_items", check_indices=False)
        self.aligned = n_rows == n_queries and n_rows != self.n_known
        return user_items if user_items.format == "csr" else user_items.tocsr()

    def _batch_size(self, batch_size, hold_output):
        """Users per batch: `batch_size`, or the most that keep the call under max_memory."""
        model, n = self.model, len(self.userids)
        itemsize = np.dtype(model._score_dtype).itemsize
        out_bytes = self.width * (np.dtype(self.id_dtype).itemsize + itemsize)
        fixed = out_bytes * n if hold_output else 0
        F = _factors(model)  # the kernel's scratch per thread: packed users and items
        fixed += self.threads * (((self.user_tile + 16) * (F + 1) + self.item_tile * F + 512)
                                 * itemsize + 16 * self.user_tile)
        per_user = 2 * out_bytes + 8  # the batch's int64 ids and scores, its user id
        if self.factor:
            per_user += _factors(model) * itemsize  # the batch's factor rows
        else:  # a sparse product made dense, then (maybe) converted
            per_user += 3 * self.n_cols * itemsize
        if self.matrix is not None:  # the batch's rows, taken and validated (two copies)
            mean = self.matrix.nnz / max(self.matrix.shape[0], 1)
            per_user += int(2 * (mean + 1) * (16 + itemsize))
        if self.candidates is not None:  # the `items` ranking of the rest (_rank_the_rest)
            per_user += 18 * self.n_cols
        if batch_size is not None:
            return check_int("batch_size", batch_size, minimum=1)
        room = self.max_memory - fixed
        if room < per_user:
            need = fixed + per_user
            hint = " or write the results in chunks (write_recommendations)" if hold_output \
                else ""
            raise ValueError(f"max_memory={self.max_memory} bytes is too small for this call: "
                             f"it needs at least {need} bytes ({n} users x {self.width} "
                             f"results{', held' if hold_output else ''}); raise it{hint}")
        batch = room // per_user
        if batch >= self.user_tile:
            batch -= batch % self.user_tile
        return int(max(1, min(batch, max(n, 1))))

    def rows(self, lo, hi):
        """The interactions of users lo..hi of the plan (a scipy CSR), or None."""
        if self.matrix is None:
            return None
        if self.aligned:
            return self.matrix[lo:hi]
        ids = self.userids[lo:hi]
        if len(ids) and (ids[1:] - ids[:-1] == 1).all():  # a slice: no fancy indexing
            return self.matrix[int(ids[0]):int(ids[-1]) + 1]
        return self.matrix[ids]

    def run(self, lo, hi):
        """(ids, scores) of users lo..hi: int64 positions in the candidates (or -1) and
        scores, width columns."""
        model = self.model
        userids = self.userids[lo:hi]
        rows = self.rows(lo, hi)
        if rows is not None:
            rows = model._rows_for(userids, rows, "user_items", model.n_users, model.n_items)
        dtype = model._score_dtype
        ids = np.full((len(userids), self.width), -1, dtype=np.int64)
        scores = np.full((len(userids), self.width), -np.inf, dtype=dtype)
        if not len(userids) or not self.width:
            return ids, scores
        block = model._user_scores(userids, rows, self.item_block, False)
        indptr = indices = np.zeros(0, dtype=np.int32)
        if self.filter_liked:
            exclude = rows
            if self.candidates is not None:
                exclude = _sorted_rows(_restrict_columns(rows, self.candidates, model.n_items))
            indptr, indices = exclude.indptr, exclude.indices
        if isinstance(block, FactorScores):
            status = kernels("_retrieval").dot_topn_tiled(
                block.queries, block.items_t, indptr, indices, self.blocked, ids, scores,
                self._user_tile(len(userids)), self.item_tile, self.threads)
        else:
            block = np.ascontiguousarray(block, dtype=dtype)
            status = kernels("_topn").select_topn(block, indptr, indices, self.blocked, ids,
                                                 scores, self.threads)
        raise_for_status(status, "the all-users top-N kernel")
        if self.candidates is not None:
            _rank_the_rest(ids, scores, self.blocked, len(self.candidates))
            found = ids >= 0
            ids[found] = self.candidates[ids[found]]
        return ids, scores

    def _user_tile(self, n_users):
        """The user tile for a batch of n_users: small enough for every thread to get at
        least four (in whole 48s when over 48), so that the last tiles do not leave threads
        idle; results do not depend on it."""
        share = -(-n_users // (4 * self.threads))
        if share >= self.user_tile:
            return self.user_tile
        return max(4, -(-share // 48) * 48 if share > 48 else -(-share // 4) * 4)

    def batches(self, show_progress, desc="recommend_all"):
        """Yield (lo, hi, ids, scores) per batch of users, with a progress bar."""
        n = len(self.userids)
        with tqdm(total=n, disable=not show_progress, desc=desc, unit="user") as bar:
            for lo in range(0, n, self.batch):
                hi = min(lo + self.batch, n)
                ids, scores = self.run(lo, hi)
                yield lo, hi, ids.astype(self.id_dtype, copy=False), scores
                bar.update(hi - lo)


def _factors(model):
    factors = getattr(model, "user_factors", None)
    return 0 if factors is None else int(np.shape(factors)[1]) + 2  # (+2: biases, augmented)


def _sorted_rows(rows):
    """`rows` (a CSR) with its column indices sorted within each row (the tiled kernel's
    cursor walks them in order)."""
    matrix = rows.to_scipy().copy()
    matrix.sort_indices()
    rows.indptr = matrix.indptr.astype(np.int64)
    rows.indices, rows.data = matrix.indices.astype(np.int64), matrix.data
    return rows


def recommend_all(model, user_items=None, N=10, filter_already_liked_items=True,
                  filter_items=None, items=None, users=None, batch_size=None,
                  max_memory="1GB", show_progress=False, **tiles):
    """Every user's (or `users`') top N: the body of ``RecommenderBase.recommend_all``."""
    plan = _Plan(model, user_items, N, filter_already_liked_items, filter_items, items, users,
                 batch_size, max_memory, hold_output=True, **tiles)
    n = len(plan.userids)
    ids = np.empty((n, plan.width), dtype=plan.id_dtype)
    scores = np.empty((n, plan.width), dtype=model._score_dtype)
    for lo, hi, batch_ids, batch_scores in plan.batches(show_progress):
        ids[lo:hi] = batch_ids
        scores[lo:hi] = batch_scores
    return ids, scores


def iter_recommend_all(model, user_items=None, N=10, filter_already_liked_items=True,
                       filter_items=None, items=None, users=None, batch_size=None,
                       max_memory="1GB", show_progress=False, **tiles
                       ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (userids, ids, scores) a batch of users at a time, each batch under max_memory."""
    plan = _Plan(model, user_items, N, filter_already_liked_items, filter_items, items, users,
                 batch_size, max_memory, hold_output=False, **tiles)
    for lo, hi, ids, scores in plan.batches(show_progress):
        yield plan.userids[lo:hi], ids, scores


_FORMATS = ("csv", "parquet")


def write_recommendations(model, path, user_items=None, N=10, filter_already_liked_items=True,
                          filter_items=None, items=None, users=None, batch_size=None,
                          max_memory="1GB", show_progress=True, format=None,
                          user_labels=None, item_labels=None, **tiles) -> str:
    """Write every user's top N to `path` (CSV or Parquet), a batch at a time.

    One line per recommendation: ``user, rank, item, score`` (rank 1 is the best; padding
    is left out). `user_labels` / `item_labels` (arrays indexed by user / item index) turn
    the indices into the caller's ids. The file is written beside `path` and renamed into
    place when complete. Returns the path.
    """
    path = file_path(path)
    if format is None:
        format = "parquet" if path.lower().endswith((".parquet", ".pq")) else "csv"
    if format not in _FORMATS:
        raise ValueError(f"format must be one of {_FORMATS} (or None: from the suffix), got "
                         f"{format!r}")
    if format == "parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ImportError("writing Parquet needs pyarrow: pip install pyarrow (or write "
                              "a .csv)") from None
    chunks = iter_recommend_all(model, user_items, N, filter_already_liked_items, filter_items,
                                items, users, batch_size, max_memory, show_progress, **tiles)
    with atomic_path(path, suffix="." + format) as tmp:
        if format == "parquet":
            writer = None
            try:
                for columns in _long_chunks(chunks, user_labels, item_labels):
                    table = pa.table(columns)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table)
                if writer is None:  # no users: an empty file with the columns
                    empty = _long_columns(np.zeros(0, np.int64), np.zeros((0, 0), np.int64),
                                          np.zeros((0, 0), model._score_dtype), None, None)
                    pq.write_table(pa.table(empty), tmp)
            finally:
                if writer is not None:
                    writer.close()
        else:
            with open(tmp, "w", newline="", encoding="utf-8") as handle:
                out = csv.writer(handle)
                out.writerow(["user", "rank", "item", "score"])
                for columns in _long_chunks(chunks, user_labels, item_labels):
                    out.writerows(zip(*(columns[k].tolist() for k in columns)))
    return os.fspath(path)


def _long_chunks(chunks, user_labels, item_labels):
    for userids, ids, scores in chunks:
        yield _long_columns(userids, ids, scores, user_labels, item_labels)


def _long_columns(userids, ids, scores, user_labels, item_labels):
    """One row per (user, rank) with a result: the columns user, rank, item, score."""
    keep = ids >= 0
    n_rows, width = ids.shape
    users = np.repeat(userids, width).reshape(n_rows, width)[keep]
    rank = np.tile(np.arange(1, width + 1, dtype=np.int32), (n_rows, 1))[keep]
    item = ids[keep]
    return {"user": users if user_labels is None else np.asarray(user_labels)[users],
            "rank": rank,
            "item": item if item_labels is None else np.asarray(item_labels)[item],
            "score": scores[keep]}
