"""Input validation shared by every public entry point.

Kernels trust their inputs (bounds checks are off), so everything a user can pass is checked
here first. Errors name the argument and the offending value. Nothing passed in is modified:
when a conversion is needed, a copy is made, and the "fastals" logger says so at debug level
(`implicit` warns when fit converts a matrix to CSR; fastals converts any format quietly).

May import: numpy, scipy and :mod:`fastals.exceptions`; never a kernel or a model (every
room, the data room included, validates through it).
"""
from __future__ import annotations

import logging
import numbers
import operator

import numpy as np
import scipy.sparse as sp

from fastals.exceptions import IdOutOfRangeError

log = logging.getLogger("fastals")
FLOAT_DTYPES = (np.float32, np.float64)
_INT32_MAX = np.iinfo(np.int32).max
_INT64_MAX = np.iinfo(np.int64).max
#: the most OpenMP threads any entry point accepts: far beyond any machine's cores, and
#: low enough that the runtime can create them (100,000 threads crash the process)
MAX_THREADS = 1024
# index arrays are scanned this many entries at a time (bounded temporary memory)
_SCAN_STEP = 1 << 20


def check_int(name, value, minimum=None, maximum=None):
    """Return `value` as a Python int, or raise naming `name`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        try:  # integral floats such as 64.0 are accepted; 64.5 and "64" are not
            is_whole = isinstance(value, numbers.Real) and float(value).is_integer()
        except (OverflowError, ValueError):
            is_whole = False
        if isinstance(value, (bool, np.bool_)) or not is_whole:
            raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    value = operator.index(value) if isinstance(value, numbers.Integral) else int(value)
    if minimum is not None and value < minimum:
        what = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {what}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be an int <= {maximum}, got {value}")
    return value


def check_float(name, value, minimum=None, exclusive=False, maximum=None):
    """Return `value` as a finite Python float >= minimum (> if exclusive)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and (value < minimum or (exclusive and value == minimum)):
        raise ValueError(f"{name} must be {'>' if exclusive else '>='} {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return str(value)


def check_dtype(name, dtype):
    """Return np.float32 or np.float64."""
    try:
        resolved = np.dtype(dtype).type
    except TypeError:
        raise TypeError(f"{name} must be float32 or float64, got {dtype!r}") from None
    if resolved not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be float32 or float64, got {np.dtype(dtype).name}")
    return resolved


def check_num_threads(value):
    """0 means every core OpenMP sees; at most MAX_THREADS."""
    return check_int("num_threads", value, minimum=0, maximum=MAX_THREADS)


def check_random_state(value):
    """A numpy Generator from None, an int seed, a SeedSequence or a Generator."""
    if value is None or isinstance(value, (numbers.Integral, np.random.SeedSequence)):
        if isinstance(value, (bool, np.bool_)):
            raise TypeError(f"random_state must be None, an int or a numpy Generator, got {value!r}")
        if isinstance(value, numbers.Integral) and value < 0:
            raise ValueError(f"random_state must be a non-negative int, got {value}")
        return np.random.default_rng(value)
    if isinstance(value, np.random.Generator):
        return value
    if isinstance(value, np.random.RandomState):
        return np.random.default_rng(value.randint(0, 2**31 - 1))
    raise TypeError(f"random_state must be None, an int or a numpy Generator, got {value!r}")


class CSR:
    """A validated CSR block: the arrays the kernels read, in matching dtypes.

    `indptr` and `indices` share one integer dtype (int32 or int64); `data` has the
    model's float dtype. The arrays may be the caller's own (read-only use) or copies.
    """

    __slots__ = ("indptr", "indices", "data", "shape")

    def __init__(self, indptr, indices, data, shape):
        self.indptr, self.indices, self.data, self.shape = indptr, indices, data, shape

    @property
    def nnz(self):
        return int(self.indptr[-1])

    def to_scipy(self):
        return sp.csr_matrix((self.data, self.indices, self.indptr), shape=self.shape, copy=False)

    def rows(self, start, stop):
        """Rows [start, stop) as a CSR whose indptr starts at 0 (views, no copy of data)."""
        lo, hi = self.indptr[start], self.indptr[stop]
        return CSR(self.indptr[start:stop + 1] - lo, self.indices[lo:hi], self.data[lo:hi],
                   (stop - start, self.shape[1]))

    def transpose(self):
        """The CSR of the transpose (new arrays, canonical: scipy's CSR->CSC conversion
        emits sorted indices, and duplicates cannot arise)."""
        csc = self.to_scipy().tocsc()
        index_dtype = self.indices.dtype
        return CSR(csc.indptr.astype(index_dtype, copy=False),
                   csc.indices.astype(index_dtype, copy=False),
                   csc.data, (self.shape[1], self.shape[0]))


def all_finite(values):
    """True when no value is NaN or infinite, without a full-size temporary array.

    A float64 sum is finite exactly when every term is (for float32 data it cannot
    overflow); for float64 data a sum that overflows is rechecked exactly, in chunks.
    """
    values = np.asarray(values)
    if values.dtype.kind not in "fc":
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.sum(values, dtype=np.float64)):
            return True
    flat = values.reshape(-1)
    step = 1 << 20
    return all(np.isfinite(flat[i:i + step]).all() for i in range(0, flat.size, step))


