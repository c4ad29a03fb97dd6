"""How the ``fastals`` command talks to its user: the exit codes, the two user-facing errors
(:class:`CLIError`, exit code 1; :class:`UsageError`, exit code 2), the :class:`Console` that
writes results to stdout and notes to stderr, and the small text-formatting helpers.

Imports: the standard library and numpy only (no other module of fastals).
"""
from __future__ import annotations

import math
import sys

import numpy as np

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class CLIError(Exception):
    """A user-facing error: printed as one line, exit code 1."""


class UsageError(CLIError):
    """A wrong command line: exit code 2."""


# --- output helpers ----------------------------------------------------------------------------
class Console:
    """Where the command writes: results to stdout, notes and progress to stderr."""

    def __init__(self, quiet):
        self.quiet = quiet
        self.progress = not quiet and sys.stderr.isatty()

    def out(self, text=""):
        print(text, flush=True)

    def note(self, text):
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)


def _one_line(text):
    return " ".join(str(text).split())


def _plain(value):
    """A JSON-able Python value from numpy scalars."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _table(header, rows, align=None):
    widths = [max(len(str(h)), *(len(str(r[k])) for r in rows)) if rows else len(str(h))
              for k, h in enumerate(header)]
    align = align or ["<"] + [">"] * (len(header) - 1)
    lines = ["  ".join(f"{str(h):{a}{w}}" for h, w, a in zip(header, widths, align))]
    lines += ["  ".join(f"{str(v):{a}{w}}" for v, w, a in zip(row, widths, align))
              for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _fmt(value, digits=4):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"
