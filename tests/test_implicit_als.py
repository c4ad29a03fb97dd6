"""ImplicitALS: kernels against the numpy reference, behaviour, real data, bad input."""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import fastals
from fastals._kernels.dispatch import available_isas, kernels
from fastals._validation import as_csr
from fastals.reference import (
    implicit_als_cg_step,
    implicit_als_exact_step,
    implicit_als_fit,
    implicit_als_loss,
)
from recommender_base_test import RecommenderBaseTestMixin, checkerboard
from conftest import assert_bit_identical_for_1_2_3_threads, random_interactions

ISAS = available_isas("_als")


def solve(kind, isa, user_items, X, Y, regularization, alpha, dtype, threads=2, cg_steps=3,
          index_dtype=np.int32, offset=1.0):
    """Run one kernel half-step on copies; returns the new X."""
    csr = as_csr(user_items, "user_items", dtype)
    indptr, indices = csr.indptr.astype(index_dtype), csr.indices.astype(index_dtype)
    X = np.ascontiguousarray(X, dtype=dtype).copy()
    Y = np.ascontiguousarray(Y, dtype=dtype)
    gram = (Y.astype(np.float64).T @ Y + regularization * np.eye(Y.shape[1])).astype(dtype)
    status = np.zeros(X.shape[0], dtype=np.int8)
    als = kernels("_als", isa)
    if kind == "cg":
        als.solve_cg(indptr, indices, csr.data, X, Y, gram, dtype(alpha), cg_steps, threads,
                     status, None, dtype(offset))
    else:
        als.solve_cholesky(indptr, indices, csr.data, X, Y, gram, dtype(alpha), threads, status,
                           None, dtype(offset))
    assert not status.any()
    return X


def problem(n_users=40, n_items=30, K=6, seed=0, negative=False):
    rng = np.random.default_rng(seed)
    R = random_interactions(n_users, n_items, 0.2, seed, negative=negative)
    X = rng.standard_normal((n_users, K)) * 0.1
    Y = rng.standard_normal((n_items, K)) * 0.1
    return R, X, Y


# Tolerances: float64 kernels and the reference differ only by summation order, so 1e-9
# relative is ample (the issue asks 1e-5); float32 results carry ~1e-7 relative rounding
# per operation, amplified by the condition number of A_u (<~100 here), hence 2e-4.
TOL = {np.float64: 1e-9, np.float32: 2e-4}


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("K", [1, 6, 16, 37])
def test_exact_kernel_matches_reference(isa, dtype, threads, index_dtype, K):
    R, X, Y = problem(K=K, negative=True)
    expected = implicit_als_exact_step(R, Y, 0.1, 2.0)
    got = solve("cholesky", isa, R, X, Y, 0.1, 2.0, dtype, threads, index_dtype=index_dtype)
    np.testing.assert_allclose(got, expected, rtol=TOL[dtype], atol=TOL[dtype] * np.abs(expected).max())


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cg_steps", [1, 3])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_cg_kernel_matches_reference_cg(isa, dtype, cg_steps, index_dtype):
    R, X, Y = problem(K=8, negative=True)
    expected = implicit_als_cg_step(R, X, Y, 0.1, 2.0, cg_steps)
    got = solve("cg", isa, R, X, Y, 0.1, 2.0, dtype, cg_steps=cg_steps, index_dtype=index_dtype)
    np.testing.assert_allclose(got, expected, rtol=TOL[dtype] * 10, atol=TOL[dtype] * 10 * np.abs(expected).max())


@pytest.mark.parametrize("isa", ISAS)
def test_cg_with_enough_steps_equals_exact_solve(isa):
    R, X, Y = problem(K=8)
    exact = implicit_als_exact_step(R, Y, 0.1, 2.0)
    got = solve("cg", isa, R, X, Y, 0.1, 2.0, np.float64, cg_steps=8 + 4)
    np.testing.assert_allclose(got, exact, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("K", [3, 16, 37])
def test_kernels_match_reference_with_implicit_confidence(isa, dtype, K):
    """confidence="alpha" (c = alpha |r|, offset 0): with alpha 0.3 most stored values have
    c < 1, so the exact solve subtracts their rank-one terms; CG and Cholesky both agree
    with the reference."""
    R, X, Y = problem(K=K, negative=True)
    expected = implicit_als_exact_step(R, Y, 0.1, 0.3, offset=0.0)
    got = solve("cholesky", isa, R, X, Y, 0.1, 0.3, dtype, offset=0.0)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=TOL[dtype] * 10, atol=TOL[dtype] * 10 * scale)
    expected = implicit_als_cg_step(R, X, Y, 0.1, 0.3, 2, offset=0.0)
    got = solve("cg", isa, R, X, Y, 0.1, 0.3, dtype, cg_steps=2, offset=0.0)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=TOL[dtype] * 10, atol=TOL[dtype] * 10 * scale)


