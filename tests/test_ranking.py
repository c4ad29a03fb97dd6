"""BPR, WARP and logistic MF: kernel against reference sample for sample, determinism across
thread counts, the recommender contract, bad inputs, divergence, fold-in, quality on
MovieLens 100K."""
import numpy as np
import pytest
import scipy.sparse as sp
from recommender_base_test import RecommenderBaseTestMixin, checkerboard

import fastals
from fastals._kernels import checked
from fastals._kernels.dispatch import available_isas, kernels
from fastals.exceptions import ModelFitError
from fastals.models.ranking import LOSS_CODES, _Sweep, blocks_of
from fastals.models.sgd import RatingOrder
from fastals.reference.ranking import ranking_epoch

MODELS = {"bpr": fastals.BayesianPersonalizedRanking, "warp": fastals.WARP,
          "lmf": fastals.LogisticMatrixFactorization}


def likes(n_users=40, n_items=30, density=0.3, seed=0, values=False):
    rng = np.random.default_rng(seed)
    R = sp.random(n_users, n_items, density=density, format="csr", random_state=rng,
                  data_rvs=(lambda n: rng.integers(1, 4, n)) if values else np.ones)
    return R


def epoch_inputs(loss, dtype, strata, adagrad, popularity, seed=3, F=6):
    """One epoch's kernel arguments, built as the model builds them, and its pairs in order."""
    R = likes(values=loss == "lmf").astype(dtype)
    model = MODELS[loss](factors=F, dtype=dtype, random_state=0,
                         learning_schedule="adagrad" if adagrad else "constant",
                         negative_sampling="popularity" if popularity else "uniform",
                         learning_rate=0.05)
    if loss == "lmf":
        model.neg_prop = 3
    rng = np.random.default_rng(seed)
    counts = (np.diff(R.indptr), np.bincount(R.indices, minlength=R.shape[1]))
    order = RatingOrder(rng, R, counts, strata, 1)
    order.draw()
    order.block_start, order.schedule = blocks_of(order, R.nnz)
    X, Y = rng.uniform(-0.3, 0.3, (R.shape[0], F)), rng.uniform(-0.3, 0.3, (R.shape[1], F))
    b_user, b_item = rng.normal(0, 0.1, R.shape[0]), rng.normal(0, 0.1, R.shape[1])
    X, Y, b_user, b_item = (a.astype(dtype) for a in (X, Y, b_user, b_item))
    sweep = _Sweep(model, R, X, Y, b_user, b_item, 1)
    groups = order.groups[1] if order.groups else np.zeros(R.shape[1], np.int32)
    sweep.set_groups(groups, strata, counts[1])
    return model, R, order, sweep


def kernel_args(model, order, sweep, seed, update_items=True, hashed=True, threads=1):
    """The kernel's arguments; `hashed`: the liked check by the hash set of each block's
    pairs (the models' choice for blocks of this size), else by binary search."""
    stats = np.zeros((len(order.schedule), 3))
    largest = int(np.diff(order.block_start).max())
    table = np.empty((threads, 1 << (2 * largest - 1).bit_length() if hashed else 0), np.uint64)
    return ([LOSS_CODES[model._loss], *order.triples, sweep.indptr, sweep.indices,
             sweep.group_items, sweep.group_start, sweep.X, sweep.Y, sweep.b_user,
             sweep.b_item, *sweep.A, sweep.user_reg, sweep.item_reg,
             model.dtype(model.learning_rate), sweep.adagrad, model._negatives(),
             model._verify, model.negative_sampling == "popularity", update_items,
             sweep.Y.shape[0], order.block_start, order.schedule, seed, threads,
             np.empty((threads, sweep.X.shape[1]), model.dtype), table, stats], stats)


