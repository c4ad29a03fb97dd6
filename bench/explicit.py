"""Explicit ratings: fastals SGD vs scikit-surprise SVD, fastals ExplicitALS vs Spark MLlib ALS.

    python bench/explicit.py                 # everything available, 3 alternating runs each
    python bench/explicit.py --quick         # MovieLens 100K only, 2 runs (a smoke test)
    python bench/explicit.py --runs 5 --skip-spark --skip-synthetic

Workloads
---------
* MovieLens 100K, canonical split u1 (80,000 training ratings, 20,000 test), read from
  ``../shared/data/ml-100k`` (or $FASTALS_DATA); never copied.
* A synthetic MovieLens-20M-sized matrix (138,493 x 26,744, 20M ratings from
  :func:`fastals.datasets.synthetic_ratings`), split 90/10 at random. Surprise keeps every
  rating in Python dicts and cannot hold 18M of them in reasonable time and memory, so it
  trains on a uniform 1M-rating subset of the training set (fastals is run on that subset
  too, for the like-for-like RMSE, and on the full set for its own throughput).

SGD settings are identical updates on both sides: factors=100, epochs=20, Surprise
``lr_all=0.005, reg_all=0.02, init_std_dev=0.1``, which in fastals' notation (the step on
e^2, see fastals.models.sgd) is ``learning_rate=0.0025, regularization=0.04, init_std=0.1``,
with no learning-rate decay. Throughput = epochs x training ratings / fit seconds (fastals
also reshuffles every epoch; Surprise does not shuffle).

ALS settings are Spark's semantics on both sides: rank, regParam=lambda with ALS-WR
scaling (fastals ``weighted_regularization=True``), no biases, ``local[2]`` for Spark and
``num_threads=2`` for fastals. Seconds per iteration = (fit(b iterations) - fit(a)) / (b - a),
which removes each side's fixed costs (Spark's job setup, fastals' CSR transposition).

Every measurement runs in its own subprocess; peers alternate run by run; tables show
medians. Results go to bench/RESULTS.md under their own heading.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / "out" / "explicit"
RESULTS = HERE / "RESULTS.md"
HEADING = "## Explicit ratings: SGD vs Surprise SVD, ExplicitALS vs Spark MLlib ALS"

SGD_EPOCHS = 20
SGD_FACTORS = 100
# one update rule, two notations (fastals steps on e^2, Surprise on e^2 / 2)
FASTALS_SGD = dict(factors=SGD_FACTORS, epochs=SGD_EPOCHS, learning_rate=0.0025,
                   regularization=0.04, init_std=0.1, lr_decay=1.0)
SURPRISE_SVD = dict(n_factors=SGD_FACTORS, n_epochs=SGD_EPOCHS, lr_all=0.005, reg_all=0.02,
                    init_std_dev=0.1, biased=True)
ALS_RANK, ALS_REG = 10, 0.1


# --- data ------------------------------------------------------------------------------------------
def movielens_folder():
    for folder in ([Path(os.environ["FASTALS_DATA"]) / "ml-100k"] if "FASTALS_DATA" in os.environ
                   else []) + [ROOT.parent / "shared" / "data" / "ml-100k"]:
        if (folder / "u1.base").exists():
            return folder
    return None


def dataset_paths(name):
    """(train.npz, test.npz) of a workload, creating the cached files on first use."""
    CACHE.mkdir(parents=True, exist_ok=True)
    train, test = CACHE / f"{name}-train.npz", CACHE / f"{name}-test.npz"
    if train.exists() and test.exists():
        return train, test
    sys.path.insert(0, str(ROOT))
    from fastals.datasets import SIZES, load_movielens_100k_split, synthetic_ratings
    if name == "ml100k":
        tr, te = load_movielens_100k_split("u1", movielens_folder())
    elif name == "syn20m":
        print("generating the synthetic MovieLens-20M-sized ratings (once)...", flush=True)
        ratings = synthetic_ratings(*SIZES["movielens-20m"], random_state=0).tocoo()
        held_out = np.random.default_rng(1).random(ratings.nnz) < 0.1
        tr, te = (sp.csr_matrix((ratings.data[m], (ratings.row[m], ratings.col[m])),
                                shape=ratings.shape) for m in (~held_out, held_out))
    elif name == "syn20m-1m":
        full_train, full_test = (sp.load_npz(p).tocoo() for p in dataset_paths("syn20m"))
        rng = np.random.default_rng(2)
        keep = rng.choice(full_train.nnz, 1_000_000, replace=False)
        tr = sp.csr_matrix((full_train.data[keep], (full_train.row[keep], full_train.col[keep])),
                           shape=full_train.shape)
        keep = rng.choice(full_test.nnz, 100_000, replace=False)
        te = sp.csr_matrix((full_test.data[keep], (full_test.row[keep], full_test.col[keep])),
                           shape=full_test.shape)
    else:
        raise ValueError(name)
    sp.save_npz(train, sp.csr_matrix(tr), compressed=False)
    sp.save_npz(test, sp.csr_matrix(te), compressed=False)
    return train, test


def triples(path):
    coo = sp.load_npz(path).tocoo()
    return coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data.astype(np.float64)


# --- workers (each in its own process) ----------------------------------------------------------
def worker_fastals_sgd(spec):
    import fastals
    train, test = (sp.load_npz(p) for p in dataset_paths(spec["data"]))
    model = fastals.SGDMatrixFactorization(num_threads=spec["threads"], random_state=0,
                                           **spec["params"])
    start = time.perf_counter()
    model.fit(train, show_progress=False)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rmse": model.rmse(test),
            "ratings_per_s": model.epochs * train.nnz / seconds}


def worker_surprise_svd(spec):
    import pandas as pd
    from surprise import SVD, Dataset, Reader
    train_path, test_path = dataset_paths(spec["data"])
    u, i, r = triples(train_path)
    frame = pd.DataFrame({"u": u, "i": i, "r": r})
    trainset = Dataset.load_from_df(frame, Reader(rating_scale=(1, 5))).build_full_trainset()
    algo = SVD(random_state=0, **spec["params"])
    start = time.perf_counter()
    algo.fit(trainset)
    seconds = time.perf_counter() - start
    tu, ti, tr = triples(test_path)
    predictions = np.array([algo.predict(a, b).est for a, b in zip(tu.tolist(), ti.tolist())])
    return {"seconds": seconds, "rmse": float(np.sqrt(np.mean((predictions - tr) ** 2))),
            "ratings_per_s": spec["params"]["n_epochs"] * len(r) / seconds}


def worker_fastals_als(spec):
    import fastals
    train, test = (sp.load_npz(p) for p in dataset_paths(spec["data"]))
    seconds = {}
    for iterations in spec["iterations"]:
        model = fastals.ExplicitALS(factors=ALS_RANK, regularization=ALS_REG, biases=False,
                                    weighted_regularization=True, iterations=iterations,
                                    num_threads=spec["threads"], random_state=0)
        start = time.perf_counter()
        model.fit(train, show_progress=False)
        seconds[iterations] = time.perf_counter() - start
    a, b = spec["iterations"]
    coo = test.tocoo()
    predictions, known = model.predict(coo.row, coo.col, return_known=True)
    error = predictions[known] - coo.data[known]  # the pairs Spark can predict too
    return {"per_iteration": (seconds[b] - seconds[a]) / (b - a), "fit_seconds": seconds[b],
            "rmse": float(np.sqrt(np.mean(error ** 2)))}


def worker_spark_als(spec):
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # Spark's tasks are the parallelism
    import pandas as pd
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import SparkSession
    spark = (SparkSession.builder.master("local[2]").config("spark.driver.memory", "8g")
             .config("spark.ui.enabled", "false")
             .config("spark.sql.execution.arrow.pyspark.enabled", "true").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    train_path, test_path = dataset_paths(spec["data"])
    u, i, r = triples(train_path)
    frame = spark.createDataFrame(pd.DataFrame({"user": u.astype(np.int32),
                                                "item": i.astype(np.int32),
                                                "rating": r.astype(np.float32)})).cache()
    frame.count()
    seconds, model = {}, None
    for iterations in spec["iterations"]:
        als = ALS(rank=ALS_RANK, regParam=ALS_REG, maxIter=iterations, userCol="user",
                  itemCol="item", ratingCol="rating", seed=0, coldStartStrategy="drop")
        start = time.perf_counter()
        model = als.fit(frame)
        model.itemFactors.count()
        model.userFactors.count()
        seconds[iterations] = time.perf_counter() - start
    tu, ti, tr = triples(test_path)
    test = spark.createDataFrame(pd.DataFrame({"user": tu.astype(np.int32),
                                               "item": ti.astype(np.int32),
                                               "rating": tr.astype(np.float32)}))
    scored = model.transform(test).select("rating", "prediction").toPandas()
    prediction = np.clip(scored["prediction"].to_numpy(), 1, 5)  # as fastals clips
    spark.stop()
    a, b = spec["iterations"]
    return {"per_iteration": (seconds[b] - seconds[a]) / (b - a), "fit_seconds": seconds[b],
            "rmse": float(np.sqrt(np.mean((prediction - scored["rating"].to_numpy()) ** 2)))}


WORKERS = {"fastals-sgd": worker_fastals_sgd, "surprise-svd": worker_surprise_svd,
           "fastals-als": worker_fastals_als, "spark-als": worker_spark_als}


def run_worker(kind, spec, timeout):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, __file__, "--worker", kind, json.dumps(spec)],
                          capture_output=True, text=True, env=env, timeout=timeout)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{kind} failed:\n{proc.stderr[-3000:]}")


# --- orchestration -------------------------------------------------------------------------------
def alternate(jobs, runs, timeout):
    """Run every (label, kind, spec) job `runs` times, alternating; returns label -> results."""
    results = {label: [] for label, _, _ in jobs}
    for run in range(runs):
        for label, kind, spec in (jobs if run % 2 == 0 else jobs[::-1]):
            result = run_worker(kind, spec, timeout)
            results[label].append(result)
            print(f"  run {run + 1}/{runs} {label}: "
                  + ", ".join(f"{k}={v:.4g}" for k, v in result.items()), flush=True)
    return results


def median(results, key):
    return statistics.median(r[key] for r in results)


def available(module):
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def machine_state():
    load = os.getloadavg()
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    sys.path.insert(0, str(ROOT))
    from fastals._kernels.dispatch import available_isas
    versions = []
    for module in ("surprise", "pyspark"):
        if available(module):
            versions.append(f"{module} {__import__(module).__version__}")
    return (f"{os.cpu_count()} CPUs ({cpu}), load average {load[0]:.1f}/{load[1]:.1f}/"
            f"{load[2]:.1f} at the start (the machine is shared), Python "
            f"{platform.python_version()}, fastals kernels {available_isas('_sgd')[0]}, "
            + ", ".join(versions))


def sgd_section(args, lines):
    if not available("surprise"):
        lines.append("scikit-surprise is not installed: SGD comparison skipped.\n")
        return
    lines += ["### SGD: fastals SGDMatrixFactorization vs Surprise SVD",
              "",
              f"factors={SGD_FACTORS}, epochs={SGD_EPOCHS}, identical updates (Surprise "
              "lr_all=0.005, reg_all=0.02 = fastals learning_rate=0.0025, "
              "regularization=0.04), fastals num_threads=2. Medians of "
              f"{args.runs} alternating runs.", "",
              "| data (training ratings) | model | fit s | M ratings/s | test RMSE | "
              "throughput vs Surprise |",
              "|---|---|---:|---:|---:|---:|"]
    workloads = [("ml100k", "MovieLens 100K u1 (80,000)", True)]
    if not args.skip_synthetic:
        workloads.append(("syn20m-1m", "synthetic 20M-sized, 1M subset", True))
        workloads.append(("syn20m", "synthetic 20M-sized, full (18M)", False))
    surprise_rate = None
    for data, title, with_surprise in workloads:
        print(f"SGD on {title}", flush=True)
        jobs = [("fastals", "fastals-sgd", {"data": data, "threads": 2, "params": FASTALS_SGD})]
        if with_surprise:
            jobs.append(("surprise", "surprise-svd", {"data": data, "params": SURPRISE_SVD}))
        runs = args.runs if data != "syn20m" else max(1, min(args.runs, 3))
        results = alternate(jobs, runs, args.timeout)
        if with_surprise:
            surprise_rate = median(results["surprise"], "ratings_per_s")
        for label, name in (("fastals", "fastals SGD (2 threads)"), ("surprise", "Surprise SVD")):
            if label not in results:
                continue
            rate = median(results[label], "ratings_per_s")
            ratio = f"**{rate / surprise_rate:.1f}x**" if label == "fastals" and surprise_rate \
                else ("1x" if label == "surprise" else "")
            if data == "syn20m":
                ratio = f"{rate / surprise_rate:.1f}x (vs Surprise on the 1M subset)" \
                    if surprise_rate else ""
            lines.append(f"| {title} | {name} | {median(results[label], 'seconds'):.2f} | "
                         f"{rate / 1e6:.2f} | {median(results[label], 'rmse'):.4f} | {ratio} |")
    lines.append("")


def als_section(args, lines):
    if not available("pyspark"):
        lines.append("pyspark is not installed: ALS comparison skipped.\n")
        return
    lines += ["### ALS: fastals ExplicitALS vs Spark MLlib ALS (local[2])", "",
              f"rank={ALS_RANK}, regParam={ALS_REG} with Spark's ALS-WR scaling on both sides, "
              "no biases; seconds per iteration from fits of two lengths. Medians of "
              f"{args.runs} alternating runs.", "",
              "| data (training ratings) | model | s / iteration | fit s | test RMSE | "
              "speed-up per iteration |", "|---|---|---:|---:|---:|---:|"]
    workloads = [("ml100k", "MovieLens 100K u1 (80,000)", (2, 7))]
    if not args.skip_synthetic:
        workloads.append(("syn20m", "synthetic 20M-sized, full (18M)", (1, 3)))
    for data, title, iterations in workloads:
        print(f"ALS on {title}", flush=True)
        jobs = [("fastals", "fastals-als", {"data": data, "threads": 2,
                                            "iterations": list(iterations)}),
                ("spark", "spark-als", {"data": data, "iterations": list(iterations)})]
        runs = args.runs if data == "ml100k" else max(1, min(args.runs, 3))
        results = alternate(jobs, runs, args.timeout)
        spark = median(results["spark"], "per_iteration")
        for label, name in (("fastals", "fastals ExplicitALS (2 threads)"),
                            ("spark", "Spark MLlib ALS local[2]")):
            per = median(results[label], "per_iteration")
            ratio = f"**{spark / per:.1f}x**" if label == "fastals" else "1x"
            lines.append(f"| {title} | {name} | {per:.3f} | "
                         f"{median(results[label], 'fit_seconds'):.2f} | "
                         f"{median(results[label], 'rmse'):.4f} | {ratio} |")
    lines.append("")


def write_results(lines):
    section = "\n".join([HEADING, ""] + lines).rstrip() + "\n"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if HEADING in text:
        start = text.index(HEADING)
        nxt = text.find("\n## ", start + len(HEADING))
        text = text[:start] + section + (text[nxt + 1:] if nxt >= 0 else "")
    else:
        text = text.rstrip() + "\n\n" + section
    RESULTS.write_text(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="MovieLens 100K only, 2 runs")
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument("--skip-sgd", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--no-write", action="store_true", help="print, do not edit RESULTS.md")
    args = parser.parse_args()
    if args.worker:
        kind, spec = args.worker
        print("RESULT " + json.dumps(WORKERS[kind](json.loads(spec))), flush=True)
        return
    if args.quick:
        args.runs, args.skip_synthetic = 2, True
    if movielens_folder() is None:
        sys.exit("MovieLens 100K not found: put it at ../shared/data/ml-100k or set FASTALS_DATA")
    lines = [f"Machine: {machine_state()}.", ""]
    if not args.skip_sgd:
        sgd_section(args, lines)
    if not args.skip_spark:
        als_section(args, lines)
    lines.append(f"Load average at the end: {'/'.join(f'{v:.1f}' for v in os.getloadavg())}.")
    print("\n".join(lines))
    if not args.no_write:
        write_results(lines)
        print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
