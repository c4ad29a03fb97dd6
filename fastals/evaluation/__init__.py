r"""Splitting interaction data and scoring recommenders on held-out interactions.

Splits (each returns ``(train, test)`` of the same kind as its input -- a scipy matrix or
:class:`fastals.data.Interactions` -- with the same shape, disjoint, and together equal to
the input; the input is never modified):

* :func:`train_test_split` -- each stored interaction goes to test with probability
  `test_size` (seeded).
* :func:`leave_k_out_split` -- K interactions of each eligible user go to test (seeded, or
  the K most recent with timestamps).
* :func:`split_by_time` -- interactions at or after a time cutoff go to test.

Ranking metrics at K, for every user with at least one relevant held-out item (a stored test
value > 0), from the top-K list of ``model.recommend`` with the user's training items
filtered out. With T the user's relevant test items and hits the number of them in the
list:

=============================  ==================================================================
``precision``                  `implicit`'s precision, kept under its name for compatibility:
                               sum over users of hits / sum over users of min(K, |T|). The
                               denominator is min(K, |T|), not K, so a user with fewer than K
                               test items can still reach 1, and the value can *rise* with K
                               (implicit's issues #412, #713): read it as "the share of the
                               achievable hits", not as textbook precision
``precision_standard``         textbook precision@K: mean over users of hits / K (padding
                               counts as a miss); ``precision_at_k(..., definition="standard")``
``hit_rate``                   the share of users with at least one hit (HitRate@K)
``recall``                     mean over users of hits / |T|
``map``                        mean over users of AP@K = (sum over hit positions i of
                               hits-so-far / i) / min(K, |T|)
``ndcg``                       mean over users of DCG / ideal DCG, binary relevance, gain
                               1/log2(rank + 1)
``mrr``                        mean over users of 1 / (rank of the first hit), 0 without one
``auc``                        mean over users of the AUC with the unlisted items tied below the
                               list (`implicit`'s limited AUC); n_items - |T| negatives
``coverage``                   distinct items recommended to the evaluated users / n_items
``novelty``                    mean over users of the mean -log2 p_i of the listed items, p_i
                               the share of training users with item i
``popularity_percentile``      mean over users of the mean popularity percentile of the listed
                               items (1: the most popular item; popularity bias)
``diversity``                  intra-list diversity: mean over users of the mean 1 - cosine of
                               the pairs of listed items, on the model's item factors or the
                               given item features (:mod:`fastals.evaluation.beyond`)
=============================  ==================================================================

The accuracy metrics come from one batch ``recommend`` per block of users and one parallel
kernel pass (:mod:`fastals._kernels._metrics`, checked against
:mod:`fastals.reference.metrics`); the three beyond accuracy are numpy over the same lists.
How sure they are: :func:`bootstrap_intervals` (over the users) and, for two models on the
same users, :func:`paired_bootstrap` / :func:`compare_models`
(:mod:`fastals.evaluation.statistics`).

Rating metrics: :func:`rmse`, :func:`mae` on the stored test values; :func:`cross_validate`
repeats fit and score over k folds. The yardstick model, :class:`PopularityBaseline`, lives
with the models (:mod:`fastals.models.popularity`) and is re-exported here.

The package's modules: this one (splits, the accuracy and rating metrics,
cross-validation), :mod:`~fastals.evaluation.beyond` (novelty, popularity, diversity) and
:mod:`~fastals.evaluation.statistics` (bootstrap, paired comparison).

This room sits above the models. May import: numpy, scipy, :mod:`fastals.data`,
:mod:`fastals.id_recommender`, the models' public interface (:mod:`fastals.models`), the
metrics kernel and :mod:`fastals._validation` / :mod:`fastals._threads` /
:mod:`fastals._typing`.
"""
from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from fastals._threads import resolve_threads
from fastals._typing import ArrayLike, Indices, InteractionData, SeedLike, SparseMatrix
from fastals._validation import (
    check_bool,
    check_choice,
    check_float,
    check_ids,
    check_int,
    check_num_threads,
    check_random_state,
)
from fastals.data import Interactions, canonical_csr
from fastals.evaluation import beyond
from fastals.id_recommender import IdRecommender, score_pairs
from fastals.models.base import RecommenderBase
from fastals.models.popularity import PopularityBaseline  # re-exported: its old home
from fastals.models.validation import rank_and_score, relevant_items, score_lists, summarise

