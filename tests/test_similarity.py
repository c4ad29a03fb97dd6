"""The top-K similarity kernel against its numpy reference, the weightings, and bad input.

Tolerances: scores are compared at 1e-5 (float32: sums of at most a few dozen products of
values <= 1 carry a relative error of a few 1e-7) and 1e-9 in float64. Top-K sets must be
identical up to exact mathematical ties: rows with a single stored value in the same column
have equal cosines (and all such rows equal Pearson correlations, sign(v)/sqrt(f-1)), but
the reference computes them with rounding noise, so its tie-break is noise. A column may only
be swapped for one whose reference score is within the tolerance of the K-th best; the
kernel's own tie-break (lower column first) is tested on exactly representable data.
"""
import numpy as np
import pytest
import scipy.sparse as sp

import fastals
import fastals.similarity as similarity_module
from fastals import top_k_similarity
from fastals._validation import as_csr
from fastals.reference import similarity as ref
from fastals.similarity import SIMILARITIES, columns_top_k, weigh

TOL = {np.float32: 1e-5, np.float64: 1e-9}


def random_rows(n_rows, n_cols, density, seed, signed=False, empty_rows=(), empty_cols=()):
    """A random CSR with some rows and columns forced empty; values in (0, 1] or [-1, 1]."""
    rng = np.random.default_rng(seed)
    m = sp.random(n_rows, n_cols, density=density, format="lil", random_state=rng,
                  data_rvs=lambda n: rng.uniform(-1, 1, n) if signed else rng.uniform(0.05, 1, n))
    for r in empty_rows:
        m[r, :] = 0
    for c in empty_cols:
        m[:, c] = 0
    return m.tocsr()


def assert_top_k(got, S, K, skip_self, tol):
    """`got` (kernel CSR) holds each row's K best non-zero entries of the dense S."""
    expected = ref.top_k(S, K, skip_self)
    assert got.shape == S.shape
    assert got.has_sorted_indices
    for i in range(S.shape[0]):
        g_ids = got.indices[got.indptr[i]:got.indptr[i + 1]]
        g_vals = got.data[got.indptr[i]:got.indptr[i + 1]]
        e_ids = expected.indices[expected.indptr[i]:expected.indptr[i + 1]]
        e_vals = expected.data[expected.indptr[i]:expected.indptr[i + 1]]
        assert np.all(np.diff(g_ids) > 0), "row not sorted by column"
        assert len(g_ids) == len(e_ids), f"row {i}: {len(g_ids)} neighbours, expected {len(e_ids)}"
        assert np.all(g_vals != 0)
        if skip_self:
            assert i not in g_ids
        np.testing.assert_allclose(g_vals, S[i, g_ids], atol=tol, rtol=0)
        np.testing.assert_allclose(np.sort(g_vals), np.sort(e_vals), atol=tol, rtol=0)
        swapped = set(g_ids.tolist()) ^ set(e_ids.tolist())
        kth = e_vals.min() if len(e_vals) else 0
        assert all(abs(S[i, j] - kth) <= tol for j in swapped), \
            f"row {i}: columns {sorted(swapped)} differ from the reference"


