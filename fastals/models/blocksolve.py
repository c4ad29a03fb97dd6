r"""Block solves: the half-iteration step of ALS shared by the ALS models and fastals.spark.

An ALS half-iteration fixes one side (factors Y) and solves every row of the other side
from that row's stored values alone. :class:`~fastals.ImplicitALS`,
:class:`~fastals.ExplicitALS` and the distributed loop of :mod:`fastals.spark` all do it
through this module, so they run the same kernel calls on the same rows and get the same
bits. It is fastals' internal interface for that step (the names below are what other
rooms may use; nothing else of the models):

``row_blocks(csr)``
    the row ranges [lo, hi) a half-iteration solves one kernel call at a time: about
    ``BLOCK_NNZ`` stored values (at most ``BLOCK_ROWS`` rows) each, so that Ctrl-C is
    noticed between calls (kernels never check for it) and progress is fine-grained.
``gram_matrix(Y)``
    Y^T Y in float64, summed over row blocks in a fixed order (bounded temporary memory).
``balance(X, Y)``
    at regularization 0, the factors with the same products X Y^T that a vanishing
    regularization would give (equal Gram matrices), in place: see its docstring.
``implicit_initial_factors(rng, n_users, n_items, factors, dtype, uniform=False)``,
``explicit_initial_factors(rng, n_users, item_counts, factors, nonnegative, dtype)``
    the (X, Y) a fit starts from: the same draws from `rng`, in the same order, wherever
    the fit runs.
``ImplicitBlockSolver``, ``ExplicitBlockSolver``
    one per model kind (the implicit one also solves iALS's rows: ``"ials++"``), holding the parameters of the solve; ``for_model(model)`` takes
    them from a (validated) model. ``solve_block(csr_block, fixed_factors, ..., out, ...)``
    overwrites `out` with the solutions of the rows of one CSR block (one kernel call) and
    turns the kernel's per-row status into an exception naming row ``first_row + k``;
    ``solve(rows_csr, blocks, ...)`` is a half-iteration: ``solve_block`` over the
    `blocks` of `rows_csr`, then the check that nothing overflowed.
``publish_explicit(model, ...)``
    make solved arrays and the training statistics the fitted state of an explicit model
    (an implicit model's state is its two public factor arrays).

Conventions. The rows of a CSR block are the rows of `out` (a view into the solved side's
factors: it is written in place; conjugate gradient and NNLS warm-start from it). Its
column indices address rows of `fixed_factors`, and the kernels read nothing else of the
fixed side but the Gram matrix (implicit) or the biases (explicit): `fixed_factors` may be
the whole fixed side or, for a block-to-block exchange, a compact array of just the rows
a block needs, with the block's indices renumbered into it (`gram` stays the whole side's
Y^T Y, a sum of ``gram_matrix`` over its blocks). `side` ("user", "item" or "row") and
`first_row` only name rows in error messages.

Imports numpy, fastals' array, validation and kernel helpers and
:mod:`fastals.models.factorization`; never a model module (the models import this one).
"""
from __future__ import annotations

import numpy as np
import scipy.linalg

from fastals._arrays import aligned_zeros
from fastals._kernels.dispatch import kernels
from fastals._kernels.status import raise_for_status
from fastals._threads import single_threaded_blas
from fastals._validation import all_finite
from fastals.exceptions import ModelFitError, NotFittedError
from fastals.models.factorization import normal_rows, scaled_by, solve_hint

# Rows are solved in blocks of about this many stored values (see row_blocks).
BLOCK_NNZ = 1 << 21
BLOCK_ROWS = 1 << 16


def row_blocks(csr):
    """Row ranges holding about BLOCK_NNZ stored values (and at most BLOCK_ROWS rows)."""
    n_rows = csr.shape[0]
    bounds = [0]
    while bounds[-1] < n_rows:
        lo = bounds[-1]
        target = csr.indptr[lo] + BLOCK_NNZ
        hi = int(np.searchsorted(csr.indptr, target, side="right")) - 1
        bounds.append(min(n_rows, max(hi, lo + 1), lo + BLOCK_ROWS))
    return list(zip(bounds[:-1], bounds[1:]))