__all__ = [
    "PopularityBaseline",
    "auc_at_k",
    "bootstrap_intervals",
    "catalog_coverage",
    "compare_models",
    "cross_validate",
    "leave_k_out_split",
    "hit_rate_at_k",
    "mae",
    "mean_average_precision_at_k",
    "metrics_from_recommendations",
    "mrr_at_k",
    "ndcg_at_k",
    "paired_bootstrap",
    "precision_at_k",
    "ranking_metrics_at_k",
    "recall_at_k",
    "rmse",
    "split_by_time",
    "train_test_split",
]

log = logging.getLogger("fastals")

RANKING_METRICS = ("precision", "precision_standard", "hit_rate", "recall", "map", "ndcg",
                   "mrr", "auc", "coverage", "novelty", "popularity_percentile", "diversity")


# --- inputs --------------------------------------------------------------------------------
def _unwrap_data(data, name):
    """(canonical scipy CSR sharing the caller's arrays when possible, Interactions or None).

    Stored zeros are kept (an explicit rating of 0 is a rating); nothing is modified.
    """
    if isinstance(data, Interactions):
        return data.user_items, data
    return canonical_csr(data, name), None


def _unwrap_model(model):
    if isinstance(model, IdRecommender):
        return model.model
    if not isinstance(model, RecommenderBase):
        raise TypeError(f"model must be a fastals recommender, got {type(model).__name__}")
    return model


def _split_by_mask(matrix, source, to_test):
    """(train, test): the stored values of canonical CSR `matrix` where ~to_test / to_test.

    Returns matrices, or Interactions (timestamps split alongside) when `source` is given.
    """
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    parts = []
    for mask in (~to_test, to_test):
        indptr = np.zeros(matrix.shape[0] + 1, dtype=matrix.indptr.dtype)
        np.cumsum(np.bincount(rows[mask], minlength=matrix.shape[0]), out=indptr[1:])
        part = type(matrix)((matrix.data[mask], matrix.indices[mask], indptr),
                            shape=matrix.shape)
        part.has_canonical_format = True
        if source is not None:
            times = None if source.timestamps is None else source.timestamps[mask]
            part = source.with_matrix(part, times)
        parts.append(part)
    return parts[0], parts[1]


# --- splits --------------------------------------------------------------------------------
def train_test_split(data: InteractionData, test_size: float | None = None,
                     random_state: SeedLike = None, *, train_percentage: float | None = None
                     ) -> tuple[InteractionData, InteractionData]:
    """Split interactions at random: each goes to test with probability `test_size`.

    Parameters
    ----------
    data : scipy sparse matrix or Interactions
    test_size : float in (0, 1), default 0.2
        The expected fraction of interactions in test.
    random_state : int, Generator or None
        Seed: the same seed gives the same split.
    train_percentage : float in (0, 1), keyword only
        `implicit`'s way to say it: ``test_size = 1 - train_percentage`` (give one of the
        two). `implicit` takes it as the second positional argument, where fastals takes
        `test_size`, so a test_size above 0.5 warns that this may be what was meant.

    Returns
    -------
    (train, test) with the input's shape and kind; disjoint, summing to the input.
    """
    if train_percentage is not None:
        if test_size is not None:
            raise ValueError("give test_size or train_percentage (implicit's name for "
                             "1 - test_size), not both")
        train_percentage = check_float("train_percentage", train_percentage, minimum=0,
                                       exclusive=True, maximum=1)
        if train_percentage >= 1:
            raise ValueError(f"train_percentage must be < 1, got {train_percentage}")
        test_size = 1.0 - train_percentage
    elif test_size is None:
        test_size = 0.2
    else:
        test_size = check_float("test_size", test_size, minimum=0, exclusive=True, maximum=1)
        if test_size > 0.5:
            warnings.warn(
                f"test_size={test_size:g} puts {test_size:.0%} of the interactions in test; "
                "implicit's train_test_split(ratings, 0.8) means 80% in train: for that, "
                "pass train_percentage=0.8 (or test_size=0.2)", UserWarning, stacklevel=2)
    if test_size >= 1:
        raise ValueError(f"test_size must be < 1, got {test_size}")
    matrix, source = _unwrap_data(data, "data")
    rng = check_random_state(random_state)
    return _split_by_mask(matrix, source, rng.random(matrix.nnz) < test_size)