@pytest.mark.parametrize("similarity", SIMILARITIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("num_threads", [1, 2])
@pytest.mark.parametrize("K", [1, 4, 100])
def test_self_similarity_matches_reference(similarity, dtype, num_threads, K):
    A = random_rows(70, 30, 0.12, seed=K + num_threads, signed=similarity != "jaccard",
                    empty_rows=(3, 40), empty_cols=(5,))
    got = top_k_similarity(A, K=K, similarity=similarity, dtype=dtype, num_threads=num_threads)
    assert got.dtype == dtype
    assert_top_k(got, ref.similarity_matrix(A, None, similarity), K, True, TOL[dtype])


@pytest.mark.parametrize("similarity", SIMILARITIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("num_threads", [1, 2])
def test_rows_of_a_against_rows_of_b(similarity, dtype, num_threads):
    A = random_rows(40, 25, 0.2, seed=1, empty_rows=(0,))
    B = random_rows(55, 25, 0.1, seed=2, empty_rows=(7, 8))
    got = top_k_similarity(A, B, K=6, similarity=similarity, dtype=dtype,
                           num_threads=num_threads)
    assert got.shape == (40, 55)
    assert_top_k(got, ref.similarity_matrix(A, B, similarity), 6, False, TOL[dtype])


@pytest.mark.parametrize("fraction", [0.0, 1e9])
@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_dense_and_tracked_rows_agree(monkeypatch, fraction, similarity):
    """Rows scanned whole, and rows tracked (overflowing the list too: few candidates)."""
    monkeypatch.setattr(similarity_module, "_DENSE_FRACTION", fraction)
    A = random_rows(30, 200, 0.3, seed=3, signed=similarity != "jaccard")
    B = random_rows(12, 200, 0.4, seed=4)
    got = top_k_similarity(A, B, K=5, similarity=similarity, dtype=np.float64, num_threads=2)
    assert_top_k(got, ref.similarity_matrix(A, B, similarity), 5, False, 1e-9)


def test_many_small_blocks(monkeypatch):
    monkeypatch.setattr(similarity_module, "_BLOCK_WORK", 7)
    A = random_rows(80, 40, 0.1, seed=5)
    got = top_k_similarity(A, K=3, dtype=np.float64, num_threads=2)
    assert_top_k(got, ref.similarity_matrix(A), 3, True, 1e-9)


def test_self_included_when_asked():
    A = random_rows(20, 10, 0.4, seed=6)
    got = top_k_similarity(A, K=3, skip_self=False, dtype=np.float64)
    assert_top_k(got, ref.similarity_matrix(A), 3, False, 1e-9)
    nonempty = np.flatnonzero(np.diff(A.indptr))
    assert all(got[i, i] == pytest.approx(1.0) for i in nonempty)


def test_ties_go_to_the_lower_column():
    A = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0],
                                [0, 0, 1, 1]], dtype=np.float64))
    got = top_k_similarity(A, K=2, num_threads=2)
    assert got[3].indices.tolist() == [0, 1]
    assert got[0].indices.tolist() == [1, 2]
    assert got[4].nnz == 0  # shares nothing: similarity 0 is not stored


def test_pearson_pairs_sharing_no_column_are_found():
    """Correlation over all columns is negative for disjoint non-negative rows: kept when
    they are among the K best, as np.corrcoef says."""
    A = sp.csr_matrix(np.array([[3, 1, 0, 0, 0, 0], [0, 0, 2, 5, 0, 0], [0, 0, 0, 0, 1, 4]],
                               dtype=np.float64))
    got = top_k_similarity(A, K=2, similarity="pearson", dtype=np.float64)
    expected = np.corrcoef(A.toarray())
    for i in range(3):
        others = [j for j in range(3) if j != i]
        np.testing.assert_allclose(got[i].toarray()[0, others], expected[i, others], atol=1e-12)


def test_worked_example_tv_shows():
    """Cosine between the TV shows' genre rows: show 1 against shows 2..4."""
    shows = np.array([[1, 1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 1, 0], [1, 1, 1, 1, 0, 1, 0],
                      [1, 1, 1, 0, 0, 0, 1]])
    S = top_k_similarity(shows, K=3)
    np.testing.assert_allclose(S[0].toarray()[0, 1:], [0.516, 0.8, 0.671], atol=5e-4)


