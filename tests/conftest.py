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


def assert_bit_identical_for_1_2_3_threads(make_model, data,
                                           names=("user_factors", "item_factors")):
    """Fit make_model(num_threads) on `data` with 1, 2 and 3 threads: every array in `names`
    is the same bit for bit. Returns the three fitted models."""
    fits = [make_model(t).fit(data, show_progress=False) for t in (1, 2, 3)]
    for other in fits[1:]:
        for name in names:
            np.testing.assert_array_equal(getattr(other, name), getattr(fits[0], name),
                                          err_msg=name)
    return fits


def assert_interrupt_keeps_the_last_completed_step(make_model, data, names):
    """Fit make_model(steps) with a callback that snapshots the arrays in `names` after each
    step (iteration or epoch) and raises KeyboardInterrupt after the third: the callback saw
    each step's own state, and the interrupted model holds the third step's arrays, those of
    a clean 3-step fit."""
    snapshots = []

    def callback(step, elapsed, value):
        snapshots.append([getattr(model, name).copy() for name in names])
        if step == 2:
            raise KeyboardInterrupt

    model = make_model(10)
    with pytest.raises(KeyboardInterrupt):
        model.fit(data, show_progress=False, callback=callback)
    assert len(snapshots) == 3
    assert not np.array_equal(snapshots[1][0], snapshots[2][0])  # each step's own state
    clean = make_model(3).fit(data, show_progress=False)
    for k, name in enumerate(names):
        np.testing.assert_array_equal(getattr(model, name), snapshots[-1][k], err_msg=name)
        np.testing.assert_array_equal(getattr(model, name), getattr(clean, name),
                                      err_msg=name)
