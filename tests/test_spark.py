"""fastals.spark: distributed ALS equals the single-machine model; ids, outputs, bad input.

The Spark tests share one local[2] SparkSession (session scope) and skip, saying why, only
where Java is missing (pyspark and pyarrow are in the `test` extra, so CI runs them); the
tests of the executor-side helpers and of the parameters need no JVM.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import fastals
from fastals._validation import as_csr
from fastals.datasets import load_movielens_100k
from fastals.exceptions import ModelFitError
from fastals.spark import ALS
from fastals.reference import implicit_als_cg_step, normal_equations
from fastals.spark._blocks import (
    ImplicitSolver,
    balanced_bounds,
    build_block,
    positive_counts,
    solve_weighted,
)
from conftest import random_interactions

# pyspark's notice that it does not yet support pandas >= 3 (fastals.spark moves data with
# Arrow; pandas only indexes ids), raised by every mapInArrow
pytestmark = pytest.mark.filterwarnings(
    "ignore:PySpark does not yet fully support pandas:FutureWarning")

# Distributed and single-machine fits run the same kernels on the same rows from the same
# initial factors, so they agree to the last bit on one machine; 1e-4 (the bound)
# leaves room for a different instruction-set build on the executors.
TOL = 1e-4
REPO = Path(__file__).resolve().parents[1]


# --- without Spark ------------------------------------------------------------------------
def test_balanced_bounds_cover_rows_with_equal_work():
    counts = np.array([100, 1, 1, 1, 100, 1, 1, 100, 1, 1])
    bounds = balanced_bounds(counts, 3)
    assert bounds[0] == 0 and bounds[-1] == len(counts) and np.all(np.diff(bounds) > 0)
    work = [counts[lo:hi].sum() for lo, hi in zip(bounds[:-1], bounds[1:])]
    assert len(work) == 3 and max(work) <= 104
    assert balanced_bounds(np.ones(2), 5).tolist() == [0, 1, 2]  # fewer rows than blocks
    assert balanced_bounds(np.zeros(4), 2, row_cost=1.0).tolist() == [0, 2, 4]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_build_block_is_the_models_canonical_csr(dtype):
    """Duplicates summed, zeros dropped, rows of [lo, hi) only: what as_csr gives locally."""
    rng = np.random.default_rng(0)
    rows = rng.integers(10, 20, 200)
    cols = rng.integers(0, 7, 200)
    values = rng.integers(-1, 3, 200).astype(np.float64)
    import pickle
    pieces = [pickle.dumps((rows[:120], cols[:120], values[:120])),
              pickle.dumps((rows[120:], cols[120:], values[120:]))]
    block = build_block(1, pieces, np.array([0, 10, 20]), 7, dtype)
    expected = as_csr(sp.coo_matrix((values, (rows - 10, cols)), shape=(10, 7)), "r", dtype)
    assert block.error is None and (block.lo, block.hi) == (10, 20)
    np.testing.assert_array_equal(block.indptr, expected.indptr)
    np.testing.assert_array_equal(block.indices, expected.indices)
    np.testing.assert_array_equal(block.data, expected.data)
    empty = build_block(0, [], np.array([0, 3]), 7, dtype)
    assert empty.nnz == 0 and empty.csr().shape == (3, 7)


def test_build_block_reports_bad_values():
    import pickle
    piece = pickle.dumps((np.array([0]), np.array([0]), np.array([1e300])))
    block = build_block(0, [piece], np.array([0, 1]), 1, np.float32)
    assert "too large for float32" in block.error


def weighted_step(user_items, X, Y, regularization, alpha, solver, cg_steps=3):
    """Reference ALS-WR half-step: row u regularized by lambda n_u (n_u: positive values)."""
    user_items = sp.csr_matrix(user_items)
    counts = np.asarray((user_items > 0).sum(axis=1)).ravel()
    X = np.array(X, dtype=np.float64)
    for u in range(user_items.shape[0]):
        lam = regularization * counts[u]
        if solver == "cholesky":
            X[u] = np.linalg.solve(*normal_equations(user_items, u, Y, lam, alpha))
        else:
            X[u] = implicit_als_cg_step(user_items[u], X[u:u + 1], Y, lam, alpha, cg_steps)[0]
    return X


# float64 kernels vs the float64 reference: summation order only; float32 CG: ~1e-7
# relative rounding amplified by the conditioning of A_u (see test_implicit_als.py)
WEIGHTED_TOL = {np.float64: 1e-9, np.float32: 2e-4}


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_weighted_regularization_matches_reference(solver, dtype, threads):
    """ALS-WR (MLlib's regParam): each group of rows with the same n_u is one kernel call."""
    R = random_interactions(50, 30, 0.2, seed=7, negative=True)
    rng = np.random.default_rng(7)
    X0, Y = rng.standard_normal((50, 6)) * 0.1, rng.standard_normal((30, 6)) * 0.1
    csr = as_csr(R, "R", dtype)
    assert len(np.unique(positive_counts(csr))) > 3  # several groups, incl. rows without any
    model = fastals.ImplicitALS(factors=6, regularization=0.2, alpha=1.5, solver=solver,
                                dtype=dtype)
    X = X0.astype(dtype)
    solve_weighted(model, csr, X, Y.astype(dtype), Y.astype(dtype).astype(np.float64).T
                   @ Y.astype(dtype), "user", threads)
    expected = weighted_step(R, X0.astype(dtype), Y.astype(dtype), 0.2, 1.5, solver)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(X, expected, rtol=0, atol=WEIGHTED_TOL[dtype] * scale)


def test_row_shift_is_checked_before_the_kernel():
    """The kernel reads row_shift[u] for every row unchecked: its length and dtype are
    validated by ImplicitALS._solve."""
    csr = as_csr(random_interactions(5, 4, 0.5, seed=1), "R", np.float32)
    # a number: an unfitted model's regularization="auto" is resolved only by fit
    model = fastals.ImplicitALS(factors=2, regularization=0.01, dtype=np.float32)
    X, Y = np.zeros((5, 2), np.float32), np.ones((4, 2), np.float32)
    for bad in (np.ones(4, np.float32), np.ones(5, np.float64)):
        with pytest.raises(ValueError, match="row_shift must be a float32 array of 5 values"):
            model._solve(csr, [(0, 5)], X, Y, "user", 1, row_shift=bad)


def test_weighted_failure_names_the_dense_row():
    """Rows are permuted into groups; a failing row is still reported by its own index.
    Row 1 has no positive value, so (as in MLlib) no regularization: 2 items cannot span 3
    factors and its system is singular, while the other rows get lambda n_u > 0."""
    R = sp.csr_matrix(np.array([[1.0, 0], [-1.0, 0], [0, 1.0]]))
    csr = as_csr(R, "R", np.float64)
    Y = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    model = fastals.ImplicitALS(factors=3, regularization=0.1, solver="cholesky",
                                dtype=np.float64)
    with pytest.raises(ModelFitError, match=r"1 user\(s\) are not positive definite "
                                            r"\(first: user 10\)") as info:
        solve_weighted(model, csr, np.zeros((3, 3)), Y, Y.T @ Y, "user", 1, offset=9)
    assert info.value.row == 10
    assert ImplicitSolver(3, 0.1, 1.0, 3, "cg", np.float32, weighted=True).weighted


def test_parameters_take_fastals_and_mllib_names():
    als = ALS(rank=8, maxIter=3, regParam=0.5, seed=1)
    p = als._resolve()
    assert (p["factors"], p["iterations"], p["regularization"], p["random_state"]) == \
        (8, 3, 0.5, 1)
    assert ALS(factors=8, rank=8)._resolve()["factors"] == 8
    # regParam means what it means in MLlib (lambda x count), regularization fastals' lambda
    assert ALS(regParam=0.1)._resolve()["weighted_regularization"] is True
    assert ALS(regularization=0.1)._resolve()["weighted_regularization"] is False
    assert ALS(regParam=0.1, weighted_regularization=False)._resolve()[
        "weighted_regularization"] is False
    assert ALS().setRegParam(0.2)._resolve()["weighted_regularization"] is True
    with pytest.raises(ValueError, match="factors=8 and rank=9 disagree"):
        ALS(factors=8, rank=9)
    als = ALS().setRank(16).setMaxIter(2).setUserCol("u")
    assert (als.getRank(), als.getMaxIter(), als.getUserCol()) == (16, 2, "u")
    assert ALS(factors=4).setRank(6).getRank() == 6  # the newest value wins
    with pytest.raises(ValueError, match="factors must be a positive int"):
        ALS(rank=0)
    with pytest.raises(ValueError, match="solver must be one of"):
        ALS(solver="lu")
    with pytest.raises(ValueError, match="nonnegative=True is not supported"):
        ALS(nonnegative=True)
    explicit = ALS(implicitPrefs=False, nonnegative=True)._resolve()  # ExplicitALS defaults
    assert (explicit["factors"], explicit["regularization"]) == (64, 0.12)
    assert explicit["weighted_regularization"] is True and explicit["engine"].kind == "explicit"
    with pytest.raises(ValueError, match="regularization must be >= 0"):
        ALS(implicitPrefs=False, regularization=-1)
    with pytest.raises(ValueError, match="userCol and itemCol must differ"):
        ALS(userCol="id", itemCol="id")
    with pytest.raises(ValueError, match="coldStartStrategy"):
        ALS(coldStartStrategy="error")
    with pytest.raises(TypeError, match="no parameter 'ranks'"):
        ALS().setParams(ranks=3)
    with pytest.raises(AttributeError):
        ALS().setNothing(1)


def test_core_package_works_without_pyspark():
    """With pyspark unimportable: fastals and fastals.spark import, ALS constructs, and a
    fit says what to install."""
    code = (
        "import sys; sys.modules['pyspark'] = None\n"
        "import fastals, fastals.spark, scipy.sparse as sp\n"
        "fastals.ImplicitALS(factors=2, iterations=1).fit(sp.eye(3, format='csr'),"
        " show_progress=False)\n"
        "als = fastals.spark.ALS(rank=4)\n"
        "try:\n"
        "    als.fit(object())\n"
        "except ImportError as exc:\n"
        "    assert 'fastals[spark]' in str(exc), exc\n"
        "    print('ok')\n")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=REPO, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr


# --- with Spark -------------------------------------------------------------------------------
def java_missing():
    """Why Spark cannot start here (no JVM), or None."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return None
    if shutil.which("java"):
        return None
    return "Java is not installed (Spark needs a JVM, Java 17): the Spark tests need it"


@pytest.fixture(scope="session")
def spark():
    """One local[2] SparkSession for every Spark test (UI off, few shuffle partitions)."""
    reason = java_missing()
    if reason:
        pytest.skip(reason)
    try:
        from pyspark.sql import SparkSession
        import pyarrow  # noqa: F401
    except ImportError as exc:  # a test dependency: only a missing JVM may skip these tests
        pytest.fail(f"{exc}: pyspark and pyarrow are test dependencies "
                    "(pip install -e '.[test]')", pytrace=False)

    # the Python workers must import this fastals (and the same interpreter)
    os.environ["PYTHONPATH"] = str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (SparkSession.builder.master("local[2]").appName("fastals-tests")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "4")
               .config("spark.driver.memory", "1g")
               .config("spark.python.worker.reuse", "true")
               .config("spark.ui.showConsoleProgress", "false")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def frame(spark, matrix, user_ids=None, item_ids=None, partitions=2):
    """A (user, item, rating) DataFrame of a sparse matrix, optionally with other ids."""
    coo = sp.coo_matrix(matrix)
    users = coo.row if user_ids is None else np.asarray(user_ids)[coo.row]
    items = coo.col if item_ids is None else np.asarray(item_ids)[coo.col]
    rows = [(u.item() if hasattr(u, "item") else u, i.item() if hasattr(i, "item") else i,
             float(r)) for u, i, r in zip(users, items, coo.data)]
    user_type = "string" if isinstance(rows[0][0], str) else "int"
    item_type = "string" if isinstance(rows[0][1], str) else "int"
    return spark.createDataFrame(rows, f"user {user_type}, item {item_type}, rating double") \
        .repartition(partitions)


def covered(n_users=60, n_items=40, seed=0):
    """A random matrix whose every row and column has an interaction (so the dense ids of
    the DataFrame are exactly the matrix rows and columns)."""
    matrix = random_interactions(n_users, n_items, 0.1, seed, negative=True).tolil()
    for u in range(n_users):
        matrix[u, u % n_items] = 1 + u % 3
    for i in range(n_items):
        matrix[(7 * i) % n_users, i] = 2
    return matrix.tocsr()


def local_fit(matrix, **params):
    return fastals.ImplicitALS(**params).fit(matrix, show_progress=False)


@pytest.mark.parametrize("solver, dtype, regularization", [
    ("cg", np.float32, 0.1), ("cholesky", np.float64, 0.1),
    ("cg", np.float32, 0.0)])  # without regularization both balance the factors
def test_random_matrix_factors_equal_single_machine(spark, solver, dtype, regularization):
    matrix = covered()
    params = dict(factors=8, regularization=regularization, alpha=2.0, iterations=5,
                  solver=solver, dtype=dtype, random_state=3)
    model = ALS(**params, numUserBlocks=3, numItemBlocks=2).fit(frame(spark, matrix))
    local = local_fit(matrix, **params)
    assert model.summary.user_blocks == 3 and model.summary.item_blocks == 2
    assert model.user_factors.dtype == dtype
    np.testing.assert_allclose(model.user_factors, local.user_factors, rtol=0, atol=TOL)
    np.testing.assert_allclose(model.item_factors, local.item_factors, rtol=0, atol=TOL)
    # the plan of a new state does not grow with the iterations (lineage is truncated)
    assert len(set(model.summary.lineage)) == 1 and model.summary.lineage[0] <= 4


def test_reliable_checkpoints_with_a_checkpoint_dir(spark, tmp_path_factory):
    """With sc.setCheckpointDir, every checkpointInterval-th iteration writes a reliable
    checkpoint (files in the directory) instead of a local one, deleted once the next
    state replaces it; the plan stays the same size and the factors are unchanged.
    (The directory stays set for the session: later tests run fewer iterations than their
    interval, so they never write there.)"""
    directory = tmp_path_factory.mktemp("checkpoints")
    spark.sparkContext.setCheckpointDir(str(directory))
    matrix = covered(20, 12, seed=6)
    params = dict(factors=4, regularization=0.1, iterations=4, random_state=7)
    written = []

    def files(iteration, seconds, loss):
        written.append(sorted({p.parent.name for p in directory.rglob("part-*")}))

    model = ALS(**params, checkpointInterval=2).fit(frame(spark, matrix), callback=files)
    # after iterations 2 and 4 both sides' states are reliable checkpoints; each is deleted
    # when the next (local) state replaces it
    assert [len(w) for w in written] == [0, 2, 0, 2] and written[1] != written[3]
    assert not list(directory.rglob("part-*"))  # and fit leaves none behind
    assert len(set(model.summary.lineage)) == 1
    local = local_fit(matrix, **params)
    np.testing.assert_allclose(model.user_factors, local.user_factors, rtol=0, atol=TOL)
    np.testing.assert_allclose(model.item_factors, local.item_factors, rtol=0, atol=TOL)


def test_regparam_is_weighted_as_in_mllib(spark):
    """With MLlib's regParam, row u is regularized by regParam x n_u: two exact float64
    iterations equal the reference ALS-WR alternation from the same initial factors."""
    matrix = covered(30, 20, seed=8)
    model = ALS(rank=5, maxIter=2, regParam=0.05, alpha=1.0, seed=4, solver="cholesky",
                dtype=np.float64, numUserBlocks=2, numItemBlocks=3).fit(frame(spark, matrix))
    (X,), (Y,) = ImplicitSolver(5, 0.05, 1.0, 3, "cholesky", np.float64).initial_state(
        30, 20, 4)
    for _ in range(2):
        X = weighted_step(matrix, X, Y, 0.05, 1.0, "cholesky")
        Y = weighted_step(matrix.T.tocsr(), Y, X, 0.05, 1.0, "cholesky")
    np.testing.assert_allclose(model.user_factors, X, rtol=0, atol=1e-8)
    np.testing.assert_allclose(model.item_factors, Y, rtol=0, atol=1e-8)


def explicit_ratings(n_users, n_items, seed):
    """Stars 0..5 (zeros are ratings here) with every user and item rated."""
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((n_users, n_items)) < 0.25,
                     rng.integers(0, 6, (n_users, n_items)), -1)
    dense[np.arange(n_users), np.arange(n_users) % n_items] = 3
    dense[(5 * np.arange(n_items)) % n_users, np.arange(n_items)] = 4
    rows, cols = np.nonzero(dense >= 0)
    return sp.coo_matrix((dense[rows, cols].astype(np.float64), (rows, cols)),
                         shape=(n_users, n_items))


@pytest.mark.parametrize("params", [
    dict(factors=6, regularization=0.1, iterations=4),  # biases, ALS-WR (the defaults)
    dict(factors=4, regularization=(0.2, 0.05), iterations=3, biases=False,
         nonnegative=True, weighted_regularization=False, dtype=np.float64)])
def test_explicit_factors_equal_single_machine(spark, params):
    """implicitPrefs=False runs fastals.ExplicitALS' kernel per block: from the same seed the
    factors and biases equal the single-machine model's, and so does to_local()."""
    ratings = explicit_ratings(40, 25, seed=9)
    model = ALS(**params, implicitPrefs=False, random_state=6, numUserBlocks=3).fit(
        frame(spark, ratings))
    local = fastals.ExplicitALS(**params, random_state=6).fit(ratings, show_progress=False)
    assert model.summary.nnz == ratings.nnz  # the zero ratings are kept
    for name in ("user_factors", "item_factors", "user_bias", "item_bias"):
        np.testing.assert_allclose(getattr(model, name), getattr(local, name), rtol=0,
                                   atol=TOL, err_msg=name)
    copy = model.to_local().model
    assert copy.global_mean == pytest.approx(local.global_mean, rel=1e-12)
    assert copy.rating_range == local.rating_range
    np.testing.assert_array_equal(copy.user_counts, local.user_counts)
    users, items = np.array([0, 3, 7]), np.array([1, 2, 20])
    np.testing.assert_allclose(copy.predict(users, items),
                               local.predict(users, items), rtol=1e-5)
    # transform predicts the rating (mu + biases + dot product, unclipped)
    pairs = spark.createDataFrame([(int(u), int(i)) for u, i in zip(users, items)],
                                  "user int, item int")
    got = {(r["user"], r["item"]): r["prediction"] for r in model.transform(pairs).collect()}
    expected = local.predict(users, items, clip=False)
    for u, i, e in zip(users, items, expected):
        assert got[(u, i)] == pytest.approx(e, rel=1e-5, abs=1e-5)
    recs = model.recommendForUserSubset(pairs.select("user"), 3).collect()
    for row in recs:
        ids, _ = local.recommend(row["user"], N=3, filter_already_liked_items=False)
        assert [r["item"] for r in row["recommendations"]] == list(ids)


def test_explicit_repeated_pairs_are_an_error(spark):
    df = spark.createDataFrame([("a", "x", 4.0), ("a", "x", 5.0), ("b", "y", 1.0)],
                               "user string, item string, rating double")
    with pytest.raises(ValueError, match=r"user='a', item='x' has 2 ratings"):
        ALS(implicitPrefs=False).fit(df)
    with pytest.raises(ValueError, match="ratingCol=None"):
        ALS(implicitPrefs=False, ratingCol=None).fit(df)


@pytest.mark.parametrize("implicit", [True, False], ids=["implicit", "explicit"])
def test_movielens_factors_equal_single_machine(spark, ml100k_path, implicit):
    """MovieLens 100K from u.data, ids as in the file: after 4 iterations the distributed
    factors (and biases) equal ImplicitALS' / ExplicitALS' from the same seed."""
    ratings, _ = load_movielens_100k(ml100k_path)
    df = spark.read.csv(str(Path(ml100k_path) / "u.data"), sep="\t",
                        schema="user int, item int, rating double, time long")
    params = dict(factors=16, regularization=0.05, iterations=4, random_state=0)
    model = ALS(**params, implicitPrefs=implicit, userCol="user", itemCol="item",
                numUserBlocks=3, numItemBlocks=2).fit(df)
    local = (local_fit(ratings, **params) if implicit else
             fastals.ExplicitALS(**params).fit(ratings, show_progress=False))
    np.testing.assert_array_equal(model.user_ids, np.arange(1, ratings.shape[0] + 1))
    np.testing.assert_array_equal(model.item_ids, np.arange(1, ratings.shape[1] + 1))
    names = ["user_factors", "item_factors"] + ([] if implicit else ["user_bias", "item_bias"])
    for name in names:
        np.testing.assert_allclose(getattr(model, name), getattr(local, name), rtol=0,
                                   atol=TOL, err_msg=name)
    assert model.summary.nnz == ratings.nnz


@pytest.fixture(scope="module")
def string_model(spark):
    """A model on string ids whose sorted order differs from the matrix order."""
    matrix = covered(30, 20, seed=1)
    rng = np.random.default_rng(1)
    user_ids = np.array([f"user-{k:03d}" for k in rng.permutation(30)], dtype=object)
    item_ids = np.array([f"item/{k}" for k in rng.permutation(20)], dtype=object)
    model = ALS(factors=6, iterations=3, regularization=0.1, random_state=0).fit(
        frame(spark, matrix, user_ids, item_ids, partitions=3))
    return model, matrix, user_ids, item_ids


def test_string_ids_are_numbered_in_sorted_order(string_model):
    model, matrix, user_ids, item_ids = string_model
    assert model.user_ids.tolist() == sorted(user_ids)
    assert model.item_ids.tolist() == sorted(item_ids)
    # the same fit on the matrix with rows and columns put in sorted-id order
    rows, cols = np.argsort(user_ids), np.argsort(item_ids)
    local = local_fit(matrix[rows][:, cols], factors=6, iterations=3, regularization=0.1,
                      random_state=0)
    np.testing.assert_allclose(model.user_factors, local.user_factors, rtol=0, atol=TOL)
    factors = {row["id"]: row["features"] for row in model.userFactors.collect()}
    assert set(factors) == set(user_ids)
    np.testing.assert_allclose(factors[model.user_ids[4]], model.user_factors[4], rtol=1e-6)
    assert model.itemFactors.schema["id"].dataType.simpleString() == "string"


def test_recommendations_use_original_ids(string_model, spark):
    model, _, _, _ = string_model
    local = model.to_local()
    ids, scores = local.model.recommend(np.arange(len(local.user_ids)), N=4,
                                        filter_already_liked_items=False)
    expected = {local.user_ids[u]: list(local.item_ids[ids[u]]) for u in range(len(ids))}
    got = {row["user"]: row["recommendations"] for row in model.recommendForAllUsers(4).collect()}
    assert set(got) == set(expected)
    for user, recs in got.items():
        assert [r["item"] for r in recs] == expected[user]
        row = list(local.user_ids).index(user)
        np.testing.assert_allclose([r["rating"] for r in recs], scores[row], rtol=1e-5)

    subset = spark.createDataFrame([(model.user_ids[2],), (model.user_ids[2],), ("nobody",)],
                                   "user string")
    rows = model.recommendForUserSubset(subset, 2).collect()
    assert len(rows) == 1 and rows[0]["user"] == model.user_ids[2]
    assert [r["item"] for r in rows[0]["recommendations"]] == expected[model.user_ids[2]][:2]

    items = {row["item"]: row["recommendations"] for row in model.recommendForAllItems(3).collect()}
    assert set(items) == set(model.item_ids)
    item = model.item_ids[5]
    best = np.argsort(-(model.user_factors @ model.item_factors[5]), kind="stable")[:3]
    assert [r["user"] for r in items[item]] == list(model.user_ids[best])
    one = model.recommendForItemSubset(spark.createDataFrame([(item,)], "item string"), 3)
    assert one.collect()[0]["recommendations"] == items[item]


def test_transform_predicts_and_handles_unknown_ids(string_model, spark):
    model, _, _, _ = string_model
    pairs = [(model.user_ids[0], model.item_ids[1], 7), (model.user_ids[3], model.item_ids[0], 8),
             ("stranger", model.item_ids[0], 9), (model.user_ids[1], "unseen", 10)]
    df = spark.createDataFrame(pairs, "user string, item string, extra int")
    out = {row["extra"]: row for row in model.transform(df).collect()}
    assert set(out) == {7, 8, 9, 10} and out[7]["user"] == model.user_ids[0]
    for extra, (u, i) in ((7, (0, 1)), (8, (3, 0))):
        expected = float(model.user_factors[u] @ model.item_factors[i])
        assert out[extra]["prediction"] == pytest.approx(expected, rel=1e-5, abs=1e-7)
    assert np.isnan(out[9]["prediction"]) and np.isnan(out[10]["prediction"])
    model.coldStartStrategy = "drop"
    try:
        assert sorted(row["extra"] for row in model.transform(df).collect()) == [7, 8]
    finally:
        model.coldStartStrategy = "nan"


def test_model_methods_check_their_input(string_model, spark):
    model, _, _, _ = string_model
    df = spark.createDataFrame([("a", "b")], "user string, item string")
    with pytest.raises(ValueError, match="userCol='user' is not a column"):
        model.transform(df.withColumnRenamed("user", "customer"))
    with pytest.raises(ValueError, match="itemCol='item' is not a column"):
        model.recommendForItemSubset(df.select("user"), 3)
    with pytest.raises(ValueError, match="numItems must be a positive int"):
        model.recommendForAllUsers(0)
    with pytest.raises(TypeError, match="dataset must be a pyspark.sql.DataFrame"):
        model.recommendForUserSubset(["a"], 3)


def test_to_local_gives_a_working_fastals_model(string_model, tmp_path):
    model, _, _, _ = string_model
    local = model.to_local()
    assert isinstance(local.model, fastals.ImplicitALS)
    np.testing.assert_array_equal(local.model.item_factors, model.item_factors)
    local.model.save(tmp_path / "m.npz")
    again = fastals.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(again.user_factors, model.user_factors)
    local.user_ids[0] = "changed"  # a copy: the Spark model keeps its ids
    assert model.user_ids[0] != "changed"


def test_empty_partitions_and_more_blocks_than_rows(spark):
    matrix = covered(12, 5, seed=2)
    df = frame(spark, matrix).repartition(16, "user")  # 12 users hashed into 16 partitions
    assert min(len(p) for p in df.rdd.glom().collect()) == 0  # some partitions are empty
    params = dict(factors=4, regularization=0.1, iterations=3, random_state=5)
    model = ALS(**params, numUserBlocks=8, numItemBlocks=20).fit(df)
    assert model.summary.item_blocks == 5  # never more blocks than rows
    local = local_fit(matrix, **params)
    np.testing.assert_allclose(model.user_factors, local.user_factors, rtol=0, atol=TOL)
    np.testing.assert_allclose(model.item_factors, local.item_factors, rtol=0, atol=TOL)


def test_duplicates_and_zero_ratings_as_single_machine(spark):
    """Repeated pairs are summed and zeros ignored, as ImplicitALS does with COO input (here
    with 2 OpenMP threads per task instead of spark.task.cpus)."""
    rows = [(0, 0, 1.0), (0, 0, 2.0), (0, 1, 0.0), (1, 1, 1.0), (1, 2, 4.0), (2, 0, 1.0),
            (2, 2, -1.0), (2, 1, 3.0)]
    df = spark.createDataFrame(rows, "user long, item long, rating float")
    coo = sp.coo_matrix(([r[2] for r in rows], ([r[0] for r in rows], [r[1] for r in rows])),
                        shape=(3, 3))
    params = dict(factors=3, regularization=0.2, iterations=4, random_state=1)
    model = ALS(**params, num_threads=2).fit(df)
    local = local_fit(coo, **params)
    assert model.summary.nnz == 6
    np.testing.assert_allclose(model.user_factors, local.user_factors, rtol=0, atol=TOL)
    np.testing.assert_allclose(model.item_factors, local.item_factors, rtol=0, atol=TOL)


def test_rating_column_is_optional(spark):
    matrix = covered(10, 6, seed=3)
    ones = matrix.copy()
    ones.data[:] = 1
    df = frame(spark, ones).drop("rating")
    # the estimator's default lambda (0.01) given to both: ImplicitALS's is "auto"
    params = dict(factors=3, regularization=0.01, iterations=2, random_state=0)
    model = ALS(**params, ratingCol=None).fit(df)
    np.testing.assert_allclose(model.user_factors, local_fit(ones, **params).user_factors,
                               rtol=0, atol=TOL)


def test_lost_cached_factors_are_recovered_from_the_driver(spark, caplog):
    """Unpersisting every cached RDD mid-fit (as a lost executor would) loses the locally
    checkpointed factors; the half-iteration is retried from the driver's copy."""
    matrix = covered(20, 10, seed=4)
    sc = spark.sparkContext

    def lose_everything(iteration, seconds, loss):
        if iteration == 0:
            for rdd in sc._jsc.getPersistentRDDs().values():
                rdd.unpersist()

    params = dict(factors=4, regularization=0.1, iterations=3, random_state=2)
    with caplog.at_level("WARNING", logger="fastals"):
        model = ALS(**params).fit(frame(spark, matrix), callback=lose_everything)
    assert any("retrying once" in r.getMessage() for r in caplog.records)
    local = local_fit(matrix, **params)
    np.testing.assert_allclose(model.user_factors, local.user_factors, rtol=0, atol=TOL)
    assert not sc._jsc.getPersistentRDDs()  # and fit leaves nothing cached behind


def test_bad_column_names_and_values_give_clear_errors(spark):
    df = frame(spark, covered(6, 4))
    with pytest.raises(ValueError, match=r"userCol='usr' is not a column of the DataFrame; "
                                         r"its columns are 'user', 'item', 'rating'"):
        ALS(userCol="usr").fit(df)
    with pytest.raises(ValueError, match="itemCol='movie' is not a column"):
        ALS(itemCol="movie").fit(df)
    with pytest.raises(ValueError, match="ratingCol='stars' is not a column"):
        ALS(ratingCol="stars").fit(df)
    with pytest.raises(TypeError, match="ratingCol='rating' must be a numeric column"):
        ALS().fit(df.withColumn("rating", df["rating"].cast("string")))
    with pytest.raises(TypeError, match="must be a pyspark.sql.DataFrame"):
        ALS().fit(covered(6, 4))
    with pytest.raises(ValueError, match="DataFrame is empty"):
        ALS().fit(df.limit(0))
    nulls = spark.createDataFrame([(1, 1, 1.0), (None, 2, 1.0)], "user int, item int, rating double")
    with pytest.raises(ValueError, match="userCol='user' has 1 row"):
        ALS().fit(nulls)
    nan = spark.createDataFrame([(1, 1, 1.0), (2, 2, float("nan"))], "user int, item int, rating double")
    with pytest.raises(ValueError, match="ratingCol='rating' has 1 null, NaN or infinite"):
        ALS().fit(nan)
    arrays = spark.createDataFrame([([1], 1, 1.0)], "user array<int>, item int, rating double")
    with pytest.raises(TypeError, match="userCol='user' must hold atomic ids"):
        ALS().fit(arrays)


def test_singular_system_names_the_original_id(spark):
    """5 items cannot span 8 factors: with no regularization the exact solve must fail, and
    the error names the user by its id, not by a dense index."""
    matrix = covered(6, 5, seed=5)
    ids = np.array(["ann", "bob", "cy", "dee", "ed", "flo"], dtype=object)
    with pytest.raises(ModelFitError, match=r"not positive definite \(first: user='[a-z]+'\)"):
        ALS(factors=8, regularization=0.0, solver="cholesky", iterations=1,
            random_state=0).fit(frame(spark, matrix, user_ids=ids))
    assert not spark.sparkContext._jsc.getPersistentRDDs()


# --- the block-to-block exchange and the set-up's fast path ----------------------------------
def received_rows(matrix, bounds):
    """Per row block of `matrix`: the distinct columns its rows read (what the shuffle
    exchange sends it per half-iteration: at most min(its nonzeros, all columns))."""
    return [len(np.unique(matrix[lo:hi].indices)) for lo, hi in zip(bounds[:-1], bounds[1:])]


@pytest.mark.parametrize("exchange, ids", [("shuffle", "strings"), ("broadcast", "gaps")])
def test_exchange_paths_equal_single_machine(spark, exchange, ids):
    """Both exchanges give the single-machine factors: the shuffle (string ids, the sorted
    numbering) and the broadcast (integral ids with gaps: the one-pass numbering). With the
    shuffle, each block receives exactly the rows of the other side its interactions read
    (the memory bound of the docs)."""
    matrix = covered(30, 20, seed=8)
    if ids == "strings":
        user_ids = np.array([f"u{k:02d}" for k in range(30)], dtype=object)
        item_ids = np.array([f"i{k:02d}" for k in range(20)], dtype=object)
    else:
        user_ids, item_ids = np.arange(30) * 7 - 50, np.arange(20) * 1000 + 3
    params = dict(factors=5, regularization=0.1, alpha=2.0, iterations=3, random_state=4)
    model = ALS(**params, numUserBlocks=3, numItemBlocks=2, exchange=exchange).fit(
        frame(spark, matrix, user_ids, item_ids, partitions=3))
    local = local_fit(matrix, **params)
    assert model.summary.exchange == exchange
    assert list(model.user_ids) == list(user_ids) and list(model.item_ids) == list(item_ids)
    np.testing.assert_allclose(model.user_factors, local.user_factors, rtol=0, atol=TOL)
    np.testing.assert_allclose(model.item_factors, local.item_factors, rtol=0, atol=TOL)
    if exchange == "shuffle":
        user_bounds = balanced_bounds(np.diff(matrix.indptr), 3, ImplicitSolver(
            5, 0.1, 2.0, 3, "cg", np.float32).row_cost())
        got = model.summary.received_rows
        assert got[0] == received_rows(matrix, user_bounds)
        assert all(r <= min(matrix[lo:hi].nnz, 20) for r, lo, hi in
                   zip(got[0], user_bounds[:-1], user_bounds[1:]))
        assert sum(got[1]) <= matrix.nnz
        assert len(set(model.summary.lineage)) == 1  # lineage truncated on this path too
    else:
        assert model.summary.received_rows is None


def test_explicit_shuffle_exchange_equals_single_machine(spark):
    ratings = explicit_ratings(40, 25, seed=9)
    params = dict(factors=4, regularization=0.1, iterations=3)
    model = ALS(**params, implicitPrefs=False, random_state=6, numUserBlocks=3,
                exchange="shuffle").fit(frame(spark, ratings))
    local = fastals.ExplicitALS(**params, random_state=6).fit(ratings, show_progress=False)
    for name in ("user_factors", "item_factors", "user_bias", "item_bias"):
        np.testing.assert_allclose(getattr(model, name), getattr(local, name), rtol=0,
                                   atol=TOL, err_msg=name)


def test_empty_partitions_on_the_shuffle_path(spark):
    """Blocks that read no row of some block of the other side (or none at all)."""
    matrix = covered(12, 5, seed=2)
    df = frame(spark, matrix).repartition(16, "user")
    params = dict(factors=4, regularization=0.1, iterations=2, random_state=5)
    model = ALS(**params, numUserBlocks=8, numItemBlocks=5, exchange="shuffle").fit(df)
    local = local_fit(matrix, **params)
    np.testing.assert_allclose(model.user_factors, local.user_factors, rtol=0, atol=TOL)
    np.testing.assert_allclose(model.item_factors, local.item_factors, rtol=0, atol=TOL)


@pytest.mark.parametrize("exchange", ["broadcast", "shuffle"])
def test_a_task_failing_once_is_retried(spark, tmp_path, caplog, exchange):
    """A solve task that raises once (FASTALS_SPARK_FAIL_ONCE names a file the first task
    to run removes) fails its half-iteration, which is retried: the factors equal the
    fault-free fit's and nothing stays cached."""
    matrix = covered(20, 10, seed=4)
    flag = tmp_path / "fail-once"
    flag.write_text("")
    sc = spark.sparkContext
    sc.environment["FASTALS_SPARK_FAIL_ONCE"] = str(flag)
    params = dict(factors=4, regularization=0.1, iterations=2, random_state=2)
    try:
        with caplog.at_level("WARNING", logger="fastals"):
            model = ALS(**params, exchange=exchange).fit(frame(spark, matrix))
    finally:
        del sc.environment["FASTALS_SPARK_FAIL_ONCE"]
    assert not flag.exists()
    assert any("retrying once" in r.getMessage() for r in caplog.records)
    local = local_fit(matrix, **params)
    np.testing.assert_allclose(model.user_factors, local.user_factors, rtol=0, atol=TOL)
    assert not sc._jsc.getPersistentRDDs()


def test_auto_exchange_says_why(spark, caplog):
    with caplog.at_level("INFO", logger="fastals"):
        model = ALS(factors=3, iterations=1).fit(frame(spark, covered(8, 5)))
    assert model.summary.exchange == "broadcast"
    assert any("broadcast exchange: the larger factor matrix" in r.getMessage()
               for r in caplog.records)
    with pytest.raises(ValueError, match="exchange must be one of 'auto', 'broadcast', "
                                         "'shuffle', got 'gossip'"):
        ALS(exchange="gossip")


SMALL_DRIVER = r'''
import sys
import numpy as np
from pyspark.sql import SparkSession, functions as F
from fastals.spark import ALS

spark = (SparkSession.builder.master("local[2]").config("spark.driver.memory", "512m")
         .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
         .config("spark.sql.shuffle.partitions", "4").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
n_users, n_items, K = int(sys.argv[1]), 40, 32
df = spark.range(0, n_users, 1, 4).select(F.col("id").alias("user"),
                                          (F.col("id") % n_items).alias("item"),
                                          F.lit(1.0).alias("rating"))
model = ALS(factors=K, iterations=1, dtype=np.float64, random_state=0, numUserBlocks=32,
            numItemBlocks=8).fit(df)
X = model.user_factors
assert X.shape == (n_users, K) and X.nbytes > 512 << 20, X.nbytes
assert np.isfinite(X).all() and np.isfinite(model.item_factors).all()
print(model.summary.exchange, max(model.summary.received_rows[1]), X.nbytes >> 20)
'''


def test_shuffle_exchange_fits_past_the_driver_memory(tmp_path):
    """spark.driver.memory 512m and a user factor matrix of 537 MiB (2.1M users x 32
    float64 factors): exchange='auto' takes the shuffle, which never collects or broadcasts
    a factor matrix (the initial rows are drawn per block; the result comes back one block
    at a time). Each item block receives only the users of its items (here: an eighth)."""
    reason = java_missing()
    if reason:
        pytest.skip(reason)
    n_users = 2_200_000
    script = tmp_path / "small_driver.py"
    script.write_text(SMALL_DRIVER)
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable,
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, str(script), str(n_users)], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    exchange, received, megabytes = out.stdout.split()
    assert exchange == "shuffle" and int(megabytes) > 512
    assert int(received) == n_users // 8  # the users of one item block's 5 items
