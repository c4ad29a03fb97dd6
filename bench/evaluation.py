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
import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Evaluation: ranking_metrics_at_k (fastals vs implicit)"
SETS = {
    "ml-100k": None,
    "synthetic 20k x 10k, 500k nnz": (20_000, 10_000, 500_000),
    "synthetic 100k x 50k, 4M nnz": (100_000, 50_000, 4_000_000),
}


def worker(peer, name, K, factors):
    """One timed ranking_metrics_at_k call; prints a JSON line."""
    import fastals
    from fastals import datasets, evaluation

    if SETS[name] is None:
        matrix = datasets.load_movielens(os.environ["FASTALS_BENCH_ML100K"]).user_items
    else:
        matrix = datasets.synthetic_interactions(*SETS[name], random_state=0)
    train, test = evaluation.train_test_split(matrix, 0.2, random_state=0)
    train = train.tocsr().astype(np.float32)
    test = test.tocsr().astype(np.float32)
    model = fastals.ImplicitALS(factors=factors, iterations=3, random_state=0)
    model.fit(train, show_progress=False)
    if peer == "fastals":
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
    print(json.dumps({"seconds": seconds, **{k: float(result[k]) for k in
                                             ("precision", "map", "ndcg", "auc")}}))


def run_one(peer, name, K, factors):
    # each library with its own defaults (fastals limits BLAS itself while it scores)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = (f"import sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); import evaluation; "
            f"evaluation.worker({peer!r}, {name!r}, {K}, {factors})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{peer} on {name} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 4M set")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--factors", type=int, default=64)
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 5)
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import movielens_100k_path

    ml = movielens_100k_path()
    names = [n for n in SETS if (n != "ml-100k" or ml) and not (args.quick and "4M" in n)]
    if ml:
        os.environ["FASTALS_BENCH_ML100K"] = str(ml)
    rows = []
    for name in names:
        times = {"fastals": [], "implicit": []}
        metrics = {}
        for _ in range(runs):
            for peer in ("fastals", "implicit"):  # alternating, each in its own process
                out = run_one(peer, name, args.k, args.factors)
                times[peer].append(out["seconds"])
                metrics[peer] = out
        same = all(abs(metrics["fastals"][m] - metrics["implicit"][m]) < 1e-6
                   for m in ("precision", "map", "ndcg", "auc"))
        med = {p: float(np.median(t)) for p, t in times.items()}
        rows.append((name, med["fastals"], med["implicit"], med["implicit"] / med["fastals"],
                     metrics["fastals"]["precision"], same))
        print(f"{name}: fastals {med['fastals']:.3f} s, implicit {med['implicit']:.3f} s "
              f"({med['implicit'] / med['fastals']:.1f}x), same metrics: {same}", flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    table = [HEADING, "",
             f"K={args.k}, factors={args.factors}, medians of {runs} alternating runs, each in "
             f"its own process; {os.cpu_count()} cores, load average {load:.1f} at the end; "
             f"{platform.processor() or platform.machine()}. Time of one ranking_metrics_at_k "
             "call (recommend with training items filtered + scoring), same factors for both.",
             "", "| data | fastals s | implicit s | implicit / fastals | precision@K | "
                 "same precision/MAP/nDCG/AUC |", "|---|---:|---:|---:|---:|:---:|"]
    table += [f"| {n} | {f:.3f} | {i:.3f} | {r:.1f}x | {p:.4f} | {'yes' if s else 'NO'} |"
              for n, f, i, r, p, s in rows]
    write_section("\n".join(table) + "\n")


def write_section(text):
    """Replace this script's section of bench/RESULTS.md (others' sections are kept)."""
    path = ROOT / "bench" / "RESULTS.md"
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    if HEADING in old:
        start = old.index(HEADING)
        nxt = old.find("\n## ", start + len(HEADING))
        old = old[:start] + (old[nxt + 1:] if nxt >= 0 else "")
    path.write_text(old.rstrip("\n") + "\n\n" + text)


if __name__ == "__main__":
    main()
