"""iALS (Rendle et al.'s parametrisation) and the iALS++ subspace solver: the _ials kernels
against fastals.reference.ials on every ISA build, the exact-solve and HKV equivalences, the
loss, thread-count determinism, bad inputs and the recommender contract."""
import numpy as np
import pytest
import scipy.sparse as sp

import fastals
from fastals._kernels import _status
from fastals._kernels.dispatch import available_isas, kernels
from fastals._kernels.status import Status
from fastals.reference import ials as ref
from fastals.reference.implicit_als import implicit_als_exact_step
from conftest import assert_bit_identical_for_1_2_3_threads, random_interactions
from recommender_base_test import RecommenderBaseTestMixin

ISAS = available_isas("_ials")


def kernel_step(isa, R, X, Y, gram, shifts, alpha, block_size, offset, gram_weight, dtype,
                threads=2, index_dtype=np.int32, objective=False):
    """One call of solve_subspace on copies (in `dtype`): (new X, status, objectives)."""
    R = sp.csr_matrix(R)
    out = np.ascontiguousarray(X, dtype=dtype)
    status = np.zeros(R.shape[0], dtype=np.int8)
    objectives = np.zeros(R.shape[0]) if objective else None
    kernels("_ials", isa).solve_subspace(
        R.indptr.astype(index_dtype), R.indices.astype(index_dtype), R.data.astype(dtype), out,
        np.ascontiguousarray(Y, dtype=dtype), np.ascontiguousarray(gram, dtype=dtype),
        dtype(alpha), block_size, threads, status,
        None if shifts is None else shifts.astype(dtype), dtype(offset), dtype(gram_weight),
        objectives)
    return out, status, objectives


def random_problem(F, seed=0, n_users=40, n_items=30, negative=True):
    R = random_interactions(n_users, n_items, 0.2, seed, negative=negative)
    rng = np.random.default_rng(seed + 1)
    X = rng.standard_normal((n_users, F)) * 0.3
    Y = rng.standard_normal((n_items, F)) * 0.3
    return R, X, Y, rng.random(n_users)


