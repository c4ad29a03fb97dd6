"""Numerical robustness and reproducibility across the models.

The issue's cases: regularization=0 on rank-deficient data, factors larger than the number of
items, rows with thousands of interactions, confidences up to 1e6, float32 accumulation --
each gives finite results or a named error whose message says what to change. And: the same
random_state gives bit-identical ALS factors for 1, 2 and 3 threads; SGD is bit-identical
for any thread count in its default stratified order, and documented as approximate with
more threads in its Hogwild order (strata=1).

(Already covered elsewhere and not repeated here: ImplicitALS bit-identical for 1/2/3 threads
on uniform rows and regularization=0 with an empty item (test_implicit_als.py); ExplicitALS
regularization=0 on a singular problem and 1e30 ratings in float32 (test_explicit_als.py);
SGD divergence and one-thread reproducibility (test_sgd.py).)
"""
import os

import numpy as np
import pytest
import scipy.sparse as sp

import fastals
import fastals.models.explicit_als
from fastals.exceptions import ModelFitError
from fastals.reference import implicit_als_exact_step
from conftest import assert_bit_identical_for_1_2_3_threads, random_interactions

ALL_FACTORS = ("user_factors", "item_factors", "user_bias", "item_bias")


def _finite(model):
    return all(np.isfinite(getattr(model, name)).all() for name in model._state_names
               if np.asarray(getattr(model, name)).dtype.kind == "f")


def heavy_rows(n_users=60, n_items=4000, heavy=(0, 7), per_heavy=3500, seed=0):
    """Sparse interactions plus a few users with thousands of them (values 1..5)."""
    rng = np.random.default_rng(seed)
    base = random_interactions(n_users, n_items, 0.002, seed).tolil()
    for user in heavy:
        items = rng.choice(n_items, per_heavy, replace=False)
        base[user, items] = rng.integers(1, 6, per_heavy).astype(np.float64)
    matrix = base.tocsr()
    assert np.diff(matrix.indptr)[list(heavy)].min() >= per_heavy
    return matrix


def rank_deficient(n_users=40, distinct=2, copies=3, seed=1):
    """Interactions whose item columns are `copies` copies of `distinct` columns."""
    base = random_interactions(n_users, distinct, 0.6, seed)
    base = base[np.diff(base.indptr) > 0]
    return sp.hstack([base] * copies).tocsr()


# --- reproducibility ---------------------------------------------------------------------------
@pytest.mark.parametrize("solver", ["cg", "cholesky"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_implicit_als_bit_identical_for_1_2_3_threads_with_heavy_rows(solver, dtype):
    """Rows of thousands of interactions are split across the gather buffer and scheduled
    differently for each thread count: the factors are still bit-identical."""
    assert_bit_identical_for_1_2_3_threads(
        lambda t: fastals.ImplicitALS(factors=8, iterations=2, solver=solver, dtype=dtype,
                                      random_state=5, num_threads=t), heavy_rows())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", [dict(), dict(nonnegative=True),
                                     dict(biases=False, weighted_regularization=False)],
                         ids=["biases", "nonnegative", "plain"])
def test_explicit_als_bit_identical_for_1_2_3_threads(monkeypatch, dtype, options):
    # small problems run on one thread whatever num_threads says: let every count be used
    monkeypatch.setattr(fastals.models.explicit_als, "MIN_WORK_PER_THREAD", 1)
    assert_bit_identical_for_1_2_3_threads(
        lambda t: fastals.ExplicitALS(factors=5, iterations=3, dtype=dtype, random_state=2,
                                      num_threads=t, **options),
        random_interactions(150, 90, 0.08, 12), ALL_FACTORS)


