"""Dense products of whole factor matrices (fastals/_kernels/_dense.pyx) against numpy.

    python bench/dense.py            # K = 64 .. 1024, 41,000 rows (the sparse shape's items)
    python bench/dense.py --quick    # K = 128 and 512

The Gram matrix Y^T Y (fastals: one syrk per chunk of rows, summed in float64; numpy:
Y.T @ Y in float32 and in float64), the change of basis M <- M Q (fastals' rotate_rows;
numpy: M @ Q) and the eigendecomposition of the Gram matrix (what fastals' eigenbasis calls:
scipy's divide and conquer in float32; numpy's eigh in float64). Each library runs in its
own process on 2 threads (fastals' OpenMP threads with a one-thread BLAS; numpy's BLAS on 2
threads), the two alternating; medians of the repeats. Reported: milliseconds, the ratio
numpy / fastals (> 1: fastals faster) and GFLOP/s (n K^2 for the Gram matrix, 2 n K^2 for
the product).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h  # noqa: E402

ROWS = 41_000


def worker(spec):
    """Runs in its own process: time one operation `repeats` times; print one JSON line."""
    from threadpoolctl import threadpool_limits
    K, op, lib, threads = spec["K"], spec["op"], spec["lib"], spec["threads"]
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((ROWS, K)).astype(np.float32)
    Q = np.linalg.qr(rng.standard_normal((K, K)))[0].astype(np.float32)
    G = Y.astype(np.float64).T @ Y.astype(np.float64)
    if lib == "fastals":
        import scipy.linalg
        from fastals._threads import single_threaded_blas
        from fastals.models.blocksolve import gram_matrix, rotate_rows

        def run():
            if op == "gram":
                gram_matrix(Y, threads, fast=True)
            elif op == "rotate":
                rotate_rows(Y, Q, threads)
            else:
                with single_threaded_blas():
                    scipy.linalg.eigh(G.astype(np.float32), driver="evd")
    else:
        def run():
            with threadpool_limits(threads, "blas"):
                if op == "gram":
                    Y.T @ Y
                elif op == "gram64":
                    Y64 = Y.astype(np.float64)
                    Y64.T @ Y64
                elif op == "rotate":
                    Y @ Q
                else:
                    np.linalg.eigh(G)
    run()
    seconds = []
    for _ in range(spec["repeats"]):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    h.emit({"seconds": seconds})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    rows = []
    # (operation, numpy's counterparts)
    ops = [("gram", ["gram", "gram64"]), ("rotate", ["rotate"]), ("eigh", ["eigh"])]
    for K in [128, 512] if args.quick else [64, 128, 256, 512, 1024]:
        for op, theirs in ops:
            specs = [{"K": K, "op": op, "lib": "fastals", "threads": args.threads,
                      "repeats": 5}]
            specs += [{"K": K, "op": other, "lib": "numpy", "threads": args.threads,
                       "repeats": 5} for other in theirs]
            results = h.alternate(Path(__file__), specs, 2 if args.quick else 3, log=None)
            ours = h.median_of(results[0], "seconds")
            flops = {"gram": ROWS * K * K, "rotate": 2 * ROWS * K * K}.get(op)
            for spec, res in zip(specs, results):
                sec = h.median_of(res, "seconds")
                label = {"gram": "Y.T @ Y float32", "gram64": "Y.T @ Y float64",
                         "rotate": "M @ Q", "eigh": "eigh float64"}[spec["op"]] \
                    if spec["lib"] == "numpy" else \
                    {"gram": "gram_matrix (syrk chunks)", "rotate": "rotate_rows",
                     "eigh": "scipy eigh evd float32"}[op]
                rows.append([K, op, spec["lib"], label, f"{sec * 1e3:.2f}",
                             "1.00" if spec["lib"] == "fastals" else f"{sec / ours:.2f}",
                             f"{flops / sec / 1e9:.0f}" if flops else ""])
                print("  " + " | ".join(str(c) for c in rows[-1]), flush=True)
    header = ["K", "operation", "library", "call", "ms (median)", "time / fastals",
              "GFLOP/s"]
    body = (f"`python bench/dense.py{' --quick' if args.quick else ''}`, {ROWS:,} rows, "
            f"float32 factors, {args.threads} threads, each library in its own process, "
            "alternating, medians.\n\n" + h.table(header, rows))
    h.write_section("Dense products: Gram matrix, change of basis, eigendecomposition "
                    "(bench/dense.py)", body)
    print(f"wrote {h.RESULTS}")


if __name__ == "__main__":
    main()
