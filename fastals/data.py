"""From raw interaction records to the matrices models read, and back to the caller's ids.

Models work on a users x items sparse matrix whose rows and columns are indices
``0..n-1``. Real data names users and items with anything hashable (sha1 strings, artist
names, integer ids that do not start at 0). This module does that plumbing:

* :class:`IdMapping` -- a bidirectional map between the caller's ids and indices.
* :class:`Interactions` -- the matrix plus both mappings (and optional timestamps and item
  metadata), built by :func:`from_dataframe`, :func:`from_arrays` or :func:`read_csv`.
  Duplicate (user, item) pairs are combined by a chosen policy (summed by default); rows with
  a missing user, item or value are dropped and counted in one :class:`DataWarning`.
* :class:`IdRecommender` -- wraps any fitted :class:`~fastals.RecommenderBase` so that
  ``recommend``, ``similar_items``, ``similar_users`` and ``predict`` take and return the
  caller's ids (optionally as a DataFrame joined with item metadata), and saves the ids and
  the training interactions in the same ``.npz`` file as the model.
* Confidence weighting: :func:`linear_weight` (``c = 1 + alpha r`` as in Hu et al.),
  :func:`log_weight`, :func:`bm25_weight` and :func:`tfidf_weight`.

pandas is optional: it is used when installed (faster CSV parsing, DataFrame input and
output); without it, CSV files are read with the standard ``csv`` module.

Examples
--------
>>> import fastals
>>> from fastals.data import from_arrays, IdRecommender
>>> data = from_arrays(["ann", "ann", "bob", "bob", "cat"],
...                    ["jazz", "rock", "jazz", "blues", "rock"], [3, 1, 2, 5, 4])
>>> model = fastals.ImplicitALS(factors=4, iterations=3, random_state=0)
>>> rec = IdRecommender(model).fit(data, show_progress=False)
>>> items, scores = rec.recommend("ann", N=2)
"""
from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
import numbers
import os
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from fastals._files import atomic_path
from fastals._validation import (
    all_finite,
    as_csr,
    check_choice,
    check_dtype,
    check_float,
    check_ids,
    check_sparse,
    is_canonical,
)
from fastals.exceptions import IdOutOfRangeError, ModelFileError
from fastals.models.base import RecommenderBase, load as load_model, model_path

__all__ = [
    "DataWarning",
    "IdMapping",
    "IdRecommender",
    "Interactions",
    "bm25_weight",
    "from_arrays",
    "from_dataframe",
    "linear_weight",
    "log_weight",
    "read_csv",
    "score_pairs",
    "tfidf_weight",
]

DUPLICATE_POLICIES = ("sum", "mean", "max", "min", "first", "last", "error")
_IDS_HEADER = "__fastals_ids__"
_IDS_FORMAT = 1
_INT_TEXT = re.compile(r"-?(0|[1-9][0-9]{0,17})")
_MISSING_TEXT = frozenset({"", "nan", "NaN", "NAN", "NA", "N/A", "n/a", "null", "NULL", "None"})


class DataWarning(UserWarning):
    """Rows were dropped or changed while building the interaction matrix."""


class _BadValue(ValueError):
    """A value that is not a number, at record `position` (kept for file/line messages)."""

    def __init__(self, message, value, position):
        super().__init__(message)
        self.value, self.position = value, position


def _pandas():
    """The pandas module, or None when it is not installed."""
    try:
        import pandas
    except ImportError:
        return None
    return pandas


def _require_pandas(purpose):
    pd = _pandas()
    if pd is None:
        raise ImportError(f"{purpose} needs pandas: pip install pandas")
    return pd


# --- ids -------------------------------------------------------------------------------------
def _missing_mask(values):
    """True where a value is missing: None, NaN, pandas NA/NaT."""
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind == "M":
        return np.isnat(values)
    if values.dtype != object:
        return np.zeros(len(values), dtype=bool)
    pd = _pandas()
    if pd is not None:
        return np.asarray(pd.isna(values), dtype=bool)
    return np.fromiter((v is None or (isinstance(v, float) and v != v) for v in values),
                       dtype=bool, count=len(values))


def _id_array(values):
    """A 1-D array of ids: int64 when every id is an integer, else object (never U/S)."""
    if isinstance(values, np.ndarray):
        arr = values
    elif hasattr(values, "to_numpy"):  # pandas Series / Index / extension arrays
        arr = values.to_numpy() if isinstance(values.dtype, np.dtype) else \
            values.to_numpy(dtype=object, na_value=None)
    else:
        arr = _object_array(values)
    if arr.dtype.kind in "iu":
        if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
            return arr.astype(object)
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "f":
        if arr.size and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)) \
                and np.abs(arr).max() < 2**53:
            return arr.astype(np.int64)
        return arr.astype(object)
    if arr.dtype.kind in "US":
        return arr.astype(object)
    if arr.dtype == object and arr.size and all(
            isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, (bool, np.bool_))
            for v in arr):
        try:
            return arr.astype(np.int64)
        except OverflowError:
            return arr
    return arr.astype(object, copy=False)


def _object_array(values):
    """A 1-D object array of the items of `values` (tuples and lists stay single items)."""
    values = list(values)
    arr = np.empty(len(values), dtype=object)
    if any(isinstance(v, (tuple, list, np.ndarray)) for v in values):
        for k, v in enumerate(values):
            arr[k] = v
    else:
        arr[:] = values
    return arr


def _check_hashable(name, values):
    for v in values:
        try:
            hash(v)
        except TypeError:
            raise TypeError(f"{name} must be hashable, got {type(v).__name__} {v!r:.60}") from None


