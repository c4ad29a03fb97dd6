r"""Ranking metrics in plain Python: the oracle for :mod:`fastals._kernels._metrics`.

For one user with relevant (held-out) items T and a recommendation list rec of length <= K
(best first; -1 marks padding), with hit_i = [rec_i in T]:

* precision@K (per user) = hits / min(K, |T|)  -- the denominator `implicit` uses, so a user
  with fewer than K held-out items can still score 1
* recall@K              = hits / |T|
* AP@K                  = (sum_i hit_i * precision of the first i+1) / min(K, |T|)
* nDCG@K                = (sum_i hit_i / log2(i + 2)) / (sum_{i < min(K,|T|)} 1 / log2(i + 2))
* AUC@K                 = P(a relevant item ranks above a non-relevant one), where the items
  not in the list tie below it: (sum over listed misses of the hits above them
  + (hits + |T|)/2 * (n_items - |T| - misses)) / (|T| (n_items - |T|))
"""
import math

import numpy as np


def list_metrics(rec, relevant, K, n_items):
    """(hits, min(K,|T|), |T|, AP, nDCG, AUC) of one list, as defined in the module."""
    relevant = set(int(i) for i in relevant)
    n_test = len(relevant)
    n_relevant = min(K, n_test)
    hits = precision_sum = dcg = auc = misses = 0.0
    for i, item in enumerate(rec[:K]):
        if item < 0:
            continue
        if int(item) in relevant:
            hits += 1
            precision_sum += hits / (i + 1)
            dcg += 1.0 / math.log2(i + 2)
        else:
            misses += 1
            auc += hits
    idcg = sum(1.0 / math.log2(i + 2) for i in range(n_relevant))
    n_neg = n_items - n_test
    auc_value = (auc + (hits + n_test) / 2.0 * (n_neg - misses)) / (n_test * n_neg) \
        if n_neg > 0 else float("nan")
    return hits, n_relevant, n_test, precision_sum / n_relevant, dcg / idcg, auc_value


def ranking_metrics_loop(recommended, test_user_items, users, K, n_items):
    """Per-list metrics (n x 6 array) and their averages, one Python loop over users.

    `recommended[k]` is the list of user ``users[k]``; the relevant items are the stored
    entries with a positive value in that user's row of `test_user_items`.
    """
    test = test_user_items.tocsr()
    out = np.zeros((len(users), 6))
    for k, u in enumerate(users):
        row = test[u]
        relevant = row.indices[row.data > 0]
        out[k] = list_metrics(np.asarray(recommended[k]), relevant, K, n_items)
    totals = {
        "precision": out[:, 0].sum() / out[:, 1].sum(),
        "recall": float(np.mean(out[:, 0] / out[:, 2])),
        "map": float(np.mean(out[:, 3])),
        "ndcg": float(np.mean(out[:, 4])),
        "auc": float(np.nanmean(out[:, 5])) if np.isfinite(out[:, 5]).any() else float("nan"),
    }
    return out, totals
