"""recommend_all: the tiled all-users kernel against its numpy reference, every model against
its own per-user recommend, the memory cap (peak RSS in a subprocess), the streaming writers
and IdRecommender's caller ids."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastals
from fastals._kernels.dispatch import available_isas, kernels
from fastals.models.retrieval import parse_memory
from fastals.reference import top_n_dot
from conftest import random_interactions
from test_status import out_of_memory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_kernel(isa, X, Y, N, exclude, blocked, user_tile, item_tile, threads, index_dtype):
    n_users = X.shape[0]
    ids = np.full((n_users, N), -1, dtype=np.int64)
    scores = np.full((n_users, N), -np.inf, dtype=X.dtype)
    if exclude is None:
        indptr = indices = np.zeros(0, dtype=index_dtype)
    else:
        indptr, indices = exclude.indptr.astype(index_dtype), exclude.indices.astype(index_dtype)
    mask = np.zeros(0, np.uint8) if blocked is None else blocked.astype(np.uint8)
    status = kernels("_retrieval", isa).dot_topn_tiled(
        X, np.ascontiguousarray(Y.T), indptr, indices, mask, ids, scores, user_tile, item_tile,
        threads)
    assert status == 0
    return ids, scores


@pytest.mark.parametrize("isa", available_isas("_retrieval"))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tiles", [(4, 16), (8, 32), (64, 256)])
def test_kernel_matches_reference(isa, dtype, tiles):
    """Exact ids, scores within the rounding of a length-F sum (numpy sums in another
    order): 1e-5 relative in float32, 1e-12 in float64. n_items = 61 and 37 users leave
    partial tiles of users, of items and of the 16-column register tile."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((37, 9)).astype(dtype)
    Y = rng.standard_normal((61, 9)).astype(dtype)
    Y[5] = np.nan  # never selected
    Y[6] = 0
    X[4] = 0  # a user whose scores all tie: the lowest items win
    exclude = random_interactions(37, 61, 0.3, 4)
    blocked = np.zeros(61, bool)
    blocked[[0, 17, 60]] = True
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for N in (1, 5, 61):
        for ex, bl in ((None, None), (exclude, None), (exclude, blocked), (None, blocked)):
            want_ids, want_scores = top_n_dot(X, Y, N, ex, bl)
            for threads in (1, 2, 3):
                index_dtype = np.int32 if threads != 2 else np.int64
                ids, scores = run_kernel(isa, X, Y, N, ex, bl, *tiles, threads, index_dtype)
                np.testing.assert_array_equal(ids, want_ids)
                np.testing.assert_allclose(scores, want_scores, rtol=rtol, atol=rtol)


def test_kernel_out_of_memory_is_a_memory_error():
    R = random_interactions(30, 20, 0.2, 2)
    model = fastals.ImplicitALS(factors=4, iterations=2, random_state=0).fit(R, show_progress=False)
    with out_of_memory():
        with pytest.raises(MemoryError, match="all-users top-N kernel could not allocate"):
            model.recommend_all(R, N=5)
    assert (model.recommend_all(R, N=5)[0] >= 0).all()


# --- every model: recommend_all == recommend, user by user ----------------------------------


def factor_data():
    return random_interactions(90, 70, 0.12, 7)


def ratings_data():
    R = random_interactions(90, 70, 0.12, 8)
    return R


