r"""The ranking-metric pass over a model's top-K lists, shared by the rooms that score models.

:func:`rank_and_score` runs one batch ``recommend`` per block of users (training items
filtered out), then the metrics kernel (:mod:`fastals._kernels._metrics`) over all the
lists; :func:`summarise` averages the result.

May import: numpy, scipy, the metrics kernel and status, fastals' validation and threading
helpers. Models are used through their public methods only.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fastals._kernels import _metrics
from fastals._kernels.status import raise_for_status
from fastals._threads import single_threaded_blas
from fastals._validation import as_csr

#: the keys of :func:`summarise`: the accuracy metrics averaged over users
RANKING_METRICS = ("precision", "precision_standard", "hit_rate", "recall", "map", "ndcg",
                   "auc", "mrr")
# users scored per recommend call: bounded dense score blocks and a smooth progress bar
_USERS_PER_BLOCK_CELLS = 1 << 24


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
    """(len(users) x K) int64 top-K lists (padded with -1) of ``model.recommend``, a block
    of users per call, the users' rows of `train_rows` filtered out."""
    lists = np.full((len(users), K), -1, dtype=np.int64)
    step = max(256, _USERS_PER_BLOCK_CELLS // max(model.n_items, 1))
    # BLAS limited to one thread while scoring: a threaded gemm right before the OpenMP
    # top-N and metrics kernels leaves its threads spinning against them (measured: the
    # kernels ran several times slower, and the whole call 1.3x slower on 2 busy cores)
    with single_threaded_blas():
        for lo in range(0, len(users), step):
            block = users[lo:lo + step]
            ids, _ = model.recommend(block, train_rows[block], N=K,
                                     filter_already_liked_items=True)
            lists[lo:lo + len(block), :ids.shape[1]] = ids
            if bar is not None:
                bar.update(len(block))
    return lists


def rank_and_score(model, train, test, K, threads, bar=None):
    """(users, lists, per-list table) of every user with a relevant item in `test`:
    ``model.recommend`` with the `train` rows filtered, scored by the kernel. `train` and
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
