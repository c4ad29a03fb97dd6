"""Reading interaction records from CSV / TSV files: :func:`read_csv` and its helpers.

Columns are found by name or position (or guessed from common header names), the separator
from the extension or the first line; ``.gz``, ``.bz2`` and ``.xz`` files are read as text.
With pandas the columns are parsed natively (fast); without it, with the standard ``csv``
module. Errors name the file, and the line or column at fault.

May import: numpy, the standard library, :mod:`fastals._typing`, :mod:`fastals.data._common`,
``ids`` and ``interactions``; nothing that imports a compiled kernel.
"""
from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import numbers
import os
import re
from pathlib import Path

import numpy as np

from fastals._typing import DTypeLike, PathLike
from fastals.data._common import _pandas
from fastals.data.ids import _INT_TEXT, IdMapping, _missing_mask
from fastals.data.interactions import Interactions, _BadValue, _numeric_column, _time_column, \
    from_arrays

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


def read_csv(path: PathLike, user_col: str | int | None = None, item_col: str | int | None = None,
             value_col: str | int | None = None, time_col: str | int | None = None, *,
             sep: str | None = None, header: bool | str = "infer", encoding: str = "utf-8",
             quoting: bool = True, duplicates: str = "sum", dtype: DTypeLike = np.float32,
             user_ids: IdMapping | None = None, item_ids: IdMapping | None = None
             ) -> Interactions:
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