def test_sgd_reproducibility_is_documented():
    """Bit-identical for any thread count in the (default) stratified order, exact only with
    one thread for Hogwild (strata=1): said in the docstring and the README."""
    doc = " ".join(fastals.SGDMatrixFactorization.__doc__.split())
    assert "bit for bit, for any ``num_threads``" in doc
    assert "``strata=1`` only with ``num_threads=1``" in doc
    readme = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")
    text = " ".join(open(readme, encoding="utf-8").read().split())
    assert "runs are bit-identical for any `num_threads`" in text
    assert "only reproducible with `num_threads=1`" in text


@pytest.mark.parametrize("strata", [None, 7])
def test_sgd_is_bit_identical_for_1_2_3_threads(monkeypatch, strata):
    monkeypatch.setattr(fastals.models.sgd, "MIN_RATINGS_PER_THREAD", 1)
    assert_bit_identical_for_1_2_3_threads(
        lambda t: fastals.SGDMatrixFactorization(factors=8, epochs=5, random_state=1,
                                                 num_threads=t, strata=strata),
        random_interactions(300, 200, 0.05, 4), ALL_FACTORS)


def test_hogwild_sgd_with_two_threads_is_close_to_one_thread(monkeypatch):
    """With strata=1 the lock-free updates race: not bit-identical, but the same fit."""
    monkeypatch.setattr(fastals.models.sgd, "MIN_RATINGS_PER_THREAD", 1)
    ratings = random_interactions(300, 200, 0.05, 4)
    one = fastals.SGDMatrixFactorization(factors=8, epochs=10, random_state=1, num_threads=1,
                                         strata=1)
    two = fastals.SGDMatrixFactorization(factors=8, epochs=10, random_state=1, num_threads=2,
                                         strata=1)
    one.fit(ratings, show_progress=False)
    two.fit(ratings, show_progress=False)
    assert _finite(two)
    assert two.training_rmse_history[-1] == pytest.approx(one.training_rmse_history[-1],
                                                          rel=0.02)


# --- regularization = 0 on rank-deficient data ---------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_regularization_on_rank_deficient_data(dtype):
    """Two distinct item columns, four factors: the exact solvers name the problem (and what
    to change); CG, which never factorises, stays finite; SGD has no system to solve."""
    R = rank_deficient()
    hint = "raise regularization" if dtype == np.float64 else r"raise regularization \(or use"
    with pytest.raises(ModelFitError, match=rf"not positive definite.*regularization=0.0; {hint}"):
        fastals.ImplicitALS(factors=4, regularization=0.0, solver="cholesky", iterations=3,
                            dtype=dtype, random_state=0).fit(R, show_progress=False)
    cg = fastals.ImplicitALS(factors=4, regularization=0.0, solver="cg", iterations=3,
                             dtype=dtype, random_state=0).fit(R, show_progress=False)
    assert _finite(cg)
    for options in (dict(), dict(nonnegative=True)):
        with pytest.raises(ModelFitError, match="not positive definite.*raise regularization"):
            fastals.ExplicitALS(factors=4, regularization=0.0, iterations=3, dtype=dtype,
                                random_state=0, **options).fit(R, show_progress=False)
    sgd = fastals.SGDMatrixFactorization(factors=4, regularization=0.0, epochs=5, dtype=dtype,
                                         random_state=0).fit(R, show_progress=False)
    assert _finite(sgd)
    # a little regularization is all it takes
    fixed = fastals.ImplicitALS(factors=4, regularization=0.01, solver="cholesky",
                                iterations=3, dtype=dtype, random_state=0).fit(
        R, show_progress=False)
    assert _finite(fixed)


