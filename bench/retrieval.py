"""All-users top-N: fastals' recommend_all vs implicit's batched recommend vs the GEMM alone,
and fastals.ann's approximate index, on the same factors.

    python bench/retrieval.py                  # every user of both matrices, 3 repeats
    python bench/retrieval.py --quick          # sampled users, 1 repeat
    python bench/retrieval.py --quick --repeats 3

The matrices are bench/als.py's synthetic ones (synthetic-4m: 100,000 x 50,000, 4M
interactions; synthetic-lastfm: 358,868 x 292,385, 15M); the factors (K=64) come from 5
iterations of fastals' ImplicitALS, fitted once and cached in bench/out. Top-10 with the
already-liked items filtered, 2 threads, each peer in its own process, alternating:

* fastals: ``model.recommend_all(R, N=10, max_memory=CAP)``; its peak extra memory is the
  process's peak RSS during the call minus its RSS before;
* implicit 0.7: ``model.recommend(users, R[users], N=10)`` on an implicit ALS model holding
  the same factors (its batched top-N);
* gemm: ``X[batch] @ Y.T`` by numpy/OpenBLAS over the same users, batches of 1,000 (the
  arithmetic alone, no selection), and one 4096^3 float32 product (the machine's GEMM rate
  for square matrices): the FLOP rates the kernel is compared with;
* ann: fastals.ann.ApproximateIndex on the item factors (build time; the index is kept in
  bench/out and loaded by later runs, which report the build time and load it was built
  under), then the same users, each ef timed right after the exact recommend_all in the
  same process: recall@10 against that exact answer and the speed-up over it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # this checkout's fastals
import _harness as h  # noqa: E402

DATASETS = {"synthetic-4m": (100_000, 50_000, 4_000_000),
            "synthetic-lastfm": (358_868, 292_385, 15_000_000)}
K, N, THREADS, CAP = 64, 10, 2, "1GB"
QUICK_USERS = {"synthetic-4m": 20_000, "synthetic-lastfm": 10_000}
ANN = dict(M=32, ef_construction=200)


def matrix(name):
    from fastals.datasets import synthetic_interactions
    return h.cached_matrix(name, lambda: synthetic_interactions(*DATASETS[name],
                                                                random_state=2026))


def factors(name):
    path = h.OUT / f"retrieval-{name}-factors.npz"
    if not path.exists():
        import fastals
        model = fastals.ImplicitALS(factors=K, iterations=5, random_state=0,
                                    num_threads=THREADS).fit(matrix(name), show_progress=False)
        np.savez(path, user_factors=model.user_factors, item_factors=model.item_factors)
    f = np.load(path)
    return f["user_factors"], f["item_factors"]


def sample(name, n_users, n):
    if not n or n >= n_users:
        return np.arange(n_users)
    return np.sort(np.random.default_rng(0).choice(n_users, n, replace=False))


# --- workers ------------------------------------------------------------------------------
def worker(spec):
    from threadpoolctl import threadpool_limits
    R = matrix(spec["data"])
    X, Y = factors(spec["data"])
    users = sample(spec["data"], X.shape[0], spec["users"])
    peer = spec["peer"]
    result = {"users": len(users)}
    with threadpool_limits(THREADS):
        if peer == "fastals":
            import fastals
            model = fastals.ImplicitALS(factors=K, num_threads=THREADS)
            model.user_factors, model.item_factors = X, Y
            Ru = R[users]
            model.recommend_all(Ru[:64], users=users[:64], N=N)  # load the kernels, cache Y^T
            h.reset_peak_rss()
            before = h.rss_bytes()[0]
            start, cpu = time.perf_counter(), time.process_time()
            ids, _ = model.recommend_all(Ru, users=users, N=N, max_memory=CAP)
            result["seconds"] = time.perf_counter() - start
            result["cpu_seconds"] = time.process_time() - cpu
            result["extra_mb"] = (h.rss_bytes()[1] - before) / 1e6
            np.save(h.OUT / f"retrieval-{spec['data']}-{len(users)}-exact.npy", ids)
        elif peer == "implicit":
            from implicit.cpu.als import AlternatingLeastSquares
            model = AlternatingLeastSquares(factors=K, num_threads=THREADS)
            model.user_factors, model.item_factors = X, Y
            Ru = R[users]
            h.reset_peak_rss()
            before = h.rss_bytes()[0]
            start, cpu = time.perf_counter(), time.process_time()
            model.recommend(users, Ru, N=N, filter_already_liked_items=True)
            result["seconds"] = time.perf_counter() - start
            result["cpu_seconds"] = time.process_time() - cpu
            result["extra_mb"] = (h.rss_bytes()[1] - before) / 1e6
        elif peer == "gemm":
            Yt = np.ascontiguousarray(Y.T)
            start = time.perf_counter()
            for lo in range(0, len(users), 1000):
                X[users[lo:lo + 1000]] @ Yt
            result["seconds"] = time.perf_counter() - start
            A = np.random.default_rng(0).standard_normal((4096, 4096), dtype=np.float32)
            start = time.perf_counter()
            A @ A
            result["sgemm_gflops"] = 2 * 4096 ** 3 / (time.perf_counter() - start) / 1e9
        elif peer == "ann":
            import fastals
            from fastals.ann import ApproximateIndex, recall_at_n
            model = fastals.ImplicitALS(factors=K, num_threads=THREADS)
            model.user_factors, model.item_factors = X, Y
            cached = h.OUT / f"retrieval-{spec['data']}-hnsw-{ANN['M']}-{ANN['ef_construction']}"
            if cached.with_suffix(".ann").exists():  # built earlier on these factors
                index = ApproximateIndex.load(cached.with_suffix(".ann"), model)
                built = json.loads(cached.with_suffix(".build.json").read_text())
                result["build_seconds"], result["build_load"] = built["build_seconds"], \
                    built["load"]
            else:
                load = open("/proc/loadavg").read().split()[0]
                start = time.perf_counter()
                index = ApproximateIndex(model, num_threads=THREADS, **ANN)
                result["build_seconds"] = time.perf_counter() - start
                result["build_load"] = load
                index.save(cached.with_suffix(".ann"))
                cached.with_suffix(".build.json").write_text(json.dumps(
                    {"build_seconds": result["build_seconds"], "load": load}))
            Ru = R[users]
            model.recommend_all(Ru[:64], users=users[:64], N=N)
            result["runs"] = []
            for ef in spec["efs"]:  # the exact answer timed right before, in this process
                start = time.perf_counter()
                exact, _ = model.recommend_all(Ru, users=users, N=N, max_memory=CAP)
                exact_seconds = time.perf_counter() - start
                index.ef = ef
                start = time.perf_counter()
                ids, _ = index.recommend_all(Ru, users=users, N=N)
                seconds = time.perf_counter() - start
                result["runs"].append({"ef": ef, "seconds": seconds, "exact": exact_seconds,
                                       "recall": recall_at_n(ids, exact)})
    result["gflops"] = 2 * len(users) * Y.shape[0] * K / result.get("seconds", np.inf) / 1e9
    h.emit(result)


# --- driver -------------------------------------------------------------------------------
def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--data", nargs="*", default=list(DATASETS))
    parser.add_argument("--repeats", type=int, help="alternating runs per peer (default: 1 "
                        "with --quick, else 3)")
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    repeats = args.repeats or (1 if args.quick else 3)
    rows, ann_rows = [], []
    for name in args.data:
        factors(name)
        n = QUICK_USERS[name] if args.quick else 0
        specs = [{"data": name, "peer": p, "users": n} for p in ("fastals", "implicit", "gemm")]
        got = h.alternate(__file__, specs, repeats)
        t = {s["peer"]: h.median_of(r, "seconds") for s, r in zip(specs, got)}
        mem = {s["peer"]: h.median_of(r, "extra_mb") for s, r in zip(specs, got)}
        cpu = {s["peer"]: h.median_of(r, "cpu_seconds") for s, r in zip(specs, got)}
        users = got[0][0].get("users", n)
        flops = 2 * users * DATASETS[name][1] * K
        sgemm = h.median_of(got[2], "sgemm_gflops")
        rows.append([name, users, f"{t['fastals']:.2f}", f"{t['implicit']:.2f}",
                     f"{t['implicit'] / t['fastals']:.2f}",
                     f"{cpu['implicit'] / cpu['fastals']:.2f}", f"{t['gemm']:.2f}",
                     f"{flops / t['fastals'] / 1e9:.1f}", f"{flops / t['gemm'] / 1e9:.1f}",
                     f"{t['gemm'] / t['fastals']:.2f}", f"{sgemm:.0f}",
                     f"{flops / t['fastals'] / 1e9 / sgemm:.2f}", f"{mem['fastals']:.0f}",
                     f"{mem['implicit']:.0f}"])
        if name == "synthetic-lastfm":
            ann = h.run_worker(__file__, {"data": name, "peer": "ann", "users": n,
                                          "efs": [30, 40, 60, 80]})
            print(ann)
            for run in ann.get("runs", []):
                ann_rows.append([name, users, f"{ann['build_seconds']:.1f} "
                                 f"(load {ann['build_load']})", run["ef"],
                                 f"{run['seconds']:.2f}", f"{run['exact']:.2f}",
                                 f"{run['recall']:.4f}",
                                 f"{run['exact'] / run['seconds']:.1f}"])
    load = open("/proc/loadavg").read().split()[:3]
    body = (f"K={K}, top-{N} with liked items filtered, {THREADS} threads, max_memory={CAP}; "
            f"{repeats} alternating run(s) per peer, medians; load average {' '.join(load)} "
            "at the end (the machine is shared: absolute times are noisy, ratios less so)."
            + (" Quick run: a seeded sample of the users, every item." if args.quick else "")
            + "\n\n" + h.table(
                ["data", "users", "fastals s", "implicit s", "implicit / fastals",
                 "implicit / fastals, CPU seconds", "gemm s",
                 "fastals GFLOP/s", "gemm GFLOP/s", "fastals / gemm rate",
                 "sgemm 4096 GFLOP/s", "fastals / sgemm 4096", "fastals extra MB",
                 "implicit extra MB"], rows))
    if ann_rows:
        body += ("\n\nApproximate (fastals.ann.ApproximateIndex, hnswlib, inner-product "
                 f"graph, M={ANN['M']}, ef_construction={ANN['ef_construction']}), same users "
                 "and filters, recall@10 against the exact answer, each query timed right "
                 "after the exact recommend_all in the same process:\n\n" + h.table(
                     ["data", "users", "build s", "ef", "query s", "exact s", "recall@10",
                      "speed-up vs exact"], ann_rows))
    h.write_section("All-users top-N (bench/retrieval.py)", body)
    print(body)


if __name__ == "__main__":
    main()