class IdMapping:
    """A bidirectional map between the caller's ids and contiguous indices ``0..n-1``.

    Index ``k`` is ``ids[k]``. Ids are any hashable values (str, int, ...); integer ids are
    stored as int64, everything else as an object array.

    Lookups are tolerant of the one ambiguity text input creates: when the mapping holds
    integers, the text ``"42"`` finds id 42 (and the int 42 finds ``"42"`` in a mapping of
    strings), so ids typed on a command line work.

    Parameters
    ----------
    ids : sequence of hashable
        Unique, non-missing ids in index order.
    name : str
        What the ids are ("user", "item"), used in error messages.

    Examples
    --------
    >>> m = IdMapping(["ann", "bob"], name="user")
    >>> m.index("bob"), m.to_ids([1, 0]).tolist()
    (1, ['bob', 'ann'])
    """

    def __init__(self, ids, name="id"):
        arr = _id_array(ids)
        if arr.ndim != 1:
            raise ValueError(f"{name} ids must be 1-D, got shape {arr.shape}")
        self.name = name
        self._frame_index = None
        if arr.dtype == np.int64:
            order = np.argsort(arr, kind="stable")
            sorted_ids = arr[order]
            repeated = np.flatnonzero(sorted_ids[1:] == sorted_ids[:-1])
            if len(repeated):
                raise ValueError(f"{name} ids are not unique: {int(sorted_ids[repeated[0]])} "
                                 f"repeats ({len(repeated)} repeats in all)")
            self._sorted, self._lookup = (sorted_ids, order), None
        else:
            _check_hashable(f"{name} ids", arr)
            if _missing_mask(arr).any():
                raise ValueError(f"{name} ids contain missing values (None or NaN)")
            lookup = {}
            for k, value in enumerate(arr.tolist()):
                if lookup.setdefault(value, k) != k:
                    raise ValueError(f"{name} ids are not unique: {value!r} repeats")
            self._sorted, self._lookup = None, lookup
        arr = arr.copy()  # never share (or freeze) the caller's array
        arr.setflags(write=False)
        self._ids = arr

    @classmethod
    def range(cls, n, name="id"):
        """The identity mapping of ``n`` integer ids ``0..n-1``."""
        return cls(np.arange(n, dtype=np.int64), name=name)

    # --- basic protocol ---
    @property
    def ids(self):
        """The ids in index order (read-only)."""
        return self._ids

    @property
    def kind(self):
        """``"int"`` for int64 ids, else ``"object"``."""
        return "int" if self._ids.dtype == np.int64 else "object"

    def __len__(self):
        return len(self._ids)

    def __contains__(self, ident):
        return self._find(ident) >= 0

    def __eq__(self, other):
        return isinstance(other, IdMapping) and len(self) == len(other) and \
            self._ids.dtype == other._ids.dtype and bool(np.all(self._ids == other._ids))

    __hash__ = None

    def __repr__(self):
        head = ", ".join(repr(v) for v in self._ids[:3].tolist())
        more = ", ..." if len(self) > 3 else ""
        return f"IdMapping({len(self)} {self.name} ids: [{head}{more}])"

    def _find(self, ident):
        """The index of one id, or -1 (with the int/text tolerance described above)."""
        if self._lookup is None:  # int ids
            if isinstance(ident, (bool, np.bool_)):
                return -1
            if isinstance(ident, str) and _INT_TEXT.fullmatch(ident.strip()):
                ident = int(ident.strip())
            elif isinstance(ident, (float, np.floating)) and float(ident).is_integer():
                ident = int(ident)
            if not isinstance(ident, (numbers.Integral, np.integer)) or \
                    not -2**63 <= int(ident) < 2**63:
                return -1
            values, order = self._sorted
            pos = int(np.searchsorted(values, ident))
            return int(order[pos]) if pos < len(values) and values[pos] == ident else -1
        try:
            found = self._lookup.get(ident, -1)
        except TypeError:  # unhashable
            return -1
        if found < 0 and isinstance(ident, (numbers.Integral, np.integer)) \
                and not isinstance(ident, (bool, np.bool_)):
            found = self._lookup.get(str(ident), -1)
        return found

    def index(self, ids, missing="raise"):
        """Indices of `ids` (one id gives an int, a sequence an int64 array).

        missing : {"raise", "ignore"}
            Unknown ids raise :class:`~fastals.IdOutOfRangeError` naming the first one, or
            map to -1.
        """
        check_choice("missing", missing, ("raise", "ignore"))
        if _is_scalar_id(ids):
            found = self._find(ids)
            if found < 0 and missing == "raise":
                raise IdOutOfRangeError(self._unknown_message(ids, 1))
            return found
        values = _id_array(list(ids) if not hasattr(ids, "__len__") else ids)
        out = self._index_array(values)
        if missing == "raise" and (out < 0).any():
            bad = values[np.flatnonzero(out < 0)[0]]
            raise IdOutOfRangeError(self._unknown_message(bad, int((out < 0).sum())))
        return out

    def _index_array(self, values):
        if self.kind == "int" and values.dtype == np.int64:
            sorted_ids, order = self._sorted
            if not len(sorted_ids):
                return np.full(len(values), -1, dtype=np.int64)
            pos = np.minimum(np.searchsorted(sorted_ids, values), len(sorted_ids) - 1)
            return np.where(sorted_ids[pos] == values, order[pos], -1).astype(np.int64)
        pd = _pandas()
        if pd is not None and self.kind == "object" and len(values) > 1000:
            if self._frame_index is None:
                self._frame_index = pd.Index(self._ids, dtype=object)
            out = self._frame_index.get_indexer(pd.Index(values, dtype=object)).astype(np.int64)
        else:
            out = np.fromiter((self._find(v) for v in values.tolist()), dtype=np.int64,
                              count=len(values))
        misses = np.flatnonzero(out < 0)
        if len(misses) and len(misses) <= 10000:  # the int/text tolerance for the few misses
            out[misses] = [self._find(values[k]) for k in misses]
        return out

    def _unknown_message(self, ident, count):
        more = f" ({count} unknown {self.name} ids in all)" if count > 1 else ""
        return (f"{self.name} {ident!r} is not known to the model (it was not in the data "
                f"the model was fit on){more}")

    def to_ids(self, indices):
        """The ids at `indices` (an int gives one id, an array an array of ids)."""
        if np.ndim(indices) == 0:
            idx, _ = check_ids(f"{self.name} index", indices, len(self))
            value = self._ids[int(idx[0])]
            return value.item() if isinstance(value, np.generic) else value
        idx, _ = check_ids(f"{self.name} indices", indices, len(self), allow_scalar=False)
        return self._ids[idx]

    def extend(self, new_ids):
        """A new mapping with `new_ids` appended (ids already present are skipped)."""
        new = _id_array(new_ids)
        known = self._index_array(new) >= 0 if len(new) else np.zeros(0, dtype=bool)
        fresh = []
        seen = set()
        for value, is_known in zip(new.tolist(), known):
            if not is_known and value not in seen:
                seen.add(value)
                fresh.append(value)
        if not fresh:
            return self
        added = _id_array(fresh)
        if self.kind == "int" and added.dtype == np.int64:
            return IdMapping(np.concatenate([self._ids, added]), name=self.name)
        return IdMapping(np.concatenate([self._ids.astype(object), added.astype(object)]),
                         name=self.name)

    # --- saving without pickle ---
    def _to_arrays(self, prefix):
        """Arrays that store the ids in an .npz (no pickle): int64, or UTF-8 JSON bytes."""
        if self.kind == "int":
            return {prefix: self._ids}
        values = []
        for v in self._ids.tolist():
            if isinstance(v, np.generic):
                v = v.item()
            if not isinstance(v, (str, int, float)) or isinstance(v, float) and v != v:
                raise TypeError(
                    f"{self.name} ids of type {type(v).__name__} ({v!r:.40}) cannot be saved "
                    "without pickle: use str or int ids (e.g. map them with str())")
            values.append(v)
        blob = json.dumps(values, ensure_ascii=False).encode("utf-8")
        return {prefix + "_json": np.frombuffer(blob, dtype=np.uint8)}

    @classmethod
    def _from_arrays(cls, arrays, prefix, name):
        if prefix in arrays:
            return cls(arrays[prefix], name=name)
        if prefix + "_json" in arrays:
            values = json.loads(arrays[prefix + "_json"].tobytes().decode("utf-8"))
            return cls(_object_array(values) if values else np.zeros(0, np.int64), name=name)
        return None


