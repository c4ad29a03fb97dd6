"""Item-item top-20 cosine: fastals vs sparse_dot_topn vs implicit (vs numpy/scipy), one run.

    python bench/similarity.py            # 4M and Last.fm-sized synthetic data, 5 repeats
    python bench/similarity.py --quick    # the 4M matrix only, 3 repeats

Every measurement is a separate process; peers alternate. Each library goes from the users x
items counts to the items x items top-20 cosine matrix:

* fastals     ``fastals.CosineRecommender(K=20).fit(user_items)``  (20 neighbours besides
              the item itself; the fit also keeps a copy of user_items for recommend)
* sdt         normalise the item columns, then ``sparse_dot_topn.sp_matmul_topn(items,
              users_x_items, top_n=20)`` (its 20 include the item itself)
* implicit    ``implicit.nearest_neighbours.CosineRecommender(K=20).fit(user_items)``
              (its 20 include the item itself)
* reference   ``fastals.reference.top_k_cosine_blocked``: scipy products of 1000 items at a
              time, numpy selection (single-threaded; the smaller matrix only)

Reported: median wall seconds and median CPU seconds (all threads) of the whole fit, their
ratios to fastals' (on a shared machine the CPU ratio is the steadier one), the peak RSS
above the RSS before the fit, and how many of each peer's neighbours (other than
the item itself) fastals also found. The work is the same for all: sum over users of
(items of the user)^2 multiply-adds, each reading 8 bytes of the users' rows.
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

K = 20
DATASETS = {
    "synthetic-4m": (100_000, 50_000, 4_000_000),
    "synthetic-lastfm-17.5m": (358_868, 292_385, 17_500_000),
}
LIBS = ("fastals", "sdt", "implicit", "reference")


def load(name):
    from fastals.datasets import synthetic_interactions
    n_users, n_items, nnz = DATASETS[name]
    return h.cached_matrix(name, lambda: synthetic_interactions(n_users, n_items, nnz,
                                                                random_state=2026))


def neighbours_path(data, lib):
    return h.OUT / f"similarity-{data}-{lib}.npz"


def worker(spec):
    """Runs in its own process: one library, one data set; prints one JSON line."""
    X = load(spec["data"]).astype(np.float32)
    lib, threads = spec["lib"], spec["threads"]
    if lib == "sdt":
        from sparse_dot_topn import sp_matmul_topn
    elif lib == "implicit":
        from implicit.nearest_neighbours import CosineRecommender as ImplicitCosine
        from threadpoolctl import threadpool_limits
    elif lib == "fastals":
        import fastals
    else:
        from fastals.reference import top_k_cosine_blocked
    h.reset_peak_rss()
    before, _ = h.rss_bytes()
    cpu, start = time.process_time(), time.perf_counter()
    if lib == "fastals":
        S = fastals.CosineRecommender(K=K, num_threads=threads).fit(
            X, show_progress=False).similarity_matrix
    elif lib == "sdt":
        squares = np.asarray(X.multiply(X).sum(axis=0)).ravel()
        inverse = np.divide(1.0, np.sqrt(squares), out=np.zeros_like(squares),
                            where=squares > 0).astype(np.float32)
        users_x_items = (X @ sp.diags(inverse)).tocsr()
        items = users_x_items.T.tocsr()
        S = sp_matmul_topn(items, users_x_items, top_n=K, n_threads=threads)
    elif lib == "implicit":
        model = ImplicitCosine(K=K, num_threads=threads)
        with threadpool_limits(1, "blas"):
            model.fit(X, show_progress=False)
        S = model.similarity
    else:
        S = top_k_cosine_blocked(X, K)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    _, peak = h.rss_bytes()
    if spec.get("save"):
        S = S.tocsr()
        sp.save_npz(neighbours_path(spec["data"], lib), S, compressed=False)
    h.emit({"seconds": seconds, "cpu": cpu, "peak_extra": peak - before,
            "input_bytes": X.data.nbytes + X.indices.nbytes + X.indptr.nbytes})


def agreement(data, lib):
    """Share of the peer's neighbours (other than the item itself) fastals also has."""
    try:
        ours = sp.load_npz(neighbours_path(data, "fastals")).tocsr()
        theirs = sp.load_npz(neighbours_path(data, lib)).tocsr()
    except OSError:
        return None
    found = total = 0
    for i in range(theirs.shape[0]):
        peer = theirs.indices[theirs.indptr[i]:theirs.indptr[i + 1]]
        peer = peer[peer != i]
        if len(peer) == 0:
            continue
        mine = ours.indices[ours.indptr[i]:ours.indptr[i + 1]]
        found += np.isin(peer, mine).sum()
        total += len(peer)
    return found / total if total else None


