"""The `fastals` command."""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import scipy.sparse as sp


def _split(matrix, fraction, seed):
    coo = matrix.tocoo()
    test = np.random.default_rng(seed).random(coo.nnz) < fraction

    def part(mask):
        return sp.csr_matrix((coo.data[mask], (coo.row[mask], coo.col[mask])), shape=matrix.shape)
    return part(~test), part(test)


def _precision(ids, test, users, K):
    hits = total = 0
    for row, u in enumerate(users):
        relevant = test.indices[test.indptr[u]:test.indptr[u + 1]]
        hits += np.isin(ids[row], relevant).sum()
        total += min(K, len(relevant))
    return hits / max(total, 1)


def demo(args):
    import fastals
    from fastals.datasets import synthetic_interactions

    data = synthetic_interactions(6000, 3000, 240_000, random_state=0)
    train, test = _split(data, 0.2, seed=1)
    print(f"data: {data.shape[0]} users x {data.shape[1]} items, {data.nnz} interactions "
          "(synthetic, power-law popularity)")
    model = fastals.ImplicitALS(factors=64, regularization=0.05, iterations=10, random_state=0)
    start = time.perf_counter()
    model.fit(train, show_progress=not args.quiet and sys.stderr.isatty())
    print(f"ImplicitALS fit: {time.perf_counter() - start:.2f} s")
    users = np.flatnonzero(np.diff(test.indptr))
    ids, _ = model.recommend(users, train[users], N=10)
    popular = np.argsort(-np.asarray(train.getnnz(axis=0)), kind="stable")
    pop_ids = np.array([[i for i in popular[:10 + train[u].nnz] if i not in set(train[u].indices)][:10]
                        for u in users[:2000]])
    print(f"precision@10: ImplicitALS {_precision(ids, test, users, 10):.4f}, "
          f"popularity baseline {_precision(pop_ids, test, users[:2000], 10):.4f}")
    rec, scores = model.recommend(0, train[0], N=5)
    print(f"user 0 -> items {rec.tolist()}")
    sim, _ = model.similar_items(int(popular[0]), N=5)
    print(f"items similar to the most popular item {popular[0]}: {sim.tolist()}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastals", description="fast recommender systems")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="fit ImplicitALS on generated data and show results")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(run=demo)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
