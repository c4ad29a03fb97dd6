"""Data sets: generated ones (deterministic from a seed) and readers of local copies.

Nothing here downloads: real data sets are read from a path the caller gives (or the folder
named by the ``FASTALS_DATA`` environment variable). The readers return
:class:`fastals.data.Interactions` (matrix, caller's ids, timestamps, item metadata):

=========================  ================================================  ==============
loader                     files                                             values
=========================  ================================================  ==============
:func:`load_movielens`     ``u.data`` + ``u.item`` (100K, latin-1), or       stars 0.5-5
                           ``ratings.csv`` + ``movies.csv`` (latest, 20M,
                           25M)
:func:`load_lastfm_360k`   ``usersha1-artmbid-artname-plays.tsv``            play counts
:func:`load_lastfm_hetrec` ``user_artists.dat`` + ``artists.dat`` (2K)       play counts
:func:`make_synthetic`     generated: planted tastes over named item         plays or stars
                           groups, power-law popularity
=========================  ================================================  ==============

This room sits above the models' floor but uses none of them. May import: numpy, scipy,
:mod:`fastals._validation` and :mod:`fastals.data`; never a kernel (importing it loads none).
"""
from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastals._typing import DTypeLike, PathLike, SeedLike
from fastals._validation import check_choice, check_dtype, check_float, check_int, \
    check_random_state
from fastals.data import DataWarning, IdMapping, Interactions, _open_text, read_csv

#: public data set sizes, for synthetic matrices of the same shape
SIZES = {
    "lastfm-360k": (358_868, 292_385, 17_500_000),
    "movielens-20m": (138_493, 26_744, 20_000_000),
    "bench-4m": (100_000, 50_000, 4_000_000),
}


def synthetic_interactions(n_users: int, n_items: int, nnz: int, random_state: SeedLike = 0,
                           item_exponent: float = 1.0, user_sigma: float = 1.0,
                           dtype: DTypeLike = np.float32) -> sp.csr_matrix:
    """A users x items CSR matrix of play counts with power-law popularity.

    Item popularity follows Zipf's law, P(item of rank k) ~ 1 / (k + 10)^item_exponent;
    user activity is log-normal (sigma `user_sigma`), as in Last.fm and MovieLens. About
    `nnz` distinct (user, item) pairs are drawn (duplicates merge, so slightly fewer
    remain); values are 1 + geometric play counts. The same arguments always give the same
    matrix. Item and user ids are shuffled so that popularity is not sorted by id.
    """
    n_users = check_int("n_users", n_users, minimum=1)
    n_items = check_int("n_items", n_items, minimum=1)
    nnz = check_int("nnz", nnz, minimum=1, maximum=n_users * n_items)
    check_float("item_exponent", item_exponent, minimum=0)
    check_float("user_sigma", user_sigma, minimum=0)
    dtype = check_dtype("dtype", dtype)
    rng = check_random_state(random_state)
    item_weights = 1.0 / (np.arange(n_items) + 10.0) ** item_exponent
    item_cdf = np.cumsum(item_weights / item_weights.sum())
    user_weights = rng.lognormal(0.0, user_sigma, n_users)
    user_cdf = np.cumsum(user_weights / user_weights.sum())
    item_perm = rng.permutation(n_items)
    draws = int(nnz * 1.08) + 16
    users = np.minimum(np.searchsorted(user_cdf, rng.random(draws)), n_users - 1)
    items = item_perm[np.minimum(np.searchsorted(item_cdf, rng.random(draws)), n_items - 1)]
    keys = np.unique(users.astype(np.int64) * n_items + items)
    if len(keys) > nnz:
        keys = np.sort(rng.choice(keys, nnz, replace=False))
    rows, cols = np.divmod(keys, n_items)
    values = (1 + rng.geometric(0.3, len(keys))).astype(dtype)
    return sp.csr_matrix((values, cols.astype(np.int32), np.concatenate(
        [[0], np.cumsum(np.bincount(rows, minlength=n_users))]).astype(np.int32)),
        shape=(n_users, n_items))


def data_home(path: PathLike | None = None) -> Path:
    """The folder holding local data sets: `path`, else $FASTALS_DATA."""
    if path is not None:
        return Path(path)
    env = os.environ.get("FASTALS_DATA")
    if env:
        return Path(env)
    raise FileNotFoundError("no data folder given: pass a path or set FASTALS_DATA")


