"""Neighbourhood recommenders: what a user sees (recommend, similar items/users, predict,
new users, save/load), agreement with the numpy reference and with `implicit`, MovieLens."""
import numpy as np
import pytest
import scipy.sparse as sp

import fastals
from fastals import (
    BM25Recommender,
    ContentKNN,
    CosineRecommender,
    ItemKNN,
    TFIDFRecommender,
    UserKNN,
)
from fastals.datasets import load_movielens_100k
from fastals.evaluation import precision_at_k, train_test_split
from fastals.exceptions import IdOutOfRangeError, ModelFileError, NotFittedError
from fastals.reference import similarity as ref
from recommender_base_test import RecommenderBaseTestMixin
from conftest import random_interactions

ITEM_SIMILARITIES = ["cosine", "tfidf", "bm25", "pearson", "jaccard", "dot"]
USER_SIMILARITIES = ["cosine", "pearson", "jaccard", "dot"]

# Two textbook examples, rebuilt from their printed figures: TV shows x genres (one-hot), and
# three users who rated all five items (new user [5, 0, 0, 0, 0]).
TV_SHOWS = np.array([[1, 1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 1, 0], [1, 1, 1, 1, 0, 1, 0],
                     [1, 1, 1, 0, 0, 0, 1]])
RATINGS = np.array([[5, 3, 4, 4, 5], [3, 1, 1, 2, 5], [4, 1, 2, 3, 4]])


@pytest.fixture(scope="module")
def interactions():
    return random_interactions(60, 45, 0.12, seed=3)


def reference_items(user_items, similarity, K1=1.2, B=0.75):
    """The weighted item vectors and the measure behind an ItemKNN similarity name."""
    items = user_items.T.toarray().astype(np.float64)
    if similarity == "tfidf":
        return ref.tfidf_weight(items), "cosine"
    if similarity == "bm25":
        return ref.bm25_weight(items, K1=K1, B=B), "dot"
    return items, similarity


def assert_same_neighbours(got, S, K, tol=1e-5):
    """got holds each row's K best non-zero off-diagonal entries of S (ties within tol)."""
    expected = ref.top_k(S, K, skip_self=True)
    for i in range(S.shape[0]):
        g, e = got[i], expected[i]
        assert g.nnz == e.nnz
        np.testing.assert_allclose(g.data, S[i, g.indices], atol=tol)
        kth = e.data.min() if e.nnz else 0
        assert all(abs(S[i, j] - kth) <= tol for j in set(g.indices) ^ set(e.indices))


# --- the contract every recommender honours -------------------------------------------------
class TestItemKNNBehaviour(RecommenderBaseTestMixin):
    def make_model(self):
        return ItemKNN(K=30)


@pytest.mark.parametrize("similarity", ["tfidf", "bm25", "pearson", "jaccard", "dot"])
class TestItemKNNSimilaritiesBehaviour(RecommenderBaseTestMixin):
    @pytest.fixture(autouse=True)
    def _similarity(self, similarity):
        self.similarity = similarity

    def make_model(self):
        return ItemKNN(K=30, similarity=self.similarity)


class TestUserKNNBehaviour(RecommenderBaseTestMixin):
    def make_model(self):
        return UserKNN(K=30)


class TestContentKNNBehaviour(RecommenderBaseTestMixin):
    """Items described by their (checkerboard) columns; users only label rows here."""

    has_users = False

    def make_model(self):
        return ContentKNN(K=30)

    def test_bad_ids_and_arguments(self):
        model, data = self.fitted()
        with pytest.raises(ValueError, match="N"):
            model.recommend(0, data[0], N=0)
        with pytest.raises(ValueError, match="user_items"):
            model.recommend(0, sp.csr_matrix((1, self.n + 1)), N=5)
        with pytest.raises(IdOutOfRangeError, match="userid"):
            model.recommend([0, self.n], data, N=5)
        with pytest.raises(ValueError, match="itemid"):
            model.similar_items(self.n)