def test_cg_rows_longer_than_gather_buffer():
    """Rows with more stored values than the per-thread gather buffer take the direct path."""
    rng = np.random.default_rng(3)
    n_items, K = 5000, 4  # buffer holds max(64, 2^18 / (K * 8)) = 8192 rows for float64
    R = sp.csr_matrix((rng.integers(1, 4, (2, n_items)).astype(float)))
    Y = rng.standard_normal((n_items, K)) * 0.1
    X = np.zeros((2, K))
    np.testing.assert_allclose(solve("cg", None, R, X, Y, 0.1, 1.0, np.float64, cg_steps=1),
                               implicit_als_cg_step(R, X, Y, 0.1, 1.0, 1), rtol=1e-9)
    K = 64  # 2^18 / (64 * 8) = 512 < 5000: direct path
    Y = rng.standard_normal((n_items, K)) * 0.1
    X = np.zeros((2, K))
    np.testing.assert_allclose(solve("cg", None, R, X, Y, 0.1, 1.0, np.float64, cg_steps=2),
                               implicit_als_cg_step(R, X, Y, 0.1, 1.0, 2), rtol=1e-8)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loss_matches_reference_and_never_increases_with_exact_solver(dtype):
    R, _, _ = problem(n_users=30, n_items=25)
    model = fastals.ImplicitALS(factors=5, regularization=0.1, alpha=3.0, iterations=8,
                                solver="cholesky", dtype=dtype, random_state=1,
                                calculate_training_loss=True)
    model.fit(R, show_progress=False)
    losses = np.array(model.loss_history)
    assert np.all(np.diff(losses) <= 1e-6 * losses[:-1])
    weight = R.shape[0] * R.shape[1] + 3.0 * np.abs(R.data).sum()
    expected = implicit_als_loss(R, model.user_factors, model.item_factors, 0.1, 3.0) / weight
    assert losses[-1] == pytest.approx(expected, rel=1e-9 if dtype == np.float64 else 1e-4)


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_fit_matches_reference_fit(solver):
    R, _, _ = problem(n_users=25, n_items=20)
    model = fastals.ImplicitALS(factors=4, regularization=0.05, alpha=2.0, iterations=3,
                                solver=solver, dtype=np.float64, random_state=7)
    # same initial factors as fit draws
    rng = np.random.default_rng(7)
    X0 = rng.standard_normal((25, 4)) * 0.01
    Y0 = rng.standard_normal((20, 4)) * 0.01
    model.fit(R, show_progress=False)
    X, Y = implicit_als_fit(R, X0, Y0, 0.05, 2.0, 3, solver=solver, cg_steps=3)
    np.testing.assert_allclose(model.user_factors, X, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(model.item_factors, Y, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_factors_identical_for_any_thread_count(solver, dtype):
    assert_bit_identical_for_1_2_3_threads(
        lambda t: fastals.ImplicitALS(factors=16, iterations=3, solver=solver, dtype=dtype,
                                      random_state=3, num_threads=t),
        random_interactions(300, 200, 0.05, 5))


def test_int64_indices_give_the_same_factors():
    R = random_interactions(100, 80, 0.1, 9)
    R64 = R.copy()  # scipy downcasts indices on construction, so set them afterwards
    R64.indices, R64.indptr = R.indices.astype(np.int64), R.indptr.astype(np.int64)
    assert R64.indices.dtype == np.int64
    a = fastals.ImplicitALS(factors=8, iterations=2, random_state=0).fit(R, show_progress=False)
    b = fastals.ImplicitALS(factors=8, iterations=2, random_state=0).fit(R64, show_progress=False)
    np.testing.assert_array_equal(a.user_factors, b.user_factors)


def test_any_sparse_format_and_dtype_gives_the_same_model():
    R = random_interactions(60, 40, 0.1, 2)
    ref = fastals.ImplicitALS(factors=4, iterations=2, random_state=0).fit(R, show_progress=False)
    for variant in (R.tocoo(), R.tocsc(), R.todok(), R.tolil(), R.astype(np.int64),
                    sp.csr_array(R), R.astype(np.float32)):
        m = fastals.ImplicitALS(factors=4, iterations=2, random_state=0)
        m.fit(variant, show_progress=False)
        np.testing.assert_allclose(m.user_factors, ref.user_factors, rtol=1e-5, atol=1e-7)


def test_duplicates_are_summed_and_stored_zeros_ignored():
    coo = sp.coo_matrix(([1.0, 2.0, 0.0, 4.0], ([0, 0, 1, 2], [1, 1, 0, 2])), shape=(3, 3))
    summed = sp.csr_matrix(([3.0, 4.0], ([0, 2], [1, 2])), shape=(3, 3))
    a = fastals.ImplicitALS(factors=2, iterations=2, random_state=0).fit(coo, show_progress=False)
    b = fastals.ImplicitALS(factors=2, iterations=2, random_state=0).fit(summed, show_progress=False)
    np.testing.assert_array_equal(a.user_factors, b.user_factors)


def test_empty_rows_and_columns_get_finite_factors():
    R = sp.csr_matrix(np.array([[1, 0, 0, 2], [0, 0, 0, 0], [3, 0, 0, 0]], dtype=float))
    for solver in ("cg", "cholesky"):
        m = fastals.ImplicitALS(factors=3, iterations=3, solver=solver, random_state=0)
        m.fit(R, show_progress=False)
        assert np.isfinite(m.user_factors).all() and np.isfinite(m.item_factors).all()
        ids, scores = m.recommend(1, R[1], N=2)
        assert len(ids) == 2 and np.isfinite(scores).all()


def test_negative_values_are_confident_dislikes():
    """A negative value lowers the item's score compared to leaving it unobserved."""
    base = checkerboard(20, held_out_diagonal=False).tolil()
    disliked = base.copy()
    disliked[0, 2] = -5.0  # user 0 likes even items; mark item 2 as a strong dislike
    base[0, 2] = 0
    scores = []
    for R in (base.tocsr(), disliked.tocsr()):
        m = fastals.ImplicitALS(factors=4, iterations=10, solver="cholesky", random_state=0)
        m.fit(R, show_progress=False)
        scores.append(m.user_factors[0] @ m.item_factors[2])
    assert scores[1] < scores[0]


class TestImplicitALSBehaviour(RecommenderBaseTestMixin):
    def make_model(self):
        return fastals.ImplicitALS(factors=2, regularization=0.01, iterations=15,
                                   solver="cholesky", random_state=0)


class TestCGBehaviour(RecommenderBaseTestMixin):
    def make_model(self):
        return fastals.ImplicitALS(factors=2, iterations=15, random_state=0, num_threads=1)


def planted(n_users=200, n_items=120, groups=4, density=0.3, seed=11):
    """Users and items in `groups` taste groups; users interact mostly within their group,
    with popularity varying across items so that rankings have no ties."""
    rng = np.random.default_rng(seed)
    user_group = rng.integers(0, groups, n_users)
    item_group = rng.integers(0, groups, n_items)
    popularity = rng.random(n_items)
    p = np.where(user_group[:, None] == item_group[None, :], density, 0.02) * popularity
    return sp.csr_matrix((rng.random((n_users, n_items)) < p).astype(np.float64))


def test_recalculate_user_gives_the_same_top_items():
    R = planted()
    m = fastals.ImplicitALS(factors=8, regularization=0.1, iterations=30, solver="cholesky",
                            random_state=0).fit(R, show_progress=False)
    users = np.arange(0, 200, 9)
    stored, _ = m.recommend(users, R[users], N=5)
    recalculated, _ = m.recommend(users, R[users], N=5, recalculate_user=True)
    assert (stored == recalculated).mean() > 0.95
    # recalculation is an exact solve against the final item factors
    expected = implicit_als_exact_step(R[users], m.item_factors, 0.1, 1.0)
    np.testing.assert_allclose(m.recalculate_user(users, R[users]), expected, rtol=1e-4,
                               atol=1e-5)


def test_fold_in_new_users_and_items():
    R = random_interactions(60, 40, 0.15, 4)
    m = fastals.ImplicitALS(factors=6, iterations=10, solver="cholesky", random_state=0)
    m.fit(R[:50], show_progress=False)
    m.partial_fit_users(np.arange(50, 60), R[50:])
    assert m.user_factors.shape == (60, 6)
    np.testing.assert_allclose(m.user_factors[50:], m.recalculate_user(np.arange(50, 60), R[50:]),
                               rtol=1e-6)
    # a new user folded in by recommend(recalculate_user=True) with any id
    ids, _ = m.recommend(1000, R[55], N=3, recalculate_user=True)
    np.testing.assert_array_equal(ids, m.recommend(55, R[55], N=3)[0])
    m.partial_fit_items([45], sp.csr_matrix(R[:, 3].T))
    assert m.item_factors.shape == (46, 6)
    assert np.all(m.item_factors[40:45] == 0)
    with pytest.raises(ValueError, match="duplicate"):
        m.partial_fit_users([1, 1], R[:2])
    with pytest.raises(ValueError, match="user_items"):
        m.partial_fit_users([1, 2], R[:3])


def test_similar_items_is_cosine_on_factors():
    R = random_interactions(80, 50, 0.1, 6)
    m = fastals.ImplicitALS(factors=6, iterations=5, random_state=0).fit(R, show_progress=False)
    Y = m.item_factors.astype(np.float64)
    Yn = Y / np.linalg.norm(Y, axis=1, keepdims=True)
    expected = Yn @ Yn[7]
    ids, scores = m.similar_items(7, N=50)
    assert ids[0] == 7
    np.testing.assert_allclose(scores, expected[ids], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ids, np.argsort(-expected, kind="stable")[:50])
    uids, _ = m.similar_users(3, N=4)
    assert uids[0] == 3 and len(uids) == 4


def test_callback_and_progress_log(caplog):
    R = random_interactions(30, 20, 0.2, 1)
    seen = []
    with caplog.at_level("INFO", logger="fastals"):
        fastals.ImplicitALS(factors=3, iterations=3, calculate_training_loss=True).fit(
            R, show_progress=False, callback=lambda i, t, loss: seen.append((i, loss)))
    assert [i for i, _ in seen] == [0, 1, 2] and all(np.isfinite(l) for _, l in seen)
    assert "iteration 3/3" in caplog.text


def test_refit_resets():
    R = random_interactions(30, 20, 0.2, 1)
    m = fastals.ImplicitALS(factors=3, iterations=2, random_state=5)
    a = m.fit(R, show_progress=False).user_factors.copy()
    b = m.fit(R, show_progress=False).user_factors
    np.testing.assert_array_equal(a, b)


def movielens_split(path, seed=42, test_fraction=0.2):
    from fastals.datasets import load_movielens_100k
    R, _ = load_movielens_100k(path)
    coo = R.tocoo()
    test = np.random.default_rng(seed).random(coo.nnz) < test_fraction

    def part(mask):
        return sp.csr_matrix((coo.data[mask], (coo.row[mask], coo.col[mask])), shape=R.shape)
    return part(~test), part(test)


def precision_at_k(model, train, test, K=10):
    """sum of hits / sum of min(K, |test items|) over users with test items."""
    users = np.flatnonzero(np.diff(test.indptr))
    ids, _ = model.recommend(users, train[users], N=K)
    hits = total = 0
    for row, u in enumerate(users):
        relevant = test.indices[test.indptr[u]:test.indptr[u + 1]]
        hits += np.isin(ids[row], relevant).sum()
        total += min(K, len(relevant))
    return hits / total


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_movielens_100k_precision(ml100k_path, solver):
    train, test = movielens_split(ml100k_path)
    model = fastals.ImplicitALS(factors=64, regularization=0.05, alpha=1.0, iterations=15,
                                solver=solver, random_state=0)
    model.fit(train, show_progress=False)
    assert precision_at_k(model, train, test) >= 0.30


# --- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, error, match", [
    ({"factors": 0}, ValueError, "factors"),
    ({"factors": -3}, ValueError, "factors must be a positive int, got -3"),
    ({"factors": 2.5}, TypeError, "factors"),
    ({"factors": "64"}, TypeError, "factors"),
    ({"regularization": -0.1}, ValueError, "regularization"),
    ({"regularization": float("nan")}, ValueError, "regularization"),
    ({"alpha": -1}, ValueError, "alpha"),
    ({"alpha": "big"}, TypeError, "alpha"),
    ({"iterations": -1}, ValueError, "iterations"),
    ({"cg_steps": 0}, ValueError, "cg_steps"),
    ({"solver": "lu"}, ValueError, "solver"),
    ({"dtype": np.int32}, ValueError, "dtype"),
    ({"dtype": "float16"}, ValueError, "dtype"),
    ({"num_threads": -2}, ValueError, "num_threads"),
    ({"random_state": "seed"}, TypeError, "random_state"),
    ({"calculate_training_loss": "yes"}, TypeError, "calculate_training_loss"),
])
def test_bad_hyperparameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        fastals.ImplicitALS(**kwargs)
    model = fastals.ImplicitALS()
    for key, value in kwargs.items():
        setattr(model, key, value)
    with pytest.raises(error, match=match):
        model.fit(checkerboard(4), show_progress=False)


