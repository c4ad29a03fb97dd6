"""ALS on Spark: fastals.spark vs pyspark.ml.recommendation.ALS (MLlib), side by side.

    python bench/spark.py                  # 1M, 4M, 15M nnz + MovieLens 100K precision
    python bench/spark.py --quick          # 1M and 4M, fewer repeats
    python bench/spark.py --data synthetic-1m --precision-only

Both run on Spark local[2] (one JVM, 2 task slots, spark.driver.memory 4g) with the same
session settings, rank 64, implicit feedback, alpha 1, regParam 0.05 (MLlib's meaning,
lambda times each row's count, for both), from the same Parquet file. Every measurement is
a separate process (its own JVM); the two libraries alternate. Seconds per iteration are
measured the same way for both: each process first warms up (JVM code, Python workers,
kernels, memory: two fits on a 10% sample and, unless --light, one on the full data), then
times whole fits (as a user sees them: from fit() to the factors materialized; MLlib's
userFactors counted) with maxIter=1 and with maxIter=L, and reports (T_L - T_1) / (L - 1),
so set-up (id mapping, blocking, caching) cancels out, and set-up = T_1 - that. L is 10
(the issue's whole 10-iteration fit). fastals runs both exchanges: "fastals" (the
broadcast, what exchange="auto" takes at these sizes) and "fastals-shuffle"
(exchange="shuffle", the block-to-block exchange). The 1M, 4M and first 15M matrices share one shape (100,000 x
50,000), so their times show the growth with the nonzeros alone; the Last.fm-sized one
(358,868 x 292,385, 15M) adds the rows of a real catalogue. fastals' own per-iteration clock (its fit callback) is reported
beside it, with the process tree's peak memory (driver JVM + Python processes) and the
1-minute load average at the start of each run: the 2 cores are shared with other jobs.

Precision@10 on MovieLens 100K (seeded 80/20 split of the ratings as in bench/als.py; the
training items of a user are excluded; the same evaluation, fastals.evaluation, for both on
factors collected from each model), over a small grid of regParam values with everything
else equal (both libraries scale regParam by each row's count), averaged over eight seeds
of the initial factors.
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
    "synthetic-15m": (100_000, 50_000, 15_000_000),  # the Last.fm nonzeros, the shape above
    "synthetic-lastfm": (358_868, 292_385, 15_000_000),
}
RANK, ALPHA, REGULARIZATION = 64, 1.0, 0.05
PRECISION_ITERATIONS = 15
# seconds per iteration = (fit with maxIter=L - fit with maxIter=1) / (L - 1)
LONG = {}
LONG_DEFAULT = 10
REPEATS = {"synthetic-lastfm": 3, "synthetic-15m": 2}
REPEATS_DEFAULT = 3
PRECISION_GRID = (0.01, 0.05, 0.3, 1.0)
PRECISION_SEEDS = tuple(range(8))  # P@10 is the mean over these initial factors
LIBS = ("fastals", "fastals-shuffle", "mllib")
DRIVER_MEMORY = "4g"  # the JVM heap; the machine is shared: the process tree stays < 8 GiB


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
             .config("spark.driver.memory", DRIVER_MEMORY)
             .config("spark.sql.shuffle.partitions", "8")
             .config("spark.ui.showConsoleProgress", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def estimator(lib, iterations, regularization, seed=0):
    if lib.startswith("fastals"):
        from fastals.spark import ALS
        return ALS(rank=RANK, maxIter=iterations, regParam=regularization, alpha=ALPHA,
                   implicitPrefs=True, seed=seed, userCol="user", itemCol="item",
                   ratingCol="rating",
                   exchange="shuffle" if lib == "fastals-shuffle" else "broadcast")
    from pyspark.ml.recommendation import ALS
    return ALS(rank=RANK, maxIter=iterations, regParam=regularization, alpha=ALPHA,
               implicitPrefs=True, seed=seed, userCol="user", itemCol="item",
               ratingCol="rating")


def factors(lib, model, n_users, n_items):
    """(user factors, item factors) as dense numpy arrays indexed by the integer ids."""
    if lib.startswith("fastals"):
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
    """fastals.evaluation's precision@10 (training items excluded) of the factors U, V."""
    from fastals import ImplicitALS
    from fastals.evaluation import precision_at_k

    shell = ImplicitALS(factors=RANK)
    shell.user_factors, shell.item_factors = U, V
    return precision_at_k(shell, train, test, K=10)