# --- ItemKNN -------------------------------------------------------------------------------
@pytest.mark.parametrize("similarity", ITEM_SIMILARITIES)
@pytest.mark.parametrize("num_threads", [1, 2])
def test_item_knn_matches_reference(interactions, similarity, num_threads):
    model = ItemKNN(K=5, similarity=similarity, num_threads=num_threads, dtype=np.float64)
    model.fit(interactions, show_progress=False)
    items, measure = reference_items(interactions, similarity)
    assert_same_neighbours(model.similarity_matrix, ref.similarity_matrix(items, None, measure),
                           5, tol=1e-9)


@pytest.mark.parametrize("similarity", ITEM_SIMILARITIES)
def test_item_knn_recommend_scores_are_user_items_times_similarity(interactions, similarity):
    model = ItemKNN(K=8, similarity=similarity).fit(interactions, show_progress=False)
    users = np.arange(10)
    ids, scores = model.recommend(users, interactions[users], N=5)
    full = (interactions[users] @ model.similarity_matrix).toarray()
    for row, user in enumerate(users):
        liked = set(interactions[user].indices)
        found = ids[row] >= 0
        assert not liked & set(ids[row][found])
        np.testing.assert_allclose(scores[row][found], full[row, ids[row][found]], rtol=1e-5)
        candidates = np.array([j for j in range(interactions.shape[1]) if j not in liked])
        best = candidates[np.lexsort((candidates, -full[row, candidates]))][:found.sum()]
        np.testing.assert_allclose(np.sort(full[row, best]), np.sort(scores[row][found]),
                                   rtol=1e-5)


def test_item_knn_recommend_shapes_and_filters(interactions):
    model = ItemKNN(K=10).fit(interactions, show_progress=False)
    ids, scores = model.recommend(0, interactions[0], N=4)
    assert ids.shape == scores.shape == (4,)
    assert np.all(np.diff(scores) <= 0)
    batch_ids, batch_scores = model.recommend([0, 1, 2], interactions[[0, 1, 2]], N=4)
    assert batch_ids.shape == (3, 4)
    np.testing.assert_array_equal(batch_ids[0], ids)
    # the full matrix may be passed instead of the users' rows
    full_ids, _ = model.recommend([0, 1, 2], interactions, N=4)
    np.testing.assert_array_equal(full_ids, batch_ids)
    # without user_items, the stored training rows score the user
    kept, _ = model.recommend(0, N=4, filter_already_liked_items=False)
    unfiltered, _ = model.recommend(0, interactions[0], N=4, filter_already_liked_items=False)
    np.testing.assert_array_equal(kept, unfiltered)
    banned = ids[:2]
    filtered, _ = model.recommend(0, interactions[0], N=4, filter_items=banned)
    assert not set(banned) & set(filtered)
    subset = np.arange(20, 30)
    within, _ = model.recommend(0, interactions[0], N=4, items=subset)
    assert set(within) <= set(subset)


def test_item_knn_recalculate_user_scores_a_new_user(interactions):
    model = ItemKNN(K=10).fit(interactions, show_progress=False)
    new_user = sp.csr_matrix(([1.0, 2.0], ([0, 0], [3, 7])), shape=(1, interactions.shape[1]))
    ids, scores = model.recommend(10_000, new_user, N=5, recalculate_user=True)
    expected = (new_user @ model.similarity_matrix).toarray()[0]
    expected[[3, 7]] = -np.inf
    assert set(ids) <= set(np.flatnonzero(expected > -np.inf))
    np.testing.assert_allclose(scores, expected[ids], rtol=1e-6)