def _is_scalar_id(value):
    return isinstance(value, (str, bytes, tuple)) or np.ndim(value) == 0


def _factorize(values, name):
    """(IdMapping of the distinct values, int64 codes); sorted order when comparable."""
    pd = _pandas()
    if values.dtype == np.int64:
        if pd is not None:
            codes, uniques = pd.factorize(values, sort=True)
            return IdMapping(np.asarray(uniques, dtype=np.int64), name=name), \
                codes.astype(np.int64)
        uniques, codes = np.unique(values, return_inverse=True)
        return IdMapping(uniques, name=name), codes.astype(np.int64)
    _check_hashable(f"{name} ids", values[:1000])
    if pd is not None:
        try:
            codes, uniques = pd.factorize(values, sort=True)
        except TypeError:  # ids of mixed, unorderable types: keep first-appearance order
            codes, uniques = pd.factorize(values, sort=False)
        return IdMapping(np.asarray(uniques, dtype=object), name=name), codes.astype(np.int64)
    try:
        uniques, codes = np.unique(values, return_inverse=True)
    except TypeError:
        lookup = {}
        codes = np.fromiter((lookup.setdefault(v, len(lookup)) for v in values.tolist()),
                            dtype=np.int64, count=len(values))
        uniques = np.empty(len(lookup), dtype=object)
        uniques[:] = list(lookup)
    return IdMapping(uniques, name=name), codes.astype(np.int64)


# --- the interaction matrix --------------------------------------------------------------------
class Interactions:
    """A users x items interaction matrix with the ids of its rows and columns.

    Attributes
    ----------
    user_items : scipy.sparse.csr_matrix
        users x items, canonical (sorted indices, no duplicates). Stored zeros are kept
        (an explicit rating of 0 stays a rating); implicit models ignore them.
    users, items : IdMapping
        The caller's id of each row and column.
    timestamps : ndarray or None
        One time per stored value, aligned with ``user_items.data``.
    item_info, user_info : dict of str -> ndarray
        Metadata columns aligned with the item (user) indices, e.g. ``item_info["title"]``.

    Build one with :func:`from_dataframe`, :func:`from_arrays`, :func:`read_csv` or a loader
    of :mod:`fastals.datasets`; or wrap an existing matrix: ``Interactions(matrix)`` gives
    integer ids ``0..n-1``.
    """

    def __init__(self, user_items, users=None, items=None, timestamps=None, item_info=None,
                 user_info=None):
        matrix = canonical_csr(user_items, "user_items")
        if matrix.dtype.kind not in "biuf":
            raise TypeError(f"user_items must hold real numbers, got dtype {matrix.dtype}")
        if matrix.dtype.kind == "f" and not np.isfinite(matrix.data).all():
            raise ValueError("user_items contains NaN or infinite values")
        self.user_items = matrix
        n_users, n_items = matrix.shape
        self.users = users if users is not None else IdMapping.range(n_users, "user")
        self.items = items if items is not None else IdMapping.range(n_items, "item")
        for mapping, n, what in ((self.users, n_users, "users"), (self.items, n_items, "items")):
            if not isinstance(mapping, IdMapping):
                raise TypeError(f"{what} must be an IdMapping, got {type(mapping).__name__}")
            if len(mapping) != n:
                raise ValueError(f"{what} has {len(mapping)} ids but the matrix has {n} "
                                 f"{'rows' if what == 'users' else 'columns'}")
        if timestamps is not None:
            timestamps = np.asarray(timestamps)
            if timestamps.shape != (matrix.nnz,):
                raise ValueError(f"timestamps must have one value per stored interaction "
                                 f"({matrix.nnz}), got shape {timestamps.shape}")
        self.timestamps = timestamps
        self.item_info = _check_info(item_info, n_items, "item_info")
        self.user_info = _check_info(user_info, n_users, "user_info")

    @property
    def shape(self):
        return self.user_items.shape

    @property
    def nnz(self):
        return self.user_items.nnz

    @property
    def n_users(self):
        return self.user_items.shape[0]

    @property
    def n_items(self):
        return self.user_items.shape[1]

    def __repr__(self):
        extra = (", timestamps" if self.timestamps is not None else "") + (
            f", item_info {sorted(self.item_info)}" if self.item_info else "")
        return (f"Interactions({self.n_users} users x {self.n_items} items, "
                f"{self.nnz} stored values{extra})")

    def with_matrix(self, user_items, timestamps=None):
        """A new Interactions with the same ids and metadata and another matrix (same shape)."""
        if user_items.shape != self.shape:
            raise ValueError(f"user_items must have shape {self.shape}, got {user_items.shape}")
        return Interactions(user_items, self.users, self.items, timestamps, self.item_info,
                            self.user_info)

    def item_labels(self, indices=None):
        """Display names of items: the ``title`` or ``name`` metadata, else the ids as text."""
        return _labels(self.items, self.item_info, indices)

    @property
    def item_metadata(self):
        """The item metadata as a DataFrame indexed by item id (needs pandas)."""
        return _info_frame(self.items, self.item_info, "item")

    @property
    def user_metadata(self):
        """The user metadata as a DataFrame indexed by user id (needs pandas)."""
        return _info_frame(self.users, self.user_info, "user")

    def to_dataframe(self):
        """One row per stored value: user, item, value (and timestamp) with the caller's ids."""
        pd = _require_pandas("Interactions.to_dataframe")
        coo = self.user_items.tocoo()
        frame = {"user": self.users.ids[coo.row], "item": self.items.ids[coo.col],
                 "value": coo.data}
        if self.timestamps is not None:
            frame["timestamp"] = self.timestamps
        return pd.DataFrame(frame)


def canonical_csr(matrix, name="user_items"):
    """`matrix` as a canonical CSR (sorted indices, duplicates summed), stored zeros kept.

    The caller's arrays are shared when the input is already canonical CSR, and copied
    before anything would change them otherwise.
    """
    check_sparse(matrix, name)  # also rejects a hand-built matrix scipy would misread
    if matrix.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {matrix.dtype}")
    csr = matrix.tocsr() if matrix.format != "csr" else matrix
    if csr is not matrix:
        check_sparse(csr, name)
    if not is_canonical(csr.indptr, csr.indices, csr.nnz):
        csr = csr.copy() if csr is matrix else csr
        csr.has_sorted_indices = False  # scipy trusts these flags: make it look
        csr.has_canonical_format = False
        csr.sum_duplicates()
    if csr.indices.shape[0] != csr.nnz or csr.data.shape[0] != csr.nnz:
        csr = csr.copy() if csr is matrix else csr
        csr.prune()  # arrays longer than indptr says (a hand-built matrix)
    if not all_finite(csr.data):
        raise ValueError(f"{name} contains NaN or infinite values")
    return csr


