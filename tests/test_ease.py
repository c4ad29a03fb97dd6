"""EASE: the contract, agreement with a dense numpy solve, new users, the size limit, BLAS
threads, the command line."""
import numpy as np
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_info

import fastals
from fastals import cli
from fastals.exceptions import ModelFileError
from fastals.models import ease as ease_module
from fastals.reference import itemitem as ref
from recommender_base_test import RecommenderBaseTestMixin
from conftest import random_interactions


@pytest.fixture(scope="module")
def interactions():
    return random_interactions(70, 40, 0.15, seed=5)


class TestEASEBehaviour(RecommenderBaseTestMixin):
    def make_model(self):
        return fastals.EASE()


class TestEASEFloat64Behaviour(RecommenderBaseTestMixin):
    def make_model(self):
        return fastals.EASE(regularization=5.0, dtype=np.float64, num_threads=1)


# --- against the reference: B = I - P / diag(P), P = (X^T X + lambda I)^-1 ------------------
# float64: the LAPACK Cholesky inverse and numpy's LU solve agree to rounding (1e-12 of the
# entries, which are below 1); float32: single-precision rounding of the Gram matrix and of the
# factorisation, at condition numbers below 100 here, leaves about 1e-6 relative.
TOLERANCE = {np.float32: 2e-5, np.float64: 1e-12}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("regularization", [0.5, 10.0, 500.0])
@pytest.mark.parametrize("threads", [1, 2])
def test_weights_equal_the_dense_solve(interactions, dtype, regularization, threads):
    model = fastals.EASE(regularization=regularization, dtype=dtype, num_threads=threads)
    model.fit(interactions, show_progress=False)
    B = ref.ease_weights(interactions, regularization)
    assert model.item_weights.dtype == dtype
    scale = np.abs(B).max()
    np.testing.assert_allclose(model.item_weights, B, rtol=0, atol=TOLERANCE[dtype] * scale)
    np.testing.assert_array_equal(np.diag(model.item_weights), 0)
    np.testing.assert_allclose(model.precision_diagonal,
                               np.diag(ref.ease_precision(interactions, regularization)),
                               rtol=TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scores_are_the_rows_times_B_and_similarities_the_partial_correlations(interactions,
                                                                                dtype):
    model = fastals.EASE(regularization=3.0, dtype=dtype).fit(interactions, show_progress=False)
    B = ref.ease_weights(interactions, 3.0)
    rho = ref.ease_similarity(interactions, 3.0)
    users = np.arange(0, 70, 9)
    ids, scores = model.recommend(users, interactions[users], N=40,
                                  filter_already_liked_items=False)
    expected = interactions[users].toarray() @ B
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for row, user in enumerate(users):
        np.testing.assert_allclose(scores[row], expected[row, ids[row]], atol=tol)
        assert np.all(np.diff(scores[row]) <= 0)
    for item in (0, 7, 33):
        ids, scores = model.similar_items(item, N=40)
        assert ids[0] == item and scores[0] == 1
        np.testing.assert_allclose(scores, rho[item, ids], atol=tol)
        assert (np.abs(scores[1:]) < 1).all()


def test_new_users_are_scored_from_their_row(interactions):
    """An item-item model: any row of interactions is a user, no refit needed."""
    model = fastals.EASE(regularization=3.0, dtype=np.float64).fit(interactions,
                                                                  show_progress=False)
    new = sp.csr_matrix(([1.0, 1.0, 1.0], ([0, 0, 0], [2, 5, 11])), shape=(1, 40))
    ids, scores = model.recommend(10_000, new, N=5, recalculate_user=True)
    expected = new.toarray()[0] @ ref.ease_weights(interactions, 3.0)
    expected[[2, 5, 11]] = -np.inf
    np.testing.assert_array_equal(ids, np.argsort(-expected, kind="stable")[:5])
    np.testing.assert_allclose(scores, expected[ids], atol=1e-12)
    # a known user's changed row counts too
    ids_old, _ = model.recommend(3, interactions[3], N=5)
    ids_new, _ = model.recommend(3, new, N=5, recalculate_user=True)
    np.testing.assert_array_equal(ids_new, ids)
    assert not np.array_equal(ids_old, ids_new)


# --- the size limit ---------------------------------------------------------------------------
def test_more_items_than_max_items_are_refused_naming_the_memory():
    wide = sp.csr_matrix((np.ones(2), ([0, 1], [0, 49_999])), shape=(2, 50_000))
    with pytest.raises(ValueError, match=r"50,000 items.*max_items=20,000.*10\.0 GB"):
        fastals.EASE().fit(wide, show_progress=False)
    with pytest.raises(ValueError, match=r"float64 matrix, 20\.0 GB"):
        fastals.EASE(dtype=np.float64).fit(wide, show_progress=False)
    small = random_interactions(20, 12, 0.3, seed=1)
    with pytest.raises(ValueError, match="max_items=11"):
        fastals.EASE(max_items=11).fit(small, show_progress=False)
    assert fastals.EASE(max_items=12).fit(small, show_progress=False).n_items == 12


# --- bad inputs -------------------------------------------------------------------------------
@pytest.mark.parametrize("value, error, match", [(-1.0, ValueError, "> 0"),
                                                 (0.0, ValueError, "> 0"),
                                                 (float("nan"), ValueError, "finite"),
                                                 ("500", TypeError, "number")])
def test_bad_regularization_is_named(value, error, match):
    with pytest.raises(error, match="regularization") as info:
        fastals.EASE(regularization=value)
    assert match in str(info.value)


def test_bad_matrices_are_named(interactions):
    nan = interactions.copy()
    nan.data[3] = np.nan
    with pytest.raises(ValueError, match="user_items contains NaN"):
        fastals.EASE().fit(nan, show_progress=False)
    with pytest.raises(ValueError, match="user_items is empty"):
        fastals.EASE().fit(sp.csr_matrix((5, 4)), show_progress=False)


def test_a_damaged_file_is_refused(tmp_path, interactions):
    model = fastals.EASE(regularization=3.0).fit(interactions, show_progress=False)
    model.item_weights = model.item_weights[:, :-1]
    path = model.save(tmp_path / "bad")
    with pytest.raises(ModelFileError, match="item_weights"):
        fastals.load(path)


# --- BLAS threads -----------------------------------------------------------------------------
def _blas_threads():
    return sorted(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")


@pytest.mark.parametrize("threads", [1, 2])
def test_blas_is_held_to_num_threads_during_fit_and_restored_after(interactions, monkeypatch,
                                                                   threads):
    seen = []
    inverse = ease_module._inverse_in_place

    def spy(G, regularization):
        seen.append(_blas_threads())
        return inverse(G, regularization)

    monkeypatch.setattr(ease_module, "_inverse_in_place", spy)
    before = _blas_threads()
    fastals.EASE(num_threads=threads).fit(interactions, show_progress=False)
    assert seen and all(n <= threads for n in seen[0])
    assert _blas_threads() == before


# --- the command line -------------------------------------------------------------------------
def test_fastals_fit_model_ease(tmp_path):
    csv = tmp_path / "plays.csv"
    csv.write_text("user,item,plays\n" + "".join(
        f"u{u},i{i},1\n" for u in range(8) for i in range(6) if (u + i) % 3))
    out = tmp_path / "ease.npz"
    assert cli.main(["fit", str(csv), "--model", "ease", "--regularization", "2", "--quiet",
                     "-o", str(out)]) == 0
    model = fastals.load(out)
    assert isinstance(model, fastals.EASE) and model.regularization == 2
