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
    """A number drawn uniformly on a log scale from [low, high] (rounded if `integer`)."""

    low: float
    high: float
    integer: bool = False

    def __post_init__(self):
        check_float("low", self.low, minimum=0, exclusive=True)
        check_float("high", self.high, minimum=self.low)

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
        "regularization": LogUniform(0.1, 1000.0),
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
        """The best `top` trials as a text table, best first."""
        rows = sorted((t for t in self.trials if math.isfinite(t.score)),
                      key=lambda t: _sort_key(self.metric, t.score))[:top]
        names = sorted({k for t in rows for k in t.params})
        extra = [self.resource] if self.resource else []
        header = ["rank", "trial", f"{self.metric}@{self.K}"] + names + extra + ["seconds", ""]
        table = [[str(i + 1), str(t.number), f"{t.score:.4f}"]
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
                            **({self.resource: t.resource} if self.resource else {}),
                            "pruned": t.pruned,
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
         verbose: bool = True, start_with_defaults: bool = True) -> TuneResult:
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
        ``n_jobs=2`` where the kernels' own threads do not keep the cores busy.
    refit : bool
        Refit the best configuration on all of `data` (``result.model``).
    verbose : bool
        Log each trial (logger "fastals", info) and print the leaderboard at the end.
    start_with_defaults : bool
        Trial 0 takes the model's defaults for the searched parameters (those without a
        default, or with None, are drawn); the other trials are drawn from `space`.

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
    accepted = inspect.signature(model_class).parameters
    entry = _model_entry(model_class)
    resource = entry[0] if entry else None
    if space is None:
        space = default_search_space(model_class)
    space = _check_space(space, accepted)
    fixed = dict(fixed or {})
    space = {name: dist for name, dist in space.items() if name not in fixed}
    for name in fixed:
        if name not in accepted:
            raise ValueError(f"fixed: {model_class.__name__} has no parameter {name!r}")
    if n_jobs > 1 and num_threads == 0:
        from fastals._threads import resolve_threads
        num_threads = max(1, resolve_threads(0) // n_jobs)
    for name, value in (("random_state", random_state), ("num_threads", num_threads)):
        if name in accepted:
            fixed.setdefault(name, value)
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
        if metric in ("rmse", "mae"):
            return (rmse if metric == "rmse" else mae)(model, held_out)
        return ranking_metrics_at_k(model, train, held_out, K, num_threads=num_threads)[metric]

    def refit_estimate():
        """Seconds the refit of the best trial so far should take (on all of the data)."""
        best = _best(trials, metric) if refit else None
        if best is None:
            return 0.0
        return best.seconds / max(1, best.ran) * (best.resource or 1) * full_ratio

    defaults = {name: accepted[name].default for name in space
                if accepted[name].default not in (inspect.Parameter.empty, None)}
    lock = threading.Lock()
    fit_data = train.user_items if hasattr(train, "user_items") else train

    def next_trial():
        """The next trial (its parameters drawn in trial order), or None: time or trials up."""
        with lock:
            if (max_trials is not None and len(trials) >= max_trials) \
                    or not time_left(refit_estimate()):
                return None
            params = {name: d.sample(rng) for name, d in space.items()}
            if start_with_defaults and not trials:
                params.update(defaults)
            trial = Trial(len(trials), params)
            trials.append(trial)
            return trial

    def run(trial):
        bracket = trial.number % brackets
        start = time.perf_counter()
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
        raise RuntimeError(f"tune: no trial finished within the budget ({seconds} s): "
                           "raise the budget")
    best_params = dict(best.params)
    if resource:
        best_params[resource] = best.resource
    model = None
    if refit:
        model = model_class(**fixed, **best_params)
        model.fit(data.user_items if hasattr(data, "user_items") else data,
                  show_progress=False)
    result = TuneResult(model_class, metric, K, resource, best_params, best.score, trials,
                        time.perf_counter() - began, model)
    if verbose:
        print(result.leaderboard())
        print(f"best {metric}@{K} {best.score:.4f} with {best_params}; {len(trials)} trials "
              f"in {result.seconds:.1f} s")
    return result


def _nnz(data):
    return (data.user_items if hasattr(data, "user_items") else data).nnz


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


def _check_space(space, accepted):
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
    return space
