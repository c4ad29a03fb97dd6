"""Neighbourhood models on values near the ends of float32's range: queries are pre-scaled.

Cosine and Pearson do not depend on the scale of the values, and predicted ratings scale with
them. Without pre-scaling, float32 dot products of values near 1e-30 underflow to 0 (no
neighbours are found) and those of values near 1e30 overflow (an OverflowError, or infinite
scores): the queries of a fitted model must give the figures of the same values at scale 1,
scaled.
"""
import numpy as np
import pytest
import scipy.sparse as sp

from fastals import ContentKNN, ItemKNN, UserKNN

# float32 rounding of the same similarities reached through different scalings
RTOL = 1e-5


def ratings(seed=0):
    """Ratings with distinct values (no tied similarities), some missing."""
    rng = np.random.default_rng(seed)
    dense = 1 + 4 * rng.random((30, 12))
    dense[rng.random(dense.shape) < 0.4] = 0
    return sp.csr_matrix(dense)


@pytest.mark.parametrize("similarity", ["cosine", "pearson"])
@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_user_knn_queries_do_not_underflow_or_overflow(similarity, scale):
    R, queries = ratings(0), ratings(1)[:4]
    plain = UserKNN(K=5, similarity=similarity).fit(R, show_progress=False)
    scaled = UserKNN(K=5, similarity=similarity).fit(R * scale, show_progress=False)

    ids, scores = plain.most_similar_users(queries, N=6)
    got_ids, got_scores = scaled.most_similar_users(queries * scale, N=6)
    assert (ids >= 0).all()
    np.testing.assert_array_equal(got_ids, ids)
    np.testing.assert_allclose(got_scores, scores, rtol=RTOL)

    users = np.arange(4)
    ids, scores = plain.recommend(users, queries, N=5, recalculate_user=True,
                                  filter_already_liked_items=False)
    got_ids, got_scores = scaled.recommend(users, queries * scale, N=5, recalculate_user=True,
                                           filter_already_liked_items=False)
    assert np.isfinite(scores).all() and (scores > 0).all()
    np.testing.assert_array_equal(got_ids, ids)
    np.testing.assert_allclose(got_scores / scale, scores, rtol=RTOL)

    items = np.array([0, 3, 7, 11])
    estimates, voters = plain.predict(users, items, user_items=queries, return_neighbours=True)
    got, got_voters = scaled.predict(users, items, user_items=queries * scale,
                                     return_neighbours=True)
    assert (voters > 0).all()
    np.testing.assert_array_equal(got_voters, voters)
    np.testing.assert_allclose(got / scale, estimates, rtol=RTOL)


@pytest.mark.parametrize("similarity", ["cosine", "pearson"])
@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_similar_items_and_users_do_not_underflow_or_overflow(similarity, scale):
    R = ratings(2)
    queries = np.arange(5)
    for make, methods in ((lambda: UserKNN(K=5, similarity=similarity), ("similar_users",
                                                                         "similar_items")),
                          (lambda: ItemKNN(K=5, similarity=similarity), ("similar_users",)),
                          (lambda: ContentKNN(K=5, similarity=similarity), ("similar_items",))):
        plain = make().fit(R, show_progress=False)
        scaled = make().fit(R * scale, show_progress=False)
        for method in methods:
            ids, scores = getattr(plain, method)(queries, N=4)
            got_ids, got_scores = getattr(scaled, method)(queries, N=4)
            assert np.isfinite(scores).all() and (np.abs(scores) > 0).all()
            np.testing.assert_array_equal(got_ids, ids, err_msg=f"{type(plain).__name__}.{method}")
            np.testing.assert_allclose(got_scores, scores, rtol=RTOL,
                                       err_msg=f"{type(plain).__name__}.{method}")
