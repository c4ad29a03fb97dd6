"""SGDMatrixFactorization (FunkSVD): kernel against the reference, shuffling, contract, options."""
import numpy as np
import pytest
import scipy.sparse as sp
from explicit_contract import ExplicitModelContract, star_ratings

import fastals
from fastals._arrays import aligned_empty, padded_width, unpad_in_place
from fastals._kernels import checked
from fastals._kernels.dispatch import available_isas, kernels
from fastals.exceptions import ModelFitError, NotFittedError
from fastals.models.sgd import (
    RatingOrder,
    auto_strata,
    balanced_groups,
    _normal_rows,
    initial_factors,
    random_schedule,
)
from fastals.reference import sgd_epoch
from conftest import (
    assert_bit_identical_for_1_2_3_threads,
    assert_interrupt_keeps_the_last_completed_step,
)


class TestSGDContract(ExplicitModelContract):
    model_class = fastals.SGDMatrixFactorization
    movielens_threshold = 0.93
    recovery_params = {"factors": 3, "regularization": 0.0, "learning_rate": 0.01,
                       "epochs": 400, "lr_decay": 1.0, "init_std": 0.3}

    def make(self, **params):
        # small data: fewer updates per epoch than MovieLens, so a larger step
        params.setdefault("factors", 8)
        params.setdefault("epochs", 60)
        params.setdefault("learning_rate", 0.03)
        return fastals.SGDMatrixFactorization(**params)


def coo_triples(ratings):
    """(users, items, ratings) of a CSR in row order, int32 indices."""
    ratings = sp.csr_matrix(ratings)
    users = np.repeat(np.arange(ratings.shape[0], dtype=np.int32), np.diff(ratings.indptr))
    return users, ratings.indices.astype(np.int32), ratings.data


def shuffled(triples, seed, dtype=np.float64, num_threads=1):
    out = (np.empty_like(triples[0]), np.empty_like(triples[1]), np.empty(len(triples[2]), dtype))
    kernels("_sgd").order_ratings(triples[0], triples[1], triples[2].astype(dtype), *out, seed,
                                    num_threads)
    return out


