"""Shared fixtures: the MovieLens 100K folder (skipped where absent) and random inputs."""
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

_DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def movielens_100k_path():
    """../shared/data/ml-100k beside the repo, or $FASTALS_DATA/ml-100k, or None."""
    candidates = []
    if os.environ.get("FASTALS_DATA"):
        env = Path(os.environ["FASTALS_DATA"])
        candidates += [env / "ml-100k", env]
    candidates.append(_DEFAULT_DATA / "ml-100k")
    for folder in candidates:
        if (folder / "u.data").exists():
            return folder
    return None


@pytest.fixture(scope="session")
def ml100k_path():
    path = movielens_100k_path()
    if path is None:
        pytest.skip("MovieLens 100K not found: put it at ../shared/data/ml-100k or set FASTALS_DATA")
    return path


def random_interactions(n_users, n_items, density, seed, negative=False):
    """A small random CSR of positive counts (and some negatives if asked)."""
    rng = np.random.default_rng(seed)
    m = sp.random(n_users, n_items, density=density, format="csr", random_state=rng,
                  data_rvs=lambda n: rng.integers(1, 6, n).astype(np.float64))
    if negative and m.nnz:
        flip = rng.random(m.nnz) < 0.2
        m.data[flip] *= -1
    return m
