"""Shared behaviour of the matrix-factorisation models: scores are x_u . y_i."""
from __future__ import annotations

import numpy as np

from fastals.exceptions import ModelFitError
from fastals.models.base import RecommenderBase

# status codes of the per-row solve kernels (_als.pxi, _explicit.pxi)
STATUS_NOT_POSITIVE_DEFINITE, STATUS_NO_MEMORY = 1, 2


class MatrixFactorizationBase(RecommenderBase):
    """A model whose preference estimate is the dot product of a user and an item factor.

    Attributes
    ----------
    user_factors : ndarray (n_users, factors)
    item_factors : ndarray (n_items, factors)
    """

    _state_names = ("user_factors", "item_factors")
    user_factors = None
    item_factors = None

    @property
    def n_users(self):
        return 0 if self.user_factors is None else self.user_factors.shape[0]

    @property
    def n_items(self):
        return 0 if self.item_factors is None else self.item_factors.shape[0]

    def _recalculate_users(self, rows):
        """Factors of users with the given interaction rows (CSR); subclasses solve them."""
        raise NotImplementedError(f"{type(self).__name__} cannot recalculate users")

    def _item_block(self, candidates):
        Y = self.item_factors
        return Y if candidates is None else Y[candidates]

    def _user_scores(self, userids, rows, item_block, recalculate):
        U = self._recalculate_users(rows) if recalculate else self.user_factors[userids]
        return U @ item_block.T

    def _similar_scores(self, axis, ids, candidates):
        factors = self.item_factors if axis == "item" else self.user_factors
        inverse_norms = _inverse_norms(factors)
        query = factors[ids] * inverse_norms[ids, None]
        if candidates is None:
            return (query @ factors.T) * inverse_norms[None, :]
        return (query @ factors[candidates].T) * inverse_norms[None, candidates]


def _inverse_norms(factors):
    """1/|f| per row, 0 for all-zero rows (whose cosine similarities are then 0)."""
    norms = np.linalg.norm(factors, axis=1)
    with np.errstate(divide="ignore"):
        return np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1), 0).astype(factors.dtype)


def raise_for_status(status, offset, side, regularization):
    """Turn the status codes of a block of row solves into an exception naming the first row."""
    if not status.any():
        return
    failed = np.flatnonzero(status)
    first = int(failed[0]) + offset
    if (status == STATUS_NO_MEMORY).any():
        raise MemoryError(f"the ALS kernel could not allocate scratch memory ({side} {first})")
    raise ModelFitError(
        f"the normal equations of {len(failed)} {side}(s) are not positive definite "
        f"(first: {side} {first}) with regularization={regularization}; raise "
        "regularization (or use float64)")