def _index_array(name, part, values):
    """Raise unless `values` is a 1-D integer array (an index array of a sparse matrix)."""
    if not isinstance(values, np.ndarray) or values.ndim != 1 or values.dtype.kind not in "iu":
        what = getattr(values, "dtype", type(values).__name__)
        raise ValueError(f"{name} has an invalid {part} array (it must be a 1-D array of "
                         f"integers, got {what} with shape {np.shape(values)})")


def _check_bounds(name, what, values, upper):
    """Raise unless every value lies in [0, upper), scanning in bounded chunks."""
    for lo in range(0, values.shape[0], _SCAN_STEP):
        chunk = values[lo:lo + _SCAN_STEP]
        if chunk.min() < 0 or chunk.max() >= upper:
            bad = chunk[(chunk < 0) | (chunk >= upper)][0]
            raise ValueError(f"{name} has {what} out of bounds: {int(bad)} is not in "
                             f"[0, {upper})")


def _check_compressed(name, indptr, indices, data, n_major, n_minor, what, check_indices,
                      kind="CSR"):
    """The structure of a compressed (CSR/CSC/BSR) matrix, before any C code reads it."""
    _index_array(name, "indptr", indptr)
    _index_array(name, "indices", indices)
    if not isinstance(data, np.ndarray) or data.ndim != 1:
        raise ValueError(f"{name} has an invalid data array (it must be 1-D, got shape "
                         f"{np.shape(data)})")
    if indptr.shape[0] != n_major + 1:
        raise ValueError(f"{name} has an inconsistent {kind} structure (indptr): indptr has "
                         f"{indptr.shape[0]} entries for {n_major} {what}, expected "
                         f"{n_major + 1}")
    if indptr[0] != 0 or indptr[-1] > indices.shape[0] or indptr[-1] > data.shape[0]:
        raise ValueError(f"{name} has an inconsistent {kind} structure (indptr): it must start "
                         f"at 0 and end at most at the {min(indices.shape[0], data.shape[0])} "
                         f"stored values, got {int(indptr[0])} .. {int(indptr[-1])}")
    for lo in range(0, indptr.shape[0], _SCAN_STEP):
        if np.any(np.diff(indptr[lo:lo + _SCAN_STEP + 1]) < 0):
            raise ValueError(f"{name} has an inconsistent {kind} structure (indptr): it "
                             "decreases (indptr must be non-decreasing)")
    nnz = int(indptr[-1])
    if check_indices and nnz:
        _check_bounds(name, "row indices" if what == "columns" else "column indices",
                      indices[:nnz], n_minor)


