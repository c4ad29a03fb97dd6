"""The interaction matrix: :class:`Interactions` and building it from records.

* :class:`Interactions` -- a users x items matrix plus the :class:`IdMapping` of its rows
  and columns (and optional timestamps and item metadata).
* :func:`from_arrays`, :func:`from_dataframe` -- build one from parallel arrays / a
  DataFrame of (user, item, value) records. Duplicate (user, item) pairs are combined by a
  chosen policy (summed by default); records with a missing user, item or value are
  dropped and counted in one :class:`DataWarning`.
* :func:`canonical_csr` -- a caller's sparse matrix as canonical CSR, stored zeros kept.

May import: numpy, scipy, :mod:`fastals._validation`, :mod:`fastals._typing` and the
modules of :mod:`fastals.data` below it (``_common``, ``ids``); nothing that imports a
compiled kernel.
"""
from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from fastals._typing import ArrayLike, DTypeLike, SparseMatrix
from fastals._validation import all_finite, as_csr, check_choice, check_dtype
from fastals.data._common import DataWarning, _pandas, _require_pandas
from fastals.data.ids import IdMapping, _factorize, _id_array, _missing_mask, _object_array

if TYPE_CHECKING:
    import pandas as pd

DUPLICATE_POLICIES = ("sum", "mean", "max", "min", "first", "last", "error")
_MISSING_TEXT = frozenset({"", "nan", "NaN", "NAN", "NA", "N/A", "n/a", "null", "NULL", "None"})


class _BadValue(ValueError):
    """A value that is not a number, at record `position` (kept for file/line messages)."""

    def __init__(self, message, value, position):
        super().__init__(message)
        self.value, self.position = value, position


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

    def __init__(self, user_items: SparseMatrix, users: IdMapping | None = None,
                 items: IdMapping | None = None, timestamps: ArrayLike | None = None,
                 item_info: Mapping[str, ArrayLike] | None = None,
                 user_info: Mapping[str, ArrayLike] | None = None) -> None:
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
    def shape(self) -> tuple[int, int]:
        return self.user_items.shape

    @property
    def nnz(self) -> int:
        return self.user_items.nnz

    @property
    def n_users(self) -> int:
        return self.user_items.shape[0]

    @property
    def n_items(self) -> int:
        return self.user_items.shape[1]

    def __repr__(self):
        extra = (", timestamps" if self.timestamps is not None else "") + (
            f", item_info {sorted(self.item_info)}" if self.item_info else "")
        return (f"Interactions({self.n_users} users x {self.n_items} items, "
                f"{self.nnz} stored values{extra})")

    def with_matrix(self, user_items: SparseMatrix, timestamps: ArrayLike | None = None
                    ) -> Interactions:
        """A new Interactions with the same ids and metadata and another matrix (same shape)."""
        if user_items.shape != self.shape:
            raise ValueError(f"user_items must have shape {self.shape}, got {user_items.shape}")
        return Interactions(user_items, self.users, self.items, timestamps, self.item_info,
                            self.user_info)

    def item_labels(self, indices: ArrayLike | None = None) -> np.ndarray:
        """Display names of items: the ``title`` or ``name`` metadata, else the ids as text."""
        return _labels(self.items, self.item_info, indices)

    @property
    def item_metadata(self) -> pd.DataFrame:
        """The item metadata as a DataFrame indexed by item id (needs pandas)."""
        return _info_frame(self.items, self.item_info, "item")

    @property
    def user_metadata(self) -> pd.DataFrame:
        """The user metadata as a DataFrame indexed by user id (needs pandas)."""
        return _info_frame(self.users, self.user_info, "user")

    def to_dataframe(self) -> pd.DataFrame:
        """One row per stored value: user, item, value (and timestamp) with the caller's ids."""
        pd = _require_pandas("Interactions.to_dataframe")
        coo = self.user_items.tocoo()
        frame = {"user": self.users.ids[coo.row], "item": self.items.ids[coo.col],
                 "value": coo.data}
        if self.timestamps is not None:
            frame["timestamp"] = self.timestamps
        return pd.DataFrame(frame)


def canonical_csr(matrix: SparseMatrix, name: str = "user_items") -> SparseMatrix:
    """`matrix` as a canonical CSR (sorted indices, duplicates summed), stored zeros kept.

    Checked and canonicalised by :func:`fastals._validation.as_csr` (the values keep their
    dtype). The caller's matrix itself is returned when it is canonical CSR already;
    otherwise a new CSR of the caller's kind (``csr_matrix`` or ``csr_array``), so nothing
    the caller holds is changed.
    """
    rows = as_csr(matrix, name, getattr(matrix, "dtype", None), check_values=False,
                  keep_zeros=True)
    if not all_finite(rows.data):
        raise ValueError(f"{name} contains NaN or infinite values")
    if matrix.format == "csr" and rows.indptr is matrix.indptr \
            and matrix.indices.shape[0] == matrix.data.shape[0] == rows.nnz \
            and (rows.nnz == 0 or np.may_share_memory(rows.indices, matrix.indices)
                 and np.may_share_memory(rows.data, matrix.data)):
        return matrix  # as_csr changed nothing: these are views of the caller's arrays
    if matrix.format == "csr":
        kind = type(matrix)
    else:
        kind = sp.csr_array if isinstance(matrix, getattr(sp, "sparray", ())) else sp.csr_matrix
    csr = kind((rows.data, rows.indices, rows.indptr), shape=rows.shape)
    csr.indices, csr.indptr = rows.indices, rows.indptr  # scipy would narrow int64 indices
    csr.has_canonical_format = True
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
def from_arrays(users: ArrayLike | Sequence[Hashable], items: ArrayLike | Sequence[Hashable],
                values: ArrayLike | None = None, timestamps: ArrayLike | None = None, *,
                duplicates: str = "sum", dtype: DTypeLike = np.float32,
                user_ids: IdMapping | None = None, item_ids: IdMapping | None = None,
                item_metadata: pd.DataFrame | None = None, item_key: Hashable | None = None,
                _where: Callable[[int], str] | None = None) -> Interactions:
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


def from_dataframe(df: pd.DataFrame, user_col: Hashable = "user", item_col: Hashable = "item",
                   value_col: Hashable | None = None, time_col: Hashable | None = None, *,
                   duplicates: str = "sum", dtype: DTypeLike = np.float32,
                   user_ids: IdMapping | None = None, item_ids: IdMapping | None = None,
                   item_metadata: pd.DataFrame | None = None, item_key: Hashable | None = None
                   ) -> Interactions:
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
