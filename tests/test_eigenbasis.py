"""Implicit ALS in the eigenbasis of the fixed side's Gram matrix (large factor counts): the
dense-product kernels (Gram matrix, change of basis) against numpy, the ALS kernels with a
diagonal Gram matrix against the same kernels with it dense, and whole fits in the
eigenbasis against fits without it."""
from contextlib import contextmanager

import numpy as np
import pytest

import fastals
from fastals._kernels import _status
from fastals._kernels.dispatch import available_isas, kernels
from fastals._validation import as_csr
from fastals.models import blocksolve
from fastals.models.blocksolve import eigenbasis, gram_matrix, rotate_rows
from conftest import assert_bit_identical_for_1_2_3_threads, random_interactions

ISAS = available_isas("_als")


@contextmanager
def eigenbasis_from(factors):
    """Both solvers in the eigenbasis from `factors` factors on, for any number of rows."""
    names = ("EIGENBASIS_MIN_FACTORS", "EIGENBASIS_MIN_FACTORS_EXACT",
             "EIGENBASIS_MIN_ROWS_PER_FACTOR", "EIGENBASIS_MAX_FIXED_PER_SOLVED")
    saved = [getattr(blocksolve, name) for name in names]
    for name, value in zip(names, (factors, factors, 0, 10 ** 9)):
        setattr(blocksolve, name, value)
    try:
        yield
    finally:
        for name, value in zip(names, saved):
            setattr(blocksolve, name, value)


# --- the dense-product kernels ----------------------------------------------------------------
@pytest.mark.parametrize("shape", [(0, 5), (1, 1), (37, 3), (5000, 300), (2049, 129),
                                   (3 * 4096 + 17, 20)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fast", [False, True])
def test_gram_matrix_is_the_float64_product_for_any_thread_count(shape, dtype, fast):
    rng = np.random.default_rng(1)
    Y = rng.standard_normal(shape).astype(dtype)
    exact = Y.astype(np.float64).T @ Y.astype(np.float64)
    results = [gram_matrix(Y, threads, fast=fast) for threads in (1, 2, 3)]
    for G in results:
        assert G.dtype == np.float64 and G.shape == (shape[1], shape[1])
        np.testing.assert_array_equal(G, results[0])
        np.testing.assert_array_equal(G, G.T)
    tolerance = 1e-6 if fast and dtype == np.float32 else 1e-13
    scale = max(1.0, np.abs(exact).max(initial=0))
    np.testing.assert_allclose(results[0], exact, rtol=0, atol=tolerance * scale)


def test_gram_matrix_with_fewer_partial_sums_than_chunks(monkeypatch):
    # a memory budget for two K x K partial sums: 7 chunks of rows in 2 groups of 3 and 4
    K = 24
    monkeypatch.setattr(blocksolve, "_GRAM_GROUPS_MEMORY", 2 * 8 * K * K + 8)
    n = 6 * blocksolve._CHUNK_ROWS + 5
    assert blocksolve._gram_groups(n, K) == 2
    Y = np.random.default_rng(3).standard_normal((n, K))
    results = [gram_matrix(Y, threads) for threads in (1, 2, 3)]
    for G in results:
        np.testing.assert_array_equal(G, results[0])
    np.testing.assert_allclose(results[0], Y.T @ Y, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 255, 256, 257, 1000])
def test_rotate_rows_is_the_matrix_product_for_any_thread_count(dtype, n):
    rng = np.random.default_rng(2)
    M = rng.standard_normal((n, 70)).astype(dtype)
    Q = np.linalg.qr(rng.standard_normal((70, 70)))[0].astype(dtype)
    expected = M.astype(np.float64) @ Q.astype(np.float64)
    results = []
    for threads in (1, 2, 3):
        rotated = M.copy()
        rotate_rows(rotated, Q, threads)
        results.append(rotated)
    for rotated in results:
        np.testing.assert_array_equal(rotated, results[0])
    np.testing.assert_allclose(results[0], expected, atol=1e-5 if dtype == np.float32 else 1e-12)


def test_out_of_memory_in_the_dense_kernels_changes_nothing():
    M = np.arange(600, dtype=np.float64).reshape(20, 30)
    before = M.copy()
    _status.simulate_out_of_memory(True)
    try:
        with pytest.raises(MemoryError, match="the rotation kernel could not allocate"):
            rotate_rows(M, np.eye(30), 2)
        with pytest.raises(MemoryError, match="the Gram-matrix kernel could not allocate"):
            gram_matrix(M, 2)
    finally:
        _status.simulate_out_of_memory(False)
    np.testing.assert_array_equal(M, before)


def test_eigenbasis_diagonalises_the_fixed_side_and_keeps_the_scores():
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((40, 12)), rng.standard_normal((30, 12))
    scores = X @ Y.T
    diagonal = eigenbasis(Y, X, 0.5, np.float64, 2)
    assert diagonal.shape == (1, 12)
    G = Y.T @ Y
    np.testing.assert_allclose(G, np.diag(np.diag(G)), atol=1e-10)
    np.testing.assert_allclose(diagonal[0], np.diag(G) + 0.5, rtol=1e-12)
    np.testing.assert_allclose(X @ Y.T, scores, atol=1e-10)


# --- the ALS kernels with a diagonal Gram matrix ----------------------------------------------
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("kind", ["cg", "cholesky"])
@pytest.mark.parametrize("factors", [4, 20])  # rows longer than F: no Woodbury solve
@pytest.mark.parametrize("offset, alpha", [(1.0, 2.0), (0.0, 0.7)])  # c < 1: no Woodbury
def test_a_diagonal_gram_equals_the_dense_diagonal_matrix(isa, kind, factors, offset, alpha):
    """With a diagonal gram the exact solver takes the Woodbury identity on rows of at most
    F values with every confidence >= 1, and the F x F factorisation on the others: both
    are the dense solve."""
    rng = np.random.default_rng(4)
    R = as_csr(random_interactions(50, 40, 0.2, 5, negative=True), "R", np.float64)
    X0 = rng.standard_normal((50, factors)) * 0.1
    Y = rng.standard_normal((40, factors))
    # confidences below 1 subtract from A_u: a larger diagonal keeps it positive definite
    diagonal = rng.uniform(1, 5, factors) + (40 if offset == 0 else 0)
    shift = rng.uniform(0, 1, 50)
    als = kernels("_als", isa)
    results = []
    for gram in (diagonal[None, :].copy(), np.diag(diagonal)):
        X = X0.copy()
        status = np.zeros(50, dtype=np.int8)
        if kind == "cg":
            als.solve_cg(R.indptr, R.indices, R.data, X, Y, gram, alpha, 30, 2, status, shift,
                         offset)
        else:
            als.solve_cholesky(R.indptr, R.indices, R.data, X, Y, gram, alpha, 2, status,
                               shift, offset)
        assert not status.any()
        results.append(X)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["cg", "cholesky"])