def leave_k_out_split(data: InteractionData, K: int = 1, train_only_size: float = 0.0,
                      random_state: SeedLike = None, by_time: bool = False
                      ) -> tuple[InteractionData, InteractionData]:
    """Move K interactions of each eligible user to test.

    A user is eligible with at least K + 1 interactions (so one stays in train). A fraction
    `train_only_size` of the eligible users (chosen with the seed) stays wholly in train.
    The K left out are chosen at random with `random_state`, or are the K most recent when
    `by_time` (needs Interactions with timestamps; ties broken at random).

    Returns (train, test) like :func:`train_test_split`.
    """
    K = check_int("K", K, minimum=1)
    train_only_size = check_float("train_only_size", train_only_size, minimum=0, maximum=1)
    if train_only_size >= 1:
        raise ValueError(f"train_only_size must be < 1, got {train_only_size}")
    by_time = check_bool("by_time", by_time)
    matrix, source = _unwrap_data(data, "data")
    rng = check_random_state(random_state)
    counts = np.diff(matrix.indptr)
    eligible = np.flatnonzero(counts >= K + 1)
    if train_only_size > 0 and len(eligible):
        keep_out = rng.choice(len(eligible), int(round(train_only_size * len(eligible))),
                              replace=False)
        eligible = np.delete(eligible, keep_out)
    noise = rng.random(matrix.nnz)
    if by_time:
        if source is None or source.timestamps is None:
            raise ValueError("by_time=True needs Interactions with timestamps")
        key = -source.timestamps.astype(np.float64)  # most recent first
    else:
        key = np.zeros(matrix.nnz)
    rows = np.repeat(np.arange(matrix.shape[0]), counts)
    order = np.lexsort((noise, key, rows))  # per row: by key, ties at random
    rank = np.empty(matrix.nnz, dtype=np.int64)
    rank[order] = np.arange(matrix.nnz) - np.repeat(matrix.indptr[:-1], counts)
    is_eligible = np.zeros(matrix.shape[0], dtype=bool)
    is_eligible[eligible] = True
    return _split_by_mask(matrix, source, is_eligible[rows] & (rank < K))


def split_by_time(data: InteractionData, test_size: float = 0.2, cutoff: float | None = None,
                  timestamps: ArrayLike | None = None) -> tuple[InteractionData, InteractionData]:
    """Put interactions at or after a time cutoff in test, the earlier ones in train.

    Parameters
    ----------
    data : Interactions with timestamps, or a sparse matrix with `timestamps`
    test_size : float in (0, 1)
        When `cutoff` is None, the cutoff is the time below which a fraction 1 - test_size
        of the interactions fall (ties at the cutoff all go to test, so test may be larger).
    cutoff : number, optional
        The time itself (same unit as the timestamps: seconds for dates).
    timestamps : array, optional
        One time per stored value, in the CSR order of `data` (default: data.timestamps).
    """
    matrix, source = _unwrap_data(data, "data")
    if timestamps is None:
        if source is None or source.timestamps is None:
            raise ValueError("split_by_time needs timestamps: pass Interactions that have them "
                             "or timestamps=... (one per stored value)")
        timestamps = source.timestamps
    try:
        times = np.asarray(timestamps, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"timestamps must be numbers (one per stored value): {exc}") from None
    if times.shape != (matrix.nnz,):
        raise ValueError(f"timestamps must have one value per stored interaction "
                         f"({matrix.nnz}), got shape {times.shape}")
    if not np.isfinite(times).all():
        raise ValueError("timestamps contain NaN or infinite values")
    if cutoff is None:
        test_size = check_float("test_size", test_size, minimum=0, exclusive=True, maximum=1)
        if test_size >= 1:
            raise ValueError(f"test_size must be < 1, got {test_size}")
        cutoff = np.quantile(times, 1 - test_size, method="higher") if len(times) else 0.0
    else:
        cutoff = check_float("cutoff", cutoff)
    return _split_by_mask(matrix, source, times >= cutoff)


