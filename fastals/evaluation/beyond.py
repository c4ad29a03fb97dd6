r"""Beyond accuracy: how novel, how popular and how diverse the recommended lists are.

Each function takes the top-K lists (an int array, one row per user, -1 for padding) and
returns one value per list (NaN for a list it cannot score); :mod:`fastals.evaluation`
averages them over the evaluated users. With n_i the number of training users who have
item i (stored values in its column), of n_users:

* :func:`novelty` -- the mean self-information of the listed items, -log2 p_i with
  p_i = max(n_i, 1) / n_users (Zhou et al. 2010): 0 for an item every user has, larger
  for rarer ones (an item nobody had counts as had once).
* :func:`popularity_percentile` -- the mean popularity percentile of the listed items: the
  fraction of the catalogue at most as popular as the item (1 for the most popular; a
  popularity-biased recommender scores near 1, a uniform one near 0.5).
* :func:`intra_list_diversity` -- the mean over the pairs of listed items of
  1 - cos(v_i, v_j), with v the rows of item vectors: the model's item factors or item
  features (genres, tags); NaN for lists of fewer than two items.

The oracle is :mod:`fastals.reference.metrics` (``novelty_loop``, ...). May import numpy
and scipy only.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

# list rows handled at once by intra_list_diversity: bounds the (rows, K, F) gather
_DIVERSITY_BLOCK_CELLS = 1 << 22


def item_popularity(train):
    """n_i per item: the stored values in each column of a canonical CSR (int64)."""
    return np.bincount(train.indices, minlength=train.shape[1]).astype(np.int64)


def _list_mean(values, listed):
    """Per row, the mean of `values` over the listed (non-padding) slots; NaN if none."""
    counts = listed.sum(axis=1)
    sums = np.where(listed, values, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def novelty(lists, popularity, n_users):
    """Per list, the mean of -log2(max(n_i, 1) / n_users) over its items."""
    listed = lists >= 0
    self_information = -np.log2(np.maximum(popularity, 1) / max(n_users, 1))
    return _list_mean(self_information[np.where(listed, lists, 0)], listed)


def popularity_percentile(lists, popularity):
    """Per list, the mean over its items of the fraction of items with n_j <= n_i."""
    listed = lists >= 0
    ordered = np.sort(popularity)
    percentile = np.searchsorted(ordered, popularity, side="right") / max(len(popularity), 1)
    return _list_mean(percentile[np.where(listed, lists, 0)], listed)


def unit_rows(item_vectors, n_items):
    """The item vectors (dense or sparse, n_items rows) as float64 rows of unit length
    (zero rows stay zero), or a ValueError naming `item_features`."""
    if sp.issparse(item_vectors):
        vectors = item_vectors.toarray()
    else:
        vectors = np.asarray(item_vectors)
    if vectors.ndim != 2 or vectors.shape[0] != n_items or vectors.dtype.kind not in "biuf":
        raise ValueError(f"item_features must be a numeric (n_items={n_items}, features) array "
                         f"or sparse matrix, got shape {vectors.shape} dtype {vectors.dtype}")
    vectors = vectors.astype(np.float64)
    if not np.isfinite(vectors).all():
        raise ValueError("item_features contains NaN or infinite values")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def intra_list_diversity(lists, unit):
    """Per list, the mean over its pairs of items of 1 - cos (rows of `unit`, unit length)."""
    n, K = lists.shape
    out = np.full(n, np.nan)
    step = max(1, _DIVERSITY_BLOCK_CELLS // max(K * unit.shape[1], 1))
    for lo in range(0, n, step):
        block = lists[lo:lo + step]
        listed = block >= 0
        vectors = unit[np.where(listed, block, 0)] * listed[..., None]
        cosines = np.einsum("nkf,nlf->nkl", vectors, vectors)
        counts = listed.sum(axis=1)
        pairs = counts * (counts - 1) / 2
        # the sum over pairs k < l: (sum over all k, l minus the diagonal) / 2
        off_diagonal = (cosines.sum(axis=(1, 2)) - np.einsum("nkk->n", cosines)) / 2
        with np.errstate(invalid="ignore", divide="ignore"):
            out[lo:lo + len(block)] = np.where(pairs > 0, 1.0 - off_diagonal / pairs, np.nan)
    return out