@pytest.mark.parametrize("data, error, match", [
    (np.eye(3), TypeError, "dense"),
    ([[1, 0], [0, 1]], TypeError, "sparse"),
    (sp.csr_matrix((0, 5)), ValueError, "empty"),
    (sp.csr_matrix((4, 5)), ValueError, "empty"),
    (sp.csr_matrix(np.array([[1.0, np.nan]])), ValueError, "NaN"),
    (sp.csr_matrix(np.array([[1.0, np.inf]])), ValueError, "NaN or infinite"),
    (sp.csr_matrix(np.array([[1 + 1j, 0]])), TypeError, "real"),
    (sp.csr_matrix(np.array([[1e300, 1.0]])), ValueError, "too large"),
])
def test_bad_user_items(data, error, match):
    with pytest.raises(error, match=match):
        fastals.ImplicitALS(factors=2, iterations=1).fit(data, show_progress=False)


def test_hand_built_csr_with_bad_structure_is_rejected():
    bad_index = sp.csr_matrix((np.ones(2), np.array([0, 7]), np.array([0, 1, 2])), shape=(2, 3))
    with pytest.raises(ValueError, match="out of bounds"):
        fastals.ImplicitALS(factors=2).fit(bad_index, show_progress=False)
    bad_indptr = sp.csr_matrix((2, 3))
    bad_indptr.indptr = np.array([0, 5, 2], dtype=np.int32)
    with pytest.raises(ValueError, match="indptr"):
        fastals.ImplicitALS(factors=2).fit(bad_indptr, show_progress=False)


