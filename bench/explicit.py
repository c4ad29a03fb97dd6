"""Explicit ratings: fastals SGD vs scikit-surprise SVD, fastals ExplicitALS vs Spark MLlib ALS.

    python bench/explicit.py                 # everything available, 3 alternating runs each
    python bench/explicit.py --quick         # MovieLens 100K only, 2 runs (a smoke test)
    python bench/explicit.py --runs 5 --skip-spark --skip-synthetic

Workloads
---------
* MovieLens 100K, canonical split u1 (80,000 training ratings, 20,000 test), read from
  ``../shared/data/ml-100k`` (or $FASTALS_DATA); never copied.
* A synthetic MovieLens-20M-sized matrix (138,493 x 26,744, 20M ratings from
  :func:`fastals.datasets.synthetic_ratings`), split 90/10 at random, and a uniform
  1M-rating subset of it. Both libraries train on both. Surprise keeps every rating in Python
  dicts: on the full 18M ratings a run takes about 2.5 minutes and 7 GB (``--surprise-subset``
  leaves it out there and compares with its subset throughput instead, as stated in the
  table).

SGD settings are identical updates on both sides: factors=100, epochs=20, Surprise
``lr_all=0.005, reg_all=0.02, init_std_dev=0.1``, which in fastals' notation (the step on
e^2, see fastals.models.sgd) is ``learning_rate=0.0025, regularization=0.04, init_std=0.1``,
with no learning-rate decay. Throughput = epochs x training ratings / fit seconds (fastals
also reshuffles every epoch; Surprise does not shuffle).

ALS settings are Spark's semantics on both sides: rank, regParam=lambda with ALS-WR
scaling (fastals ``weighted_regularization=True``), no biases, ``local[2]`` for Spark and
``num_threads=2`` for fastals. Seconds per iteration = (fit(b iterations) - fit(a)) / (b - a),
which removes each side's fixed costs (Spark's job setup, fastals' CSR transposition),
after an untimed first fit that warms up the JVM.

Every measurement runs in its own process (bench/_harness.py); peers alternate run by
run; tables show medians. Results go to bench/RESULTS.md under their own heading.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # this checkout's fastals
import _harness as h  # noqa: E402

TITLE = "Explicit ratings: SGD vs Surprise SVD, ExplicitALS vs Spark MLlib ALS (bench/explicit.py)"
SGD_EPOCHS = 20
SGD_FACTORS = 100
# one update rule, two notations (fastals steps on e^2, Surprise on e^2 / 2)
FASTALS_SGD = dict(factors=SGD_FACTORS, epochs=SGD_EPOCHS, learning_rate=0.0025,
                   regularization=0.04, init_std=0.1, lr_decay=1.0)
SURPRISE_SVD = dict(n_factors=SGD_FACTORS, n_epochs=SGD_EPOCHS, lr_all=0.005, reg_all=0.02,
                    init_std_dev=0.1, biased=True)
ALS_RANK, ALS_REG = 10, 0.1
SUBSET_TRAIN, SUBSET_TEST = 1_000_000, 100_000


# --- data ------------------------------------------------------------------------------------------
def split_20m():
    """(train, test): the synthetic MovieLens-20M-sized ratings, 10% held out at random."""
    def make(part):
        def build():
            from fastals.datasets import SIZES, synthetic_ratings
            ratings = h.cached_matrix("explicit-syn20m", lambda: synthetic_ratings(
                *SIZES["movielens-20m"], random_state=0)).tocoo()
            held_out = np.random.default_rng(1).random(ratings.nnz) < 0.1
            mask = held_out if part == "test" else ~held_out
            return sp.csr_matrix((ratings.data[mask], (ratings.row[mask], ratings.col[mask])),
                                 shape=ratings.shape)
        return build
    return tuple(h.cached_matrix(f"explicit-syn20m-{part}", make(part))
                 for part in ("train", "test"))


def subset(matrix, size, seed):
    coo = matrix.tocoo()
    keep = np.random.default_rng(seed).choice(coo.nnz, size, replace=False)
    return sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=coo.shape)


def load(name):
    """(train, test) CSR matrices of a workload."""
    if name == "ml100k":
        from fastals.datasets import load_movielens_100k_split
        return load_movielens_100k_split("u1", h.movielens_path())
    if name == "syn20m":
        return split_20m()
    if name == "syn20m-1m":
        return tuple(h.cached_matrix(f"explicit-syn20m-1m-{part}",
                                     lambda k=k, n=n: subset(split_20m()[k], n, seed=2 + k))
                     for k, (part, n) in enumerate((("train", SUBSET_TRAIN),
                                                    ("test", SUBSET_TEST))))
    raise ValueError(name)


def triples(matrix):
    coo = matrix.tocoo()
    return coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data.astype(np.float64)


# --- workers (each in its own process) ----------------------------------------------------------
def worker_fastals_sgd(spec):
    import fastals
    train, test = load(spec["data"])
    model = fastals.SGDMatrixFactorization(num_threads=spec["threads"],
                                           random_state=spec["seed"], **spec["params"])
    start = time.perf_counter()
    model.fit(train, show_progress=False)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rmse": model.rmse(test),
            "ratings_per_s": model.epochs * train.nnz / seconds}


def worker_surprise_svd(spec):
    import pandas as pd
    from surprise import SVD, Dataset, Reader
    train, test = load(spec["data"])
    u, i, r = triples(train)
    frame = pd.DataFrame({"u": u, "i": i, "r": r})
    trainset = Dataset.load_from_df(frame, Reader(rating_scale=(1, 5))).build_full_trainset()
    algo = SVD(random_state=spec["seed"], **spec["params"])
    start = time.perf_counter()
    algo.fit(trainset)
    seconds = time.perf_counter() - start
    tu, ti, tr = triples(test)
    predictions = np.array([algo.predict(a, b).est for a, b in zip(tu.tolist(), ti.tolist())])
    from fastals.evaluation import rmse  # after the timed fit: Surprise's process, fastals' metric
    return {"seconds": seconds, "rmse": rmse(tr, predictions),
            "ratings_per_s": spec["params"]["n_epochs"] * len(r) / seconds}


def worker_fastals_als(spec):
    import fastals
    train, test = load(spec["data"])
    seconds = {}
    for iterations in [1] + spec["iterations"]:  # as for Spark, a first fit warms up
        model = fastals.ExplicitALS(factors=ALS_RANK, regularization=ALS_REG, biases=False,
                                    weighted_regularization=True, iterations=iterations,
                                    num_threads=spec["threads"], random_state=spec["seed"])
        start = time.perf_counter()
        model.fit(train, show_progress=False)
        seconds[iterations] = time.perf_counter() - start
    a, b = spec["iterations"]
    coo = test.tocoo()
    predictions, known = model.predict(coo.row, coo.col, return_known=True)
    from fastals.evaluation import rmse
    return {"per_iteration": (seconds[b] - seconds[a]) / (b - a), "fit_seconds": seconds[b],
            "rmse": rmse(coo.data[known], predictions[known])}  # the pairs Spark predicts too


def worker_spark_als(spec):
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # Spark's tasks are the parallelism
    import pandas as pd
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import SparkSession
    spark = (SparkSession.builder.master("local[2]").config("spark.driver.memory", "8g")
             .config("spark.ui.enabled", "false")
             .config("spark.sql.execution.arrow.pyspark.enabled", "true").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    train, test = load(spec["data"])

    def frame(matrix):
        u, i, r = triples(matrix)
        return spark.createDataFrame(pd.DataFrame({
            "user": u.astype(np.int32), "item": i.astype(np.int32),
            "rating": r.astype(np.float32)}))

    ratings = frame(train).cache()
    ratings.count()
    seconds, model = {}, None
    for iterations in [1] + spec["iterations"]:  # the first fit warms up the JVM (not timed)
        als = ALS(rank=ALS_RANK, regParam=ALS_REG, maxIter=iterations, userCol="user",
                  itemCol="item", ratingCol="rating", seed=spec["seed"],
                  coldStartStrategy="drop")
        start = time.perf_counter()
        model = als.fit(ratings)
        model.itemFactors.count()
        model.userFactors.count()
        seconds[iterations] = time.perf_counter() - start
    scored = model.transform(frame(test)).select("rating", "prediction").toPandas()
    prediction = np.clip(scored["prediction"].to_numpy(), 1, 5)  # as fastals clips
    spark.stop()
    a, b = spec["iterations"]
    from fastals.evaluation import rmse  # after the timed fits, as for Surprise
    return {"per_iteration": (seconds[b] - seconds[a]) / (b - a), "fit_seconds": seconds[b],
            "rmse": rmse(scored["rating"].to_numpy(), prediction)}


def worker_reference_sgd(spec):
    """fastals.reference.sgd_epoch (a Python loop over the ratings): one epoch's throughput."""
    from fastals.reference import sgd_epoch
    train, _ = load(spec["data"])
    u, i, r = triples(train)
    order = np.random.default_rng(spec["seed"]).permutation(len(r))
    rng = np.random.default_rng(spec["seed"])
    P = rng.normal(0, 0.1, (train.shape[0], SGD_FACTORS))
    Q = rng.normal(0, 0.1, (train.shape[1], SGD_FACTORS))
    start = time.perf_counter()
    sgd_epoch(u[order], i[order], r[order], P, Q, np.zeros(train.shape[0]),
              np.zeros(train.shape[1]), float(r.mean()), FASTALS_SGD["learning_rate"],
              FASTALS_SGD["regularization"])
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rmse": float("nan"), "ratings_per_s": len(r) / seconds}