# --- ranking metrics ------------------------------------------------------------------------
def _summarise(per, K, lists, train, n_items, unit):
    """The averages (accuracy from the kernel's table, beyond accuracy from the lists) and
    the per-user beyond-accuracy values."""
    result = summarise(per, K)
    n = len(per)
    missing = np.full(n, np.nan)
    popularity = None if train is None else beyond.item_popularity(train)
    extra = {"novelty": missing if train is None else
             beyond.novelty(lists, popularity, train.shape[0]),
             "popularity_percentile": missing if train is None else
             beyond.popularity_percentile(lists, popularity),
             "diversity": missing if unit is None else beyond.intra_list_diversity(lists, unit)}
    result["coverage"] = float(len(np.unique(lists[lists >= 0])) / n_items) if n \
        else float("nan")
    for name, values in extra.items():
        finite = np.isfinite(values)
        result[name] = float(values[finite].mean()) if finite.any() else float("nan")
    return result, extra


def _item_vectors(model, item_features, n_items):
    """Unit rows for intra-list diversity: `item_features`, else the model's item factors,
    else None."""
    if item_features is None:
        item_features = getattr(model, "item_factors", None)
        if item_features is None:
            return None
    return beyond.unit_rows(item_features, n_items)


def ranking_metrics_at_k(model: RecommenderBase | IdRecommender,
                         train_user_items: SparseMatrix | Interactions,
                         test_user_items: SparseMatrix | Interactions, K: int = 10,
                         show_progress: bool = False, num_threads: int = 0,
                         per_user: bool = False, item_features: Any = None
                         ) -> dict[str, Any]:
    """The ranking metrics at K (module docstring), in one pass over the test users.

    Every user with a relevant test item (stored value > 0) gets ``model.recommend_all(
    train_user_items, users=users, N=K)`` (what ``recommend`` gives them, training items
    filtered out, by the cache-tiled all-users kernel); the lists are scored by a parallel
    compiled kernel. Definitions: see the module docstring (``precision``'s
    denominator is min(K, |T|), as in `implicit`; ``precision_standard`` is hits / K).

    Parameters
    ----------
    model : fitted RecommenderBase (or IdRecommender)
    train_user_items, test_user_items : sparse matrices or Interactions, users x items
    K : int
    show_progress : bool
    num_threads : int
        Threads of the scoring kernel (0: all cores). The model's recommend uses its own.
    per_user : bool
        Also return ``"per_user"``: a dict of arrays (``users``, ``hits``, ``n_relevant``
        (min(K, |T|)), ``n_test`` (|T|), ``precision``, ``precision_standard``, ``recall``,
        ``ap``, ``ndcg``, ``auc``, ``rr``, ``novelty``, ``popularity_percentile``,
        ``diversity``) for the evaluated users: the input of :func:`bootstrap_intervals`
        and :func:`paired_bootstrap`.
    item_features : array or sparse matrix (n_items x features), optional
        The item vectors of the diversity (default: the model's item factors; NaN for
        models without them).

    Returns
    -------
    dict with ``precision, precision_standard, hit_rate, recall, map, ndcg, mrr, auc,
    coverage, novelty, popularity_percentile, diversity`` (floats), ``users`` (how many
    were evaluated) and ``K``.

    Popularity (novelty, popularity percentile) is counted in `train_user_items`.
    """
    model = _unwrap_model(model)
    model._check_fitted()
    K = check_int("K", K, minimum=1)
    show_progress = check_bool("show_progress", show_progress)
    threads = resolve_threads(check_num_threads(num_threads))
    train, _ = _unwrap_data(train_user_items, "train_user_items")
    test, _ = _unwrap_data(test_user_items, "test_user_items")
    if train.shape != test.shape:
        raise ValueError(f"train_user_items {train.shape} and test_user_items {test.shape} "
                         "must have the same shape")
    if train.shape[0] > model.n_users or train.shape[1] != model.n_items:
        raise ValueError(f"the matrices are {train.shape} but the model knows "
                         f"{model.n_users} users x {model.n_items} items")
    n_items = model.n_items
    n = len(relevant_items(test, model.n_users, n_items)[2])
    with tqdm(total=n, disable=not show_progress, desc="evaluate", unit="user") as bar:
        users, lists, per = rank_and_score(model, train, test, K, threads, bar)
    result, extra = _summarise(per, K, lists, train, n_items,
                               _item_vectors(model, item_features, n_items))
    if per_user:
        result["per_user"] = _per_user(users, per, K, extra)
    return result


