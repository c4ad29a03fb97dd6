"""Writing files so that a crash never leaves a half-written one behind.

May import: the standard library only (the bottom floor: every room may use it).
"""
import contextlib
import os
import secrets


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
