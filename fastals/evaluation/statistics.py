r"""How sure a metric is: bootstrap confidence intervals, and paired comparisons of two models.

Both resample the evaluated *users* with replacement (the test users are the sample; each
resample draws ``rng.integers(0, n, n)``), recomputing each metric on the drawn users the
way it is computed on all of them: a mean over users, or for `implicit`'s precision the
ratio sum(hits) / sum(min(K, |T|)). Users whose value is NaN (AUC when every item is
relevant, diversity of a one-item list) are left out of that metric, as in the averages.

* :func:`bootstrap_intervals` -- the percentile interval of each metric at `confidence`.
* :func:`paired_bootstrap` -- two models scored on the same users: per metric, the
  difference a - b, its percentile interval from the same resamples for both models
  (pairing removes the variation between users that both share), a two-sided p-value
  (the share of resampled differences, centred on the observed one, at least as far from
  zero as the observed one: Efron & Tibshirani 1993, 16.4), and the users where a beats,
  loses to or ties with b.
* :func:`compare_models` -- scores two fitted models and runs :func:`paired_bootstrap`.

The oracle for the resampling is :func:`fastals.reference.metrics.bootstrap_loop`. May
import numpy, fastals' validation helpers and (for compare_models) the ranking metrics of
:mod:`fastals.evaluation`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from fastals._typing import SeedLike
from fastals._validation import check_float, check_int, check_random_state

# resamples drawn at once: bounds the (resamples x users) count matrix
_RESAMPLE_BLOCK_CELLS = 1 << 22


def metric_terms(per_user: dict[str, np.ndarray], K: int) -> dict[str, tuple]:
    """{metric: (numerator, denominator) per user}: the metric over any set of users is
    sum(numerator) / sum(denominator) over them (denominator 0 leaves a user out)."""
    hits = np.asarray(per_user["hits"], dtype=np.float64)
    ones = np.ones_like(hits)
    terms = {
        "precision": (hits, np.asarray(per_user["n_relevant"], dtype=np.float64)),
        "precision_standard": (hits / K, ones),
        "hit_rate": ((hits > 0).astype(np.float64), ones),
    }
    for metric, column in (("recall", "recall"), ("map", "ap"), ("ndcg", "ndcg"),
                           ("auc", "auc"), ("mrr", "rr"), ("novelty", "novelty"),
                           ("popularity_percentile", "popularity_percentile"),
                           ("diversity", "diversity")):
        if column in per_user:
            values = np.asarray(per_user[column], dtype=np.float64)
            finite = np.isfinite(values)
            terms[metric] = (np.where(finite, values, 0.0), finite.astype(np.float64))
    return terms


def _resample_counts(rng, n, n_resamples):
    """Blocks of (resamples x n) counts of how often each user is drawn."""
    step = max(1, _RESAMPLE_BLOCK_CELLS // max(n, 1))
    for lo in range(0, n_resamples, step):
        b = min(step, n_resamples - lo)
        drawn = rng.integers(0, n, (b, n))
        counts = np.zeros((b, n))
        np.add.at(counts, (np.repeat(np.arange(b), n), drawn.ravel()), 1.0)
        yield counts


def _ratio(numerator, denominator):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1),
                        np.nan)


def _check(n_resamples, confidence):
    n_resamples = check_int("n_resamples", n_resamples, minimum=1)
    confidence = check_float("confidence", confidence, minimum=0, exclusive=True, maximum=1)
    if confidence >= 1:
        raise ValueError(f"confidence must be < 1, got {confidence}")
    return n_resamples, confidence


def _per_user_of(result, name):
    per_user = result.get("per_user") if isinstance(result, dict) else None
    if per_user is None:
        raise ValueError(f"{name} must be a result of ranking_metrics_at_k(..., per_user=True) "
                         "(it has no 'per_user' entry)")
    return per_user


def bootstrap_intervals(result: dict[str, Any], n_resamples: int = 1000,
                        confidence: float = 0.95, random_state: SeedLike = None,
                        metrics: list[str] | None = None) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of the metrics of one evaluation, over its users.

    Parameters
    ----------
    result : dict
        What :func:`fastals.evaluation.ranking_metrics_at_k` returns with ``per_user=True``.
    n_resamples : int
    confidence : float in (0, 1)
    random_state : int, Generator or None
        Seed of the resamples: the same seed gives the same intervals.
    metrics : list of str, optional
        Which (default: every per-user metric of `result`).

    Returns
    -------
    {metric: (low, high)}
    """
    n_resamples, confidence = _check(n_resamples, confidence)
    terms = metric_terms(_per_user_of(result, "result"), result["K"])
    terms = {m: terms[m] for m in (metrics or terms)}
    n = len(result["per_user"]["users"])
    if n == 0:
        return {m: (float("nan"), float("nan")) for m in terms}
    rng = check_random_state(random_state)
    samples: dict[str, list[np.ndarray]] = {m: [] for m in terms}
    for counts in _resample_counts(rng, n, n_resamples):
        for m, (num, den) in terms.items():
            samples[m].append(_ratio(counts @ num, counts @ den))
    tail = (1 - confidence) / 2 * 100
    intervals = {}
    for m, s in samples.items():
        low, high = np.nanpercentile(np.concatenate(s), [tail, 100 - tail])
        intervals[m] = (float(low), float(high))
    return intervals


