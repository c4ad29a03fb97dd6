"""The block-solve machinery of the ALS models (ImplicitALS, ExplicitALS) and fastals.spark.

Imports numpy, fastals' array, validation and kernel helpers and
fastals.models.factorization; the models and fastals.spark import it.
"""
from __future__ import annotations

import numpy as np

from fastals._arrays import aligned_empty
from fastals._kernels.dispatch import kernels
from fastals._validation import all_finite
from fastals.exceptions import ModelFitError
from fastals.models.factorization import raise_for_status

# Rows are solved in blocks of about this many stored values, so that Ctrl-C is noticed
# between blocks (kernels never check for it) and progress is fine-grained.
_BLOCK_NNZ = 1 << 21
_BLOCK_ROWS = 1 << 16


def _initial_factors(rng, n, K, dtype):
    """N(0, 0.01^2) factors drawn directly in `dtype` (no float64 temporary), cache-aligned."""
    factors = aligned_empty((n, K), dtype)
    rng.standard_normal(out=factors, dtype=dtype)
    factors *= dtype(0.01)
    return factors


def _gram(Y):
    """Y^T Y in float64, accumulated over row blocks of about 512 KiB (bounded temporary
    memory: matmul copies the transposed block once more)."""
    K = Y.shape[1]
    total = np.zeros((K, K), dtype=np.float64)
    step = max(64, (1 << 16) // max(K, 1))
    for lo in range(0, Y.shape[0], step):
        block = Y[lo:lo + step].astype(np.float64)
        total += block.T @ block
    return total


def _blocks(csr):
    """Row ranges holding about _BLOCK_NNZ stored values (and at most _BLOCK_ROWS rows)."""
    n_rows = csr.shape[0]
    bounds = [0]
    while bounds[-1] < n_rows:
        lo = bounds[-1]
        target = csr.indptr[lo] + _BLOCK_NNZ
        hi = int(np.searchsorted(csr.indptr, target, side="right")) - 1
        bounds.append(min(n_rows, max(hi, lo + 1), lo + _BLOCK_ROWS))
    return list(zip(bounds[:-1], bounds[1:]))


def initial_item_factors(rng, item_counts, factors, nonnegative, dtype):
    """N(0, 1/K) item factors (their absolute values if nonnegative); zero for unrated items."""
    Y = rng.standard_normal((len(item_counts), factors)) / np.sqrt(factors)
    if nonnegative:
        Y = np.abs(Y)
    Y = Y.astype(dtype)
    Y[np.asarray(item_counts) == 0] = 0
    return Y


class ImplicitBlockSolver:
    """The row solves of an :class:`~fastals.ImplicitALS` (its parameters, copied)."""

    def __init__(self, model):
        self.regularization, self.alpha, self.dtype = model.regularization, model.alpha, \
            model.dtype
        self.solver, self.cg_steps, self._offset = model.solver, model.cg_steps, model._offset

    def _solve(self, rows_csr, blocks, X, Y, side, threads, gram=None, offset=0,
               row_shift=None):
        """One half-iteration: update every row of X against the fixed Y, block by block.

        `gram` is :meth:`_gram` of Y when the caller already has it (fastals.spark computes
        it once on the driver); `offset` is added to row numbers in error messages (the
        position of this block of rows in the whole side). `row_shift` (one value per row
        of X, in the model's dtype) is added to the diagonal of each row's system on top of
        `gram`: fastals.spark's weighted regularization passes Y^T Y and lambda n_u.
        """
        als = kernels("_als")
        gram = self._gram(Y) if gram is None else gram
        alpha = self.dtype(self.alpha)
        if row_shift is not None and (row_shift.shape != (X.shape[0],)
                                      or row_shift.dtype != X.dtype):
            raise ValueError(f"row_shift must be a {X.dtype} array of {X.shape[0]} values "
                             f"(one per row), got {row_shift.dtype} {row_shift.shape}")
        for lo, hi in blocks:
            part = rows_csr.rows(lo, hi)
            status = np.zeros(hi - lo, dtype=np.int8)
            shift = None if row_shift is None else row_shift[lo:hi]
            if self.solver == "cg":
                als.solve_cg(part.indptr, part.indices, part.data, X[lo:hi], Y, gram, alpha,
                             self.cg_steps, threads, status, shift, self._offset)
            else:
                als.solve_cholesky(part.indptr, part.indices, part.data, X[lo:hi], Y, gram,
                                   alpha, threads, status, shift, self._offset)
            self._raise_for_status(status, lo + offset, side)
        if not all_finite(X):
            raise ModelFitError(
                f"the {side} factors became non-finite (overflow); the values in user_items "
                f"or alpha={self.alpha} may be too large for {np.dtype(self.dtype).name}: "
                "scale the values down, lower alpha, raise regularization or use float64")

    def _raise_for_status(self, status, offset, side):
        raise_for_status(status, offset, side, self.regularization, self.dtype)

    def _gram(self, Y):
        """Y^T Y + regularization I, accumulated in float64 blocks, in the model's dtype."""
        return (_gram(Y) + self.regularization * np.eye(Y.shape[1])).astype(self.dtype)


class ExplicitBlockSolver:
    """The row solves of an :class:`~fastals.ExplicitALS` (its parameters, copied)."""

    def __init__(self, model):
        self.regularization, self.dtype = model.regularization, model.dtype
        self._regularization = model._regularization
        self._bias_regularization = model._bias_regularization
        self._mu = model._mu
        self.weighted_regularization, self.biases, self.nonnegative = \
            model.weighted_regularization, model.biases, model.nonnegative

    def _solve(self, rows_csr, blocks, X, x_bias, Y, y_bias, side, threads):
        """One half-iteration: solve every row of X (and x_bias) against the fixed Y, y_bias."""
        which = 0 if side == "user" else 1
        reg = self._regularization[which]
        reg_bias = self._bias_regularization[which]
        als = kernels("_explicit")
        for lo, hi in blocks:
            part = rows_csr.rows(lo, hi)
            status = np.zeros(hi - lo, dtype=np.int8)
            als.solve_rows(part.indptr, part.indices, part.data, X[lo:hi], x_bias[lo:hi], Y,
                           y_bias, self.dtype(self._mu), self.dtype(reg), self.dtype(reg_bias),
                           self.weighted_regularization, self.biases, self.nonnegative,
                           threads, status)
            if status.any() and self._overflows(Y, rows_csr):
                raise self._overflow_error(side)  # the magnitude, not the regularisation
            raise_for_status(status, lo, side, self.regularization, self.dtype)
        if not (all_finite(X) and all_finite(x_bias)):
            raise self._overflow_error(side)

    def _overflow_error(self, side):
        return ModelFitError(
            f"the {side} factors became non-finite (overflow); the ratings may be too large for "
            f"{np.dtype(self.dtype).name}: scale them, raise regularization or use float64")

    def _overflows(self, Y, rows_csr):
        """Whether sums of n y y^T over a row can overflow the dtype (a failed solve's cause)."""
        largest = float(np.max(np.square(Y, dtype=np.float64).sum(axis=1), initial=0.0))
        most = float(np.diff(rows_csr.indptr).max(initial=1))
        return not largest * most < float(np.finfo(self.dtype).max)