MODELS = {
    "ImplicitALS": (lambda: fastals.ImplicitALS(factors=6, iterations=3, random_state=0),
                    factor_data),
    "ExplicitALS": (lambda: fastals.ExplicitALS(factors=6, iterations=3, random_state=0),
                    ratings_data),
    "SGD": (lambda: fastals.SGDMatrixFactorization(factors=6, epochs=3, random_state=0),
            ratings_data),
    "ItemKNN": (lambda: fastals.ItemKNN(K=10), factor_data),
    "BM25": (lambda: fastals.BM25Recommender(K=10), factor_data),
    "UserKNN": (lambda: fastals.UserKNN(K=10), ratings_data),
    "Popularity": (lambda: fastals.PopularityBaseline(), factor_data),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def fitted(request):
    make, data = MODELS[request.param]
    R = data()
    return make().fit(R, show_progress=False), R


def assert_same_as_recommend(model, R, users, got, width, **kwargs):
    """Bit for bit what recommend gives: the batch call for all of `users` (the shared
    mixin ties batches to single calls), and single calls for some of them."""
    ids, scores = got
    assert ids.shape == scores.shape == (len(users), width)
    want_ids, want_scores = model.recommend(users, R, **kwargs)
    n = want_ids.shape[1]
    np.testing.assert_array_equal(ids[:, :n], want_ids)
    np.testing.assert_array_equal(scores[:, :n], want_scores)
    assert (ids[:, n:] == -1).all() and (scores[:, n:] == -np.inf).all()
    for row in range(0, len(users), 11):
        one_ids, one_scores = model.recommend(int(users[row]), R, **kwargs)
        k = len(one_ids)
        np.testing.assert_array_equal(ids[row, :k], one_ids)
        np.testing.assert_array_equal(scores[row, :k], one_scores)
        assert (ids[row, k:] == -1).all()


@pytest.mark.parametrize("filters", [
    dict(filter_already_liked_items=True),
    dict(filter_already_liked_items=False),
    dict(filter_already_liked_items=True, filter_items=[0, 3, 68]),
    dict(filter_already_liked_items=True, items=[65, 2, 9, 40, 33, 1, 17]),
    dict(filter_already_liked_items=False, items=np.arange(5, 70, 2), filter_items=[7]),
    dict(filter_already_liked_items=True, N=70),
])
def test_every_model_equals_recommend(fitted, filters):
    model, R = fitted
    N = filters.get("N", 10)
    n_cols = len(filters["items"]) if "items" in filters else R.shape[1]
    users = np.arange(R.shape[0])
    got = model.recommend_all(R, **filters)
    assert_same_as_recommend(model, R, users, got, min(N, n_cols), **filters)
    # tiny batches and tiles (every boundary crossed), 1-3 threads: the same arrays
    for threads, batch in ((1, 7), (2, 13), (3, 64)):
        if hasattr(model, "num_threads"):
            model.num_threads = threads
        small = fastals.models.retrieval.recommend_all(
            model, R, batch_size=batch, user_tile=4, item_tile=16, **filters)
        np.testing.assert_array_equal(small[0], got[0])
        np.testing.assert_array_equal(small[1], got[1])
    if hasattr(model, "num_threads"):
        model.num_threads = 0


def test_users_subset_and_aligned_rows(fitted):
    model, R = fitted
    users = np.array([5, 0, 88, 5, 41])
    full = model.recommend_all(R, users=users, N=4)
    aligned = model.recommend_all(R[users], users=users, N=4)
    np.testing.assert_array_equal(full[0], aligned[0])
    assert_same_as_recommend(model, R, users, full, 4, N=4)


def test_iter_and_writers(fitted, tmp_path):
    model, R = fitted
    ids, scores = model.recommend_all(R, N=3)
    parts = list(model.iter_recommend_all(R, N=3, batch_size=25))
    assert [len(p[0]) for p in parts] == [25, 25, 25, 15]
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), ids)
    path = model.write_recommendations(tmp_path / "recs.csv", R, N=3, batch_size=40,
                                       show_progress=False)
    lines = open(path).read().splitlines()
    assert lines[0] == "user,rank,item,score"
    assert len(lines) - 1 == (ids >= 0).sum()
    user, rank, item, score = lines[1].split(",")
    assert (int(user), int(rank), int(item)) == (0, 1, ids[0, 0])
    assert float(score) == pytest.approx(float(scores[0, 0]), rel=1e-6)
    pq = pytest.importorskip("pyarrow.parquet")
    path = model.write_recommendations(tmp_path / "recs.parquet", R, N=3, batch_size=40,
                                       show_progress=False)
    table = pq.read_table(path).to_pydict()
    keep = ids >= 0
    np.testing.assert_array_equal(table["item"], ids[keep])
    np.testing.assert_array_equal(table["score"], scores[keep])
    np.testing.assert_array_equal(table["rank"], (np.nonzero(keep)[1] + 1))


# --- arguments ----------------------------------------------------------------------------


def test_bad_arguments_are_named():
    R = factor_data()
    model = fastals.ImplicitALS(factors=4, iterations=1, random_state=0).fit(R, show_progress=False)
    with pytest.raises(ValueError, match="N must"):
        model.recommend_all(R, N=0)
    with pytest.raises(ValueError, match="user_items is required"):
        model.recommend_all(None)
    with pytest.raises(ValueError, match="one row per user"):
        model.recommend_all(R[:10])
    with pytest.raises(TypeError, match="user_items must be a scipy sparse"):
        model.recommend_all(R.toarray())
    with pytest.raises(ValueError, match="max_memory"):
        model.recommend_all(R, max_memory="lots")
    with pytest.raises(ValueError, match="max_memory=100 bytes is too small"):
        model.recommend_all(R, max_memory=100)
    with pytest.raises(ValueError, match="batch_size"):
        model.recommend_all(R, batch_size=0)
    with pytest.raises(fastals.IdOutOfRangeError, match="users"):
        model.recommend_all(R, users=[0, 90])
    with pytest.raises(ValueError, match="format"):
        model.write_recommendations("x.txt", R, format="xml")
    with pytest.raises(fastals.NotFittedError):
        fastals.ImplicitALS().recommend_all(R)
    before = R.copy()
    model.recommend_all(R, filter_items=[1, 2], items=[1, 2, 3, 4])
    assert (R != before).nnz == 0