def _check_info(info, n, name):
    if info is None:
        return {}
    if not isinstance(info, Mapping):
        raise TypeError(f"{name} must be a dict of column name -> array, got {type(info).__name__}")
    out = {}
    for key, column in info.items():
        column = np.asarray(column)
        if column.shape != (n,):
            raise ValueError(f"{name}[{key!r}] must have {n} values, got shape {column.shape}")
        out[str(key)] = column
    return out


def _labels(mapping, info, indices):
    indices = np.arange(len(mapping)) if indices is None else np.asarray(indices, dtype=np.int64)
    for key in ("title", "name"):
        if key in info:
            column = info[key][indices]
            missing = _missing_mask(np.asarray(column, dtype=object))
            ids = mapping.ids[indices]
            return np.array([str(i) if m else str(c) for c, i, m in zip(column, ids, missing)],
                            dtype=object)
    return np.array([str(v) for v in mapping.ids[indices].tolist()], dtype=object)


def _info_frame(mapping, info, what):
    pd = _require_pandas(f"{what} metadata as a DataFrame")
    return pd.DataFrame({k: v for k, v in info.items()},
                        index=pd.Index(mapping.ids, name=what))


# --- building -------------------------------------------------------------------------------
def from_arrays(users, items, values=None, timestamps=None, *, duplicates="sum",
                dtype=np.float32, user_ids=None, item_ids=None, item_metadata=None,
                item_key=None, _where=None) -> Interactions:
    """Build :class:`Interactions` from parallel arrays of (user, item, value) records.

    Parameters
    ----------
    users, items : array-like of hashable
        The caller's ids, one per record (str, int, ...).
    values : array-like of numbers, optional
        Interaction strengths (play counts, ratings); 1 for every record when omitted.
        Must be finite; NaN counts as missing.
    timestamps : array-like, optional
        One time per record (numbers or datetimes), for
        :func:`fastals.evaluation.split_by_time`.
    duplicates : {"sum", "mean", "max", "min", "first", "last", "error"}
        How records of the same (user, item) pair combine. ``first``/``last`` follow the
        record order; the timestamp kept is the latest. ``error`` raises naming the pair.
    dtype : float32 or float64
        dtype of the matrix values.
    user_ids, item_ids : IdMapping, optional
        Use these mappings (e.g. those of a training set) instead of building new ones;
        records whose ids they do not hold are dropped and counted in the warning.
    item_metadata : pandas.DataFrame, optional
        Item attributes (titles, genres) indexed by item id, or with the id in column
        `item_key`: kept aligned with the items (``item_info``) and joined onto results.

    Records with a missing user, item, value or timestamp (None, NaN) are dropped, and one
    :class:`DataWarning` says how many and where the first one was.

    Returns
    -------
    Interactions
    """
    dtype = check_dtype("dtype", dtype)
    check_choice("duplicates", duplicates, DUPLICATE_POLICIES)
    where = _where or (lambda k: f"position {k}")
    users, items = _id_column(users, "users"), _id_column(items, "items")
    n = len(users)
    if len(items) != n:
        raise ValueError(f"users and items must have the same length, got {n} and {len(items)}")
    has_values = values is not None
    if not has_values:
        values = np.ones(n, dtype=np.float64)
    else:
        try:
            values = _numeric_column(values, "values", where)
        except _BadValue as exc:  # (an internal subclass: callers see a ValueError)
            raise ValueError(str(exc)) from None
        if len(values) != n:
            raise ValueError(f"values must have one entry per record ({n}), got {len(values)}")
    if timestamps is not None:
        try:
            timestamps = _time_column(timestamps, "timestamps", where)
        except _BadValue as exc:
            raise ValueError(str(exc)) from None
        if len(timestamps) != n:
            raise ValueError(f"timestamps must have one entry per record ({n}), "
                             f"got {len(timestamps)}")
    missing = _missing_mask(users) | _missing_mask(items) | np.isnan(values)
    if timestamps is not None:
        missing |= _missing_mask(timestamps)
    dropped = []
    if missing.any():
        first = int(np.flatnonzero(missing)[0])
        fields = ["user", "item"] + (["value"] if has_values else []) + (
            ["timestamp"] if timestamps is not None else [])
        dropped.append(f"{int(missing.sum())} with a missing {', '.join(fields[:-1])} or "
                       f"{fields[-1]} (first at {where(first)})")
    keep = ~missing
    rows = np.flatnonzero(keep)
    users, items, values = users[keep], items[keep], values[keep]
    if timestamps is not None:
        timestamps = timestamps[keep]
    ucodes, user_map = _codes(users, user_ids, "user")
    icodes, item_map = _codes(items, item_ids, "item")
    unknown = (ucodes < 0) | (icodes < 0)
    if unknown.any():
        first = int(np.flatnonzero(unknown)[0])
        dropped.append(f"{int(unknown.sum())} with ids not in the given mapping "
                       f"(first at {where(int(rows[first]))})")
        known = ~unknown
        rows, ucodes, icodes, values = rows[known], ucodes[known], icodes[known], values[known]
        if timestamps is not None:
            timestamps = timestamps[known]
    if dropped:
        warnings.warn(f"dropped {n - len(values)} of {n} records: {'; '.join(dropped)}",
                      DataWarning, stacklevel=2)
    if len(values) and not np.isfinite(values).all():
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise ValueError(f"values must be finite: {values[bad]} at {where(int(rows[bad]))}")
    if not len(values):
        raise ValueError(f"no interactions: {n} records given"
                         + (f", all dropped ({' and '.join(dropped)})" if dropped else ""))
    n_users, n_items = len(user_map), len(item_map)
    matrix, times = _combine(ucodes, icodes, values, timestamps, n_users, n_items, duplicates,
                             dtype, user_map, item_map, rows, where)
    item_info = None if item_metadata is None else _align_metadata(item_metadata, item_map,
                                                                   item_key)
    return Interactions(matrix, user_map, item_map, times, item_info)