def reference_epoch(model, R, order, sweep, seed, state):
    X, Y, bu, bi, A = state
    liked = [set(R.indices[R.indptr[u]:R.indptr[u + 1]]) for u in range(R.shape[0])]
    return ranking_epoch(model._loss, *order.triples, liked, sweep.group_items,
                         sweep.group_start, X, Y, bu, bi, sweep.user_reg, sweep.item_reg,
                         model.learning_rate, order.block_start, order.schedule, seed,
                         negatives=model._negatives(), verify=model._verify,
                         popularity=model.negative_sampling == "popularity",
                         adagrad=sweep.adagrad, accumulators=A)


def copies(sweep):
    return [sweep.X.copy(), sweep.Y.copy(), sweep.b_user.copy(), sweep.b_item.copy(),
            [a.copy() for a in sweep.A]]


def kernel_matches_reference(isa, model, R, order, sweep, seed, hashed):
    """Run one epoch of the `isa` kernel and of the reference from the same state, assert
    they agree (factors, biases, accumulators to 1e-10; loss; steps and skips exactly) and
    return the steps taken."""
    state = copies(sweep)
    args, stats = kernel_args(model, order, sweep, seed, hashed=hashed)
    kernels("_sgd", isa).ranking_epoch(*args)
    total, steps, skipped = reference_epoch(model, R, order, sweep, seed, state)
    for got, want in zip((sweep.X, sweep.Y, sweep.b_user, sweep.b_item), state[:4]):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    if sweep.adagrad:
        for got, want in zip(sweep.A, state[4]):
            np.testing.assert_allclose(got, want, rtol=1e-10)
    assert stats[:, 0].sum() == pytest.approx(total, rel=1e-10)
    assert (stats[:, 1].sum(), stats[:, 2].sum()) == (steps, skipped)
    return steps


# --- kernel against reference ------------------------------------------------------------------
@pytest.mark.parametrize("isa", available_isas("_sgd"))
@pytest.mark.parametrize("loss", ["bpr", "warp", "lmf"])
@pytest.mark.parametrize("adagrad, popularity, hashed", [(False, False, True),
                                                         (True, True, True),
                                                         (False, True, False)])
def test_epoch_matches_reference_sample_for_sample(isa, loss, adagrad, popularity, hashed):
    """float64, G = 3 blocks in schedule order: the same negatives (the same streams) and the
    same steps; only the rounding of the vectorised dot products differs (1e-10). The liked
    check by the blocks' hash sets and by binary search give the same samples."""
    model, R, order, sweep = epoch_inputs(loss, np.float64, 3, adagrad, popularity)
    assert kernel_matches_reference(isa, model, R, order, sweep, 12345, hashed) > 0


@pytest.mark.parametrize("isa", available_isas("_sgd"))
@pytest.mark.parametrize("loss", ["bpr", "warp"])
def test_unverified_adagrad_epoch_matches_reference_even_when_j_is_i(isa, loss):
    """Without the liked check j can be the positive i itself (the pairwise step's own
    branch): the same steps as the reference."""
    model, R, order, sweep = epoch_inputs(loss, np.float64, 3, True, False)
    model.verify_negative_samples = model._verify = False
    assert kernel_matches_reference(isa, model, R, order, sweep, 2024, False) > 0


