"""The baseline every recommender should beat: :class:`PopularityBaseline`.

Recommends the most popular items to everyone. It is a model like the others (fit, recommend,
save, load through :class:`~fastals.RecommenderBase`); :mod:`fastals.evaluation` and
:mod:`fastals` re-export it, and files saved when it lived in :mod:`fastals.evaluation`
still load.

May import: numpy, :mod:`fastals._validation` and :mod:`fastals.models.base`.
"""
from __future__ import annotations

import numpy as np

from fastals._typing import DTypeLike, FitCallback, Self, SparseMatrix
from fastals._validation import as_csr, check_dtype, check_num_threads
from fastals.models.base import RecommenderBase, check_fit_arguments


class PopularityBaseline(RecommenderBase):
    """Recommend the most popular items (most users with a positive value) to everyone.

    The yardstick for ranking metrics: a personalised model that does not beat it has not
    learnt anything about users. Already-liked items are filtered as for any model.
    Similarity queries are not defined for it and raise TypeError.
    """

    _state_names = ("item_popularity", "user_count")
    item_popularity: np.ndarray | None
    user_count: np.ndarray | None

    def __init__(self, dtype: DTypeLike = np.float32, num_threads: int = 0) -> None:
        self.dtype = check_dtype("dtype", dtype)
        self.num_threads = check_num_threads(num_threads)
        self.item_popularity = None
        self.user_count = None

    @property
    def n_users(self) -> int:
        return 0 if self.user_count is None else int(self.user_count[0])

    @property
    def n_items(self) -> int:
        return 0 if self.item_popularity is None else len(self.item_popularity)

    def fit(self, user_items: SparseMatrix, show_progress: bool = True,
            callback: FitCallback | None = None) -> Self:
        """Count, for each item, the users with a positive value. Returns self."""
        check_fit_arguments(show_progress, callback)
        csr = as_csr(user_items, "user_items", self.dtype, allow_empty=False)
        positive = csr.data > 0
        counts = np.bincount(csr.indices[positive], minlength=csr.shape[1])
        # break ties between equally popular items by total value, in a way that never
        # outweighs one more user
        totals = np.bincount(csr.indices[positive], weights=csr.data[positive],
                             minlength=csr.shape[1])
        tie_break = totals / (totals.max() + 1.0) if totals.size and totals.max() > 0 else 0
        self.item_popularity = (counts + 0.5 * tie_break).astype(self.dtype)
        self.user_count = np.array([csr.shape[0]], dtype=np.int64)
        if callback is not None:
            callback(0, 0.0, None)
        return self

    def _item_block(self, candidates):
        return self.item_popularity if candidates is None else self.item_popularity[candidates]

    def _user_scores(self, userids, rows, item_block, recalculate):
        return np.broadcast_to(item_block, (len(userids), len(item_block)))

    def _similar_scores(self, axis, ids, candidates):
        raise TypeError("PopularityBaseline has no notion of similar items or users")

    def _restore(self, arrays, extra):
        super()._restore(arrays, extra)
        popularity = np.asarray(self.item_popularity)
        if popularity.ndim != 1 or popularity.dtype.kind not in "iuf" \
                or not np.isfinite(popularity).all():
            raise ValueError("item_popularity must be a 1-D array of finite numbers")
        self.item_popularity = popularity.astype(self.dtype)
        count = np.asarray(self.user_count)
        if count.shape != (1,) or count.dtype.kind not in "iu" or count[0] < 0:
            raise ValueError("user_count must hold one non-negative count")
        self.user_count = count.astype(np.int64)
