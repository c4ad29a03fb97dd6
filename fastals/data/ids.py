"""The caller's ids and the indices models use: :class:`IdMapping` and factorising id columns.

Models work on rows and columns ``0..n-1``; real data names users and items with anything
hashable (sha1 strings, artist names, integer ids that do not start at 0). An
:class:`IdMapping` maps one way and back; :func:`_factorize` builds one from a column of
records.

May import: numpy, :mod:`fastals._validation`, :mod:`fastals._typing`,
:mod:`fastals.exceptions` and :mod:`fastals.data._common`; nothing that imports a compiled
kernel.
"""
from __future__ import annotations

import json
import numbers
import re
from collections.abc import Hashable, Sequence

import numpy as np

from fastals._typing import ArrayLike, CallerIds, Indices, Self
from fastals._validation import check_choice, check_ids
from fastals.data._common import _pandas
from fastals.exceptions import IdOutOfRangeError

_INT_TEXT = re.compile(r"-?(0|[1-9][0-9]{0,17})")


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

    # int ids: (sorted ids, their indices); other ids: a dict id -> index
    _sorted: tuple[np.ndarray, np.ndarray] | None
    _lookup: dict[Hashable, int] | None

    def __init__(self, ids: ArrayLike | Sequence[Hashable], name: str = "id") -> None:
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
            lookup: dict[Hashable, int] = {}
            for k, value in enumerate(arr.tolist()):
                if lookup.setdefault(value, k) != k:
                    raise ValueError(f"{name} ids are not unique: {value!r} repeats")
            self._sorted, self._lookup = None, lookup
        arr = arr.copy()  # never share (or freeze) the caller's array
        arr.setflags(write=False)
        self._ids = arr

    @classmethod
    def range(cls, n: int, name: str = "id") -> Self:
        """The identity mapping of ``n`` integer ids ``0..n-1``."""
        return cls(np.arange(n, dtype=np.int64), name=name)

    # --- basic protocol ---
    @property
    def ids(self) -> np.ndarray:
        """The ids in index order (read-only)."""
        return self._ids

    @property
    def kind(self) -> str:
        """``"int"`` for int64 ids, else ``"object"``."""
        return "int" if self._ids.dtype == np.int64 else "object"

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, ident: object) -> bool:
        return self._find(ident) >= 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMapping) and len(self) == len(other) and \
            self._ids.dtype == other._ids.dtype and bool(np.all(self._ids == other._ids))

    __hash__ = None  # type: ignore[assignment]  # unhashable, as it compares by value

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

    def index(self, ids: CallerIds, missing: str = "raise") -> int | np.ndarray:
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
        values = _id_array(list(ids) if not hasattr(ids, "__len__")  # type: ignore[arg-type]
                           else ids)
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

    def to_ids(self, indices: Indices) -> Hashable | np.ndarray:
        """The ids at `indices` (an int gives one id, an array an array of ids)."""
        if np.ndim(indices) == 0:
            idx, _ = check_ids(f"{self.name} index", indices, len(self))
            value = self._ids[int(idx[0])]
            return value.item() if isinstance(value, np.generic) else value
        idx, _ = check_ids(f"{self.name} indices", indices, len(self), allow_scalar=False)
        return self._ids[idx]

    def extend(self, new_ids: ArrayLike | Sequence[Hashable]) -> IdMapping:
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