def test_item_knn_similar_items_starts_with_the_item(interactions):
    model = ItemKNN(K=6).fit(interactions, show_progress=False)
    item = int(np.argmax(np.diff(interactions.tocsc().indptr)))
    ids, scores = model.similar_items(item, N=20)
    assert ids[0] == item and scores[0] == pytest.approx(1.0)
    assert len(ids) == 7  # the item and its 6 neighbours
    row = model.similarity_matrix[item]
    np.testing.assert_allclose(np.sort(scores[1:]), np.sort(row.data), rtol=1e-6)
    batch, _ = model.similar_items([item, item], N=3)
    np.testing.assert_array_equal(batch[0], ids[:3])
    without, _ = model.similar_items(item, N=3, filter_items=[item])
    assert item not in without


def test_item_knn_similar_users(interactions):
    model = ItemKNN(K=6).fit(interactions, show_progress=False)
    ids, scores = model.similar_users(4, N=5)
    S = ref.similarity_matrix(interactions, None, "cosine")
    assert ids[0] == 4
    np.testing.assert_allclose(scores, S[4, ids], atol=1e-5)
    assert scores[1] == pytest.approx(np.sort(S[4])[-2], abs=1e-5)


def test_item_knn_k_larger_than_items():
    X = random_interactions(30, 5, 0.5, seed=1)
    model = ItemKNN(K=50).fit(X, show_progress=False)
    assert model.similarity_matrix.shape == (5, 5)
    assert np.all(np.diff(model.similarity_matrix.indptr) <= 4)


def test_aliases_for_implicit_users(interactions):
    cosine = CosineRecommender(K=7).fit(interactions, show_progress=False)
    assert cosine.similarity == "cosine" and cosine.K == 7
    same = ItemKNN(K=7, similarity="cosine").fit(interactions, show_progress=False)
    assert (cosine.similarity_matrix != same.similarity_matrix).nnz == 0
    assert TFIDFRecommender().similarity == "tfidf"
    bm25 = BM25Recommender(K1=2.0, B=0.5)
    assert (bm25.similarity, bm25.K1, bm25.B) == ("bm25", 2.0, 0.5)
    assert "BM25Recommender(K=20, K1=2.0, B=0.5" in repr(bm25)


@pytest.mark.parametrize("name", ["CosineRecommender", "TFIDFRecommender", "BM25Recommender"])
def test_same_neighbours_and_recommendations_as_implicit(name):
    nn = pytest.importorskip("implicit.nearest_neighbours")
    X = random_interactions(80, 50, 0.1, seed=5).astype(np.float32)
    theirs = getattr(nn, name)(K=10)  # implicit's K counts the item itself
    theirs.fit(X, show_progress=False)
    ours = getattr(fastals, name)(K=9).fit(X, show_progress=False)
    S, T = ours.similarity_matrix, theirs.similarity.tocsr()
    for item in range(X.shape[1]):
        their_row = T[item]
        others = their_row.indices != item
        their_ids, their_scores = their_row.indices[others], their_row.data[others]
        our_row = S[item]
        best = np.lexsort((our_row.indices, -our_row.data))[:len(their_ids)]
        np.testing.assert_allclose(np.sort(our_row.data[best]), np.sort(their_scores), rtol=1e-4)
    users = np.arange(20)
    their_ids, _ = theirs.recommend(users, X[users], N=5)
    our_ids, _ = ours.recommend(users, X[users], N=5)
    agree = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(their_ids, our_ids)])
    assert agree >= 0.95  # (equal scores may be ordered differently)


def test_item_knn_save_and_load(tmp_path, interactions):
    model = BM25Recommender(K=5, K1=1.1, B=0.6).fit(interactions, show_progress=False)
    path = model.save(tmp_path / "bm25")
    loaded = fastals.load(path)
    assert type(loaded) is BM25Recommender and loaded.get_params() == model.get_params()
    assert (loaded.similarity_matrix != model.similarity_matrix).nnz == 0
    a, _ = model.recommend([1, 2], interactions[[1, 2]], N=5)
    b, _ = loaded.recommend([1, 2], interactions[[1, 2]], N=5)
    np.testing.assert_array_equal(a, b)
    assert loaded.similar_items(3, N=4)[0].tolist() == model.similar_items(3, N=4)[0].tolist()