@pytest.mark.parametrize("loss", ["bpr", "lmf"])
def test_float32_epoch_matches_reference(loss):
    """float32 kernel against the float32 reference: the rounding of float32 sums (1e-4)."""
    model, R, order, sweep = epoch_inputs(loss, np.float32, 2, False, False)
    state = copies(sweep)
    args, _ = kernel_args(model, order, sweep, 7)
    checked.ranking_epoch(*args)
    reference_epoch(model, R, order, sweep, 7, state)
    np.testing.assert_allclose(sweep.X, state[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(sweep.Y, state[1], rtol=1e-4, atol=1e-5)


def test_fold_in_leaves_the_items_alone_and_matches_reference():
    model, R, order, sweep = epoch_inputs("bpr", np.float64, 1, True, False)
    state = copies(sweep)
    Y, b_item = sweep.Y.copy(), sweep.b_item.copy()
    args, _ = kernel_args(model, order, sweep, 99, update_items=False)
    checked.ranking_epoch(*args)
    X, _, bu, bi, A = state
    liked = [set(R.indices[R.indptr[u]:R.indptr[u + 1]]) for u in range(R.shape[0])]
    ranking_epoch("bpr", *order.triples, liked, sweep.group_items, sweep.group_start, X, Y.copy(),
                  bu, bi, sweep.user_reg, sweep.item_reg, model.learning_rate,
                  order.block_start, order.schedule, 99, adagrad=True, accumulators=A,
                  update_items=False)
    np.testing.assert_array_equal(sweep.Y, Y)
    np.testing.assert_array_equal(sweep.b_item, b_item)
    np.testing.assert_allclose(sweep.X, X, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape, dtype", [((1, 8), np.uint64), ((1, 96), np.uint64),
                                          ((1, 128), np.int64), ((0, 128), np.uint64)])
def test_liked_table_too_small_or_malformed_is_refused(shape, dtype):
    """The hash set must hold twice the largest block (or a probe could run forever) and be
    a power of 2 per thread: anything else is a named error before the kernel runs."""
    model, R, order, sweep = epoch_inputs("bpr", np.float64, 3, False, False)
    args, _ = kernel_args(model, order, sweep, 1)
    args[-2] = np.zeros(shape, dtype)
    with pytest.raises(ValueError, match="liked_table"):
        checked.ranking_epoch(*args)


@pytest.mark.parametrize("loss", ["bpr", "warp", "lmf"])
def test_kernel_is_bit_identical_for_1_2_3_threads(loss):
    """G = 4 blocks run in parallel: any number of threads gives the sequential sweep."""
    results = []
    for threads in (1, 2, 3):
        model, R, order, sweep = epoch_inputs(loss, np.float32, 4, loss != "bpr", False)
        args, stats = kernel_args(model, order, sweep, 5, threads=threads)
        checked.ranking_epoch(*args)
        results.append((sweep.X, sweep.Y, sweep.b_item, stats))
    for other in results[1:]:
        for got, want in zip(other, results[0]):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("loss", ["bpr", "warp", "lmf"])
def test_fit_is_bit_identical_for_1_2_3_threads(loss):
    R = fastals.datasets.synthetic_interactions(600, 300, 40_000, random_state=1)
    fits = []
    for threads in (1, 2, 3):
        model = MODELS[loss](factors=8, iterations=2, random_state=3, num_threads=threads)
        if loss == "lmf":
            model.neg_prop = 2
        fits.append(model.fit(R, show_progress=False))
    for other in fits[1:]:
        np.testing.assert_array_equal(other.user_factors, fits[0].user_factors)
        np.testing.assert_array_equal(other.item_factors, fits[0].item_factors)
        assert other.loss_history == fits[0].loss_history


# --- the contract --------------------------------------------------------------------------
class TestBPRBehaviour(RecommenderBaseTestMixin):
    def make_model(self):
        return fastals.BayesianPersonalizedRanking(factors=3, learning_rate=0.1,
                                                   regularization=0.01, iterations=150,
                                                   random_state=0)


class TestWARPBehaviour(RecommenderBaseTestMixin):
    def make_model(self):
        return fastals.WARP(factors=3, iterations=60, random_state=0)


class TestLMFBehaviour(RecommenderBaseTestMixin):
    def make_model(self):
        return fastals.LogisticMatrixFactorization(factors=3, iterations=40, neg_prop=5,
                                                   regularization=0.1, random_state=0)


@pytest.mark.parametrize("loss", ["bpr", "warp", "lmf"])
def test_loss_decreases_and_is_shown(loss, caplog):
    R = likes(200, 100, 0.1, seed=2)
    model = MODELS[loss](factors=8, iterations=8, random_state=0)
    seen = []
    model.fit(R, show_progress=False, callback=lambda e, t, value: seen.append(value))
    assert seen == model.loss_history and len(seen) == 8
    assert seen[-1] < seen[0]


def test_defaults_are_implicits():
    assert fastals.BayesianPersonalizedRanking().get_params() | {} == {
        "factors": 100, "learning_rate": 0.01, "regularization": 0.01, "dtype": np.float32,
        "iterations": 100, "num_threads": 0, "verify_negative_samples": True,
        "random_state": None, "learning_schedule": "constant", "negative_sampling": "uniform",
        "strata": None}
    params = fastals.LogisticMatrixFactorization().get_params()
    assert {k: params[k] for k in ("factors", "learning_rate", "regularization", "iterations",
                                   "neg_prop")} == {"factors": 30, "learning_rate": 1.0,
                                                    "regularization": 0.6, "iterations": 30,
                                                    "neg_prop": 30}
    model = fastals.BayesianPersonalizedRanking(factors=4, iterations=1, random_state=0)
    model.fit(likes(), show_progress=False)
    assert model.user_factors.shape == (40, 5) and (model.user_factors[:, -1] == 1).all()
    lmf = fastals.LogisticMatrixFactorization(factors=4, iterations=1, random_state=0)
    lmf.fit(likes(), show_progress=False)
    assert lmf.item_factors.shape == (30, 6) and (lmf.item_factors[:, -2] == 1).all()


# --- fold-in -----------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", ["bpr", "warp", "lmf"])
def test_recalculate_user_ranks_like_the_fitted_user(loss):
    """A user folded in from their row against the fixed items recommends the items the
    fitted user's factors recommend, mostly (the planted taste groups)."""
    R = fastals.datasets.synthetic_interactions(300, 120, 6000, random_state=4)
    model = MODELS[loss](factors=8, iterations=20, random_state=0).fit(R, show_progress=False)
    users = np.arange(10)
    before = model.item_factors.copy()
    folded = model.recalculate_user(users, R[users])
    np.testing.assert_array_equal(model.item_factors, before)
    assert folded.shape == (10, model.user_factors.shape[1])
    ids, _ = model.recommend(users, R[users], N=10, recalculate_user=True)
    fitted, _ = model.recommend(users, R[users], N=10)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, fitted)])
    assert overlap > 0.4
    again, _ = model.recommend(users, R[users], N=10, recalculate_user=True)
    np.testing.assert_array_equal(again, ids)
    grown = model.partial_fit_users([300, 2], R[[0, 2]])
    assert grown.user_factors.shape[0] == 301
    np.testing.assert_array_equal(grown.user_factors[[300, 2]],
                                  model.recalculate_user([0, 2], R[[0, 2]]))