def test_numerical_failure_is_named():
    """regularization=0 with an item nobody interacted with: a singular system."""
    R = sp.csr_matrix(np.array([[1.0, 0, 0], [1.0, 0, 0]]))
    m = fastals.ImplicitALS(factors=3, regularization=0.0, iterations=2, solver="cholesky",
                            random_state=0)
    with pytest.raises(fastals.ModelFitError, match="regularization"):
        m.fit(R, show_progress=False)


def test_load_rejects_non_models(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(fastals.ModelFileError):
        fastals.load(junk)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.arange(3))
    with pytest.raises(fastals.ModelFileError, match="not a fastals model"):
        fastals.load(other)
    with pytest.raises(FileNotFoundError):
        fastals.load(tmp_path / "missing.npz")


def test_factor_matrices_start_on_cache_lines(tmp_path):
    """Gathered factor rows should not straddle an extra cache line (fastals._arrays): the
    factors are 64-byte aligned after fit, fold-in growth and load."""
    from fastals._arrays import CACHE_LINE, aligned
    ratings = sp.random(40, 30, density=0.2, format="csr", random_state=1)
    model = fastals.ImplicitALS(factors=16, iterations=2, random_state=0).fit(
        ratings, show_progress=False)
    model.partial_fit_users([45], sp.csr_matrix(np.ones((1, 30))))
    model.save(tmp_path / "m.npz")
    loaded = fastals.ImplicitALS.load(tmp_path / "m.npz")
    for m in (model, loaded):
        for factors in (m.user_factors, m.item_factors):
            assert factors.ctypes.data % CACHE_LINE == 0 and factors.flags.c_contiguous
    odd = np.arange(13.0)[1:].reshape(3, 4)
    assert aligned(odd).ctypes.data % CACHE_LINE == 0
    np.testing.assert_array_equal(aligned(odd, np.float32), odd)


