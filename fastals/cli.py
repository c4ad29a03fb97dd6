"""The ``fastals`` command: demo, fit, recommend, similar, evaluate, bench, models.

``fastals demo`` is the first thing to run on a fresh machine: it generates the embedded
synthetic data set (or reads ``--data movielens-100k PATH``), fits ImplicitALS, and prints
the training time, ranking metrics against a popularity baseline, and sample
recommendations and similar items by name.

Exit codes: 0 success, 1 an error (bad file, unknown id, ...), 2 a usage error. Errors are
one line on stderr naming the file, column or id; ``--debug`` adds the traceback. Progress
bars go to stderr and are off with ``--quiet`` or when stderr is not a terminal.

Models are looked up by name in :data:`MODELS`, which maps each to the name of its class on
the ``fastals`` module (every registered model ships; ``fastals models`` lists them).

``fastals bench`` is a self-check that needs nothing beyond fastals' own dependencies: a
small fit on the compiled kernels timed against the in-package numpy reference, the two
checked to agree, and the instruction-set build that ran. Comparisons with other libraries
are the scripts of the repository's bench/ folder.

Imports: numpy at load time; inside the commands, the ``fastals`` package (its models,
``data``, ``datasets``, ``evaluation`` and ``reference``, ``_threads`` and the kernel
dispatcher for the build's name). Never a peer library.
"""
from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class CLIError(Exception):
    """A user-facing error: printed as one line, exit code 1."""


class UsageError(CLIError):
    """A wrong command line: exit code 2."""


# --- the model registry ------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """A model the command line can fit: the class's name on the `fastals` module."""

    attribute: str
    kind: str  # "implicit" (interaction strengths) or "explicit" (ratings)
    summary: str
    similar: bool = True  # `fastals similar` can rank items by similarity with its model


MODELS = {
    "implicit-als": ModelSpec("ImplicitALS", "implicit",
                              "implicit-feedback ALS (Hu, Koren & Volinsky), CG or Cholesky"),
    "explicit-als": ModelSpec("ExplicitALS", "explicit",
                              "ALS on ratings with biases (ALS-WR as Spark)"),
    "sgd": ModelSpec("SGDMatrixFactorization", "explicit",
                     "SGD matrix factorisation on ratings (Funk SVD)"),
    "item-knn": ModelSpec("ItemKNN", "implicit", "item-item nearest neighbours (cosine, BM25 ...)"),
    "popularity": ModelSpec("PopularityBaseline", "implicit",
                            "the most popular items for everyone (a baseline)", similar=False),
}


def resolve_model(name):
    """The model class registered under `name`, looked up on the `fastals` module."""
    import fastals

    spec = MODELS.get(name)
    if spec is None:
        raise UsageError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    cls = getattr(fastals, spec.attribute, None)
    if cls is None:  # every registered model ships: only a broken installation lacks one
        raise CLIError(f"model {name} is not available in this version of fastals "
                       f"({fastals.__version__}: it has no fastals.{spec.attribute})")
    return cls


def _model_params(cls, name, args, extra):
    """Constructor arguments from the flags the user gave, checked against the signature."""
    accepted = inspect.signature(cls).parameters
    wanted = {}
    for flag, param in (("factors", "factors"), ("iterations", "iterations"),
                        ("regularization", "regularization"), ("alpha", "alpha"),
                        ("learning_rate", "learning_rate"), ("epochs", "epochs"),
                        ("neighbours", "K"), ("similarity", "similarity")):
        value = getattr(args, flag, None)
        if value is not None:
            if param not in accepted:
                raise UsageError(f"model {name} has no parameter {param!r} (--"
                                 f"{flag.replace('_', '-')}); its parameters: "
                                 f"{', '.join(accepted)}")
            wanted[param] = value
    for item in extra or []:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param must look like NAME=VALUE, got {item!r}")
        if key not in accepted:
            raise UsageError(f"model {name} has no parameter {key!r}; its parameters: "
                             f"{', '.join(accepted)}")
        wanted[key] = _parse_value(text)
    seed = getattr(args, "seed", None)
    if seed is not None and "random_state" in accepted and "random_state" not in wanted:
        wanted["random_state"] = seed
    threads = getattr(args, "threads", None)
    if threads is not None and "num_threads" in accepted and "num_threads" not in wanted:
        wanted["num_threads"] = threads
    return wanted