# --- kernel against reference ------------------------------------------------------------------
@pytest.mark.parametrize("isa", available_isas("_sgd"))
@pytest.mark.parametrize("biases", [True, False])
def test_one_thread_epoch_matches_reference_update_for_update(isa, biases):
    """float64, one thread: the same updates in the same order; only the rounding of the
    vectorised dot products differs (1e-12)."""
    users, items, values = shuffled(coo_triples(star_ratings(40, 30, 0.3, 1)), seed=5)
    rng = np.random.default_rng(0)
    P, Q = rng.normal(0, 0.1, (40, 6)), rng.normal(0, 0.1, (30, 6))
    b_user, b_item = rng.normal(0, 0.1, 40), rng.normal(0, 0.1, 30)
    expected = sgd_epoch(users, items, values, P, Q, b_user, b_item, 3.1, 0.02, 0.05, 0.01, 0.03,
                         biases)
    squared_error = kernels("_sgd", isa).sgd_epoch(users, items, values, P, Q, b_user, b_item,
                                                   3.1, 0.02, 0.01, 0.05, 0.03, biases, 1)
    for got, want in zip((P, Q, b_user, b_item), expected[:4]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert squared_error == pytest.approx(expected[4], rel=1e-12)


@pytest.mark.parametrize("isa", available_isas("_sgd"))
@pytest.mark.parametrize("K", [1, 7, 16, 33, 100, 129, 300])
@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-10), (np.float32, 2e-5)])
def test_every_row_length_matches_reference(isa, K, dtype, tolerance):
    """The step kernel has unrolled instances per vector count (1..8 vectors), scalar tails
    and a two-pass path for longer rows: every length agrees with the float64 reference."""
    users, items, values = shuffled(coo_triples(star_ratings(30, 20, 0.3, 11)), seed=2,
                                    dtype=dtype)
    rng = np.random.default_rng(K)
    P, Q = rng.normal(0, 0.1, (30, K)), rng.normal(0, 0.1, (20, K))
    expected = sgd_epoch(users, items, values, P, Q, np.zeros(30), np.zeros(20), 3.0, 0.01,
                         0.05)
    P, Q = P.astype(dtype), Q.astype(dtype)
    b_user, b_item = np.zeros(30, dtype), np.zeros(20, dtype)
    args = [dtype(v) for v in (3.0, 0.01, 0.01, 0.05, 0.05)]
    kernels("_sgd", isa).sgd_epoch(users, items, values, P, Q, b_user, b_item, *args, True, 1)
    np.testing.assert_allclose(P, expected[0], rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(Q, expected[1], rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("isa", available_isas("_sgd"))
@pytest.mark.parametrize("K", [5, 100])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rows_padded_with_zeros_give_the_unpadded_updates(isa, K, dtype):
    """The model sweeps rows padded with zeros to whole cache lines: the padding stays exactly
    zero and the first K columns get the unpadded rows' updates."""
    users, items, values = shuffled(coo_triples(star_ratings(30, 20, 0.3, 12)), seed=4,
                                    dtype=dtype)
    rng = np.random.default_rng(K)
    P, Q = rng.normal(0, 0.1, (30, K)).astype(dtype), rng.normal(0, 0.1, (20, K)).astype(dtype)
    width = padded_width(K, dtype)
    padded_P, padded_Q = aligned_empty((30, width), dtype), aligned_empty((20, width), dtype)
    for padded, X in ((padded_P, P), (padded_Q, Q)):
        padded[:, K:] = 0
        padded[:, :K] = X
    assert padded_P.shape[1] * padded_P.itemsize % 64 == 0 and padded_P.ctypes.data % 64 == 0
    sums = []
    for X, Y in ((P, Q), (padded_P, padded_Q)):
        b_user, b_item = np.zeros(30, dtype), np.zeros(20, dtype)
        args = [dtype(v) for v in (3.0, 0.02, 0.02, 0.05, 0.05)]
        sums.append(kernels("_sgd", isa).sgd_epoch(users, items, values, X, Y, b_user, b_item,
                                                   *args, True, 1))
    assert not padded_P[:, K:].any() and not padded_Q[:, K:].any()
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(padded_P[:, :K], P, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(padded_Q[:, :K], Q, rtol=tolerance, atol=tolerance)
    assert sums[1] == pytest.approx(sums[0], rel=tolerance)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_initial_factors_are_one_normal_draw_in_padded_rows(dtype):
    """Drawn a chunk of rows at a time into the padded array: the values of one draw of all
    of P's rows, then all of Q's."""
    P, Q = initial_factors(np.random.default_rng(4), 700, 300, 45, 0.3, dtype)
    rng = np.random.default_rng(4)
    for X, n in ((P, 700), (Q, 300)):
        expected = rng.standard_normal((n, 45), dtype=dtype) * dtype(0.3)
        assert X.dtype == dtype and X.shape[0] == n and X.ctypes.data % 64 == 0
        assert X.shape[1] * X.itemsize % 64 == 0 and not X[:, 45:].any()  # 48 wide: +7%
        np.testing.assert_array_equal(X[:, :45], expected)
    small = _normal_rows(np.random.default_rng(4), 700, 45, 0.3, dtype, chunk_bytes=1000)
    np.testing.assert_array_equal(small, P)


def test_short_rows_are_not_padded_when_it_would_cost_much_memory():
    for K, dtype, width in ((100, np.float32, 112), (8, np.float32, 8), (50, np.float32, 50),
                            (60, np.float32, 64), (8, np.float64, 8), (7, np.float64, 8)):
        P, Q = initial_factors(np.random.default_rng(0), 3, 2, K, 0.1, dtype)
        assert P.shape == (3, width) and Q.shape == (2, width), (K, dtype)
        assert P.ctypes.data % 64 == 0 and not P[:, K:].any()


@pytest.mark.parametrize("rows, width, full, chunk_bytes", [
    (1, 3, 16, 64), (97, 100, 112, 1), (97, 100, 112, 4000), (500, 45, 48, 1 << 22),
    (64, 5, 5, 64), (0, 7, 16, 64)])
def test_unpad_in_place_keeps_every_value(rows, width, full, chunk_bytes):
    """The fitted factors are the padded working arrays with their rows moved to the front of
    the same buffer, a chunk at a time: every value survives, whatever the chunk size."""
    padded = aligned_empty((rows, full), np.float32)
    padded[...] = np.random.default_rng(rows).normal(size=(rows, full))
    expected = padded[:, :width].copy()
    X = unpad_in_place(padded, width, chunk_bytes=chunk_bytes)
    assert X.shape == (rows, width) and X.flags.c_contiguous
    if rows:  # (an empty array's data pointer is arbitrary)
        assert X.ctypes.data % 64 == 0 and np.shares_memory(X, padded)
    np.testing.assert_array_equal(X, expected)


def test_fitted_factors_are_unpadded_aligned_arrays():
    model = fastals.FunkSVD(factors=100, epochs=2, random_state=0).fit(
        star_ratings(40, 30, 0.3, 3), show_progress=False)
    for X, n in ((model.user_factors, 40), (model.item_factors, 30)):
        assert X.shape == (n, 100) and X.flags.c_contiguous and X.ctypes.data % 64 == 0


def test_interrupt_from_callback_keeps_the_last_completed_epoch():
    assert_interrupt_keeps_the_last_completed_step(
        lambda epochs: fastals.FunkSVD(factors=10, epochs=epochs, random_state=0),
        star_ratings(60, 40, 0.2, 6), ("user_factors", "item_bias"))


def test_float32_epoch_matches_reference():
    """float32 arithmetic against the float64 reference: agreement to ~1e-6 after an epoch."""
    users, items, values = shuffled(coo_triples(star_ratings(40, 30, 0.3, 2)), seed=6,
                                    dtype=np.float32)
    rng = np.random.default_rng(1)
    P, Q = rng.normal(0, 0.1, (40, 6)), rng.normal(0, 0.1, (30, 6))
    expected = sgd_epoch(users, items, values, P, Q, np.zeros(40), np.zeros(30), 3.0, 0.01, 0.1)
    P32, Q32 = P.astype(np.float32), Q.astype(np.float32)
    b_user, b_item = np.zeros(40, np.float32), np.zeros(30, np.float32)
    kernels("_sgd").sgd_epoch(users, items, values, P32, Q32, b_user, b_item, np.float32(3),
                              np.float32(0.01), np.float32(0.01), np.float32(0.1),
                              np.float32(0.1), True, 1)
    np.testing.assert_allclose(P32, expected[0], atol=1e-5)
    np.testing.assert_allclose(b_item, expected[3], atol=1e-5)


@pytest.mark.parametrize("isa", available_isas("_sgd"))
@pytest.mark.parametrize("K", [3, 17, 100])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_tails_stay_inside_their_rows(isa, K, dtype):
    """Rows whose length is not a multiple of the vector width end in a masked register (AVX2,
    AVX-512): the steps write the K values of each row and nothing after the last one."""
    users, items, values = shuffled(coo_triples(star_ratings(12, 9, 0.5, 4)), seed=3,
                                    dtype=dtype)
    rng = np.random.default_rng(K)
    sentinel = dtype(-7.25)
    factors = []
    for n in (12, 9):
        buffer = np.full(n * K + 64, sentinel, dtype=dtype)
        buffer[:n * K] = rng.normal(0, 0.1, n * K)
        factors.append(buffer)
    P, Q = (buffer[:n * K].reshape(n, K) for buffer, n in zip(factors, (12, 9)))
    expected = sgd_epoch(users, items, values, P.astype(np.float64), Q.astype(np.float64),
                         np.zeros(12), np.zeros(9), 3.0, 0.02, 0.05)
    b_user, b_item = np.zeros(12, dtype), np.zeros(9, dtype)
    args = [dtype(v) for v in (3.0, 0.02, 0.02, 0.05, 0.05)]
    kernels("_sgd", isa).sgd_epoch(users, items, values, P, Q, b_user, b_item, *args, True, 1)
    for buffer, n in zip(factors, (12, 9)):
        assert (buffer[n * K:] == sentinel).all()
    tolerance = 2e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(P, expected[0], rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(Q, expected[1], rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("strata", [None, 1, 3])
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("biases", [True, False])
def test_model_matches_the_reference(strata, shuffle, biases):
    """fit = the reference run on the orders the model's seed produces: a new order per epoch
    (shuffle=True) or one order reused (shuffle=False), with the lr schedule. The stratified
    orders (strata None / 3) give this with 2 threads too; Hogwild (strata=1) with one."""
    ratings = star_ratings(50, 35, 0.25, 3)
    params = dict(factors=5, learning_rate=0.01, regularization=0.05, bias_learning_rate=0.02,
                  bias_regularization=0.01, epochs=3, init_std=0.2, biases=biases, lr_decay=0.5,
                  shuffle=shuffle, strata=strata)
    threads = 1 if strata == 1 else 2
    model = fastals.SGDMatrixFactorization(dtype=np.float64, random_state=11,
                                           num_threads=threads, **params)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fastals.models.sgd, "MIN_RATINGS_PER_THREAD", 1)  # 2 threads here
        model.fit(ratings, show_progress=False)
    rng = np.random.default_rng(11)
    P, Q = (X[:, :5].copy() for X in initial_factors(rng, 50, 35, 5, 0.2, np.float64))
    b_user, b_item = np.zeros(50), np.zeros(35)
    mu = ratings.data.mean() if biases else 0.0
    G = strata or auto_strata(50, 35, 5, np.float64)
    counts = (np.diff(ratings.indptr), np.bincount(ratings.indices, minlength=35))
    order = RatingOrder(rng, sp.csr_matrix(ratings), counts, G, 1)
    for epoch in range(3):
        if epoch == 0 or shuffle:
            order.draw()
        P, Q, b_user, b_item, _ = sgd_epoch(*order.sequential(), P, Q, b_user, b_item, mu,
                                            0.01 * 0.5 ** epoch, 0.05, 0.02 * 0.5 ** epoch, 0.01,
                                            biases)
    np.testing.assert_allclose(model.user_factors, P, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.item_factors, Q, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.user_bias, b_user, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.item_bias, b_item, rtol=1e-10, atol=1e-12)


def test_one_thread_fit_is_exactly_reproducible():
    ratings = star_ratings(200, 120, 0.1, 4)
    a = fastals.FunkSVD(factors=16, epochs=5, random_state=3, num_threads=1).fit(
        ratings, show_progress=False)
    b = fastals.FunkSVD(factors=16, epochs=5, random_state=3, num_threads=1).fit(
        ratings, show_progress=False)
    np.testing.assert_array_equal(a.user_factors, b.user_factors)
    np.testing.assert_array_equal(a.item_bias, b.item_bias)
    assert a.training_rmse_history == b.training_rmse_history


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stratified_fit_is_bit_identical_for_any_thread_count(monkeypatch, dtype):
    """The blocks of a diagonal share no rows, so threads cannot race: 1, 2 and 3 threads give
    the same bits (training error included: per-block sums added in block order)."""
    monkeypatch.setattr(fastals.models.sgd, "MIN_RATINGS_PER_THREAD", 1)
    fits = assert_bit_identical_for_1_2_3_threads(
        lambda t: fastals.FunkSVD(factors=8, epochs=4, random_state=0, num_threads=t,
                                  strata=5, dtype=dtype),
        star_ratings(300, 200, 0.1, 5), ("user_factors", "item_factors", "user_bias"))
    for other in fits[1:]:
        assert other.training_rmse_history == fits[0].training_rmse_history


def test_hogwild_threads_learn_as_well_as_one(monkeypatch):
    """Hogwild updates race, so results differ from run to run, but not in quality."""
    monkeypatch.setattr(fastals.models.sgd, "MIN_RATINGS_PER_THREAD", 1)  # 2 threads here
    ratings = star_ratings(300, 200, 0.1, 5)
    one = fastals.FunkSVD(factors=8, epochs=30, random_state=0, num_threads=1, strata=1).fit(
        ratings, show_progress=False)
    two = fastals.FunkSVD(factors=8, epochs=30, random_state=0, num_threads=2, strata=1).fit(
        ratings, show_progress=False)
    stratified = fastals.FunkSVD(factors=8, epochs=30, random_state=0, num_threads=2).fit(
        ratings, show_progress=False)
    assert two.rmse(ratings) == pytest.approx(one.rmse(ratings), abs=0.02)
    assert stratified.rmse(ratings) == pytest.approx(one.rmse(ratings), abs=0.02)


# --- the stratified order --------------------------------------------------------------------------
def test_balanced_groups_deal_every_row_and_balance_the_counts():
    rng = np.random.default_rng(0)
    counts = rng.zipf(1.8, 5000).clip(max=2000)
    group = balanced_groups(rng, counts, 7)
    assert group.dtype == np.int32 and group.min() == 0 and group.max() == 6
    totals = np.bincount(group, weights=counts, minlength=7)
    # a cut falls inside at most one row: every group is within the largest row of 1/7
    assert np.abs(totals - counts.sum() / 7).max() <= counts.max()
    assert balanced_groups(rng, np.zeros(0, np.int64), 3).shape == (0,)
    np.testing.assert_array_equal(balanced_groups(rng, np.ones(2, np.int64), 4) >= 0, True)


@pytest.mark.parametrize("G", [1, 2, 5])
def test_stratified_order_is_a_permutation_in_blocks(G):
    ratings = star_ratings(60, 45, 0.3, 7)
    triples = coo_triples(ratings)
    rng = np.random.default_rng(3)
    user_group = rng.integers(0, G, 60).astype(np.int32)
    item_group = rng.integers(0, G, 45).astype(np.int32)
    out = tuple(np.empty_like(a) for a in triples)
    sgd = kernels("_sgd")
    starts = sgd.order_ratings(*triples, *out, 42, 2, user_group, item_group, G)
    assert starts.shape == (G * G + 1,) and starts[0] == 0 and starts[-1] == ratings.nnz
    assert np.all(np.diff(starts) >= 0)
    key = lambda u, i, r: sorted(zip(u.tolist(), i.tolist(), r.tolist()))  # noqa: E731
    assert key(*out) == key(*triples)
    for block in range(G * G):
        lo, hi = starts[block], starts[block + 1]
        assert np.all(user_group[out[0][lo:hi]] == block // G)
        assert np.all(item_group[out[1][lo:hi]] == block % G)
    again = tuple(np.empty_like(a) for a in triples)
    sgd.order_ratings(*triples, *again, 42, 1, user_group, item_group, G)
    for a, b in zip(out, again):
        np.testing.assert_array_equal(a, b)
    # reshuffling keeps every rating in its block, the same for any thread count
    one, two = tuple(a.copy() for a in out), tuple(a.copy() for a in out)
    sgd.shuffle_blocks(*one, starts, 7, 1)
    sgd.shuffle_blocks(*two, starts, 7, 2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    for block in range(G * G):
        piece = slice(starts[block], starts[block + 1])
        assert key(*(a[piece] for a in one)) == key(*(a[piece] for a in out))
    if ratings.nnz / G ** 2 > 20:
        assert not np.array_equal(one[0], out[0])


@pytest.mark.parametrize("G", [1, 2, 3, 8])
def test_random_schedule_is_race_free(G):
    schedule = random_schedule(np.random.default_rng(G), G)
    assert sorted(schedule.tolist()) == list(range(G * G))
    for diagonal in schedule.reshape(G, G):
        assert len(set(diagonal // G)) == G and len(set(diagonal % G)) == G


def test_order_and_epoch_reject_inconsistent_blocks():
    sgd = checked  # the _sgd kernels behind the checks of what they trust
    triples = coo_triples(star_ratings(10, 8, 0.5, 8))
    n = len(triples[0])
    out = tuple(np.empty_like(a) for a in triples)
    with pytest.raises(ValueError, match="no group in"):
        sgd.order_ratings(*triples, *out, 1, 1, np.zeros(10, np.int32),
                          np.full(8, 3, np.int32), 3)
    with pytest.raises(ValueError, match="both user_group and item_group"):
        sgd.order_ratings(*triples, *out, 1, 1, np.zeros(10, np.int32), None, 3)
    P, Q = np.zeros((10, 2)), np.zeros((8, 2))
    args = (*triples, P, Q, np.zeros(10), np.zeros(8), 3.0, 0.1, 0.1, 0.1, 0.1, True, 1)
    four = np.arange(4, dtype=np.int64)
    cases = [
        (np.array([0, 1, n], np.int64), np.arange(2, dtype=np.int64), "G \\* G \\+ 1"),
        (np.array([0, 1, 2, 3, 4], np.int64), four, "does not cover"),
        (np.array([0, 3, 1, 2, n], np.int64), four, "non-decreasing"),
        (np.array([0, 1, 2, 3, n], np.int64), four[:3], "must hold the 4 blocks"),
        (np.array([0, 1, 2, 3, n], np.int64), np.array([0, 0, 1, 2]), "exactly once"),
        (np.array([0, 1, 2, 3, n], np.int64), np.array([0, 5, 1, 2]), "exactly once"),
    ]
    for block_start, schedule, message in cases:
        with pytest.raises(ValueError, match=message):
            sgd.sgd_epoch(*args, block_start, schedule)
    with pytest.raises(ValueError, match="both block_start and schedule"):
        sgd.sgd_epoch(*args, np.array([0, n], np.int64))
    with pytest.raises(ValueError, match="differ in length"):
        sgd.sgd_epoch(triples[0], triples[1][:-1], *args[2:])
    with pytest.raises(ValueError, match="non-decreasing"):
        sgd.shuffle_blocks(*out, np.array([0, 5, 2, n], np.int64), 1, 1)


@pytest.mark.parametrize("schedule", ["diagonal", "row-major", "random"])
def test_any_block_schedule_equals_its_sequential_sweep(schedule):
    """Blocks run as soon as the previous block of their user group and of their item group
    are done: any schedule, diagonal or not, gives with 3 threads exactly the sequential sweep
    of the blocks in schedule order (here against the one-thread kernel run on the ratings
    laid out in that order, without blocks)."""
    G = 4
    ratings = star_ratings(80, 60, 0.3, 9)
    triples = coo_triples(ratings)
    rng = np.random.default_rng(5)
    out = tuple(np.empty_like(a) for a in triples)
    starts = kernels("_sgd").order_ratings(
        *triples, *out, 3, 1, rng.integers(0, G, 80).astype(np.int32),
        rng.integers(0, G, 60).astype(np.int32), G)
    order = {"diagonal": random_schedule(rng, G), "row-major": np.arange(G * G),
             "random": rng.permutation(G * G)}[schedule].astype(np.int64)
    sequential = tuple(np.concatenate([a[starts[b]:starts[b + 1]] for b in order]) for a in out)
    init = np.random.default_rng(0)
    P, Q = init.normal(0, 0.1, (80, 6)), init.normal(0, 0.1, (60, 6))
    state = [(P.copy(), Q.copy(), np.zeros(80), np.zeros(60)) for _ in range(2)]
    rates = (3.0, 0.02, 0.02, 0.05, 0.05, True)
    blocked = kernels("_sgd").sgd_epoch(*out, *state[0], *rates, 3, starts, order)
    serial = kernels("_sgd").sgd_epoch(*sequential, *state[1], *rates, 1)
    for a, b in zip(*state):
        np.testing.assert_array_equal(a, b)
    assert blocked == pytest.approx(serial, rel=1e-12)


def test_block_dependencies_chain_each_group():
    from fastals._kernels.dispatch import kernels as load
    schedule = np.array([0, 3, 1, 2], np.int64)  # G = 2: blocks (0,0) (1,1) (0,1) (1,0)
    pending, next_user, next_item = load("_sgd").block_dependencies(schedule, 2)
    np.testing.assert_array_equal(pending, [0, 0, 2, 2])
    np.testing.assert_array_equal(next_user, [2, 3, -1, -1])
    np.testing.assert_array_equal(next_item, [3, 2, -1, -1])


def test_more_strata_than_rows_are_capped():
    ratings = star_ratings(6, 5, 0.6, 10)
    model = fastals.FunkSVD(factors=3, epochs=3, strata=10_000, random_state=0,
                            num_threads=2).fit(ratings, show_progress=False)
    assert np.isfinite(model.user_factors).all()


def test_auto_strata_depends_on_the_data_only():
    assert auto_strata(943, 1682, 100, np.float32) == 4
    assert auto_strata(3, 1000, 10, np.float32) == 3      # never more groups than rows
    big = auto_strata(138_493, 26_744, 100, np.float32)   # 66 MB of factors: ~4 MB a group
    assert 15 <= big <= 17


# --- shuffling -------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 7, 1000, 300_000])
def test_shuffle_is_a_permutation_independent_of_threads(n):
    """300,000 ratings span several buckets and chunks (65,536 per bucket)."""
    users = np.arange(n, dtype=np.int32)
    items = (users * 7) % 1000
    values = users.astype(np.float64)
    one = shuffled((users, items, values), 99, num_threads=1)
    two = shuffled((users, items, values), 99, num_threads=2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.sort(one[0]), users)
    np.testing.assert_array_equal(one[1], (one[0] * 7) % 1000)  # triples move together
    np.testing.assert_array_equal(one[2], one[0])
    if n > 100:
        assert not np.array_equal(one[0], users)
        assert not np.array_equal(shuffled((users, items, values), 100)[0], one[0])


MASK64 = (1 << 64) - 1


def splitmix64(state):
    """(new state, output) of the kernels' splitmix64 step, in Python integers."""
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


@pytest.mark.parametrize("isa", available_isas("_sgd"))
def test_block_shuffle_is_fisher_yates_on_the_documented_streams(isa):
    """shuffle_blocks = Fisher-Yates in each block b, its draws from splitmix64 stream b of
    the seed (multiply-shift to [0, k]): the kernel draws its partners ahead of the swaps
    and prefetches them, which must not change the permutation."""
    sizes = [0, 1, 2, 37, 100, 3]
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    n, seed = int(starts[-1]), 2024
    users = np.arange(n, dtype=np.int32)
    got = (users.copy(), users.copy(), users.astype(np.float64))
    kernels("_sgd", isa).shuffle_blocks(*got, starts, seed, 2)
    want = users.copy()
    for b in range(len(sizes)):
        state, _ = splitmix64(seed ^ ((b * 0xD1B54A32D192ED03) & MASK64))
        lo, hi = starts[b], starts[b + 1]
        for k in range(hi - 1, lo, -1):
            state, z = splitmix64(state)
            j = lo + (((z >> 32) * (k - lo + 1)) >> 32)
            want[k], want[j] = want[j], want[k]
    for a in got:
        np.testing.assert_array_equal(a, want)


@pytest.mark.parametrize("n", [5, 200_000])
def test_shuffle_positions_are_uniform(n):
    """Where element 0 lands over 2,000 seeds: each fifth of the positions gets ~400 hits
    (a chi-square test at the 1e-4 level: a correct shuffle fails it 1 time in 10,000)."""
    users = np.arange(n, dtype=np.int32)
    values = np.zeros(n)
    landing = [np.flatnonzero(shuffled((users, users, values), seed)[0] == 0)[0]
               for seed in range(2000)]
    counts = np.bincount(np.asarray(landing) * 5 // n, minlength=5)
    chi2 = ((counts - 400) ** 2 / 400).sum()
    assert chi2 < 23.5, counts  # 4 degrees of freedom


# --- the example of Au Yeung, "Matrix Factorization: A Simple Tutorial" (2010) -----------------
TUTORIAL_5X4 = np.array([[5, 3, 0, 1], [4, 0, 0, 1], [1, 1, 0, 5], [1, 0, 0, 4], [0, 1, 5, 4]])


@pytest.mark.parametrize("R", [TUTORIAL_5X4[:4], TUTORIAL_5X4], ids=["4x4", "5x4"])
@pytest.mark.parametrize("biases", [False, True])
def test_tutorial_examples_reach_low_training_error(R, biases):
    """The tutorial's matrix and its first 4 rows (0 = not rated), K=2, beta=0.02: the observed
    entries are reproduced closely, as in the tutorial."""
    observed = sp.csr_matrix(R.astype(float))  # zeros are not stored: missing
    model = fastals.FunkSVD(factors=2, learning_rate=0.01, regularization=0.02, epochs=3000,
                            init_std=0.5, lr_decay=1.0, biases=biases, random_state=0)
    model.fit(observed, show_progress=False)
    rows, cols = np.nonzero(R)
    assert np.abs(model.predict(rows, cols) - R[rows, cols]).max() < 0.15
    assert model.training_rmse_history[-1] < 0.1


# --- options and errors ----------------------------------------------------------------------------
def test_lr_decay_schedules():
    ratings = star_ratings()
    constant = fastals.FunkSVD(factors=4, epochs=3, lr_decay=1.0, random_state=0, num_threads=1,
                               dtype=np.float64).fit(ratings, show_progress=False)
    listed = fastals.FunkSVD(factors=4, epochs=3, lr_decay=[1.0, 1.0, 1.0, 0.1], random_state=0,
                             num_threads=1, dtype=np.float64).fit(ratings, show_progress=False)
    np.testing.assert_array_equal(constant.user_factors, listed.user_factors)
    with pytest.raises(ValueError, match="lr_decay has 2 multipliers but epochs=3"):
        fastals.FunkSVD(epochs=3, lr_decay=[1, 1])
    with pytest.raises(ValueError, match="lr_decay must be <= 1"):
        fastals.FunkSVD(lr_decay=1.5)
    with pytest.raises(TypeError, match="lr_decay must be a number in \\(0, 1\\] or a sequence"):
        fastals.FunkSVD(lr_decay="fast")


def test_saved_schedule_round_trips(tmp_path):
    model = fastals.FunkSVD(factors=4, epochs=2, lr_decay=np.array([1.0, 0.5]), random_state=0)
    model.fit(star_ratings(), show_progress=False)
    loaded = fastals.load(model.save(tmp_path / "sgd"))
    assert loaded.lr_decay == [1.0, 0.5]


def test_divergence_names_the_epoch_and_leaves_the_model_unfitted():
    ratings = star_ratings()
    model = fastals.FunkSVD(factors=8, learning_rate=5.0, epochs=20, random_state=0)
    with pytest.raises(ModelFitError, match=r"SGD diverged in epoch \d+ of 20.*Lower "
                                            r"learning_rate \(e.g. 0.5\)"):
        model.fit(ratings, show_progress=False)
    with pytest.raises(NotFittedError):
        model.predict(0, 0)


def test_without_biases_the_prediction_is_the_dot_product():
    model = fastals.FunkSVD(factors=6, biases=False, epochs=20, random_state=0).fit(
        star_ratings(), show_progress=False)
    assert not model.user_bias.any()
    np.testing.assert_allclose(model.predict(2, 3, clip=False),
                               model.user_factors[2] @ model.item_factors[3], rtol=1e-5)


def test_callback_sees_every_epoch():
    seen = []
    fastals.FunkSVD(factors=4, epochs=4, random_state=0).fit(
        star_ratings(), show_progress=False, callback=lambda *args: seen.append(args))
    assert [s[0] for s in seen] == [0, 1, 2, 3] and all(s[2] > 0 for s in seen)
    assert seen[-1][2] < seen[0][2]  # the training error falls


@pytest.mark.parametrize("params, error, message", [
    ({"learning_rate": 0}, ValueError, "learning_rate must be > 0, got 0.0"),
    ({"learning_rate": -0.1}, ValueError, "learning_rate must be > 0"),
    ({"learning_rate": float("nan")}, ValueError, "learning_rate must be finite"),
    ({"epochs": -1}, ValueError, "epochs must be an int >= 0, got -1"),
    ({"regularization": -1}, ValueError, "regularization must be >= 0"),
    ({"bias_learning_rate": 0}, ValueError, "bias_learning_rate must be > 0"),
    ({"init_std": -0.1}, ValueError, "init_std must be >= 0"),
    ({"shuffle": "yes"}, TypeError, "shuffle must be True or False"),
    ({"factors": 2.5}, TypeError, "factors must be an int"),
    ({"strata": 0}, ValueError, "strata must be"),
    ({"strata": "4"}, TypeError, "strata must be an int"),
])
def test_bad_parameters(params, error, message):
    with pytest.raises(error, match=message):
        fastals.SGDMatrixFactorization(**params)


def test_alias():
    assert fastals.FunkSVD is fastals.SGDMatrixFactorization


def test_order_ratings_refuses_outputs_of_another_length():
    """The order kernel scatters every rating into out_*: a shorter output (or input array)
    is refused before the kernel could write past its end."""
    triples = coo_triples(star_ratings(10, 8, 0.5, 8))
    out = tuple(np.empty_like(a) for a in triples)
    short = (out[0][:-1], out[1], out[2])
    with pytest.raises(ValueError, match="must hold the"):
        checked.order_ratings(*triples, *short, 1, 1)
    with pytest.raises(ValueError, match="must hold the"):
        checked.order_ratings(*triples, *short, 1, 1, np.zeros(10, np.int32),
                              np.zeros(8, np.int32), 1)
    with pytest.raises(ValueError, match="differ in length"):
        checked.order_ratings(triples[0], triples[1][:-1], triples[2], *out, 1, 1)
    checked.order_ratings(*triples, *out, 1, 1)  # the right lengths still pass
    assert sorted(out[2].tolist()) == sorted(triples[2].tolist())
