"""fastals.evaluation: splits, ranking metrics (kernel vs numpy loop, hand-computed), rmse/mae."""
import math

import numpy as np
import pytest
import scipy.sparse as sp

import fastals
from fastals import evaluation as ev
from fastals.data import Interactions, from_arrays
from fastals.reference.metrics import list_metrics, ranking_metrics_loop

from conftest import random_interactions

# Sums of at most a few hundred terms of size <= 1 in float64: agreement to 1e-12 is exact
# up to rounding order.
TOL = 1e-12


# --- hand-computed cases ------------------------------------------------------------------
def _test_matrix(rows, n_items):
    data, cols, indptr = [], [], [0]
    for items in rows:
        cols += sorted(items)
        data += [1.0] * len(items)
        indptr.append(len(cols))
    return sp.csr_matrix((data, cols, indptr), shape=(len(rows), n_items))


def test_metrics_by_hand():
    # user 0: relevant {1, 3}, list [1, 2, 3]; user 1: relevant {5}, list [0, 5, 9]
    test = _test_matrix([{1, 3}, {5}], 10)
    result = ev.metrics_from_recommendations([[1, 2, 3], [0, 5, 9]], test, per_user=True)
    ap0 = (1 / 1 + 2 / 3) / 2
    ap1 = (1 / 2) / 1
    ndcg0 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    ndcg1 = (1 / math.log2(3)) / 1
    # AUC: misses count the hits above them; unlisted negatives tie below the list
    auc0 = (1 + (2 + 2) / 2 * (8 - 1)) / (2 * 8)
    auc1 = (0 + 1 + (1 + 1) / 2 * (9 - 2)) / (1 * 9)
    assert result["precision"] == pytest.approx(3 / 3, abs=TOL)
    assert result["recall"] == pytest.approx(1.0, abs=TOL)
    assert result["map"] == pytest.approx((ap0 + ap1) / 2, abs=TOL)
    assert result["ndcg"] == pytest.approx((ndcg0 + ndcg1) / 2, abs=TOL)
    assert result["auc"] == pytest.approx((auc0 + auc1) / 2, abs=TOL)
    assert result["coverage"] == pytest.approx(6 / 10)
    assert result["users"] == 2 and result["K"] == 3
    assert result["per_user"]["ap"].tolist() == pytest.approx([ap0, ap1], abs=TOL)


def test_precision_denominator_is_min_k_and_test_size():
    # 4 relevant items, K = 3, one hit: precision 1/min(3, 4) = 1/3, recall 1/4
    test = _test_matrix([{4, 7, 8, 9}], 10)
    result = ev.metrics_from_recommendations([[4, 0, 1]], test)
    assert result["precision"] == pytest.approx(1 / 3, abs=TOL)
    assert result["recall"] == pytest.approx(1 / 4, abs=TOL)
    # 1 relevant item found first of K = 3: precision 1 (not 1/3), nDCG 1, AP 1
    result = ev.metrics_from_recommendations([[2, 0, 1]], _test_matrix([{2}], 10))
    assert result["precision"] == result["ndcg"] == result["map"] == pytest.approx(1.0)
    # micro-average: hits summed over users, divided by the summed denominators
    result = ev.metrics_from_recommendations([[2, 0, 1], [5, 6, 7]],
                                             _test_matrix([{2}, {1, 3, 4}], 10))
    assert result["precision"] == pytest.approx(1 / (1 + 3), abs=TOL)


def test_padding_wider_lists_and_skipped_users():
    test = _test_matrix([{1}, set(), {2, 3}], 6)
    result = ev.metrics_from_recommendations([[1, -1, -1], [0, 1, 2], [3, 9 - 9, 2]], test,
                                             K=2, per_user=True)
    # K=2 cuts the lists; user 1 has no relevant item and is skipped
    assert result["users"] == 2
    assert result["per_user"]["users"].tolist() == [0, 2]
    assert result["per_user"]["hits"].tolist() == [1, 1]
    expected = [list_metrics(np.array([1, -1]), [1], 2, 6),
                list_metrics(np.array([3, 0]), [2, 3], 2, 6)]
    assert result["per_user"]["auc"].tolist() == pytest.approx([e[5] for e in expected])


