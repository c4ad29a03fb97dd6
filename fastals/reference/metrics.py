r"""Metrics in plain Python: the oracle for :mod:`fastals._kernels._metrics` and for the
numpy code of :mod:`fastals.evaluation`.

For one user with relevant (held-out) items T and a recommendation list rec of length <= K
(best first; -1 marks padding), with hit_i = [rec_i in T]:

* precision@K, implicit's (per user) = hits / min(K, |T|)  -- the denominator `implicit`
  uses, so a user with fewer than K held-out items can still score 1; its average is
  micro: sum of hits / sum of min(K, |T|)
* precision@K, standard   = hits / K  (the textbook definition), averaged over users
* hit rate@K              = [hits > 0]
* recall@K                = hits / |T|
* AP@K                    = (sum_i hit_i * precision of the first i+1) / min(K, |T|)
* nDCG@K                  = (sum_i hit_i / log2(i + 2)) / (sum_{i < min(K,|T|)} 1 / log2(i + 2))
* AUC@K                   = P(a relevant item ranks above a non-relevant one), where the items
  not in the list tie below it: (sum over listed misses of the hits above them
  + (hits + |T|)/2 * (n_items - |T| - misses)) / (|T| (n_items - |T|))
* RR@K                    = 1 / (position of the first hit, from 1), 0 without a hit;
  its mean over users is MRR@K

Beyond accuracy, from the training interactions (n_i = the users with item i, of n_users):

* novelty                 = mean over users of the mean over the list of -log2 p_i, with
  p_i = max(n_i, 1) / n_users (an item nobody had counts as had once)
* popularity percentile   = mean over users of the mean over the list of the fraction of
  the catalogue at most as popular as the item (1 for the most popular one)
* intra-list diversity    = mean over users (with two listed items or more) of the mean
  over the pairs of the list of 1 - cos(v_i, v_j), v the item vectors (cosine 0 for a
  zero vector)

The bootstrap resamples the evaluated users with replacement: resample b draws
``rng.integers(0, n, n)`` and recomputes each metric on the drawn users.
"""
import math

import numpy as np


def list_metrics(rec, relevant, K, n_items):
    """(hits, min(K,|T|), |T|, AP, nDCG, AUC, RR) of one list, as defined in the module."""
    relevant = set(int(i) for i in relevant)
    n_test = len(relevant)
    n_relevant = min(K, n_test)
    hits = precision_sum = dcg = auc = misses = reciprocal_rank = 0.0
    for i, item in enumerate(rec[:K]):
        if item < 0:
            continue
        if int(item) in relevant:
            if hits == 0:
                reciprocal_rank = 1.0 / (i + 1)
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
    return (hits, n_relevant, n_test, precision_sum / n_relevant, dcg / idcg, auc_value,
            reciprocal_rank)


def ranking_metrics_loop(recommended, test_user_items, users, K, n_items):
    """Per-list metrics (n x 7 array) and their averages, one Python loop over users.

    `recommended[k]` is the list of user ``users[k]``; the relevant items are the stored
    entries with a positive value in that user's row of `test_user_items`.
    """
    test = test_user_items.tocsr()
    out = np.zeros((len(users), 7))
    for k, u in enumerate(users):
        row = test[u]
        relevant = row.indices[row.data > 0]
        out[k] = list_metrics(np.asarray(recommended[k]), relevant, K, n_items)
    totals = {
        "precision": out[:, 0].sum() / out[:, 1].sum(),
        "precision_standard": float(np.mean(out[:, 0] / K)),
        "hit_rate": float(np.mean(out[:, 0] > 0)),
        "recall": float(np.mean(out[:, 0] / out[:, 2])),
        "map": float(np.mean(out[:, 3])),
        "ndcg": float(np.mean(out[:, 4])),
        "auc": float(np.nanmean(out[:, 5])) if np.isfinite(out[:, 5]).any() else float("nan"),
        "mrr": float(np.mean(out[:, 6])),
    }
    return out, totals


def item_popularity(train_user_items):
    """n_i: the number of users with a stored value for item i (one Python loop)."""
    train = train_user_items.tocsr()
    counts = [0] * train.shape[1]
    for u in range(train.shape[0]):
        for i in set(int(i) for i in train.indices[train.indptr[u]:train.indptr[u + 1]]):
            counts[i] += 1
    return counts


def novelty_loop(recommended, train_user_items):
    """Mean over the lists of the mean self-information -log2 p_i of their items."""
    counts = item_popularity(train_user_items)
    n_users = train_user_items.shape[0]
    means = []
    for row in recommended:
        items = [int(i) for i in row if i >= 0]
        if items:
            means.append(sum(-math.log2(max(counts[i], 1) / n_users) for i in items)
                         / len(items))
    return sum(means) / len(means) if means else float("nan")


def popularity_percentile_loop(recommended, train_user_items):
    """Mean over the lists of the mean popularity percentile of their items."""
    counts = item_popularity(train_user_items)
    n_items = len(counts)
    means = []
    for row in recommended:
        items = [int(i) for i in row if i >= 0]
        if items:
            means.append(sum(sum(1 for c in counts if c <= counts[i]) / n_items
                             for i in items) / len(items))
    return sum(means) / len(means) if means else float("nan")


def intra_list_diversity_loop(recommended, item_vectors):
    """Mean over the lists with >= 2 items of the mean pairwise 1 - cosine of their items."""
    vectors = np.asarray(item_vectors, dtype=np.float64)
    means = []
    for row in recommended:
        items = [int(i) for i in row if i >= 0]
        pairs = []
        for a in range(len(items)):
            for b in range(a + 1, len(items)):
                u, v = vectors[items[a]], vectors[items[b]]
                norm = math.sqrt(u @ u) * math.sqrt(v @ v)
                pairs.append(1.0 - (u @ v / norm if norm > 0 else 0.0))
        if pairs:
            means.append(sum(pairs) / len(pairs))
    return sum(means) / len(means) if means else float("nan")


def bootstrap_loop(numerators, denominators, n_resamples, rng):
    """The metric sum(num)/sum(den) on each of `n_resamples` resamples of the users."""
    numerators = np.asarray(numerators, dtype=np.float64)
    denominators = np.asarray(denominators, dtype=np.float64)
    n = len(numerators)
    values = []
    for _ in range(n_resamples):
        drawn = rng.integers(0, n, n)
        values.append(sum(numerators[k] for k in drawn) / sum(denominators[k] for k in drawn))
    return np.array(values)