def load_movielens_100k(path: PathLike | None = None) -> tuple[sp.csr_matrix, np.ndarray]:
    """MovieLens 100K ratings as a users x items CSR (ids shifted to start at 0).

    `path` is the ``ml-100k`` folder (or its parent). Returns (ratings, titles) where
    ratings holds the 1-5 stars and titles[i] is the title of item i (from latin-1 u.item).
    """
    folder = data_home(path)
    if not (folder / "u.data").exists() and (folder / "ml-100k" / "u.data").exists():
        folder = folder / "ml-100k"
    ratings_file = folder / "u.data"
    if not ratings_file.exists():
        raise FileNotFoundError(f"{ratings_file} not found (expected the ml-100k folder)")
    raw = np.loadtxt(ratings_file, dtype=np.int64, delimiter="\t")
    users, items, stars = raw[:, 0] - 1, raw[:, 1] - 1, raw[:, 2].astype(np.float32)
    shape = (int(users.max()) + 1, int(items.max()) + 1)
    ratings = sp.csr_matrix((stars, (users, items)), shape=shape)
    titles = np.array([f"item {i + 1}" for i in range(shape[1])], dtype=object)
    item_file = folder / "u.item"
    if item_file.exists():
        with open(item_file, encoding="latin-1") as f:
            for line in f:
                fields = line.split("|")
                if len(fields) > 1 and fields[0].isdigit() and int(fields[0]) <= shape[1]:
                    titles[int(fields[0]) - 1] = fields[1]
    return ratings, titles


# --- readers returning Interactions ---------------------------------------------------------
_MOVIELENS_FOLDERS = ("ml-100k", "ml-latest-small", "ml-latest", "ml-25m", "ml-20m")


def _find_folder(path, marker, subfolders):
    """The folder holding `marker`: `path` itself, one of `subfolders` in it, or the file's
    folder when `path` is the marker file."""
    folder = data_home(path)
    if folder.is_file() and folder.name == marker:
        return folder.parent
    if (folder / marker).exists():
        return folder
    for sub in subfolders:
        if (folder / sub / marker).exists():
            return folder / sub
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: no such folder")
    raise FileNotFoundError(f"{folder} holds no {marker} (nor do its subfolders "
                            f"{', '.join(subfolders)})")


def _metadata_rows(path, sep, encoding, header, quoting=True):
    """Rows of a small metadata file as lists of fields (via the csv module)."""
    with _open_text(path, encoding) as f:
        reader = csv.reader(f, delimiter=sep,
                            quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE)
        try:
            rows = [row for row in reader if row]
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: {exc}") from None
    return rows[1:] if header else rows


def _attach_metadata(data, keys, columns, path):
    """Align metadata columns (lists parallel to `keys`) with the items of `data`."""
    key_ids = []
    for k in keys:
        try:
            key_ids.append(int(k))
        except ValueError:
            key_ids.append(k)
    position = np.full(data.n_items, -1, dtype=np.int64)
    index = data.items.index(key_ids, missing="ignore") if key_ids else np.zeros(0, np.int64)
    found = index >= 0
    position[index[found]] = np.flatnonzero(found)
    for name, values in columns.items():
        out = np.empty(data.n_items, dtype=object)
        have = position >= 0
        source = np.empty(len(values), dtype=object)
        source[:] = values
        out[have] = source[position[have]]
        data.item_info[name] = out
    absent = int((position < 0).sum())
    if absent:
        warnings.warn(f"{path}: {absent} items have no metadata", DataWarning, stacklevel=3)
    return data


def load_movielens(path: PathLike | None = None, dtype: DTypeLike = np.float32) -> Interactions:
    """MovieLens ratings (100K, latest, latest-small, 20M or 25M) from a local folder.

    `path` is the unpacked folder (``ml-100k``, ``ml-latest-small``, ``ml-20m``, ...) or its
    parent; the variant is recognised from the files: ``u.data`` (+ latin-1 ``u.item`` for
    titles, release dates and genres) or ``ratings.csv`` (+ ``movies.csv`` for titles and
    genres). Returns :class:`~fastals.data.Interactions` of users x movies with the stars as
    values, the caller's ids being MovieLens' own ``userId`` / ``movieId``; the rating times
    are kept as timestamps and the metadata in ``item_info`` (``title``, ``genres``).
    """
    folder = data_home(path)
    if (folder / "u.data").exists() or (folder / "ml-100k" / "u.data").exists() or \
            folder.name == "u.data":
        return _load_movielens_100k(_find_folder(folder, "u.data", ("ml-100k",)), dtype)
    folder = _find_folder(folder, "ratings.csv", _MOVIELENS_FOLDERS)
    data = read_csv(folder / "ratings.csv", "userId", "movieId", "rating", "timestamp",
                    sep=",", header=True, dtype=dtype)
    movies = folder / "movies.csv"
    if movies.exists():
        rows = _metadata_rows(movies, ",", "utf-8", header=True)
        _attach_metadata(data, [r[0] for r in rows],
                         {"title": [r[1] if len(r) > 1 else None for r in rows],
                          "genres": [r[2] if len(r) > 2 else None for r in rows]}, movies)
    return data


