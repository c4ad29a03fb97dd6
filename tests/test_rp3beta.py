"""RP3beta: the contract, agreement with the numpy random walk, its special cases, new users,
bad inputs, the command line."""
import numpy as np
import pytest
import scipy.sparse as sp

import fastals
from fastals import cli
from fastals.reference import itemitem as ref
from recommender_base_test import RecommenderBaseTestMixin
from conftest import random_interactions


@pytest.fixture(scope="module")
def interactions():
    return random_interactions(60, 45, 0.12, seed=3)


class TestRP3betaBehaviour(RecommenderBaseTestMixin):
    def make_model(self):
        return fastals.RP3beta(K=30)


class TestRP3betaNormalizedBehaviour(RecommenderBaseTestMixin):
    def make_model(self):
        return fastals.RP3beta(K=30, alpha=0.7, beta=0.3, normalize_similarity=True,
                               dtype=np.float64)


# float32 products of probabilities (each <= 1) summed over a few users: 1e-6 relative;
# float64 to rounding.
TOLERANCE = {np.float32: 1e-6, np.float64: 1e-13}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("alpha, beta, K, normalize", [(1.0, 0.5, 10, False),
                                                       (0.7, 0.3, 5, True),
                                                       (1.5, 1.0, 3, True),
                                                       (1.0, 0.0, 45, False),
                                                       (0.0, 0.8, 8, False)])
def test_similarity_equals_the_numpy_walk(interactions, dtype, alpha, beta, K, normalize):
    S_ref, returns = ref.rp3beta_similarity(interactions, alpha, beta, K, normalize)
    fits = [fastals.RP3beta(K=K, alpha=alpha, beta=beta, normalize_similarity=normalize,
                            dtype=dtype, num_threads=t).fit(interactions, show_progress=False)
            for t in (1, 2, 3)]
    for model in fits[1:]:  # the kernel's result does not depend on the thread count
        np.testing.assert_array_equal(model.similarity_matrix.toarray(),
                                      fits[0].similarity_matrix.toarray())
    S = fits[0].similarity_matrix
    assert S.dtype == dtype
    scale = TOLERANCE[dtype] * max(S_ref.max(), 1e-300)
    W = ref.rp3beta_walk(interactions, alpha, beta)
    np.fill_diagonal(W, 0)
    if normalize:
        raw, _ = ref.rp3beta_similarity(interactions, alpha, beta, K, False)
        sums = np.asarray(raw.sum(axis=1)).ravel()
        W = W / np.where(sums > 0, sums, 1)[:, None]
    for i in range(S.shape[0]):  # the same K best (ties at the K-th value may swap)
        got, want = S[i], S_ref[i]
        assert got.nnz == want.nnz
        np.testing.assert_allclose(got.data, W[i, got.indices], rtol=0, atol=scale)
        kth = want.data.min() if want.nnz else 0
        assert all(abs(W[i, j] - kth) <= scale for j in set(got.indices) ^ set(want.indices))
    own = fits[0].self_similarity
    assert (own >= returns * (1 - 1e-6)).all()
    rows = np.flatnonzero(np.diff(S.indptr))
    best = np.zeros(S.shape[0])
    best[rows] = [S[i].data.max() for i in rows]
    np.testing.assert_allclose(own[returns > best * (1 + 1e-6)],
                               returns[returns > best * (1 + 1e-6)], rtol=TOLERANCE[dtype] * 10)
    assert (own >= best).all()


@pytest.mark.parametrize("normalize", [False, True])
def test_items_and_users_without_interactions_at_the_end(interactions, normalize):
    """The last items and users store nothing: no neighbours, never a neighbour."""
    padded = sp.csr_matrix((interactions.data, interactions.indices, interactions.indptr),
                           shape=(60, 45))
    padded = sp.vstack([sp.hstack([padded, sp.csr_matrix((60, 3))]),
                        sp.csr_matrix((2, 48))]).tocsr()
    model = fastals.RP3beta(K=5, normalize_similarity=normalize).fit(padded,
                                                                    show_progress=False)
    S = model.similarity_matrix
    assert S[45:].nnz == 0 and S[:, 45:].nnz == 0
    assert model.similar_items(47, N=3)[0].size == 0
    ids, _ = model.recommend(61, padded, N=3, filter_already_liked_items=False)
    assert len(ids) == 3