def gram_matrix(Y, threads=1, fast=False):
    """Y^T Y in float64, on `threads` threads (bit-identical for any number; the _dense
    kernel: chunks of rows, each one syrk, summed in float64 within groups of chunks and
    the groups summed in order).

    The products are taken in float64 (as a float64 sum of the rows' outer products would
    be), or with `fast` in Y's dtype, chunk by chunk of 4,096 rows, and summed in float64:
    half the work for float32 factors, with relative errors of about 1e-7 instead of 1e-16
    (the precision the float32 kernels solve in anyway).
    """
    Y = np.ascontiguousarray(Y)
    if Y.dtype not in (np.float32, np.float64):
        Y = Y.astype(np.float64)
    K = Y.shape[1]
    total = np.zeros((K, K), dtype=np.float64)
    # float32 rows copied to float64 in blocks of about 32 MiB (bounded temporary memory)
    exact = not fast and Y.dtype != np.float64
    step = max(_CHUNK_ROWS, (1 << 22) // max(K, 1)) if exact else Y.shape[0]
    with single_threaded_blas():
        for lo in range(0, max(Y.shape[0], 1), max(step, 1)):
            block = Y[lo:lo + step].astype(np.float64) if exact else Y[lo:lo + step]
            groups = np.zeros((_gram_groups(block.shape[0], K), K, K), dtype=np.float64)
            status = _dense().gram(block, groups, _CHUNK_ROWS, threads)
            raise_for_status(status, "the Gram-matrix kernel")
            total += groups.sum(axis=0)
    upper = np.triu(total)
    return upper + np.triu(upper, 1).T


def _gram_groups(n, K):
    """How many float64 K x K partial sums the Gram kernel keeps for n rows: one per
    chunk of rows, at most _GRAM_GROUPS_MEMORY bytes of them (but 2, so that two threads
    have work), never more than the chunks. Fixed by the shape alone."""
    chunks = -(-n // _CHUNK_ROWS)
    return min(chunks, max(2, _GRAM_GROUPS_MEMORY // (8 * K * K + 1)))


def _dense():
    from fastals._kernels import _dense

    return _dense


# the Gram kernel's row chunks and the memory its partial sums may take; the rotation's
# row chunks
_CHUNK_ROWS = 4096
_GRAM_GROUPS_MEMORY = 32 << 20
_ROTATE_ROWS = 1024


def rotate_rows(M, Q, threads):
    """Overwrite M (n x K, C-contiguous) in place with M Q (Q: K x K in M's dtype), on
    `threads` threads (bit-identical for any number; the _dense kernel). Between two calls
    M is wholly in one basis: the kernel releases no control to Python in between."""
    with single_threaded_blas():
        status = _dense().rotate(M, np.ascontiguousarray(Q, dtype=M.dtype), _ROTATE_ROWS,
                                 threads)
    raise_for_status(status, "the rotation kernel")


def eigenbasis(fixed, solved, regularization, dtype, threads, weight=1.0):
    r"""Rotate `fixed` (Y) and `solved` (X) in place into the eigenbasis of Y^T Y and return
    the diagonal of weight Y^T Y + regularization I there, as a 1 x K array in `dtype`.

    With Y^T Y = Q diag(w) Q^T, Y Q has the Gram matrix diag(w), and the scores
    (X Q)(Y Q)^T = X Y^T do not change: the implicit-ALS objective, its regularization and
    every row's normal equations are the same problem in rotated coordinates, and the CG
    iterates are the rotated iterates (CG commutes with orthogonal changes of basis). What
    changes is the cost: each product with the Gram matrix takes K operations instead of
    K^2, which for large K (a K x K float32 Gram matrix of 1 MiB at K = 512) replaces
    reading it from beyond the L2 cache cg_steps + 1 times per row by two matrix products
    per half-iteration (this one), run at the BLAS's GEMM rate.
    """
    gram = gram_matrix(fixed, threads, fast=True)
    with single_threaded_blas():
        # LAPACK's divide and conquer in the factors' dtype: for float32 factors, which the
        # rotation takes in float32 anyway, 1.7-1.9x faster than in float64 at K = 512-1024
        w, Q = scipy.linalg.eigh(gram.astype(dtype), driver="evd")
    w = w.astype(np.float64)
    Q = Q.astype(dtype, copy=False)
    rotate_rows(fixed, Q, threads)
    rotate_rows(solved, Q, threads)
    return (weight * np.maximum(w, 0) + regularization).astype(dtype)[None, :]


def balance(X, Y):
    r"""Rewrite X and Y in place as X G and Y G^-T with X^T X = Y^T Y; the products X Y^T
    stay the same (up to rounding). Returns False, leaving them as they are, when either is
    numerically rank-deficient (then the rescaling is not defined).

    Without regularization the implicit-ALS objective depends on X Y^T alone, so a fit
    determines the factors only up to an invertible K x K matrix G, and they keep the scale
    of their random start: the item factors stay about as small as it was in every
    direction, while the user factors absorb the scores. Cosines between items, which
    similar_items ranks by, then reflect the start, not the data (e.g. on a checkerboard
    with the diagonal held out, the spare factors that fit the hole weigh as much as the
    two that separate the parities). With any regularization lambda > 0, every stationary
    point has lambda X^T X = lambda Y^T Y; the balanced factors are that limit, the
    smallest ||X||^2 + ||Y||^2 with these products, and unique up to a rotation, which
    leaves cosines unchanged. So cosines become a function of the fitted scores.

    With A = X^T X, B = Y^T Y (float64) and U S V^T the SVD of A^1/2 B^1/2:
    G = A^-1/2 U S^1/2 and G^-T = B^-1/2 V S^1/2, so X' = X G and Y' = Y G^-T have Gram
    matrices S on both sides. Applied in row blocks (bounded temporary memory).
    """
    inverse_roots, roots = [], []
    for factors in (X, Y):
        values, vectors = np.linalg.eigh(gram_matrix(factors))
        if not values.size or values.min() <= values.max() * 1e-10:
            return False
        roots.append((vectors * np.sqrt(values)) @ vectors.T)
        inverse_roots.append((vectors / np.sqrt(values)) @ vectors.T)
    U, S, Vt = np.linalg.svd(roots[0] @ roots[1])
    for factors, G in ((X, inverse_roots[0] @ (U * np.sqrt(S))),
                       (Y, inverse_roots[1] @ (Vt.T * np.sqrt(S)))):
        step = max(64, (1 << 16) // max(factors.shape[1], 1))
        for lo in range(0, factors.shape[0], step):
            factors[lo:lo + step] = factors[lo:lo + step].astype(np.float64) @ G
    return True


# --- initial factors -------------------------------------------------------------------------
def implicit_initial_rows(rng, n, factors, dtype, uniform=False):
    """N(0, 0.01^2) factors drawn directly in `dtype` (no float64 temporary), cache-aligned;
    with `uniform`, the `implicit` library's ``rng.random((n, factors), dtype) * 0.01``,
    uniform on [0, 0.01), the same numbers."""
    return normal_rows(rng, n, factors, dtype, scaled_by(0.01, dtype), uniform=uniform)


def implicit_initial_factors(rng, n_users, n_items, factors, dtype, uniform=False):
    """The (X, Y) ImplicitALS starts from (AlternatingLeastSquares: `uniform`, the start of
    `implicit`'s model for the same seed): X's rows drawn first, then Y's."""
    X = implicit_initial_rows(rng, n_users, factors, dtype, uniform)
    Y = implicit_initial_rows(rng, n_items, factors, dtype, uniform)
    return X, Y


def _explicit_rows(rng, n, factors, nonnegative, dtype):
    """N(0, 1/K) rows (their absolute values if nonnegative), drawn and scaled in float64,
    then rounded to `dtype`; cache-aligned."""
    root = np.sqrt(factors)

    def finish(block):
        block = block / root
        return np.abs(block) if nonnegative else block

    return normal_rows(rng, n, factors, dtype, finish, draw_dtype=np.float64)


def initial_item_factors(rng, item_counts, factors, nonnegative, dtype):
    """N(0, 1/K) item factors (their absolute values if nonnegative); zero for unrated items."""
    Y = _explicit_rows(rng, len(item_counts), factors, nonnegative, dtype)
    Y[np.asarray(item_counts) == 0] = 0
    return Y


def explicit_initial_factors(rng, n_users, item_counts, factors, nonnegative, dtype):
    """The (X, Y) ExplicitALS starts from: Y drawn first (:func:`initial_item_factors`); X
    zero (the exact solve ignores it), or with `nonnegative` (the NNLS solve warm-starts
    from X: start it feasible, non-zero) |N(0, 1/K)| rows drawn next."""
    Y = initial_item_factors(rng, item_counts, factors, nonnegative, dtype)
    if nonnegative:
        X = _explicit_rows(rng, n_users, factors, True, dtype)
    else:
        X = aligned_zeros((n_users, factors), dtype)
    return X, Y


# when a fit's half-iterations solve in the eigenbasis of the fixed side's Gram matrix
# (eigenbasis_applies; measured on MovieLens 100K and the 4M and sparse shapes of
# bench/als.py): CG from this many factors on, when the solved side has at least
# EIGENBASIS_MIN_ROWS_PER_FACTOR rows per factor (below, the eigendecomposition and the
# calls around it cost more than the Gram products they save); the exact solver from
# EIGENBASIS_MIN_FACTORS_EXACT (its rows with fewer stored values than factors then take
# the Woodbury form); both only while the fixed side, rotated too, has at most
# EIGENBASIS_MAX_FIXED_PER_SOLVED times the solved side's rows
EIGENBASIS_MIN_FACTORS = 128
EIGENBASIS_MIN_ROWS_PER_FACTOR = 16
EIGENBASIS_MIN_FACTORS_EXACT = 32
EIGENBASIS_MAX_FIXED_PER_SOLVED = 8


def eigenbasis_applies(method, n_solved, n_fixed, factors):
    """Whether a half-iteration of `method` ("cg", "cholesky") that solves n_solved rows
    against n_fixed fixed ones at `factors` factors runs in the eigenbasis (see above)."""
    if n_fixed > EIGENBASIS_MAX_FIXED_PER_SOLVED * n_solved or factors < 2:
        return False
    if method == "cholesky":
        return factors >= EIGENBASIS_MIN_FACTORS_EXACT
    return (method == "cg" and factors >= EIGENBASIS_MIN_FACTORS
            and n_solved >= EIGENBASIS_MIN_ROWS_PER_FACTOR * factors)


# --- implicit ALS ------------------------------------------------------------------------------
class ImplicitBlockSolver:
    r"""Rows of implicit ALS (:mod:`fastals.models.implicit_als`): for each row u,

        (Y^T Y + Y^T (C^u - I) Y + regularization I) x_u = Y^T C^u p(u),

    with c = confidence_offset + alpha |r|, by `cg_steps` conjugate-gradient steps from the
    current x_u (``method="cg"``), exactly (``"cholesky"``), or by one pass of iALS++ block
    coordinate descent over blocks of `block_size` coordinates from the current x_u
    (``"ials++"``, the ``_ials`` kernels), in `dtype`.

    ``"ials++"`` also solves Rendle et al.'s rows (:class:`fastals.iALS`):
    ``unobserved_weight`` alpha_0 scales the Gram matrix (alpha_0 Y^T Y + regularization I)
    and ``gram_weight`` is the part of an observed pair's weight on (x_u . y_i)^2 that it
    already holds: each stored value adds (c - gram_weight) y_i y_i^T (1 for the model
    above, 0 for Rendle et al.'s, where alpha_0 Y^T Y is a term of its own).
    """

    def __init__(self, regularization, alpha, confidence_offset, method, cg_steps, dtype,
                 block_size=None, unobserved_weight=1.0, gram_weight=1.0):
        self.regularization = regularization
        self.alpha = alpha
        self.confidence_offset = confidence_offset
        self.method = method
        self.cg_steps = cg_steps
        self.dtype = dtype
        self.block_size = block_size
        self.unobserved_weight = unobserved_weight
        self.gram_weight = gram_weight

    @classmethod
    def for_model(cls, model, method=None):
        """The solver of an ImplicitALS's rows (`method` overrides its ``solver``).

        Raises NotFittedError for ``regularization="auto"`` that no fit has resolved (a
        model whose factors were assigned by hand): "auto" is a function of the training
        values, which such a model never saw."""
        if model.regularization_applied is None:
            raise NotFittedError(
                f"{type(model).__name__}: regularization='auto' is resolved by fit() from "
                "the training values, and this model was not fitted; pass a number "
                "(e.g. regularization=0.01, implicit's default) to use assigned factors")
        return cls(model.regularization_applied, model.alpha, model._offset,
                   model.solver if method is None else method, model.cg_steps, model.dtype,
                   getattr(model, "block_size", None))

    def regularized_gram(self, Y, threads=1):
        """unobserved_weight Y^T Y + regularization I (products in Y's dtype, summed in
        float64), in the solver's dtype."""
        return self.regularize(gram_matrix(Y, threads, fast=True))

    def regularize(self, YtY):
        """unobserved_weight Y^T Y + regularization I from Y^T Y (float64; e.g. a sum of
        :func:`gram_matrix` over the blocks of Y), in the solver's dtype."""
        gram = YtY * self.unobserved_weight if self.unobserved_weight != 1 else YtY
        return (gram + self.regularization * np.eye(len(YtY))).astype(self.dtype)

    def half_iteration_gram(self, Y, X, threads):
        """The `gram` for solving every row of X against Y in one half-iteration.

        Where :func:`eigenbasis_applies` (the CG and exact solvers from enough factors and
        rows), X and Y are first rotated in place into the eigenbasis of Y^T Y
        (:func:`eigenbasis`: the scores X Y^T stay the same) and the result is the 1 x K
        diagonal there; otherwise, and for iALS++ (whose block solves take the dense
        matrix), the K x K :meth:`regularized_gram`, where the Gram matrix is small enough
        for the cache and two rotations would cost more than the products they save.
        """
        if eigenbasis_applies(self.method, X.shape[0], Y.shape[0], Y.shape[1]):
            return eigenbasis(Y, X, self.regularization, self.dtype, threads,
                              self.unobserved_weight)
        return self.regularized_gram(Y, threads)

    def solve_block(self, csr_block, fixed_factors, gram, out, threads, side="user",
                    first_row=0, row_shift=None, objective=None):
        """Overwrite `out` with the solutions of the rows of `csr_block` against
        `fixed_factors` (Y), one kernel call on `threads` threads.

        `gram` is :meth:`regularized_gram` of the whole fixed side, or its plain Y^T Y
        when `row_shift` (one value per row of `out`, in the solver's dtype) adds each
        row's own regularization to the diagonal of its system (fastals.spark's weighted
        regularization: lambda n_u; iALS's lambda (n_u + alpha_0 n_items)^nu).
        `objective` (``"ials++"`` only: a float64 array, one value per row of `out`)
        receives each row's part of the loss after its solve (see the ``_ials`` kernels).
        """
        _check_row_shift(row_shift, out)
        status = np.zeros(out.shape[0], dtype=np.int8)
        als = kernels("_als")
        alpha = self.dtype(self.alpha)
        if self.method == "ials++":
            block_size = default_block_size(out.shape[1]) if self.block_size is None \
                else self.block_size
            kernels("_ials").solve_subspace(
                csr_block.indptr, csr_block.indices, csr_block.data, out, fixed_factors, gram,
                alpha, block_size, threads, status, row_shift, self.confidence_offset,
                self.dtype(self.gram_weight), objective)
        elif self.method == "cg":
            als.solve_cg(csr_block.indptr, csr_block.indices, csr_block.data, out,
                         fixed_factors, gram, alpha, self.cg_steps, threads, status, row_shift,
                         self.confidence_offset)
        else:
            als.solve_cholesky(csr_block.indptr, csr_block.indices, csr_block.data, out,
                               fixed_factors, gram, alpha, threads, status, row_shift,
                               self.confidence_offset)
        raise_for_status(status, "the ALS kernel", side, first_row,
                         solve_hint(self.regularization, self.dtype), self.dtype)

    def solve(self, rows_csr, blocks, fixed_factors, gram, out, threads, side="user",
              first_row=0, row_shift=None, objective=None):
        """One half-iteration: :meth:`solve_block` over the `blocks` (row ranges, e.g.
        :func:`row_blocks`) of `rows_csr`, whose rows are those of `out`; then `out` must
        be finite. `first_row` is the position of row 0 of `out` in the whole side."""
        _check_row_shift(row_shift, out)
        for lo, hi in blocks:
            self.solve_block(rows_csr.rows(lo, hi), fixed_factors, gram, out[lo:hi], threads,
                             side, first_row + lo, None if row_shift is None
                             else row_shift[lo:hi],
                             None if objective is None else objective[lo:hi])
        if not all_finite(out):
            raise ModelFitError(
                f"the {side} factors became non-finite (overflow); the values in user_items "
                f"or alpha={self.alpha} may be too large for {np.dtype(self.dtype).name}: "
                "scale the values down, lower alpha, raise regularization or use float64")


def default_block_size(factors):
    """iALS++'s block size when none is given: min(factors, 128)."""
    return min(factors, 128)


def _check_row_shift(row_shift, out):
    """The kernels read row_shift[u] for every row u of `out` unchecked."""
    if row_shift is not None and (row_shift.shape != (out.shape[0],)
                                  or row_shift.dtype != out.dtype):
        raise ValueError(f"row_shift must be a {out.dtype} array of {out.shape[0]} values "
                         f"(one per row), got {row_shift.dtype} {row_shift.shape}")


# --- explicit ALS ------------------------------------------------------------------------------
class ExplicitBlockSolver:
    r"""Rows of explicit ALS (:mod:`fastals.models.explicit_als`): for each row u, the ridge
    solve over its ratings

        (Z_u^T Z_u + s_u diag(lambda, ..., lambda_b)) [x_u, b_u] = Z_u^T (r_u - mu - c),

    Z_u rows [y_j, 1] (no bias column without `biases`), s_u = n_u with `weighted` else 1;
    under x_u >= 0 with `nonnegative` (NNLS warm-started from the current x_u).

    `regularization` and `bias_regularization` are lambda and lambda_b: one number for
    both sides, or a (users, items) pair (``side`` picks one). Errors name
    `reported_regularization` (default: `regularization`), the parameter as the user gave
    it. With `diagnose_overflow`, a failed solve is first checked for factors too large
    for the dtype, which is then the error.
    """

    def __init__(self, regularization, bias_regularization, weighted, biases, nonnegative, mu,
                 dtype, reported_regularization=None, diagnose_overflow=True):
        self.regularization = _per_side(regularization)
        self.bias_regularization = _per_side(bias_regularization)
        self.weighted = weighted
        self.biases = biases
        self.nonnegative = nonnegative
        self.mu = mu
        self.dtype = dtype
        self.reported_regularization = regularization if reported_regularization is None \
            else reported_regularization
        self.diagnose_overflow = diagnose_overflow

    @classmethod
    def for_model(cls, model):
        """The solver of an ExplicitALS's rows, both sides (mu from its global mean)."""
        return cls(model._regularization, model._bias_regularization,
                   model.weighted_regularization, model.biases, model.nonnegative, model._mu,
                   model.dtype, reported_regularization=model.regularization)

    def solve_block(self, csr_block, fixed_factors, fixed_bias, out, out_bias, threads,
                    side="user", first_row=0):
        """Overwrite `out` and `out_bias` with the solutions of the rows of `csr_block`
        against `fixed_factors` and `fixed_bias` (one value per fixed row; unused without
        biases), one kernel call on `threads` threads."""
        status = self._solve_rows(csr_block, fixed_factors, fixed_bias, out, out_bias, threads,
                                  side)
        self._check_status(status, first_row, side, fixed_factors, csr_block)

    def solve(self, rows_csr, blocks, fixed_factors, fixed_bias, out, out_bias, threads,
              side="user", first_row=0):
        """One half-iteration: :meth:`solve_block` over the `blocks` of `rows_csr`, whose
        rows are those of `out` and `out_bias`; then both must be finite."""
        for lo, hi in blocks:
            status = self._solve_rows(rows_csr.rows(lo, hi), fixed_factors, fixed_bias,
                                      out[lo:hi], out_bias[lo:hi], threads, side)
            self._check_status(status, first_row + lo, side, fixed_factors, rows_csr)
        if not (all_finite(out) and all_finite(out_bias)):
            raise self._overflow_error(side)

    def _solve_rows(self, csr_block, fixed_factors, fixed_bias, out, out_bias, threads, side):
        """The kernel call; returns its status per row."""
        which = 0 if side == "user" else 1
        status = np.zeros(out.shape[0], dtype=np.int8)
        kernels("_explicit").solve_rows(
            csr_block.indptr, csr_block.indices, csr_block.data, out, out_bias, fixed_factors,
            fixed_bias, self.dtype(self.mu), self.dtype(self.regularization[which]),
            self.dtype(self.bias_regularization[which]), self.weighted, self.biases,
            self.nonnegative, threads, status)
        return status

    def _check_status(self, status, first_row, side, fixed_factors, rows_csr):
        """raise_for_status, after the overflow diagnosis (over the rows of `rows_csr`)."""
        if self.diagnose_overflow and status.any() and self._overflows(fixed_factors, rows_csr):
            raise self._overflow_error(side)  # the magnitude, not the regularisation
        raise_for_status(status, "the ALS kernel", side, first_row,
                         solve_hint(self.reported_regularization, self.dtype), self.dtype)

    def _overflow_error(self, side):
        return ModelFitError(
            f"the {side} factors became non-finite (overflow); the ratings may be too large for "
            f"{np.dtype(self.dtype).name}: scale them, raise regularization or use float64")

    def _overflows(self, Y, rows_csr):
        """Whether sums of n y y^T over a row can overflow the dtype (a failed solve's cause)."""
        largest = float(np.max(np.square(Y, dtype=np.float64).sum(axis=1), initial=0.0))
        most = float(np.diff(rows_csr.indptr).max(initial=1))
        return not largest * most < float(np.finfo(self.dtype).max)


def _per_side(value):
    """(users, items) from one number or a pair."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def publish_explicit(model, user_factors, item_factors, user_bias, item_bias, statistics,
                     copy=False):
    """Make the given arrays (or copies of them) the fitted state of an explicit model, with
    `statistics` = (user_counts, item_counts, global_mean, rating_range) of its training
    ratings."""
    model.user_counts, model.item_counts, model.global_mean, model.rating_range = statistics
    if copy:
        user_factors, item_factors = user_factors.copy(), item_factors.copy()
        user_bias, item_bias = user_bias.copy(), item_bias.copy()
    model.user_factors, model.item_factors, model.user_bias, model.item_bias = \
        user_factors, item_factors, user_bias, item_bias
