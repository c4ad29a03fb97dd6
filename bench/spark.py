"""ALS on Spark: fastals.spark vs pyspark.ml.recommendation.ALS (MLlib), side by side.

    python bench/spark.py                  # 1M, 4M and 15M nnz + MovieLens 100K precision
    python bench/spark.py --quick          # 1M and 4M, fewer repeats
    python bench/spark.py --data synthetic-1m --precision-only

Both run on Spark local[2] (one JVM, 2 task slots) with the same session settings, rank 64,
implicit feedback, alpha 1, from the same Parquet file. Every measurement is a separate
process (its own JVM); the two libraries alternate. Seconds per iteration are measured the
same way for both: each process warms up on a 10% sample, then times fit with maxIter=1
and with maxIter=4, and reports (T4 - T1) / 3, so set-up (id mapping, blocking, caching)
cancels out. fastals' own per-iteration clock (its fit callback) and set-up time are
reported beside it.

Precision@10 on MovieLens 100K (seeded 80/20 split of the ratings as in bench/als.py; the
training items of a user are excluded; the same numpy evaluation for both, on factors
collected from each model), over a small grid of regularization values with everything
else equal. MLlib multiplies regParam by each row's number of ratings and fastals does not,
so the same number is not the same penalty: both libraries' best values are reported.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))  # this checkout's fastals (built in place), on the driver too
import _harness as h  # noqa: E402
DATASETS = {
    "synthetic-1m": (100_000, 50_000, 1_000_000),
    "synthetic-4m": (100_000, 50_000, 4_000_000),
    "synthetic-lastfm": (358_868, 292_385, 15_000_000),
}
RANK, ALPHA, REGULARIZATION = 64, 1.0, 0.05
PRECISION_ITERATIONS = 15
LONG = 4  # seconds per iteration = (fit with maxIter=LONG - fit with maxIter=1) / (LONG - 1)
PRECISION_GRID = (0.01, 0.05, 0.3, 1.0)
LIBS = ("fastals", "mllib")


# --- data ---------------------------------------------------------------------------------------
def matrix(name):
    from fastals.datasets import synthetic_interactions

    n_users, n_items, nnz = DATASETS[name]
    return h.cached_matrix(name, lambda: synthetic_interactions(n_users, n_items, nnz,
                                                                random_state=2026))


def parquet(name, csr=None):
    """bench/out/<name>.parquet with columns user, item (int32) and rating (float32)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = h.OUT / f"{name}.parquet"
    if not path.exists():
        coo = sp.coo_matrix(matrix(name) if csr is None else csr)
        table = pa.table({"user": coo.row.astype(np.int32), "item": coo.col.astype(np.int32),
                          "rating": coo.data.astype(np.float32)})
        h.OUT.mkdir(exist_ok=True)
        pq.write_table(table, path, row_group_size=1 << 20)
    return path


def movielens_split():
    """(train, test) CSR of MovieLens 100K, split as bench/als.py does."""
    from als import split
    from fastals.datasets import load_movielens_100k

    folder = h.movielens_path()
    if folder is None:
        raise FileNotFoundError("MovieLens 100K not found (../shared/data or FASTALS_DATA)")
    return split(load_movielens_100k(folder)[0].astype(np.float32))


