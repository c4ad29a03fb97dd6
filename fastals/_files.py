"""Model files: where a save writes and a load reads, and atomic writes to paths.

A model file is an ``.npz`` archive; save and load take a path or an open binary file object
(as numpy.savez / numpy.load and `implicit` do). Writing to a path goes through a temporary
file beside it, so that a crash never leaves a half-written file behind.

May import: the standard library and numpy.
"""
import contextlib
import io
import os
import secrets

import numpy as np


def file_path(path):
    """`path` (str, bytes or os.PathLike) as a str, or a TypeError naming it."""
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"path must be a str, os.PathLike or an open binary file object, got "
                        f"{type(path).__name__}") from None
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    return path


def is_file_object(value, method):
    """Whether `value` is an open file object (it has a callable `method`, "read" or
    "write"), as opposed to a path."""
    return not isinstance(value, (str, bytes, os.PathLike)) and \
        callable(getattr(value, method, None))


def describe(file):
    """How error messages name a path or a file object."""
    if isinstance(file, str):
        return file
    name = getattr(file, "name", None)
    return f"the file object {name!r}" if isinstance(name, str) else \
        f"the {type(file).__name__} object"


def _check_binary(file):
    mode = getattr(file, "mode", None)
    if isinstance(file, io.TextIOBase) or (isinstance(mode, str) and "b" not in mode):
        raise TypeError(f"a model file must be opened in binary mode ('rb' or 'wb'), got "
                        f"{describe(file)} opened in text mode")


def save_path(file):
    """Where a save writes: the binary file object itself, or the path as a str with
    ``.npz`` appended if missing (as numpy.savez does)."""
    if is_file_object(file, "write"):
        _check_binary(file)
        return file
    path = file_path(file)
    return path if path.endswith(".npz") else path + ".npz"


def load_path(file):
    """Where a load reads: a binary file object (a seekable one: a stream that cannot seek
    is read into memory first, as the zip's directory is at its end), or the path as a str;
    a path without ``.npz`` that does not exist means the file a save of it wrote, with
    ``.npz`` appended (`implicit` always appends it)."""
    if is_file_object(file, "read"):
        _check_binary(file)
        seekable = getattr(file, "seekable", None)
        if callable(seekable) and not seekable():
            return io.BytesIO(file.read())
        return file
    path = file_path(file)
    if not path.endswith(".npz") and not os.path.exists(path):
        return path + ".npz"
    return path


def write_npz(file, arrays):
    """Write `arrays` (name -> array) with numpy.savez to `file`, a path from
    :func:`save_path` (atomically) or a binary file object (at its current position; it is
    left open). Returns `file`."""
    if not isinstance(file, str):
        np.savez(file, **arrays)
        return file
    with atomic_path(file) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return file


@contextlib.contextmanager
def atomic_path(path, suffix=".npz"):
    """Yield a temporary path beside `path`; on success it is flushed to disk and renamed to
    `path`, on any error (or interrupt) it is removed and `path` is left as it was.

    The temporary file is created with the permissions an ordinary ``open(path, "w")``
    would give (0o666 less the umask), so the renamed file is readable as users expect.
    """
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path}: the folder {folder} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot write {path}: it is a folder")
    tmp = _create_temporary(folder, suffix)
    try:
        yield tmp
        _flush_to_disk(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _flush_to_disk(folder)  # the rename itself


def _create_temporary(folder, suffix):
    """A new empty file in `folder` with a random name (O_EXCL: never an existing file)."""
    while True:
        tmp = os.path.join(folder, f".fastals-{secrets.token_hex(8)}{suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


def _flush_to_disk(path):
    """fsync a file or folder, where the platform allows it (not folders on Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