def _id_column(values, name):
    if isinstance(values, (str, bytes)) or np.ndim(values) != 1:
        raise ValueError(f"{name} must be a 1-D sequence of ids, got {type(values).__name__} "
                         f"with {np.ndim(values)} dimensions")
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return values  # NaN marks missing ids; integral values become int64 after the check
    arr = _id_array(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def _codes(ids, mapping, name):
    if mapping is not None:
        if not isinstance(mapping, IdMapping):
            raise TypeError(f"{name}_ids must be an IdMapping, got {type(mapping).__name__}")
        return mapping.index(_id_array(ids), missing="ignore"), mapping
    ids = _id_array(ids)
    mapping, codes = _factorize(ids, name)
    return codes, mapping


def _plain_array(values):
    """A numpy array from a list, array or pandas column (nullable dtypes: NaN / None)."""
    if hasattr(values, "to_numpy") and not isinstance(values.dtype, np.dtype):
        try:
            return values.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            return values.to_numpy(dtype=object, na_value=None)
    if hasattr(values, "to_numpy"):
        return values.to_numpy()
    if isinstance(values, np.ndarray):
        return values
    arr = _object_array(values)
    values = arr.tolist()
    try:
        return arr.astype(np.float64) if all(
            isinstance(v, (numbers.Real, np.number)) and not isinstance(v, (bool, np.bool_))
            for v in values) else arr
    except (TypeError, ValueError):
        return arr


def _numeric_column(values, name, where):
    """A float64 array of `values`; text that is not a number raises naming the record."""
    arr = _plain_array(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind in "biuf":
        return arr.astype(np.float64)
    pd = _pandas()
    if pd is not None and arr.dtype == object and len(arr) > 1000:
        # fast path: vectorised parse, then only the failures are looked at
        parsed = pd.to_numeric(pd.Series(arr, dtype=object), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan)
        failed = np.flatnonzero(np.isnan(parsed) & ~_missing_mask(arr))
        for k in failed:
            v = arr[k]
            if isinstance(v, str) and v.strip() in _MISSING_TEXT:
                continue
            try:
                parsed[k] = float(v)
            except (TypeError, ValueError):
                raise _BadValue(f"{name} must be numbers, got {v!r:.40} at {where(k)}", v,
                                int(k)) from None
        return parsed
    out = np.empty(len(arr), dtype=np.float64)
    for k, v in enumerate(arr.tolist()):
        if v is None or (isinstance(v, float) and v != v):
            out[k] = np.nan
            continue
        if isinstance(v, (bool, np.bool_)):
            raise _BadValue(f"{name} must be numbers, got {v!r} at {where(k)}", v, k)
        if isinstance(v, str) and v.strip() in _MISSING_TEXT:
            out[k] = np.nan
            continue
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            raise _BadValue(f"{name} must be numbers, got {v!r:.40} at {where(k)}", v,
                            k) from None
    return out


def _time_column(values, name, where):
    """Timestamps as float64 seconds (numbers as given; datetimes and ISO text converted)."""
    arr = _plain_array(values)
    if arr.dtype.kind in "iuf":
        return arr.astype(np.float64)
    if arr.dtype.kind == "M":
        seconds = arr.astype("datetime64[ns]").astype(np.int64) / 1e9
        return np.where(np.isnat(arr), np.nan, seconds)
    try:
        return _numeric_column(arr, name, where)
    except _BadValue:
        pass
    out = np.empty(len(arr), dtype=np.float64)
    for k, v in enumerate(arr.tolist()):
        if v is None or (isinstance(v, float) and v != v) or (isinstance(v, str) and
                                                               v.strip() in _MISSING_TEXT):
            out[k] = np.nan
            continue
        try:
            out[k] = np.datetime64(v, "ns").astype(np.int64) / 1e9
        except (TypeError, ValueError):
            raise _BadValue(f"{name} must be numbers or dates, got {v!r:.40} at {where(k)}",
                            v, k) from None
    return out


def _combine(ucodes, icodes, values, timestamps, n_users, n_items, policy, dtype, user_map,
             item_map, rows, where):
    """A canonical CSR from coordinate records, duplicates combined by `policy`."""
    if n_users and n_items > np.iinfo(np.int64).max // max(n_users, 1):
        raise ValueError(f"{n_users} users x {n_items} items is too large to index")
    keys = ucodes * n_items + icodes
    if len(keys) > 1 and np.all(keys[1:] > keys[:-1]):
        order = None  # already sorted, no duplicates: no work
    else:
        order = np.argsort(keys, kind="stable")
        keys, values = keys[order], values[order]
        if timestamps is not None:
            timestamps = timestamps[order]
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    if len(starts) != len(keys):
        if policy == "error":
            dup = int(np.flatnonzero(keys[1:] == keys[:-1])[0]) + 1
            record = int(rows[order[dup]] if order is not None else rows[dup])
            u, i = divmod(int(keys[dup]), n_items)
            raise ValueError(
                f"duplicate (user, item) pair ({user_map.ids[u]!r}, {item_map.ids[i]!r}) at "
                f"{where(record)} ({len(keys) - len(starts)} duplicates in all); pass "
                f"duplicates='sum' (or mean, max, min, first, last) to combine them")
        ends = np.concatenate([starts[1:], [len(keys)]])
        if policy == "sum":
            values = np.add.reduceat(values, starts)
        elif policy == "mean":
            values = np.add.reduceat(values, starts) / (ends - starts)
        elif policy == "max":
            values = np.maximum.reduceat(values, starts)
        elif policy == "min":
            values = np.minimum.reduceat(values, starts)
        elif policy == "first":
            values = values[starts]
        elif policy == "last":
            values = values[ends - 1]
        if timestamps is not None:
            timestamps = np.maximum.reduceat(timestamps, starts)
        keys = keys[starts]
    row_of, col_of = np.divmod(keys, n_items)
    index_dtype = np.int32 if max(len(keys), n_users, n_items) < np.iinfo(np.int32).max \
        else np.int64
    indptr = np.zeros(n_users + 1, dtype=index_dtype)
    np.cumsum(np.bincount(row_of, minlength=n_users), out=indptr[1:])
    data = values.astype(dtype)
    if not np.isfinite(data).all():
        raise ValueError(f"values overflow {np.dtype(dtype).name} after combining duplicates "
                         f"(policy {policy!r}); use dtype=np.float64")
    matrix = sp.csr_matrix((data, col_of.astype(index_dtype), indptr), shape=(n_users, n_items))
    matrix.has_canonical_format = True
    return matrix, timestamps


def from_dataframe(df, user_col="user", item_col="item", value_col=None, time_col=None, *,
                   duplicates="sum", dtype=np.float32, user_ids=None, item_ids=None,
                   item_metadata=None, item_key=None) -> Interactions:
    """Build :class:`Interactions` from a pandas DataFrame of records.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per interaction.
    user_col, item_col : str
        Columns holding the user and item ids (any hashable values).
    value_col : str, optional
        Column of interaction strengths; 1 per row when omitted.
    time_col : str, optional
        Column of timestamps (numbers or datetimes).
    duplicates, dtype, user_ids, item_ids
        As in :func:`from_arrays`.
    item_metadata : pandas.DataFrame, optional
        Item attributes (titles, genres), indexed by item id or with the id in column
        `item_key`; kept aligned with the item indices and joined onto results.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"user": ["a", "a", "b"], "artist": ["x", "y", "x"], "plays": [3, 1, 5]})
    >>> data = from_dataframe(df, "user", "artist", "plays")
    >>> data.shape
    (2, 2)
    """
    pd = _require_pandas("from_dataframe")
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    columns = {"user_col": user_col, "item_col": item_col, "value_col": value_col,
               "time_col": time_col}
    for arg, col in columns.items():
        if col is not None and col not in df.columns:
            raise ValueError(f"{arg}={col!r} is not a column of the DataFrame "
                             f"(columns: {', '.join(map(str, df.columns))})")
    index = df.index

    def where(k):
        return f"row {index[k]!r} of the DataFrame"

    return from_arrays(df[user_col], df[item_col], None if value_col is None else df[value_col],
                       None if time_col is None else df[time_col], duplicates=duplicates,
                       dtype=dtype, user_ids=user_ids, item_ids=item_ids,
                       item_metadata=item_metadata, item_key=item_key, _where=where)


def _align_metadata(metadata, items, key):
    """Columns of `metadata` (a DataFrame) aligned with the item indices; absent items get NaN."""
    pd = _require_pandas("item metadata")
    if not isinstance(metadata, pd.DataFrame):
        raise TypeError(f"item_metadata must be a pandas DataFrame, got {type(metadata).__name__}")
    if key is not None:
        if key not in metadata.columns:
            raise ValueError(f"item_key={key!r} is not a column of item_metadata "
                             f"(columns: {', '.join(map(str, metadata.columns))})")
        metadata = metadata.set_index(key)
    if metadata.index.has_duplicates:
        repeats = int(metadata.index.duplicated().sum())
        warnings.warn(f"item_metadata has {repeats} repeated item ids; the first row of each "
                      "is used", DataWarning, stacklevel=4)
        metadata = metadata[~metadata.index.duplicated()]
    mapping = IdMapping(np.asarray(metadata.index, dtype=object), name="item") \
        if len(metadata) else IdMapping([], "item")
    position = mapping.index(items.ids, missing="ignore")
    found = position >= 0
    info = {}
    for column in metadata.columns:
        values = metadata[column].to_numpy()
        out = np.empty(len(items), dtype=object if values.dtype.kind not in "f" else values.dtype)
        out[:] = None if out.dtype == object else np.nan
        out[found] = values[position[found]]
        info[str(column)] = out
    return info


# --- CSV / TSV ----------------------------------------------------------------------------------
_USER_NAMES = ("user", "user_id", "userid", "users", "uid", "usersha1", "customer",
               "customer_id", "visitorid", "session_id")
_ITEM_NAMES = ("item", "item_id", "itemid", "items", "iid", "movieid", "movie_id", "movie",
               "artist", "artistid", "artist_id", "artist_name", "artname", "track", "track_id",
               "song", "song_id", "product", "product_id", "book", "isbn", "asin")
_VALUE_NAMES = ("value", "rating", "ratings", "plays", "playcount", "play_count", "count",
                "weight", "score", "clicks", "quantity", "stars", "book-rating")
_TIME_NAMES = ("timestamp", "time", "datetime", "ts", "date")


def _open_text(path, encoding):
    """Open a (possibly gz/bz2/xz-compressed) text file."""
    suffix = Path(path).suffix.lower()
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(suffix)
    if opener is not None:
        return opener(path, "rt", encoding=encoding, newline="")
    return open(path, encoding=encoding, newline="")


def _check_file(path, name="path"):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path, got {type(path).__name__}")
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    if p.is_dir():
        raise IsADirectoryError(f"{p} is a directory, not a data file")
    return p


def _guess_sep(path, first_line):
    suffix = "".join(Path(path).suffixes[-2:]).lower().replace(".gz", "").replace(
        ".bz2", "").replace(".xz", "")
    if suffix.endswith((".tsv", ".tab")):
        return "\t"
    if suffix.endswith(".csv"):
        return ","
    for sep in ("\t", ",", ";", "|"):
        if sep in first_line:
            return sep
    return ","


def _split_line(line, sep, quoting):
    reader = csv.reader([line], delimiter=sep,
                        quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE)
    return [field.strip() for field in next(reader, [])]


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _resolve_column(path, spec, what, header, n_fields, guesses):
    """Position of a column given by name or position; guessed from the header when None."""
    if spec is None:
        if header is not None:
            lowered = [h.lower() for h in header]
            for name in guesses:
                if name in lowered:
                    return lowered.index(name)
        return None
    if isinstance(spec, (numbers.Integral, np.integer)) and not isinstance(spec, bool):
        position = int(spec)
        if not 0 <= position < n_fields:
            raise ValueError(f"{path}: {what} column {position} does not exist "
                             f"(the file has {n_fields} columns, numbered from 0)")
        return position
    if isinstance(spec, str):
        if header is not None and spec in header:
            return header.index(spec)
        if header is None and spec.isdigit():
            return _resolve_column(path, int(spec), what, header, n_fields, guesses)
        shown = ", ".join(header) if header is not None else "none: the file has no header"
        raise ValueError(f"{path}: no {what} column {spec!r} (columns: {shown})")
    raise TypeError(f"{what} column must be a name or a position, got {spec!r}")


def read_csv(path, user_col=None, item_col=None, value_col=None, time_col=None, *, sep=None,
             header="infer", encoding="utf-8", quoting=True, duplicates="sum",
             dtype=np.float32, user_ids=None, item_ids=None) -> Interactions:
    """Read interaction records from a CSV / TSV file (optionally .gz, .bz2 or .xz).

    Parameters
    ----------
    path : str or Path
    user_col, item_col, value_col, time_col : str or int, optional
        Columns by header name or by position (from 0). When not given, they are found in the
        header by common names (``user``, ``userId``, ``item``, ``movieId``, ``artist``,
        ``rating``, ``plays``, ``timestamp`` ...); without a header, user and item are
        columns 0 and 1 and value is column 2 when the file has one.
    sep : str, optional
        Field separator; from the extension (.tsv tab, .csv comma) or the first line.
    header : bool or "infer"
        Whether the first line names the columns. ``"infer"``: yes when it contains a known
        column name or its third field is not a number.
    encoding : str
        Text encoding (e.g. ``"latin-1"`` for old MovieLens files).
    quoting : bool
        Honour double quotes around fields (False for files with stray quotes, like Last.fm).
    duplicates, dtype, user_ids, item_ids
        As in :func:`from_arrays`.

    Errors name the file, and the line or column at fault. Empty cells are missing values:
    such rows are dropped and counted in a :class:`DataWarning`; text where a number
    belongs is an error.

    Id columns that hold integers become integer ids; ids that are not canonical integers
    (``"007"``) stay text. With pandas, that is decided on the first 100,000 rows (the
    column is parsed natively for speed), so zero-padded ids that only appear later in a
    file would be read as integers; read such a file with ``pandas.read_csv(...,
    dtype={"user": str})`` and pass the DataFrame to :func:`from_dataframe`.
    """
    path = _check_file(path)
    encoding = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        with _open_text(path, encoding) as f:
            first_line = f.readline()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not {encoding} text (byte {exc.start} of the first line); "
                         f"pass the right encoding (e.g. latin-1)") from None
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path} cannot be read: {exc}") from None
    if not first_line.strip():
        raise ValueError(f"{path} is empty" if not first_line else
                         f"{path}: the first line is blank (expected a header or a record)")
    sep = sep if sep is not None else _guess_sep(path, first_line)
    fields = _split_line(first_line.rstrip("\r\n"), sep, quoting)
    named = any(isinstance(c, str) and not c.isdigit()
                for c in (user_col, item_col, value_col, time_col))
    if header == "infer":
        known = set(_USER_NAMES + _ITEM_NAMES + _VALUE_NAMES + _TIME_NAMES)
        header = named or any(f.lower() in known for f in fields) or (
            len(fields) >= 3 and not _is_number(fields[2]))
    elif not isinstance(header, bool):
        raise TypeError(f"header must be True, False or 'infer', got {header!r}")
    names = fields if header else None
    n_fields = len(fields)
    user = _resolve_column(path, user_col, "user", names, n_fields, _USER_NAMES)
    item = _resolve_column(path, item_col, "item", names, n_fields, _ITEM_NAMES)
    value = _resolve_column(path, value_col, "value", names, n_fields, _VALUE_NAMES)
    time = _resolve_column(path, time_col, "time", names, n_fields, _TIME_NAMES)
    if names is None:
        user = 0 if user is None else user
        item = 1 if item is None else item
        if value is None and value_col is None and n_fields >= 3:
            value = 2
    for pos, what, flag in ((user, "user", "user_col"), (item, "item", "item_col")):
        if pos is None:
            raise ValueError(f"{path}: cannot tell which column holds the {what} ids; pass "
                             f"{flag} (columns: {', '.join(fields)})")
    if n_fields < 2:
        raise ValueError(f"{path}: found {n_fields} column with separator {sep!r}; expected at "
                         f"least user and item columns (pass sep=...)")
    wanted = {"user": user, "item": item, "value": value, "time": time}
    wanted = {k: v for k, v in wanted.items() if v is not None}
    if len(set(wanted.values())) != len(wanted):
        raise ValueError(f"{path}: the same column is used twice ({wanted})")
    first_data_line = 2 if header else 1
    columns = _read_columns(path, sep, header, encoding, quoting, sorted(set(wanted.values())),
                            n_fields, first_data_line, (user, item))

    def where(k):
        return f"{path}, line {first_data_line + k}"

    label = {pos: (repr(names[pos]) if names else f"{pos}") for pos in wanted.values()}
    values = columns[value] if value is not None else None
    times = columns[time] if time is not None else None
    try:
        values = None if values is None else _numeric_column(values, "values", where)
        times = None if times is None else _time_column(times, "timestamps", where)
    except _BadValue as exc:
        column = value if exc.args[0].startswith("values") else time
        what = "a number" if column == value else "a number or a date"
        raise ValueError(f"{where(exc.position)}, column {label[column]}: expected {what}, "
                         f"got {exc.value!r:.40}") from None
    try:
        return from_arrays(_text_ids(columns[user]), _text_ids(columns[item]), values, times,
                           duplicates=duplicates, dtype=dtype, user_ids=user_ids,
                           item_ids=item_ids, _where=where)
    except ValueError as exc:
        message = str(exc)
        if message.startswith("no interactions"):
            message = f"{path} has no interactions" + message[len("no interactions"):]
        raise ValueError(message) from None