def check_sparse(matrix, name, check_indices=True):
    """Raise unless `matrix` is a 2-D scipy sparse matrix whose internal arrays agree with
    each other and with its shape.

    scipy trusts these arrays (its conversions and indexing run C code over them, without
    bounds checks), and a hand-built matrix can break them, so this runs before anything
    else touches the matrix. Costs one pass over the index arrays (with
    ``check_indices=False``, over indptr only: the column indices of a CSR are then checked
    later, on the rows that are used).
    """
    if not sp.issparse(matrix):
        raise _sparse_type_error(name, matrix)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got {matrix.ndim}-D")
    n_rows, n_cols = matrix.shape
    if n_rows < 0 or n_cols < 0:
        raise ValueError(f"{name} has an invalid shape {matrix.shape}")
    fmt = matrix.format
    if fmt == "csr":
        _check_compressed(name, matrix.indptr, matrix.indices, matrix.data, n_rows, n_cols,
                          "rows", check_indices)
    elif fmt == "csc":
        _check_compressed(name, matrix.indptr, matrix.indices, matrix.data, n_cols, n_rows,
                          "columns", True, "CSC")
    elif fmt == "bsr":
        R, C = matrix.blocksize
        data = matrix.data
        if R <= 0 or C <= 0 or n_rows % R or n_cols % C or not isinstance(data, np.ndarray) \
                or data.ndim != 3 or data.shape[1:] != (R, C):
            raise ValueError(f"{name} has an inconsistent BSR structure (blocks)")
        _check_compressed(name, matrix.indptr, matrix.indices, data[:, 0, 0], n_rows // R,
                          n_cols // C, "block rows", True, "BSR")
    elif fmt == "coo":
        coords = matrix.coords if hasattr(matrix, "coords") else (matrix.row, matrix.col)
        if len(coords) != 2:
            raise ValueError(f"{name} must be 2-D, got {len(coords)}-D coordinates")
        for part, values, upper in (("row", coords[0], n_rows), ("col", coords[1], n_cols)):
            _index_array(name, part, values)
            if values.shape != np.shape(matrix.data):
                raise ValueError(f"{name} has {values.shape[0]} {part} coordinates for "
                                 f"{np.shape(matrix.data)} values")
            if values.size:
                _check_bounds(name, f"{'column' if part == 'col' else part} coordinates", values,
                              upper)
    elif fmt == "dia":
        data, offsets = matrix.data, matrix.offsets
        if not isinstance(data, np.ndarray) or data.ndim != 2 or np.ndim(offsets) != 1 \
                or len(offsets) != data.shape[0] or np.asarray(offsets).dtype.kind not in "iu":
            raise ValueError(f"{name} has an inconsistent DIA structure (data / offsets)")
    # dok and lil are Python containers: their conversions check as they go


def is_canonical(indptr, indices, nnz):
    """True when the column indices strictly increase within every row (sorted, no
    duplicates). Computed from the arrays (scipy's cached flag can be stale or set by hand)."""
    for lo in range(0, nnz, _SCAN_STEP):
        chunk = indices[lo:min(lo + _SCAN_STEP + 1, nnz)]
        # positions p where indices[p] <= indices[p - 1] must be the first of a row
        falls = np.flatnonzero(chunk[1:] <= chunk[:-1]) + (lo + 1)
        if falls.size:
            at = np.minimum(np.searchsorted(indptr, falls), indptr.shape[0] - 1)
            if np.any(indptr[at] != falls):
                return False
    return True


def take_rows(matrix, ids, name):
    """Rows `ids` (validated, in range) of a caller's sparse matrix, as a new scipy CSR.

    The matrix's structure is checked first, so scipy's row indexing only reads inside
    its arrays; a CSR input costs O(rows) here (its column indices are checked when the
    rows taken are validated).
    """
    check_sparse(matrix, name, check_indices=False)
    csr = matrix if matrix.format == "csr" else matrix.tocsr()
    if csr is not matrix:
        log.debug("%s: converted the %s x %s %s matrix to CSR to take %d of its rows", name,
                  *matrix.shape, matrix.format.upper(), len(ids))
        check_sparse(csr, name)
    return csr[ids]


def _sparse_type_error(name, matrix):
    if isinstance(matrix, np.ndarray) or hasattr(matrix, "__array__"):
        return TypeError(
            f"{name} must be a scipy sparse matrix or array, got a dense "
            f"{type(matrix).__name__}; wrap it with scipy.sparse.csr_matrix(...)")
    return TypeError(f"{name} must be a scipy sparse matrix or array, got {type(matrix).__name__}")


def as_csr(matrix, name, dtype, check_values=True, allow_empty=True, shape=None,
           keep_zeros=False, sum_duplicates=True):
    """Validate a scipy sparse input and return it as a canonical :class:`CSR`.

    Canonical means: sorted column indices, duplicates summed, stored zeros removed, values
    in `dtype`, finite. Any format (COO, CSC, DOK, LIL, ...) and numeric dtype is accepted;
    the caller's matrix is never modified (a copy is made whenever anything must change).

    For explicit ratings, where every stored entry is an observation: ``keep_zeros=True``
    keeps stored zeros (a rating of 0), and ``sum_duplicates=False`` raises on a (row,
    column) pair stored twice instead of adding the two values.
    """
    check_sparse(matrix, name)
    if shape is not None:
        for axis, (want, got) in enumerate(zip(shape, matrix.shape)):
            if want is not None and want != got:
                what = "rows" if axis == 0 else "columns"
                raise ValueError(f"{name} must have {want} {what}, got {got} "
                                 f"(shape {matrix.shape})")
    kind = matrix.dtype.kind
    if kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {matrix.dtype}")
    if not allow_empty and (matrix.shape[0] == 0 or matrix.shape[1] == 0 or matrix.nnz == 0):
        raise ValueError(f"{name} is empty (shape {matrix.shape}, {matrix.nnz} stored values)")

    csr = matrix if matrix.format == "csr" else matrix.tocsr()
    owned = csr is not matrix
    if owned:
        check_sparse(csr, name)  # what scipy's conversion made of it
    if not sum_duplicates and matrix.format == "coo" and csr.nnz != matrix.nnz:
        raise _duplicates_error(name, matrix)  # COO -> CSR has already summed them
    n_rows, n_cols = csr.shape
    indptr, indices = csr.indptr, csr.indices
    nnz = int(indptr[-1])
    data = csr.data[:nnz]
    if check_values and kind == "f" and not all_finite(data):
        bad = np.flatnonzero(~np.isfinite(data))[0]
        row = int(np.searchsorted(indptr, bad, side="right") - 1)
        raise ValueError(f"{name} contains NaN or infinite values (first at row {row}, "
                         f"column {int(indices[bad])}: {data[bad]})")
    canonicalised = False
    if not is_canonical(indptr, indices, nnz) or \
            (not keep_zeros and np.count_nonzero(data) != nnz):
        canonicalised = True
        csr = csr.copy() if not owned else csr
        owned = True
        csr.has_sorted_indices = False  # scipy trusts these flags: make it look
        csr.has_canonical_format = False
        stored = csr.nnz
        csr.sum_duplicates()
        if not sum_duplicates and csr.nnz != stored:
            raise _duplicates_error(name, matrix)
        if not keep_zeros:
            csr.eliminate_zeros()
    index_dtype = np.int32 if max(csr.nnz, n_rows, n_cols) <= _INT32_MAX else np.int64
    if csr.indices.dtype in (np.int32, np.int64) and csr.indptr.dtype == csr.indices.dtype:
        index_dtype = csr.indices.dtype.type
    nnz = csr.nnz
    indptr = np.ascontiguousarray(csr.indptr, dtype=index_dtype)
    indices = np.ascontiguousarray(csr.indices[:nnz], dtype=index_dtype)
    if not allow_empty and nnz == 0:
        raise ValueError(f"{name} is empty: its {matrix.nnz} stored values are all zero (or "
                         "cancel out when repeated entries are summed)")
    with np.errstate(over="ignore"):  # overflow is reported just below
        data = np.ascontiguousarray(csr.data[:nnz], dtype=dtype)
    if check_values and not all_finite(data):
        raise ValueError(f"{name} has values too large for {np.dtype(dtype).name} "
                         f"(they overflow to infinity)")
    if log.isEnabledFor(logging.DEBUG):
        _log_conversion(name, matrix, data.dtype, indices.dtype, canonicalised)
    return CSR(indptr, indices, data, (n_rows, n_cols))


def _log_conversion(name, matrix, dtype, index_dtype, canonicalised):
    """Say at debug level what as_csr converted (nothing when the input was used as is)."""
    given = getattr(matrix, "indices", getattr(matrix, "col", None))
    given_index = None if given is None else given.dtype
    if matrix.format == "csr" and matrix.dtype == dtype and given_index == index_dtype \
            and not canonicalised:
        return
    done = " (indices sorted, duplicates summed, stored zeros removed)" if canonicalised else ""
    log.debug("%s: converted the %s x %s %s matrix of %s%s to CSR of %s with %s indices%s",
              name, *matrix.shape, matrix.format.upper(), matrix.dtype,
              "" if given_index is None else f" with {given_index} indices", np.dtype(dtype),
              index_dtype, done)


def as_ratings(ratings, name, dtype, allow_empty=False, shape=None):
    """Validated CSR of explicit ratings: every stored entry is a rating (stored zeros are
    kept), a (row, column) pair stored twice is an error, all values finite."""
    return as_csr(ratings, name, dtype, allow_empty=allow_empty, shape=shape, keep_zeros=True,
                  sum_duplicates=False)


def _duplicates_error(name, matrix):
    coo = matrix.tocoo()
    keys = np.sort(coo.row.astype(np.int64) * matrix.shape[1] + coo.col)
    repeated = keys[1:][keys[1:] == keys[:-1]]
    row, col = divmod(int(repeated[0]), matrix.shape[1]) if repeated.size else (-1, -1)
    return ValueError(f"{name} stores {len(repeated)} duplicate entries (first: row {row}, "
                      f"column {col}); each (row, column) must be stored once here: "
                      "aggregate them first (e.g. keep the latest or the mean)")


def check_ids(name, ids, upper, allow_scalar=True):
    """Validate ids in [0, upper); return (int64 array, was_scalar).

    Accepts an int (numpy integers included) or a 1-D array-like of them; whole floats
    (3.0) are accepted as ids, bools, fractions, NaN, text and None are not.
    """
    try:
        arr = np.asarray(ids)
    except (TypeError, ValueError) as exc:  # ragged nesting, objects numpy cannot hold
        raise TypeError(f"{name} must be an id or a 1-D array of ids ({exc})") from None
    scalar = arr.ndim == 0
    if scalar and not allow_scalar:
        raise ValueError(f"{name} must be an array of ids, got a scalar")
    if arr.dtype == object or arr.dtype.kind not in "iu":
        whole = arr.dtype.kind == "f" and np.all(np.isfinite(arr)) \
            and np.all(arr == np.round(arr)) and np.all(np.abs(arr) < 2.0 ** 63)
        if not whole:
            kind = {"U": "text", "S": "bytes", "b": "bool", "O": "object"}.get(
                arr.dtype.kind, arr.dtype.name)
            raise TypeError(f"{name} must be integer ids, got {kind} values ({ids!r:.80})")
        arr = arr.astype(np.int64)
    if arr.ndim > 1:
        raise ValueError(f"{name} must be an id or a 1-D array of ids, got shape {arr.shape}")
    known = f"the model knows ids 0..{upper - 1}" if upper < _INT64_MAX \
        else "ids must be >= 0"
    if arr.dtype.kind == "u" and arr.size and arr.max() > _INT64_MAX:
        raise IdOutOfRangeError(f"{name} {int(arr.max())} is out of range: {known}")
    arr = arr.astype(np.int64, copy=False).reshape(-1)
    if arr.size and (arr.min() < 0 or arr.max() >= upper):
        bad = arr[(arr < 0) | (arr >= upper)][0]
        raise IdOutOfRangeError(f"{name} {int(bad)} is out of range: {known}")
    return arr, scalar
