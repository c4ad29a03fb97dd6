"""Shared behaviour of the matrix-factorisation models: scores are x_u . y_i.

Holds MatrixFactorizationBase, the initial factor draws of every factor model
(:func:`normal_rows`), the users' and items' interaction counts (:func:`interaction_counts`,
:func:`check_counts`) and what to change when the per-row solve kernels fail
(:func:`solve_hint`, for fastals._kernels.status.raise_for_status). Imports numpy, fastals'
array helpers, fastals._kernels.status and fastals.models.base.
"""
from __future__ import annotations

import numpy as np

from fastals._arrays import aligned_empty
from fastals._kernels.status import Status
from fastals.models.base import FactorScores, RecommenderBase


class MatrixFactorizationBase(RecommenderBase):
    """A model whose preference estimate is the dot product of a user and an item factor.

    Attributes
    ----------
    user_factors : ndarray (n_users, factors)
    item_factors : ndarray (n_items, factors)
    user_counts, item_counts : ndarray (n,) of int64, or None
        Stored training values per user / item; zero for the ones without interactions,
        whose factors were never solved from data (similar_items / similar_users leave them
        out). None when unknown (a file saved before fastals kept them): then the rows of
        all-zero factors are taken as the ones without interactions.
    """

    _state_names: tuple[str, ...] = ("user_factors", "item_factors")
    user_factors: np.ndarray | None = None
    item_factors: np.ndarray | None = None
    user_counts: np.ndarray | None = None
    item_counts: np.ndarray | None = None

    @property
    def n_users(self) -> int:
        return 0 if self.user_factors is None else self.user_factors.shape[0]

    @property
    def n_items(self) -> int:
        return 0 if self.item_factors is None else self.item_factors.shape[0]

    def _recalculate_users(self, rows):
        """Factors of users with the given interaction rows (CSR); subclasses solve them."""
        raise NotImplementedError(f"{type(self).__name__} cannot recalculate users")

    def _derived(self, name, source, make):
        """`make(source)`, cached until `source` is replaced (fit and fold-in replace the
        factor arrays; after editing them in place, call :meth:`clear_cache`)."""
        cache = self.__dict__.setdefault("_cache", {})
        hit = cache.get(name)
        if hit is not None and hit[0] is source:
            return hit[1]
        value = make(source)
        cache[name] = (source, value)
        return value

    def clear_cache(self) -> None:
        """Forget arrays derived from the factors (transposes, normalised copies)."""
        self.__dict__.pop("_cache", None)

    def _without_interactions(self, axis):
        counts = getattr(self, f"{axis}_counts")
        if counts is not None:
            return self._derived(f"{axis}_without_interactions", counts, _is_zero)
        factors = self.item_factors if axis == "item" else self.user_factors
        return self._derived(f"{axis}_zero_rows", factors, _zero_rows)

    def _item_block(self, candidates):
        if candidates is None:
            return self._derived("items_t", self.item_factors, _transpose)
        return _transpose(self.item_factors[candidates])

    def _user_scores(self, userids, rows, item_block, recalculate):
        U = self._recalculate_users(rows) if recalculate else self.user_factors[userids]
        return FactorScores(U, item_block)

    def _similar_scores(self, axis, ids, candidates, vectors=None):
        factors = self.item_factors if axis == "item" else self.user_factors
        unit = self._derived(f"{axis}_unit", factors, _normalise)
        queries = unit[ids] if vectors is None else _normalise(vectors.astype(factors.dtype))
        if candidates is None:
            return FactorScores(queries, self._derived(f"{axis}_unit_t", unit, _transpose))
        return FactorScores(queries, _transpose(unit[candidates]))


def _transpose(factors):
    return np.ascontiguousarray(factors.T)


def _is_zero(counts):
    return np.asarray(counts) == 0


def _zero_rows(factors):
    return ~np.asarray(factors).any(axis=1)


def interaction_counts(rows):
    """Stored values per row of a CSR (int64): a factor model's user_counts / item_counts."""
    return np.diff(rows.indptr).astype(np.int64)


def check_counts(name, counts, n):
    """A saved user_counts / item_counts array as int64, or None when the file has none."""
    if counts is None:
        return None
    counts = np.asarray(counts)
    if counts.shape != (n,) or counts.dtype.kind not in "iu" or (counts < 0).any():
        raise ValueError(f"{name} must hold {n} non-negative integer counts, got "
                         f"{counts.dtype} {counts.shape}")
    return counts.astype(np.int64)


def _normalise(factors):
    """Rows scaled to unit length; all-zero rows stay zero (their cosines are then 0)."""
    norms = np.linalg.norm(factors.astype(np.float64), axis=1, keepdims=True)
    scaled = factors / np.where(norms > 0, norms, 1.0)
    return np.ascontiguousarray(scaled, dtype=factors.dtype)


def normal_rows(rng, n, factors, dtype, finish, width=None, draw_dtype=None,
                chunk_bytes=1 << 20, uniform=False):
    """Initial factors: n rows of standard normal draws from `rng` (uniform [0, 1) draws
    with `uniform`), passed through `finish`.

    The draws are those of one ``rng.standard_normal((n, factors), dtype=draw_dtype)`` (or
    ``rng.random``; `draw_dtype` defaults to `dtype`), made a chunk of about `chunk_bytes`
    at a time; each chunk goes through ``finish(chunk)`` (which scales it, in place or not)
    and is stored, cast to `dtype`, in the first `factors` columns of a cache-aligned
    (n, width) array (width defaults to factors), whose other columns are zero. Every factor model draws
    its initial factors here, so they share one layout rule: cache-aligned rows, padded
    only where a model asks for it (SGD).
    """
    X = aligned_empty((n, factors if width is None else width), dtype)
    X[:, factors:] = 0
    step = max(1, chunk_bytes // (factors * X.itemsize))
    draw = rng.random if uniform else rng.standard_normal
    for start in range(0, n, step):
        block = draw((min(step, n - start), factors),
                     dtype=dtype if draw_dtype is None else draw_dtype)
        X[start:start + len(block), :factors] = finish(block)
    return X


def scaled_by(std, dtype):
    """A :func:`normal_rows` `finish`: the draws times dtype(std), in place: N(0, std^2)."""
    std = dtype(std)

    def finish(block):
        block *= std
        return block

    return finish


def solve_hint(regularization, dtype):
    """What to change when row solves of a factor model fail, per status (the `hint` of
    :func:`fastals._kernels.status.raise_for_status`): a float32 model is told to try
    float64; a float64 model to raise the regularization or scale very large values down."""
    float64 = np.dtype(dtype) == np.float64
    return {
        Status.OVERFLOW: ": the values (times alpha) are too large; scale them down, lower alpha"
                         + ("" if float64 else " or use float64"),
        Status.NOT_POSITIVE_DEFINITE: f" with regularization={regularization}; " + (
            "raise regularization, or scale the values down if they are very large" if float64
            else "raise regularization (or use float64)"),
    }
