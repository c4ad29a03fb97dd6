"""Validation while training: what scoring held-out data after every iteration costs.

Each run is a fresh subprocess that loads the data, splits it (seeded, 80/20 at random) and
times one fit: plain, or with ``validation=(train, test)`` (the metric after each
iteration, no early stopping, so both run every iteration). The two alternate; the table
reports medians and the ratio, and checks that the validated fit ends with the same
factors as the plain one.

    python bench/validation.py            # MovieLens 100K (if present) and a synthetic set
    python bench/validation.py --quick    # 3 runs, the synthetic set only if no MovieLens
Writes its table into bench/RESULTS.md under its own heading.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # this checkout's fastals
import _harness as h  # noqa: E402

TITLE = "Validation while training: the cost of a held-out metric per iteration"
SETS = {"ml-100k": None, "synthetic 20k x 10k, 500k nnz": (20_000, 10_000, 500_000)}
MODELS = {
    "ImplicitALS": ("ndcg@10", dict(factors=64, iterations=15, regularization=0.05)),
    "ExplicitALS": ("rmse", dict(factors=32, iterations=15)),
}


def worker(spec):
    """One timed fit; returns its seconds and a digest of the factors."""
    import fastals
    from fastals import datasets, evaluation

    if SETS[spec["data"]] is None:
        data = datasets.load_movielens(spec["path"]).user_items
    else:
        data = datasets.synthetic_interactions(*SETS[spec["data"]], random_state=0)
        if spec["model"] == "ExplicitALS":  # ratings 1..5 from the counts
            data = data.tocsr()
            data.data = np.minimum(np.ceil(data.data), 5).astype(np.float32)
    train, test = evaluation.train_test_split(data, 0.2, random_state=0)
    metric, params = MODELS[spec["model"]]
    model = getattr(fastals, spec["model"])(random_state=0, **params)
    kwargs = dict(validation=(train, test), metric=metric) if spec["validate"] else {}
    start = time.perf_counter()
    model.fit(train, show_progress=False, **kwargs)
    seconds = time.perf_counter() - start
    digest = hashlib.sha1(np.ascontiguousarray(model.item_factors).tobytes()).hexdigest()
    return {"seconds": seconds, "digest": digest}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args()
    if args.worker:
        return h.emit(worker(json.loads(args.worker)))
    runs = args.runs or (3 if args.quick else 5)
    ml = h.movielens_path()
    names = [n for n in SETS if (n != "ml-100k" or ml) and not (args.quick and ml and
                                                                 n != "ml-100k")]
    rows = []
    for name in names:
        for model in MODELS:
            specs = [{"data": name, "model": model, "validate": v,
                      "path": str(ml) if ml else None} for v in (False, True)]
            results = h.alternate(Path(__file__), specs, runs, log=None)
            for spec, res in zip(specs, results):
                failed = next((r["error"] for r in res if "error" in r), None)
                if failed:
                    raise RuntimeError(f"{spec} failed: {failed}")
            plain, validated = (h.median_of(res, "seconds") for res in results)
            same = results[0][-1]["digest"] == results[1][-1]["digest"]
            rows.append([name, model, MODELS[model][0], f"{plain:.3f}", f"{validated:.3f}",
                         f"{validated / plain:.2f}x", "yes" if same else "NO"])
            print(f"{name} {model}: plain {plain:.3f} s, validated {validated:.3f} s "
                  f"({validated / plain:.2f}x), same factors: {same}", flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    body = (f"`python bench/validation.py{' --quick' if args.quick else ''}`: medians of "
            f"{runs} alternating runs, each in its own process; load average {load:.1f} at "
            "the end. One fit on 80% of the data, plain or with `validation=(train, test)` "
            "scoring the 20% after each of the 15 iterations (no early stopping).\n\n"
            + h.table(["data", "model", "metric", "plain fit s", "validated fit s",
                       "validated / plain", "same factors"], rows))
    h.write_section(TITLE, body)
    print(f"wrote {h.RESULTS}")


if __name__ == "__main__":
    main()
