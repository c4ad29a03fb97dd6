r"""Validation while training, shared by every iterative model; and the ranking-metric pass.

A fit given ``validation=(train_part, held_out)`` (or ``validation_split=``) scores the
model on the held-out interactions after each iteration, with the metric named by
``metric`` (``"ndcg@10"``, ``"precision@5"``, ``"rmse"``, ...), shows it on the progress
bar, records it in ``model.history``, and with ``early_stopping_rounds=N`` stops once N
iterations in a row have not improved on the best, then puts back the best iteration's
state (its arrays, copied when it was reached): the model is then the one a fit of
``model.best_iteration`` iterations gives. A ranking metric is computed on at most
:data:`MAX_VALIDATION_USERS` held-out users (a fixed seeded sample when there are more),
so that an iteration's score costs a bounded time.

How a model takes part (:mod:`fastals.models.base` re-exports the two names):

1. at the start of ``fit``, ``user_items, validation = prepare_validation(self, user_items,
   validation, metric, early_stopping_rounds, validation_split)``; fit on the returned
   matrix (the input, or its training part under ``validation_split``);
2. pass ``validation=validation`` to :func:`fastals.models.base.run_training`, whose step
   must leave the model's published state (``_state_names``) holding the iteration it
   just ran (a model that trains on private arrays publishes them when
   ``validation.active``);
3. after the loop, ``validation.restore_best(self)`` (before any post-processing that
   should apply to the kept factors).

The ranking pass (:func:`rank_and_score`) is the one :mod:`fastals.evaluation` runs too:
one batch ``recommend`` per block of users (training items filtered out), then the
metrics kernel (:mod:`fastals._kernels._metrics`) over all the lists.

May import: numpy, scipy, the metrics kernel and status, fastals' array, validation and
threading helpers. Models are used through their public methods (``recommend``,
``predict``, ``clear_cache``) and the names of their state (``_state_names``); Interactions
are recognised by their ``user_items``.
"""
from __future__ import annotations

import logging
import math
import re
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastals._arrays import aligned
from fastals._kernels import _metrics
from fastals._kernels.status import raise_for_status
from fastals._threads import resolve_threads, single_threaded_blas
from fastals._validation import as_csr, check_float, check_int, check_random_state

log = logging.getLogger("fastals")

#: ranking metrics (larger is better) and the rating metrics (smaller is better)
RANKING_METRICS = ("precision", "precision_standard", "hit_rate", "recall", "map", "ndcg",
                   "auc", "mrr")
RATING_METRICS = ("rmse", "mae")
_ALIASES = {"hitrate": "hit_rate", "hr": "hit_rate", "p": "precision",
            "standard_precision": "precision_standard", "precision_implicit": "precision"}
# users scored per recommend call: bounded dense score blocks and a smooth progress bar
_USERS_PER_BLOCK_CELLS = 1 << 24
#: a ranking metric while training is computed on at most this many held-out users (a fixed
#: seeded sample when there are more): scoring every user against the whole catalogue
#: costs more than a sparse ALS iteration (measured: 20k users x 10k items, 8x the plain
#: fit), and the same sample every iteration keeps the comparisons between them paired
MAX_VALIDATION_USERS = 5000


# --- the ranking pass, shared with fastals.evaluation --------------------------------------
def relevant_items(test, n_users_model, n_items_model):
    """(indptr, indices, users): the relevant test items (stored values > 0) as CSR
    arrays, and the users that have any. `test` is any sparse users x items matrix."""
    csr = as_csr(test, "test_user_items", np.float64)
    if csr.shape[1] != n_items_model:
        raise ValueError(f"test_user_items has {csr.shape[1]} columns but the model knows "
                         f"{n_items_model} items")
    keep = csr.data > 0
    if not keep.all():
        rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
        counts = np.bincount(rows[keep], minlength=csr.shape[0])
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(csr.indptr.dtype)
        indices = csr.indices[keep]
    else:
        indptr, indices = csr.indptr, csr.indices
    users = np.flatnonzero(np.diff(indptr) > 0)
    if users.size and users[-1] >= n_users_model:
        raise ValueError(f"test_user_items has relevant items for user {int(users[-1])}, but "
                         f"the model knows {n_users_model} users")
    return indptr, indices, users


def score_lists(recommended, rows, indptr, indices, n_items, K, threads):
    """The kernel's per-list table (hits, min(K,|T|), |T|, AP, nDCG, AUC, RR) of each list
    ``recommended[k]`` against the relevant items of user ``rows[k]``."""
    out = np.zeros((len(recommended), _metrics.n_outputs()))
    status = _metrics.ranking_metrics(np.ascontiguousarray(recommended, dtype=np.int64),
                                      np.ascontiguousarray(rows, dtype=np.int64), indptr,
                                      indices, n_items, K, threads, out)
    raise_for_status(status, "the metrics kernel")
    return out


