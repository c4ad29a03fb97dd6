"""Ranking losses, fastals vs implicit 0.7.3 vs LightFM: samples per second and quality.

    python bench/ranking.py            # MovieLens 100K and a Last.fm-sized synthetic set
    python bench/ranking.py --quick    # MovieLens 100K and a tenth of the Last.fm size

Pairs, each library in its own process, alternating, 2 threads, medians of the runs:
fastals BPR vs implicit BPR, fastals LMF vs implicit LMF, fastals BPR vs LightFM BPR and
fastals WARP vs LightFM WARP, at equal factors (100; LMF 30) and equal epochs. Reported:
samples per second (stored pairs x epochs / fit seconds: one sample is one stored pair,
whatever negatives it draws), seconds per epoch, precision@10 and nDCG@10 of the top 10
(liked items filtered; fastals.evaluation's definitions) on the held-out 20%.

Data: MovieLens 100K binarised, 80/20 split (seed 42); a synthetic matrix of Last.fm 360K's
shape (358,868 users x 160,112 items, 17.5M pairs, power-law popularity:
fastals.datasets.synthetic_interactions), quality on 2,000 of its test users.

LightFM has no wheel for this Python: the script makes a venv under bench/out (with the
system's numpy and scipy) and pip-installs it there, which builds its sdist with the C
compiler; when that fails its rows say so.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # this checkout's fastals
import _harness as h  # noqa: E402

LIGHTFM_VENV = h.OUT / "venv-lightfm"
LASTFM = (358_868, 160_112, 17_500_000)
EVAL_USERS = 2000


def lightfm_python():
    """The venv's python with LightFM importable, made on first use, or None."""
    python = LIGHTFM_VENV / "bin" / "python"
    probe = [str(python), "-c", "import lightfm"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    h.OUT.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(LIGHTFM_VENV)],
                   check=True)
    install = subprocess.run([str(python), "-m", "pip", "install", "lightfm"],
                             capture_output=True, text=True)
    if install.returncode != 0 or subprocess.run(probe, capture_output=True).returncode != 0:
        (h.OUT / "lightfm-install.log").write_text(install.stdout + install.stderr)
        return None
    return python