def worker_reference_als(spec):
    """fastals.reference.explicit_als_step (numpy, user by user): seconds per iteration."""
    from fastals.reference import explicit_als_step
    train, _ = load(spec["data"])
    Y = np.random.default_rng(spec["seed"]).normal(0, 0.1, (train.shape[1], ALS_RANK))
    start = time.perf_counter()
    X, x_bias = explicit_als_step(train, Y, np.zeros(train.shape[1]), 0.0, ALS_REG,
                                  biases=False, weighted=True)
    explicit_als_step(train.T.tocsr(), X, x_bias, 0.0, ALS_REG, biases=False, weighted=True)
    seconds = time.perf_counter() - start
    return {"per_iteration": seconds, "fit_seconds": seconds, "rmse": float("nan")}


WORKERS = {"fastals-sgd": worker_fastals_sgd, "surprise-svd": worker_surprise_svd,
           "fastals-als": worker_fastals_als, "spark-als": worker_spark_als,
           "reference-sgd": worker_reference_sgd, "reference-als": worker_reference_als}


# --- orchestration -------------------------------------------------------------------------------
def available(module):
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def measure(specs, repeats):
    """Alternating runs of every spec, run k with random_state=k on every side (so the RMSE
    medians are over seeds too); a run that fails twice stops the benchmark."""
    results = [[] for _ in specs]
    for run in range(repeats):
        order = range(len(specs)) if run % 2 == 0 else reversed(range(len(specs)))
        for k in order:
            result = h.run_worker(__file__, dict(specs[k], seed=run))
            if "error" in result:  # e.g. the JVM failing under memory pressure: once more
                print(f"  run {run + 1}/{repeats} {specs[k]['kind']} failed, retrying: "
                      f"{result['error'][:300]}", flush=True)
                result = h.run_worker(__file__, dict(specs[k], seed=run))
            print(f"  run {run + 1}/{repeats} {specs[k]['kind']} on {specs[k]['data']}: "
                  f"{result}", flush=True)
            if "error" in result:
                raise RuntimeError(f"{specs[k]['kind']} on {specs[k]['data']} failed: "
                                   f"{result['error']}")
            results[k].append(result)
    return results