def test_item_knn_fit_leaves_input_alone_and_copies_it():
    X = random_interactions(40, 30, 0.2, seed=2)
    before = X.copy()
    model = ItemKNN(K=5, similarity="tfidf").fit(X, show_progress=False)
    assert (X != before).nnz == 0
    X.data[:] = 99  # the caller changes their matrix afterwards: the model is unaffected
    assert model.user_items.data.max() < 99


def test_item_knn_callback_and_progress(interactions, capsys):
    calls = []
    ItemKNN(K=3).fit(interactions, show_progress=True,
                     callback=lambda *args: calls.append(args))
    assert len(calls) == 1 and calls[0][0] == 0 and calls[0][2] is None


# --- UserKNN -------------------------------------------------------------------------------
def test_worked_example_new_user_cosine_and_pearson():
    for similarity, expected in [("cosine", [0.524, 0.474, 0.590]),
                                 ("pearson", [0.535, 0.200, 0.514])]:
        model = UserKNN(K=2, similarity=similarity).fit(sp.csr_matrix(RATINGS),
                                                        show_progress=False)
        ids, scores = model.most_similar_users([5, 0, 0, 0, 0], N=3)
        by_user = dict(zip(ids.tolist(), scores.tolist()))
        np.testing.assert_allclose([by_user[u] for u in range(3)], expected, atol=5e-4)
        assert list(scores) == sorted(scores, reverse=True)


@pytest.mark.parametrize("similarity", USER_SIMILARITIES)
@pytest.mark.parametrize("mean_centered", [False, True])
@pytest.mark.parametrize("dtype, num_threads", [(np.float64, 1), (np.float64, 2),
                                                (np.float32, 2)])
def test_user_knn_predict_matches_reference(similarity, mean_centered, dtype, num_threads):
    rng = np.random.default_rng(11)
    dense = np.where(rng.random((25, 15)) < 0.35, rng.integers(1, 6, (25, 15)), 0)
    dense[4] = 0  # a user without ratings
    ratings = sp.csr_matrix(dense.astype(np.float64))
    model = UserKNN(K=3, similarity=similarity, mean_centered=mean_centered, dtype=dtype,
                    num_threads=num_threads).fit(ratings, show_progress=False)
    users, items = np.meshgrid(np.arange(25), np.arange(15), indexing="ij")
    got, voters = model.predict(users.ravel(), items.ravel(), return_neighbours=True)
    tol = 1e-9 if dtype == np.float64 else 1e-4
    for k, (u, i) in enumerate(zip(users.ravel(), items.ravel())):
        expected, count = ref.user_knn_predict(dense, u, i, 3, similarity, mean_centered)
        assert got[k] == pytest.approx(expected, abs=tol), (u, i)
        assert voters[k] == count
    single = model.predict(7, 3)
    assert isinstance(single, float) and single == pytest.approx(got[7 * 15 + 3])


def test_user_knn_predict_for_new_users():
    ratings = sp.csr_matrix(RATINGS.astype(float))
    model = UserKNN(K=2, similarity="pearson", mean_centered=True).fit(ratings,
                                                                       show_progress=False)
    new = np.array([[5, 0, 0, 0, 0], [5, 0, 0, 0, 0]], dtype=float)
    got = model.predict([0, 0], [1, 4], user_items=new)
    extended = np.vstack([RATINGS, new[:1]])
    for k, item in enumerate([1, 4]):
        expected, _ = ref.user_knn_predict(extended, 3, item, 2, "pearson", True)
        assert got[k] == pytest.approx(expected, abs=1e-5)


