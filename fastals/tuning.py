r"""Hyper-parameter search for fastals models: :func:`tune`, successive halving with warm starts.

``tune(ImplicitALS, data, budget=60)`` holds out part of each user's interactions (a seeded
:func:`~fastals.evaluation.train_test_split` of `data`), samples configurations from a
model-specific search space (log-uniform factors, regularization, alpha, ...; the weighting)
and scores each on the held-out part with :func:`~fastals.evaluation.ranking_metrics_at_k`.

Iterative models are searched by asynchronous successive halving (ASHA, Li et al. 2020),
optionally over Hyperband brackets: the resource is the number of iterations (epochs for
SGD), with rungs at r, r eta, r eta^2 ... up to the maximum. A configuration is fitted
*once*, for the maximum number of iterations, and scored from the fit's callback when it
reaches a rung (the model then holds exactly that iteration's factors); it goes on only
while its score is in the best 1/eta of the scores recorded at that rung (in its bracket),
so a promoted configuration continues from its own factors instead of starting again, and
its best rung (not necessarily its last) is what it scores. With ``brackets=b``, bracket s
begins pruning at rung s and trials take the brackets in turn. Models without iterations
(KNN) are sampled at random.

Trial 0 is the model's own defaults for the searched parameters (``start_with_defaults``;
ImplicitALS's ``regularization="auto"`` and ``weighting="auto"`` among them), so the search
never ends below what the defaults score on the held-out part; the others are drawn.
ImplicitALS's regularization is drawn as a multiple of what ``"auto"`` resolves to for the
trial (``LogUniform(relative_to="auto")``), and a trial whose lambda would make every factor
vanish is skipped unfitted. After the search the best ``confirm`` trials are refitted on
``confirm_splits`` more splits and the best mean wins (the winner's curse of one held-out
part).

The same `random_state` samples the same configurations in the same order and seeds every
fit and the split, so with ``max_trials`` (no time budget, ``n_jobs=1``) the result is
identical from run to run; with a time budget the trials are a prefix of that same
sequence, as long as the machine lets them run.

Trials run one after another on every core by default; ``n_jobs=2`` runs two at once
(threads: the kernels release the GIL), which measured faster on 2 busy cores (see
``n_jobs``).

Floor 5 (above the models, beside :mod:`fastals.evaluation`). May import: numpy, the
standard library, :mod:`fastals.evaluation`, :mod:`fastals._validation`, :mod:`fastals._files`,
:mod:`fastals._threads`, :mod:`fastals.exceptions` and the models' public interface
(:mod:`fastals.models`).
"""
from __future__ import annotations

import inspect
import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastals._files import atomic_path
from fastals._typing import InteractionData
from fastals._validation import check_bool, check_choice, check_float, check_int, \
    check_num_threads, check_random_state
from fastals.evaluation import RANKING_METRICS, mae, ranking_metrics_at_k, rmse, \
    train_test_split
from fastals.exceptions import ModelFitError
from fastals.models.base import RecommenderBase

__all__ = ["Choice", "LogUniform", "TuneResult", "Trial", "default_search_space", "tune"]

log = logging.getLogger("fastals")

#: metrics :func:`tune` can optimise; the rating errors are minimised, the rest maximised
METRICS = tuple(m for m in RANKING_METRICS if m != "coverage") + ("rmse", "mae")


# --- search spaces -------------------------------------------------------------------------
@dataclass(frozen=True)
class LogUniform:
    """A number drawn uniformly on a log scale from [low, high] (rounded if `integer`).

    ``relative_to="auto"`` (for ``regularization``, of models whose ``"auto"`` resolves it
    from the data: ImplicitALS and its subclasses) draws a multiple of what ``"auto"``
    resolves to for the trial's other parameters (its weighting and alpha) on the tuning
    part of the data; the trial records the resulting number. Where the right lambda scales
    with the data's confidences, the multiples span a much narrower range than the numbers.
    """

    low: float
    high: float
    integer: bool = False
    relative_to: str | None = None

    def __post_init__(self):
        check_float("low", self.low, minimum=0, exclusive=True)
        check_float("high", self.high, minimum=self.low)
        if self.relative_to not in (None, "auto"):
            raise ValueError(f"relative_to must be None or 'auto', got {self.relative_to!r}")
        if self.relative_to and self.integer:
            raise ValueError("relative_to='auto' draws a multiple: integer must be False")

    def sample(self, rng):
        value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return int(round(value)) if self.integer else float(f"{value:.4g}")


