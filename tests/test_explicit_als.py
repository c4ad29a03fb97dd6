"""ExplicitALS: kernel against the numpy reference, the explicit-model contract, options."""
import numpy as np
import pytest
import scipy.sparse as sp
from explicit_contract import ExplicitModelContract, low_rank_ratings, star_ratings

import fastals
from fastals._kernels.dispatch import available_isas, kernels
from fastals.exceptions import ModelFitError
from fastals.models.explicit_als import initial_item_factors
from fastals.reference import explicit_als_fit, explicit_als_loss, explicit_als_step


class TestExplicitALSContract(ExplicitModelContract):
    model_class = fastals.ExplicitALS
    movielens_threshold = 0.92
    recovery_params = {"factors": 3, "regularization": 1e-6, "iterations": 30}

    def make(self, **params):
        params.setdefault("factors", 8)
        return fastals.ExplicitALS(**params)


def ratings_with_zeros(seed=0):
    """Small random ratings including stored zeros and a user and an item without ratings."""
    ratings = star_ratings(30, 20, 0.3, seed).tolil()
    ratings[4, :] = 0
    ratings[:, 6] = 0
    ratings = sp.csr_matrix(ratings)
    ratings.eliminate_zeros()
    ratings.data[::7] = 0.0  # explicit zero ratings
    return ratings


# --- kernel against reference ------------------------------------------------------------------
@pytest.mark.parametrize("isa", available_isas("_explicit"))
@pytest.mark.parametrize("num_threads", [1, 2])
@pytest.mark.parametrize("biases, weighted, nonnegative", [
    (False, False, False), (True, False, False), (True, True, False), (False, True, False),
    (True, True, True), (False, False, True)])
def test_solve_rows_matches_reference(isa, num_threads, biases, weighted, nonnegative):
    """float64: the exact solves agree to round-off; the NNLS coordinate descent stops at a
    relative step of 1e-12, well inside the 1e-6 stated by the issue."""
    ratings = ratings_with_zeros()
    rng = np.random.default_rng(1)
    Y = np.abs(rng.standard_normal((20, 5)))
    y_bias = rng.standard_normal(20)
    X = np.abs(rng.standard_normal((30, 5)))
    x_bias = np.zeros(30)
    status = np.zeros(30, dtype=np.int8)
    kernels("_explicit", isa).solve_rows(
        ratings.indptr, ratings.indices, ratings.data, X, x_bias, Y, y_bias, 3.2, 0.3, 0.1,
        weighted, biases, nonnegative, num_threads, status)
    X_ref, bias_ref = explicit_als_step(ratings, Y, y_bias, 3.2, 0.3, 0.1, weighted, biases,
                                        nonnegative)
    assert not status.any()
    np.testing.assert_allclose(X, X_ref, atol=1e-6)
    np.testing.assert_allclose(x_bias, bias_ref, atol=1e-6)
    assert np.all(X[4] == 0) and x_bias[4] == 0  # the user without ratings
    if nonnegative:
        assert X.min() >= 0


@pytest.mark.parametrize("num_threads", [1, 2])
@pytest.mark.parametrize("biases, weighted, nonnegative",
                         [(True, True, False), (False, False, False), (True, False, True)])
@pytest.mark.parametrize("factors", [4, 15, 16, 21])
def test_one_iteration_matches_reference(num_threads, biases, weighted, nonnegative, factors,
                                         monkeypatch):
    """One model iteration (users, then items) equals the reference to 1e-6 in float64.
    Up to 16 unknowns (factors + bias) the Gram matrices take the short-row kernel, above it
    the 4 x 16 tiles: 15, 16 and 21 factors straddle the switch with and without biases."""
    monkeypatch.setattr(fastals.models.explicit_als, "MIN_WORK_PER_THREAD", 1)
    ratings = ratings_with_zeros(3)
    params = dict(factors=factors, regularization=(0.2, 0.4), bias_regularization=0.05,
                  weighted_regularization=weighted, biases=biases, nonnegative=nonnegative)
    model = fastals.ExplicitALS(iterations=1, dtype=np.float64, random_state=7,
                                num_threads=num_threads, **params)
    model.fit(ratings, show_progress=False)
    Y0 = initial_item_factors(np.random.default_rng(7), np.bincount(ratings.indices,
                              minlength=20), factors, nonnegative, np.float64)
    X, x_bias, Y, y_bias, mu = explicit_als_fit(
        ratings, Y0, 1, (0.2, 0.4), 0.05, weighted, biases, nonnegative)
    np.testing.assert_allclose(model.user_factors, X, atol=1e-6)
    np.testing.assert_allclose(model.item_factors, Y, atol=1e-6)
    np.testing.assert_allclose(model.user_bias, x_bias, atol=1e-6)
    np.testing.assert_allclose(model.item_bias, y_bias, atol=1e-6)