def _per_user(users, per, K, extra):
    return {"users": users, "hits": per[:, 0], "n_relevant": per[:, 1], "n_test": per[:, 2],
            "precision": per[:, 0] / per[:, 1], "precision_standard": per[:, 0] / K,
            "recall": per[:, 0] / per[:, 2], "ap": per[:, 3], "ndcg": per[:, 4],
            "auc": per[:, 5], "rr": per[:, 6], **extra}


def metrics_from_recommendations(recommended: ArrayLike,
                                 test_user_items: SparseMatrix | Interactions,
                                 users: Indices | None = None, K: int | None = None,
                                 n_items: int | None = None, num_threads: int = 0,
                                 per_user: bool = False,
                                 train_user_items: SparseMatrix | Interactions | None = None,
                                 item_features: Any = None) -> dict[str, Any]:
    """Score ready-made top-K lists against held-out items (the kernel behind the metrics).

    Parameters
    ----------
    recommended : 2-D int array
        Row k is the list for user ``users[k]`` (best first; -1 pads short lists).
    test_user_items : sparse matrix or Interactions
        Relevant items are the stored values > 0.
    users : array of int, optional
        The user of each row (default ``0..len(recommended)-1``). Users without relevant
        items are skipped.
    K : int, optional
        The cut-off (default: the width of `recommended`; wider lists are cut to K).
    n_items : int, optional
        Catalogue size for AUC and coverage (default: the columns of `test_user_items`).
    train_user_items : sparse matrix or Interactions, optional
        The training interactions, whose popularity novelty and popularity_percentile
        measure (NaN without them).
    item_features : array or sparse matrix (n_items x features), optional
        The item vectors of the diversity (NaN without them).

    Returns the same dict as :func:`ranking_metrics_at_k`.
    """
    recommended = np.asarray(recommended)
    if recommended.ndim != 2:
        raise ValueError(f"recommended must be 2-D (one list per user), got shape "
                         f"{recommended.shape}")
    if recommended.dtype.kind not in "iu":
        raise TypeError(f"recommended must hold integer item ids, got {recommended.dtype}")
    test, _ = _unwrap_data(test_user_items, "test_user_items")
    n_items = test.shape[1] if n_items is None else check_int("n_items", n_items, minimum=1)
    if n_items < test.shape[1]:
        raise ValueError(f"n_items ({n_items}) is smaller than the test matrix's "
                         f"{test.shape[1]} columns")
    K = recommended.shape[1] if K is None else check_int("K", K, minimum=1)
    recommended = np.ascontiguousarray(recommended[:, :K], dtype=np.int64)
    if users is None:
        users = np.arange(len(recommended), dtype=np.int64)
    users, _ = check_ids("users", users, test.shape[0])
    if len(users) != len(recommended):
        raise ValueError(f"users has {len(users)} entries but recommended has "
                         f"{len(recommended)} rows")
    if recommended.size and (recommended.min() < -1 or recommended.max() >= n_items):
        raise ValueError(f"recommended ids must be -1 (padding) or in [0, {n_items})")
    _check_distinct_rows(recommended)
    test = sp.csr_matrix((test.data, test.indices, test.indptr),
                         shape=(test.shape[0], n_items))
    indptr, indices, with_items = relevant_items(test, test.shape[0], n_items)
    keep = np.isin(users, with_items)
    rows, lists = users[keep], recommended[keep]
    threads = resolve_threads(check_num_threads(num_threads))
    per = score_lists(lists, rows, indptr, indices, n_items, K, threads)
    train = None
    if train_user_items is not None:
        train, _ = _unwrap_data(train_user_items, "train_user_items")
        if train.shape[1] != n_items:
            raise ValueError(f"train_user_items has {train.shape[1]} columns, not n_items="
                             f"{n_items}")
    unit = None if item_features is None else beyond.unit_rows(item_features, n_items)
    result, extra = _summarise(per, K, lists, train, n_items, unit)
    if per_user:
        result["per_user"] = _per_user(rows, per, K, extra)
    return result