def data(name, quick):
    import scipy.sparse as sp
    from fastals.datasets import load_movielens_100k, synthetic_interactions
    from fastals.evaluation import train_test_split
    if name == "ml100k":
        R = load_movielens_100k(h.movielens_path())[0].tocsr().astype(np.float32)
    else:
        shape = LASTFM if not quick else tuple(v // 10 for v in LASTFM)
        R = h.cached_matrix(f"lastfm-sized-{shape[2]}", lambda: synthetic_interactions(
            *shape, random_state=0)).astype(np.float32)
    R.data[:] = 1
    train, test = train_test_split(R, 0.2, random_state=42)
    return sp.csr_matrix(train), sp.csr_matrix(test)


def evaluation_users(test):
    users = np.flatnonzero(np.diff(test.indptr))
    if len(users) > EVAL_USERS:
        users = np.random.default_rng(0).choice(users, EVAL_USERS, replace=False)
    return np.sort(users)


def worker(spec):
    from fastals.evaluation import metrics_from_recommendations
    train, test = data(spec["data"], spec["quick"])
    lib, loss, F, epochs = spec["lib"], spec["loss"], spec["factors"], spec["epochs"]
    users = evaluation_users(test)
    if lib == "lightfm":
        from lightfm import LightFM
        model = LightFM(no_components=F, loss=loss, random_state=0)
        start = time.perf_counter()
        model.fit(train.tocoo(), epochs=epochs, num_threads=2)
        seconds = time.perf_counter() - start
        items = np.arange(train.shape[1], dtype=np.int32)
        top = []
        for u in users:
            scores = model.predict(int(u), items, num_threads=2)
            scores[train.indices[train.indptr[u]:train.indptr[u + 1]]] = -np.inf
            top.append(np.argsort(-scores, kind="stable")[:10])
        top = np.array(top)
    else:
        if lib == "implicit":
            from implicit.cpu.bpr import BayesianPersonalizedRanking as BPR
            from implicit.cpu.lmf import LogisticMatrixFactorization as LMF
            classes = {"bpr": BPR, "lmf": LMF}
        else:
            import fastals
            classes = {"bpr": fastals.BayesianPersonalizedRanking,
                       "lmf": fastals.LogisticMatrixFactorization, "warp": fastals.WARP}
        model = classes[loss](factors=F, iterations=epochs, num_threads=2, random_state=0)
        start = time.perf_counter()
        model.fit(train, show_progress=False)
        seconds = time.perf_counter() - start
        top, _ = model.recommend(users, train[users], N=10)
    metrics = metrics_from_recommendations(np.asarray(top, dtype=np.int64), test, users=users,
                                           K=10)
    return {"seconds": seconds, "samples_per_s": train.nnz * epochs / seconds,
            "s_per_epoch": seconds / epochs, "precision": metrics["precision"],
            "ndcg": metrics["ndcg"], "nnz": train.nnz}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="a tenth of the Last.fm size")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    if args.worker:
        h.emit(worker(json.loads(args.worker)))
        return
    if h.movielens_path() is None:
        sys.exit("MovieLens 100K not found: put it at ../shared/data/ml-100k or set FASTALS_DATA")
    lightfm = lightfm_python()
    script = Path(__file__)
    # (data, loss, factors, epochs, peer); fastals runs the same loss beside each peer
    ml = [("ml100k", "bpr", 100, 100, "implicit"), ("ml100k", "lmf", 30, 30, "implicit"),
          ("ml100k", "bpr", 100, 100, "lightfm"), ("ml100k", "warp", 100, 30, "lightfm")]
    # three epochs on the large set: one would time mostly each library's setup (sorting,
    # initial factors), which a real fit of tens of epochs spreads thin
    big = [("lastfm", "bpr", 100, 3, "implicit"), ("lastfm", "lmf", 30, 3, "implicit"),
           ("lastfm", "bpr", 100, 3, "lightfm"), ("lastfm", "warp", 100, 3, "lightfm")]
    rows = []
    for name, loss, F, epochs, peer in ml + big:
        repeats = args.repeats or (3 if name == "ml100k" else 1 if loss == "lmf" else 2)
        base = {"data": name, "loss": loss, "factors": F, "epochs": epochs, "quick": args.quick}
        specs = [dict(base, lib="fastals"), dict(base, lib=peer)]
        results = [[] for _ in specs]
        for rep in range(repeats):  # alternating, each in its own process
            for k in (0, 1) if rep % 2 == 0 else (1, 0):
                if specs[k]["lib"] == "lightfm":
                    if lightfm is None:
                        results[k].append({"error": "LightFM did not install"})
                        continue
                    cmd = [str(lightfm), str(script), "--worker", json.dumps(specs[k])]
                    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=7200)
                    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
                    results[k].append(json.loads(lines[-1]) if lines else
                                      {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]})
                else:
                    results[k].append(h.run_worker(script, specs[k], timeout=7200))
                print(specs[k], "->", results[k][-1], flush=True)
        medians = [{key: h.median_of(res, key) for key in
                    ("samples_per_s", "s_per_epoch", "precision", "ndcg")} for res in results]
        errors = [next((r["error"] for r in res if "error" in r), None) for res in results]
        ratio = (medians[0]["samples_per_s"] / medians[1]["samples_per_s"]
                 if medians[1]["samples_per_s"] else None)
        label = {"ml100k": "MovieLens 100K", "lastfm": "Last.fm-sized" +
                 (" / 10" if args.quick else "")}[name]
        for k, lib in enumerate(("fastals", peer)):
            m = medians[k]
            rows.append([label, loss.upper(), F, epochs, lib,
                         f"{m['samples_per_s'] / 1e6:.2f}" if m["samples_per_s"] else
                         f"error: {(errors[k] or '')[:60]}",
                         f"{m['s_per_epoch']:.3f}" if m["s_per_epoch"] else "",
                         f"{m['precision']:.3f}" if m["precision"] is not None else "",
                         f"{m['ndcg']:.3f}" if m["ndcg"] is not None else "",
                         f"{ratio:.1f}x" if k == 0 and ratio else ""])
    load = Path("/proc/loadavg").read_text().split()[:3]
    body = (f"`python bench/ranking.py{' --quick' if args.quick else ''}`: each library in "
            "its own process, alternating, 2 threads, medians of "
            f"{args.repeats or '3 (MovieLens) / 2 (Last.fm-sized; LMF 1)'} runs; load average at the "
            f"end {' '.join(load)} (the machine is shared: absolute figures are noisy, the "
            "ratios less so). Samples = stored training pairs x epochs. LightFM: "
            + ("built from its sdist in a venv under bench/out." if lightfm else
               "did not install (see bench/out/lightfm-install.log).") + "\n\n"
            + h.table(["data", "loss", "factors", "epochs", "library", "M samples/s",
                       "s/epoch", "P@10", "nDCG@10", "fastals / peer samples/s"], rows))
    h.write_section("Ranking losses (bench/ranking.py)", body)
    print(body)


if __name__ == "__main__":
    main()