def test_recommendation_lists_are_validated():
    test = _test_matrix([{1}], 5)
    with pytest.raises(ValueError, match="lists an item twice"):
        ev.metrics_from_recommendations([[1, 2, 1]], test)
    with pytest.raises(ValueError, match=r"-1 \(padding\) or in \[0, 5\)"):
        ev.metrics_from_recommendations([[1, 5]], test)
    with pytest.raises(TypeError, match="integer item ids"):
        ev.metrics_from_recommendations([[1.5, 2.0]], test)
    with pytest.raises(ValueError, match="2-D"):
        ev.metrics_from_recommendations([1, 2], test)


def test_only_positive_test_values_are_relevant():
    test = sp.csr_matrix(np.array([[0.0, -1.0, 3.0, 0.0]]))
    result = ev.metrics_from_recommendations([[1, 2]], test, per_user=True)
    assert result["per_user"]["hits"].tolist() == [1]
    assert result["recall"] == 1.0


# --- kernel vs the numpy loop -------------------------------------------------------------
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_kernel_equals_numpy_loop_on_random_lists(threads, index_dtype):
    rng = np.random.default_rng(7)
    n_users, n_items, K = 60, 40, 8
    test = random_interactions(n_users, n_items, 0.08, seed=3).tocsr()
    test.indices = test.indices.astype(index_dtype)
    test.indptr = test.indptr.astype(index_dtype)
    lists = np.array([rng.permutation(n_items)[:K] for _ in range(n_users)])
    lists[rng.random(lists.shape) < 0.1] = -1  # some padding (duplicates of -1 are fine)
    kept = np.flatnonzero(np.diff(test.indptr) > 0)  # users without test items are skipped
    assert 0 < len(kept) < n_users
    per, totals = ranking_metrics_loop(lists[kept], test, kept, K, n_items)
    result = ev.metrics_from_recommendations(lists, test, num_threads=threads, per_user=True)
    assert result["per_user"]["users"].tolist() == kept.tolist()
    assert np.allclose(result["per_user"]["hits"], per[:, 0], atol=TOL)
    assert np.allclose(result["per_user"]["ap"], per[:, 3], atol=TOL)
    assert np.allclose(result["per_user"]["ndcg"], per[:, 4], atol=TOL)
    assert np.allclose(result["per_user"]["auc"], per[:, 5], atol=TOL, equal_nan=True)
    for name in ("precision", "recall", "map", "ndcg", "auc"):
        assert result[name] == pytest.approx(totals[name], abs=TOL), name


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ranking_metrics_at_k_equals_a_numpy_loop_over_users(threads, dtype):
    matrix = random_interactions(80, 50, 0.15, seed=11)
    train, test = ev.train_test_split(matrix, 0.25, random_state=0)
    model = fastals.ImplicitALS(factors=6, iterations=4, random_state=0, dtype=dtype,
                                num_threads=threads).fit(train, show_progress=False)
    K = 5
    result = ev.ranking_metrics_at_k(model, train, test, K, num_threads=threads, per_user=True)
    users = np.flatnonzero(np.diff(test.tocsr().indptr) > 0)
    lists = []
    for u in users:  # one user at a time, through the public recommend
        ids, _ = model.recommend(u, train[u], N=K)
        lists.append(np.pad(ids, (0, K - len(ids)), constant_values=-1))
    per, totals = ranking_metrics_loop(np.array(lists), test, users, K, 50)
    assert result["users"] == len(users)
    assert result["per_user"]["users"].tolist() == users.tolist()
    for name in ("precision", "recall", "map", "ndcg", "auc"):
        assert result[name] == pytest.approx(totals[name], abs=TOL), name
    recommended = np.unique(np.concatenate(lists))
    assert result["coverage"] == pytest.approx(len(recommended[recommended >= 0]) / 50)
    # the single-metric helpers agree
    assert ev.precision_at_k(model, train, test, K) == pytest.approx(result["precision"])
    assert ev.ndcg_at_k(model, train, test, K) == pytest.approx(result["ndcg"])