def sgd_table(args):
    workloads = [("ml100k", "MovieLens 100K u1 (80,000)", True)]
    if not args.skip_synthetic:
        workloads += [("syn20m-1m", "synthetic 20M-sized: 1M-rating subset", True),
                      ("syn20m", "synthetic 20M-sized: full training set (18M)",
                       not args.surprise_subset)]
    rows, surprise_rate = [], None
    for data, title, with_surprise in workloads:
        print(f"SGD on {title}", flush=True)
        specs = [{"kind": "fastals-sgd", "data": data, "threads": 2, "params": FASTALS_SGD}]
        if with_surprise:
            specs.append({"kind": "surprise-svd", "data": data, "params": SURPRISE_SVD})
        if data == "ml100k":  # the Python-loop reference: one epoch is plenty
            specs.append({"kind": "reference-sgd", "data": data})
        results = measure(specs, args.runs if data != "syn20m" else min(args.runs, 3))
        if with_surprise:
            surprise_rate = h.median_of(results[1], "ratings_per_s")
        for spec, runs in zip(specs, results):
            rate = h.median_of(runs, "ratings_per_s")
            if spec["kind"] == "surprise-svd":
                name, ratio = "Surprise SVD", "1"
            elif spec["kind"] == "reference-sgd":
                name, ratio = "fastals.reference (numpy, 1 epoch)", f"{rate / surprise_rate:.2f}"
            else:
                name = "fastals SGD (num_threads=2)"
                ratio = f"**{rate / surprise_rate:.1f}**" + (
                    "" if with_surprise else " (vs Surprise on the 1M subset)")
            rows.append([title, name, f"{h.median_of(runs, 'seconds'):.2f}",
                         f"{rate / 1e6:.2f}", rmse_cell(runs), ratio])
    return h.table(["data (training ratings)", "model", "fit s", "M ratings/s",
                    "test RMSE (range over seeds)", "throughput / Surprise"], rows)