# --- bad inputs ----------------------------------------------------------------------------
@pytest.mark.parametrize("cls", list(MODELS.values()))
def test_bad_parameters_are_named(cls):
    with pytest.raises(ValueError, match="learning_rate"):
        cls(learning_rate=0)
    with pytest.raises(ValueError, match="learning_rate"):
        cls(learning_rate=-1)
    with pytest.raises(ValueError, match="regularization"):
        cls(regularization=-0.1)
    with pytest.raises(ValueError, match="learning_schedule"):
        cls(learning_schedule="sometimes")
    with pytest.raises(ValueError, match="negative_sampling"):
        cls(negative_sampling="random")
    with pytest.raises(ValueError, match="factors"):
        cls(factors=0)


@pytest.mark.parametrize("cls", list(MODELS.values()))
def test_bad_matrices_are_named(cls):
    model = cls(factors=2, iterations=2, random_state=0)
    R = likes()
    R.data[3] = np.nan
    with pytest.raises(ValueError, match="user_items"):
        model.fit(R, show_progress=False)
    with pytest.raises(ValueError, match="user_items"):
        model.fit(sp.csr_matrix((5, 4)), show_progress=False)
    with pytest.raises(ValueError, match="user_items"):
        model.fit(sp.csr_matrix((0, 0)), show_progress=False)


@pytest.mark.parametrize("cls", list(MODELS.values()))
def test_a_user_who_liked_every_item_is_named_not_a_hang(cls):
    R = likes(20, 10).tolil()
    R[7, :] = 1
    model = cls(factors=2, iterations=2, random_state=0)
    with pytest.raises(ValueError, match="user 7 liked every one of the 10 items"):
        model.fit(R.tocsr(), show_progress=False)
    if cls is not fastals.LogisticMatrixFactorization:  # without verification: no negative
        cls(factors=2, iterations=2, random_state=0,  # is rejected, so it trains
            verify_negative_samples=False).fit(R.tocsr(), show_progress=False)