def test_ranking_metrics_accept_interactions_and_id_recommenders():
    data = from_arrays([f"u{k % 20}" for k in range(200)], [f"i{(k * 7) % 30}" for k in range(200)],
                       duplicates="max")
    train, test = ev.train_test_split(data, 0.3, random_state=1)
    rec = fastals.IdRecommender(fastals.ImplicitALS(factors=4, iterations=3, random_state=0))
    rec.fit(train, show_progress=False)
    a = ev.ranking_metrics_at_k(rec, train, test, 5)
    b = ev.ranking_metrics_at_k(rec.model, train.user_items, test.user_items, 5)
    assert a == b


def test_ranking_metrics_check_shapes():
    matrix = random_interactions(10, 8, 0.3, seed=1)
    model = fastals.ImplicitALS(factors=2, iterations=1, random_state=0)
    model.fit(matrix, show_progress=False)
    with pytest.raises(ValueError, match="same shape"):
        ev.ranking_metrics_at_k(model, matrix, matrix[:, :7], 5)
    with pytest.raises(ValueError, match="model knows"):
        ev.ranking_metrics_at_k(model, sp.csr_matrix((10, 9)), sp.csr_matrix((10, 9)), 5)
    with pytest.raises(ValueError, match="K must be a positive int"):
        ev.ranking_metrics_at_k(model, matrix, matrix, 0)
    with pytest.raises(fastals.NotFittedError):
        ev.ranking_metrics_at_k(fastals.ImplicitALS(), matrix, matrix, 5)


# --- splits -----------------------------------------------------------------------------------
def _dense(m):
    return m.toarray() if sp.issparse(m) else m.user_items.toarray()


def test_train_test_split_is_seeded_disjoint_and_complete():
    matrix = random_interactions(50, 40, 0.2, seed=2)
    before = matrix.copy()
    train, test = ev.train_test_split(matrix, 0.25, random_state=5)
    again_train, again_test = ev.train_test_split(matrix, 0.25, random_state=5)
    other_train, _ = ev.train_test_split(matrix, 0.25, random_state=6)
    assert (train != again_train).nnz == 0 and (test != again_test).nnz == 0
    assert (train != other_train).nnz > 0
    assert train.multiply(test).nnz == 0  # no (user, item) pair in both
    assert np.array_equal(_dense(train) + _dense(test), matrix.toarray())
    assert 0.15 < test.nnz / matrix.nnz < 0.35
    assert (matrix != before).nnz == 0  # input untouched
    with pytest.raises(ValueError, match="test_size"):
        ev.train_test_split(matrix, 1.0)


def test_train_test_split_takes_implicits_train_percentage():
    """implicit's train_test_split(ratings, train_percentage=0.8): the same split as
    test_size=0.2; a positional 0.8 (implicit's habit) is a test_size here, and warns."""
    matrix = sp.random(60, 50, density=0.2, format="csr", random_state=3)
    a_train, a_test = ev.train_test_split(matrix, train_percentage=0.8, random_state=4)
    b_train, b_test = ev.train_test_split(matrix, test_size=0.2, random_state=4)
    assert (a_train != b_train).nnz == 0 and (a_test != b_test).nnz == 0
    assert (ev.train_test_split(matrix, random_state=4)[1] != b_test).nnz == 0  # default 0.2
    with pytest.warns(UserWarning, match="train_percentage=0.8"):
        train, test = ev.train_test_split(matrix, 0.8, random_state=4)
    assert test.nnz > train.nnz


def test_splits_keep_interactions_and_timestamps_together():
    users = np.repeat(np.arange(30), 6)
    items = np.tile(np.arange(6), 30)
    times = np.arange(len(users), dtype=float)[::-1]
    data = from_arrays(users, items, np.arange(1, len(users) + 1), timestamps=times)
    train, test = ev.train_test_split(data, 0.3, random_state=0)
    assert isinstance(train, Interactions) and train.users is data.users
    lookup = {}
    coo = data.user_items.tocoo()
    for r, c, t in zip(coo.row, coo.col, data.timestamps):
        lookup[(r, c)] = t
    for part in (train, test):
        coo = part.user_items.tocoo()
        assert [lookup[(r, c)] for r, c in zip(coo.row, coo.col)] == part.timestamps.tolist()