def test_alpha_0_beta_0_counts_co_occurrences_like_item_knn_dot(interactions):
    """Every stored transition counts 1 without the popularity penalty: W = X^T X of the
    binarised matrix off the diagonal, which is ItemKNN's dot similarity of binary data."""
    binary = interactions.copy()
    binary.data[:] = 1
    walk = fastals.RP3beta(K=10, alpha=0.0, beta=0.0).fit(interactions, show_progress=False)
    knn = fastals.ItemKNN(K=10, similarity="dot").fit(binary, show_progress=False)
    np.testing.assert_array_equal(walk.similarity_matrix.toarray(),
                                  knn.similarity_matrix.toarray())


def test_scores_are_the_rows_times_W_and_new_users_work(interactions):
    model = fastals.RP3beta(K=12, beta=0.4, dtype=np.float64).fit(interactions,
                                                                  show_progress=False)
    W = model.similarity_matrix.toarray()
    users = np.arange(0, 60, 7)
    ids, scores = model.recommend(users, interactions[users], N=5)
    expected = interactions[users].toarray() @ W
    for row in range(len(users)):
        found = ids[row] >= 0
        np.testing.assert_allclose(scores[row][found], expected[row, ids[row][found]],
                                   rtol=1e-12)
    new = sp.csr_matrix(([2.0, 1.0], ([0, 0], [4, 9])), shape=(1, 45))
    ids, scores = model.recommend(5_000, new, N=5, recalculate_user=True)
    expected = new.toarray()[0] @ W
    np.testing.assert_allclose(scores, expected[ids], rtol=1e-12)
    assert 4 not in ids and 9 not in ids


@pytest.mark.parametrize("param, value, error, match", [
    ("alpha", -0.1, ValueError, ">= 0"), ("beta", -1.0, ValueError, ">= 0"),
    ("alpha", float("nan"), ValueError, "finite"), ("beta", float("inf"), ValueError, "finite"),
    ("K", 0, ValueError, "positive"), ("normalize_similarity", 1, TypeError, "True or False")])
def test_bad_parameters_are_named(param, value, error, match):
    with pytest.raises(error, match=param) as info:
        fastals.RP3beta(**{param: value})
    assert match in str(info.value)


def test_bad_matrices_are_named(interactions):
    nan = interactions.copy()
    nan.data[0] = np.nan
    with pytest.raises(ValueError, match="user_items contains NaN"):
        fastals.RP3beta().fit(nan, show_progress=False)
    with pytest.raises(ValueError, match="user_items is empty"):
        fastals.RP3beta().fit(sp.csr_matrix((3, 3)), show_progress=False)
    negative = interactions.copy()
    negative.data[5] = -1
    with pytest.raises(ValueError, match="non-negative values in user_items"):
        fastals.RP3beta().fit(negative, show_progress=False)


def test_fastals_fit_model_rp3beta(tmp_path):
    csv = tmp_path / "plays.csv"
    csv.write_text("user,item,plays\n" + "".join(
        f"u{u},i{i},{1 + u % 3}\n" for u in range(8) for i in range(6) if (u + i) % 3))
    out = tmp_path / "rp3.npz"
    assert cli.main(["fit", str(csv), "--model", "rp3beta", "--neighbours", "3", "--param",
                     "beta=0.7", "--quiet", "-o", str(out)]) == 0
    model = fastals.load(out)
    assert isinstance(model, fastals.RP3beta) and (model.K, model.beta) == (3, 0.7)