def _check_distinct_rows(recommended):
    if recommended.shape[1] < 2:
        return
    ordered = np.sort(recommended, axis=1)
    repeated = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)
    if repeated.any():
        row = int(np.flatnonzero(repeated.any(axis=1))[0])
        raise ValueError(f"recommended row {row} lists an item twice")


def precision_at_k(model: RecommenderBase | IdRecommender,
                   train_user_items: SparseMatrix | Interactions,
                   test_user_items: SparseMatrix | Interactions, K: int = 10,
                   definition: str = "implicit", **kwargs: Any) -> float:
    """Precision at K, by `definition`.

    ``"implicit"`` (the default, for compatibility with `implicit`): the sum over users of
    hits / the sum of min(K, |T|), which reaches 1 whenever every achievable hit is found
    and can rise with K. ``"standard"``: the textbook mean over users of hits / K.
    """
    definition = check_choice("definition", definition, ("implicit", "standard"))
    key = "precision" if definition == "implicit" else "precision_standard"
    return ranking_metrics_at_k(model, train_user_items, test_user_items, K, **kwargs)[key]


def hit_rate_at_k(model: RecommenderBase | IdRecommender,
                  train_user_items: SparseMatrix | Interactions,
                  test_user_items: SparseMatrix | Interactions, K: int = 10,
                  **kwargs: Any) -> float:
    """HitRate at K: the share of users with at least one held-out item in their top K."""
    return ranking_metrics_at_k(model, train_user_items, test_user_items, K, **kwargs)[
        "hit_rate"]


def mrr_at_k(model: RecommenderBase | IdRecommender,
             train_user_items: SparseMatrix | Interactions,
             test_user_items: SparseMatrix | Interactions, K: int = 10,
             **kwargs: Any) -> float:
    """MRR at K: the mean over users of 1 / (rank of the first hit), 0 without a hit."""
    return ranking_metrics_at_k(model, train_user_items, test_user_items, K, **kwargs)["mrr"]


def recall_at_k(model: RecommenderBase | IdRecommender,
                train_user_items: SparseMatrix | Interactions,
                test_user_items: SparseMatrix | Interactions, K: int = 10,
                **kwargs: Any) -> float:
    """Recall at K: the mean over users of hits / |T|."""
    return ranking_metrics_at_k(model, train_user_items, test_user_items, K, **kwargs)["recall"]