def _load_movielens_100k(folder, dtype):
    data = read_csv(folder / "u.data", 0, 1, 2, 3, sep="\t", header=False, dtype=dtype)
    item_file = folder / "u.item"
    if item_file.exists():
        genre_names = []
        if (folder / "u.genre").exists():
            genre_names = [r[0] for r in _metadata_rows(folder / "u.genre", "|", "latin-1",
                                                        header=False, quoting=False)]
        rows = _metadata_rows(item_file, "|", "latin-1", header=False, quoting=False)
        genres = []
        for r in rows:
            flags = r[5:]
            names = [genre_names[k] if k < len(genre_names) else f"genre {k}"
                     for k, flag in enumerate(flags) if flag.strip() == "1"]
            genres.append("|".join(names))
        _attach_metadata(data, [r[0] for r in rows],
                         {"title": [r[1] if len(r) > 1 else None for r in rows],
                          "release_date": [r[2] if len(r) > 2 else None for r in rows],
                          "genres": genres}, item_file)
    return data


def load_lastfm_360k(path: PathLike | None = None, dtype: DTypeLike = np.float32
                     ) -> Interactions:
    """Last.fm 360K play counts from ``usersha1-artmbid-artname-plays.tsv``.

    `path` is the ``lastfm-dataset-360K`` folder (or its parent, or the file). Items are
    identified by artist name (as in `implicit`: many artists lack a MusicBrainz id); plays
    of one user for the same name are summed, and rows without an artist name are dropped
    (counted in a :class:`~fastals.data.DataWarning`). The file has stray quotes, so
    quoting is off. About 17.5M rows: expect tens of seconds and a few GB of memory.
    """
    name = "usersha1-artmbid-artname-plays.tsv"
    folder = _find_folder(path, name, ("lastfm-dataset-360K",))
    return read_csv(folder / name, 0, 2, 3, sep="\t", header=False, quoting=False,
                    dtype=dtype)


def load_lastfm_hetrec(path: PathLike | None = None, dtype: DTypeLike = np.float32
                       ) -> Interactions:
    """Last.fm HetRec 2011 (2K users) from ``user_artists.dat`` and ``artists.dat``.

    `path` is the ``hetrec2011-lastfm-2k`` folder (or its parent). Values are the listening
    counts (``weight``); ids are HetRec's ``userID`` / ``artistID``, with artist ``name``
    (and ``url``) in ``item_info``.
    """
    folder = _find_folder(path, "user_artists.dat", ("hetrec2011-lastfm-2k",))
    data = read_csv(folder / "user_artists.dat", "userID", "artistID", "weight", sep="\t",
                    header=True, dtype=dtype)
    artists = folder / "artists.dat"
    if artists.exists():
        rows = _metadata_rows(artists, "\t", "utf-8", header=True, quoting=False)
        _attach_metadata(data, [r[0] for r in rows],
                         {"name": [r[1] if len(r) > 1 else None for r in rows],
                          "url": [r[2] if len(r) > 2 else None for r in rows]}, artists)
    return data


#: the names :func:`load` accepts, with the reader of each
LOADERS = {
    "movielens": load_movielens,
    "movielens-100k": load_movielens,
    "movielens-latest": load_movielens,
    "movielens-20m": load_movielens,
    "movielens-25m": load_movielens,
    "lastfm-360k": load_lastfm_360k,
    "lastfm-2k": load_lastfm_hetrec,
    "lastfm-hetrec": load_lastfm_hetrec,
}


def load(name: str, path: PathLike | None = None, **kwargs: Any) -> Interactions:
    """A data set by name: one of :data:`LOADERS` read from `path`, or ``"synthetic"``
    (generated by :func:`make_synthetic` with `kwargs`)."""
    if name == "synthetic":
        return make_synthetic(**kwargs)
    check_choice("name", name, tuple(LOADERS) + ("synthetic",))
    return LOADERS[name](path, **kwargs)


# --- the embedded synthetic data set ----------------------------------------------------------
GROUP_NAMES = ("jazz", "rock", "hip-hop", "classical", "electronic", "folk", "metal", "reggae",
               "blues", "country", "soul", "punk", "pop", "latin", "ambient", "gospel")