def work(X):
    """Multiply-adds of the item-item product: sum over users of (items of the user)^2."""
    per_user = np.diff(X.indptr).astype(np.float64)
    return float((per_user ** 2).sum())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="the 4M matrix only, 3 repeats")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--data", nargs="*", default=None)
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))

    datasets = args.data or (["synthetic-4m"] if args.quick else list(DATASETS))
    repeats = args.repeats or (3 if args.quick else 5)
    load_start = os.getloadavg()
    rows = []
    for data in datasets:
        X = load(data)
        fma = work(X)
        print(f"{data}: {X.shape[0]} x {X.shape[1]}, {X.nnz} stored, {fma:.3g} multiply-adds",
              flush=True)
        libs = ["fastals", "sdt", "implicit"]
        specs = [{"data": data, "lib": lib, "threads": args.threads, "save": True}
                 for lib in libs]
        results = h.alternate(Path(__file__), specs, 1, log=None)  # first round saves
        specs = [dict(spec, save=False) for spec in specs]
        if repeats > 1:
            more = h.alternate(Path(__file__), specs, repeats - 1, log=None)
            results = [a + b for a, b in zip(results, more)]
        if data == "synthetic-4m":
            libs.append("reference")
            results.append([h.run_worker(Path(__file__), {"data": data, "lib": "reference",
                                                          "threads": 1, "save": True})])
        ours = h.median_of(results[0], "seconds")
        our_peak = h.median_of(results[0], "peak_extra")
        our_cpu = h.median_of(results[0], "cpu")
        for lib, res in zip(libs, results):
            sec = h.median_of(res, "seconds")
            if sec is None:
                err = next((r["error"] for r in res if "error" in r), "no result")
                rows.append([data, lib, "error: " + err[:80]] + [""] * 7)
                print("  " + " | ".join(str(c) for c in rows[-1]), flush=True)
                continue
            peak = h.median_of(res, "peak_extra")
            agree = None if lib == "fastals" else agreement(data, lib)
            cpu = h.median_of(res, "cpu")
            rows.append([data, lib, f"{sec:.2f}",
                         "1.00" if lib == "fastals" else f"{sec / ours:.2f}", f"{cpu:.2f}",
                         "1.00" if lib == "fastals" else f"{cpu / our_cpu:.2f}",
                         f"{peak / 2**20:.0f}",
                         "1.00" if lib == "fastals" else f"{peak / our_peak:.2f}",
                         f"{fma / sec / 1e9:.2f}",
                         "" if agree is None else f"{agree:.4f}"])
            print("  " + " | ".join(str(c) for c in rows[-1]), flush=True)
    load_end = os.getloadavg()
    header = ["data", "library", "fit s (median wall)", "time / fastals", "CPU s (median)",
              "CPU / fastals", "peak extra MiB", "peak / fastals", "G multiply-adds/s",
              "peer neighbours fastals also finds"]
    body = (f"`python bench/similarity.py{' --quick' if args.quick else ''}`: item-item top-{K} "
            f"cosine, {args.threads} threads, float32, {repeats} alternating repeats per peer "
            "(reference: 1, single-threaded), each in its own process. `time / fastals` > 1 "
            "means fastals is faster. Peak memory is the RSS high-water mark during the fit "
            "above the RSS before it (input loaded). sparse_dot_topn's time includes "
            "normalising and transposing; its and implicit's 20 neighbours include the item "
            "itself. Every multiply-add reads 8 bytes of the users' rows (an index and a "
            "value), so G multiply-adds/s x 8 is the GB/s they stream. Load average "
            f"{load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end (the 2 cores are "
            "shared with other jobs, so wall times are noisy; the ratios come from alternating "
            "runs).\n\n" + h.table(header, rows))
    h.write_section("Item-item similarity (bench/similarity.py)", body)
    print(f"wrote {h.RESULTS}")


if __name__ == "__main__":
    main()
