"""Ranking quality of the implicit-feedback models: nDCG@10 and recall@20 on held-out data.

    python bench/quality.py            # 3 seeds, the full grids (about 30 minutes on 2 cores)
    python bench/quality.py --quick    # 1 seed, small grids (a few minutes)
    python bench/quality.py --only ease,rp3beta --data movielens-100k

Data sets (``DATASETS``):

* ``movielens-100k``: every rating is an interaction (binary), 80/20 random split.
* ``demo``: what ``fastals demo`` trains on, ``fastals.datasets.make_synthetic()`` (seed 0;
  play counts), 80/20 random split.

Each seed s is one fixed split (``train_test_split(data, 0.2, random_state=s)``) and the
models' seed; figures are the mean and the seed-to-seed standard deviation. Every test
interaction is relevant; training items are filtered from the top-N lists; the metrics are
``fastals.evaluation``'s (``metrics_from_recommendations``) for every library, computed from
the same top-20 lists. A contender's "best" is its best grid point by mean nDCG@10, chosen
on the test split itself, for every contender alike (an optimistic figure for each).

Contenders (``CONTENDERS``; each grid runs in its own process per data set and group):
today's CG ``ImplicitALS`` at d in {64, 128, 256, 512, 1024}, each d at its best
regularization and alpha; ``EASE`` over lambda, and at its default; ``RP3beta`` over alpha,
beta, K and the row normalisation, and at its default; `implicit`'s ALS (0.7.3, CG) at its
best point of a factors x regularization x alpha grid. A new model is one more
:class:`Contender` in the list (see the note above ``CONTENDERS``).
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # this checkout's fastals
import _harness as h  # noqa: E402

THREADS = 2
ITERATIONS = 15  # the ALS models'


# --- data -------------------------------------------------------------------------------------
def load_dataset(name):
    """(users x items CSR float32, description) of a data set in DATASETS."""
    if name == "movielens-100k":
        from fastals.datasets import load_movielens_100k
        R = load_movielens_100k(h.movielens_path())[0].tocsr().astype(np.float32)
        R.data[:] = 1.0
        return R
    if name == "demo":
        from fastals.datasets import make_synthetic
        return make_synthetic(random_state=0).user_items.tocsr().astype(np.float32)
    raise ValueError(f"unknown data set {name!r}")


DATASETS = {"movielens-100k": "MovieLens 100K, binary (943 users, 1,682 items, 100,000 "
                              "interactions)",
            "demo": "fastals demo data, make_synthetic() seed 0 (3,000 users, 1,200 items, "
                    "play counts)"}


BINARY_DATASETS = ("movielens-100k",)


def split(R, seed):
    from fastals.evaluation import train_test_split
    train, test = train_test_split(R, 0.2, random_state=seed)
    return sp.csr_matrix(train), sp.csr_matrix(test)


# --- contenders ---------------------------------------------------------------------------------
@dataclass
class Contender:
    """A model in the comparison.

    `make(params, seed)` returns an unfitted model with `fit(user_items)` and
    `recommend(userids, user_items, N)` in implicit's call shapes (run inside the worker
    process, so it imports its library there); `grid(quick)` the grid points (dicts of
    params); `default` a point reported on its own row (the model's defaults); `group` a
    parameter whose every value gets its own row (and worker process), e.g. the dimension;
    `binary`: fit on the binarised training matrix (the item-item models are built for 0/1
    data; the ALS models weigh counts by their confidence; a grid may also hold
    ``binarise=True/False``, which is dropped on data that is binary already).
    `blas_threads`: BLAS threads in the worker (1 for the models running their own OpenMP
    threads). `seeds_cap(group value)`: at most this many seeds for a group (None: all),
    for points too slow to repeat on a small machine.
    """

    name: str
    make: callable
    grid: callable
    default: dict | None = None
    group: str | None = None
    binary: bool = False
    blas_threads: int = 1
    new: bool = False  # one of issue 17's new models (the target compares these)
    seeds_cap: callable = lambda group: None


def _fastals_cg(params, seed):
    import fastals
    return fastals.ImplicitALS(solver="cg", iterations=ITERATIONS, random_state=seed,
                               num_threads=THREADS, **params)


def _implicit_als(params, seed):
    from implicit.cpu.als import AlternatingLeastSquares
    return AlternatingLeastSquares(iterations=ITERATIONS, random_state=seed,
                                   num_threads=THREADS, **params)


def _ease(params, seed):
    import fastals
    # one BLAS thread: on 2 cores shared with other jobs, 2 spinning OpenBLAS threads made
    # the inverse 6x slower (measured); on an idle machine num_threads=2 is the faster
    return fastals.EASE(num_threads=1, **params)


def _rp3beta(params, seed):
    import fastals
    return fastals.RP3beta(num_threads=THREADS, **params)


def _points(**axes):
    names = list(axes)
    return [dict(zip(names, values)) for values in itertools.product(*axes.values())]


# To compare another model, append a Contender: a `make` function (module level, importing
# its library inside) and a grid. The Rendle-style iALS with the iALS++ solver (issue 17,
# parts 1-2) belongs here, grouped by "factors" over the same DIMENSIONS and marked new=True,
# e.g. Contender("fastals iALS++", _fastals_ials_pp, grid=..., group="factors", new=True).
DIMENSIONS = (64, 128, 256, 512, 1024)


def _cg_grid(quick):
    """regularization x alpha per d; at d >= 512 fewer points, as one fit takes minutes on
    2 shared cores (d = 1024: 280 s on MovieLens 100K under load 16)."""
    if quick:
        return _points(factors=DIMENSIONS[:3], regularization=(10.0,), alpha=(1.0,))
    return (_points(factors=DIMENSIONS[:3], regularization=(10.0, 30.0, 100.0),
                    alpha=(1.0, 4.0))
            + _points(factors=(512,), regularization=(30.0, 100.0), alpha=(1.0,))
            + _points(factors=(1024,), regularization=(100.0,), alpha=(1.0,)))


CONTENDERS = [
    Contender("fastals ImplicitALS (CG)", _fastals_cg, group="factors", grid=_cg_grid,
              seeds_cap=lambda d: 1 if d >= 1024 else None),
    Contender("implicit ALS (CG)", _implicit_als,
              grid=lambda quick: _points(factors=(32, 64) if quick else (16, 32, 64, 128),
                                         regularization=(10.0,) if quick else (3.0, 10.0, 30.0),
                                         alpha=(1.0,) if quick else (1.0, 4.0),
                                         binarise=(False, True))),
    Contender("fastals EASE", _ease, binary=True, new=True,
              default={},
              grid=lambda quick: _points(regularization=(200.0, 500.0) if quick else
                                         (100.0, 200.0, 300.0, 500.0, 1000.0, 2000.0))),
    Contender("fastals RP3beta", _rp3beta, binary=True, new=True, default={},
              grid=lambda quick: _points(alpha=(1.0,) if quick else (0.75, 1.0),
                                         beta=(0.5,) if quick else (0.3, 0.5, 0.7),
                                         K=(100,) if quick else (100, 200),
                                         normalize_similarity=(False, True))),
]
BY_NAME = {c.name: c for c in CONTENDERS}
SHORT = {"ease": "fastals EASE", "rp3beta": "fastals RP3beta",
         "cg": "fastals ImplicitALS (CG)", "implicit": "implicit ALS (CG)"}


# --- inside a worker ------------------------------------------------------------------------
def evaluate(model, train, test):
    """(nDCG@10, recall@20) of the model's top-20 lists for every user with a test item."""
    from fastals.evaluation import metrics_from_recommendations
    users = np.flatnonzero(np.diff(test.indptr))
    ids, _ = model.recommend(users, train[users], N=20, filter_already_liked_items=True)
    ids = np.asarray(ids, dtype=np.int64)
    ndcg = metrics_from_recommendations(ids[:, :10], test, users, K=10)["ndcg"]
    recall = metrics_from_recommendations(ids, test, users, K=20)["recall"]
    return float(ndcg), float(recall)


def worker(spec):
    from threadpoolctl import threadpool_limits

    contender = BY_NAME[spec["contender"]]
    R = load_dataset(spec["dataset"])
    results = [[] for _ in spec["points"]]
    with threadpool_limits(contender.blas_threads, "blas"):
        for seed in spec["seeds"]:
            train, test = split(R, seed)
            binary = train.copy()
            binary.data[:] = 1.0
            for k, params in enumerate(spec["points"]):
                params = dict(params)
                fit_on = binary if params.pop("binarise", contender.binary) else train
                model = contender.make(params, seed)
                start = time.perf_counter()
                model.fit(fit_on, show_progress=False)
                seconds = time.perf_counter() - start
                results[k].append([*evaluate(model, fit_on, test), seconds])
    h.emit({"results": results})


# --- the report ---------------------------------------------------------------------------------
def summary(cells):
    """(mean nDCG, sd, mean recall, sd, median fit seconds) of a point's per-seed cells."""
    ndcg, recall, seconds = zip(*cells)

    def sd(values):
        return statistics.stdev(values) if len(values) > 1 else 0.0
    return (statistics.mean(ndcg), sd(ndcg), statistics.mean(recall), sd(recall),
            statistics.median(seconds), len(cells))


def run_contender(contender, dataset, seeds, quick, log):
    """{group value or None: [(params, summary)]} for every grid point (and the default)."""
    points = [p for p in contender.grid(quick)
              if not (p.get("binarise") and dataset in BINARY_DATASETS)]
    if contender.default is not None and contender.default not in points:
        points = points + [contender.default]
    groups = {}
    for p in points:
        groups.setdefault(p.get(contender.group) if contender.group else None, []).append(p)
    out = {}
    for key, group in groups.items():
        cap = contender.seeds_cap(key)
        spec = {"contender": contender.name, "dataset": dataset,
                "seeds": seeds[:cap] if cap else seeds, "points": group}
        began = time.perf_counter()
        result = h.run_worker(Path(__file__), spec, timeout=4 * 3600)
        log(f"  {dataset} / {contender.name}{'' if key is None else f' {contender.group}={key}'}"
            f": {len(group)} points x {len(spec['seeds'])} seeds in {time.perf_counter() - began:.0f} s"
            + (f" -- ERROR {result['error']}" if "error" in result else ""))
        out[key] = result.get("error") if "error" in result else \
            [(p, summary(cells)) for p, cells in zip(group, result["results"])]
    return out


def describe(params, skip=()):
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items() if k not in skip) or "defaults"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="1 seed, small grids")
    parser.add_argument("--seeds", type=int, default=None, help="seeds (default 3, quick 1)")
    parser.add_argument("--data", default=",".join(DATASETS),
                        help=f"comma-separated data sets ({', '.join(DATASETS)})")
    parser.add_argument("--only", default=None,
                        help="comma-separated contenders (names or: " + ", ".join(SHORT) + ")")
    parser.add_argument("--no-write", action="store_true", help="do not touch bench/RESULTS.md")
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    seeds = list(range(args.seeds or (1 if args.quick else 3)))
    datasets = [d for d in args.data.split(",") if d]
    if "movielens-100k" in datasets and h.movielens_path() is None:
        print("MovieLens 100K not found (set FASTALS_DATA): skipped")
        datasets.remove("movielens-100k")
    chosen = CONTENDERS if args.only is None else [
        BY_NAME[SHORT.get(name, name)] for name in args.only.split(",")]
    began = time.strftime("%H:%M", time.gmtime())
    body = [f"`python bench/quality.py{' --quick' if args.quick else ''}`, {len(seeds)} "
            f"seed(s) (each a fixed 80/20 split and the models' seed), {THREADS} threads, "
            f"ALS {ITERATIONS} iterations. Cells: mean +- seed-to-seed sd; fit: median "
            "seconds; vs implicit: nDCG@10 over implicit's best. Best points are chosen by "
            "nDCG@10 on the test split, for every contender alike. EASE and RP3beta fit the "
            "binarised training matrix, today's CG its values, implicit either (binarise "
            "in its grid). EASE ran with 1 BLAS thread (see _ease).", ""]
    for dataset in datasets:
        print(f"{dataset}: {DATASETS[dataset]}", flush=True)
        found = {c.name: run_contender(c, dataset, seeds, args.quick, print) for c in chosen}
        rows, best_of = [], {}
        for contender in chosen:
            for key, points in found[contender.name].items():
                if isinstance(points, str):
                    rows.append([contender.name, "", f"error: {points}", "", "", ""])
                    continue
                grid = [pt for pt in points if pt[0] in contender.grid(args.quick)]
                params, best = max(grid, key=lambda pt: pt[1][0])
                label = contender.name + ("" if key is None else f" d={key}")
                rows.append((label, "best: " + describe(params, (contender.group,)), best))
                if best[0] > best_of.get(contender.name, (0,))[0]:
                    best_of[contender.name] = best
                if contender.default is not None:
                    default = next(s for pt, s in points if pt == contender.default)
                    rows.append((contender.name, "default", default))
        reference = best_of.get("implicit ALS (CG)", (None,))[0]
        table = []
        for row in rows:
            if len(row) != 3:
                table.append(row)
                continue
            label, what, (n, n_sd, r, r_sd, seconds, n_seeds) = row
            ratio = f"{n / reference:.3f}" if reference else ""
            spread = "" if n_seeds > 1 else " (1 seed)"
            table.append([label, what, f"{n:.4f} +- {n_sd:.4f}{spread}",
                          f"{r:.4f} +- {r_sd:.4f}", f"{seconds:.2f}", ratio])
        new = {name: b for name, b in best_of.items() if BY_NAME[name].new}
        verdict = ""
        if reference and new:
            name, b = max(new.items(), key=lambda kv: kv[1][0])
            gain = b[0] / reference - 1
            verdict = (f"Best new model: {name}, nDCG@10 {b[0]:.4f} against implicit's best "
                       f"{reference:.4f}: {gain:+.1%} (target +10%: "
                       f"{'met' if gain >= 0.10 else 'not met'}).")
        text = "\n".join([f"**{DATASETS[dataset]}**", "",
                          h.table(["model", "point", "nDCG@10", "recall@20", "fit s",
                                   "vs implicit"], table), "", verdict, ""])
        print(text, flush=True)
        body.append(text)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() \
        else ["?"]
    body.append(f"Started {began} UTC; load average at the end {' '.join(load)} (a shared "
                "machine: the fit seconds are indicative only).")
    text = "\n".join(body)
    if not args.no_write and args.only is None:
        h.write_section("Ranking quality: ALS, EASE, RP3beta, implicit (bench/quality.py)",
                        text)


if __name__ == "__main__":
    main()