def _text_ids(arr):
    """Text ids that are all canonical integers ("196", not "007") as numbers, else as is.

    Missing cells (None) become NaN, so the result is int64 when none is missing and float64
    otherwise (integral ids beyond 2**53 with missing cells stay text).
    """
    if arr.dtype != object:
        return arr  # parsed as numbers already (and checked to be canonical)
    sample = [v for v in arr[:1000].tolist() if v is not None]
    if not all(isinstance(v, str) and _INT_TEXT.fullmatch(v) for v in sample):
        return arr  # text ids (the usual case for object columns): nothing more to look at
    missing = _missing_mask(arr)
    present = arr[~missing]
    if not len(present):
        return arr
    pd = _pandas()
    if pd is not None:
        canonical = bool(pd.Series(present, dtype=object).str.fullmatch(_INT_TEXT.pattern).all())
    else:
        canonical = all(_INT_TEXT.fullmatch(v) for v in present.tolist())
    if not canonical:
        return arr
    ints = present.astype(np.int64)
    if not missing.any():
        return ints
    if np.abs(ints).max() >= 2**53:
        return arr
    out = np.full(len(arr), np.nan)
    out[~missing] = ints
    return out


def _read_columns(path, sep, header, encoding, quoting, positions, n_fields, first_data_line,
                  id_positions):
    """The wanted columns: numeric arrays, or object arrays of str (None for empty cells)."""
    pd = _pandas()
    if pd is not None:
        return _read_columns_pandas(pd, path, sep, header, encoding, quoting, positions,
                                    n_fields, first_data_line, id_positions)
    return _read_columns_csv(path, sep, header, encoding, quoting, positions, n_fields,
                             first_data_line)