@dataclass(frozen=True)
class Choice:
    """One of `options`, each equally likely."""

    options: tuple

    def __post_init__(self):
        if not self.options:
            raise ValueError("Choice needs at least one option")

    def sample(self, rng):
        value = self.options[int(rng.integers(len(self.options)))]
        return value.item() if isinstance(value, np.generic) else value


#: (name of a class in the model's MRO, its resource parameter or None, its search space)
_SPACES = (
    ("ImplicitALS", "iterations", {
        "factors": LogUniform(8, 256, integer=True),
        # multiples of regularization="auto" (10 x the mean confidence): 1-1.5 was best on
        # MovieLens, 1.5-3.5 on counts, 0.7 on ratings (bench/RESULTS.md); from 5.5-18, by
        # data set, every factor vanishes
        "regularization": LogUniform(0.1, 5.0, relative_to="auto"),
        "alpha": LogUniform(0.3, 30.0),
        "weighting": Choice(("none", "log")),
    }),
    ("ExplicitALS", "iterations", {
        "factors": LogUniform(4, 128, integer=True),
        "regularization": LogUniform(1e-3, 3.0),
    }),
    ("SGDMatrixFactorization", "epochs", {
        "factors": LogUniform(4, 128, integer=True),
        "learning_rate": LogUniform(1e-3, 0.1),
        "regularization": LogUniform(1e-3, 1.0),
    }),
    ("ItemKNN", None, {
        "K": LogUniform(5, 1000, integer=True),
        "similarity": Choice(("cosine", "bm25", "tfidf", "jaccard")),
    }),
    ("UserKNN", None, {
        "K": LogUniform(5, 1000, integer=True),
        "similarity": Choice(("cosine", "jaccard", "pearson")),
    }),
    ("PopularityBaseline", None, {}),
)


def _model_entry(model_class):
    names = [c.__name__ for c in getattr(model_class, "__mro__", ())]
    for name, resource, space in _SPACES:
        if name in names:
            return resource, space
    return None


def default_search_space(model_class: type) -> dict[str, LogUniform | Choice]:
    """The search space :func:`tune` uses for `model_class` (a copy: change it and pass it
    back as ``space=``). The resource (iterations or epochs) is not part of it."""
    entry = _model_entry(model_class)
    if entry is None:
        name = getattr(model_class, "__name__", model_class)
        raise ValueError(f"no default search space for {name!r}: pass space={{name: "
                         "LogUniform(...) or Choice(...)}")
    return dict(entry[1])


# --- results -------------------------------------------------------------------------------
@dataclass
class Trial:
    """One configuration: its parameters, the iterations it reached and its score there."""

    number: int
    params: dict[str, Any]
    score: float = float("nan")
    resource: int | None = None  # iterations (epochs) at the score, None without a resource
    seconds: float = 0.0
    pruned: bool = False
    ran: int = 0  # iterations (epochs) run; 1 without a resource
    scores: dict[int, float] = field(default_factory=dict)  # rung -> score
    #: parameters drawn as multiples of "auto" (``LogUniform(relative_to="auto")``): the
    #: multiple drawn; `params` holds the number it resolved to once the trial ran
    multiples: dict[str, float] = field(default_factory=dict)
    #: the scores on the confirmation splits (``confirm``), at `resource`
    confirmed: list[float] = field(default_factory=list)
    #: not fitted: its regularization would make every factor vanish (it still counts
    #: towards ``max_trials``)
    skipped: bool = False

    @property
    def mean_score(self) -> float:
        """The mean of `score` and the `confirmed` scores."""
        return float(np.mean([self.score, *self.confirmed]))