def make_synthetic(n_users: int = 3000, n_items: int = 1200, n_groups: int = 8,
                   interactions_per_user: int = 30, kind: str = "implicit",
                   popularity_exponent: float = 1.0, taste_concentration: float = 0.2,
                   noise: float = 0.05, random_state: SeedLike = 0,
                   dtype: DTypeLike = np.float32) -> Interactions:
    r"""A deterministic data set with planted structure: the embedded demo and quick-start data.

    Items belong to named groups (``"jazz-017"`` is item 17 of the jazz group); each user has
    a taste over the groups drawn from a Dirichlet with `taste_concentration` (small: one or
    two favourite groups). A user with activity n_u (log-normal around
    `interactions_per_user`) picks n_u distinct items with probability

        P(i | u) proportional to pop_i ((1 - epsilon) theta_{u, g(i)} + epsilon / G),
        pop_i = (rank_i + 5)^(-s)

    with power-law popularity of exponent `popularity_exponent` (s), noise epsilon
    and G groups. Values are play counts (``kind="implicit"``: 1 + geometric, larger for
    favourite groups) or 1-5 stars (``kind="explicit"``: liking the group, item quality and
    user bias plus noise). Interactions carry timestamps over one year.

    Returns :class:`~fastals.data.Interactions` with string ids (``"user-0042"``,
    ``"jazz-017"``), ``item_info["group"]`` and ``user_info["favourite_group"]``. The same
    arguments always give the same data.
    """
    n_users = check_int("n_users", n_users, minimum=1)
    n_items = check_int("n_items", n_items, minimum=1)
    n_groups = check_int("n_groups", n_groups, minimum=1, maximum=n_items)
    per_user = check_int("interactions_per_user", interactions_per_user, minimum=1,
                         maximum=n_items)
    check_choice("kind", kind, ("implicit", "explicit"))
    exponent = check_float("popularity_exponent", popularity_exponent, minimum=0)
    concentration = check_float("taste_concentration", taste_concentration, minimum=0,
                                exclusive=True)
    noise = check_float("noise", noise, minimum=0, maximum=1)
    dtype = check_dtype("dtype", dtype)
    rng = check_random_state(random_state)

    group_of = rng.permutation(np.arange(n_items) % n_groups)
    popularity = 1.0 / (rng.permutation(n_items) + 5.0) ** exponent
    taste = rng.dirichlet(np.full(n_groups, concentration), n_users)
    activity = np.clip(np.round(rng.lognormal(np.log(per_user), 0.5, n_users)), 1,
                       n_items).astype(np.int64)
    log_pop = np.log(popularity)
    rows, cols = [], []
    step = max(1, (1 << 22) // n_items)
    for lo in range(0, n_users, step):
        hi = min(n_users, lo + step)
        affinity = (1 - noise) * taste[lo:hi][:, group_of] + noise / n_groups
        # Gumbel top-k: the n_u largest of log p + Gumbel noise are a sample without replacement
        keys = log_pop + np.log(affinity) + rng.gumbel(size=(hi - lo, n_items))
        order = np.argsort(-keys, axis=1)
        for k in range(hi - lo):
            chosen = np.sort(order[k, :activity[lo + k]])
            rows.append(np.full(len(chosen), lo + k, dtype=np.int64))
            cols.append(chosen)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    liking = taste[rows, group_of[cols]]
    if kind == "implicit":
        values = rng.geometric(1.0 / (1.0 + 20.0 * liking)).astype(np.float64)
    else:
        quality = rng.normal(0.0, 0.4, n_items)
        bias = rng.normal(0.0, 0.3, n_users)
        raw = 2.2 + 2.5 * np.sqrt(liking) + quality[cols] + bias[rows] + rng.normal(0, 0.5,
                                                                                    len(rows))
        values = np.clip(np.round(raw), 1, 5)
    start = 1_600_000_000.0
    timestamps = np.round(start + rng.random(len(rows)) * 365 * 86400)

    names = [GROUP_NAMES[g] if g < len(GROUP_NAMES) else f"group{g + 1}" for g in range(n_groups)]
    width = len(str(int(np.bincount(group_of).max())))
    counters = np.zeros(n_groups, dtype=np.int64)
    item_ids = np.empty(n_items, dtype=object)
    for i in range(n_items):
        g = group_of[i]
        counters[g] += 1
        item_ids[i] = f"{names[g]}-{counters[g]:0{width}d}"
    user_width = len(str(n_users))
    user_ids = np.array([f"user-{u + 1:0{user_width}d}" for u in range(n_users)], dtype=object)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_users))])
    matrix = sp.csr_matrix((values.astype(dtype), cols.astype(np.int32), indptr.astype(np.int32)),
                           shape=(n_users, n_items))
    group_names = np.array(names, dtype=object)
    return Interactions(
        matrix, IdMapping(user_ids, "user"), IdMapping(item_ids, "item"), timestamps,
        item_info={"group": group_names[group_of], "popularity": popularity / popularity.sum()},
        user_info={"favourite_group": group_names[np.argmax(taste, axis=1)]})


