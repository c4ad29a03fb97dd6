"""Data sets: generated ones (deterministic from a seed) and readers of local copies.

Nothing here downloads: real data sets are read from a path the caller gives (or the folder
named by the ``FASTALS_DATA`` environment variable).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from fastals._validation import check_float, check_int, check_random_state

#: public data set sizes, for synthetic matrices of the same shape
SIZES = {
    "lastfm-360k": (358_868, 292_385, 17_500_000),
    "movielens-20m": (138_493, 26_744, 20_000_000),
    "bench-4m": (100_000, 50_000, 4_000_000),
}


def synthetic_interactions(n_users, n_items, nnz, random_state=0, item_exponent=1.0,
                           user_sigma=1.0, dtype=np.float32):
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


def data_home(path=None):
    """The folder holding local data sets: `path`, else $FASTALS_DATA."""
    if path is not None:
        return Path(path)
    env = os.environ.get("FASTALS_DATA")
    if env:
        return Path(env)
    raise FileNotFoundError("no data folder given: pass a path or set FASTALS_DATA")


def load_movielens_100k(path=None):
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


#: the five canonical MovieLens 100K train/test splits (u1..u5: disjoint 20% test sets)
MOVIELENS_100K_SPLITS = ("u1", "u2", "u3", "u4", "u5")


def load_movielens_100k_split(split, path=None):
    """One canonical MovieLens 100K split: (train, test) users x items CSR matrices of stars.

    `split` is "u1".."u5" (or "ua"/"ub"); both matrices have the full 943 x 1682 shape, so
    test users or items absent from train are simply rows/columns without training ratings.
    """
    if split not in MOVIELENS_100K_SPLITS + ("ua", "ub"):
        raise ValueError(f"split must be one of u1..u5, ua, ub, got {split!r}")
    folder = data_home(path)
    if not (folder / "u.data").exists() and (folder / "ml-100k" / "u.data").exists():
        folder = folder / "ml-100k"
    matrices = []
    for part in ("base", "test"):
        file = folder / f"{split}.{part}"
        if not file.exists():
            raise FileNotFoundError(f"{file} not found (expected the ml-100k folder)")
        raw = np.loadtxt(file, dtype=np.int64, delimiter="\t", ndmin=2)
        matrices.append(sp.csr_matrix((raw[:, 2].astype(np.float32), (raw[:, 0] - 1, raw[:, 1] - 1)),
                                      shape=(943, 1682)))
    return matrices[0], matrices[1]


def synthetic_ratings(n_users, n_items, nnz, rank=10, noise=0.7, random_state=0,
                      dtype=np.float32):
    """A users x items CSR of 1..5 star ratings with MovieLens-like structure.

    Which (user, item) pairs are rated follows :func:`synthetic_interactions` (power-law
    item popularity, log-normal user activity); pairs are over-drawn, then `nnz` of them
    kept, so the matrix holds `nnz` ratings unless the popularity law cannot give that many
    distinct pairs. Each stored rating is
    ``clip(round(3.5 + b_u + c_i + u_u . v_i + noise * N(0, 1)), 1, 5)`` with user and item
    biases b ~ N(0, 0.4^2), c ~ N(0, 0.5^2) and rank-`rank` factors whose dot products have
    standard deviation 0.6. Deterministic in its arguments.
    """
    rank = check_int("rank", rank, minimum=1)
    check_float("noise", noise, minimum=0)
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