@dataclass
class TuneResult:
    """What :func:`tune` found: the best parameters (the resource included), their score,
    every trial, and the model refitted on all of the data with them."""

    model_class: type
    metric: str
    K: int
    resource: str | None
    best_params: dict[str, Any]
    best_score: float
    trials: list[Trial]
    seconds: float
    model: RecommenderBase | None = None

    def leaderboard(self, top: int = 10) -> str:
        """The best `top` trials as a text table, best first: the confirmed ones (by their
        mean over the splits, the ``splits`` column) before the rest."""
        rows = sorted((t for t in self.trials if math.isfinite(t.score)),
                      key=lambda t: (not t.confirmed, _sort_key(
                          self.metric, t.mean_score if t.confirmed else t.score)))[:top]
        names = sorted({k for t in rows for k in t.params})
        extra = [self.resource] if self.resource else []
        confirmed = any(t.confirmed for t in rows)
        header = (["rank", "trial", f"{self.metric}@{self.K}"] + (["splits"] if confirmed else [])
                  + names + extra + ["seconds", ""])
        table = [[str(i + 1), str(t.number), f"{t.score:.4f}"]
                 + ([f"{t.mean_score:.4f}" if t.confirmed else ""] if confirmed else [])
                 + [_fmt(t.params.get(k)) for k in names]
                 + ([str(t.resource)] if extra else [])
                 + [f"{t.seconds:.2f}", "pruned" if t.pruned else ""] for i, t in enumerate(rows)]
        widths = [max(len(r[c]) for r in [header] + table) for c in range(len(header))]
        return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(r, widths)).rstrip()
                         for r in [header] + table)

    def to_dict(self) -> dict[str, Any]:
        """The JSON written by :meth:`save` (what ``fastals fit --params`` reads)."""
        return {"model": self.model_class.__name__, "params": self.best_params,
                "metric": f"{self.metric}@{self.K}", "score": self.best_score,
                "seconds": round(self.seconds, 3),
                "trials": [{"trial": t.number, "params": t.params, "score": t.score,
                            **({"multiples_of_auto": t.multiples} if t.multiples else {}),
                            **({"confirmed": t.confirmed} if t.confirmed else {}),
                            **({self.resource: t.resource} if self.resource else {}),
                            "pruned": t.pruned,
                            **({"skipped": True} if t.skipped else {}),
                            "seconds": round(t.seconds, 3)} for t in self.trials]}

    def save(self, path) -> str:
        """Write :meth:`to_dict` as JSON to `path` (atomically); returns the path."""
        text = json.dumps(self.to_dict(), indent=2, default=_json_default) + "\n"
        with atomic_path(path, suffix=".json") as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        return str(path)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{value!r} is not JSON-able")


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _sort_key(metric, score):
    return score if metric in ("rmse", "mae") else -score


class _Stop(Exception):
    """Raised from a fit's callback to end a trial (pruned, or out of time)."""


# --- the search ----------------------------------------------------------------------------
def _rungs(min_resource, max_resource, eta):
    rungs, r = [], min_resource
    while r < max_resource:
        rungs.append(r)
        r = r * eta
    return rungs + [max_resource]


def _parse_budget(budget):
    """Seconds from a number or a string like "60s", "2m", "1h"; None: no time limit."""
    if budget is None:
        return None
    if isinstance(budget, str):
        text = budget.strip().lower()
        scale = {"s": 1, "m": 60, "h": 3600}.get(text[-1:], None)
        try:
            seconds = float(text[:-1] if scale else text) * (scale or 1)
        except ValueError:
            raise ValueError(f"budget must be seconds or a string like '60s', '5m', '1h', "
                             f"got {budget!r}") from None
    else:
        seconds = budget
    return check_float("budget", seconds, minimum=0, exclusive=True)