def test_leave_k_out_split():
    matrix = random_interactions(40, 30, 0.2, seed=4)
    counts = np.diff(matrix.indptr)
    train, test = ev.leave_k_out_split(matrix, K=2, random_state=3)
    test_counts = np.diff(test.indptr)
    assert np.array_equal(test_counts, np.where(counts >= 3, 2, 0))
    assert np.array_equal(_dense(train) + _dense(test), matrix.toarray())
    again, again_test = ev.leave_k_out_split(matrix, K=2, random_state=3)
    assert (again_test != test).nnz == 0
    _, some = ev.leave_k_out_split(matrix, K=1, train_only_size=0.5, random_state=3)
    eligible = int((counts >= 2).sum())
    assert np.count_nonzero(np.diff(some.indptr)) == eligible - round(0.5 * eligible)
    with pytest.raises(ValueError, match="K must be a positive int"):
        ev.leave_k_out_split(matrix, K=0)


def test_leave_k_out_by_time_takes_the_most_recent():
    data = from_arrays(["a"] * 4 + ["b"] * 2, ["w", "x", "y", "z", "w", "x"],
                       timestamps=[1, 4, 3, 2, 9, 8])
    train, test = ev.leave_k_out_split(data, K=2, by_time=True, random_state=0)
    items = data.items.ids
    a = test.user_items[data.users.index("a")].indices
    assert sorted(items[a].tolist()) == ["x", "y"]
    assert test.user_items[data.users.index("b")].nnz == 0  # b has only K interactions
    with pytest.raises(ValueError, match="timestamps"):
        ev.leave_k_out_split(data.user_items, by_time=True)


def test_split_by_time():
    rng = np.random.default_rng(0)
    n = 400
    data = from_arrays(rng.integers(0, 30, n), rng.integers(0, 40, n),
                       timestamps=rng.permutation(n).astype(float), duplicates="max")
    train, test = ev.split_by_time(data, test_size=0.25)
    assert train.timestamps.max() < test.timestamps.min()
    assert 0.2 < test.nnz / data.nnz < 0.3
    train2, test2 = ev.split_by_time(data.user_items, cutoff=200, timestamps=data.timestamps)
    assert sp.issparse(train2) and test2.nnz == int((data.timestamps >= 200).sum())
    with pytest.raises(ValueError, match="needs timestamps"):
        ev.split_by_time(data.user_items)


# --- rating metrics and cross-validation --------------------------------------------------------
def test_rmse_and_mae_by_hand():
    assert ev.rmse([1, 2, 3], [1, 4, 3]) == pytest.approx(math.sqrt(4 / 3))
    assert ev.mae([1, 2, 3], [2, 4, 3]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same length"):
        ev.rmse([1, 2], [1])
    with pytest.raises(ValueError, match="finite"):
        ev.mae([1, np.nan], [1, 2])


def test_rmse_of_a_model_uses_its_scores_of_the_test_entries():
    matrix = random_interactions(20, 15, 0.3, seed=9)
    train, test = ev.train_test_split(matrix, 0.3, random_state=0)
    model = fastals.ImplicitALS(factors=3, iterations=3, random_state=0,
                                dtype=np.float64).fit(train, show_progress=False)
    coo = test.tocoo()
    predicted = np.einsum("ij,ij->i", model.user_factors[coo.row], model.item_factors[coo.col])
    assert ev.rmse(model, test) == pytest.approx(np.sqrt(np.mean((predicted - coo.data) ** 2)))
    assert ev.mae(model, test) == pytest.approx(np.mean(np.abs(predicted - coo.data)))


def test_cross_validate():
    matrix = random_interactions(60, 40, 0.15, seed=5)
    model = fastals.ImplicitALS(factors=4, iterations=3, random_state=0)
    result = ev.cross_validate(model, matrix, folds=3, K=5, random_state=0)
    assert set(result) >= {"precision", "recall", "map", "ndcg", "auc", "coverage", "fit_time"}
    assert all(len(v) == 3 and np.isfinite(v).all() for v in result.values())
    assert not model.is_fitted  # the model passed in is only a template
    again = ev.cross_validate(model, matrix, folds=3, K=5, random_state=0)
    assert np.array_equal(result["precision"], again["precision"])
    result = ev.cross_validate(model, matrix, folds=2, measures=["rmse", "ndcg"], random_state=0)
    assert set(result) == {"rmse", "ndcg", "fit_time", "test_time"}
    with pytest.raises(ValueError, match="unknown measures"):
        ev.cross_validate(model, matrix, measures=["f1"])


# --- the popularity baseline -------------------------------------------------------------------
def test_popularity_baseline(tmp_path):
    matrix = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 1, 1, 0], [0, 0, 1, 1], [0, 0, 0, 0.0]]))
    model = ev.PopularityBaseline().fit(matrix)
    ids, _ = model.recommend(3, matrix, N=2)
    assert ids[0] == 2  # most users
    ids, _ = model.recommend(0, matrix, N=4)
    assert 2 not in ids and 0 not in ids
    loaded = fastals.load(model.save(tmp_path / "pop.npz"))
    assert np.array_equal(loaded.item_popularity, model.item_popularity)
    assert loaded.n_users == 4
    with pytest.raises(TypeError, match="no notion of similar"):
        model.similar_items(0)