# --- inside a worker process ------------------------------------------------------------------
def session():
    from pyspark.sql import SparkSession

    os.environ["PYTHONPATH"] = str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = (SparkSession.builder.master("local[2]").appName("fastals-bench")
             .config("spark.ui.enabled", "false")
             .config("spark.driver.memory", "8g")
             .config("spark.sql.shuffle.partitions", "8")
             .config("spark.ui.showConsoleProgress", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def estimator(lib, iterations, regularization, seed=0):
    if lib == "fastals":
        from fastals.spark import ALS
        return ALS(rank=RANK, maxIter=iterations, regParam=regularization, alpha=ALPHA,
                   implicitPrefs=True, seed=seed, userCol="user", itemCol="item",
                   ratingCol="rating")
    from pyspark.ml.recommendation import ALS
    return ALS(rank=RANK, maxIter=iterations, regParam=regularization, alpha=ALPHA,
               implicitPrefs=True, seed=seed, userCol="user", itemCol="item",
               ratingCol="rating")


def factors(lib, model, n_users, n_items):
    """(user factors, item factors) as dense numpy arrays indexed by the integer ids."""
    if lib == "fastals":
        U = np.zeros((n_users, RANK), np.float32)
        V = np.zeros((n_items, RANK), np.float32)
        U[model.user_ids] = model.user_factors
        V[model.item_ids] = model.item_factors
        return U, V
    out = []
    for frame, n in ((model.userFactors, n_users), (model.itemFactors, n_items)):
        F = np.zeros((n, RANK), np.float32)
        for row in frame.collect():
            F[row["id"]] = row["features"]
        out.append(F)
    return tuple(out)


def precision_at_10(U, V, train, test):
    """Share of each test user's held-out items in their top 10 (training items excluded)."""
    users = np.flatnonzero(np.diff(test.indptr))
    scores = U[users] @ V.T
    scores[train[users].nonzero()] = -np.inf
    top = np.argpartition(-scores, 10, axis=1)[:, :10]
    hits = total = 0
    for row, u in enumerate(users):
        relevant = test.indices[test.indptr[u]:test.indptr[u + 1]]
        hits += np.isin(top[row], relevant).sum()
        total += min(10, len(relevant))
    return hits / total


def worker(spec):
    spark = session()
    lib = spec["lib"]
    if spec["kind"] == "precision":
        train, test = movielens_split()
        df = spark.read.parquet(str(parquet("movielens-train", train)))
        start = time.perf_counter()
        model = estimator(lib, PRECISION_ITERATIONS, spec["reg"]).fit(df)
        seconds = time.perf_counter() - start
        U, V = factors(lib, model, *train.shape)
        h.emit({"precision": precision_at_10(U, V, train, test), "fit_seconds": seconds})
        return
    df = spark.read.parquet(str(parquet(spec["data"]))).cache()
    df.count()
    # warm up the JVM, the Python workers and the kernels on a sample (same partitions)
    warm = estimator(lib, 1, REGULARIZATION).fit(df.sample(0.1, seed=1))
    del warm
    totals, stamps, setup = {}, [], None
    for iterations in (1, LONG):
        est = estimator(lib, iterations, REGULARIZATION)
        start = time.perf_counter()
        if lib == "fastals" and iterations == LONG:
            model = est.fit(df, callback=lambda *_: stamps.append(time.perf_counter()))
            setup = model.summary.setup_seconds
        else:
            model = est.fit(df)
        totals[iterations] = time.perf_counter() - start
        if lib == "fastals":
            model.unpersist()
        del model
    result = {"seconds": (totals[LONG] - totals[1]) / (LONG - 1), "fit1": totals[1],
              f"fit{LONG}": totals[LONG]}
    if lib == "fastals":
        result["own_seconds"] = np.diff(stamps).tolist()
        result["setup"] = setup
    h.emit(result)


# --- the driver --------------------------------------------------------------------------------
def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="1M and 4M only, fewer repeats")
    parser.add_argument("--data", nargs="*", default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--precision-only", action="store_true")
    parser.add_argument("--no-precision", action="store_true")
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))

    data = args.data if args.data is not None else \
        ["synthetic-1m", "synthetic-4m"] + ([] if args.quick else ["synthetic-lastfm"])
    speed_rows, precision_rows = [], []
    if not args.precision_only:
        for name in data:
            parquet(name)  # build once, outside the timed workers
            repeats = args.repeats or (2 if args.quick or name == "synthetic-lastfm" else 3)
            specs = [{"kind": "speed", "lib": lib, "data": name} for lib in LIBS]
            print(f"{name}: {repeats} alternating runs per library", flush=True)
            results = h.alternate(Path(__file__), specs, repeats, log=print)
            nnz = matrix(name).nnz
            ours = h.median_of(results[0], "seconds")
            for lib, res in zip(LIBS, results):
                sec = h.median_of(res, "seconds")
                if sec is None:
                    err = next((r["error"] for r in res if "error" in r), "no result")
                    speed_rows.append([name, f"{nnz:,}", lib, "error: " + err[:80], "", "", "",
                                       ""])
                    continue
                own = h.median_of(res, "own_seconds")
                setup = h.median_of(res, "setup")
                speed_rows.append([
                    name, f"{nnz:,}", lib, f"{sec:.2f}",
                    "1.00" if lib == "fastals" else f"{sec / ours:.2f}",
                    f"{sec / (nnz / 1e6):.3f}", "" if own is None else f"{own:.2f}",
                    "" if setup is None else f"{setup:.1f}"])
                print("  " + " | ".join(speed_rows[-1]), flush=True)
    if not args.no_precision:
        try:
            movielens_split()
        except FileNotFoundError as exc:
            print(f"skipping precision: {exc}")
        else:
            for reg in PRECISION_GRID:
                specs = [{"kind": "precision", "lib": lib, "reg": reg} for lib in LIBS]
                results = h.alternate(Path(__file__), specs, 1, log=print)
                row = [f"{reg:g}"]
                for res in results:
                    prec = h.median_of(res, "precision")
                    sec = h.median_of(res, "fit_seconds")
                    row += ["error" if prec is None else f"{prec:.4f}",
                            "" if sec is None else f"{sec:.1f}"]
                precision_rows.append(row)
                print("  " + " | ".join(row), flush=True)

    body = [f"`python bench/spark.py{' --quick' if args.quick else ''}`: Spark local[2] "
            f"(spark.driver.memory 8g), rank {RANK}, implicit, alpha {ALPHA}, fastals with "
            "its defaults (CG, 3 steps, float32), MLlib with its defaults (exact solves, 10 "
            "blocks). Each library in its own process, alternating; medians."]
    if speed_rows:
        body.append(
            f"Seconds per iteration = (fit with maxIter={LONG} - fit with maxIter=1) / "
            f"{LONG - 1} after a "
            f"warm-up, regularization {REGULARIZATION}; `time / fastals` > 1 means fastals is "
            "faster; `s/it per M nnz` shows the growth with size; `own clock` is fastals' "
            "per-iteration callback, `setup` its id mapping + blocking.\n\n"
            + h.table(["data", "nnz", "library", "s/iteration", "time / fastals",
                       "s/it per M nnz", "own clock s/it", "setup s"], speed_rows))
    if precision_rows:
        body.append(
            f"Precision@10 on MovieLens 100K (80/20 split), {PRECISION_ITERATIONS} iterations, "
            "same rank, alpha and seed; regularization is fastals' `regularization` and "
            "MLlib's `regParam` (MLlib scales it by each row's count).\n\n"
            + h.table(["regularization", "fastals P@10", "fastals fit s", "MLlib P@10",
                       "MLlib fit s"], precision_rows))
    h.write_section("ALS on Spark (bench/spark.py)", "\n\n".join(body))
    print(f"wrote {h.RESULTS}")


if __name__ == "__main__":
    main()
