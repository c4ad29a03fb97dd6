"""The approximate index (the optional extra fastals[ann]): recall against the exact
answer, filters honoured, save/load next to the model; skipped without hnswlib."""
import numpy as np
import pytest

import fastals
from fastals.ann import ApproximateIndex, augment_items, recall_at_n
from conftest import random_interactions

pytest.importorskip("hnswlib")


@pytest.fixture(scope="module")
def fitted():
    R = random_interactions(300, 400, 0.05, 5)
    model = fastals.ImplicitALS(factors=8, iterations=3, random_state=0).fit(
        R, show_progress=False)
    return model, R


def test_augmentation_keeps_the_inner_product_order():
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((50, 4)).astype(np.float32) * rng.random((50, 1)).astype(np.float32)
    rows, scale = augment_items(Y)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1, rtol=1e-5)
    x = rng.standard_normal(4).astype(np.float32)
    np.testing.assert_allclose(rows[:, :4] @ x, Y @ x / scale, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mips", ["ip", "augmented"])
def test_recall_against_exact_and_filters(fitted, mips):
    model, R = fitted
    index = ApproximateIndex(model, M=16, ef=100, num_threads=2, mips=mips)
    banned = np.arange(0, 400, 7)
    exact_ids, _ = model.recommend_all(R, N=10, filter_items=banned)
    ids, scores = index.recommend_all(R, N=10, filter_items=banned)
    assert recall_at_n(ids, exact_ids) >= 0.95
    for u in range(0, 300, 17):
        assert not set(ids[u]) & set(R[u].indices)  # already-liked items never come back
        assert not set(ids[u]) & set(banned)
        found = ids[u] >= 0
        np.testing.assert_allclose(scores[u, found], model.item_factors[ids[u, found]]
                                   @ model.user_factors[u], rtol=1e-5)
        assert (np.diff(scores[u, found]) <= 0).all()
    one_ids, one_scores = index.recommend(3, R, N=5, filter_items=banned)
    np.testing.assert_array_equal(one_ids, ids[3, :5])


def test_over_fetching_fills_rows_when_most_items_are_filtered(fitted):
    model, R = fitted
    index = ApproximateIndex(model, M=8, ef=10)
    banned = np.arange(390)  # ten items allowed
    ids, _ = index.recommend_all(R, N=10, filter_items=banned, filter_already_liked_items=False)
    exact, _ = model.recommend_all(R, N=10, filter_items=banned, filter_already_liked_items=False)
    assert recall_at_n(ids, exact) == 1.0


def test_save_load_next_to_the_model(fitted, tmp_path):
    model, R = fitted
    index = ApproximateIndex(model, M=8, ef=50, mips="augmented")
    model.save(tmp_path / "model.npz")
    index.save(tmp_path / "model.ann")
    back_model = fastals.ImplicitALS.load(tmp_path / "model.npz")
    back = ApproximateIndex.load(tmp_path / "model.ann", back_model)
    np.testing.assert_array_equal(back.recommend_all(R, N=5)[0], index.recommend_all(R, N=5)[0])
    other = fastals.ImplicitALS(factors=8, iterations=1, random_state=1).fit(
        R, show_progress=False)
    with pytest.raises(ValueError, match="built for other item factors"):
        ApproximateIndex.load(tmp_path / "model.ann", other)


def test_recall_helper_and_bad_input(fitted):
    assert recall_at_n([[1, 2, 3]], [[3, 2, 9]]) == pytest.approx(2 / 3)
    assert recall_at_n([[1, -1]], [[1, -1]]) == 1.0
    with pytest.raises(ValueError, match="a row per user"):
        recall_at_n([[1]], [[1], [2]])
    model, R = fitted
    with pytest.raises(ValueError, match="mips must be one of"):
        ApproximateIndex(model, mips="cosine")
    with pytest.raises(ValueError, match="M must"):
        ApproximateIndex(model, M=0)
    with pytest.raises(TypeError, match="model must be a fastals recommender"):
        ApproximateIndex("model")
    with pytest.raises(TypeError, match="x_u . y_i alone"):
        ApproximateIndex(fastals.ItemKNN(K=5).fit(R, show_progress=False))
    index = ApproximateIndex(model, M=8)
    with pytest.raises(ValueError, match="user_items is required"):
        index.recommend(0)
    with pytest.raises(ValueError, match="N must"):
        index.recommend(0, R, N=0)