def test_the_als_kernels_report_out_of_memory_per_row(kind):
    """(Through the public API, a fit's first allocation is now the Gram kernel's.)"""
    R = as_csr(random_interactions(10, 8, 0.5, 1), "R", np.float64)
    X, Y = np.ones((10, 3)), np.ones((8, 3))
    status = np.zeros(10, dtype=np.int8)
    als = kernels("_als")
    _status.simulate_out_of_memory(True)
    try:
        if kind == "cg":
            als.solve_cg(R.indptr, R.indices, R.data, X, Y, np.eye(3), 1.0, 3, 2, status)
        else:
            als.solve_cholesky(R.indptr, R.indices, R.data, X, Y, np.eye(3), 1.0, 2, status)
    finally:
        _status.simulate_out_of_memory(False)
    assert (status == _status.Status.OUT_OF_MEMORY).all()
    np.testing.assert_array_equal(X, 1)


# --- whole fits -------------------------------------------------------------------------------
@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_a_fit_in_the_eigenbasis_has_the_scores_of_a_fit_without(solver):
    R = random_interactions(60, 45, 0.15, 6)

    def fit():
        return fastals.ImplicitALS(factors=16, iterations=4, regularization=0.3, alpha=2.0,
                                   solver=solver, dtype=np.float64, random_state=7,
                                   calculate_training_loss=True).fit(R, show_progress=False)

    plain = fit()
    with eigenbasis_from(1):
        rotated = fit()
    np.testing.assert_allclose(rotated.user_factors @ rotated.item_factors.T,
                               plain.user_factors @ plain.item_factors.T, atol=1e-8)
    np.testing.assert_allclose(rotated.loss_history, plain.loss_history, rtol=1e-9)
    # the last half-iteration solved the items in the eigenbasis of X^T X
    G = rotated.user_factors.T @ rotated.user_factors
    np.testing.assert_allclose(G, np.diag(np.diag(G)), atol=1e-8 * np.abs(G).max())


def _is_diagonal(G):
    off_diagonal = G - np.diag(np.diag(G))
    return np.abs(off_diagonal).max() < 1e-4 * np.abs(G).max()


def test_large_factor_counts_fit_in_the_eigenbasis_by_default():
    # the exact solver at 32 factors, on any number of rows
    R = random_interactions(300, 250, 0.05, 8)
    model = fastals.ImplicitALS(factors=blocksolve.EIGENBASIS_MIN_FACTORS_EXACT,
                                iterations=2, solver="cholesky", random_state=0)
    model.fit(R, show_progress=False)
    # the items were solved last, in the eigenbasis of X^T X
    assert _is_diagonal(model.user_factors.astype(np.float64).T @ model.user_factors)