def tune(model_class: type, data: InteractionData, *, budget: float | str | None = 60.0,
         max_trials: int | None = None, space: dict | None = None, fixed: dict | None = None,
         metric: str = "ndcg", K: int = 10, validation_size: float = 0.2, eta: int = 3,
         min_resource: int = 2, max_resource: int = 18, brackets: int = 1,
         random_state: int = 0, num_threads: int = 0, n_jobs: int = 1, refit: bool = True,
         verbose: bool = True, start_with_defaults: bool = True, confirm: int = 5,
         confirm_splits: int = 2) -> TuneResult:
    r"""Search hyper-parameters of `model_class` on `data`; return the best and the model.

    Parameters
    ----------
    model_class : a fastals model class (ImplicitALS, ExplicitALS, SGDMatrixFactorization,
        ItemKNN, UserKNN, PopularityBaseline, or any with ``space=``)
    data : scipy sparse matrix or Interactions, users x items
    budget : seconds (or "60s", "5m", "1h"), or None
        Wall time for the whole call, the final refit included: no trial starts (and a
        running one stops at its next iteration) once the time left is what the refit of
        the best configuration is expected to take.
    max_trials : int, optional
        Stop after this many configurations (with ``budget=None``: a reproducible run).
    space : dict, optional
        ``{parameter: LogUniform(...) | Choice(...)}``; default
        :func:`default_search_space`.
    fixed : dict, optional
        Constructor parameters given to every trial (e.g. ``{"dtype": np.float64}``).
    metric : {"ndcg", "precision", "map", "recall", "auc", "rmse", "mae"}
        What is optimised, at `K` (rmse and mae: minimised, for rating models).
    validation_size : float
        Fraction of the interactions held out for scoring.
    eta : int
        Successive halving's rate: a rung keeps the best 1/eta.
    min_resource, max_resource : int
        The rungs of iterations (epochs): min_resource, min_resource * eta, ..., max_resource
        (default 2, 6, 18).
    brackets : int
        Hyperband brackets (at most the number of rungs): bracket s prunes from rung s on,
        and trial n runs in bracket n mod brackets. The default 1 is plain successive
        halving, which prunes soonest: the better choice for budgets of a minute or so.
    random_state : int
        Seeds the split, the sampling and every model.
    num_threads : int
        Threads of the fits and the scoring (0: every core; with n_jobs > 1, the cores
        shared out between the trials running at once).
    n_jobs : int
        Trials run at once (threads; the kernels release the GIL). 1, the default, gives the
        same result for the same seed; with more, which trials are pruned depends on which
        finish first. Measured on 2 busy cores (bench/RESULTS.md), two fits side by side on
        one thread each finished sooner than one after the other on both cores: try
        ``n_jobs=2`` where the kernels' own threads do not keep the cores busy. The
        confirmation and the refit, one fit at a time, take `num_threads` again.
    refit : bool
        Refit the best configuration on all of `data` (``result.model``).
    verbose : bool
        Log each trial (logger "fastals", info) and print the leaderboard at the end.
    start_with_defaults : bool
        Trial 0 takes the model's defaults for the searched parameters (those without a
        default, or with None, are drawn); the other trials are drawn from `space`.
    confirm, confirm_splits : int
        After the search, the best `confirm` trials are fitted again (at the iterations of
        their best rung) on `confirm_splits` more seeded splits of `data`, and the best
        mean over the splits wins. With hundreds of trials scored on one held-out part, the
        top score is partly that part's noise (the winner's curse): on MovieLens 100K, 400
        trials, the unconfirmed pick scored 0.4289 nDCG@10 on unseen data, the confirmed
        one 0.4343 (bench/RESULTS.md). The search leaves time for it (1.5 times the best
        trial's fit per confirming fit); trials not confirmed in time do not compete once
        one is, nor does a trial whose confirming fit fails. Once a trial is confirmed,
        ``best_score`` (and best.json's "score") is its mean over the splits; the
        leaderboard lists the confirmed trials first, by that mean (its "splits" column),
        beside each trial's score on the first split. ``confirm=0``: the single split
        decides.

    Returns
    -------
    TuneResult
        ``best_params`` (the resource included), ``best_score``, ``trials``,
        ``leaderboard()``, ``model`` and ``save(path)`` (the best.json of
        ``fastals fit --params``).

    Examples
    --------
    >>> import fastals
    >>> data = fastals.datasets.make_synthetic(n_users=300, n_items=200)
    >>> result = fastals.tune(fastals.ImplicitALS, data, budget=None, max_trials=4,
    ...                       verbose=False)
    >>> sorted(result.best_params)[:3]
    ['alpha', 'factors', 'iterations']
    """
    began = time.perf_counter()
    if not (inspect.isclass(model_class) and issubclass(model_class, RecommenderBase)):
        raise TypeError(f"model_class must be a fastals model class, got {model_class!r}")
    seconds = _parse_budget(budget)
    if max_trials is not None:
        max_trials = check_int("max_trials", max_trials, minimum=1)
    if seconds is None and max_trials is None:
        raise ValueError("give a budget (seconds) or max_trials, or both")
    metric = check_choice("metric", metric, METRICS)
    K = check_int("K", K, minimum=1)
    eta = check_int("eta", eta, minimum=2)
    brackets = check_int("brackets", brackets, minimum=1)
    n_jobs = check_int("n_jobs", n_jobs, minimum=1, maximum=64)
    min_resource = check_int("min_resource", min_resource, minimum=1)
    max_resource = check_int("max_resource", max_resource, minimum=min_resource)
    random_state = check_int("random_state", random_state, minimum=0)
    num_threads = check_num_threads(num_threads)
    refit = check_bool("refit", refit)
    verbose = check_bool("verbose", verbose)
    start_with_defaults = check_bool("start_with_defaults", start_with_defaults)
    confirm = check_int("confirm", confirm, minimum=0)
    confirm_splits = check_int("confirm_splits", confirm_splits, minimum=1, maximum=100)
    accepted = inspect.signature(model_class).parameters
    entry = _model_entry(model_class)
    resource = entry[0] if entry else None
    if space is None:
        space = default_search_space(model_class)
    space = _check_space(space, accepted, model_class)
    fixed = dict(fixed or {})
    space = {name: dist for name, dist in space.items() if name not in fixed}
    for name in fixed:
        if name not in accepted:
            raise ValueError(f"fixed: {model_class.__name__} has no parameter {name!r}")
    threads_given = "num_threads" in fixed
    all_threads = num_threads  # the confirmation and the refit run one fit at a time
    if n_jobs > 1 and num_threads == 0:
        from fastals._threads import resolve_threads
        num_threads = max(1, resolve_threads(0) // n_jobs)
    for name, value in (("random_state", random_state), ("num_threads", num_threads)):
        if name in accepted:
            fixed.setdefault(name, value)
    serial = dict(fixed)  # the parameters of the fits after the search
    if "num_threads" in accepted and not threads_given:
        serial["num_threads"] = all_threads
    if resource is not None and resource in fixed:  # a fixed resource: no halving
        resource = None

    train, held_out = train_test_split(data, validation_size, random_state=random_state)
    rng = check_random_state(random_state)
    rungs = _rungs(min_resource, max_resource, eta) if resource else [None]
    brackets = min(brackets, len(rungs))
    recorded = {}  # (bracket, rung) -> scores seen there
    trials: list[Trial] = []
    full_ratio = _nnz(data) / max(1, _nnz(train))
    deadline = None if seconds is None else began + seconds

    def time_left(reserve):
        return deadline is None or time.perf_counter() + reserve < deadline

    def score_of(model):
        if hasattr(model, "clear_cache"):
            model.clear_cache()  # the factors changed in place since the last scoring
        return _score(model, metric, K, train, held_out, num_threads)

    def fit_estimate():
        """Seconds a full fit of the best trial so far should take on the tuning part."""
        best = _best(trials, metric)
        if best is None:
            return 0.0
        return best.seconds / max(1, best.ran) * (best.resource or 1)

    def refit_estimate():
        """Seconds the refit of the best trial so far should take (on all of the data)."""
        return fit_estimate() * full_ratio if refit else 0.0

    def search_reserve():
        """What the search leaves: the refit, and the confirmation's fits (`confirm` trials
        on `confirm_splits` splits, each taken as 1.5 times the best trial's fit), those at
        most a quarter of the budget: the search is never starved by them."""
        confirming = 1.5 * confirm * confirm_splits * fit_estimate()
        if seconds is not None:
            confirming = min(confirming, 0.25 * seconds)
        return refit_estimate() + confirming

    defaults = {name: accepted[name].default for name in space
                if accepted[name].default not in (inspect.Parameter.empty, None)}
    relative = [name for name, d in space.items() if getattr(d, "relative_to", None)]
    lock = threading.Lock()
    fit_data = _matrix_of(train)

    def next_trial():
        """The next trial (its parameters drawn in trial order), or None: time or trials up."""
        with lock:
            if (max_trials is not None and len(trials) >= max_trials) \
                    or not time_left(search_reserve()):
                return None
            params = {name: d.sample(rng) for name, d in space.items()}
            multiples = {name: params[name] for name in relative}
            if start_with_defaults and not trials:
                params.update(defaults)
                multiples = {name: params[name] for name in relative
                             if name not in defaults}
            trial = Trial(len(trials), params, multiples=multiples)
            trials.append(trial)
            return trial

    def run(trial):
        bracket = trial.number % brackets
        start = time.perf_counter()
        if not _resolve_relative(trial, model_class, fixed, fit_data):
            trial.skipped = True
            if verbose:
                log.info("tune: trial %d %s skipped: its regularization makes every factor "
                         "vanish on this data", trial.number, trial.params)
            return
        model = model_class(**fixed, **trial.params,
                            **({resource: rungs[-1]} if resource else {}))

        def at_iteration(i, _seconds, _loss):
            done = trial.ran = i + 1
            if done not in rungs:
                if not time_left(refit_estimate()):
                    raise _Stop
                return
            score = score_of(model)
            with lock:
                trial.scores[done] = score
                if not math.isfinite(trial.score) or _sort_key(metric, score) < _sort_key(
                        metric, trial.score):  # the trial's best rung so far
                    trial.score, trial.resource = score, done
                trial.seconds = time.perf_counter() - start
                seen = recorded.setdefault((bracket, done), [])
                seen.append(score)
                if done == rungs[-1]:
                    return
                if rungs.index(done) >= bracket and not _promoted(score, seen, eta, metric):
                    trial.pruned = True
                    raise _Stop
                if not time_left(refit_estimate()):
                    raise _Stop

        try:
            if resource:
                model.fit(fit_data, show_progress=False, callback=at_iteration)
            else:
                model.fit(fit_data, show_progress=False)
                score = score_of(model)
                with lock:
                    trial.score, trial.ran = score, 1
        except _Stop:
            pass
        except ModelFitError as exc:  # e.g. a singular system: this configuration fails
            log.warning("tune: trial %d %s failed: %s", trial.number, trial.params, exc)
        trial.seconds = time.perf_counter() - start
        if verbose:
            log.info("tune: trial %d %s -> %s@%d %.4f%s (%.2f s)", trial.number, trial.params,
                     metric, K, trial.score, f" at {resource} {trial.resource}"
                     if resource else "", trial.seconds)

    failures = []

    def worker():
        try:
            while not failures and (trial := next_trial()) is not None:
                run(trial)
        except BaseException as exc:  # re-raised in the caller's thread
            failures.append(exc)

    if n_jobs == 1:
        worker()
    else:
        workers = [threading.Thread(target=worker, daemon=True) for _ in range(n_jobs)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    if failures:
        raise failures[0]

    best = _best(trials, metric)
    if best is None:
        if trials and all(t.skipped for t in trials):
            raise RuntimeError("tune: every trial was skipped: its regularization would make "
                               "every factor vanish on this data (lower the space's high end "
                               "of regularization)")
        raise RuntimeError(f"tune: no trial finished within the budget ({seconds} s): "
                           "raise the budget")
    if confirm:
        best = _confirm(trials, confirm, confirm_splits, metric, K, validation_size,
                        random_state, all_threads, model_class, serial, resource, data,
                        time_left, refit_estimate, verbose)
    best_params = dict(best.params)
    if resource:
        best_params[resource] = best.resource
    model = None
    if refit:
        model = model_class(**serial, **best_params)
        model.fit(_matrix_of(data), show_progress=False)
    result = TuneResult(model_class, metric, K, resource, best_params,
                        best.mean_score if best.confirmed else best.score, trials,
                        time.perf_counter() - began, model)
    if verbose:
        print(result.leaderboard())
        print(f"best {metric}@{K} {best.score:.4f} with {best_params}; {len(trials)} trials "
              f"in {result.seconds:.1f} s")
    return result


def _confirm(trials, top, splits, metric, K, validation_size, random_state, num_threads,
             model_class, fixed, resource, data, time_left, refit_estimate, verbose):
    """The winner of the confirmation: the best `top` trials (distinct parameters) fitted
    at their best rung on `splits` more splits (seeds random_state + 1 ...), best mean
    score first; trials run out of time before all their splits are not candidates. With
    none confirmed in time: the single split's best."""
    ranked, seen = [], set()
    for trial in sorted((t for t in trials if math.isfinite(t.score)),
                        key=lambda t: (_sort_key(metric, t.score), t.number)):
        key = json.dumps({**trial.params, "_": trial.resource}, sort_keys=True,
                         default=_json_default)
        if key not in seen:
            seen.add(key)
            ranked.append(trial)
        if len(ranked) == top:
            break
    parts = [train_test_split(data, validation_size, random_state=random_state + 1 + s)
             for s in range(splits)]
    done = []
    for trial in ranked:
        # one fit per split, as long as the refit still fits in the budget after it
        cost = trial.seconds / max(1, trial.ran) * (trial.resource or 1)
        scores, failed, out_of_time = [], False, False
        for train, held_out in parts:
            if not time_left(refit_estimate() + cost):
                out_of_time = True
                break
            params = {**fixed, **trial.params,
                      **({resource: trial.resource} if resource else {})}
            try:
                model = model_class(**params).fit(_matrix_of(train), show_progress=False)
            except ModelFitError as exc:  # this trial is left out; the others go on
                log.warning("tune: confirming trial %d failed: %s", trial.number, exc)
                failed = True
                break
            scores.append(_score(model, metric, K, train, held_out, num_threads))
        if out_of_time:
            break
        if failed or not all(math.isfinite(x) for x in scores):
            continue
        trial.confirmed = scores
        done.append(trial)
        if verbose:
            log.info("tune: confirmed trial %d: %s@%d %.4f on %d splits (%.4f on the first)",
                     trial.number, metric, K, trial.mean_score, len(parts) + 1, trial.score)
    if not done:
        return _best(trials, metric)
    return min(done, key=lambda t: (_sort_key(metric, t.mean_score), t.number))


def _resolve_relative(trial, model_class, fixed, fit_data):
    """Turn the trial's multiple of "auto" into a number: the multiple times what "auto"
    resolves to, on `fit_data`, for a model with the trial's other parameters. False when
    that number is at or above the model's :meth:`regularization_limit` (every factor would
    vanish: the trial is not worth a fit)."""
    if not trial.multiples:
        return True
    multiple = trial.multiples["regularization"]
    probe = model_class(**fixed, **{**trial.params, "regularization": "auto"})
    value = float(f"{multiple * probe.regularization_for(fit_data):.4g}")
    trial.params["regularization"] = value
    return value < probe.regularization_limit(fit_data, at_least=value * (1 + 1e-6))


def _matrix_of(data):
    """The users x items matrix of `data` (an Interactions' user_items, or `data`)."""
    return data.user_items if hasattr(data, "user_items") else data


def _nnz(data):
    return _matrix_of(data).nnz


def _score(model, metric, K, train, held_out, num_threads):
    """`metric` of `model` on `held_out` (ranking metrics at K with `train`'s items
    filtered out; rmse and mae on the held-out ratings)."""
    if metric in ("rmse", "mae"):
        return (rmse if metric == "rmse" else mae)(model, held_out)
    return ranking_metrics_at_k(model, train, held_out, K, num_threads=num_threads)[metric]


def _promoted(score, seen, eta, metric):
    """Is `score` among the best 1/eta of `seen` (which includes it)? Fewer than eta scores
    seen: yes (there is nothing to compare with yet)."""
    if len(seen) < eta:
        return True
    ranked = sorted(seen, key=lambda s: _sort_key(metric, s))
    keep = max(1, len(seen) // eta)
    return _sort_key(metric, score) <= _sort_key(metric, ranked[keep - 1])


def _best(trials, metric):
    scored = [t for t in trials if math.isfinite(t.score)]
    if not scored:
        return None
    return min(scored, key=lambda t: (_sort_key(metric, t.score), t.number))


def _accepts_auto_regularization(model_class):
    """Does `model_class` take regularization="auto" and say what it resolves to (and where
    its factors vanish)?"""
    if not (hasattr(model_class, "regularization_for")
            and getattr(model_class, "_plain_regularization", False)):
        return False
    try:
        model_class(regularization="auto")
    except (TypeError, ValueError):
        return False
    return True


def _check_space(space, accepted, model_class):
    if not isinstance(space, dict):
        raise TypeError(f"space must be a dict of parameter: LogUniform or Choice, got "
                        f"{type(space).__name__}")
    for name, dist in space.items():
        if name not in accepted:
            raise ValueError(f"space: the model has no parameter {name!r}; its parameters: "
                             f"{', '.join(accepted)}")
        if not isinstance(dist, (LogUniform, Choice)):
            raise TypeError(f"space[{name!r}] must be LogUniform(...) or Choice(...), got "
                            f"{dist!r}")
        if getattr(dist, "relative_to", None) and (
                name != "regularization" or not _accepts_auto_regularization(model_class)):
            raise ValueError(f"space[{name!r}]: relative_to='auto' is for the regularization "
                             f"of models with regularization='auto' (ImplicitALS, "
                             f"AlternatingLeastSquares), not {model_class.__name__}.{name}")
    return space