#: the five canonical MovieLens 100K train/test splits (u1..u5: disjoint 20% test sets)
MOVIELENS_100K_SPLITS = ("u1", "u2", "u3", "u4", "u5")


def load_movielens_100k_split(split: str, path: PathLike | None = None
                              ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """One canonical MovieLens 100K split: (train, test) users x items CSR matrices of stars.

    `split` is "u1".."u5" (or "ua"/"ub"); both matrices have the full 943 x 1682 shape, so
    test users or items absent from train are simply rows/columns without training ratings.
    """
    check_choice("split", split, MOVIELENS_100K_SPLITS + ("ua", "ub"))
    folder = _find_folder(path, f"{split}.base", ("ml-100k",))
    matrices = []
    for part in ("base", "test"):
        file = folder / f"{split}.{part}"
        if not file.exists():
            raise FileNotFoundError(f"{file} not found (expected the ml-100k folder)")
        raw = np.loadtxt(file, dtype=np.int64, delimiter="\t", ndmin=2)
        matrices.append(sp.csr_matrix((raw[:, 2].astype(np.float32), (raw[:, 0] - 1, raw[:, 1] - 1)),
                                      shape=(943, 1682)))
    return matrices[0], matrices[1]


def synthetic_ratings(n_users: int, n_items: int, nnz: int, rank: int = 10, noise: float = 0.7,
                      random_state: SeedLike = 0, dtype: DTypeLike = np.float32
                      ) -> sp.csr_matrix:
    """A users x items CSR of 1..5 star ratings with MovieLens-like structure.

    Which (user, item) pairs are rated follows :func:`synthetic_interactions` (power-law
    item popularity, log-normal user activity); pairs are over-drawn, then `nnz` of them
    kept, so the matrix holds `nnz` ratings unless the popularity law cannot give that many
    distinct pairs. Each stored rating is
    ``clip(round(3.5 + b_u + b_i + x_u . y_i + noise * N(0, 1)), 1, 5)`` with user and item
    biases b_u ~ N(0, 0.4^2), b_i ~ N(0, 0.5^2) and rank-`rank` factors whose dot products have
    standard deviation 0.6. Deterministic in its arguments.
    """
    rank = check_int("rank", rank, minimum=1)
    check_float("noise", noise, minimum=0)
    dtype = check_dtype("dtype", dtype)
    nnz = check_int("nnz", nnz, minimum=1, maximum=n_users * n_items)
    pattern = synthetic_interactions(n_users, n_items, min(n_users * n_items, nnz * 5 // 4),
                                     random_state=random_state)
    rng = check_random_state(random_state if not isinstance(random_state, int)
                             else random_state + 1)
    if pattern.nnz > nnz:  # keep exactly nnz of the drawn pairs, uniformly
        keep = np.zeros(pattern.nnz, dtype=bool)
        keep[rng.choice(pattern.nnz, nnz, replace=False)] = True
        rows = np.repeat(np.arange(n_users), np.diff(pattern.indptr))[keep]
        pattern = sp.csr_matrix((pattern.data[keep], pattern.indices[keep], np.concatenate(
            [[0], np.cumsum(np.bincount(rows, minlength=n_users))]).astype(np.int32)),
            shape=pattern.shape)
    user_bias = rng.normal(0.0, 0.4, n_users).astype(np.float32)
    item_bias = rng.normal(0.0, 0.5, n_items).astype(np.float32)
    scale = np.sqrt(0.6 / np.sqrt(rank))
    U = (rng.standard_normal((n_users, rank)) * scale).astype(np.float32)
    V = (rng.standard_normal((n_items, rank)) * scale).astype(np.float32)
    rows = np.repeat(np.arange(n_users, dtype=np.int32), np.diff(pattern.indptr))
    values = np.empty(pattern.nnz, dtype=dtype)
    step = 1 << 20
    for lo in range(0, pattern.nnz, step):
        u, i = rows[lo:lo + step], pattern.indices[lo:lo + step]
        raw = 3.5 + user_bias[u] + item_bias[i] + np.einsum("ij,ij->i", U[u], V[i]) \
            + noise * rng.standard_normal(len(u)).astype(np.float32)
        values[lo:lo + step] = np.clip(np.round(raw), 1, 5)
    return sp.csr_matrix((values, pattern.indices, pattern.indptr), shape=pattern.shape)