@pytest.mark.parametrize("solver, factors, n, rotated", [
    ("cg", blocksolve.EIGENBASIS_MIN_FACTORS - 1, 2100, False),  # too few factors
    ("cg", blocksolve.EIGENBASIS_MIN_FACTORS, 1000, False),  # too few rows per factor
    ("cg", blocksolve.EIGENBASIS_MIN_FACTORS, 2100, True),
    ("cholesky", blocksolve.EIGENBASIS_MIN_FACTORS_EXACT, 200, True),
    ("cholesky", blocksolve.EIGENBASIS_MIN_FACTORS_EXACT - 1, 200, False),
])
def test_when_a_half_iteration_takes_the_eigenbasis(solver, factors, n, rotated):
    R = random_interactions(n, n, 8 / n, 4)
    model = fastals.ImplicitALS(factors=factors, iterations=1, solver=solver,
                                random_state=0)
    model.fit(R, show_progress=False)
    assert blocksolve.eigenbasis_applies(solver, n, n, factors) is rotated
    # the items were solved last: in the eigenbasis of X^T X, X^T X is diagonal
    G = model.user_factors.astype(np.float64).T @ model.user_factors
    assert bool(_is_diagonal(G)) is rotated


def test_the_eigenbasis_is_left_out_when_the_fixed_side_dwarfs_the_solved_one():
    many = blocksolve.EIGENBASIS_MAX_FIXED_PER_SOLVED * 100
    assert blocksolve.eigenbasis_applies("cholesky", 100, many, 64)
    assert not blocksolve.eigenbasis_applies("cholesky", 100, many + 1, 64)
    assert not blocksolve.eigenbasis_applies("ials++", 10 ** 6, 10, 512)


def test_a_fit_in_the_eigenbasis_is_bit_identical_for_1_2_3_threads():
    R = random_interactions(300, 200, 0.05, 9)
    with eigenbasis_from(1):
        assert_bit_identical_for_1_2_3_threads(
            lambda threads: fastals.ImplicitALS(factors=24, iterations=2, random_state=1,
                                                num_threads=threads), R)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("diagonal", [False, True])
def test_the_lapack_exact_solver_of_large_factor_counts_matches_the_reference(isa, dtype,
                                                                              diagonal):
    """From _als.LAPACK_MIN_FACTORS factors, rank updates by syrk (several chunks of rows,
    downdates for confidences below 1) and potrf / potrs: the numpy reference's solve; in
    the eigenbasis (`diagonal`), rows longer than K take this path and shorter ones the
    Woodbury identity."""
    from fastals.reference import implicit_als_exact_step

    rng = np.random.default_rng(11)
    K = 200  # >= _als.LAPACK_MIN_FACTORS
    import scipy.sparse as sp

    R = sp.vstack([random_interactions(12, 400, 0.5, 12, negative=True),
                   sp_rows_of_length(5, 400, 60, rng)]).tocsr()  # and rows shorter than K
    Y = rng.standard_normal((400, K)) * 0.1
    if diagonal:  # rotate Y into the eigenbasis of its Gram matrix
        Y = Y @ np.linalg.eigh(Y.T @ Y)[1]
    regularization, alpha, offset = 0.5, 0.8, 0.0  # c = 0.8 r: some c < 1
    expected = implicit_als_exact_step(R, Y, regularization, alpha, offset)
    csr = as_csr(R, "R", dtype)
    Yd = np.ascontiguousarray(Y, dtype=dtype)
    G = Yd.astype(np.float64).T @ Yd + regularization * np.eye(K)
    gram = (np.diag(G)[None, :] if diagonal else G).astype(dtype)
    X = np.zeros((R.shape[0], K), dtype=dtype)
    status = np.zeros(R.shape[0], dtype=np.int8)
    kernels("_als", isa).solve_cholesky(csr.indptr, csr.indices, csr.data, X, Yd,
                                        np.ascontiguousarray(gram), dtype(alpha), 2, status,
                                        None, dtype(offset))
    assert not status.any()
    tolerance = 1e-9 if dtype == np.float64 else 2e-3
    np.testing.assert_allclose(X, expected, rtol=tolerance,
                               atol=tolerance * np.abs(expected).max())


def sp_rows_of_length(n_rows, n_items, length, rng):
    """n_rows rows of `length` values from 2 to 5 (confidences >= 1.6 here: Woodbury rows)."""
    import scipy.sparse as sp

    rows = np.repeat(np.arange(n_rows), length)
    cols = np.concatenate([rng.choice(n_items, length, replace=False) for _ in range(n_rows)])
    return sp.csr_matrix((rng.integers(2, 6, rows.size).astype(float), (rows, cols)),
                         shape=(n_rows, n_items))