def test_worked_example_new_user():
    """A new user who gave 5 stars to item 1 only, against the example's three users."""
    users = np.array([[5, 3, 4, 4, 5], [3, 1, 1, 2, 5], [4, 1, 2, 3, 4]])
    new = np.array([[5, 0, 0, 0, 0]])
    cosine = top_k_similarity(new, users, K=3, similarity="cosine").toarray()[0]
    pearson = top_k_similarity(new, users, K=3, similarity="pearson").toarray()[0]
    np.testing.assert_allclose(cosine, [0.524, 0.474, 0.590], atol=5e-4)
    np.testing.assert_allclose(pearson, [0.535, 0.200, 0.514], atol=5e-4)
    np.testing.assert_allclose(pearson, np.corrcoef(new[0], users)[0, 1:], atol=1e-6)


@pytest.mark.parametrize("similarity", ["cosine", "pearson", "jaccard", "dot"])
@pytest.mark.parametrize("weighting", [None, "tfidf", "bm25"])
def test_column_similarity_matches_reference(similarity, weighting):
    X = random_rows(60, 35, 0.15, seed=7, empty_cols=(2,))
    X.data = np.ceil(X.data * 5)  # counts
    S, diagonal = columns_top_k(as_csr(X, "X", np.float64), 5, similarity, 2,
                                weighting=weighting, K1=1.5, B=0.5)
    items = X.T.toarray()
    if weighting == "tfidf":
        items = ref.tfidf_weight(items)
    elif weighting == "bm25":
        items = ref.bm25_weight(items, K1=1.5, B=0.5)
    full = ref.similarity_matrix(items, None, similarity)
    assert_top_k(S, full, 5, True, 1e-9)
    expected_diagonal = np.diag(full) if similarity != "pearson" else np.diag(full) > 0
    np.testing.assert_allclose(diagonal, expected_diagonal, atol=1e-9)


def test_blocked_reference_equals_dense_reference():
    X = random_rows(50, 33, 0.1, seed=13, empty_cols=(4,))
    blocked = ref.top_k_cosine_blocked(X, 5, block_rows=7)
    dense = ref.top_k_similarity(X.T, K=5)
    assert (abs(blocked - dense) > 1e-12).nnz == 0
    assert blocked.nnz == dense.nnz


def weighted(X, scheme, documents, **params):
    """`weigh` on a scipy matrix, returned as a dense array (documents as rows or columns)."""
    counts = as_csr(X, "X", np.float64)
    values = weigh(counts, scheme, documents, num_threads=2, **params)
    return sp.csr_matrix((values, counts.indices, counts.indptr), shape=counts.shape).toarray()


@pytest.mark.parametrize("scheme", ["tfidf", "bm25"])
def test_weightings_match_reference_in_both_orientations(scheme):
    X = random_rows(40, 25, 0.2, seed=8, empty_rows=(3,))
    X.data = np.ceil(X.data * 9)
    before = X.copy()
    params = {"K1": 100.0, "B": 0.8} if scheme == "bm25" else {}
    reference = getattr(ref, f"{scheme}_weight")(X, **params)
    np.testing.assert_allclose(weighted(X, scheme, "rows", **params), reference, atol=1e-12)
    np.testing.assert_allclose(weighted(X.T, scheme, "columns", **params), reference.T,
                               atol=1e-12)
    assert (X != before).nnz == 0


@pytest.mark.parametrize("scheme", ["tfidf", "bm25"])
def test_weightings_agree_with_fastals_data_and_implicit(scheme):
    """The same formulas as fastals.data's public weightings and implicit's."""
    from fastals import data
    X = random_rows(40, 25, 0.2, seed=9)
    X.data = np.ceil(X.data * 9)
    params = {"K1": 1.2, "B": 0.75} if scheme == "bm25" else {}
    ours = weighted(X, scheme, "rows", **params)
    np.testing.assert_allclose(ours, getattr(data, f"{scheme}_weight")(X, **params).toarray(),
                               atol=1e-12)
    nn = pytest.importorskip("implicit.nearest_neighbours")
    np.testing.assert_allclose(ours, getattr(nn, f"{scheme}_weight")(X, **params).toarray(),
                               atol=1e-12)


