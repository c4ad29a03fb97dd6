"""The commands of ``fastals`` but the bench: ``models``, ``fit``, ``recommend``, ``similar``,
``evaluate`` (with ``--compare MODEL2``: a paired bootstrap comparison of two models on the
same test users), ``tune`` and ``demo``. ``fit`` takes ``--validation-split``, ``--metric``
and ``--early-stopping-rounds`` (validation while training). Each ``cmd_*`` takes the parsed
arguments and a :class:`~fastals.cli.console.Console` and returns the exit code.

Imports: numpy and the standard library at load time, the other modules of ``fastals.cli``
(console, registry, loading); inside the commands, the ``fastals`` package (its models,
``datasets``, ``evaluation``, ``id_recommender``, ``tuning`` and ``_threads``).
"""
from __future__ import annotations

import argparse
import inspect
import json
import math
import time
from pathlib import Path

import numpy as np

from fastals.cli.console import EXIT_OK, CLIError, UsageError, _fmt, _plain, _table
from fastals.cli.loading import (_check_output, _describe, _detect_dataset, _load_recommender,
                                 _weight, load_data)
from fastals.cli.registry import MODELS, _make_model, _model_params, resolve_model


def cmd_models(args, console):
    rows = [[name, spec.attribute, spec.kind, "yes" if spec.similar else "no", spec.summary]
            for name, spec in MODELS.items()]
    console.out(_table(["model", "class", "data", "similar items", "what"], rows,
                       ["<", "<", "<", "<", "<"]))
    return EXIT_OK


def _validation_kwargs(args, model, name):
    """The fit's validation arguments from --validation-split, --metric and
    --early-stopping-rounds (empty when none is given)."""
    split = getattr(args, "validation_split", None)
    metric = getattr(args, "metric", None)
    rounds = getattr(args, "early_stopping_rounds", None)
    if split is None:
        if metric is not None or rounds is not None:
            raise UsageError("--metric and --early-stopping-rounds need --validation-split "
                             "(the held-out part of each user's interactions to score)")
        return {}
    if "validation_split" not in inspect.signature(model.fit).parameters:
        raise UsageError(f"model {name} fits in one pass, without iterations: "
                         "--validation-split applies to iterative models (implicit-als, "
                         "explicit-als, sgd, ...)")
    kwargs = {"validation_split": split}
    if metric is not None:
        kwargs["metric"] = metric
    if rounds is not None:
        kwargs["early_stopping_rounds"] = rounds
    return kwargs


def cmd_fit(args, console):
    from fastals.id_recommender import IdRecommender

    model = _make_model(args.model, args, args.param)  # an unknown model fails before reading
    validation = _validation_kwargs(args, model, args.model)
    out = _check_output(args.output)
    data = _weight(load_data(args.data, args, MODELS[args.model].kind), args.weighting, model,
                   console)
    console.note(f"data: {_describe(data)}")
    start = time.perf_counter()
    rec = IdRecommender(model).fit(data, show_progress=console.progress, **validation)
    seconds = time.perf_counter() - start
    if getattr(model, "regularization", None) == "auto":  # ImplicitALS: resolved by the fit
        console.note(f"regularization auto: {model.regularization_applied:g} (10 x the mean "
                     "confidence of the stored values; --regularization sets a number)")
    path = rec.save(out)
    console.out(f"fitted {type(model).__name__} in {seconds:.2f} s on {_describe(data)}; "
                f"wrote {path}")
    if validation:
        (metric, values), = ((k, v) for k, v in model.history.items()
                             if k not in ("loss", "training rmse"))
        best = model.best_iteration
        step = "epoch" if hasattr(model, "epochs") else "iteration"
        console.out(f"validation on {validation['validation_split']:.0%} of each user's "
                    f"interactions (held out of the fit): {metric} {_fmt(values[best - 1])} "
                    f"at {step} {best} of {len(values)} run"
                    + (f"; the model keeps that {step}" if best != len(values) and
                       "early_stopping_rounds" in validation else ""))
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


def _evaluate_models(named_models, train, test, K, console, threads, per_user=False):
    """[(name, metrics dict incl. fit seconds)] for each (name, unfitted model)."""
    from fastals.evaluation import mae, ranking_metrics_at_k, rmse

    results = []
    for name, model in named_models:
        start = time.perf_counter()
        model.fit(train.user_items, show_progress=console.progress)
        fit_seconds = time.perf_counter() - start
        metrics = ranking_metrics_at_k(model, train, test, K, num_threads=threads or 0,
                                       show_progress=console.progress, per_user=per_user)
        metrics["fit_seconds"] = fit_seconds
        if callable(getattr(model, "predict", None)):
            metrics["rmse"], metrics["mae"] = rmse(model, test), mae(model, test)
        results.append((name, metrics))
    return results


_TABLE_METRICS = (("precision", "precision@{K}"), ("recall", "recall@{K}"),
                  ("map", "map@{K}"), ("ndcg", "ndcg@{K}"), ("auc", "auc@{K}"),
                  ("coverage", "coverage"), ("precision_standard", "hits/K@{K}"),
                  ("hit_rate", "hit_rate@{K}"), ("mrr", "mrr@{K}"), ("novelty", "novelty"),
                  ("popularity_percentile", "pop_pct"), ("diversity", "diversity"))


