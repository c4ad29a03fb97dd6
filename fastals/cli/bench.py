"""``fastals bench``: a self-check that needs nothing beyond fastals' own dependencies. A
small ImplicitALS fit on the compiled kernels is timed against the in-package numpy
reference, the two are checked to agree, and the instruction-set build that ran is named.
Comparisons with other libraries are the scripts of the repository's bench/ folder.

Imports: numpy and the standard library at load time, :mod:`fastals.cli.console`; inside the
functions, ``fastals`` (ImplicitALS), ``fastals.reference``, ``fastals.datasets``,
``fastals._threads`` and the kernel dispatcher for the build's name. Never a peer library.
"""
from __future__ import annotations

import json
import time

import numpy as np

from fastals.cli.console import EXIT_OK, CLIError, _table


# a self-check, not a benchmark: small enough to run in seconds; peers are compared in bench/
BENCH_SHAPE = (5_000, 2_000, 100_000)  # users, items, interactions (synthetic)
BENCH_REGULARIZATION, BENCH_CG_STEPS = 0.05, 3
BENCH_SAMPLE = 100  # users and items the numpy reference solves (it loops over rows in Python)
BENCH_TOLERANCE = 1e-4  # relative difference allowed between float32 kernels and the reference


def _bench_fit_seconds(matrix, factors, iterations, repeats, threads):
    """The fitted model and the median seconds of one iteration over `repeats` fits."""
    import fastals

    per_iteration = []
    for _ in range(repeats):
        model = fastals.ImplicitALS(factors=factors, iterations=iterations,
                                    regularization=BENCH_REGULARIZATION,
                                    cg_steps=BENCH_CG_STEPS, random_state=0,
                                    num_threads=threads)
        stamps = [0.0]
        model.fit(matrix, show_progress=False, callback=lambda i, seconds, loss:
                  stamps.append(seconds))
        per_iteration += np.diff(stamps).tolist()
    return model, float(np.median(per_iteration))


def _bench_reference_seconds(matrix, model, sample):
    """Seconds of one iteration of the numpy reference's CG solver, extrapolated from
    `sample` users and `sample` items solved against the fitted factors."""
    from fastals.reference import implicit_als_cg_step

    rng = np.random.default_rng(0)
    X, Y = model.user_factors.astype(np.float64), model.item_factors.astype(np.float64)
    seconds = 0.0
    for rows, own, other in ((matrix, X, Y), (matrix.T.tocsr(), Y, X)):
        picked = np.sort(rng.choice(rows.shape[0], min(sample, rows.shape[0]), replace=False))
        start = time.perf_counter()
        implicit_als_cg_step(rows[picked], own[picked], other, BENCH_REGULARIZATION,
                             model.alpha, BENCH_CG_STEPS)
        seconds += (time.perf_counter() - start) / len(picked) * rows.shape[0]
    return seconds


def _bench_difference(matrix, model, sample):
    """Relative difference (Frobenius) between the users' factors solved exactly by the
    compiled kernel (a fold-in) and by the numpy reference, against the fitted items."""
    from fastals.reference import implicit_als_exact_step

    users = np.flatnonzero(np.diff(matrix.indptr))[:sample]
    expected = implicit_als_exact_step(matrix[users], model.item_factors.astype(np.float64),
                                       BENCH_REGULARIZATION, model.alpha)
    got = model.recalculate_user(users, matrix[users])
    return float(np.linalg.norm(got - expected) / max(np.linalg.norm(expected), 1e-300)), \
        len(users)


def cmd_bench(args, console):
    """Time a small ImplicitALS fit on the compiled kernels against the in-package numpy
    reference, check that the two agree, and say which instruction-set build ran."""
    from fastals._kernels.dispatch import available_isas, kernels
    from fastals._threads import resolve_threads
    from fastals.datasets import synthetic_interactions

    n_users, n_items, nnz = BENCH_SHAPE
    matrix = synthetic_interactions(n_users, n_items, nnz, random_state=0)
    threads = resolve_threads(args.threads if args.threads is not None else 0)
    isa = kernels("_als").__name__.rsplit("_", 1)[-1]
    console.note(f"bench: ImplicitALS CG ({BENCH_CG_STEPS} steps), factors={args.factors}, "
                 f"{args.iterations} iterations x {args.repeats} fits, {n_users:,} x "
                 f"{n_items:,} synthetic with {matrix.nnz:,} interactions, {threads} "
                 f"thread{'s' if threads != 1 else ''}")
    model, ours = _bench_fit_seconds(matrix, args.factors, args.iterations, args.repeats,
                                     threads)
    reference = _bench_reference_seconds(matrix, model, BENCH_SAMPLE)
    difference, solved = _bench_difference(matrix, model, BENCH_SAMPLE)
    agrees = difference <= BENCH_TOLERANCE
    if args.json:
        console.out(json.dumps({
            "seconds_per_iteration": {"fastals": ours}, "reference": reference,
            "ratio": reference / ours, "isa": isa, "isas": available_isas("_als"),
            "threads": threads, "factors": args.factors, "iterations": args.iterations,
            "relative_difference": difference, "agrees": agrees}))
    else:
        rows = [["compiled kernels", f"{ours:.4f}", "1"],
                [f"numpy reference (from {BENCH_SAMPLE} users and items)", f"{reference:.2f}",
                 f"{reference / ours:.0f}x"]]
        console.out(_table(["ImplicitALS fit", "s/iteration", "time vs compiled"], rows))
        console.out(f"kernels: the {isa} build (this CPU and build have: "
                    f"{', '.join(available_isas('_als'))}; FASTALS_ISA chooses another)")
        console.out(f"agreement: {solved} users solved by the kernel and by the reference "
                    f"differ by {difference:.1e} (relative; tolerance {BENCH_TOLERANCE:g}): "
                    f"{'ok' if agrees else 'FAILED'}")
        console.out("comparisons with other libraries (implicit, Spark MLlib, Surprise, ...) "
                    "are the scripts in the source repository's bench/ folder")
    if not agrees:
        raise CLIError(f"the compiled kernels ({isa}) and the numpy reference disagree: "
                       f"relative difference {difference:.2e} > {BENCH_TOLERANCE:g}")
    return EXIT_OK