def test_real_data_implicit_als_beats_popularity(ml100k_path):
    from fastals.datasets import load_movielens

    data = load_movielens(ml100k_path)
    train, test = ev.train_test_split(data, 0.2, random_state=0)
    model = fastals.ImplicitALS(factors=64, regularization=0.05, iterations=15, random_state=0)
    model.fit(train.user_items, show_progress=False)
    als = ev.ranking_metrics_at_k(model, train, test, 10)
    pop = ev.ranking_metrics_at_k(ev.PopularityBaseline().fit(train.user_items), train, test, 10)
    assert als["precision"] >= 0.30
    assert als["precision"] > pop["precision"] + 0.05


# --- metrics that say what they mean ------------------------------------------------------
def test_standard_precision_hit_rate_and_mrr_by_hand():
    # user 0: relevant {1, 3}, list [1, 2, 3] (hits 2, first hit at rank 1);
    # user 1: relevant {5}, list [0, 5, 9] (hits 1, first hit at rank 2); user 2: no hit
    test = _test_matrix([{1, 3}, {5}, {7}], 10)
    result = ev.metrics_from_recommendations([[1, 2, 3], [0, 5, 9], [0, 1, -1]], test,
                                             per_user=True)
    assert result["precision"] == pytest.approx((2 + 1 + 0) / (2 + 1 + 1), abs=TOL)
    assert result["precision_standard"] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3, abs=TOL)
    assert result["hit_rate"] == pytest.approx(2 / 3, abs=TOL)
    assert result["mrr"] == pytest.approx((1 + 1 / 2 + 0) / 3, abs=TOL)
    assert result["per_user"]["rr"].tolist() == pytest.approx([1, 0.5, 0])
    # implicit's precision can rise with K where the standard one falls
    one = _test_matrix([{2}], 10)
    at1 = ev.metrics_from_recommendations([[2]], one)
    at5 = ev.metrics_from_recommendations([[2, 0, 1, 3, 4]], one)
    assert at1["precision"] == at5["precision"] == 1.0
    assert at5["precision_standard"] == pytest.approx(1 / 5)


def test_precision_at_k_takes_a_definition():
    matrix = random_interactions(40, 30, 0.2, seed=4)
    train, test = ev.train_test_split(matrix, 0.3, random_state=0)
    model = fastals.ImplicitALS(factors=4, iterations=3, random_state=0).fit(
        train, show_progress=False)
    full = ev.ranking_metrics_at_k(model, train, test, 5)
    assert ev.precision_at_k(model, train, test, 5) == full["precision"]
    assert ev.precision_at_k(model, train, test, 5, definition="standard") == \
        full["precision_standard"]
    assert ev.hit_rate_at_k(model, train, test, 5) == full["hit_rate"]
    assert ev.mrr_at_k(model, train, test, 5) == full["mrr"]
    with pytest.raises(ValueError, match="definition"):
        ev.precision_at_k(model, train, test, 5, definition="micro")