class PeakMemory:
    """The peak RSS of this process and its children (the driver JVM, Python workers),
    sampled every 0.2 s in a thread."""

    def __init__(self):
        import threading

        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        import psutil

        me = psutil.Process()
        while not self._stop.wait(0.2):
            total = 0
            for proc in [me] + me.children(recursive=True):
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.peak


def tree_cpu_seconds():
    """CPU seconds used so far by this process and its descendants (the driver JVM, the
    Python workers; finished workers count through their parent)."""
    import psutil

    total = 0.0
    me = psutil.Process()
    for proc in [me] + me.children(recursive=True):
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def timed_fit(lib, df, iterations, stamps=None):
    """(wall seconds, CPU seconds of the process tree) of one fit (model released
    afterwards), and the fit's summary (fastals)."""
    est = estimator(lib, iterations, REGULARIZATION)
    cpu = tree_cpu_seconds()
    start = time.perf_counter()
    if stamps is not None:
        model = est.fit(df, callback=lambda *_: stamps.append(time.perf_counter()))
    else:
        model = est.fit(df)
    if lib == "mllib":
        model.userFactors.count()
    seconds = time.perf_counter() - start
    cpu = tree_cpu_seconds() - cpu
    summary = getattr(model, "summary", None) if lib != "mllib" else None
    if lib != "mllib":
        model.unpersist()
    return seconds, cpu, summary


def worker(spec):
    load = os.getloadavg()[0]
    memory = PeakMemory()
    spark = session()
    lib = spec["lib"]
    if spec["kind"] == "precision":
        train, test = movielens_split()
        df = spark.read.parquet(str(parquet("movielens-train", train)))
        precision, seconds = [], []
        for seed in PRECISION_SEEDS:
            start = time.perf_counter()
            model = estimator(lib, PRECISION_ITERATIONS, spec["reg"], seed).fit(df)
            seconds.append(time.perf_counter() - start)
            precision.append(precision_at_10(*factors(lib, model, *train.shape), train, test))
        h.emit({"precision": float(np.mean(precision)), "precision_runs": precision,
                "fit_seconds": float(np.median(seconds)), "load": load})
        return
    df = spark.read.parquet(str(parquet(spec["data"]))).cache()
    df.count()
    long = LONG.get(spec["data"], LONG_DEFAULT)
    # warm-up: the first fits of a process pay one-off costs (JVM code compiled, Python
    # workers started, memory grown) that would otherwise land on one of the timed fits:
    # twice on a 10% sample (code paths), then once on the full data (memory)
    sample = df.sample(0.1, seed=1).cache()
    sample.count()
    for _ in range(2):
        timed_fit(lib, sample, 1)
    sample.unpersist()
    warm = None if spec.get("light") else timed_fit(lib, df, 1)[0]
    fit1, cpu1, _ = timed_fit(lib, df, 1)
    stamps = []
    fit_long, cpu_long, summary = timed_fit(lib, df, long,
                                            stamps if lib != "mllib" else None)
    result = {"seconds": (fit_long - fit1) / (long - 1),
              "setup_estimate": fit1 - (fit_long - fit1) / (long - 1),
              "cpu_seconds": (cpu_long - cpu1) / (long - 1), "fit1": fit1, "warmup": warm,
              f"fit{long}": fit_long, "load": load, "load_end": os.getloadavg()[0],
              "peak_gib": memory.stop() / 2 ** 30}
    if lib != "mllib":
        result["own_seconds"] = np.diff(stamps).tolist()
        result["setup"] = summary.setup_seconds
    h.emit(result)


