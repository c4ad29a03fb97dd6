"""iALS++ and Rendle et al.'s iALS: seconds per epoch against the exact and CG solvers, and
quality against dimension on MovieLens 100K.

    python bench/ials.py                # ML-20M-sized synthetic (138,493 x 26,744, 20M)
    python bench/ials.py --quick        # a 30,000 x 6,000, 2M synthetic matrix instead
    python bench/ials.py --part speed   # or --part quality: one half only

Speed: for d = 128, 512, 1024, seconds per epoch (both halves) of fastals.iALS
(``solver="ials++"``, block_size = min(d, 128)), fastals.ImplicitALS with the exact
(``"cholesky"``) and CG solvers, and implicit's CG (its compiled least_squares_cg), on the
binarised synthetic matrix (its 90% training part). A full epoch of the slow peers takes
hours on a shared 2-core machine, so every peer is timed the same way: a random sample of
the rows of each side (sized to about --budget seconds) solved against the full fixed side,
scaled up by the share of the epoch's arithmetic those rows carry (the fixed side's Gram
matrix, made once per half-epoch, is timed apart and not scaled). Each peer runs in its
own process, alternating; medians over repeats.

Quality (:func:`quality_vs_dimension`, callable by other scripts): MovieLens 100K binarised,
a fixed 80/20 split (fastals.evaluation.train_test_split, random_state 42); for each d in
64 ... 1024, Rendle-iALS (alpha_0, lambda, nu over a small grid) and today's CG ImplicitALS
(alpha, lambda over a small grid), at equal epochs, each grid point chosen on a 90/10
validation split of the training part, then refit on all of it: test nDCG@10 and
recall@20.

FLOPs: the arithmetic of one epoch counted per solver (:func:`flops_per_epoch`), and the
fraction of the float32 FMA peak of the 2 cores it reaches: peak = cores x FMA units per
core x 16 float32 lanes x 2 FLOP x clock (see :func:`fma_peak`).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # this checkout's fastals
import _harness as h  # noqa: E402

SIZES = {"full": (138_493, 26_744, 20_000_000), "quick": (30_000, 6_000, 2_000_000)}
DIMS = (128, 512, 1024)
SPEED_PEERS = ("ials++", "cholesky", "cg", "implicit-cg")
# the speed runs' hyper-parameters: Rendle et al.'s ML-20M values for iALS; bench/als.py's
# for HKV (alpha 1 on binary data: c = 2)
IALS = {"regularization": 0.003, "unobserved_weight": 0.1, "regularization_exponent": 1.0}
HKV = {"regularization": 0.05, "alpha": 1.0}
CG_STEPS = 3
QUALITY_DIMS = (64, 128, 256, 512, 1024)
IALS_GRID = [{"unobserved_weight": a0, "regularization": lam, "regularization_exponent": nu}
             for a0 in (0.1, 0.3, 1.0) for lam in (0.003, 0.01, 0.03) for nu in (0.5, 1.0)]
CG_GRID = [{"alpha": alpha, "regularization": lam} for alpha in (1.0, 5.0, 20.0)
           for lam in (0.05, 1.0)]
QUALITY_EPOCHS = 8


def fma_peak(cores=2, fma_units=2, lanes=16, ghz=None):
    """Float32 FMA peak in FLOP/s: cores x FMA units x lanes x 2 (multiply + add) x clock.
    The clock is /proc/cpuinfo's (nominal) MHz unless given; Xeons with AVX-512 since
    Skylake-SP Gold/Platinum (and Sapphire Rapids) have 2 FMA-512 units per core."""
    if ghz is None:
        ghz = 2.0
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                ghz = float(line.split(":")[1]) / 1000
                break
    return cores * fma_units * lanes * 2 * ghz * 1e9, ghz


def flops_per_epoch(n_users, n_items, nnz, d, solver, block_size=128):
    """Arithmetic of one epoch (users, then items), 2 FLOP per multiply-add: the sum of
    :func:`half_epoch_flops` over the two sides (each holds every stored value once)."""
    return half_epoch_flops(n_users, nnz, d, solver, block_size) \
        + half_epoch_flops(n_items, nnz, d, solver, block_size)


def half_epoch_flops(rows, nnz, d, solver, block_size=128):
    """Arithmetic of solving `rows` rows holding `nnz` stored values.

    ials++ (per row and block of b = min(d, block_size)): the rank-nnz update of the
    b x b block (upper triangle, nnz b^2 / 2 FMA), the right-hand side and the cache
    update (2 nnz b), the block's Cholesky (b^3 / 6) and solves (b^2), the update of
    G x (d b); plus the cache's first fill (nnz d) and G x (d^2 / 2). cholesky: nnz d^2 / 2
    + d^3 / 6 + d^2 per row. cg: per step the product with the Gram matrix (d^2) and two
    passes over the stored values (2 nnz d), cg_steps + 1 times (the residual).
    """
    if solver == "ials++":
        b = min(d, block_size)
        blocks = d / b
        fma = nnz * (blocks * (b * b / 2 + 2 * b) + d) \
            + rows * (blocks * (b ** 3 / 6 + b * b + d * b) + d * d / 2)
    elif solver == "cholesky":
        fma = nnz * (d * d / 2 + d) + rows * (d ** 3 / 6 + d * d)
    else:
        fma = (CG_STEPS + 1) * (rows * d * d + nnz * 2 * d)
    return 2 * fma


# --- data -----------------------------------------------------------------------------------
def synthetic(size):
    """The binarised synthetic matrix's 90% training part (cached in bench/out)."""
    from fastals.datasets import synthetic_interactions
    from fastals.evaluation import train_test_split
    n_users, n_items, nnz = SIZES[size]

    def make():
        matrix = synthetic_interactions(n_users, n_items, nnz, random_state=2026)
        matrix.data[:] = 1
        return train_test_split(matrix, test_size=0.1, random_state=7)[0]
    return h.cached_matrix(f"ials-{size}-train", make).astype(np.float32)


