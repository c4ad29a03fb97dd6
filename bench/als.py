"""Implicit ALS: fastals vs implicit vs buffalo vs the numpy reference, side by side in one run.

    python bench/als.py            # the full grid (about half an hour on 2 cores)
    python bench/als.py --quick    # K=64 only, fewer repeats
    python bench/als.py --data synthetic-sparse   # K = 128 .. 1024 on sparse data

"synthetic-sparse" has the shape of a public check-in data set (29,858 users x 40,981 items,
810,128 interactions: about 27 per user, much sparser than the other matrices) and is
fitted at K = 128, 256, 512 and 1024 with that report's settings (CG with 3 steps,
regularization 10, alpha 20).

`buffalo` (kakao's, 2.0.6) runs on the synthetic matrices in a virtual environment of its own
under bench/out (made on first use: it pins numpy 1.24 and scipy 1.10) by
bench/_buffalo_worker.py, from a MatrixMarket copy of the matrix (its HDF5 database is built
before the timing starts); `--no-buffalo` leaves it out. Every measurement is a separate
process; peers alternate within each configuration.
Reported per configuration: median seconds per iteration (over the timed iterations of
every repeat), the ratio of each peer's time to fastals', GFLOP/s of the algorithm's
arithmetic (same count for every library), and the peak extra memory of fit relative to
input + factors. On MovieLens 100K: precision@10 on a seeded 80/20 split.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # this checkout's fastals
import _harness as h  # noqa: E402

DATASETS = {
    "movielens-100k": None,
    "synthetic-4m": (100_000, 50_000, 4_000_000),
    "synthetic-lastfm": (358_868, 292_385, 15_000_000),
    "synthetic-sparse": (29_858, 40_981, 810_128),
}
ALPHA, REGULARIZATION, CG_STEPS = 1.0, 0.05, 3
# implicit's exact solver costs K^3 / 3 per row (at K = 1024 about 25 TFLOP per iteration on
# synthetic-sparse): beyond this, fastals' exact solver is compared with its own CG instead
IMPLICIT_CHOLESKY_MAX_FACTORS = 256
# kakao's buffalo (issue 18's other peer): its own virtual environment (it pins numpy 1.24
# and scipy 1.10), input from a MatrixMarket file written once per data set (not timed)
BUFFALO_VENV = h.OUT / "venv-buffalo"
BUFFALO_WORKER = Path(__file__).resolve().parent / "_buffalo_worker.py"
# (alpha, regularization, factor counts) where a data set differs from the defaults
SETTINGS = {"synthetic-sparse": (20.0, 10.0, [128, 256, 512, 1024])}


def settings(data, quick):
    """(alpha, regularization, the factor counts) of a data set."""
    alpha, regularization, Ks = SETTINGS.get(data, (ALPHA, REGULARIZATION, [32, 64, 128]))
    return alpha, regularization, Ks[:2] if quick and data in SETTINGS else [64] if quick \
        else Ks


def load(name):
    if name == "movielens-100k":
        from fastals.datasets import load_movielens_100k
        path = h.movielens_path()
        if path is None:
            raise FileNotFoundError("MovieLens 100K not found (../shared/data or FASTALS_DATA)")
        return load_movielens_100k(path)[0]
    from fastals.datasets import synthetic_interactions
    n_users, n_items, nnz = DATASETS[name]
    return h.cached_matrix(name, lambda: synthetic_interactions(n_users, n_items, nnz,
                                                                random_state=2026))


def buffalo_python():
    """The venv's python with buffalo importable, made on first use, or None (the reason in
    bench/out/buffalo-install.log)."""
    python = BUFFALO_VENV / "bin" / "python"
    probe = [str(python), "-c", "import buffalo.algo.als"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return str(python)
    h.OUT.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(BUFFALO_VENV)], check=True)
    install = subprocess.run([str(python), "-m", "pip", "install", "buffalo==2.0.6"],
                             capture_output=True, text=True)
    if install.returncode != 0 or subprocess.run(probe, capture_output=True).returncode != 0:
        (h.OUT / "buffalo-install.log").write_text(install.stdout + install.stderr)
        return None
    return str(python)


def buffalo_input(name, matrix):
    """The MatrixMarket file of `matrix` that buffalo reads (written once per data set)."""
    import scipy.io
    path = h.OUT / f"{name}.mtx"
    if not path.exists():
        h.OUT.mkdir(exist_ok=True)
        part = h.OUT / f"{name}.part.mtx"  # renamed when complete
        scipy.io.mmwrite(str(part), matrix.astype(np.float32).tocoo())
        part.rename(path)
    return str(path)


def split(matrix, seed=42):
    """(train, test): each interaction in test with probability 0.2 (seeded)."""
    from fastals.evaluation import train_test_split
    return train_test_split(matrix, 0.2, random_state=seed)


def precision_at_10(ids, test, users):
    """fastals.evaluation's precision@10 (as implicit's) of the lists `ids` of `users`."""
    from fastals.evaluation import metrics_from_recommendations
    return metrics_from_recommendations(ids, test, users, K=10)["precision"]


def flops_per_iteration(matrix, K, solver):
    """Arithmetic of one iteration (both halves), the same for every library."""
    rows = matrix.shape[0] + matrix.shape[1]
    nnz = 2 * matrix.nnz
    if solver == "cg":
        passes = CG_STEPS + 1
        return passes * (rows * 2 * K * K + nnz * 4 * K)
    return nnz * (K * K + 2 * K) + rows * (K ** 3 / 3 + 4 * K * K)


def worker(spec):
    """Runs in its own process: fit one library on one data set; print one JSON line."""
    matrix = load(spec["data"]).astype(np.float32)
    train, test = split(matrix) if spec.get("precision") else (matrix, None)
    K, solver, lib, iterations = spec["K"], spec["solver"], spec["lib"], spec["iterations"]
    alpha, regularization, _ = settings(spec["data"], False)
    stamps = []

    def callback(*_):
        stamps.append(time.perf_counter())

    if lib == "implicit":
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits
        # implicit's confidence is its input value: give it 1 + alpha * r, as fastals uses
        data = train.copy()
        data.data = 1.0 + alpha * data.data
        model = AlternatingLeastSquares(factors=K, regularization=regularization, alpha=1.0,
                                        iterations=iterations, use_cg=solver == "cg",
                                        num_threads=spec["threads"], random_state=0)
        h.reset_peak_rss()
        before, _ = h.rss_bytes()
        with threadpool_limits(1, "blas"):
            start = time.perf_counter()
            model.fit(data, show_progress=False, callback=callback)
    elif lib in ("fastals", "fastals-cg"):
        import fastals
        data = train
        model = fastals.ImplicitALS(factors=K, regularization=regularization, alpha=alpha,
                                    weighting="none",  # the values as implicit gets them
                                    iterations=iterations,
                                    solver="cg" if lib == "fastals-cg" else solver,
                                    cg_steps=CG_STEPS,
                                    num_threads=spec["threads"], random_state=0)
        h.reset_peak_rss()
        before, _ = h.rss_bytes()
        start = time.perf_counter()
        model.fit(data, show_progress=False, callback=callback)
    else:  # the numpy reference: one iteration
        from fastals.reference import implicit_als_fit
        data = train
        rng = np.random.default_rng(0)
        X = rng.standard_normal((train.shape[0], K)) * 0.01
        Y = rng.standard_normal((train.shape[1], K)) * 0.01
        h.reset_peak_rss()
        before, _ = h.rss_bytes()
        start = time.perf_counter()
        for _ in range(iterations):
            X, Y = implicit_als_fit(train, X, Y, regularization, alpha, 1, solver, CG_STEPS)
            callback()
    _, peak = h.rss_bytes()
    per_iteration = np.diff([start] + stamps).tolist()
    result = {"seconds": per_iteration, "peak_extra": peak - before, "peak_rss": peak,
              "input_bytes": data.data.nbytes + data.indices.nbytes + data.indptr.nbytes,
              "factor_bytes": (sum(train.shape) * K * 4)}
    if test is not None and lib != "reference":
        users = np.flatnonzero(np.diff(test.indptr))
        ids, _ = model.recommend(users, data[users], N=10)
        result["precision"] = precision_at_10(ids, test, users)
    h.emit(result)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="K=64 only, fewer repeats")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--K", type=int, nargs="*",
                        help="these factor counts instead of the data set's own")
    parser.add_argument("--solver", choices=("cg", "cholesky"), help="only this solver")
    parser.add_argument("--no-buffalo", action="store_true",
                        help="leave buffalo out (no virtual environment made)")
    parser.add_argument("--data", nargs="*", default=list(DATASETS)[:3],
                        help=f"data sets (default: the first three of {', '.join(DATASETS)})")
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))

    rows, best = [], []
    buffalo = None if args.no_buffalo else buffalo_python()
    if buffalo is None and not args.no_buffalo:
        print("buffalo did not install: see bench/out/buffalo-install.log; left out")
    for data in args.data:
        try:
            matrix = load(data)
        except FileNotFoundError as exc:
            print(f"skipping {data}: {exc}")
            continue
        small = data == "movielens-100k"
        for K in args.K or settings(data, args.quick)[2]:
            for solver in [args.solver] if args.solver else ["cg", "cholesky"]:
                big = data == "synthetic-lastfm"
                libs = ["fastals", "implicit"] + (["reference"] if small else [])
                if solver == "cholesky" and K > IMPLICIT_CHOLESKY_MAX_FACTORS:
                    libs = ["fastals", "fastals-cg"]  # implicit: minutes per iteration
                elif not small and buffalo:
                    libs.append("buffalo")
                repeats = 2 if big or args.quick else 3
                iterations = 6 if small else 3 if not big else 2
                specs = [{"data": data, "K": K, "solver": solver, "lib": lib,
                          "threads": args.threads, "precision": small,
                          "iterations": 1 if lib == "reference" else iterations}
                         for lib in libs]
                for spec in specs:
                    if spec["lib"] == "buffalo":
                        alpha, regularization, _ = settings(data, False)
                        spec.update(python=buffalo, script=str(BUFFALO_WORKER),
                                    mtx=buffalo_input(data, matrix), alpha=alpha,
                                    regularization=regularization, cg_steps=CG_STEPS,
                                    input_bytes=matrix.data.nbytes + matrix.indices.nbytes
                                    + matrix.indptr.nbytes,
                                    factor_bytes=sum(matrix.shape) * K * 4)
                print(f"{data} K={K} {solver}", flush=True)
                results = h.alternate(Path(__file__), specs, repeats, log=None)
                flops = flops_per_iteration(matrix, K, solver)
                ours = h.median_of(results[0], "seconds")
                for lib, res in zip(libs, results):
                    sec = h.median_of(res, "seconds")
                    if sec is None:
                        err = next((r["error"] for r in res if "error" in r), "no result")
                        rows.append([data, K, solver, lib, "error: " + err[:60]] + [""] * 6)
                        print("  " + " | ".join(str(c) for c in rows[-1]), flush=True)
                        continue
                    peak = h.median_of(res, "peak_extra")
                    inp = res[0]["input_bytes"]
                    fac = res[0]["factor_bytes"]
                    prec = h.median_of(res, "precision")
                    theirs = (h.median_of(results[libs.index("implicit")], "peak_rss")
                              if "implicit" in libs else None)
                    mine = h.median_of(res, "peak_rss")
                    rows.append([data, K, solver, lib, f"{sec:.4f}",
                                 "1.00" if lib == "fastals" else f"{sec / ours:.2f}",
                                 f"{flops / sec / 1e9:.1f}",
                                 f"{peak / 2**20:.0f}",
                                 f"{(inp + peak) / (inp + fac):.2f}",
                                 "" if None in (mine, theirs) else f"{mine / theirs:.2f}",
                                 "" if prec is None else f"{prec:.4f}"])
                    print("  " + " | ".join(str(c) for c in rows[-1]), flush=True)
                peers = [(h.median_of(res, "seconds"), lib) for lib, res in zip(libs, results)
                         if lib in ("implicit", "buffalo")]
                peers = [(sec, lib) for sec, lib in peers if sec is not None]
                if peers and ours is not None:
                    sec, lib = min(peers)
                    best.append([data, K, solver, lib, f"{sec:.4f}", f"{ours:.4f}",
                                 f"**{sec / ours:.2f}x**"])
    header = ["data", "K", "solver", "library", "s/iteration (median)",
              "time / fastals", "GFLOP/s", "fit peak extra MiB",
              "(input+peak)/(input+factors)", "peak RSS / implicit's", "P@10"]
    command = " ".join(["python bench/als.py"] + sys.argv[1:])
    body = (f"`{command}`, {args.threads} threads, "
            f"float32, alpha={ALPHA}, regularization={REGULARIZATION} (synthetic-sparse: "
            f"{SETTINGS['synthetic-sparse'][0]}, {SETTINGS['synthetic-sparse'][1]}), "
            f"cg_steps={CG_STEPS}. "
            "Each peer in its own process, alternating; medians over repeats and timed "
            "iterations. `time / fastals` > 1 means fastals is faster. Peak memory is the "
            "RSS high-water mark during fit above the RSS before it (input already loaded).\n\n"
            + h.table(header, rows)
            + ("\n\nAgainst the best peer of each cell (the faster of `implicit` and "
               "`buffalo` 2.0.6, which runs in its own virtual environment under bench/out "
               "with its pins, reading a MatrixMarket copy of the same matrix: its CG "
               "`manual_cg` with the same steps, its exact solver `llt`; same K, alpha, "
               "regularization, iterations and threads):\n\n"
               + h.table(["data", "K", "solver", "best peer", "its s/iteration",
                          "fastals s/iteration", "best peer / fastals"], best)
               if best else ""))
    title = "Implicit ALS (bench/als.py)" if args.data == list(DATASETS)[:3] else \
        f"Implicit ALS (bench/als.py --data {' '.join(args.data)})"
    h.write_section(title, body)
    print(f"wrote {h.RESULTS}")


if __name__ == "__main__":
    main()
