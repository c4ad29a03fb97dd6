"""The commands of ``fastals`` but the bench: ``models``, ``fit``, ``recommend``, ``similar``,
``evaluate`` and ``demo``. Each ``cmd_*`` takes the parsed arguments and a
:class:`~fastals.cli.console.Console` and returns the exit code.

Imports: numpy and the standard library at load time, the other modules of ``fastals.cli``
(console, registry, loading); inside the commands, the ``fastals`` package (its models,
``datasets``, ``evaluation``, ``id_recommender`` and ``_threads``).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from fastals.cli.console import EXIT_OK, CLIError, UsageError, _fmt, _plain, _table
from fastals.cli.loading import (_check_output, _describe, _detect_dataset, _load_recommender,
                                 _weight, load_data)
from fastals.cli.registry import MODELS, _make_model, _model_params


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



def _results_json(rec, queries, ids, scores, key):
    """JSON-able results: per query, its id and the items (id, score, metadata) that have a
    score; one index lookup per row for the metadata (``fastals serve`` answers with this)."""
    ids2, scores2 = np.atleast_2d(ids), np.atleast_2d(scores)
    out = []
    for query, row_ids, row_scores in zip(queries, ids2, scores2):
        keep = np.flatnonzero(np.isfinite(row_scores) & (row_ids != None))  # noqa: E711
        items = row_ids[keep].tolist()
        entries = [{"item": item, "score": score}
                   for item, score in zip(items, row_scores[keep].astype(float).tolist())]
        if rec.item_info and items:
            rows = np.atleast_1d(rec.items.index(items))
            for column, values in rec.item_info.items():
                for entry, value in zip(entries, values[rows].tolist()):
                    entry[column] = None if isinstance(value, float) and math.isnan(value) \
                        else value
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