def movielens():
    """MovieLens 100K binarised, the fixed 80/20 split (random_state 42)."""
    from fastals.datasets import load_movielens_100k
    from fastals.evaluation import train_test_split
    path = h.movielens_path()
    if path is None:
        raise FileNotFoundError("MovieLens 100K not found (../shared/data or FASTALS_DATA)")
    ratings = load_movielens_100k(path)[0].astype(np.float32)
    ratings.data[:] = 1
    return train_test_split(ratings, test_size=0.2, random_state=42)


def make_model(peer, d, threads, epochs, params=None):
    import fastals
    if peer == "ials++":
        return fastals.iALS(factors=d, iterations=epochs, num_threads=threads, random_state=0,
                            **(params or IALS))
    if peer in ("cholesky", "cg"):
        return fastals.ImplicitALS(factors=d, iterations=epochs, solver=peer,
                                   cg_steps=CG_STEPS, num_threads=threads, random_state=0,
                                   **(params or HKV))
    from implicit.cpu.als import AlternatingLeastSquares
    return AlternatingLeastSquares(factors=d, regularization=(params or HKV)["regularization"],
                                   alpha=1.0, iterations=epochs, use_cg=True,
                                   num_threads=threads, random_state=0)


def ndcg(model, train, test, K=10, sample=None, recall_K=None):
    """fastals.evaluation's nDCG@K (and recall@recall_K) over the test users (a seeded
    sample of `sample` of them if given)."""
    from fastals.evaluation import metrics_from_recommendations
    users = np.flatnonzero(np.diff(test.indptr))
    if sample is not None and len(users) > sample:
        users = np.sort(np.random.default_rng(0).choice(users, sample, replace=False))
    N = max(K, recall_K or 0)
    ids, _ = model.recommend(users, train[users], N=N)
    out = {"ndcg": metrics_from_recommendations(ids[:, :K], test, users, K=K)["ndcg"]}
    if recall_K:
        out["recall"] = metrics_from_recommendations(ids[:, :recall_K], test, users,
                                                     K=recall_K)["recall"]
    return out


# --- workers (each in its own process) ------------------------------------------------------
def speed_worker(spec):
    """Seconds of one epoch of one peer, estimated from a random fraction of the rows of
    each side solved against the full fixed side, scaled by the fraction of the epoch's
    arithmetic (:func:`half_epoch_flops`) those rows carry."""
    from threadpoolctl import threadpool_limits
    from fastals._validation import as_csr
    from fastals.models.blocksolve import ImplicitBlockSolver, row_blocks
    train = synthetic(spec["size"])
    peer, d, threads, fraction = spec["peer"], spec["d"], spec["threads"], spec["sample"]
    rng = np.random.default_rng(spec.get("seed", 1))
    solver = "cg" if peer == "implicit-cg" else peer
    model = make_model(solver, d, threads, 0)
    Cui = as_csr(train, "user_items", np.float32)
    X, Y = model._start_factors(rng, *train.shape)
    block = getattr(model, "block_size", None) or min(d, 128)
    total = 0.0
    for rows, own, fixed in ((Cui, X, Y), (Cui.transpose(), Y, X)):
        # the fixed side's Gram matrix is made once per half-epoch: timed apart, unscaled
        with threadpool_limits(1, "blas"):
            start = time.perf_counter()
            gram = fixed.T @ fixed if peer == "implicit-cg" else \
                model._block_solver().regularized_gram(fixed) if peer == "ials++" else \
                ImplicitBlockSolver.for_model(model).regularized_gram(fixed)
            gram_seconds = time.perf_counter() - start
        total += gram_seconds
        pick = np.sort(rng.choice(rows.shape[0], max(1, int(fraction * rows.shape[0])),
                                  replace=False))
        sub = as_csr(rows.to_scipy()[pick], "rows", np.float32)
        part = np.ascontiguousarray(own[pick])
        share = half_epoch_flops(sub.shape[0], sub.nnz, d, solver, block) \
            / half_epoch_flops(rows.shape[0], rows.nnz, d, solver, block)
        with threadpool_limits(1, "blas"):
            if peer == "implicit-cg":
                from implicit.cpu._als import least_squares_cg
                weighted = sub.to_scipy().copy()
                weighted.data = 1.0 + HKV["alpha"] * weighted.data  # implicit's c = r
                start = time.perf_counter()  # (it makes Y^T Y itself: taken off below)
                least_squares_cg(weighted, part, fixed, HKV["regularization"], threads,
                                 CG_STEPS)
                seconds = time.perf_counter() - start - gram_seconds
            else:
                start = time.perf_counter()
                model._solve(sub, row_blocks(sub), part, fixed, "user", threads, gram=gram)
                seconds = time.perf_counter() - start
        total += max(seconds, 0.0) / share
    h.emit({"seconds": [total]})


