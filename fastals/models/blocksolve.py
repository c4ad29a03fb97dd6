"""The block-solve machinery of the ALS models (ImplicitALS, ExplicitALS) and fastals.spark.

Imports numpy and fastals' array helpers only; the models and fastals.spark import it.
"""
from __future__ import annotations

import numpy as np

from fastals._arrays import aligned_empty

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