def mean_average_precision_at_k(model: RecommenderBase | IdRecommender,
                                train_user_items: SparseMatrix | Interactions,
                                test_user_items: SparseMatrix | Interactions, K: int = 10,
                                **kwargs: Any) -> float:
    """MAP at K: the mean over users of AP@K (normalised by min(K, |T|))."""
    return ranking_metrics_at_k(model, train_user_items, test_user_items, K, **kwargs)["map"]


def ndcg_at_k(model: RecommenderBase | IdRecommender,
              train_user_items: SparseMatrix | Interactions,
              test_user_items: SparseMatrix | Interactions, K: int = 10,
              **kwargs: Any) -> float:
    """nDCG at K with binary relevance, averaged over users."""
    return ranking_metrics_at_k(model, train_user_items, test_user_items, K, **kwargs)["ndcg"]


def auc_at_k(model: RecommenderBase | IdRecommender,
             train_user_items: SparseMatrix | Interactions,
             test_user_items: SparseMatrix | Interactions, K: int = 10,
             **kwargs: Any) -> float:
    """`implicit`'s limited AUC at K, averaged over users."""
    return ranking_metrics_at_k(model, train_user_items, test_user_items, K, **kwargs)["auc"]


def catalog_coverage(model: RecommenderBase | IdRecommender,
                     train_user_items: SparseMatrix | Interactions,
                     test_user_items: SparseMatrix | Interactions, K: int = 10,
                     **kwargs: Any) -> float:
    """The fraction of the catalogue that appears in the test users' top-K lists."""
    return ranking_metrics_at_k(model, train_user_items, test_user_items, K, **kwargs)[
        "coverage"]


# --- rating metrics ---------------------------------------------------------------------------
def _rating_errors(model_or_truth, test_or_predictions):
    if isinstance(model_or_truth, (RecommenderBase, IdRecommender)):
        model = _unwrap_model(model_or_truth)
        test, _ = _unwrap_data(test_or_predictions, "test_user_items")
        if test.shape[1] != model.n_items or test.shape[0] > model.n_users:
            raise ValueError(f"test_user_items is {test.shape} but the model knows "
                             f"{model.n_users} users x {model.n_items} items")
        coo = test.tocoo()
        if not np.isfinite(coo.data).all():
            raise ValueError("test_user_items contains NaN or infinite values")
        truth = coo.data.astype(np.float64)
        predictions = np.asarray(score_pairs(model, coo.row, coo.col), dtype=np.float64)
    else:
        truth = _numbers("y_true", model_or_truth)
        predictions = _numbers("y_pred", test_or_predictions)
        if truth.shape != predictions.shape:
            raise ValueError(f"y_true and y_pred must have the same length, got {truth.size} "
                             f"and {predictions.size}")
        if not (np.isfinite(truth).all() and np.isfinite(predictions).all()):
            raise ValueError("y_true and y_pred must be finite")
    if not truth.size:
        raise ValueError("nothing to score: no test ratings")
    return predictions - truth


