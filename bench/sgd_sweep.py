"""The SGD kernel on its own: sweep throughput, threads, and where a fit's time goes.

    python bench/sgd_sweep.py            # everything below (about a minute on 2 cores)
    python bench/sgd_sweep.py --quick    # MovieLens 100K parts only

Complements bench/explicit.py (whole fits against Surprise) with the figures behind them,
each measured in its own process, alternating:

* sweep: `sgd_epoch` alone on MovieLens 100K u1 (80,000 ratings, stratified order, G=4),
  float32, for several K, on 1 and 2 threads, with the factor rows padded with zeros to whole
  cache lines as a fit has them (K=100: 112 floats), and for K=100 also without (400-byte
  rows, which straddle cache lines): million updates per second, median of 5 x 50 epochs.
  Without --quick, also on the 20M-sized training set (G=16, 2 threads, padded or not). The
  numpy reference's epoch (`fastals.reference.sgd_epoch`, a Python loop) is the reference row.
* small fits: a whole MovieLens 100K fit (K=100, 20 epochs) on 1 thread (the default there)
  and forced onto 2, on an idle machine and beside 1 busy process: why fits with fewer than
  MIN_RATINGS_PER_THREAD ratings per thread stay on one thread.
* breakdown: cProfile of one fit on the MovieLens-20M-sized training set (18M ratings, 2
  threads), split into sweeps, per-epoch shuffles, input checks and initial factors; and the
  per-item count of that set, fastals' kernel against numpy's bincount.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # this checkout's fastals
import _harness as h  # noqa: E402
import explicit  # noqa: E402  (its workloads and SGD settings)

SWEEP_K = (96, 100, 112, 128)
SWEEP_EPOCHS, SWEEP_REPEATS = 50, 5


def _busy(stop):
    while not stop.is_set():
        pass


def worker(spec):
    import fastals
    import fastals.models.sgd as sgd_model
    from fastals._kernels.dispatch import kernels
    train, _ = explicit.load(spec["data"])
    if spec["kind"] == "sweep":
        R = train.tocsr().astype(np.float32)
        rng = np.random.default_rng(0)
        counts = (np.diff(R.indptr), np.bincount(R.indices, minlength=R.shape[1]))
        K, f = spec["K"], np.float32
        G = sgd_model.auto_strata(*R.shape, K, f)  # as a fit: 4 on MovieLens, 16 on 20M
        order = sgd_model.RatingOrder(rng, R, counts, G, spec["threads"])
        order.draw()
        # rows padded to whole cache lines as in a fit, or numpy's own (K=100: 400 bytes)
        P, Q = sgd_model.initial_factors(rng, *R.shape, K, 0.1, f)
        if not spec["padded"]:
            P, Q = P[:, :K].copy(), Q[:, :K].copy()
        b_user, b_item = np.zeros(R.shape[0], f), np.zeros(R.shape[1], f)
        args = (f(3.5), f(0.0025), f(0.0025), f(0.04), f(0.04), True, spec["threads"],
                order.block_start, order.schedule)
        sgd = kernels("_sgd")
        sgd.sgd_epoch(*order.triples, P, Q, b_user, b_item, *args)  # warm caches
        rates = []
        epochs, repeats = (SWEEP_EPOCHS, SWEEP_REPEATS) if R.nnz < 1 << 20 else (5, 1)
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(epochs):
                sgd.sgd_epoch(*order.triples, P, Q, b_user, b_item, *args)
            rates.append(epochs * R.nnz / (time.perf_counter() - start) / 1e6)
        return {"rate": rates}
    if spec["kind"] == "reference":
        from fastals.reference import sgd_epoch
        coo = train.tocoo()
        n = 20_000
        rng = np.random.default_rng(0)
        P = rng.normal(0, 0.1, (train.shape[0], 100))
        Q = rng.normal(0, 0.1, (train.shape[1], 100))
        start = time.perf_counter()
        sgd_epoch(coo.row[:n], coo.col[:n], coo.data[:n].astype(np.float64), P, Q,
                  np.zeros(train.shape[0]), np.zeros(train.shape[1]), 3.5, 0.0025, 0.04)
        return {"rate": [n / (time.perf_counter() - start) / 1e6]}
    if spec["kind"] == "fit":
        if spec["threads"] > 1:  # force the threads on this small set
            sgd_model.MIN_RATINGS_PER_THREAD = 1
        stop = multiprocessing.Event()
        hogs = [multiprocessing.Process(target=_busy, args=(stop,)) for _ in range(spec["busy"])]
        for hog in hogs:
            hog.start()
        try:
            seconds = []
            for seed in range(5):
                model = fastals.SGDMatrixFactorization(num_threads=spec["threads"],
                                                       random_state=seed, **explicit.FASTALS_SGD)
                start = time.perf_counter()
                model.fit(train, show_progress=False)
                seconds.append(time.perf_counter() - start)
        finally:
            stop.set()
            for hog in hogs:
                hog.join()
        return {"ms": [1e3 * s for s in seconds]}
    if spec["kind"] == "breakdown":
        import cProfile
        import pstats
        from fastals.models.explicit import column_counts
        R = train.tocsr()
        start = time.perf_counter()
        np.bincount(R.indices, minlength=R.shape[1])
        numpy_counts = time.perf_counter() - start
        start = time.perf_counter()
        column_counts(R)
        kernel_counts = time.perf_counter() - start
        model = fastals.SGDMatrixFactorization(num_threads=2, random_state=0,
                                               **explicit.FASTALS_SGD)
        profile = cProfile.Profile()
        start = time.perf_counter()
        profile.runcall(model.fit, train, show_progress=False)
        total = time.perf_counter() - start
        stats = pstats.Stats(profile).stats
        parts = {}
        for (_, _, function), (_, _, tottime, cumtime, _) in stats.items():
            if function in ("epoch", "draw", "_training_ratings", "initial_factors"):
                parts[function] = cumtime
        return {"fit": total, "sweeps": parts["epoch"] - parts["draw"],
                "shuffles": parts["draw"], "checks": parts["_training_ratings"],
                "initial": parts["initial_factors"], "bincount": numpy_counts,
                "column_counts": kernel_counts}
    raise ValueError(spec["kind"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="MovieLens 100K parts only")
    args = parser.parse_args()
    if args.worker:
        h.emit(worker(json.loads(args.worker)))
        return
    if h.movielens_path() is None:
        sys.exit("MovieLens 100K not found: put it at ../shared/data/ml-100k or set FASTALS_DATA")
    script = Path(__file__)
    parts = []

    specs = [{"kind": "sweep", "data": "ml100k", "K": K, "threads": t, "padded": True}
             for K in SWEEP_K for t in (1, 2)]
    specs += [{"kind": "sweep", "data": "ml100k", "K": 100, "threads": t, "padded": False}
              for t in (1, 2)] + [{"kind": "reference", "data": "ml100k"}]
    if not args.quick:
        specs += [{"kind": "sweep", "data": "syn20m", "K": 100, "threads": 2, "padded": padded}
                  for padded in (True, False)]
    results = h.alternate(script, specs, 3, log=None)
    rows = []
    for spec, res in zip(specs, results):
        rates = [v for r in res for v in r.get("rate", [])]
        name = ("fastals.reference (numpy), K=100" if spec["kind"] == "reference" else
                f"sgd_epoch K={spec['K']}, {spec['threads']} thread(s)"
                + ("" if spec["padded"] else ", rows not padded"))
        data = "MovieLens 100K" if spec["data"] == "ml100k" else "20M-sized (18M ratings)"
        rows.append([data, name, f"{statistics.median(rates):.1f}" if rates else "error",
                     f"{min(rates):.1f}-{max(rates):.1f}" if rates else ""])
    parts.append("Sweeps (float32, G as a fit chooses it: 4 on MovieLens 100K u1, 16 on the "
                 "20M-sized set; factor rows padded with zeros to whole cache lines as in a fit, "
                 "or not), million updates per second; MovieLens: 3 runs x 5 x 50 epochs, "
                 "20M-sized: 3 runs x 5 epochs:\n\n"
                 + h.table(["data", "kernel", "median", "range"], rows))

    specs = [{"kind": "fit", "data": "ml100k", "threads": t, "busy": b}
             for b in (0, 1) for t in (1, 2)]
    results = h.alternate(script, specs, 3, log=None)
    rows = []
    for spec, res in zip(specs, results):
        ms = [v for r in res for v in r.get("ms", [])]
        rows.append([spec["threads"], spec["busy"],
                     f"{statistics.median(ms):.1f}" if ms else "error",
                     f"{min(ms):.1f}-{max(ms):.1f}" if ms else ""])
    parts.append("Whole MovieLens 100K fits (K=100, 20 epochs), milliseconds, 3 runs x 5 "
                 "fits, beside 0 or 1 busy processes:\n\n"
                 + h.table(["threads", "busy processes", "median ms", "range"], rows))

    if not args.quick:
        result = h.run_worker(script, {"kind": "breakdown", "data": "syn20m"})
        if "error" in result:
            parts.append(f"20M-sized breakdown failed: {result['error'][:200]}")
        else:
            rows = [[name, f"{result[key]:.3f}"] for name, key in (
                ("whole fit (under cProfile)", "fit"), ("sweeps (20 epochs)", "sweeps"),
                ("per-epoch shuffles", "shuffles"), ("input checks and statistics", "checks"),
                ("initial factors", "initial"), ("item counts: numpy bincount", "bincount"),
                ("item counts: fastals column_counts", "column_counts"))]
            parts.append("One fit on the 20M-sized training set (18M ratings, 2 threads), "
                         "seconds:\n\n" + h.table(["part", "seconds"], rows))
    body = (f"`python bench/sgd_sweep.py{' --quick' if args.quick else ''}`: each "
            "measurement in its own process, alternating.\n\n" + "\n\n".join(parts))
    h.write_section("SGD kernel (bench/sgd_sweep.py)", body)
    print(f"wrote {h.RESULTS}")


if __name__ == "__main__":
    main()