def _metrics_table(results, K):
    has_ratings = any("rmse" in m for _, m in results)
    header = ["model"] + [label.format(K=K) for _, label in _TABLE_METRICS] + (
        ["rmse", "mae"] if has_ratings else []) + ["fit s"]
    rows = []
    for name, m in results:
        row = [name] + [_fmt(m.get(k)) for k, _ in _TABLE_METRICS]
        if has_ratings:
            row += [_fmt(m.get("rmse")), _fmt(m.get("mae"))]
        rows.append(row + [f"{m['fit_seconds']:.2f}"])
    return _table(header, rows)


_COMPARED = ("precision", "precision_standard", "hit_rate", "recall", "map", "ndcg", "mrr",
             "novelty", "popularity_percentile", "diversity")


def _comparison_table(comparison, name_a, name_b, K, confidence):
    rows = []
    for metric, c in comparison.items():
        label = dict(_TABLE_METRICS).get(metric, metric).format(K=K)
        rows.append([label, _fmt(c["a"]), _fmt(c["b"]), _fmt(c["difference"]),
                     f"[{_fmt(c['low'])}, {_fmt(c['high'])}]", _fmt(c["p_value"], 3),
                     f"{c['wins']}/{c['losses']}/{c['ties']}"])
    return _table(["metric", name_a, name_b, "difference", f"{confidence:.0%} interval",
                   "p", "users +/-/="], rows)


def cmd_evaluate(args, console):
    from fastals.evaluation import paired_bootstrap, train_test_split
    from fastals.models.popularity import PopularityBaseline

    model = _make_model(args.model, args, args.param)
    compare = getattr(args, "compare", None)
    other = None
    if compare is not None:  # its own defaults, the same seed and threads
        other = _make_model(compare, argparse.Namespace(seed=args.seed, threads=args.threads),
                            args.compare_param)
    data = load_data(args.data, args, MODELS[args.model].kind)
    train, test = train_test_split(data, args.split, random_state=args.seed)
    train = _weight(train, args.weighting, model, console)
    console.note(f"data: {_describe(data)}; split {1 - args.split:.0%}/{args.split:.0%} "
                 f"(seed {args.seed}): {train.nnz:,} train, {test.nnz:,} test")
    models = [(args.model, model)]
    if other is not None:
        models.append((compare if compare != args.model else f"{compare} (2)", other))
    if not args.no_baseline and "popularity" not in (args.model, compare):
        models.append(("popularity", PopularityBaseline()))
    results = _evaluate_models(models, train, test, args.k, console, args.threads,
                               per_user=other is not None)
    comparison = None
    if other is not None:
        comparison = paired_bootstrap(results[0][1], results[1][1], args.bootstrap,
                                      0.95, args.seed, list(_COMPARED))
    for _, metrics in results:
        metrics.pop("per_user", None)
    table = {name: {k: _plain(v) for k, v in m.items()} for name, m in results}
    if args.json:
        console.out(json.dumps(table if comparison is None else
                               {"models": table, "comparison": comparison}))
        return EXIT_OK
    console.out(_metrics_table(results, args.k))
    if comparison is not None:
        console.out("")
        console.out(f"paired comparison on the same {results[0][1]['users']:,} test users "
                    f"({args.bootstrap} bootstrap resamples of the users, seed {args.seed}):")
        console.out(_comparison_table(comparison, results[0][0], results[1][0], args.k, 0.95))
    return EXIT_OK


def cmd_tune(args, console):
    from fastals.tuning import tune

    cls = resolve_model(args.model)
    fixed = {}
    if args.threads is not None and "num_threads" in inspect.signature(cls).parameters:
        fixed["num_threads"] = args.threads
    data = load_data(args.data, args, MODELS[args.model].kind)
    if args.weighting is not None:  # given: fixed (bm25/tfidf weigh the data), else searched
        probe = cls()
        data = _weight(data, args.weighting, probe, console)
        if hasattr(probe, "weighting"):
            fixed["weighting"] = probe.weighting
    console.note(f"data: {_describe(data)}; tuning {cls.__name__} for {args.budget:g} s"
                 + (f" or {args.max_trials} trials" if args.max_trials else "")
                 + f" on {args.metric}@{args.k} over a {1 - args.split:.0%}/{args.split:.0%} "
                 f"split (seed {args.seed})")
    out = Path(args.output)
    if out.is_dir() or not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise CLIError(f"{out}: not a file in an existing folder")
    try:
        result = tune(cls, data, budget=args.budget, max_trials=args.max_trials, fixed=fixed,
                      metric=args.metric, K=args.k, validation_size=args.split,
                      random_state=args.seed, n_jobs=args.jobs, refit=False, verbose=False,
                      confirm=args.confirm)
    except RuntimeError as exc:
        raise CLIError(str(exc)) from None
    console.out(result.leaderboard())
    console.out(f"best {args.metric}@{args.k} {result.best_score:.4f} after "
                f"{len(result.trials)} trials in {result.seconds:.1f} s: "
                + ", ".join(f"{k}={v}" for k, v in result.best_params.items()))
    result.best_params.update({k: v for k, v in fixed.items() if k != "num_threads"})
    path = result.save(out)
    console.out(f"wrote {path}; reuse it with: fastals fit {args.data} --model {args.model} "
                f"--params {path} -o model.npz")
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