def _numbers(name, values):
    """A flat float64 array of `values`, or a TypeError naming them."""
    try:
        array = np.asarray(values)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"got dtype {array.dtype}")
        return array.astype(np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of numbers (or pass a fitted model and a test "
                        f"matrix): {exc}") from None


def rmse(model_or_truth: RecommenderBase | IdRecommender | ArrayLike,
         test_or_predictions: SparseMatrix | Interactions | ArrayLike) -> float:
    r"""Root mean squared error sqrt(1/n sum (r^ - r)^2).

    Either ``rmse(model, test_user_items)`` (the model's predictions of the stored test
    values, through its ``predict`` or its scores) or ``rmse(y_true, y_pred)`` (arrays).
    """
    errors = _rating_errors(model_or_truth, test_or_predictions)
    return float(np.sqrt(np.mean(errors ** 2)))


def mae(model_or_truth: RecommenderBase | IdRecommender | ArrayLike,
        test_or_predictions: SparseMatrix | Interactions | ArrayLike) -> float:
    r"""Mean absolute error 1/n sum |r^ - r|; arguments as :func:`rmse`."""
    errors = _rating_errors(model_or_truth, test_or_predictions)
    return float(np.mean(np.abs(errors)))


# --- cross-validation ------------------------------------------------------------------------
def cross_validate(model: RecommenderBase | IdRecommender, data: SparseMatrix | Interactions,
                   folds: int = 5, K: int = 10, measures: str | Sequence[str] | None = None,
                   random_state: SeedLike = None, show_progress: bool = False,
                   num_threads: int = 0) -> dict[str, np.ndarray]:
    """Fit and score a fresh copy of `model` on each of `folds` random folds.

    The stored interactions are shuffled with `random_state` and cut into `folds` parts;
    each part is the test set once, the rest the training set. The model is copied with its
    parameters (``type(model)(**model.get_params())``) for each fold; `model` itself is not
    fitted.

    Parameters
    ----------
    measures : sequence of str, optional
        From the keys of :func:`ranking_metrics_at_k` (``precision, precision_standard,
        hit_rate, recall, map, ndcg, mrr, auc, coverage, novelty, popularity_percentile,
        diversity``) and ``rmse, mae``. Default: the ranking metrics, plus rmse and mae for
        models with a ``predict`` method.

    Returns
    -------
    dict of measure -> array with one value per fold, plus ``fit_time`` and ``test_time``
    (seconds).
    """
    base = _unwrap_model(model)
    folds = check_int("folds", folds, minimum=2)
    K = check_int("K", K, minimum=1)
    show_progress = check_bool("show_progress", show_progress)
    if measures is None:
        measures = list(RANKING_METRICS) + (["rmse", "mae"] if callable(
            getattr(base, "predict", None)) else [])
    measures = [measures] if isinstance(measures, str) else list(measures)
    unknown = [m for m in measures if m not in RANKING_METRICS + ("rmse", "mae")]
    if unknown:
        raise ValueError(f"unknown measures {unknown}; choose from "
                         f"{', '.join(RANKING_METRICS + ('rmse', 'mae'))}")
    matrix, source = _unwrap_data(data, "data")
    if matrix.nnz < folds:
        raise ValueError(f"cannot cut {matrix.nnz} interactions into {folds} folds")
    rng = check_random_state(random_state)
    fold_of = np.empty(matrix.nnz, dtype=np.int64)
    fold_of[rng.permutation(matrix.nnz)] = np.arange(matrix.nnz) % folds
    results = {m: np.zeros(folds) for m in measures}
    results["fit_time"], results["test_time"] = np.zeros(folds), np.zeros(folds)
    for f in tqdm(range(folds), disable=not show_progress, desc="cross-validate", unit="fold"):
        train, test = _split_by_mask(matrix, None, fold_of == f)
        fold_model = type(base)(**base.get_params())
        start = time.perf_counter()
        fold_model.fit(train, show_progress=False)
        results["fit_time"][f] = time.perf_counter() - start
        start = time.perf_counter()
        if any(m in RANKING_METRICS for m in measures):
            scores = ranking_metrics_at_k(fold_model, train, test, K, num_threads=num_threads)
            for m in measures:
                if m in scores:
                    results[m][f] = scores[m]
        if "rmse" in measures:
            results["rmse"][f] = rmse(fold_model, test)
        if "mae" in measures:
            results["mae"][f] = mae(fold_model, test)
        results["test_time"][f] = time.perf_counter() - start
        log.info("fold %d/%d: %s", f + 1, folds,
                 ", ".join(f"{m} {results[m][f]:.4f}" for m in measures))
    return results


# the statistics module imports this one's ranking_metrics_at_k: loaded last
from fastals.evaluation.statistics import (  # noqa: E402
    bootstrap_intervals,
    compare_models,
    paired_bootstrap,
)