# (offset, gram_weight): Hu et al.'s rows; `implicit`'s weighting (q < 0 for c < 1);
# Rendle et al.'s (gram_weight 0)
WEIGHTINGS = [(1.0, 1.0), (0.0, 1.0), (1.0, 0.0)]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("F, block_size", [(1, 1), (7, 3), (16, 16), (37, 8), (20, 50)])
@pytest.mark.parametrize("offset, gram_weight", WEIGHTINGS)
@pytest.mark.parametrize("threads", [1, 2])
def test_kernel_matches_reference_float64(isa, F, block_size, offset, gram_weight, threads):
    R, X, Y, shifts = random_problem(F)
    gram = 0.7 * Y.T @ Y + 0.1 * np.eye(F)
    want = ref.subspace_step(R, X, Y, gram, shifts, 0.4, block_size, offset, gram_weight)
    got, status, objectives = kernel_step(isa, R, X, Y, gram, shifts, 0.4, block_size,
                                          offset, gram_weight, np.float64, threads,
                                          objective=True)
    assert (status == 0).all()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-8)
    np.testing.assert_allclose(objectives, ref.row_objectives(R, want, Y, gram, shifts, 0.4,
                                                              offset, gram_weight),
                               rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_kernel_matches_reference_float32(isa, index_dtype):
    """float32: the blocks' solves and the cache updates round at 1e-7 relative; 1e-4
    absolute on factors of order 1 leaves room for the conditioning of the small systems."""
    R, X, Y, shifts = random_problem(24, seed=3)
    gram = Y.T @ Y + 0.1 * np.eye(24)
    want = ref.subspace_step(R, X, Y, gram, None, 0.4, 5)
    got, status, _ = kernel_step(isa, R, X, Y, gram, None, 0.4, 5, 1.0, 1.0, np.float32,
                                 index_dtype=index_dtype)
    assert (status == 0).all()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


@pytest.mark.parametrize("isa", ISAS)
def test_one_block_of_all_coordinates_is_the_exact_solve(isa):
    R, X, Y, _ = random_problem(12, seed=5, negative=False)
    gram = Y.T @ Y + 0.1 * np.eye(12)
    got, _, _ = kernel_step(isa, R, X, Y, gram, None, 2.0, 12, 1.0, 1.0, np.float64)
    np.testing.assert_allclose(got, implicit_als_exact_step(R, Y, 0.1, 2.0), atol=1e-10)
    als = kernels("_als", isa)
    exact = np.zeros_like(X)
    Rc = sp.csr_matrix(R)
    als.solve_cholesky(Rc.indptr, Rc.indices, Rc.data, exact, Y, gram, 2.0, 2,
                       np.zeros(R.shape[0], np.int8))
    np.testing.assert_allclose(got, exact, atol=1e-10)


def test_kernel_reports_a_singular_block_and_overflow():
    R, X, Y, _ = random_problem(6, seed=2, negative=False)
    zero = np.zeros((6, 6))
    _, status, _ = kernel_step(ISAS[0], R, X, np.zeros_like(Y), zero, None, 1.0, 3, 1.0, 1.0,
                               np.float64)
    assert (status == Status.NOT_POSITIVE_DEFINITE).all()
    big = sp.csr_matrix(R) * 1e30
    _, status, _ = kernel_step(ISAS[0], big, X, Y, Y.T @ Y + np.eye(6), None, 1e10, 3, 1.0,
                               1.0, np.float32)
    assert (status[np.diff(sp.csr_matrix(R).indptr) > 0] == Status.OVERFLOW).all()


def test_out_of_scratch_memory_is_a_memory_error():
    R = random_interactions(30, 20, 0.3, 1)
    _status.simulate_out_of_memory(True)
    try:
        with pytest.raises(MemoryError, match="could not allocate"):
            fastals.iALS(factors=4, iterations=1, random_state=0).fit(R, show_progress=False)
    finally:
        _status.simulate_out_of_memory(False)


# --- the models --------------------------------------------------------------------------
def binary(R):
    R = sp.csr_matrix(R, copy=True)
    R.data[:] = 1
    return R


def test_implicit_als_ials_with_block_size_factors_equals_cholesky():
    R = random_interactions(60, 40, 0.15, 4)
    fits = [fastals.ImplicitALS(factors=10, iterations=4, solver=solver, block_size=10,
                                dtype=np.float64, random_state=0).fit(R, show_progress=False)
            for solver in ("cholesky", "ials++")]
    for name in ("user_factors", "item_factors"):
        np.testing.assert_allclose(getattr(fits[1], name), getattr(fits[0], name), atol=1e-8)


def test_ials_cholesky_is_ials_plus_plus_with_one_block():
    R = random_interactions(50, 35, 0.15, 6)
    fits = [fastals.iALS(factors=9, iterations=3, solver=solver, block_size=block,
                         dtype=np.float64, random_state=0).fit(R, show_progress=False)
            for solver, block in (("cholesky", None), ("ials++", 9))]
    np.testing.assert_allclose(fits[1].item_factors, fits[0].item_factors, atol=1e-10)


@pytest.mark.parametrize("unobserved_weight", [1.0, 0.25])
def test_with_nu_0_rendle_is_hkv_with_scaled_targets(unobserved_weight):
    """On binary data, nu = 0: each observed pair adds (1 - x.y)^2 + alpha_0 (x.y)^2 =
    (1 + alpha_0)(t - x.y)^2 + const with t = 1 / (1 + alpha_0). Dividing L by alpha_0 and
    the factors by sqrt(t) gives HKV's objective with c = (1 + alpha_0) / alpha_0
    (alpha = 1 / alpha_0) and regularization lambda / (alpha_0 t). So from starts scaled
    alike the exact fits agree up to sqrt(t); at alpha_0 = 1: c = 2, 2 lambda, 1/sqrt(2)."""
    R = binary(random_interactions(60, 40, 0.15, 8))
    lam, a0, F = 0.05, unobserved_weight, 6
    t = 1 / (1 + a0)
    hkv = fastals.ImplicitALS(factors=F, regularization=lam / (a0 * t), alpha=1 / a0,
                              iterations=4, solver="cholesky", dtype=np.float64,
                              random_state=0).fit(R, show_progress=False)
    # ImplicitALS starts from N(0, 0.01^2): the same draws at std init_std / sqrt(F)
    rendle = fastals.iALS(factors=F, regularization=lam, unobserved_weight=a0,
                          regularization_exponent=0.0, iterations=4, solver="cholesky",
                          init_std=0.01 * np.sqrt(t) * np.sqrt(F), dtype=np.float64,
                          random_state=0).fit(R, show_progress=False)
    np.testing.assert_allclose(rendle.user_factors, hkv.user_factors * np.sqrt(t), atol=1e-8)
    np.testing.assert_allclose(rendle.item_factors, hkv.item_factors * np.sqrt(t), atol=1e-8)


@pytest.mark.parametrize("solver, block_size", [("ials++", 3), ("cholesky", None)])
@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_ials_fit_matches_reference_fit(solver, block_size, alpha):
    R = random_interactions(40, 30, 0.2, 9)
    model = fastals.iALS(factors=7, regularization=0.02, unobserved_weight=0.3,
                         regularization_exponent=0.5, alpha=alpha, iterations=3,
                         solver=solver, block_size=block_size, dtype=np.float64,
                         random_state=0)
    X0, Y0 = model._start_factors(np.random.default_rng(0), 40, 30)
    model.fit(R, show_progress=False)
    X, Y = ref.ials_fit(R, X0, Y0, 0.02, 0.3, 0.5, 3, block_size or 7, alpha)
    np.testing.assert_allclose(model.user_factors, X, atol=1e-8)
    np.testing.assert_allclose(model.item_factors, Y, atol=1e-8)


@pytest.mark.parametrize("alpha", [0.0, 2.0])
def test_loss_decreases_every_epoch_and_matches_reference(alpha):
    R = random_interactions(80, 50, 0.1, 10)
    model = fastals.iALS(factors=16, block_size=4, iterations=8, alpha=alpha,
                         dtype=np.float64, random_state=0, calculate_training_loss=True)
    model.fit(R, show_progress=False)
    assert np.all(np.diff(model.loss_history) < 0), model.loss_history
    weight = (1 + alpha * np.abs(R.data)).sum() + 0.1 * 80 * 50
    want = ref.ials_loss(R, model.user_factors, model.item_factors, 0.003, 0.1, 1.0, alpha)
    assert model.loss_history[-1] == pytest.approx(want / weight, rel=1e-10)


def test_implicit_als_ials_loss_decreases_every_epoch():
    R = random_interactions(80, 50, 0.1, 11)
    model = fastals.ImplicitALS(factors=16, solver="ials++", block_size=5, iterations=8,
                                dtype=np.float64, random_state=0,
                                calculate_training_loss=True).fit(R, show_progress=False)
    assert np.all(np.diff(model.loss_history) < 0), model.loss_history


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_factors_identical_for_any_thread_count(dtype):
    R = random_interactions(120, 70, 0.1, 12)
    assert_bit_identical_for_1_2_3_threads(
        lambda t: fastals.iALS(factors=12, block_size=5, iterations=3, dtype=dtype,
                               random_state=0, num_threads=t), R)
    assert_bit_identical_for_1_2_3_threads(
        lambda t: fastals.ImplicitALS(factors=12, solver="ials++", block_size=5, iterations=3,
                                      dtype=dtype, random_state=0, num_threads=t), R)


def test_initial_factors_have_the_documented_std():
    model = fastals.iALS(factors=256, init_std=0.2, iterations=0, random_state=0)
    model.fit(random_interactions(300, 200, 0.05, 1), show_progress=False)
    assert model.user_factors.std() == pytest.approx(0.2 / 16, rel=0.02)


def test_fold_in_solves_the_rows_exactly():
    R = random_interactions(60, 40, 0.15, 13)
    model = fastals.iALS(factors=6, iterations=6, regularization=0.05,
                         dtype=np.float64, random_state=0).fit(R, show_progress=False)
    Y = model.item_factors
    shifts = ref.rendle_regularization(np.diff(R.indptr), 40, 0.05, 0.1, 1.0)
    want = ref.subspace_step(R, np.zeros((60, 6)), Y, 0.1 * Y.T @ Y, shifts, 0.0, 6,
                             gram_weight=0.0)
    np.testing.assert_allclose(model.recalculate_user(np.arange(60), R), want, atol=1e-10)


def test_movielens_100k_beats_popularity(ml100k_path):
    from fastals.datasets import load_movielens_100k
    from fastals.evaluation import ranking_metrics_at_k, train_test_split
    data, _ = load_movielens_100k(ml100k_path)
    train, test = train_test_split(binary(data), test_size=0.2, random_state=0)
    model = fastals.iALS(factors=64, iterations=8, random_state=0).fit(train,
                                                                       show_progress=False)
    pop = fastals.PopularityBaseline().fit(train, show_progress=False)
    got = ranking_metrics_at_k(model, train, test, K=10, show_progress=False)["ndcg"]
    base = ranking_metrics_at_k(pop, train, test, K=10, show_progress=False)["ndcg"]
    assert got > 1.2 * base, (got, base)


@pytest.mark.parametrize("kwargs, match", [
    ({"block_size": 0}, "block_size must be"),
    ({"block_size": 9, "factors": 8}, r"block_size must be at most factors=8, got 9"),
    ({"unobserved_weight": -0.1}, "unobserved_weight must be"),
    ({"regularization_exponent": -0.5}, "regularization_exponent must be"),
    ({"regularization_exponent": 1.5}, r"regularization_exponent must be <= 1, got 1.5"),
    ({"init_std": 0}, "init_std must be > 0"),
    ({"solver": "cg"}, "solver must be"),
    ({"alpha": -1}, "alpha must be"),
])
def test_bad_ials_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fastals.iALS(**kwargs)


def test_bad_implicit_als_block_size():
    with pytest.raises(ValueError, match="block_size must be at most factors=4, got 5"):
        fastals.ImplicitALS(factors=4, solver="ials++", block_size=5)
    with pytest.raises(ValueError, match="disagree"):
        fastals.ImplicitALS(solver="ials++", use_cg=True)
    assert fastals.ImplicitALS(solver="ials++", use_cg=False).solver == "ials++"


def test_explain_is_refused():
    R = random_interactions(20, 15, 0.3, 1)
    model = fastals.iALS(factors=3, iterations=1).fit(R, show_progress=False)
    with pytest.raises(NotImplementedError, match="iALS.explain"):
        model.explain(0, R, 1)


def test_save_load_round_trip(tmp_path):
    R = random_interactions(20, 15, 0.3, 1)
    model = fastals.iALS(factors=4, block_size=2, unobserved_weight=0.5, iterations=2,
                         random_state=0).fit(R, show_progress=False)
    loaded = fastals.load(model.save(tmp_path / "m.npz"))
    assert type(loaded) is fastals.iALS and loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.item_factors, model.item_factors)


class TestiALSBehaviour(RecommenderBaseTestMixin):
    def make_model(self):
        return fastals.iALS(factors=2, regularization=0.01, unobserved_weight=0.5,
                            regularization_exponent=0.0, iterations=15, block_size=1,
                            random_state=0, num_threads=1)


class TestImplicitALSSubspaceBehaviour(RecommenderBaseTestMixin):
    def make_model(self):
        return fastals.ImplicitALS(factors=2, iterations=15, solver="ials++", block_size=1,
                                   random_state=0, num_threads=1)