class _WideHeader(io.TextIOBase):
    """A text file whose first line is replaced by a header one column wider.

    pandas ignores extra fields when `usecols` is given; with one more (sentinel) column
    than the real header, a line with too many fields shows up as a value in the sentinel.
    """

    def __init__(self, handle, header_line, skip_first):
        self._handle = handle
        self._prefix = header_line
        if skip_first:
            handle.readline()

    def readable(self):
        return True

    def read(self, size=-1):
        if not self._prefix:
            return self._handle.read(size)
        if size is None or size < 0:
            out, self._prefix = self._prefix + self._handle.read(), ""
            return out
        out, self._prefix = self._prefix[:size], self._prefix[size:]
        return out if out else self._handle.read(size)

    def close(self):
        self._handle.close()
        super().close()


_ID_SAMPLE_ROWS = 100_000


def _pandas_frame(pd, path, sep, header, encoding, quoting, positions, n_fields,
                  first_data_line, text_positions=(), nrows=None):
    """pandas.read_csv of the wanted columns (native types; `text_positions` as str)."""
    names = [f"c{k}" for k in range(n_fields + 1)]
    try:
        with _WideHeader(_open_text(path, encoding), sep.join(names) + "\n", header) as f:
            frame = pd.read_csv(f, sep=sep, header=0, usecols=[names[k] for k in positions] +
                                [names[-1]], dtype={names[k]: str for k in text_positions},
                                keep_default_na=False, na_values=[""], skip_blank_lines=False,
                                quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE,
                                engine="c", nrows=nrows, low_memory=False)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} has no data rows") from None
    except pd.errors.ParserError as exc:
        detail = str(exc).strip().splitlines()[-1]
        detail = re.sub(r"^Error tokenizing data\. C error: ", "", detail)
        match = re.match(r"Expected (\d+) fields in line (\d+), saw (\d+)", detail)
        if match:  # pandas counts the synthetic header as line 1
            line = int(match.group(2)) - 2 + first_data_line
            detail = f"expected {n_fields} fields in line {line}, saw {match.group(3)}"
        raise ValueError(f"{path}: {detail}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not {encoding} text ({exc.reason}); pass the right "
                         "encoding (e.g. latin-1)") from None
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path} cannot be read: {exc}") from None
    if not len(frame):
        raise ValueError(f"{path} has no data rows")
    extra = frame[names[-1]].notna().to_numpy()
    if extra.any():
        line = first_data_line + int(np.flatnonzero(extra)[0])
        raise ValueError(f"{path}: expected {n_fields} fields in line {line}, saw more")
    return {pos: frame[names[pos]] for pos in positions}


