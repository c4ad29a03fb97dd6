"""Reading what the ``fastals`` commands are given: DATA (``synthetic``, a data set folder or
a CSV/TSV file, with the ``--user-col``/``--sep``/... flags), the ``--weighting`` of the
training values, the model file to write (checked before fitting) or to load.

Imports: the standard library, :mod:`fastals.cli.console` (the errors), and inside the
functions ``fastals.data``, ``fastals.datasets`` and ``fastals.id_recommender``.
"""
from __future__ import annotations

import os
from pathlib import Path

from fastals.cli.console import CLIError, UsageError


_DATASET_MARKERS = (
    ("u.data", "movielens"),
    ("ratings.csv", "movielens"),
    ("usersha1-artmbid-artname-plays.tsv", "lastfm-360k"),
    ("user_artists.dat", "lastfm-2k"),
)


def _detect_dataset(path):
    """The loader name for a folder (or a data set's own file), or None."""
    p = Path(path)
    if p.is_file():
        for marker, name in _DATASET_MARKERS:
            if p.name == marker and (marker != "ratings.csv" or _movielens_header(p)):
                return name  # a file of one's own called ratings.csv is read as a plain CSV
        return None
    for marker, name in _DATASET_MARKERS:
        if (p / marker).exists():
            return name
    for sub in p.iterdir() if p.is_dir() else ():
        for marker, name in _DATASET_MARKERS:
            if sub.is_dir() and (sub / marker).exists():
                return name
    return None


def _movielens_header(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline().strip().startswith("userId,movieId,rating")
    except OSError:
        return False


def load_data(spec, args, kind="implicit"):
    """Interactions from a DATA argument: ``synthetic``, a data set folder, or a CSV/TSV file."""
    from fastals import datasets
    from fastals.data import read_csv

    if spec == "synthetic":
        return datasets.make_synthetic(kind=kind, random_state=getattr(args, "seed", 0) or 0)
    path = Path(spec)
    if not path.exists():
        raise CLIError(f"{spec}: no such file or folder")
    columns = [getattr(args, k, None) for k in ("user_col", "item_col", "value_col", "time_col")]
    detected = _detect_dataset(path)
    if detected is not None and not any(c is not None for c in columns):
        return datasets.load(detected, path)
    if path.is_dir():
        raise CLIError(f"{spec} is a folder without a known data set (MovieLens u.data or "
                       "ratings.csv, Last.fm usersha1-artmbid-artname-plays.tsv or "
                       "user_artists.dat): give a CSV/TSV file")
    header = "infer" if getattr(args, "header", None) is None else args.header
    return read_csv(path, *(_column(c) for c in columns), sep=getattr(args, "sep", None),
                    header=header, encoding=getattr(args, "encoding", "utf-8"),
                    duplicates=getattr(args, "duplicates", "sum"))


def _column(value):
    return int(value) if value is not None and value.isdigit() else value


def _weight(data, how, model=None, console=None):
    """`data` weighted by `how` (None: "auto", or the weighting that --params gave).

    A model with a ``weighting`` parameter (ImplicitALS) weighs the values itself: "auto",
    "none" and "log" are passed to it (with "auto" resolved here by the model's own rule,
    :func:`fastals.data.weighting.choose_weighting`, and the choice noted), and after
    "bm25"/"tfidf" it is told "none". For the other models "auto" means "none".
    """
    import inspect

    from fastals import data as fdata
    from fastals.data.weighting import choose_weighting

    takes = model is not None and "weighting" in inspect.signature(type(model)).parameters
    if how is None:
        how = model.weighting if takes else "none"
    if takes:
        if how in ("auto", "none", "log"):
            if how == "auto":
                choice = choose_weighting(data.user_items)
                if console is not None:
                    console.note(f"weighting auto: {choice.weighting} ({choice.reason}; "
                                 "--weighting none keeps the raw values)")
                how = choice.weighting
            model.weighting = how
            return data
        model.weighting = "none"  # weighted below, not once more by the model
    elif how == "auto":
        how = "none"
    if how in (None, "none"):
        return data
    if how == "log":
        return fdata.log_weight(data)
    if how == "bm25":
        return data.with_matrix(fdata.bm25_weight(data.user_items.T).T.tocsr(), data.timestamps)
    if how == "tfidf":
        return data.with_matrix(fdata.tfidf_weight(data.user_items.T).T.tocsr(), data.timestamps)
    raise UsageError(f"unknown weighting {how!r}")


def _describe(data):
    return (f"{data.n_users:,} users x {data.n_items:,} items, {data.nnz:,} interactions "
            f"({data.nnz / max(1, data.n_users * data.n_items):.2%} dense)")


def _check_output(path):
    """Fail before fitting when the model file cannot be written."""
    out = Path(path if str(path).endswith(".npz") else f"{path}.npz")
    if out.is_dir():
        raise CLIError(f"{out} is a folder: give a file name for the model")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise CLIError(f"{folder}: no such folder for the model file")
    if not os.access(folder, os.W_OK):
        raise CLIError(f"{folder}: not writable")
    return out



def _load_recommender(path):
    from fastals.id_recommender import IdRecommender

    p = Path(path)
    if not p.exists():
        raise CLIError(f"{path}: no such model file")
    if p.is_dir():
        raise CLIError(f"{path} is a folder, not a model file")
    return IdRecommender.load(p)