def test_inputs_are_not_modified():
    A = random_rows(30, 20, 0.2, seed=10)
    B = random_rows(25, 20, 0.2, seed=11)
    copies = [m.copy() for m in (A, B)]
    for similarity in SIMILARITIES:
        top_k_similarity(A, B, K=3, similarity=similarity)
        top_k_similarity(A, K=3, similarity=similarity)
    for original, copy in zip((A, B), copies):
        assert (original != copy).nnz == 0
        assert original.data.dtype == copy.data.dtype


def test_dense_and_sparse_inputs_agree():
    A = random_rows(30, 12, 0.3, seed=12)
    dense = top_k_similarity(A.toarray(), K=4)
    sparse = top_k_similarity(A.tocoo(), K=4)
    assert (dense != sparse).nnz == 0


def test_empty_and_degenerate_inputs():
    assert top_k_similarity(sp.csr_matrix((5, 4)), K=3).nnz == 0
    assert top_k_similarity(sp.csr_matrix((0, 4)), K=3).shape == (0, 0)
    constant = np.full((3, 4), 2.0)
    assert top_k_similarity(constant, K=2, similarity="pearson").nnz == 0
    one = top_k_similarity(np.array([[1.0, 2.0]]), K=5)
    assert one.shape == (1, 1) and one.nnz == 0


# --- bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_rejected(bad):
    A = np.ones((3, 4))
    A[1, 2] = bad
    with pytest.raises(ValueError, match="A contains NaN or infinite"):
        top_k_similarity(A)
    with pytest.raises(ValueError, match="A contains NaN or infinite"):
        top_k_similarity(sp.csr_matrix(A))
    with pytest.raises(ValueError, match="B contains NaN or infinite"):
        top_k_similarity(np.ones((2, 4)), sp.csr_matrix(A))


@pytest.mark.parametrize("K, error", [(0, ValueError), (-3, ValueError), (2.5, TypeError),
                                      ("5", TypeError), (None, TypeError)])
def test_bad_k(K, error):
    with pytest.raises(error, match="K must be"):
        top_k_similarity(np.ones((3, 3)), K=K)


def test_mismatched_columns():
    with pytest.raises(ValueError, match="B must have 4 columns, got 5"):
        top_k_similarity(np.ones((3, 4)), np.ones((2, 5)))


def test_unknown_similarity():
    with pytest.raises(ValueError, match="similarity must be one of .*got 'euclid'"):
        top_k_similarity(np.ones((3, 3)), similarity="euclid")


def test_other_bad_arguments():
    with pytest.raises(TypeError, match="A must hold real numbers"):
        top_k_similarity(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="A must be 2-D"):
        top_k_similarity(np.ones(4))
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        top_k_similarity(np.ones((3, 3)), dtype=np.int32)
    with pytest.raises(ValueError, match="num_threads must be"):
        top_k_similarity(np.ones((3, 3)), num_threads=-1)
    with pytest.raises(ValueError, match="skip_self needs A to have no more rows than B"):
        top_k_similarity(np.ones((3, 3)), np.ones((2, 3)), skip_self=True)
    with pytest.raises(ValueError, match="needs non-negative counts"):
        weigh(as_csr(sp.csr_matrix(np.array([[1.0, -2.0]])), "X", np.float64), "tfidf")
    with pytest.raises(ValueError, match="B must be <= 1"):
        weigh(as_csr(sp.csr_matrix(np.ones((2, 2))), "X", np.float64), "bm25", B=2)


def test_overflow_is_reported():
    big = sp.csr_matrix(np.full((2, 3), 1e30))
    with pytest.raises(OverflowError, match="overflow float32"):
        top_k_similarity(big, similarity="dot")
    assert np.isfinite(top_k_similarity(big, similarity="dot", dtype=np.float64).data).all()


def test_public_names():
    assert fastals.top_k_similarity is top_k_similarity
