"""implicit ALS, fastals vs implicit: the checkerboard parity test and MovieLens quality.

    python bench/compat.py            # about 2 minutes on 2 cores
    python bench/compat.py --quick    # fewer seeds

Reproduces the figures behind two defaults of ``fastals.AlternatingLeastSquares``: its
initial factors (implicit's uniform [0, 0.01) draws) and the balancing of the factors at the
end of a fit without regularization.

* Checkerboard: implicit's ``get_checker_board(256)`` (user u likes the items of u's parity,
  the diagonal held out), 32 factors; per seed, the number of (item, neighbour) pairs of the
  top-10 ``similar_items`` lists whose parities differ (0 is a perfect separation).
* MovieLens 100K, binarised, seeded 80/20 split: precision@10 (implicit's definition) and
  nDCG@10 of the top-10 with liked items filtered, for a grid of factors x regularization,
  mean and seed-to-seed standard deviation, at equal settings and at each side's best.

Every library runs in its own process; ``fastals (normal start)`` is fastals with the
N(0, 0.01^2) start it had before.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # this checkout's fastals
import _harness as h  # noqa: E402

LIBS = ("fastals", "fastals (normal start)", "implicit")
GRID = [(factors, reg) for factors in (16, 32, 64, 128) for reg in (0.0, 0.05, 1.0, 10.0, 50.0)]


def checkerboard(n=256):
    """implicit's test matrix: every user likes the items of its parity, diagonal removed."""
    dense = (np.arange(n)[:, None] % 2 == np.arange(n)[None, :] % 2).astype(np.float64)
    np.fill_diagonal(dense, 0)
    return sp.csr_matrix(dense)


def model_for(lib, factors, regularization, seed):
    if lib == "implicit":
        from implicit.cpu.als import AlternatingLeastSquares
        return AlternatingLeastSquares(factors=factors, regularization=regularization,
                                       random_state=seed, num_threads=2)
    import fastals
    model = fastals.AlternatingLeastSquares(factors=factors, regularization=regularization,
                                            random_state=seed, num_threads=2)
    if lib == "fastals (normal start)":
        model._uniform_start = False  # the start of earlier versions, for comparison
    return model


def cross_parity_pairs(model, n):
    ids, _ = model.similar_items(np.arange(n), N=10)
    return int(((ids % 2) != (np.arange(n)[:, None] % 2)).sum())


def worker(spec):
    from threadpoolctl import threadpool_limits

    lib = spec["lib"]
    out = {}
    with threadpool_limits(1, "blas"):
        if spec["task"] == "checkerboard":
            C = checkerboard()
            for reg in (0.0, 0.01):
                counts = []
                for seed in spec["seeds"]:
                    model = model_for(lib, 32, reg, seed)
                    model.fit(C, show_progress=False)
                    counts.append(cross_parity_pairs(model, C.shape[0]))
                out[str(reg)] = counts
        else:
            from fastals.datasets import load_movielens_100k
            from fastals.evaluation import metrics_from_recommendations, train_test_split
            R = load_movielens_100k(h.movielens_path())[0].tocsr().astype(np.float32)
            R.data[:] = 1.0
            train, test = train_test_split(R, 0.2, random_state=42)
            train, test = sp.csr_matrix(train), sp.csr_matrix(test)
            users = np.flatnonzero(np.diff(test.indptr))
            for factors, reg in GRID:
                cells = []
                for seed in spec["seeds"]:
                    model = model_for(lib, factors, reg, seed)
                    model.fit(train, show_progress=False)
                    ids, _ = model.recommend(users, train[users], N=10,
                                             filter_already_liked_items=True)
                    m = metrics_from_recommendations(np.asarray(ids), test, users, K=10)
                    cells.append((m["precision"], m["ndcg"]))
                out[f"{factors},{reg}"] = cells
    h.emit(out)


def mean_sd(values):
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="5 checkerboard seeds, 2 ML seeds")
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    board_seeds = list(range(5 if args.quick else 20))
    ml_seeds = list(range(2 if args.quick else 4))
    board = {lib: h.run_worker(Path(__file__), {"lib": lib, "task": "checkerboard",
                                                "seeds": board_seeds}) for lib in LIBS}
    rows = []
    for lib in LIBS:
        for reg in ("0.0", "0.01"):
            counts = board[lib].get(reg) if "error" not in board[lib] else None
            if counts is None:
                rows.append([lib, reg, "error: " + board[lib].get("error", "?"), "", ""])
                continue
            rows.append([lib, reg, f"{sum(c > 0 for c in counts)} / {len(counts)}",
                         str(max(counts)), " ".join(map(str, counts))])
    body = [f"`python bench/compat.py{' --quick' if args.quick else ''}`, "
            f"{h.machine()}. Each library in its own process, 2 threads, BLAS on 1.", "",
            "Checkerboard 256 x 256 (implicit's get_checker_board), 32 factors, top-10 "
            "similar_items: cross-parity pairs per seed.", "",
            h.table(["library", "regularization", "seeds that mix", "worst seed", "per seed"],
                    rows), ""]
    if h.movielens_path() is not None:
        quality = {lib: h.run_worker(Path(__file__), {"lib": lib, "task": "movielens",
                                                      "seeds": ml_seeds}) for lib in LIBS}
        rows, best = [], {}
        for factors, reg in GRID:
            key = f"{factors},{reg}"
            row = [str(factors), str(reg)]
            for lib in LIBS:
                cells = quality[lib].get(key) if "error" not in quality[lib] else None
                if not cells:
                    row.append("error")
                    continue
                p, p_sd = mean_sd([c[0] for c in cells])
                n, n_sd = mean_sd([c[1] for c in cells])
                row.append(f"{p:.4f} +- {p_sd:.4f} / {n:.4f} +- {n_sd:.4f}")
                if n > best.get(lib, (-1,))[0]:
                    best[lib] = (n, p, factors, reg)
            rows.append(row)
        body += [f"MovieLens 100K binarised, 80/20 split (seed 42), alpha 1, 15 iterations, "
                 f"{len(ml_seeds)} seeds: precision@10 / nDCG@10, mean +- seed-to-seed sd.", "",
                 h.table(["factors", "regularization", *LIBS], rows), "",
                 "Best cell (by nDCG@10) of each: " + "; ".join(
                     f"{lib} {n:.4f} nDCG@10, {p:.4f} P@10 at factors={f}, reg={r}"
                     for lib, (n, p, f, r) in best.items()) + "."]
    text = "\n".join(body)
    print(text)
    h.write_section("implicit compatibility: checkerboard and MovieLens (bench/compat.py)", text)


if __name__ == "__main__":
    main()