# --- the driver --------------------------------------------------------------------------------
RAW = h.OUT / "spark-results.json"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="1M and 4M only, 2 repeats")
    parser.add_argument("--data", nargs="*", default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--precision-only", action="store_true")
    parser.add_argument("--no-precision", action="store_true")
    parser.add_argument("--light", action="store_true",
                        help="no warm-up fit on the full data (the sample ones only)")
    parser.add_argument("--libs", nargs="*", default=None, help=f"a subset of {LIBS}")
    parser.add_argument("--render", metavar="JSON",
                        help=f"only rewrite RESULTS.md from saved results (default {RAW})",
                        nargs="?", const=str(RAW))
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    if args.render:
        return render(json.loads(Path(args.render).read_text()))

    data = args.data if args.data is not None else \
        ["synthetic-1m", "synthetic-4m"] + ([] if args.quick else
                                            ["synthetic-15m", "synthetic-lastfm"])
    raw = {"quick": args.quick, "speed": {}, "precision": {}}
    if (args.precision_only or args.no_precision or args.data is not None) and RAW.exists():
        previous = json.loads(RAW.read_text())  # a partial run updates the saved results
        raw["speed"], raw["precision"] = previous["speed"], previous["precision"]
    if not args.precision_only:
        for name in data:
            parquet(name)  # build once, outside the timed workers
            repeats = args.repeats or (2 if args.quick else
                                       REPEATS.get(name, REPEATS_DEFAULT))
            specs = [{"kind": "speed", "lib": lib, "data": name, "light": args.light}
                     for lib in (args.libs or LIBS)]
            print(f"{name}: {repeats} alternating runs per library", flush=True)
            raw["speed"][name] = {
                "nnz": int(matrix(name).nnz), "long": LONG.get(name, LONG_DEFAULT),
                "libs": [spec["lib"] for spec in specs],
                "results": h.alternate(Path(__file__), specs, repeats, log=print)}
    if not args.no_precision:
        try:
            movielens_split()
        except FileNotFoundError as exc:
            print(f"skipping precision: {exc}")
        else:
            for reg in PRECISION_GRID:
                specs = [{"kind": "precision", "lib": lib, "reg": reg}
                         for lib in ("fastals", "mllib")]
                raw["precision"][f"{reg:g}"] = h.alternate(Path(__file__), specs, 1, log=print)
    h.OUT.mkdir(exist_ok=True)
    RAW.write_text(json.dumps(raw, indent=1))
    render(raw)


def fastals_seconds(results):
    """fastals' seconds per iteration for the ratios: the larger (slower) of the two-fit
    difference and its own per-iteration clock, both medians."""
    values = [h.median_of(results, "seconds"), h.median_of(results, "own_seconds")]
    values = [v for v in values if v is not None]
    return max(values) if values else None


def _libs(entry):
    return entry.get("libs", ["fastals", "mllib"])


def render(raw):
    speed_rows, precision_rows, notes = [], [], []
    for name, entry in raw["speed"].items():
        nnz, long = entry["nnz"], entry["long"]
        results = dict(zip(_libs(entry), entry["results"]))
        mllib = results.get("mllib", [])
        mllib_fit, mllib_sec = h.median_of(mllib, f"fit{long}"), h.median_of(mllib, "seconds")
        mllib_setup = h.median_of(mllib, "setup_estimate")
        broadcast = fastals_seconds(results.get("fastals", []))
        for lib, res in results.items():
            sec = h.median_of(res, "seconds")
            if sec is None:
                err = next((r["error"] for r in res if "error" in r), "no result")
                speed_rows.append([name, f"{nnz:,}", lib, "error: " + err[:80]] + [""] * 11)
                continue
            rated = sec if lib == "mllib" else fastals_seconds(res)
            fit_long = h.median_of(res, f"fit{long}")
            setup = h.median_of(res, "setup_estimate")
            own_setup = h.median_of(res, "setup")
            loads = [r["load"] for r in res if "load" in r]
            ours = lib != "mllib"
            speed_rows.append([
                name, f"{nnz:,}", lib, f"{h.median_of(res, 'fit1'):.1f}", f"{fit_long:.1f}",
                f"**{mllib_fit / fit_long:.1f}x**" if ours and mllib_fit else "",
                f"{rated:.2f}", f"{mllib_sec / rated:.1f}x" if ours and mllib_sec else "",
                f"{rated / broadcast:.2f}" if lib == "fastals-shuffle" and broadcast else "",
                f"{setup:.1f}" + (f" ({own_setup:.1f})" if own_setup is not None else ""),
                f"{mllib_setup / setup:.1f}x" if ours and mllib_setup and setup > 0 else "",
                f"{h.median_of(res, 'cpu_seconds'):.1f}",
                f"{h.median_of(res, 'peak_gib'):.1f}",
                f"{len(res) - sum('error' in r for r in res)} x (1, {long})",
                f"{min(loads):.1f}-{max(loads):.1f}" if loads else ""])
    for reg, results in raw["precision"].items():
        row, runs = [reg], []
        for res in results:
            runs.append([v for r in res for v in r.get("precision_runs", [])])
            sec = h.median_of(res, "fit_seconds")
            row += [f"{np.mean(runs[-1]):.4f} +- {np.std(runs[-1], ddof=1):.4f}"
                    if len(runs[-1]) > 1 else "error",
                    "" if sec is None else f"{sec:.1f}"]
        if all(len(r) > 1 for r in runs):  # fastals - MLlib and 2 standard errors of it
            error = 2 * np.sqrt(sum(np.var(r, ddof=1) / len(r) for r in runs))
            row.append(f"{np.mean(runs[0]) - np.mean(runs[1]):+.4f} +- {error:.4f}")
        precision_rows.append(row)

    body = [f"`python bench/spark.py{' --quick' if raw.get('quick') else ''}`: Spark local[2] "
            f"(spark.driver.memory {DRIVER_MEMORY}), rank {RANK}, implicit, alpha {ALPHA}, "
            f"regParam {REGULARIZATION} for both (MLlib's meaning: lambda x each row's count), "
            "fastals with its defaults (CG, 3 steps, float32), MLlib with its defaults "
            "(exact solves, 10 blocks). Each run is its own process (own JVM), the libraries "
            "alternating; medians."]
    if speed_rows:
        body.append(
            "Whole fits as a user sees them (`fit(1)`, `fit(L)`: from fit() until the factors "
            "exist; MLlib's userFactors counted), after warm-up fits on a 10% sample. "
            "`s/iteration` = (fit(L) - fit(1)) / (L - 1) (for fastals the larger of that and "
            "its own per-iteration clock); `set-up` = fit(1) - s/iteration, the same estimate "
            "for every library (in brackets fastals' own set-up clock: fit() until the first "
            "iteration starts). `shuffle / broadcast` is the shuffle path's time per iteration "
            "over the broadcast path's. `CPU s/it` counts the process tree (driver JVM + "
            "Python workers); `load` is the 1-minute load average at the start of each run "
            "(2 cores shared with other jobs).\n\n"
            + h.table(["data", "nnz", "library", "fit(1) s", "fit(L) s",
                       "MLlib / fastals fit(L)", "s/iteration", "MLlib / fastals per it",
                       "shuffle / broadcast", "set-up s", "MLlib / fastals set-up",
                       "CPU s/it", "peak GiB", "runs", "load"], speed_rows)
            + ("\n\nSummary: " + "; ".join(notes) + "." if notes else ""))
    if precision_rows:
        body.append(
            f"Precision@10 on MovieLens 100K (80/20 split), {PRECISION_ITERATIONS} iterations, "
            "same rank, alpha and regParam (both scale it by each row's count): mean +- "
            f"standard deviation over {len(PRECISION_SEEDS)} seeds of the initial factors (the "
            "two libraries draw different ones from a seed), and the difference of the means "
            "+- two standard errors (a difference inside it is no difference); fit s is the "
            "median fit time.\n\n"
            + h.table(["regParam", "fastals P@10", "fastals fit s", "MLlib P@10",
                       "MLlib fit s", "fastals - MLlib"], precision_rows))
    h.write_section("ALS on Spark (bench/spark.py)", "\n\n".join(body))
    print(f"wrote {h.RESULTS}")


if __name__ == "__main__":
    main()
