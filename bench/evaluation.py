"""Ranking metrics at K: fastals.evaluation vs implicit.evaluation on identical factors.

Each run is a fresh subprocess that builds the data set, trains fastals ImplicitALS (seeded,
the same in every process; not timed), and times one ``ranking_metrics_at_k`` call of its
peer: fastals' batch recommend + parallel metrics kernel, or implicit's
``ranking_metrics_at_k`` with the same factors loaded into an implicit model. Peers
alternate; the table reports medians and the ratio, and checks that both report the same
precision / MAP / nDCG / AUC.

    python bench/evaluation.py            # ML-100K (if present) and synthetic sets
    python bench/evaluation.py --quick    # small sets, 3 runs
Writes its table into bench/RESULTS.md under its own heading.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # this checkout's fastals
import _harness as h  # noqa: E402

TITLE = "Evaluation: ranking_metrics_at_k (fastals vs implicit)"
SETS = {
    "ml-100k": None,
    "synthetic 20k x 10k, 500k nnz": (20_000, 10_000, 500_000),
    "synthetic 100k x 50k, 4M nnz": (100_000, 50_000, 4_000_000),
}
METRICS = ("precision", "map", "ndcg", "auc")


def worker(spec):
    """One timed ranking_metrics_at_k call of spec["peer"]; returns its seconds and metrics."""
    import fastals
    from fastals import datasets, evaluation

    name, K, factors = spec["data"], spec["K"], spec["factors"]
    if SETS[name] is None:
        matrix = datasets.load_movielens(spec["path"]).user_items
    else:
        matrix = datasets.synthetic_interactions(*SETS[name], random_state=0)
    train, test = evaluation.train_test_split(matrix, 0.2, random_state=0)
    train = train.tocsr().astype(np.float32)
    test = test.tocsr().astype(np.float32)
    model = fastals.ImplicitALS(factors=factors, iterations=3, random_state=0)
    model.fit(train, show_progress=False)
    if spec["peer"] == "fastals":
        start = time.perf_counter()
        result = evaluation.ranking_metrics_at_k(model, train, test, K)
    else:
        from implicit.cpu.als import AlternatingLeastSquares
        from implicit.evaluation import ranking_metrics_at_k

        peer_model = AlternatingLeastSquares(factors=factors, num_threads=0)
        peer_model.user_factors = model.user_factors.copy()
        peer_model.item_factors = model.item_factors.copy()
        start = time.perf_counter()
        result = ranking_metrics_at_k(peer_model, train, test, K=K, show_progress=False,
                                      num_threads=0)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, **{k: float(result[k]) for k in METRICS}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="skip the 4M set")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--factors", type=int, default=64)
    args = parser.parse_args()
    if args.worker:
        return h.emit(worker(json.loads(args.worker)))
    runs = args.runs or (3 if args.quick else 5)
    ml = h.movielens_path()
    names = [n for n in SETS if (n != "ml-100k" or ml) and not (args.quick and "4M" in n)]
    peers = ("fastals", "implicit")
    rows = []
    for name in names:
        # each library with its own defaults (fastals limits BLAS itself while it scores)
        specs = [{"peer": peer, "data": name, "K": args.k, "factors": args.factors,
                  "path": str(ml) if ml else None} for peer in peers]
        results = h.alternate(Path(__file__), specs, runs, log=None)
        for spec, res in zip(specs, results):
            failed = next((r["error"] for r in res if "error" in r), None)
            if failed:
                raise RuntimeError(f"{spec['peer']} on {name} failed: {failed}")
        med = {peer: h.median_of(res, "seconds") for peer, res in zip(peers, results)}
        last = {peer: res[-1] for peer, res in zip(peers, results)}
        same = all(abs(last["fastals"][m] - last["implicit"][m]) < 1e-6 for m in METRICS)
        ratio = med["implicit"] / med["fastals"]
        rows.append([name, f"{med['fastals']:.3f}", f"{med['implicit']:.3f}", f"{ratio:.1f}x",
                     f"{last['fastals']['precision']:.4f}", "yes" if same else "NO"])
        print(f"{name}: fastals {med['fastals']:.3f} s, implicit {med['implicit']:.3f} s "
              f"({ratio:.1f}x), same metrics: {same}", flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    body = (f"K={args.k}, factors={args.factors}, medians of {runs} alternating runs, each in "
            f"its own process; load average {load:.1f} at the end. Time of one "
            "ranking_metrics_at_k call (recommend with training items filtered + scoring), "
            "same factors for both.\n\n"
            + h.table(["data", "fastals s", "implicit s", "implicit / fastals", "precision@K",
                       "same precision/MAP/nDCG/AUC"], rows))
    h.write_section(TITLE, body)
    print(f"wrote {h.RESULTS}")


if __name__ == "__main__":
    main()