def rmse_cell(runs):
    """The median test RMSE, and its range over the runs' seeds (to tell a difference between
    the libraries from seed noise)."""
    rmse = h.median_of(runs, "rmse")
    if rmse != rmse:  # NaN: the reference runs are not scored
        return "-"
    values = [run["rmse"] for run in runs]
    spread = f" ({min(values):.4f}-{max(values):.4f})" if len(values) > 1 else ""
    return f"{rmse:.4f}{spread}"


def als_table(args):
    workloads = [("ml100k", "MovieLens 100K u1 (80,000)", [2, 7])]
    if not args.skip_synthetic:
        workloads.append(("syn20m", "synthetic 20M-sized: full training set (18M)", [2, 5]))
    rows = []
    for data, title, iterations in workloads:
        print(f"ALS on {title}", flush=True)
        specs = [{"kind": "fastals-als", "data": data, "threads": 2, "iterations": iterations},
                 {"kind": "spark-als", "data": data, "iterations": iterations}]
        names = ["fastals ExplicitALS (num_threads=2)", "Spark MLlib ALS local[2]"]
        if data == "ml100k":
            specs.append({"kind": "reference-als", "data": data})
            names.append("fastals.reference (numpy, 1 iteration)")
        results = measure(specs, args.runs if data == "ml100k" else min(args.runs, 3))
        spark = h.median_of(results[1], "per_iteration")
        for spec, runs, name in zip(specs, results, names):
            per = h.median_of(runs, "per_iteration")
            ratio = f"**{spark / per:.1f}**" if spec["kind"] == "fastals-als" else \
                "1" if spec["kind"] == "spark-als" else f"{spark / per:.2f}"
            rows.append([title, name, f"{per:.3f}", f"{h.median_of(runs, 'fit_seconds'):.2f}",
                         rmse_cell(runs), ratio])
    return h.table(["data (training ratings)", "model", "s / iteration", "fit s (b its)",
                    "test RMSE (range over seeds)", "speed-up / Spark"], rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=3, help="alternating runs per peer")
    parser.add_argument("--quick", action="store_true", help="MovieLens 100K only, 2 runs")
    parser.add_argument("--skip-sgd", action="store_true")
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--surprise-subset", action="store_true",
                        help="no Surprise run on the full 20M-sized set (2.5 min, 7 GB each)")
    parser.add_argument("--no-write", action="store_true", help="print, leave RESULTS.md alone")
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        h.emit(WORKERS[spec["kind"]](spec))
        return
    if args.quick:
        args.runs, args.skip_synthetic = 2, True
    if h.movielens_path() is None:
        sys.exit("MovieLens 100K not found: put it at ../shared/data/ml-100k or set FASTALS_DATA")
    load_before = os.getloadavg()
    versions = ", ".join(f"{m} {__import__(m).__version__}" for m in ("surprise", "pyspark")
                         if available(m))
    parts = [f"`python bench/explicit.py{' --quick' if args.quick else ''}`; {versions}. "
             f"Medians of {args.runs} alternating runs, each in its own process, run k seeded "
             "with k on both sides (the full 20M-sized set: at most 3 runs). The machine is "
             "shared: load average "
             f"{load_before[0]:.1f} at the start, END at the end.", ""]
    if not args.skip_sgd:
        if available("surprise"):
            parts += ["SGD, factors=100, epochs=20, the same update on both sides (Surprise "
                      "lr_all=0.005, reg_all=0.02, init_std_dev=0.1 = fastals "
                      "learning_rate=0.0025, regularization=0.04, init_std=0.1, lr_decay=1). "
                      "Throughput = epochs x training ratings / fit seconds. fastals is asked "
                      "for 2 threads and gives each at least 128K ratings per sweep, so it "
                      "trains MovieLens 100K on one.", "", sgd_table(args), ""]
        else:
            parts += ["scikit-surprise is not installed: SGD comparison skipped.", ""]
    if not args.skip_spark:
        if available("pyspark"):
            parts += [f"ALS, rank={ALS_RANK}, regParam={ALS_REG} with Spark's ALS-WR scaling on "
                      "both sides (fastals weighted_regularization=True, biases=False); "
                      "seconds per iteration = (fit(b) - fit(a)) / (b - a). RMSE on the test "
                      "pairs both can predict.", "", als_table(args), ""]
        else:
            parts += ["pyspark is not installed: ALS comparison skipped.", ""]
    body = "\n".join(parts).replace("END", f"{os.getloadavg()[0]:.1f}")
    print(body)
    if not args.no_write:
        h.write_section(TITLE, body)
        print(f"written to {h.RESULTS}")


if __name__ == "__main__":
    main()