def quality_worker(spec):
    """Fit one model kind at one d over its grid (chosen on validation), refit on train."""
    from fastals.evaluation import train_test_split
    from threadpoolctl import threadpool_limits
    train, test = movielens()
    fit_part, validation = train_test_split(train, test_size=0.1, random_state=3)
    peer, d, threads = spec["peer"], spec["d"], spec["threads"]
    best = None
    with threadpool_limits(1, "blas"):
        for params in spec["grid"]:
            model = make_model(peer, d, threads, QUALITY_EPOCHS, params)
            model.fit(fit_part, show_progress=False)
            score = ndcg(model, fit_part, validation)["ndcg"]
            if best is None or score > best[0]:
                best = (score, params)
        model = make_model(peer, d, threads, QUALITY_EPOCHS, best[1])
        model.fit(train, show_progress=False)
    h.emit({"validation_ndcg": best[0], "params": best[1],
            **ndcg(model, train, test, K=10, recall_K=20)})


def neighbours(params, grid, keys=("regularization",)):
    """`params` and the grid points that differ from it by one step in one of `keys`."""
    values = {k: sorted({g[k] for g in grid}) for k in keys}
    out = [params]
    for k in keys:
        i = values[k].index(params[k])
        for j in (i - 1, i + 1):
            if 0 <= j < len(values[k]):
                out.append({**params, k: values[k][j]})
    return out


def quality_vs_dimension(dims=QUALITY_DIMS, threads=2, full_grid_up_to=128, log=print):
    """Rows [model, d, chosen parameters, nDCG@10, recall@20] on MovieLens 100K (see the
    module docstring); each (model, d) fitted in its own process. Up to d =
    `full_grid_up_to` each model searches its whole grid; beyond, the best point of the
    previous d and its neighbours in lambda (the fits at large d are the slow ones)."""
    rows, best = [], {}
    for d in dims:
        for peer, label, grid in (("ials++", "iALS (Rendle), iALS++", IALS_GRID),
                                  ("cg", "ImplicitALS CG", CG_GRID)):
            points = grid if d <= full_grid_up_to or peer not in best \
                else neighbours(best[peer], grid)
            result = h.run_worker(Path(__file__), {"kind": "quality", "peer": peer, "d": d,
                                                   "threads": threads, "grid": points})
            if "error" in result:
                rows.append([label, d, "error: " + result["error"][:80], "", ""])
            else:
                best[peer] = result["params"]
                chosen = ", ".join(f"{k}={v}" for k, v in result["params"].items())
                rows.append([label, d, chosen, f"{result['ndcg']:.4f}",
                             f"{result['recall']:.4f}"])
            if log:
                log("  " + " | ".join(str(c) for c in rows[-1]))
    return rows