def recommend_lists(model, train_rows, users, K, bar=None):
    """(len(users) x K) int64 top-K lists (padded with -1) of ``model.recommend_all`` (what
    ``recommend`` gives, by the cache-tiled all-users kernel), a block of users per call, the
    users' rows of `train_rows` filtered out."""
    lists = np.full((len(users), K), -1, dtype=np.int64)
    step = max(256, _USERS_PER_BLOCK_CELLS // max(model.n_items, 1))
    # BLAS limited to one thread while scoring: a threaded gemm right before the OpenMP
    # top-N and metrics kernels leaves its threads spinning against them (measured: the
    # kernels ran several times slower, and the whole call 1.3x slower on 2 busy cores)
    with single_threaded_blas():
        for lo in range(0, len(users), step):
            block = users[lo:lo + step]
            ids, _ = model.recommend_all(train_rows[block], users=block, N=K,
                                         filter_already_liked_items=True)
            lists[lo:lo + len(block), :ids.shape[1]] = ids
            if bar is not None:
                bar.update(len(block))
    return lists


def rank_and_score(model, train, test, K, threads, bar=None):
    """(users, lists, per-list table) of every user with a relevant item in `test`:
    ``model.recommend_all`` with the `train` rows filtered, scored by the kernel. `train` and
    `test` are canonical CSR matrices (train may hold a prefix of the model's users)."""
    indptr, indices, users = relevant_items(test, model.n_users, model.n_items)
    if train.shape[0] != model.n_users:
        train = sp.vstack([train, sp.csr_matrix((model.n_users - train.shape[0],
                                                 train.shape[1]), dtype=train.dtype)],
                          format="csr")
    lists = recommend_lists(model, train, users, K, bar)
    return users, lists, score_lists(lists, users, indptr, indices, model.n_items, K, threads)


def summarise(per, K):
    """The averages of the per-list table: the accuracy metrics (module docstring of
    :mod:`fastals.evaluation`)."""
    hits, n_relevant, n_test = per[:, 0], per[:, 1], per[:, 2]
    n = len(per)
    auc = per[:, 5]
    if not n:
        return {**{name: float("nan") for name in RANKING_METRICS}, "users": 0, "K": K}
    return {
        "precision": float(hits.sum() / n_relevant.sum()),
        "precision_standard": float(np.mean(hits / K)),
        "hit_rate": float(np.mean(hits > 0)),
        "recall": float(np.mean(hits / n_test)),
        "map": float(per[:, 3].mean()),
        "ndcg": float(per[:, 4].mean()),
        "auc": float(np.nanmean(auc)) if np.isfinite(auc).any() else float("nan"),
        "mrr": float(per[:, 6].mean()),
        "users": n,
        "K": K,
    }


# --- validation while training --------------------------------------------------------------
def parse_metric(metric, default_K=10):
    """(name, K or None) of a metric string such as ``"ndcg@10"``, ``"mrr"`` or ``"rmse"``."""
    if not isinstance(metric, str):
        raise TypeError(f"metric must be a string such as 'ndcg@10' or 'rmse', got {metric!r}")
    match = re.fullmatch(r"\s*([A-Za-z_]+)\s*(?:@\s*(\d+))?\s*", metric)
    name = _ALIASES.get(match.group(1).lower(), match.group(1).lower()) if match else None
    if name not in RANKING_METRICS + RATING_METRICS:
        raise ValueError(f"metric must be one of {', '.join(RANKING_METRICS)} (with @K, e.g. "
                         f"'ndcg@10') or {', '.join(RATING_METRICS)}, got {metric!r}")
    if name in RATING_METRICS:
        if match.group(2):
            raise ValueError(f"metric {metric!r}: {name} has no cut-off K (say {name!r})")
        return name, None
    K = int(match.group(2)) if match.group(2) else default_K
    if K < 1:
        raise ValueError(f"metric {metric!r}: K must be >= 1")
    return name, K


def _matrix_of(value, name):
    """The users x items matrix of Interactions (duck-typed) or a sparse matrix, as CSR."""
    matrix = getattr(value, "user_items", value)
    return as_csr(matrix, name, np.float64, keep_zeros=True).to_scipy()


class Validation:
    """The held-out scoring of one fit (see the module docstring); inactive when the fit
    has no validation data. After the fit, `history` and `best_iteration` are the model's.

    Attributes
    ----------
    metric : str
        The metric's display name (``"ndcg@10"``, ``"rmse"``).
    history : list of float
        The metric after each iteration run.
    best_iteration : int or None
        How many iterations the best state had (1-based); None before any.
    """

    def __init__(self, train_rows=None, held_out=None, metric=None, K=None,
                 early_stopping_rounds=None, num_threads=0):
        self.active = held_out is not None
        self.train_rows, self.held_out = train_rows, held_out
        self.name, self.K = metric, K
        self.metric = f"{metric}@{K}" if K else metric
        self.larger_is_better = metric not in RATING_METRICS
        self.early_stopping_rounds = early_stopping_rounds
        self.threads = resolve_threads(num_threads)
        self.history: list[float] = []
        self.best_iteration: int | None = None
        self.best_value = -math.inf if self.larger_is_better else math.inf
        self._best_state: dict[str, Any] | None = None
        self.stopped = False

    def evaluate(self, model) -> float:
        """The metric of the model as it stands, on the held-out interactions."""
        clear = getattr(model, "clear_cache", None)
        if clear is not None:  # factors updated in place: derived copies are stale
            clear()
        if self.name in RATING_METRICS:
            coo = self.held_out.tocoo()
            # (return_known: held-out users or items without training ratings get the
            # baseline, silently, rather than a warning per iteration)
            predicted, _ = model.predict(coo.row, coo.col, return_known=True)
            predicted = np.asarray(predicted, dtype=np.float64)
            errors = predicted - coo.data
            return float(np.sqrt(np.mean(errors ** 2)) if self.name == "rmse"
                         else np.mean(np.abs(errors)))
        _, _, per = rank_and_score(model, self.train_rows, self.held_out, self.K, self.threads)
        return summarise(per, self.K)[self.name]

    def update(self, model, iteration) -> float:
        """Score the model after `iteration` (0-based), keep its state if it is the best so
        far, and set `stopped` once early_stopping_rounds iterations did not improve."""
        value = self.evaluate(model)
        self.history.append(value)
        better = value > self.best_value if self.larger_is_better else value < self.best_value
        if better or self.best_iteration is None:
            self.best_value, self.best_iteration = value, iteration + 1
            if self.early_stopping_rounds is not None:
                self._best_state = _snapshot(model)
        elif self.early_stopping_rounds is not None and \
                iteration + 1 - self.best_iteration >= self.early_stopping_rounds:
            self.stopped = True
        return value

    def restore_best(self, model) -> None:
        """With early stopping, put back the best iteration's state; then publish
        `history` and `best_iteration` on the model."""
        if self._best_state is not None and self.best_iteration != len(self.history):
            for name, value in self._best_state.items():
                setattr(model, name, value)
            clear = getattr(model, "clear_cache", None)
            if clear is not None:
                clear()
            log.info("%s: kept iteration %d (%s %.6g); %d run", type(model).__name__,
                     self.best_iteration, self.metric, self.best_value, len(self.history))
        self._best_state = None
        if self.active:
            model.history[self.metric] = list(self.history)
            model.best_iteration = self.best_iteration


def _snapshot(model):
    names = tuple(model._state_names) + tuple(getattr(model, "_optional_state_names", ()))
    state = {}
    for name in names:
        value = getattr(model, name, None)
        state[name] = aligned(value, copy=True) if isinstance(value, np.ndarray) else value
    return state


def holdout_per_user(matrix, fraction, random_state):
    """(train, held_out): a fraction of each user's stored values, at random, held out.

    A user with n >= 2 values holds out round(fraction * n) of them, at least 1 and at most
    n - 1; users with one value keep it. Both parts are canonical CSR of the input's shape
    and dtype; the input is not modified.
    """
    matrix = sp.csr_matrix(matrix)  # canonical (as_csr's), so rows are sorted
    rng = check_random_state(random_state)
    counts = np.diff(matrix.indptr)
    rows = np.repeat(np.arange(matrix.shape[0]), counts)
    keys = rng.random(matrix.nnz)
    order = np.lexsort((keys, rows))
    rank = np.empty(matrix.nnz, dtype=np.int64)
    rank[order] = np.arange(matrix.nnz) - np.repeat(matrix.indptr[:-1], counts)
    quota = np.where(counts >= 2, np.clip(np.rint(fraction * counts), 1, counts - 1), 0)
    held = rank < quota[rows]
    parts = []
    for mask in (~held, held):
        part = sp.csr_matrix((matrix.data[mask], (rows[mask], matrix.indices[mask])),
                             shape=matrix.shape, dtype=matrix.dtype)
        part.sum_duplicates()
        parts.append(part)
    return parts[0], parts[1]


def _split_seed(model):
    """The validation_split seed: the model's random_state when it is an int (so a seeded
    fit is reproducible), else 0; never draws from a Generator the fit itself uses."""
    seed = getattr(model, "random_state", None)
    return seed if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) else 0