@pytest.mark.parametrize("threads", [1, 2])
def test_new_accuracy_metrics_equal_the_numpy_loop(threads):
    rng = np.random.default_rng(5)
    n_users, n_items, K = 50, 30, 6
    test = random_interactions(n_users, n_items, 0.1, seed=8).tocsr()
    lists = np.array([rng.permutation(n_items)[:K] for _ in range(n_users)])
    lists[rng.random(lists.shape) < 0.1] = -1
    kept = np.flatnonzero(np.diff(test.indptr) > 0)
    per, totals = ranking_metrics_loop(lists[kept], test, kept, K, n_items)
    result = ev.metrics_from_recommendations(lists, test, num_threads=threads, per_user=True)
    assert np.allclose(result["per_user"]["rr"], per[:, 6], atol=TOL)
    for name in ("precision_standard", "hit_rate", "mrr"):
        assert result[name] == pytest.approx(totals[name], abs=TOL), name


def test_beyond_accuracy_by_hand():
    # 4 training users; item popularity n = [4, 2, 1, 0] (item 3: nobody)
    train = _test_matrix([{0, 1}, {0, 1, 2}, {0}, {0}], 4)
    test = _test_matrix([{2}, {3}], 4)
    lists = [[0, 3], [1, 2]]
    vectors = np.array([[1.0, 0], [0, 1], [1, 1], [0, 0]])
    result = ev.metrics_from_recommendations(lists, test, train_user_items=train,
                                             item_features=vectors, per_user=True)
    # novelty: -log2(4/4) = 0, item 3 counts as had once: -log2(1/4) = 2 -> 1;
    # -log2(2/4) = 1, -log2(1/4) = 2 -> 1.5
    assert result["per_user"]["novelty"].tolist() == pytest.approx([1.0, 1.5])
    assert result["novelty"] == pytest.approx(1.25)
    # percentile: fraction of items at most as popular: item 0 -> 4/4, 3 -> 1/4,
    # 1 -> 3/4, 2 -> 2/4
    assert result["per_user"]["popularity_percentile"].tolist() == pytest.approx(
        [(1 + 0.25) / 2, (0.75 + 0.5) / 2])
    # diversity: 1 - cos; a zero vector has cosine 0 with anything
    assert result["per_user"]["diversity"].tolist() == pytest.approx(
        [1.0, 1 - 1 / math.sqrt(2)])
    assert result["diversity"] == pytest.approx((2 - 1 / math.sqrt(2)) / 2)
    # without training data or features they are not known
    bare = ev.metrics_from_recommendations(lists, test)
    assert all(math.isnan(bare[m]) for m in ("novelty", "popularity_percentile", "diversity"))
    with pytest.raises(ValueError, match="item_features must be"):
        ev.metrics_from_recommendations(lists, test, item_features=vectors[:3])


def test_beyond_accuracy_equals_the_numpy_loops():
    from fastals.reference.metrics import (intra_list_diversity_loop, novelty_loop,
                                           popularity_percentile_loop)
    matrix = random_interactions(60, 40, 0.15, seed=12)
    train, test = ev.train_test_split(matrix, 0.25, random_state=2)
    model = fastals.ImplicitALS(factors=5, iterations=3, random_state=0).fit(
        train, show_progress=False)
    result = ev.ranking_metrics_at_k(model, train, test, 6, per_user=True)
    users = result["per_user"]["users"]
    lists = [np.pad(ids, (0, 6 - len(ids)), constant_values=-1)
             for ids in (model.recommend(u, train[u], N=6)[0] for u in users)]
    assert result["novelty"] == pytest.approx(novelty_loop(lists, train), rel=1e-12)
    assert result["popularity_percentile"] == pytest.approx(
        popularity_percentile_loop(lists, train), rel=1e-12)
    # diversity on the model's item factors by default
    assert result["diversity"] == pytest.approx(
        intra_list_diversity_loop(lists, model.item_factors), rel=1e-6)


# --- confidence intervals and paired comparisons --------------------------------------------
@pytest.fixture(scope="module")
def two_models():
    matrix = fastals.datasets.make_synthetic(n_users=300, n_items=150, random_state=3).user_items
    train, test = ev.train_test_split(matrix, 0.2, random_state=0)
    als = fastals.ImplicitALS(factors=8, regularization=1.0, iterations=5, random_state=0)
    als.fit(train, show_progress=False)
    popular = fastals.PopularityBaseline().fit(train, show_progress=False)
    return als, popular, train, test