def test_a_block_whose_items_are_all_liked_is_skipped_not_a_hang():
    """A user who liked every item of one item group (but not every item) gets samples
    whose negatives cannot be found there: at most 64 draws each, then skipped."""
    R = sp.lil_matrix((8, 8))
    R[0, :4] = 1
    R[1:, 4:] = 1
    model = fastals.BayesianPersonalizedRanking(factors=2, iterations=3, random_state=0,
                                                strata=2)
    model.fit(R.tocsr(), show_progress=False)
    assert np.isfinite(model.user_factors).all()


def test_users_and_items_without_interactions():
    R = likes(30, 20).tolil()
    R[4, :] = 0
    R[:, 6] = 0
    R = R.tocsr()
    R.eliminate_zeros()
    for cls in MODELS.values():
        model = cls(factors=4, iterations=3, random_state=0).fit(R, show_progress=False)
        assert model.user_counts[4] == 0 and model.item_counts[6] == 0
        assert not model.user_factors[4, :4].any()
        assert np.isfinite(model.item_factors).all()
        ids, _ = model.recommend(4, R[4], N=5)
        assert len(ids) == 5


@pytest.mark.parametrize("loss", ["bpr", "lmf"])
def test_divergence_names_the_epoch(loss):
    model = MODELS[loss](factors=4, iterations=5, learning_rate=1e30, random_state=0,
                         learning_schedule="constant")
    with pytest.raises(ModelFitError, match=r"diverged in epoch \d+ of 5"):
        model.fit(likes(), show_progress=False)
    assert not model.is_fitted


def test_lmf_rejects_negative_confidences():
    R = likes()
    R.data[0] = -1
    with pytest.raises(ValueError, match="negative values"):
        fastals.LogisticMatrixFactorization(iterations=1).fit(R, show_progress=False)


# --- quality -----------------------------------------------------------------------------------
def test_movielens_precision_beats_the_peers_figures(ml100k_path):
    """MovieLens 100K, binary, 80/20 split (seed 42): P@10 of the issue's measurements there:
    popularity 0.214, implicit BPR 0.271, implicit LMF 0.272. BPR at least implicit's BPR,
    WARP at least BPR, LMF at least implicit's LMF and 1.2x popularity."""
    from fastals.datasets import load_movielens_100k
    from fastals.evaluation import precision_at_k, train_test_split
    R = load_movielens_100k(ml100k_path)[0].tocsr().astype(np.float32)
    R.data[:] = 1
    train, test = train_test_split(R, 0.2, random_state=42)
    p = {}
    for loss, params in (("bpr", {}), ("warp", {}), ("lmf", {"iterations": 5})):
        model = MODELS[loss](random_state=0, **params).fit(train, show_progress=False)
        p[loss] = precision_at_k(model, train, test, K=10, show_progress=False)
    assert p["bpr"] >= 0.271, p
    assert p["warp"] >= p["bpr"], p
    assert p["lmf"] >= max(0.272, 1.2 * 0.214), p


# --- command line --------------------------------------------------------------------------
@pytest.mark.parametrize("name, cls", [("bpr", "BayesianPersonalizedRanking"),
                                       ("lmf", "LogisticMatrixFactorization"), ("warp", "WARP")])
def test_fastals_fit_model(tmp_path, name, cls):
    import os
    import subprocess
    import sys
    from pathlib import Path
    rows = ["user,item,plays"] + [f"u{u},i{(u * 7 + k) % 23},1" for u in range(30)
                                  for k in range(6)]
    (tmp_path / "plays.csv").write_text("\n".join(rows) + "\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep \
        + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "fastals", "fit", "plays.csv", "--model", name,
                           "--factors", "4", "--iterations", "3", "-o", "model.npz"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert cls in proc.stdout, proc.stdout