def prepare_validation(model, user_items, validation=None, metric=None,
                       early_stopping_rounds=None, validation_split=None):
    """(the matrix to fit, a :class:`Validation`) from a fit's validation arguments.

    Parameters
    ----------
    model : the model being fitted (resets its ``history`` and ``best_iteration``)
    user_items : the fit's input (any sparse matrix)
    validation : (train_part, held_out), optional
        Sparse matrices (or Interactions) of the model's shape, or with fewer users:
        `train_part` holds the interactions to filter out of the users' lists (usually the
        fit's input), `held_out` those to find (ranking metrics) or predict (rmse, mae).
    metric : str, optional
        Default ``"ndcg@10"``, or ``"rmse"`` for models that predict ratings.
    early_stopping_rounds : int, optional
        Stop after this many iterations without improvement, keeping the best.
    validation_split : float in (0, 1), optional
        Hold out this fraction of each user's interactions (seeded with the model's int
        random_state, else 0) as `held_out`, fit on the rest (the same rest filters).
    """
    model.history, model.best_iteration = {}, None
    if validation is not None and validation_split is not None:
        raise ValueError("give validation=(train_part, held_out) or validation_split, not both")
    if validation is None and validation_split is None:
        for name, value in (("metric", metric), ("early_stopping_rounds", early_stopping_rounds)):
            if value is not None:
                raise ValueError(f"{name}={value!r} needs validation data: pass "
                                 "validation=(train_part, held_out) or validation_split=")
        return user_items, Validation()
    predicts = callable(getattr(model, "predict", None))
    name, K = parse_metric("rmse" if metric is None and predicts else
                           "ndcg@10" if metric is None else metric)
    if name in RATING_METRICS and not predicts:
        raise ValueError(f"metric {name!r} needs a model that predicts ratings; "
                         f"{type(model).__name__} ranks items: use e.g. 'ndcg@10'")
    if early_stopping_rounds is not None:
        early_stopping_rounds = check_int("early_stopping_rounds", early_stopping_rounds,
                                          minimum=1)
    keep_zeros = bool(getattr(model, "_stored_zeros_are_data", False))
    if validation_split is not None:
        fraction = check_float("validation_split", validation_split, minimum=0,
                               exclusive=True, maximum=1)
        if fraction >= 1:
            raise ValueError(f"validation_split must be < 1, got {validation_split}")
        source = as_csr(user_items, "user_items", np.float64, keep_zeros=keep_zeros,
                        sum_duplicates=not keep_zeros).to_scipy()
        train_rows, held_out = holdout_per_user(source, fraction, _split_seed(model))
        if held_out.nnz == 0:
            raise ValueError(f"validation_split={fraction:g} holds nothing out: no user has "
                             "2 interactions or more")
        user_items = train_rows
    else:
        if not isinstance(validation, (tuple, list)) or len(validation) != 2:
            raise TypeError("validation must be a (train_part, held_out) pair of sparse "
                            f"matrices, got {type(validation).__name__}")
        train_rows = _matrix_of(validation[0], "validation[0] (train_part)")
        held_out = _matrix_of(validation[1], "validation[1] (held_out)")
        shape = user_items.shape
        for part_name, part in (("validation[0] (train_part)", train_rows),
                                ("validation[1] (held_out)", held_out)):
            if part.shape[1] != shape[1] or part.shape[0] > shape[0]:
                raise ValueError(f"{part_name} is {part.shape[0]} x {part.shape[1]}, but the "
                                 f"fit's input is {shape[0]} x {shape[1]}: give the same items "
                                 "and at most its users")
    if train_rows.shape != held_out.shape:
        train_rows = _rows_like(train_rows, held_out.shape[0])
    if name in RANKING_METRICS:
        held_out = _sample_users(held_out, MAX_VALIDATION_USERS, _split_seed(model))
    return user_items, Validation(train_rows, held_out, name, K, early_stopping_rounds,
                                  getattr(model, "num_threads", 0))


def _sample_users(held_out, limit, seed):
    """`held_out` with the rows of at most `limit` of its users with a relevant item (a
    seeded sample when there are more; the others emptied)."""
    users = np.flatnonzero(np.diff((held_out > 0).tocsr().indptr) > 0)
    if len(users) <= limit:
        return held_out
    keep = np.zeros(held_out.shape[0])
    keep[np.random.default_rng(seed).choice(users, limit, replace=False)] = 1
    log.info("validation: a ranking metric on %d of the %d held-out users (a fixed sample)",
             limit, len(users))
    sampled = sp.diags(keep) @ held_out
    sampled.eliminate_zeros()
    return sampled.tocsr()


def _rows_like(matrix, n_rows):
    """`matrix` cut or padded with empty rows to n_rows rows."""
    if matrix.shape[0] >= n_rows:
        return matrix[:n_rows]
    return sp.vstack([matrix, sp.csr_matrix((n_rows - matrix.shape[0], matrix.shape[1]))],
                     format="csr")