def paired_bootstrap(result_a: dict[str, Any], result_b: dict[str, Any],
                     n_resamples: int = 1000, confidence: float = 0.95,
                     random_state: SeedLike = None, metrics: list[str] | None = None
                     ) -> dict[str, dict[str, float]]:
    """Paired comparison of two evaluations on the same users (module docstring).

    `result_a`, `result_b` are :func:`~fastals.evaluation.ranking_metrics_at_k` results
    with ``per_user=True``, on the same test data and K.

    Returns
    -------
    {metric: {"a", "b", "difference", "low", "high", "p_value", "wins", "losses", "ties"}}
    where difference = a - b, (low, high) its interval, and wins / losses / ties count the
    users where a's value is above / below / equal to b's.
    """
    n_resamples, confidence = _check(n_resamples, confidence)
    per_a, per_b = _per_user_of(result_a, "result_a"), _per_user_of(result_b, "result_b")
    if result_a["K"] != result_b["K"] or not np.array_equal(per_a["users"], per_b["users"]):
        raise ValueError("result_a and result_b must score the same users at the same K "
                         "(the same test data)")
    terms_a, terms_b = metric_terms(per_a, result_a["K"]), metric_terms(per_b, result_b["K"])
    names = [m for m in (metrics or terms_a) if m in terms_a and m in terms_b]
    unknown = [m for m in (metrics or []) if m not in names]
    if unknown:
        raise ValueError(f"metrics {unknown} are not in both results; choose from "
                         f"{', '.join(m for m in terms_a if m in terms_b)}")
    n = len(per_a["users"])
    rng = check_random_state(random_state)
    differences: dict[str, list[np.ndarray]] = {m: [] for m in names}
    if n:
        for counts in _resample_counts(rng, n, n_resamples):
            for m in names:
                (num_a, den_a), (num_b, den_b) = terms_a[m], terms_b[m]
                differences[m].append(_ratio(counts @ num_a, counts @ den_a)
                                      - _ratio(counts @ num_b, counts @ den_b))
    tail = (1 - confidence) / 2 * 100
    out = {}
    for m in names:
        (num_a, den_a), (num_b, den_b) = terms_a[m], terms_b[m]
        a = float(_ratio(num_a.sum(), den_a.sum())) if n else float("nan")
        b = float(_ratio(num_b.sum(), den_b.sum())) if n else float("nan")
        observed = a - b
        both = (den_a > 0) & (den_b > 0)
        user_a, user_b = _ratio(num_a, den_a)[both], _ratio(num_b, den_b)[both]
        drawn = np.concatenate(differences[m]) if n else np.array([np.nan])
        drawn = drawn[np.isfinite(drawn)]
        if len(drawn) and np.isfinite(observed):
            low, high = (float(v) for v in np.percentile(drawn, [tail, 100 - tail]))
            p_value = float(np.mean(np.abs(drawn - observed) >= abs(observed) - 1e-15))
        else:
            low = high = p_value = float("nan")
        out[m] = {"a": a, "b": b, "difference": observed, "low": low, "high": high,
                  "p_value": p_value, "wins": int((user_a > user_b).sum()),
                  "losses": int((user_a < user_b).sum()), "ties": int((user_a == user_b).sum())}
    return out


def compare_models(model_a: Any, model_b: Any, train_user_items: Any, test_user_items: Any,
                   K: int = 10, n_resamples: int = 1000, confidence: float = 0.95,
                   random_state: SeedLike = None, metrics: list[str] | None = None,
                   num_threads: int = 0, item_features: Any = None
                   ) -> dict[str, dict[str, float]]:
    """Score two fitted models on the same held-out users and compare them pairwise.

    Runs :func:`~fastals.evaluation.ranking_metrics_at_k` (``per_user=True``) for each
    model, then :func:`paired_bootstrap`; arguments as theirs. `item_features` (optional)
    are the item vectors for both models' diversity (default: each model's item factors).
    """
    from fastals.evaluation import ranking_metrics_at_k  # the package imports this module

    results = [ranking_metrics_at_k(model, train_user_items, test_user_items, K,
                                    num_threads=num_threads, per_user=True,
                                    item_features=item_features)
               for model in (model_a, model_b)]
    return paired_bootstrap(results[0], results[1], n_resamples, confidence, random_state,
                            metrics)