# --- implicit's name, weighting and extra methods ------------------------------------------
def test_alternating_least_squares_is_implicit_als_with_implicit_weighting():
    """`implicit` weighs a stored value as c = alpha r: AlternatingLeastSquares does too, so
    that its tests' settings carry over (ImplicitALS, c = 1 + alpha r, is a different model:
    on this checkerboard with 32 factors and no regularization it fits the held-out zeros)."""
    assert issubclass(fastals.AlternatingLeastSquares, fastals.ImplicitALS)
    assert fastals.AlternatingLeastSquares().confidence == "alpha"
    assert fastals.ImplicitALS().confidence == "1+alpha"
    R = checkerboard(50)
    for seed in (23, 0, 1):
        model = fastals.AlternatingLeastSquares(factors=32, regularization=0, random_state=seed)
        ids, _ = model.fit(R, show_progress=False).recommend(np.arange(50), R, N=1)
        np.testing.assert_array_equal(ids[:, 0], np.arange(50))
    R, _, _ = problem(n_users=20, n_items=15, negative=True)
    ours = fastals.ImplicitALS(factors=4, regularization=0.1, alpha=0.5, iterations=3,
                               solver="cholesky", dtype=np.float64, random_state=3,
                               confidence="alpha").fit(R, show_progress=False)
    rng = np.random.default_rng(3)
    X0, Y0 = rng.standard_normal((20, 4)) * 0.01, rng.standard_normal((15, 4)) * 0.01
    X, Y = implicit_als_fit(R, X0, Y0, 0.1, 0.5, 3, "cholesky", offset=0.0)
    np.testing.assert_allclose(ours.user_factors, X, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(ours.item_factors, Y, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
@pytest.mark.parametrize("model_class", [fastals.AlternatingLeastSquares, fastals.ImplicitALS])
def test_without_regularization_the_spare_factors_keep_the_parities_apart(model_class, solver):
    """implicit's checkerboard, 256 x 256 with the diagonal held out, 32 factors, no
    regularization: two factors separate the parities and 30 fit part of the held-out
    diagonal, a singular value of 1 repeated 254 times. The objective fixes only X Y^T; left
    as solved, the item factors kept the scale of their random start, the spare factors
    weighed as much as the parity ones, and some items' 10 nearest included the other
    parity (cosine 0.4-0.6, 8 of 20 seeds). Balanced at the end of fit (X^T X = Y^T Y),
    the cosines follow the scores: no seed mixes, and the scores are those of the fit."""
    R = checkerboard(256)
    for seed in (23, 1, 2, 3):
        solved = []

        def keep_last(iteration, seconds, loss):
            solved[:] = [model.user_factors.astype(np.float64),
                         model.item_factors.astype(np.float64)]

        model = model_class(factors=32, regularization=0, solver=solver, random_state=seed)
        model.fit(R, show_progress=False, callback=keep_last)
        X, Y = model.user_factors.astype(np.float64), model.item_factors.astype(np.float64)
        np.testing.assert_allclose(X @ Y.T, solved[0] @ solved[1].T, atol=1e-5)
        np.testing.assert_allclose(X.T @ X, Y.T @ Y, rtol=1e-4, atol=1e-4)
        parity = np.arange(256) % 2
        for similar in (model.similar_items, model.similar_users):
            ids, scores = similar(np.arange(256), N=10)
            np.testing.assert_array_equal(ids % 2, np.repeat(parity[:, None], 10, axis=1))
    assert_bit_identical_for_1_2_3_threads(
        lambda threads: model_class(factors=32, regularization=0, solver=solver, random_state=5,
                                    num_threads=threads), R)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_alternating_least_squares_starts_where_implicit_does(dtype):
    """implicit draws rng.random((n, factors), dtype) * 0.01 for the users, then the items:
    AlternatingLeastSquares draws the same numbers (over several draw chunks here: 20,000
    items of 32 float32 factors are 2.4 chunks of 1 MiB); ImplicitALS keeps N(0, 0.01^2)."""
    R = random_interactions(40, 20000, 0.001, seed=3)
    start = fastals.AlternatingLeastSquares(factors=32, iterations=0, dtype=dtype,
                                            random_state=11).fit(R, show_progress=False)
    rng = np.random.default_rng(11)
    np.testing.assert_array_equal(start.user_factors, rng.random((40, 32), dtype=dtype) * 0.01)
    np.testing.assert_array_equal(start.item_factors,
                                  rng.random((20000, 32), dtype=dtype) * 0.01)
    own = fastals.ImplicitALS(factors=32, iterations=0, dtype=dtype, random_state=11).fit(
        R, show_progress=False)
    rng = np.random.default_rng(11)
    np.testing.assert_array_equal(own.user_factors,
                                  rng.standard_normal((40, 32), dtype=dtype) * dtype(0.01))


def test_alternating_least_squares_fits_implicits_model():
    """The same seed, data and parameters give implicit's model up to rounding (the
    kernels sum in other orders): in float64 the factors agree to 1e-6 of the largest
    (measured: 1e-8) and the top 10 lists are the same; in float32, where rounding grows
    through the solves, to 1e-4 (measured: 2e-6 at regularization 0.01, 1e-4 at 0.1)."""
    implicit_als = pytest.importorskip("implicit.als")
    R = random_interactions(300, 200, 0.05, seed=1)
    for params, tolerance in ((dict(factors=16, dtype=np.float64), 1e-6),
                              (dict(factors=8, regularization=0.1, alpha=2.0, iterations=5,
                                    dtype=np.float64), 1e-6),
                              (dict(factors=16), 1e-4)):
        ours = fastals.AlternatingLeastSquares(random_state=7, **params).fit(
            R, show_progress=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # implicit's advice on BLAS threads
            theirs = implicit_als.AlternatingLeastSquares(random_state=7, num_threads=1,
                                                          **params)
            theirs.fit(R.astype(np.float32), show_progress=False)
        for name in ("user_factors", "item_factors"):
            mine, other = getattr(ours, name), getattr(theirs, name)
            np.testing.assert_allclose(mine, other, rtol=0, atol=tolerance * np.abs(other).max())
        if tolerance == 1e-6:
            users = np.arange(300)
            np.testing.assert_array_equal(ours.recommend(users, R, N=10)[0],
                                          theirs.recommend(users, R, N=10)[0])


def test_implicit_weighting_loss_and_save_load(tmp_path):
    R, _, _ = problem(n_users=30, n_items=25)
    model = fastals.AlternatingLeastSquares(factors=5, regularization=0.1, alpha=0.7,
                                            iterations=4, solver="cholesky", dtype=np.float64,
                                            random_state=1, calculate_training_loss=True)
    model.fit(R, show_progress=False)
    weight = R.shape[0] * R.shape[1] - R.nnz + 0.7 * np.abs(R.data).sum()
    expected = implicit_als_loss(R, model.user_factors, model.item_factors, 0.1, 0.7,
                                 offset=0.0) / weight
    assert model.loss_history[-1] == pytest.approx(expected, rel=1e-9)
    assert np.all(np.diff(model.loss_history) <= 1e-9)
    model.save(tmp_path / "als.npz")
    loaded = fastals.load(tmp_path / "als.npz")
    assert type(loaded) is fastals.AlternatingLeastSquares and loaded.confidence == "alpha"
    np.testing.assert_array_equal(loaded.item_factors, model.item_factors)


def test_implicit_switches():
    """use_cg picks the solver; use_native changes nothing; use_gpu=True is refused; none of
    them is stored (solver records the choice)."""
    assert fastals.AlternatingLeastSquares(use_cg=False).solver == "cholesky"
    assert fastals.ImplicitALS(solver="cholesky", use_cg=False).solver == "cholesky"
    assert fastals.AlternatingLeastSquares(use_cg=True, use_native=False, use_gpu=False).solver \
        == "cg"
    params = fastals.AlternatingLeastSquares(use_cg=False).get_params()
    assert params["solver"] == "cholesky" and not {"use_cg", "use_native", "use_gpu"} & set(params)
    with pytest.raises(ValueError, match="use_gpu=True: fastals runs on CPUs"):
        fastals.AlternatingLeastSquares(use_gpu=True)
    with pytest.raises(ValueError, match="disagree"):
        fastals.ImplicitALS(solver="cholesky", use_cg=True)
    with pytest.raises(TypeError, match="use_cg must be True or False"):
        fastals.ImplicitALS(use_cg="yes")
    with pytest.raises(ValueError, match="confidence must be one of"):
        fastals.ImplicitALS(confidence="hu")


@pytest.mark.parametrize("confidence", ["1+alpha", "alpha"])
def test_explain_sums_to_the_recalculated_score(confidence):
    """explain's contributions c_uj y_i^T W_u y_j add up to the score of the user's factor
    solved exactly from the same interactions; largest first; only liked items; the
    returned user_weights give the same answer when passed back."""
    R = random_interactions(40, 30, 0.25, 7, negative=True)
    model = fastals.ImplicitALS(factors=6, regularization=2.0, alpha=2.0, iterations=10,
                                solver="cholesky", dtype=np.float64, random_state=3,
                                confidence=confidence).fit(R, show_progress=False)
    for user in (0, 5, 17):
        ids, scores = model.recommend(user, R, N=3, recalculate_user=True)
        total, top, weights = model.explain(user, R, ids[0], N=100)
        assert total == pytest.approx(scores[0], rel=1e-9, abs=1e-12)
        assert total == pytest.approx(sum(s for _, s in top), rel=1e-9, abs=1e-12)
        contributions = [s for _, s in top]
        assert contributions == sorted(contributions, reverse=True)
        row = R[user]
        assert sorted(i for i, _ in top) == sorted(row.indices[row.data > 0].tolist())
        again, top2, _ = model.explain(user, R[user], ids[0], user_weights=weights, N=2)
        assert again == pytest.approx(total, rel=1e-12) and top2 == top[:2]


def test_explain_bad_input():
    R = random_interactions(20, 15, 0.3, 2)
    model = fastals.ImplicitALS(factors=3, iterations=2, random_state=0).fit(R, show_progress=False)
    with pytest.raises(ValueError, match="one userid"):
        model.explain([0, 1], R, 3)
    with pytest.raises(IndexError, match="itemid 15 is out of range"):
        model.explain(0, R, 15)
    with pytest.raises(TypeError, match="user_weights must be"):
        model.explain(0, R, 3, user_weights=np.eye(3))
    with pytest.raises(ValueError, match="user_weights must hold a finite 3 x 3"):
        model.explain(0, R, 3, user_weights=(np.eye(4), False))
    with pytest.raises(ValueError, match="N must be a positive int"):
        model.explain(0, R, 3, N=0)
    with pytest.raises(fastals.exceptions.NotFittedError):
        fastals.ImplicitALS().explain(0, R, 3)


def test_similar_items_with_recalculated_items():
    """recalculate_item=True solves the query items from item_users first (implicit's
    call): with the exact solver the last half-iteration did the same, so the results match
    the stored factors'; without it item_users is unused, as in implicit."""
    R = planted()
    model = fastals.ImplicitALS(factors=8, iterations=4, solver="cholesky", dtype=np.float64,
                                random_state=2).fit(R, show_progress=False)
    item_users = R.T.tocsr()
    query = np.arange(10)
    ids, scores = model.similar_items(query, N=5)
    again, again_scores = model.similar_items(query, N=5, recalculate_item=True,
                                              item_users=item_users[query])
    np.testing.assert_array_equal(again, ids)
    np.testing.assert_allclose(again_scores, scores, rtol=1e-9)
    one, _ = model.similar_items(3, N=5, item_users=item_users[3])
    np.testing.assert_array_equal(one, ids[3])
    with pytest.raises(ValueError, match="needs item_users"):
        model.similar_items(3, recalculate_item=True)
    sgd = fastals.SGDMatrixFactorization(factors=3, epochs=1).fit(R, show_progress=False)
    with pytest.raises(NotImplementedError, match="cannot recalculate items"):
        sgd.similar_items(3, recalculate_item=True, item_users=item_users[3])


def test_who_has_interactions_is_kept_through_fold_in_save_and_old_files(tmp_path):
    """user_counts / item_counts (stored training values) come from fit, follow fold-ins
    (rows added in between have none), are saved; a file saved before they were kept takes
    the users and items whose factors are all zero as the ones without interactions (with
    the exact solver, those are the empty ones)."""
    R = random_interactions(30, 20, 0.3, 5)
    R = R.multiply(sp.csr_matrix(np.where(np.arange(20) == 4, 0.0, 1.0))).tocsr()
    R = sp.csr_matrix(R.multiply(np.where(np.arange(30) == 7, 0.0, 1.0)[:, None]))
    R.eliminate_zeros()
    assert R[:, 4].nnz == 0 and R[7].nnz == 0
    model = fastals.ImplicitALS(factors=4, iterations=3, solver="cholesky", random_state=0)
    model.fit(R, show_progress=False)
    np.testing.assert_array_equal(model.user_counts, np.diff(R.indptr))
    np.testing.assert_array_equal(model.item_counts, np.diff(R.tocsc().indptr))
    path = model.save(tmp_path / "model")
    assert 4 not in model.similar_items(0, N=20)[0] and 7 not in model.similar_users(0, N=30)[0]
    model.partial_fit_items([4], sp.csr_matrix(R[:, 0].T))  # now item 4 has interactions
    assert model.item_counts[4] == R[:, 0].nnz and 4 in model.similar_items(0, N=20)[0]
    model.partial_fit_users([33], R[[0]])  # users 30..32 come in between, without any
    assert model.user_counts[30:].tolist() == [0, 0, 0, R[0].nnz]
    ids, _ = model.similar_users(0, N=40)
    assert 33 in ids and not {7, 30, 31, 32} & set(ids)
    ids, _ = model.similar_items(0, N=20, recalculate_item=True,
                                 item_users=sp.csr_matrix((1, 34)))  # a query without any
    assert ids.shape == (0,)
    with np.load(path, allow_pickle=False) as npz:  # as fastals wrote it before
        arrays = {k: npz[k] for k in npz.files if not k.endswith("_counts")}
    np.savez(tmp_path / "old.npz", **arrays)
    old = fastals.load(tmp_path / "old.npz")
    assert old.item_counts is None and old.user_counts is None
    assert 4 not in old.similar_items(0, N=20)[0] and 7 not in old.similar_users(0, N=30)[0]
    assert fastals.load(path).item_counts.tolist() == np.diff(R.tocsc().indptr).tolist()


def test_ids_are_int32_as_in_implicit():
    R = random_interactions(20, 15, 0.3, 2)
    model = fastals.ImplicitALS(factors=3, iterations=2, random_state=0).fit(R, show_progress=False)
    assert model.recommend(0, R[0])[0].dtype == np.int32
    assert model.recommend([0, 1], R[[0, 1]])[0].dtype == np.int32
    assert model.similar_items(2)[0].dtype == np.int32


@pytest.mark.parametrize("isa", ISAS)
def test_row_losses_do_not_depend_on_the_thread_count(isa):
    """The per-row losses of 2 threads equal those of 1 bit for bit (once, c - 1 and c p
    were shared between the threads of the kernel's prange: a race)."""
    rng = np.random.default_rng(11)
    n_users, n_items, F = 600, 400, 8
    dense = np.where(rng.random((n_users, n_items)) < 0.4,
                     rng.integers(1, 50, (n_users, n_items)), 0).astype(np.float64)
    R = sp.csr_matrix(dense)
    X = rng.standard_normal((n_users, F))
    Y = rng.standard_normal((n_items, F))
    als = kernels("_als", isa)
    outs = []
    for threads in (1,) + (2,) * 8:  # a race shows in some runs, not all
        out = np.empty(n_users)
        assert als.row_losses(R.indptr, R.indices, R.data, X, Y, Y.T @ Y, 0.3, threads,
                              out, 1.0) == 0
        outs.append(out)
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])
    expected = implicit_als_loss(R, X, Y, 0.0, 0.3)
    assert outs[0].sum() == pytest.approx(expected, rel=1e-9)