def test_float32_kernel_matches_reference():
    """float32 arithmetic: relative error of the solves ~1e-5 on these well-posed systems."""
    ratings = ratings_with_zeros(5)
    rng = np.random.default_rng(2)
    Y = rng.standard_normal((20, 6)).astype(np.float32)
    y_bias = rng.standard_normal(20).astype(np.float32)
    X = np.zeros((30, 6), dtype=np.float32)
    x_bias = np.zeros(30, dtype=np.float32)
    status = np.zeros(30, dtype=np.int8)
    kernels("_explicit").solve_rows(ratings.indptr, ratings.indices,
                                    ratings.data.astype(np.float32), X, x_bias, Y, y_bias,
                                    np.float32(3), np.float32(0.2), np.float32(0.2), True, True,
                                    False, 2, status)
    X_ref, bias_ref = explicit_als_step(ratings, Y, y_bias, 3.0, 0.2, 0.2, True, True, False)
    np.testing.assert_allclose(X, X_ref, atol=1e-4)
    np.testing.assert_allclose(x_bias, bias_ref, atol=1e-4)


def test_float32_follows_the_float64_path():
    """Same initial factors in both precisions: predictions agree to ~1e-3 stars."""
    ratings = star_ratings()
    m64, m32 = (fastals.ExplicitALS(factors=8, random_state=0, dtype=dtype).fit(
        ratings, show_progress=False) for dtype in (np.float64, np.float32))
    coo = ratings.tocoo()
    np.testing.assert_allclose(m32.predict(coo.row, coo.col), m64.predict(coo.row, coo.col),
                               atol=2e-3)


def test_fit_is_identical_for_any_thread_count(monkeypatch):
    monkeypatch.setattr(fastals.models.explicit_als, "MIN_WORK_PER_THREAD", 1)  # 2 threads
    ratings = star_ratings(200, 100, 0.1, 9)
    one = fastals.ExplicitALS(factors=6, random_state=3, num_threads=1).fit(
        ratings, show_progress=False)
    two = fastals.ExplicitALS(factors=6, random_state=3, num_threads=2).fit(
        ratings, show_progress=False)
    np.testing.assert_array_equal(one.user_factors, two.user_factors)
    np.testing.assert_array_equal(one.item_bias, two.item_bias)