def test_parse_memory():
    assert parse_memory("m", "1GB") == 10 ** 9
    assert parse_memory("m", "512MiB") == 512 * 2 ** 20
    assert parse_memory("m", "2.5 kb") == 2500
    assert parse_memory("m", 1234) == 1234
    for bad in ("-1GB", "1XB", "", "0"):
        with pytest.raises(ValueError, match="m must"):
            parse_memory("m", bad)
    with pytest.raises(TypeError, match="m must"):
        parse_memory("m", 1.5)


# --- the memory cap: peak RSS of a subprocess ----------------------------------------------

MEMORY_JOB = textwrap.dedent("""
    import json, sys
    import numpy as np, scipy.sparse as sp
    import fastals
    n_users, n_items, F = 40_000, 12_000, 32   # dense float32 scores: 1.92 GB
    rng = np.random.default_rng(0)
    model = fastals.ImplicitALS(factors=F)
    model.user_factors = rng.standard_normal((n_users, F), dtype=np.float32)
    model.item_factors = rng.standard_normal((n_items, F), dtype=np.float32)
    nnz = 400_000
    R = sp.csr_matrix((np.ones(nnz, np.float32), (rng.integers(0, n_users, nnz),
                       rng.integers(0, n_items, nnz))), shape=(n_users, n_items))
    R.sum_duplicates()
    model.recommend_all(R[:100], users=np.arange(100), N=10)  # load the kernels, cache Y^T
    cap = int(sys.argv[1])

    def status(field):  # kB in /proc/self/status
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) * 1024 for l in f if l.startswith(field + ":"))

    with open("/proc/self/clear_refs", "w") as f:  # the peak (VmHWM) restarts from now
        f.write("5")
    before = status("VmRSS")
    ids, scores = model.recommend_all(R, N=10, max_memory=cap)
    peak = status("VmHWM")  # (not ru_maxrss: it keeps the parent's peak across fork)
    print(json.dumps({"extra": peak - before, "before": before, "peak": peak,
                      "rows": int((ids >= 0).all(axis=1).sum())}))
""")


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_memory_cap_is_honoured_in_peak_rss():
    cap = 10 * 10 ** 6  # (several batches: the results held take 3.2 MB)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", MEMORY_JOB, str(cap)], env=env, check=True,
                         capture_output=True, text=True, timeout=120)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["rows"] == 40_000
    assert got["extra"] < cap, got  # (the dense scores would be 1.92 GB)


# --- IdRecommender -------------------------------------------------------------------------


def test_id_recommender_recommend_all_speaks_caller_ids(tmp_path):
    R = factor_data()
    users = fastals.data.IdMapping([f"u{i}" for i in range(R.shape[0])], "user")
    items = fastals.data.IdMapping([f"i{i}" for i in range(R.shape[1])], "item")
    model = fastals.ImplicitALS(factors=4, iterations=2, random_state=0).fit(R, show_progress=False)
    rec = fastals.IdRecommender(model, users=users, items=items, user_items=R)
    item_ids, scores = rec.recommend_all(N=3)
    ids, want_scores = model.recommend_all(R, N=3)
    assert item_ids[0, 0] == f"i{ids[0, 0]}"
    np.testing.assert_array_equal(scores, want_scores)
    one, one_scores = rec.recommend("u7", N=3)
    np.testing.assert_array_equal(item_ids[7], one)
    some = rec.recommend_all(users=["u3", "u1"], N=2, filter_items=["i0"])
    np.testing.assert_array_equal(some[0][0], rec.recommend("u3", N=2, filter_items=["i0"])[0])
    path = rec.write_recommendations(tmp_path / "r.csv", N=2, show_progress=False)
    assert open(path).read().splitlines()[1].startswith("u0,1,i")
    pytest.importorskip("pandas")
    frame = rec.recommend_all(N=2, as_frame=True)
    assert list(frame.columns[:4]) == ["user", "rank", "item", "score"]
    assert len(frame) == 2 * R.shape[0]