def _read_columns_pandas(pd, path, sep, header, encoding, quoting, positions, n_fields,
                         first_data_line, id_positions):
    """The wanted columns, parsed natively by pandas (fast: no Python string per number).

    An id column that pandas parsed as numbers is checked on its first rows read as text:
    if they are not all canonical integers ("007", "1.0"), the column is read again as text
    so that such ids keep their exact spelling.
    """
    args = (pd, path, sep, header, encoding, quoting, positions, n_fields, first_data_line)
    frame = _pandas_frame(*args)
    numeric_ids = [pos for pos in id_positions if frame[pos].dtype.kind in "iuf"]
    if numeric_ids:
        sample = _pandas_frame(*args, text_positions=numeric_ids, nrows=_ID_SAMPLE_ROWS)
        as_text = [pos for pos in numeric_ids
                   if not sample[pos].dropna().str.fullmatch(_INT_TEXT.pattern).all()]
        if as_text:
            text = _pandas_frame(*args, text_positions=as_text)
            for pos in as_text:
                frame[pos] = text[pos]
    out = {}
    for pos, column in frame.items():
        if column.dtype.kind in "iufM":
            out[pos] = column.to_numpy()
        else:
            out[pos] = column.to_numpy(dtype=object, na_value=None)
    return out


def _read_columns_csv(path, sep, header, encoding, quoting, positions, n_fields,
                      first_data_line):
    out = {pos: [] for pos in positions}
    last = max(positions)
    try:
        with _open_text(path, encoding) as f:
            reader = csv.reader(f, delimiter=sep,
                                quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE)
            for line_no, fields in enumerate(reader, start=1):
                if header and line_no == 1:
                    continue
                if len(fields) > n_fields:
                    raise ValueError(f"{path}: expected {n_fields} fields in line {line_no}, "
                                     "saw more")
                for pos in positions:
                    text = fields[pos].strip() if pos < len(fields) and pos <= last else ""
                    out[pos].append(text if text else None)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not {encoding} text ({exc.reason}); pass the right "
                         "encoding (e.g. latin-1)") from None
    except csv.Error as exc:
        raise ValueError(f"{path}: {exc}") from None
    if not out[positions[0]]:
        raise ValueError(f"{path} has no data rows")
    result = {}
    for pos, values in out.items():
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        result[pos] = arr
    return result


# --- confidence weighting ----------------------------------------------------------------------
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
    ``data * alpha`` of `implicit` tutorials -- exactly like ``ImplicitALS(alpha=40).fit(X)``.

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
    """log(N) - log(1 + df) per column, as in `implicit` (N = rows, df = rows using it)."""
    n_rows = float(matrix.shape[0])
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


# --- scoring pairs --------------------------------------------------------------------------
_PAIR_BLOCK_CELLS = 1 << 22


def score_pairs(model, userids, itemids, user_items=None):
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
    dtype = model._score_dtype
    out = np.empty(len(users), dtype=dtype)
    X, Y = getattr(model, "user_factors", None), getattr(model, "item_factors", None)
    if X is not None and Y is not None:
        step = max(1, _PAIR_BLOCK_CELLS // max(X.shape[1], 1))
        for lo in range(0, len(users), step):
            hi = lo + step
            out[lo:hi] = np.einsum("ij,ij->i", X[users[lo:hi]], Y[items[lo:hi]])
        return out
    order = np.argsort(users, kind="stable")
    unique_users, starts = np.unique(users[order], return_index=True)
    bounds = list(starts) + [len(order)]
    step = max(1, _PAIR_BLOCK_CELLS // max(model.n_items, 1))
    for lo in range(0, len(unique_users), step):
        block_users = unique_users[lo:lo + step]
        rows = None
        if user_items is not None:
            rows = model._rows_for(block_users, user_items, "user_items", model.n_users,
                                   model.n_items)
        scores = np.asarray(model._user_scores(block_users, rows, model._item_block(None),
                                               False))
        pairs = order[bounds[lo]:bounds[lo + len(block_users)]]
        out[pairs] = scores[np.searchsorted(block_users, users[pairs]), items[pairs]]
    return out


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

    def __init__(self, model, data=None, *, users=None, items=None, user_items=None,
                 item_info=None):
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

    def fit(self, data, **fit_kwargs):
        """Fit the model on `data` (Interactions or a sparse matrix) and keep its ids; self."""
        self._attach(data)
        self.model.fit(self.user_items, **fit_kwargs)
        self._check_sizes()
        return self

    # --- queries ---
    def recommend(self, user, N=10, filter_already_liked_items=True, filter_items=None,
                  items=None, history=None, as_frame=False):
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
            users_out = [user] if scalar else list(user)
        if as_frame:
            return self._frame("user", users_out, ids, scores)
        return self._item_ids(ids), scores

    def similar_items(self, item, N=10, filter_items=None, items=None, as_frame=False):
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
            return self._frame("query_item", [item] if scalar else list(item), ids, scores)
        return self._item_ids(ids), scores

    def similar_users(self, user, N=10, filter_users=None, users=None):
        """The N users most similar to a user (or to each of a list), by the caller's ids."""
        self._require_fitted()
        idx = self.users.index(user)
        ids, scores = self.model.similar_users(
            idx, N=N, filter_users=None if filter_users is None else
            np.atleast_1d(self.users.index(_as_list(filter_users))),
            users=None if users is None else np.atleast_1d(self.users.index(_as_list(users))))
        return _map_padded(self.users, ids), scores

    def predict(self, users, items):
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

    def item_labels(self, item_ids):
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
    def item_metadata(self):
        """Item metadata as a DataFrame indexed by item id (needs pandas)."""
        return _info_frame(self.items, self.item_info, "item")

    # --- files ---
    def save(self, path, include_interactions=True):
        """Write the model, the ids, the item metadata and (by default) the training
        interactions to one ``.npz`` file, atomically and without pickle. Returns the path.

        The file is also a plain model file: :func:`fastals.load` reads the bare model from
        it. The interactions let ``recommend`` filter what users already have after loading.
        """
        self._require_fitted()
        path = model_path(path)
        if not path.endswith(".npz"):
            path += ".npz"
        extras = {}
        extras.update(self.users._to_arrays("__user_ids__"))
        extras.update(self.items._to_arrays("__item_ids__"))
        info_columns = []
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
        with atomic_path(path) as tmp:
            self.model.save(tmp)  # itself atomic; then the ids are appended to the same zip
            with zipfile.ZipFile(tmp, "a", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
                for name, array in extras.items():
                    with zf.open(name + ".npy", "w", force_zip64=True) as f:
                        np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)
        return path

    @classmethod
    def load(cls, path):
        """Read a file written by :meth:`save` (or a plain model file: ids are then 0..n-1)."""
        model = load_model(path)
        path = model_path(path)
        try:
            with np.load(path, allow_pickle=False) as npz:
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

