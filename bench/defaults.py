"""Defaults and the tuner on five data sets: nDCG@10 and precision@10 of ImplicitALS with
(a) the defaults before ``weighting="auto"`` and ``regularization="auto"`` (factors 100,
regularization 0.01, the values as given), (b) the current defaults, (c) ``fastals tune``
with a 60 s budget, (d) the best of a manual 3 x 3 x 3 grid; and the tuner's wall time.

Data sets: MovieLens 100K as binary (every rating a 1) and as ratings (stars 1-5), the
embedded demo data (``fastals.datasets.make_synthetic``), synthetic heavy-tailed counts
(the structure of ``synthetic_interactions`` with plays from 1 to 1e5) and a Last.fm-like
synthetic set (1,892 users x 17,632 items, 102K rows, plays up to 350,000 with a median of
215: the shape of the public Last.fm HetRec file, which has 93K rows).

Every figure is on one 80/20 split (seed 0) of each set: the tuner and the grid see the
80% part only (the tuner holds out its own validation part of it), and everything is
scored on the 20%. Each (data set, method) runs in its own process, one after another.

    FASTALS_DATA=... python bench/defaults.py [--quick] [--out bench/out/defaults.json]
    FASTALS_DATA=... python bench/defaults.py --held-out [--out bench/out/held_out.json]
    FASTALS_DATA=... python bench/defaults.py --weighting-study

``--held-out`` checks the defaults on data sets that were not used to choose them (other
split seeds, MovieLens thresholded at 4 stars, the demo data at another seed, sparser and
denser shapes, other count tails and medians): (a), (b) and (d), without the tuner. The
third runs the measurements behind weighting="auto"'s rule: none / log / BM25 at the
defaults, and the same counts rescaled to other medians.
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
#: data sets not used to choose the defaults: (name, what it is)
HELD_OUT = (
    ("movielens-binary@1", "MovieLens 100K binary, split seed 1"),
    ("movielens-ratings@2", "MovieLens 100K ratings, split seed 2"),
    ("movielens-4stars", "MovieLens 100K, ratings >= 4 as 1 (the rest dropped)"),
    ("demo@1", "make_synthetic(random_state=1), split seed 1"),
    ("sparse-15", "make_synthetic 8,000 x 5,000, ~15 items per user, 20 groups"),
    ("sparse-40", "make_synthetic 4,000 x 8,000, ~40 items per user, 12 groups"),
    ("dense-120", "make_synthetic 1,000 x 500, ~120 items per user (~24% dense)"),
    ("counts-tail1.5", "counts with a lighter tail: Pareto(1.5), to 1e4, median ~10"),
    ("counts-median50", "heavy-tailed counts, median ~50, to 1e5, 3,000 x 4,000"),
    ("lastfm-like@1", "the Last.fm-like set drawn with seed 1, split seed 1"),
)


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
    """The data set `name` (one of DATASETS or HELD_OUT's names; "@s" is the seed)."""
    from fastals import datasets

    name, _, seed = name.partition("@")
    seed = int(seed or SEED)
    if name == "movielens-4stars":
        data = datasets.load_movielens(Path(os.environ["FASTALS_DATA"]) / "ml-100k")
        X = data.user_items.tocsr(copy=True)
        X.data = (X.data >= 4).astype(X.dtype)
        X.eliminate_zeros()
        return data.with_matrix(X, None)
    held_out = {"sparse-15": dict(n_users=8000, n_items=5000, interactions_per_user=15,
                                  n_groups=20, random_state=3),
                "sparse-40": dict(n_users=4000, n_items=8000, interactions_per_user=40,
                                  n_groups=12, random_state=4),
                "dense-120": dict(n_users=1000, n_items=500, interactions_per_user=120,
                                  n_groups=6, random_state=5)}
    if name in held_out:
        return datasets.make_synthetic(**held_out[name])
    if name == "counts-tail1.5":
        data = datasets.make_synthetic(n_users=4000, n_items=3000, n_groups=10,
                                       interactions_per_user=30, random_state=6)
        return _heavy_values(data, 6, user_sigma=1.0, tail=1.5, cap=1e4, scale=3.0)
    if name == "counts-median50":
        data = datasets.make_synthetic(n_users=3000, n_items=4000, n_groups=10,
                                       interactions_per_user=40, random_state=7)
        return _heavy_values(data, 7, user_sigma=1.3, tail=0.9, cap=1e5, scale=15.0)
    if name.startswith("movielens"):
        data = datasets.load_movielens(Path(os.environ["FASTALS_DATA"]) / "ml-100k")
        if name == "movielens-binary":
            X = data.user_items.tocsr(copy=True)
            X.data[:] = 1
            data = data.with_matrix(X, data.timestamps)
        return data
    if name == "demo":
        return datasets.make_synthetic(random_state=seed)
    if name == "heavy-counts":
        return heavy_tailed_counts(seed=seed)
    if name == "lastfm-like":
        return lastfm_like(seed=seed)
    raise ValueError(name)


def split_seed(name):
    """The split seed of a data set name ("@s": s; else SEED)."""
    return int(name.partition("@")[2] or SEED)


# --- one method on one data set, in its own process ------------------------------------------
GRID = {"factors": (32, 64, 128), "regularization": (3.0, 30.0, 100.0), "alpha": (0.5, 2.0, 8.0)}


def _score(model, train, test):
    from fastals.evaluation import ranking_metrics_at_k

    m = ranking_metrics_at_k(model, train, test, K)
    return {"ndcg": m["ndcg"], "precision": m["precision"]}


def run_method(name, method, budget):
    import fastals
    from fastals.data.weighting import choose_weighting
    from fastals.evaluation import train_test_split

    data = load_dataset(name)
    train, test = train_test_split(data, 0.2, random_state=split_seed(name))
    start = time.perf_counter()
    out = {"data": name, "method": method}
    if method == "old":  # the defaults before the "auto" ones: implicit's, the values as given
        model = fastals.ImplicitALS(regularization=0.01, weighting="none", random_state=SEED)
        out.update(_score(model.fit(train.user_items, show_progress=False), train, test))
    elif method == "new":
        model = fastals.ImplicitALS(random_state=SEED).fit(train.user_items, show_progress=False)
        out.update(_score(model, train, test), weighting=model.weighting_applied,
                   reason=choose_weighting(train).reason,
                   regularization=model.regularization_applied)
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
    matrix) at the defaults (regularization="auto", from the weighted values) and at the
    former regularization=0.01; then the Last.fm-like and heavy-tailed counts rescaled to
    other medians, raw against log, at the defaults."""
    import fastals
    from fastals.data import bm25_weight, log_weight
    from fastals.evaluation import train_test_split

    weigh = {"none": lambda X: X, "log": log_weight, "bm25": lambda X: bm25_weight(X.T).T.tocsr()}
    for name in DATASETS:
        train, test = train_test_split(load_dataset(name), 0.2, random_state=SEED)
        for params in ({}, {"regularization": 0.01}):
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
    parser.add_argument("--held-out", action="store_true",
                        help="(a), (b) and (d) on the data sets not used to choose the defaults")
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
    methods = ("old", "new", "grid", "tune")
    if args.held_out:
        names, methods = [name for name, _ in HELD_OUT], ("old", "new", "grid")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    results = []
    for name in names:
        for method in methods:
            done = subprocess.run([sys.executable, __file__, "--one", name, method, "--budget",
                                   str(budget)], env=env, capture_output=True, text=True,
                                  check=True)
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)
    if args.held_out:
        load = os.getloadavg()
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"results": results, "load": load}, indent=1))
        print(table(results, None))
        print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
        return
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
    """The markdown table of `results`; without a `budget`, no tuner columns."""
    by = {(r["data"], r["method"]): r for r in results}
    tuned = budget is not None
    lines = ["| data set | (a) old defaults | (b) new defaults (weighting, lambda) | "
             + (f"(c) tune {budget:g} s (wall s, trials) | " if tuned else "")
             + "(d) grid best of 27 (its cell) | (b)/(d) |" + (" (c)/(d) |" if tuned else ""),
             "|---|---|---|---|---|" + ("---|---|" if tuned else "")]

    def cell(r):
        return f"{r['ndcg']:.4f} / {r['precision']:.4f}"
    for name in dict.fromkeys(r["data"] for r in results):
        a, b, d = (by[(name, m)] for m in ("old", "new", "grid"))
        p = d["params"]
        line = (f"| {name} | {cell(a)} | {cell(b)} ({b['weighting']}, "
                f"{b['regularization']:.3g}) | ")
        if tuned:
            c = by[(name, "tune")]
            line += f"{cell(c)} ({c['seconds']:.0f} s, {c['trials']}) | "
        line += (f"{cell(d)} ({p['factors']}, {p['regularization']:g}, {p['alpha']:g}) | "
                 f"{b['ndcg'] / d['ndcg']:.2f} |")
        if tuned:
            line += f" {c['ndcg'] / d['ndcg']:.2f} |"
        lines.append(line)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
