"""Defaults and the tuner on five data sets: nDCG@10 and precision@10 of ImplicitALS with
(a) the defaults before ``weighting="auto"``, (b) the new defaults, (c) ``fastals tune`` with
a 60 s budget, (d) the best of a manual 3 x 3 x 3 grid; and the tuner's wall time.

Data sets: MovieLens 100K as binary (every rating a 1) and as ratings (stars 1-5), the
embedded demo data (``fastals.datasets.make_synthetic``), synthetic heavy-tailed counts
(the structure of ``synthetic_interactions`` with plays from 1 to 1e5) and a Last.fm-like
synthetic set (1,892 users x 17,632 items, 102K rows, plays up to 350,000 with a median of
215: the shape of the public Last.fm HetRec file, which has 93K rows).

Every figure is on one 80/20 split (seed 0) of each set: the tuner and the grid see the
80% part only (the tuner holds out its own validation part of it), and everything is
scored on the 20%. Each (data set, method) runs in its own process, one after another.

    FASTALS_DATA=... python bench/defaults.py [--quick] [--out bench/out/defaults.json]
    FASTALS_DATA=... python bench/defaults.py --weighting-study

The second runs the measurements behind weighting="auto"'s rule: none / log / BM25 at the
defaults and at factors 32, regularization 3, and the same counts rescaled to other medians.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

K = 10
SEED = 0
DATASETS = ("movielens-binary", "movielens-ratings", "demo", "heavy-counts", "lastfm-like")


# --- the data sets ---------------------------------------------------------------------------
def heavy_tailed_counts(n_users=5000, n_items=2000, nnz=150_000, seed=0):
    """Play counts from 1 to 1e5 on the power-law pattern of synthetic_interactions.

    Preference is planted as in make_synthetic's groups; the count of a (user, item) pair
    is a user scale (log-normal, sigma 1.5) times a Pareto(0.8) draw, larger for items of
    the user's favourite group, clipped to [1, 1e5].
    """
    from fastals import datasets

    data = datasets.make_synthetic(n_users=n_users, n_items=n_items, n_groups=10,
                                   interactions_per_user=nnz // n_users, random_state=seed)
    return _heavy_values(data, seed, user_sigma=1.5, tail=0.8, cap=1e5)


def lastfm_like(seed=0):
    """1,892 users x 17,632 items, ~93K rows (about 49 artists per user), plays from 1 to
    ~350,000 with a median of a few hundred, as the public Last.fm HetRec file."""
    from fastals import datasets

    data = datasets.make_synthetic(n_users=1892, n_items=17632, n_groups=16,
                                   interactions_per_user=49, popularity_exponent=0.9,
                                   random_state=seed)
    return _heavy_values(data, seed, user_sigma=1.2, tail=1.0, cap=350_000, scale=60.0)


def _heavy_values(data, seed, user_sigma, tail, cap, scale=1.0):
    rng = np.random.default_rng(seed + 1)
    X = data.user_items.tocsr()
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    favourite = data.user_info["favourite_group"][rows] == data.item_info["group"][X.indices]
    user_scale = rng.lognormal(0.0, user_sigma, X.shape[0])[rows]
    plays = scale * user_scale * (1 + 2 * favourite) * (rng.pareto(tail, X.nnz) + 1)
    values = np.clip(np.round(plays), 1, cap).astype(np.float32)
    return data.with_matrix(sp.csr_matrix((values, X.indices, X.indptr), shape=X.shape),
                            data.timestamps)


def load_dataset(name):
    from fastals import datasets

    if name.startswith("movielens"):
        data = datasets.load_movielens(Path(os.environ["FASTALS_DATA"]) / "ml-100k")
        if name == "movielens-binary":
            X = data.user_items.tocsr(copy=True)
            X.data[:] = 1
            data = data.with_matrix(X, data.timestamps)
        return data
    if name == "demo":
        return datasets.make_synthetic(random_state=SEED)
    if name == "heavy-counts":
        return heavy_tailed_counts(seed=SEED)
    if name == "lastfm-like":
        return lastfm_like(seed=SEED)
    raise ValueError(name)


# --- one method on one data set, in its own process ------------------------------------------
GRID = {"factors": (16, 32, 64), "regularization": (0.01, 0.3, 3.0), "alpha": (1.0, 4.0, 16.0)}


def _score(model, train, test):
    from fastals.evaluation import ranking_metrics_at_k

    m = ranking_metrics_at_k(model, train, test, K)
    return {"ndcg": m["ndcg"], "precision": m["precision"]}


def run_method(name, method, budget):
    import fastals
    from fastals.data.weighting import choose_weighting
    from fastals.evaluation import train_test_split

    data = load_dataset(name)
    train, test = train_test_split(data, 0.2, random_state=SEED)
    start = time.perf_counter()
    out = {"data": name, "method": method}
    if method == "old":  # the defaults before weighting="auto": the values as given
        model = fastals.ImplicitALS(weighting="none", random_state=SEED)
        out.update(_score(model.fit(train.user_items, show_progress=False), train, test))
    elif method == "new":
        model = fastals.ImplicitALS(random_state=SEED).fit(train.user_items, show_progress=False)
        out.update(_score(model, train, test), weighting=model.weighting_applied,
                   reason=choose_weighting(train).reason)
    elif method == "tune":
        result = fastals.tune(fastals.ImplicitALS, train, budget=budget, random_state=SEED,
                              verbose=False)
        out.update(_score(result.model, train, test), params=result.best_params,
                   trials=len(result.trials), validation=result.best_score,
                   pruned=sum(t.pruned for t in result.trials))
    elif method == "grid":
        runs = []
        for f, reg, alpha in itertools.product(*GRID.values()):
            model = fastals.ImplicitALS(factors=f, regularization=reg, alpha=alpha,
                                        random_state=SEED)
            runs.append({"params": {"factors": f, "regularization": reg, "alpha": alpha},
                         **_score(model.fit(train.user_items, show_progress=False), train,
                                  test)})
        best = max(runs, key=lambda r: r["ndcg"])
        out.update(best, configurations=len(runs))
    else:
        raise ValueError(method)
    out["seconds"] = time.perf_counter() - start
    return out


def parallel_check(repeats):
    """Two ALS fits side by side (threads, one kernel thread each) against one after the
    other (all cores each): medians of `repeats` seconds."""
    import threading

    import fastals

    data = load_dataset("lastfm-like").user_items

    def fit(threads):
        fastals.ImplicitALS(factors=64, iterations=10, num_threads=threads, random_state=0,
                            weighting="log").fit(data, show_progress=False)

    together, apart = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        workers = [threading.Thread(target=fit, args=(1,)) for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        together.append(time.perf_counter() - t)
        t = time.perf_counter()
        fit(0)
        fit(0)
        apart.append(time.perf_counter() - t)
    return {"side_by_side_1_thread": float(np.median(together)),
            "one_after_other_all_cores": float(np.median(apart)), "cores": os.cpu_count()}


def weighting_study():
    """nDCG@10 of none / log / bm25 weighting (ImplicitALS(weighting="none") on the weighted
    matrix) at the defaults and at factors=32, regularization=3; then the Last.fm-like and
    heavy-tailed counts rescaled to other medians, raw against log, at the defaults."""
    import fastals
    from fastals.data import bm25_weight, log_weight
    from fastals.evaluation import train_test_split

    weigh = {"none": lambda X: X, "log": log_weight, "bm25": lambda X: bm25_weight(X.T).T.tocsr()}
    for name in DATASETS:
        train, test = train_test_split(load_dataset(name), 0.2, random_state=SEED)
        for params in ({}, {"factors": 32, "regularization": 3.0}):
            for how, f in weigh.items():
                model = fastals.ImplicitALS(weighting="none", random_state=SEED, **params)
                model.fit(f(train.user_items), show_progress=False)
                print(json.dumps({"data": name, "weighting": how, **params,
                                  **_score(model, train, test)}), flush=True)
    for name, divisors in (("lastfm-like", (1, 10, 40)), ("heavy-counts", (1, 0.1, 0.025))):
        train, test = train_test_split(load_dataset(name), 0.2, random_state=SEED)
        for divisor in divisors:
            X = train.user_items.copy()
            X.data = np.maximum(1, np.round(X.data / divisor))
            for how in ("none", "log"):
                model = fastals.ImplicitALS(weighting="none", random_state=SEED)
                model.fit(weigh[how](X), show_progress=False)
                print(json.dumps({"data": name, "median": float(np.median(X.data)),
                                  "weighting": how, **_score(model, train, test)}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 s tuner budget, two sets")
    parser.add_argument("--out", default="bench/out/defaults.json")
    parser.add_argument("--one", nargs=2, metavar=("DATA", "METHOD"), help=argparse.SUPPRESS)
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--parallel", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--weighting-study", action="store_true",
                        help="the measurements behind weighting='auto' (see the docstring)")
    args = parser.parse_args()
    if args.weighting_study:
        weighting_study()
        return
    if args.one:
        print(json.dumps(run_method(*args.one, args.budget)))
        return
    if args.parallel:
        print(json.dumps(parallel_check(3)))
        return
    budget = 10.0 if args.quick else args.budget
    names = ("movielens-binary", "lastfm-like") if args.quick else DATASETS
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    results = []
    for name in names:
        for method in ("old", "new", "grid", "tune"):
            done = subprocess.run([sys.executable, __file__, "--one", name, method, "--budget",
                                   str(budget)], env=env, capture_output=True, text=True,
                                  check=True)
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)
    parallel = json.loads(subprocess.run([sys.executable, __file__, "--parallel"], env=env,
                                         capture_output=True, text=True, check=True
                                         ).stdout.strip().splitlines()[-1])
    load = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"results": results, "parallel": parallel,
                                          "load": load, "budget": budget}, indent=1))
    print(table(results, budget))
    print(f"parallel trials: {parallel}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


def table(results, budget):
    by = {(r["data"], r["method"]): r for r in results}
    lines = ["| data set | (a) old defaults | (b) new defaults (weighting) | (c) tune "
             f"{budget:g} s (wall s, trials) | (d) grid best of 27 | (b)/(d) | (c)/(d) |",
             "|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["data"] for r in results):
        a, b, c, d = (by[(name, m)] for m in ("old", "new", "tune", "grid"))

        def cell(r):
            return f"{r['ndcg']:.4f} / {r['precision']:.4f}"
        lines.append(f"| {name} | {cell(a)} | {cell(b)} ({b['weighting']}) | {cell(c)} "
                     f"({c['seconds']:.0f} s, {c['trials']}) | {cell(d)} | "
                     f"{b['ndcg'] / d['ndcg']:.2f} | {c['ndcg'] / d['ndcg']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