def test_user_knn_recommend(interactions):
    model = UserKNN(K=5).fit(interactions, show_progress=False)
    ids, scores = model.recommend(2, interactions[2], N=5)
    expected = (model.neighbours[2] @ interactions).toarray()[0]
    np.testing.assert_allclose(scores, expected[ids], rtol=1e-5)
    assert not set(ids) & set(interactions[2].indices)
    # a new user (here a copy of user 2, so user 2 is its best neighbour): found on the fly
    new = interactions[2].copy()
    again, again_scores = model.recommend(99_999, new, N=5, recalculate_user=True)
    nearest = ref.top_k(ref.similarity_matrix(new, interactions, "cosine"), 5)
    expected = (nearest @ interactions).toarray()[0]
    np.testing.assert_allclose(again_scores, expected[again], rtol=1e-5)
    assert again_scores[0] == pytest.approx(np.max(np.delete(expected, new.indices)), rel=1e-5)


def test_user_knn_neighbours_and_similar(interactions):
    model = UserKNN(K=4, similarity="jaccard").fit(interactions, show_progress=False)
    S = ref.similarity_matrix(interactions, None, "jaccard")
    assert_same_neighbours(model.neighbours, S, 4)
    ids, scores = model.similar_users(5, N=4)
    assert ids[0] == 5
    np.testing.assert_allclose(scores, S[5, ids], atol=1e-6)
    item_ids, item_scores = model.similar_items(1, N=3)
    T = ref.similarity_matrix(interactions.T, None, "jaccard")
    assert item_ids[0] == 1
    np.testing.assert_allclose(item_scores, T[1, item_ids], atol=1e-6)


def test_user_knn_save_and_load(tmp_path):
    ratings = random_interactions(30, 20, 0.3, seed=4)
    model = UserKNN(K=4, similarity="pearson", mean_centered=True).fit(ratings,
                                                                       show_progress=False)
    loaded = UserKNN.load(model.save(tmp_path / "users.npz"))
    np.testing.assert_allclose(loaded.predict(np.arange(30), np.zeros(30, int)),
                               model.predict(np.arange(30), np.zeros(30, int)))


# --- ContentKNN ---------------------------------------------------------------------------
def test_worked_example_tv_show_closest_to_bobs():
    model = ContentKNN(K=3).fit(TV_SHOWS, show_progress=False)
    ids, scores = model.similar_items(0, N=4)
    by_show = dict(zip(ids.tolist(), scores.tolist()))
    np.testing.assert_allclose([by_show[s] for s in (1, 2, 3)], [0.516, 0.8, 0.671], atol=5e-4)
    assert ids[1] == 2  # the closest to the show Bob liked


@pytest.mark.parametrize("similarity", ITEM_SIMILARITIES)
def test_content_knn_dense_and_sparse_features(similarity):
    rng = np.random.default_rng(2)
    features = (rng.random((30, 12)) < 0.3) * rng.integers(1, 4, (30, 12))
    dense = ContentKNN(K=4, similarity=similarity, dtype=np.float64).fit(features,
                                                                          show_progress=False)
    sparse = ContentKNN(K=4, similarity=similarity, dtype=np.float64).fit(
        sp.csr_matrix(features), show_progress=False)
    assert (dense.similarity_matrix != sparse.similarity_matrix).nnz == 0
    weighted, measure = reference_items(sp.csr_matrix(features.T), similarity)
    S = ref.similarity_matrix(weighted, None, measure)
    assert_same_neighbours(dense.similarity_matrix, S, 4, tol=1e-9)
    ids, scores = dense.similar_items(5, N=30)
    np.testing.assert_allclose(scores[1:], S[5, ids[1:]], atol=1e-9)


def test_content_knn_recommend_needs_the_users_likes():
    model = ContentKNN(K=3).fit(TV_SHOWS, show_progress=False)
    bob = sp.csr_matrix(np.array([[1.0, 0, 0, 0]]))
    ids, scores = model.recommend(0, bob, N=2)
    assert ids.tolist() == [2, 3]
    with pytest.raises(ValueError, match="ContentKNN needs user_items"):
        model.recommend(0)
    users = sp.csr_matrix(np.array([[0, 1.0, 0, 0], [1.0, 0, 0, 0]]))
    picked, _ = model.recommend(1, users, N=2)  # row 1 of a users x items matrix
    assert picked.tolist() == [2, 3]
    with pytest.raises(TypeError, match="ContentKNN has no users"):
        model.similar_users(0)