# --- loss, options ---------------------------------------------------------------------------------
@pytest.mark.parametrize("nonnegative", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_loss_is_finite_and_decreasing(nonnegative, weighted):
    """Every half-iteration minimises L exactly over its block (or, for NNLS, warm-started
    coordinate descent never increases it), so L never increases (float64 round-off aside)."""
    ratings = star_ratings(80, 50, 0.2, 2)
    model = fastals.ExplicitALS(factors=5, iterations=8, nonnegative=nonnegative,
                                weighted_regularization=weighted, regularization=0.1,
                                calculate_training_loss=True, dtype=np.float64, random_state=0)
    model.fit(ratings, show_progress=False)
    loss = np.array(model.loss_history)
    assert len(loss) == 8 and np.isfinite(loss).all()
    assert np.all(np.diff(loss) <= 1e-9 * loss[:-1]), loss
    assert loss[-1] < loss[0]
    # the recorded loss is the reference objective per rating
    reference = explicit_als_loss(ratings, model.user_factors, model.user_bias,
                                  model.item_factors, model.item_bias, model.global_mean, 0.1,
                                  weighted=weighted)
    assert loss[-1] == pytest.approx(reference / ratings.nnz, rel=1e-9)
    if nonnegative:
        assert model.user_factors.min() >= 0 and model.item_factors.min() >= 0


def test_nonnegative_factors_on_movielens_like_data():
    ratings = star_ratings(150, 90, 0.15, 6)
    model = fastals.ExplicitALS(factors=10, nonnegative=True, random_state=0,
                                calculate_training_loss=True).fit(ratings, show_progress=False)
    assert model.user_factors.min() >= 0 and model.item_factors.min() >= 0
    assert (model.user_factors == 0).any()  # the constraint is active somewhere
    assert np.isfinite(model.loss_history).all()
    assert model.rmse(ratings) < 0.8


def test_without_biases_the_prediction_is_the_dot_product():
    ratings = star_ratings()
    model = fastals.ExplicitALS(factors=8, biases=False, random_state=0).fit(
        ratings, show_progress=False)
    assert not model.user_bias.any() and not model.item_bias.any()
    np.testing.assert_allclose(model.predict(1, 2, clip=False),
                               model.user_factors[1] @ model.item_factors[2], rtol=1e-5)


def test_zero_regularization_on_a_singular_problem_is_a_clear_error():
    ratings = sp.csr_matrix(([4.0, 3.0], ([0, 1], [0, 0])), shape=(2, 2))
    with pytest.raises(ModelFitError, match="not positive definite .* raise regularization"):
        fastals.ExplicitALS(factors=4, regularization=0.0, weighted_regularization=False,
                            random_state=0).fit(ratings, show_progress=False)


def test_large_ratings_in_float32_fail_clearly():
    ratings = sp.csr_matrix(np.array([[1e30, 3e30], [2e30, 0]], dtype=np.float64))
    with pytest.raises(ModelFitError, match="non-finite"):
        fastals.ExplicitALS(factors=2, random_state=0).fit(ratings, show_progress=False)


@pytest.mark.parametrize("params, error, message", [
    ({"factors": 0}, ValueError, "factors must be a positive int, got 0"),
    ({"regularization": -1}, ValueError, "regularization must be >= 0"),
    ({"regularization": (0.1, -2)}, ValueError, r"regularization\[1\] \(items\) must be >= 0"),
    ({"regularization": (0.1, 0.2, 0.3)}, TypeError, "a \\(users, items\\) pair"),
    ({"bias_regularization": "x"}, TypeError, "bias_regularization must be a number"),
    ({"iterations": -1}, ValueError, "iterations must be an int >= 0"),
    ({"biases": 1}, TypeError, "biases must be True or False"),
    ({"dtype": np.int32}, ValueError, "dtype must be float32 or float64"),
    ({"num_threads": -1}, ValueError, "num_threads must be an int >= 0"),
])
def test_bad_parameters(params, error, message):
    with pytest.raises(error, match=message):
        fastals.ExplicitALS(**params)


def test_separate_user_and_item_regularization_survive_save(tmp_path):
    ratings = star_ratings()
    model = fastals.ExplicitALS(factors=4, regularization=(0.1, 0.3), random_state=0).fit(
        ratings, show_progress=False)
    loaded = fastals.load(model.save(tmp_path / "m"))
    assert loaded.regularization == [0.1, 0.3]
    np.testing.assert_array_equal(loaded.item_factors, model.item_factors)


def test_noise_free_ratings_with_biases_are_recovered():
    observed, truth = low_rank_ratings(70, 50, 2, 0.5, seed=8, offset=3.5)
    model = fastals.ExplicitALS(factors=3, regularization=1e-7, iterations=40, dtype=np.float64,
                                random_state=0).fit(observed, show_progress=False)
    coo = observed.tocoo()
    assert np.abs(model.predict(coo.row, coo.col, clip=False) - coo.data).max() < 1e-2


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_column_counts_match_bincount(index_dtype):
    """The explicit models count ratings per item with a kernel that does not widen the
    indices (numpy's bincount copies them to int64 first)."""
    from fastals._kernels import checked
    from fastals.models.explicit import column_counts
    R = sp.random(300, 70, density=0.1, format="csr", random_state=4)
    R.indices = R.indices.astype(index_dtype)
    np.testing.assert_array_equal(column_counts(R), np.bincount(R.indices, minlength=70))
    with pytest.raises(ValueError, match="column index 70 is outside"):
        checked.column_counts(np.array([1, 70], dtype=index_dtype), np.zeros(70, np.int64))
