"""How a kernel's failure reaches the user: the one function from a status to an exception.

Every kernel that can fail returns a :class:`Status` for the whole call, or fills one per row
of an int8 array (the codes are declared once, in ``_status.pxd``, and exported by the
compiled ``fastals._kernels._status``). :func:`raise_for_status` is the only place a status
becomes an exception; the caller adds what only it knows: which kernel ran, what its rows
are, where they start, and what the user should change.

Part of the kernel room (its Python side); imports numpy, fastals.exceptions and the
compiled ``_status`` only.
"""
from __future__ import annotations

import numpy as np

from fastals._kernels._status import Status
from fastals.exceptions import ModelFitError

#: The exception each failing status is raised as, in the order a per-row array is searched:
#: a machine problem before a data problem, an overflow before the failed factorisation it
#: may also cause.
EXCEPTIONS = {
    Status.OUT_OF_MEMORY: MemoryError,
    Status.OVERFLOW: ModelFitError,
    Status.NOT_POSITIVE_DEFINITE: ModelFitError,
    Status.INDEX_OUT_OF_RANGE: ValueError,
}

# What each status says. `of` is " of 3 user(s)" for a per-row status, `at` " (user 7)" and
# `first` " (first: user 7)" (both name its first failing row), all "" for a whole call.
_FACTS = {
    Status.OUT_OF_MEMORY: "{kernel} could not allocate scratch memory{at}",
    Status.OVERFLOW: "the normal equations{of} overflow {dtype}{first}",
    Status.NOT_POSITIVE_DEFINITE: "the normal equations{of} are not positive definite{first}",
    Status.INDEX_OUT_OF_RANGE: "{kernel} met an index out of range{at}",
}


def raise_for_status(status, kernel, side="row", offset=0, hint="", dtype=None, message=None):
    """Raise the exception a kernel's status stands for; return quietly if it is all OK.

    Parameters
    ----------
    status : Status or int, or ndarray of int8
        What the kernel returned, or the per-row statuses it filled in.
    kernel : str
        The kernel, as the messages name it ("the ALS kernel", "the top-N kernel").
    side, offset : str, int
        For a per-row status: what its rows are ("user", "item", "row") and the number of
        ``status[0]`` among them (a block of rows starts at its offset). The message counts
        the rows with the failing status and names the first; a ModelFitError carries that
        row number as ``.row``.
    hint : str or dict
        The caller's advice (what to change), appended to the message as given (so it starts
        with its own separator, e.g. ``": raise regularization"``); a dict gives one per status.
    dtype : numpy dtype, optional
        The float dtype, named by an OVERFLOW ("overflow float32").
    message : str, optional
        The whole message instead of the status's own words, when the caller can say more
        (which index, which range).
    """
    codes = np.asarray(status)
    if not codes.any():
        return
    per_row = codes.ndim > 0
    for code, exception in EXCEPTIONS.items():
        if per_row:
            rows = np.flatnonzero(codes == code)
            if not rows.size:
                continue
            first = int(rows[0]) + offset
            where = dict(of=f" of {rows.size} {side}(s)", at=f" ({side} {first})",
                         first=f" (first: {side} {first})")
        elif codes == code:
            first, where = None, dict(of="", at="", first="")
        else:
            continue
        if message is None:
            name = np.dtype(dtype).name if dtype is not None else "the dtype"
            message = _FACTS[code].format(kernel=kernel, dtype=name, **where) + (
                hint.get(code, "") if isinstance(hint, dict) else hint)
        error = exception(message)
        if first is not None and issubclass(exception, ModelFitError):
            error.row = first  # the failing row, for callers that name rows differently
        raise error
    raise RuntimeError(f"{kernel} returned an unknown status {codes.max()} (a fastals bug)")


__all__ = ["EXCEPTIONS", "Status", "raise_for_status"]
