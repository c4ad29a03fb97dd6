"""Factor arrays aligned to cache lines.

numpy places large arrays 16 bytes past a page boundary, so a factor row of 64 float32
(256 bytes) spans 5 cache lines instead of 4: a quarter more memory traffic for every row
the kernels gather. Factor matrices are allocated here on 64-byte boundaries instead.

May import: numpy only (the bottom floor: every room may use it).
"""
import numpy as np

CACHE_LINE = 64


def aligned_empty(shape, dtype):
    """An uninitialised C-contiguous array whose data starts on a cache line."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + CACHE_LINE, dtype=np.uint8)
    offset = -raw.ctypes.data % CACHE_LINE
    return raw[offset:offset + nbytes].view(dtype).reshape(shape)


def aligned_zeros(shape, dtype):
    array = aligned_empty(shape, dtype)
    array.fill(0)
    return array


def aligned(array, dtype=None, copy=False):
    """`array` as a C-contiguous array of `dtype` on a cache line (a copy only if needed)."""
    array = np.asarray(array)
    dtype = array.dtype if dtype is None else np.dtype(dtype)
    if (not copy and array.dtype == dtype and array.flags.c_contiguous
            and array.ctypes.data % CACHE_LINE == 0):
        return array
    out = aligned_empty(array.shape, dtype)
    out[...] = array
    return out


def padded_width(width, dtype):
    """`width` rounded up to whole cache lines of `dtype`: the row length at which every row
    of a cache-line-aligned array starts on a line, and a vector load never straddles two."""
    per_line = max(1, CACHE_LINE // np.dtype(dtype).itemsize)
    return -(-width // per_line) * per_line


def unpad_in_place(array, width, chunk_bytes=1 << 22):
    """The first `width` columns of the C-contiguous 2-D `array`, moved to the front of its
    own memory: a C-contiguous (rows, width) view of the same buffer, so no fresh memory is
    touched (the rest of the buffer stays allocated behind the view). Overwrites `array`.
    Rows move a chunk at a time in increasing order; a chunk's destination never reaches a
    later chunk's rows (row r goes from offset r * full width to r * width)."""
    rows, full = array.shape
    if width == full:
        return array
    flat = array.reshape(-1)
    step = max(1, chunk_bytes // (full * array.itemsize))
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        flat[start * width:stop * width] = array[start:stop, :width].reshape(-1)  # a copy
    return flat[:rows * width].reshape(rows, width)