def speed(size, threads, repeats, budget, rate, log=print):
    """Rows [d, solver, s/epoch, TFLOP/epoch, GFLOP/s, of peak] and {(solver, d): s}: each
    peer timed on a row sample sized to about `budget` seconds at `rate` GFLOP/s."""
    train = synthetic(size)
    peak, ghz = fma_peak(cores=threads)
    rows, seconds = [], {}
    for d in DIMS:
        specs = []
        for peer in SPEED_PEERS:
            flops = flops_per_epoch(*train.shape, train.nnz, d,
                                    "cg" if peer == "implicit-cg" else peer)
            specs.append({"kind": "speed", "size": size, "peer": peer, "d": d,
                          "threads": threads, "flops": flops,
                          "sample": min(1.0, budget * rate * 1e9 / flops)})
        log(f"d={d}: sampled fractions "
            + ", ".join(f"{s['peer']} {s['sample']:.3f}" for s in specs))
        results = h.alternate(Path(__file__), specs, repeats, log=None)
        for spec, res in zip(specs, results):
            sec = h.median_of(res, "seconds")
            peer = spec["peer"]
            if sec is None:
                err = next((r["error"] for r in res if "error" in r), "no result")
                rows.append([d, peer, "error: " + err[:80]] + [""] * 4)
                continue
            seconds[(peer, d)] = sec
            rows.append([d, peer, f"{sec:.1f}", f"{spec['flops'] / 1e12:.2f}",
                         f"{spec['flops'] / sec / 1e9:.1f}", f"{spec['flops'] / sec / peak:.1%}",
                         f"{spec['sample']:.3f}"])
            log("  " + " | ".join(str(c) for c in rows[-1]))
    return rows, seconds, peak, ghz


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="the smaller synthetic matrix")
    parser.add_argument("--part", choices=("speed", "quality", "both"), default="both")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds of solving per measurement (sets the row sample)")
    parser.add_argument("--rate", type=float, default=10.0,
                        help="GFLOP/s assumed when sizing the row samples")
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        return (speed_worker if spec["kind"] == "speed" else quality_worker)(spec)

    import os
    size = "quick" if args.quick else "full"
    repeats = args.repeats or 2
    budget = args.budget or (15 if not args.quick else 5)
    load = os.getloadavg()
    parts = []
    if args.part in ("speed", "both"):
        rows, seconds, peak, ghz = speed(size, args.threads, repeats, budget, args.rate)
        n_users, n_items, nnz = SIZES[size]
        ratios = []
        if ("ials++", 128) in seconds and ("ials++", 1024) in seconds:
            ratios.append(f"iALS++ d=1024 / d=128: "
                          f"{seconds[('ials++', 1024)] / seconds[('ials++', 128)]:.1f}x "
                          "(target < 10x)")
        for d in DIMS:
            for other in ("cholesky", "cg", "implicit-cg"):
                if ("ials++", d) in seconds and (other, d) in seconds:
                    ratios.append(f"{other} / iALS++ at d={d}: "
                                  f"{seconds[(other, d)] / seconds[('ials++', d)]:.2f}x")
        parts.append((
            "iALS++ seconds per epoch (bench/ials.py)",
            f"{n_users:,} x {n_items:,} synthetic ({nnz:,} drawn pairs, binarised, 90% "
            "train). "
            f"`python bench/ials.py{' --quick' if args.quick else ''}`, {args.threads} "
            f"threads, float32, {repeats} repeats per peer (alternating, each its own "
            f"process), load average {load[0]:.1f} before the run. Each epoch is estimated "
            "from a random sample of the rows of each side (the `sample` column: the "
            "fraction of rows), solved against the full fixed side and scaled by the share "
            "of the epoch's arithmetic those rows carry (flops_per_epoch). iALS++: fastals."
            f"iALS {IALS}, block_size min(d, 128); cholesky, cg: fastals.ImplicitALS {HKV}, "
            f"cg_steps {CG_STEPS}; implicit-cg: implicit 0.7.3's least_squares_cg on the "
            f"same rows. Peak {peak / 1e9:.0f} GFLOP/s = {args.threads} cores x 2 FMA-512 "
            f"units x 16 float32 lanes x 2 FLOP x {ghz:.1f} GHz (nominal clock).\n\n"
            + h.table(["d", "solver", "s/epoch", "TFLOP/epoch", "GFLOP/s", "of peak",
                       "sample"], rows) + "\n\n" + "; ".join(ratios)))
    if args.part in ("quality", "both"):
        rows = quality_vs_dimension(threads=args.threads)
        parts.append((
            "iALS quality against dimension (bench/ials.py)",
            "MovieLens 100K (binarised, fixed 80/20 split). "
            f"{QUALITY_EPOCHS} epochs for every model (equal epochs); the grid point is "
            "chosen by nDCG@10 on a 90/10 validation split of the training part, then the "
            "model is refit on all of it and scored on the test 20%. iALS grid: alpha_0 in "
            "(0.1, 0.3, 1), lambda in (0.003, 0.01, 0.03), nu in (0.5, 1); CG grid: alpha in "
            "(1, 5, 20), lambda in (0.05, 1); beyond d = 128 the previous d's best point "
            "and its two neighbours in lambda.\n\n"
            + h.table(["model", "d", "chosen", "test nDCG@10", "test recall@20"], rows)))
    for title, body in parts:
        h.write_section(title, body)
    print(f"wrote {h.RESULTS}")


if __name__ == "__main__":
    main()