def test_bootstrap_intervals_equal_the_reference_loop(two_models):
    from fastals.reference.metrics import bootstrap_loop
    als, _, train, test = two_models
    result = ev.ranking_metrics_at_k(als, train, test, 10, per_user=True)
    intervals = ev.bootstrap_intervals(result, n_resamples=200, confidence=0.9, random_state=7)
    per = result["per_user"]
    for name, num, den in (("precision", per["hits"], per["n_relevant"]),
                           ("ndcg", per["ndcg"], np.ones(len(per["ndcg"])))):
        values = bootstrap_loop(num, den, 200, np.random.default_rng(7))
        assert intervals[name] == pytest.approx(tuple(np.percentile(values, [5, 95])),
                                                rel=1e-12)
        low, high = intervals[name]
        assert low <= result[name] <= high
    again = ev.bootstrap_intervals(result, n_resamples=200, confidence=0.9, random_state=7)
    assert again == intervals
    with pytest.raises(ValueError, match="per_user=True"):
        ev.bootstrap_intervals(ev.ranking_metrics_at_k(als, train, test, 10))
    with pytest.raises(ValueError, match="confidence must be"):
        ev.bootstrap_intervals(result, confidence=1.5)


def test_paired_bootstrap_by_hand_and_against_the_reference(two_models):
    from fastals.reference.metrics import bootstrap_loop
    als, popular, train, test = two_models
    a = ev.ranking_metrics_at_k(als, train, test, 10, per_user=True)
    b = ev.ranking_metrics_at_k(popular, train, test, 10, per_user=True)
    same = ev.paired_bootstrap(a, a, n_resamples=50, random_state=0)
    assert same["ndcg"]["difference"] == 0 and same["ndcg"]["p_value"] == 1.0
    assert same["ndcg"]["ties"] == a["users"]
    out = ev.paired_bootstrap(a, b, n_resamples=300, confidence=0.95, random_state=1)
    ndcg = out["ndcg"]
    assert ndcg["a"] == pytest.approx(a["ndcg"]) and ndcg["b"] == pytest.approx(b["ndcg"])
    assert ndcg["difference"] == pytest.approx(a["ndcg"] - b["ndcg"])
    # the same resamples for both models: the difference of two reference loops on one seed
    ones = np.ones(a["users"])
    drawn = (bootstrap_loop(a["per_user"]["ndcg"], ones, 300, np.random.default_rng(1))
             - bootstrap_loop(b["per_user"]["ndcg"], ones, 300, np.random.default_rng(1)))
    assert (ndcg["low"], ndcg["high"]) == pytest.approx(tuple(np.percentile(drawn, [2.5, 97.5])))
    assert ndcg["p_value"] == pytest.approx(
        np.mean(np.abs(drawn - ndcg["difference"]) >= abs(ndcg["difference"])))
    diff = a["per_user"]["ndcg"] - b["per_user"]["ndcg"]
    assert (ndcg["wins"], ndcg["losses"], ndcg["ties"]) == (
        (diff > 0).sum(), (diff < 0).sum(), (diff == 0).sum())
    # ALS beats popularity on planted tastes, clearly
    assert ndcg["low"] > 0 and ndcg["p_value"] < 0.01
    assert ev.compare_models(als, popular, train, test, 10, n_resamples=300,
                             random_state=1)["ndcg"] == ndcg
    with pytest.raises(ValueError, match="same users"):
        ev.paired_bootstrap(a, ev.ranking_metrics_at_k(als, train, test, 5, per_user=True))


def test_cli_evaluate_compare(tmp_path, capsys, monkeypatch):
    import json

    from fastals.cli import main

    monkeypatch.chdir(tmp_path)
    args = ["evaluate", "synthetic", "--factors", "4", "--iterations", "3", "-k", "5", "-q",
            "--compare", "popularity", "--bootstrap", "100"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "paired comparison on the same" in out and "95% interval" in out
    assert main(args + ["--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["models"]) == {"implicit-als", "popularity"}  # no second baseline
    ndcg = result["comparison"]["ndcg"]
    assert ndcg["difference"] == pytest.approx(result["models"]["implicit-als"]["ndcg"]
                                               - result["models"]["popularity"]["ndcg"])
    assert ndcg["low"] <= ndcg["difference"] <= ndcg["high"]
    assert main(args[:-4] + ["--compare", "nosuch"]) == 2