def _parse_value(text):
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def _make_model(name, args, extra=None, defaults=None):
    cls = resolve_model(name)
    params = dict(defaults or {})
    params.update(_model_params(cls, name, args, extra))
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise CLIError(f"model {name}: {exc}") from None


# --- output helpers ----------------------------------------------------------------------------
class Console:
    """Where the command writes: results to stdout, notes and progress to stderr."""

    def __init__(self, quiet):
        self.quiet = quiet
        self.progress = not quiet and sys.stderr.isatty()

    def out(self, text=""):
        print(text, flush=True)

    def note(self, text):
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)


def _one_line(text):
    return " ".join(str(text).split())


def _plain(value):
    """A JSON-able Python value from numpy scalars."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _table(header, rows, align=None):
    widths = [max(len(str(h)), *(len(str(r[k])) for r in rows)) if rows else len(str(h))
              for k, h in enumerate(header)]
    align = align or ["<"] + [">"] * (len(header) - 1)
    lines = ["  ".join(f"{str(h):{a}{w}}" for h, w, a in zip(header, widths, align))]
    lines += ["  ".join(f"{str(v):{a}{w}}" for v, w, a in zip(row, widths, align))
              for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _fmt(value, digits=4):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


# --- data ---------------------------------------------------------------------------------
_DATASET_MARKERS = (
    ("u.data", "movielens"),
    ("ratings.csv", "movielens"),
    ("usersha1-artmbid-artname-plays.tsv", "lastfm-360k"),
    ("user_artists.dat", "lastfm-2k"),
)


def _detect_dataset(path):
    """The loader name for a folder (or a data set's own file), or None."""
    p = Path(path)
    if p.is_file():
        for marker, name in _DATASET_MARKERS:
            if p.name == marker and (marker != "ratings.csv" or _movielens_header(p)):
                return name  # a file of one's own called ratings.csv is read as a plain CSV
        return None
    for marker, name in _DATASET_MARKERS:
        if (p / marker).exists():
            return name
    for sub in p.iterdir() if p.is_dir() else ():
        for marker, name in _DATASET_MARKERS:
            if sub.is_dir() and (sub / marker).exists():
                return name
    return None


def _movielens_header(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline().strip().startswith("userId,movieId,rating")
    except OSError:
        return False


def load_data(spec, args, kind="implicit"):
    """Interactions from a DATA argument: ``synthetic``, a data set folder, or a CSV/TSV file."""
    from fastals import datasets
    from fastals.data import read_csv

    if spec == "synthetic":
        return datasets.make_synthetic(kind=kind, random_state=getattr(args, "seed", 0) or 0)
    path = Path(spec)
    if not path.exists():
        raise CLIError(f"{spec}: no such file or folder")
    columns = [getattr(args, k, None) for k in ("user_col", "item_col", "value_col", "time_col")]
    detected = _detect_dataset(path)
    if detected is not None and not any(c is not None for c in columns):
        return datasets.load(detected, path)
    if path.is_dir():
        raise CLIError(f"{spec} is a folder without a known data set (MovieLens u.data or "
                       "ratings.csv, Last.fm usersha1-artmbid-artname-plays.tsv or "
                       "user_artists.dat): give a CSV/TSV file")
    header = "infer" if getattr(args, "header", None) is None else args.header
    return read_csv(path, *(_column(c) for c in columns), sep=getattr(args, "sep", None),
                    header=header, encoding=getattr(args, "encoding", "utf-8"),
                    duplicates=getattr(args, "duplicates", "sum"))


def _column(value):
    return int(value) if value is not None and value.isdigit() else value


def _weight(data, how):
    from fastals import data as fdata

    if how in (None, "none"):
        return data
    if how == "log":
        return fdata.log_weight(data)
    if how == "bm25":
        return data.with_matrix(fdata.bm25_weight(data.user_items.T).T.tocsr(), data.timestamps)
    if how == "tfidf":
        return data.with_matrix(fdata.tfidf_weight(data.user_items.T).T.tocsr(), data.timestamps)
    raise UsageError(f"unknown weighting {how!r}")


def _describe(data):
    return (f"{data.n_users:,} users x {data.n_items:,} items, {data.nnz:,} interactions "
            f"({data.nnz / max(1, data.n_users * data.n_items):.2%} dense)")


def _check_output(path):
    """Fail before fitting when the model file cannot be written."""
    out = Path(path if str(path).endswith(".npz") else f"{path}.npz")
    if out.is_dir():
        raise CLIError(f"{out} is a folder: give a file name for the model")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise CLIError(f"{folder}: no such folder for the model file")
    if not os.access(folder, os.W_OK):
        raise CLIError(f"{folder}: not writable")
    return out


# --- commands ---------------------------------------------------------------------------------
def cmd_models(args, console):
    rows = [[name, spec.attribute, spec.kind, "yes" if spec.similar else "no", spec.summary]
            for name, spec in MODELS.items()]
    console.out(_table(["model", "class", "data", "similar items", "what"], rows,
                       ["<", "<", "<", "<", "<"]))
    return EXIT_OK


def cmd_fit(args, console):
    from fastals.id_recommender import IdRecommender

    model = _make_model(args.model, args, args.param)  # an unknown model fails before reading
    out = _check_output(args.output)
    data = _weight(load_data(args.data, args, MODELS[args.model].kind), args.weighting)
    console.note(f"data: {_describe(data)}")
    start = time.perf_counter()
    rec = IdRecommender(model).fit(data, show_progress=console.progress)
    seconds = time.perf_counter() - start
    path = rec.save(out)
    console.out(f"fitted {type(model).__name__} in {seconds:.2f} s on {_describe(data)}; "
                f"wrote {path}")
    return EXIT_OK


def _load_recommender(path):
    from fastals.id_recommender import IdRecommender

    p = Path(path)
    if not p.exists():
        raise CLIError(f"{path}: no such model file")
    if p.is_dir():
        raise CLIError(f"{path} is a folder, not a model file")
    return IdRecommender.load(p)


def _results_json(rec, queries, ids, scores, key):
    ids2, scores2 = np.atleast_2d(ids), np.atleast_2d(scores)
    out = []
    for query, row_ids, row_scores in zip(queries, ids2, scores2):
        entries = []
        for item, score in zip(row_ids, row_scores):
            if item is None or not np.isfinite(score):
                continue
            entry = {"item": _plain(item), "score": float(score)}
            for column, values in rec.item_info.items():
                value = values[rec.items.index(item)]
                entry[column] = None if value is None or (isinstance(value, float) and
                                                          math.isnan(value)) else _plain(value)
            entries.append(entry)
        out.append({key: _plain(query), "items": entries})
    return out


def _results_text(rec, queries, ids, scores, title):
    blocks = []
    ids2, scores2 = np.atleast_2d(ids), np.atleast_2d(scores)
    for query, row_ids, row_scores in zip(queries, ids2, scores2):
        rows = []
        valid = [(item, score) for item, score in zip(row_ids, row_scores)
                 if item is not None and np.isfinite(score)]
        labels = rec.item_labels([item for item, _ in valid]) if valid else []
        for rank, ((item, score), label) in enumerate(zip(valid, labels), start=1):
            rows.append([rank, str(_plain(item)), f"{score:.4f}",
                         label if label != str(_plain(item)) else ""])
        blocks.append(f"{title} {_plain(query)}:\n" + (
            _table(["rank", "item", "score", ""], rows, [">", "<", ">", "<"]) if rows
            else "  (nothing to recommend)"))
    return "\n\n".join(blocks)


def cmd_recommend(args, console):
    rec = _load_recommender(args.model)
    users = args.user
    filter_liked = not args.include_seen and rec.user_items is not None
    if not args.include_seen and rec.user_items is None:
        console.note(f"note: {args.model} holds no training interactions, so items the users "
                     "already have are not filtered out")
    ids, scores = rec.recommend(users, N=args.n, filter_already_liked_items=filter_liked)
    if args.json:
        console.out(json.dumps(_results_json(rec, users, ids, scores, "user"), ensure_ascii=False))
    else:
        console.out(_results_text(rec, users, ids, scores, "recommendations for user"))
    return EXIT_OK


def cmd_similar(args, console):
    rec = _load_recommender(args.model)
    items = args.item
    ids, scores = rec.similar_items(items, N=args.n)
    if args.json:
        console.out(json.dumps(_results_json(rec, items, ids, scores, "item"), ensure_ascii=False))
    else:
        console.out(_results_text(rec, items, ids, scores, "items similar to"))
    return EXIT_OK


def _evaluate_models(named_models, train, test, K, console, threads):
    """[(name, metrics dict incl. fit seconds)] for each (name, unfitted model)."""
    from fastals.evaluation import mae, ranking_metrics_at_k, rmse

    results = []
    for name, model in named_models:
        start = time.perf_counter()
        model.fit(train.user_items, show_progress=console.progress)
        fit_seconds = time.perf_counter() - start
        metrics = ranking_metrics_at_k(model, train, test, K, num_threads=threads or 0,
                                       show_progress=console.progress)
        metrics["fit_seconds"] = fit_seconds
        if callable(getattr(model, "predict", None)):
            metrics["rmse"], metrics["mae"] = rmse(model, test), mae(model, test)
        results.append((name, metrics))
    return results


def _metrics_table(results, K):
    has_ratings = any("rmse" in m for _, m in results)
    header = ["model", f"precision@{K}", f"recall@{K}", f"map@{K}", f"ndcg@{K}", f"auc@{K}",
              "coverage"] + (["rmse", "mae"] if has_ratings else []) + ["fit s"]
    rows = []
    for name, m in results:
        row = [name] + [_fmt(m[k]) for k in ("precision", "recall", "map", "ndcg", "auc",
                                              "coverage")]
        if has_ratings:
            row += [_fmt(m.get("rmse")), _fmt(m.get("mae"))]
        rows.append(row + [f"{m['fit_seconds']:.2f}"])
    return _table(header, rows)


def cmd_evaluate(args, console):
    from fastals.evaluation import train_test_split
    from fastals.models.popularity import PopularityBaseline

    model = _make_model(args.model, args, args.param)
    data = load_data(args.data, args, MODELS[args.model].kind)
    train, test = train_test_split(data, args.split, random_state=args.seed)
    train = _weight(train, args.weighting)
    console.note(f"data: {_describe(data)}; split {1 - args.split:.0%}/{args.split:.0%} "
                 f"(seed {args.seed}): {train.nnz:,} train, {test.nnz:,} test")
    models = [(args.model, model)]
    if not args.no_baseline and args.model != "popularity":
        models.append(("popularity", PopularityBaseline()))
    results = _evaluate_models(models, train, test, args.k, console, args.threads)
    if args.json:
        console.out(json.dumps({name: {k: _plain(v) for k, v in m.items()}
                                for name, m in results}))
    else:
        console.out(_metrics_table(results, args.k))
    return EXIT_OK


_DEMO_MODEL = {"synthetic": dict(factors=16, regularization=1.0, iterations=15),
               "real": dict(factors=64, regularization=0.05, iterations=15)}


def _demo_data(args):
    from fastals import datasets

    spec = args.data
    if not spec or spec == ["synthetic"]:
        return "synthetic", datasets.make_synthetic(random_state=args.seed)
    if len(spec) == 1:
        name = _detect_dataset(spec[0]) if Path(spec[0]).exists() else None
        if name is None:
            raise UsageError(f"--data {spec[0]}: give a data set name and a path, e.g. "
                             f"--data movielens-100k PATH (names: synthetic, "
                             f"{', '.join(datasets.LOADERS)})")
        return name, datasets.load(name, spec[0])
    if len(spec) != 2:
        raise UsageError("--data takes a data set name and a path, e.g. --data movielens-100k "
                         "PATH")
    name, path = spec
    if name not in datasets.LOADERS:
        raise UsageError(f"--data: unknown data set {name!r}; choose from synthetic, "
                         f"{', '.join(datasets.LOADERS)}")
    if not Path(path).exists():
        raise CLIError(f"{path}: no such file or folder")
    return name, datasets.load(name, path)


def cmd_demo(args, console):
    import fastals
    from fastals._threads import resolve_threads
    from fastals.evaluation import train_test_split
    from fastals.models.popularity import PopularityBaseline

    began = time.perf_counter()
    name, data = _demo_data(args)
    source = "embedded synthetic data (planted tastes over named genres)" \
        if name == "synthetic" else f"{name} from {args.data[-1]}"
    console.out(f"fastals {fastals.__version__} demo: {source}")
    console.out(f"  {_describe(data)}")
    train, test = train_test_split(data, 0.2, random_state=args.seed)
    console.out(f"  split 80/20 at random (seed {args.seed}): {train.nnz:,} train, "
                f"{test.nnz:,} test interactions")
    params = dict(_DEMO_MODEL["synthetic" if name == "synthetic" else "real"])
    params.update(_model_params(fastals.ImplicitALS, "implicit-als", args, None))
    params.setdefault("random_state", args.seed)
    model = fastals.ImplicitALS(**params)
    threads = resolve_threads(model.num_threads)
    results = _evaluate_models([("ImplicitALS", model), ("popularity", PopularityBaseline())],
                               train, test, args.k, console, args.threads)
    metrics = dict(results)["ImplicitALS"]
    console.out("")
    console.out(f"trained ImplicitALS(factors={model.factors}, iterations={model.iterations}, "
                f"regularization={model.regularization}) in {metrics['fit_seconds']:.2f} s "
                f"on {threads} thread{'s' if threads != 1 else ''}")
    console.out("")
    console.out(f"ranking metrics on the {metrics['users']:,} test users "
                f"(training items filtered out):")
    console.out(_metrics_table(results, args.k))
    base = dict(results)["popularity"]["precision"]
    if base > 0:
        console.out(f"ImplicitALS precision@{args.k} is {metrics['precision'] / base:.1f}x the "
                    "popularity baseline's")
    _demo_examples(model, train, console)
    console.out("")
    console.out(f"done in {time.perf_counter() - began:.1f} s. Next: fastals fit DATA.csv "
                "--model implicit-als -o model.npz; fastals recommend model.npz --user ID")
    return EXIT_OK


def _demo_examples(model, train, console):
    """A user's history and recommendations, and the items similar to the most popular one."""
    from fastals.id_recommender import IdRecommender

    rec = IdRecommender(model, train)
    counts = np.diff(train.user_items.indptr)
    middle = np.flatnonzero((counts >= 10) & (counts <= 60))
    user_index = int(middle[0]) if len(middle) else int(np.argmax(counts))
    user = rec.users.to_ids(user_index)
    row = train.user_items[user_index]
    top = row.indices[np.argsort(-row.data, kind="stable")[:5]]
    groups = train.item_info.get("group")
    favourite = train.user_info.get("favourite_group")

    def label(index):
        text = str(train.item_labels([index])[0])
        if groups is not None:
            text = f"{text} ({groups[index]})" if groups[index] not in text else text
        return text

    console.out("")
    liked = f" (planted favourite genre: {favourite[user_index]})" if favourite is not None else ""
    console.out(f"user {user!r}{liked} has {len(row.indices)} training items, the top ones:")
    if groups is not None:
        names, counts = np.unique(groups[row.indices].astype(str), return_counts=True)
        mix = ", ".join(f"{n} {c}" for c, n in sorted(zip(counts, names), reverse=True))
        console.out(f"  (by genre: {mix})")
    for index in top:
        console.out(f"    {label(index)}")
    ids, scores = rec.recommend(user, N=5)
    console.out(f"  recommended for {user!r}:")
    for item, score in zip(ids, scores):
        console.out(f"    {label(rec.items.index(item)):<40} {score:.3f}")
    popular = int(np.argmax(np.bincount(train.user_items.indices, minlength=train.n_items)))
    item = rec.items.to_ids(popular)
    similar, sims = rec.similar_items(item, N=6, filter_items=[item])
    console.out(f"  items similar to {label(popular)!s} (the most popular item):")
    for other, sim in zip(similar, sims):
        console.out(f"    {label(rec.items.index(other)):<40} {sim:.3f}")


# --- bench -------------------------------------------------------------------------------------
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


# --- argument parsing ------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit code 2)."""

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


def _checked(convert, accept, what):
    """An argparse type: `convert` the text, then require `accept(value)`."""

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_positive_int = _checked(int, lambda v: v >= 1, "a positive integer")
_non_negative_int = _checked(int, lambda v: v >= 0, "an integer >= 0")
_fraction = _checked(float, lambda v: 0 < v < 1, "a number in (0, 1)")
_number = _checked(float, math.isfinite, "a finite number")


def build_parser():
    common = _Parser(add_help=False)
    common.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars or notes")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of errors")
    common.add_argument("--threads", type=_non_negative_int, default=argparse.SUPPRESS,
                        help="threads for the kernels (0: all cores)")

    hyper = _Parser(add_help=False)
    group = hyper.add_argument_group("model parameters (only those the model takes)")
    group.add_argument("--factors", type=_positive_int)
    group.add_argument("--iterations", type=_non_negative_int)
    group.add_argument("--regularization", type=_number)
    group.add_argument("--alpha", type=_number)
    group.add_argument("--learning-rate", dest="learning_rate", type=_number)
    group.add_argument("--epochs", type=_non_negative_int)
    group.add_argument("--neighbours", type=_positive_int, help="K of item-knn")
    group.add_argument("--similarity", help="similarity of item-knn (cosine, bm25, ...)")
    group.add_argument("--param", action="append", metavar="NAME=VALUE",
                       help="any other constructor parameter (repeatable)")
    group.add_argument("--seed", type=_non_negative_int, default=0,
                       help="random_state of the model and of the split (default 0)")

    data = _Parser(add_help=False)
    group = data.add_argument_group("reading DATA (a CSV/TSV file, a data set folder, or "
                                    "'synthetic')")
    group.add_argument("--user-col", help="user column: header name or position from 0")
    group.add_argument("--item-col", help="item column: header name or position from 0")
    group.add_argument("--value-col", help="value column (plays, rating); default: found by "
                                           "name, else 1 per row")
    group.add_argument("--time-col", help="timestamp column")
    group.add_argument("--sep", help="field separator (default: from the extension or the "
                                     "first line)")
    group.add_argument("--no-header", dest="header", action="store_false", default=None,
                       help="the first line is data")
    group.add_argument("--encoding", default="utf-8")
    group.add_argument("--duplicates", default="sum",
                       choices=("sum", "mean", "max", "min", "first", "last", "error"),
                       help="how repeated (user, item) rows combine (default sum)")
    group.add_argument("--weighting", default="none", choices=("none", "log", "bm25", "tfidf"),
                       help="confidence weighting of the training values (bm25/tfidf as "
                            "implicit's Last.fm example: over items x users)")

    parser = _Parser(prog="fastals", parents=[common],
                     description="Fast recommender systems: fit, recommend, evaluate.",
                     epilog="Start with: fastals demo")
    parser.add_argument("--version", action="version",
                        version=f"fastals {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("demo", parents=[common],
                       help="generate data, fit ImplicitALS, show metrics and recommendations")
    p.add_argument("--data", nargs="+", metavar="NAME PATH",
                   help="a real data set instead: e.g. --data movielens-100k PATH")
    p.add_argument("--factors", type=_positive_int)
    p.add_argument("--iterations", type=_non_negative_int)
    p.add_argument("--regularization", type=_number)
    p.add_argument("--alpha", type=_number)
    p.add_argument("-k", type=_positive_int, default=10, help="K of the metrics (default 10)")
    p.add_argument("--seed", type=_non_negative_int, default=0)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("fit", parents=[common, hyper, data], help="fit a model and save it")
    p.add_argument("data", metavar="DATA")
    p.add_argument("--model", default="implicit-als", help=f"one of {', '.join(MODELS)}")
    p.add_argument("-o", "--output", required=True, metavar="MODEL.npz")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("recommend", parents=[common], help="recommend items to users")
    p.add_argument("model", metavar="MODEL.npz")
    p.add_argument("--user", action="append", required=True, metavar="ID",
                   help="a user id as in the data (repeatable)")
    p.add_argument("-n", type=_positive_int, default=10, help="how many items (default 10)")
    p.add_argument("--include-seen", action="store_true",
                   help="do not filter the items the user already has")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("similar", parents=[common], help="items similar to an item")
    p.add_argument("model", metavar="MODEL.npz")
    p.add_argument("--item", action="append", required=True, metavar="ID",
                   help="an item id as in the data (repeatable)")
    p.add_argument("-n", type=_positive_int, default=10)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_similar)

    p = sub.add_parser("evaluate", parents=[common, hyper, data],
                       help="fit on a split and print ranking (and rating) metrics")
    p.add_argument("data", metavar="DATA")
    p.add_argument("--model", default="implicit-als", help=f"one of {', '.join(MODELS)}")
    p.add_argument("--split", type=_fraction, default=0.2, help="test fraction (default 0.2)")
    p.add_argument("-k", type=_positive_int, default=10)
    p.add_argument("--no-baseline", action="store_true", help="skip the popularity baseline")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("bench", parents=[common],
                       help="self-check: the compiled kernels against the numpy reference "
                            "(speed and agreement); peers are compared by the bench/ scripts")
    p.add_argument("--factors", type=_positive_int, default=32)
    p.add_argument("--iterations", type=_positive_int, default=3)
    p.add_argument("--repeats", type=_positive_int, default=3, help="fits timed (median)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("models", parents=[common], help="list the models")
    p.set_defaults(func=cmd_models)
    return parser


def _version():
    try:
        from fastals import __version__
    except Exception:  # a broken build still answers --version
        return "unknown"
    return __version__


# --- entry point -----------------------------------------------------------------------------
def _error_message(exc):
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__


def main(argv=None):
    """Run the command line; returns the exit code (0 ok, 1 error, 2 usage)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(f"fastals: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    if getattr(args, "func", None) is None:
        print("fastals: error: give a command, e.g. fastals demo (see fastals --help)",
              file=sys.stderr)
        return EXIT_USAGE
    debug = getattr(args, "debug", False) or debug
    if not hasattr(args, "threads"):
        args.threads = None
    console = Console(getattr(args, "quiet", False))

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"fastals: warning: {_one_line(message)}", file=sys.stderr)

    previous = warnings.showwarning
    warnings.showwarning = show_warning
    try:
        return args.func(args, console)
    except UsageError as exc:
        print(f"fastals: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("fastals: interrupted", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # e.g. `fastals recommend ... | head`
        sys.stderr.close()
        return EXIT_OK
    except (CLIError, ValueError, TypeError, OSError, ImportError, ArithmeticError,
            MemoryError, KeyError, IndexError) as exc:
        if debug:
            traceback.print_exc()
        print(f"fastals: error: {_one_line(_error_message(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a bug: still one line unless --debug
        if debug:
            traceback.print_exc()
        print(f"fastals: internal error: {type(exc).__name__}: {_one_line(exc)} (run with "
              "--debug for the traceback)", file=sys.stderr)
        return EXIT_ERROR
    finally:
        warnings.showwarning = previous


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