# --- MovieLens ---------------------------------------------------------------------------
def test_movielens_item_knn_precision(ml100k_path):
    """Implicit feedback (every rating is an interaction), seeded 80/20 split; precision@10
    is hits / min(10, |test items|) summed over the test users, as in `implicit`."""
    ratings, _ = load_movielens_100k(ml100k_path)
    train, test = train_test_split(ratings, test_size=0.2, random_state=42)
    model = ItemKNN(K=20, similarity="cosine").fit(train, show_progress=False)
    assert precision_at_k(model, train, test, K=10) >= 0.25


# --- bad input ----------------------------------------------------------------------------
@pytest.mark.parametrize("model", [ItemKNN, UserKNN, ContentKNN])
def test_bad_parameters(model):
    with pytest.raises(ValueError, match="K must be a positive int, got 0"):
        model(K=0)
    with pytest.raises(ValueError, match="K must be a positive int, got -1"):
        model(K=-1)
    with pytest.raises(ValueError, match="similarity must be one of"):
        model(similarity="euclidean")
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        model(dtype=np.int64)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input(bad):
    X = random_interactions(10, 8, 0.4, seed=1)
    X.data[3] = bad
    for model in (ItemKNN(), UserKNN()):
        with pytest.raises(ValueError, match="user_items contains NaN or infinite"):
            model.fit(X, show_progress=False)
    features = np.ones((4, 3))
    features[2, 1] = bad
    with pytest.raises(ValueError, match="item_features contains NaN or infinite"):
        ContentKNN().fit(features, show_progress=False)
    fitted = UserKNN().fit(sp.csr_matrix(RATINGS), show_progress=False)
    with pytest.raises(ValueError, match="vector contains NaN or infinite"):
        fitted.most_similar_users([bad, 0, 0, 0, 0])


def test_other_bad_input(interactions):
    with pytest.raises(NotFittedError):
        ItemKNN().recommend(0, interactions[0])
    with pytest.raises(ValueError, match="user_items is empty"):
        ItemKNN().fit(sp.csr_matrix((5, 5)), show_progress=False)
    with pytest.raises(ValueError, match="tfidf weighting needs non-negative counts"):
        ItemKNN(similarity="tfidf").fit(sp.csr_matrix(np.array([[1.0, -1.0]])),
                                        show_progress=False)
    model = ItemKNN(K=3).fit(interactions, show_progress=False)
    with pytest.raises(IdOutOfRangeError):
        model.similar_items(interactions.shape[1])
    with pytest.raises(ValueError, match="user_items must have 45 columns, got 44"):
        model.recommend(0, interactions[0][:, :44])
    users = UserKNN().fit(sp.csr_matrix(RATINGS), show_progress=False)
    with pytest.raises(ValueError, match="vector must have 5 columns, got 4"):
        users.most_similar_users([5, 0, 0, 0])
    with pytest.raises(ValueError, match="userid and itemid must have the same length"):
        users.predict([0, 1], [0, 1, 2])
    with pytest.raises(IdOutOfRangeError):
        users.predict(3, 0)
    with pytest.raises(ValueError, match="user_items must have one row per prediction"):
        users.predict([0, 0], [1, 2], user_items=np.ones((1, 5)))
    with pytest.raises(ValueError, match="N must be a positive int"):
        users.most_similar_users([5, 0, 0, 0, 0], N=0)


def test_corrupt_model_files(tmp_path, interactions):
    model = ItemKNN(K=3).fit(interactions, show_progress=False)
    path = model.save(tmp_path / "model")
    with np.load(path) as npz:
        arrays = dict(npz)
    arrays["similarity_indices"] = arrays["similarity_indices"] + 1000
    np.savez(tmp_path / "broken.npz", **arrays)
    with pytest.raises(ModelFileError, match="column indices out of bounds"):
        fastals.load(tmp_path / "broken.npz")