# --- factors > items ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_more_factors_than_items(dtype):
    R = random_interactions(50, 8, 0.4, 3)
    models = [fastals.ImplicitALS(factors=30, iterations=3, solver=s, dtype=dtype,
                                  random_state=0) for s in ("cg", "cholesky")]
    models += [fastals.ExplicitALS(factors=30, iterations=3, dtype=dtype, random_state=0),
               fastals.ExplicitALS(factors=30, iterations=3, dtype=dtype, random_state=0,
                                   nonnegative=True),
               fastals.SGDMatrixFactorization(factors=30, epochs=5, dtype=dtype,
                                              random_state=0)]
    for model in models:
        model.fit(R, show_progress=False)
        assert _finite(model), type(model).__name__
        ids, scores = model.recommend(np.arange(50), R, N=5)
        assert np.isfinite(scores[ids >= 0]).all()
        assert np.isfinite(model.similar_items(0, N=8)[1]).all()
    with pytest.raises(ModelFitError, match="regularization=0.0; raise regularization"):
        fastals.ImplicitALS(factors=30, regularization=0.0, solver="cholesky", iterations=1,
                            dtype=dtype, random_state=0).fit(R, show_progress=False)


# --- rows with thousands of interactions, float32 accumulation -----------------------------------
def _relative(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("K", [8, 64])
def test_heavy_rows_in_float32_follow_float64(K):
    """A row of 3500 interactions accumulates 3500 terms into each entry of its system (and
    with K=64 overflows the per-thread gather buffer): its exact float32 solve against the
    same item factors stays within 1e-4 (relative) of the float64 one, and of the reference."""
    R = heavy_rows()
    m64 = fastals.ImplicitALS(factors=K, iterations=2, dtype=np.float64, random_state=1,
                              num_threads=2).fit(R, show_progress=False)
    m32 = fastals.ImplicitALS(factors=K, regularization=m64.regularization_applied,
                              dtype=np.float32, num_threads=2)
    m32.user_factors = m64.user_factors.astype(np.float32)
    m32.item_factors = m64.item_factors.astype(np.float32)
    Y = m32.item_factors.astype(np.float64)  # both solve against exactly these factors
    m64.item_factors = Y
    heavy = R[[0, 7]]
    x64 = m64.recalculate_user([0, 7], heavy)
    x32 = m32.recalculate_user([0, 7], heavy)
    reference = implicit_als_exact_step(heavy, Y, m64.regularization_applied, m64.alpha)
    np.testing.assert_allclose(x64, reference, rtol=1e-9, atol=1e-12)
    assert _relative(x32.astype(np.float64), reference) < 1e-4


def test_heavy_rows_in_explicit_and_neighbourhood_models():
    R = heavy_rows()
    for dtype in (np.float32, np.float64):
        explicit = fastals.ExplicitALS(factors=6, iterations=2, dtype=dtype,
                                       random_state=0).fit(R, show_progress=False)
        assert _finite(explicit)
        sgd = fastals.SGDMatrixFactorization(factors=6, epochs=3, dtype=dtype,
                                             random_state=0, num_threads=1).fit(
            R, show_progress=False)
        assert _finite(sgd)
    predictions = {dtype: fastals.ExplicitALS(factors=6, iterations=2, dtype=dtype,
                                              random_state=0).fit(R, show_progress=False)
                   .predict(np.zeros(100, dtype=np.int64), np.arange(100))
                   for dtype in (np.float32, np.float64)}
    np.testing.assert_allclose(predictions[np.float32], predictions[np.float64], atol=2e-3)
    # neighbourhood models: a user with thousands of items is one long column per item
    exact = fastals.top_k_similarity(R, K=5, dtype=np.float64)
    single = fastals.top_k_similarity(R, K=5, dtype=np.float32)
    assert single.nnz == exact.nnz
    np.testing.assert_allclose(np.sort(single.data), np.sort(exact.data), rtol=1e-5)
    user_knn = fastals.UserKNN(K=10).fit(R, show_progress=False)
    assert np.isfinite(user_knn.predict(0, np.arange(50))).all()


# --- confidences up to 1e6 -----------------------------------------------------------------------
@pytest.mark.parametrize("solver", ["cg", "cholesky"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("how", ["alpha=1e6", "values up to 1e6"])
def test_confidences_up_to_a_million(solver, dtype, how):
    """c = 1 + alpha |r| up to ~5e6: finite factors, or (float32, exact solver) a named
    error that says to raise the regularization or use float64 -- never NaN."""
    R = random_interactions(80, 60, 0.1, 7)
    if how == "alpha=1e6":
        model = fastals.ImplicitALS(factors=8, alpha=1e6, iterations=3, solver=solver,
                                    dtype=dtype, random_state=0)
    else:
        R = R.copy()
        R.data = R.data / 5 * 1e6
        model = fastals.ImplicitALS(factors=8, alpha=1.0, iterations=3, solver=solver,
                                    dtype=dtype, random_state=0)
    try:
        model.fit(R, show_progress=False, callback=lambda *args: _check_finite(model))
    except ModelFitError as exc:
        assert dtype == np.float32 and "raise regularization (or use float64)" in str(exc)
        return
    assert _finite(model)
    ids, scores = model.recommend(np.arange(80), R, N=5)
    assert (ids >= 0).all() and np.isfinite(scores).all()


def _check_finite(model):
    assert _finite(model), "non-finite factors after an iteration"


def test_overflow_is_detected_after_the_iteration_that_caused_it():
    """Values so large that the confidence overflows float32 inside the solve: the fit stops
    with ModelFitError naming the side and what to change; no NaN model is left to use."""
    R = random_interactions(30, 20, 0.2, 2)
    R = R.copy()
    R.data = R.data * 1e37
    for solver in ("cg", "cholesky"):
        model = fastals.ImplicitALS(factors=4, alpha=40.0, iterations=2, solver=solver,
                                    random_state=0)
        with pytest.raises(ModelFitError, match="user.*(float64|regularization)"):
            model.fit(R, show_progress=False)
    explicit = fastals.ExplicitALS(factors=4, iterations=2, random_state=0)
    with pytest.raises(ModelFitError, match="non-finite.*float64"):
        explicit.fit(R, show_progress=False)


def test_a_system_that_overflows_float32_is_an_error_not_a_zero_factor():
    """A_u = gram + (c - 1) y y^T with (c - 1) |y|^2 beyond float32's range: the Cholesky
    pivot is infinite and x = b / inf = 0 looked like a solution (a silent wrong answer, for
    K = 1 with no NaN to catch it); CG took a step of rs / inf = 0 and kept a stale x. Both
    now report the overflow."""
    from fastals._kernels.dispatch import kernels

    row = sp.csr_matrix(np.array([[1e30, 0.0]], dtype=np.float32))
    model = fastals.ImplicitALS(factors=1, regularization=0.01, alpha=1e9, dtype=np.float32)
    model.user_factors = np.ones((1, 1), np.float32)
    model.item_factors = np.ones((2, 1), np.float32)
    with pytest.raises(ModelFitError, match="overflow float32.*scale them down.*float64"):
        model.recalculate_user(0, row)
    # the same row in float64 is an ordinary, finite solve (x ~ 1)
    model64 = fastals.ImplicitALS(factors=1, regularization=0.01, alpha=1e9,
                                  dtype=np.float64)
    model64.user_factors, model64.item_factors = np.ones((1, 1)), np.ones((2, 1))
    assert model64.recalculate_user(0, row)[0] == pytest.approx(1.0, rel=1e-6)
    als = kernels("_als")
    Y = np.ones((2, 1), np.float32)
    gram = (Y.T @ Y + 0.01).astype(np.float32)
    for solve in ("solve_cg", "solve_cholesky"):
        X = np.full((1, 1), 0.5, np.float32)
        status = np.zeros(1, np.int8)
        args = (np.array([0, 1], np.int32), np.array([0], np.int32),
                np.array([1e30], np.float32), X, Y, gram, np.float32(1e9))
        if solve == "solve_cg":
            als.solve_cg(*args, 3, 1, status)
        else:
            als.solve_cholesky(*args, 1, status)
        assert status[0] == 3, solve  # OVERFLOW
