r"""iALS as Rendle et al. parametrise it, solved by iALS++ (or exactly).

Rendle, Krichene, Zhang & Koren, "Revisiting the Performance of iALS on Item Recommendation
Benchmarks" (RecSys 2022), eq. (1), over the stored pairs S with values r_ui:

    L = sum_{(u,i) in S} w_ui (p_ui - x_u . y_i)^2 + alpha_0 sum_{u,i} (x_u . y_i)^2
        + sum_u lambda_u |x_u|^2 + sum_i lambda_i |y_i|^2,

w_ui = 1 + alpha |r_ui| (alpha = 0, the default: the paper's weight 1; alpha > 0 puts Hu,
Koren & Volinsky's confidence on top), p_ui = [r_ui > 0], alpha_0 the ``unobserved_weight``
(every pair is pulled towards 0 with it, through the Gram matrix: never materialised), and
lambda_u = lambda (n_u + alpha_0 n_items)^nu, lambda_i = lambda (n_i + alpha_0 n_users)^nu
(nu the ``regularization_exponent``; nu = 0 is a plain lambda). With Y fixed, row u solves

    (alpha_0 Y^T Y + lambda_u I + sum_{i in S_u} w_ui y_i y_i^T) x_u = sum_i w_ui p_ui y_i,

by one pass of iALS++ block coordinate descent (Rendle et al. 2021, ``solver="ials++"``:
blocks of ``block_size`` coordinates, each solved exactly, the prediction cache kept
exact) or exactly (``solver="cholesky"``: the same kernel with one block of all F).

Why a class of its own rather than options of :class:`~fastals.ImplicitALS`: the two
objectives share the solver but not their parameters' meaning. HKV's alpha_0 would be 1
and apply to unobserved pairs only, its regularization is one lambda, its start is
N(0, 0.01^2), and `implicit`-compatible code relies on its signature; here the defaults
are Rendle et al.'s (unobserved weight 0.1, frequency-scaled lambda, start
N(0, (init_std / sqrt(F))^2)). With alpha_0 = 1, nu = 0 and binary data the objective is
HKV's (c = 2 for observed pairs) with targets 1/2: the fit equals ImplicitALS(alpha=1,
regularization=2 lambda) with both factor matrices scaled by 1/sqrt(2) (the same
rankings); in general, on binary data, ImplicitALS(alpha=1/alpha_0, regularization=
lambda (1 + alpha_0) / alpha_0) scaled by 1/sqrt(1 + alpha_0) (tests/test_ials.py).
ImplicitALS itself takes ``solver="ials++"`` for the HKV objective.

The kernels are in ``fastals/_kernels/_ials.pxi``; the numpy reference is
:mod:`fastals.reference.ials`. Imports numpy, fastals' validation, threading and array
helpers and fastals.models (blocksolve, factorization, implicit_als).
"""
from __future__ import annotations

from typing import Any, NoReturn

import numpy as np

from fastals._threads import resolve_threads, single_threaded_blas
from fastals._typing import DTypeLike, SeedLike, SparseMatrix
from fastals._validation import check_float
from fastals.models.blocksolve import ImplicitBlockSolver, gram_matrix
from fastals.models.factorization import normal_rows, scaled_by
from fastals.models.implicit_als import ImplicitALS

# stored values per chunk when the loss gathers the predictions x_u . y_i
_LOSS_CHUNK = 1 << 14


class iALS(ImplicitALS):  # noqa: N801 (the name of the method in the literature)
    r"""Implicit ALS with Rendle et al.'s weights and regularization, iALS++ solver.

    Minimises L of the module docstring: observed pairs weight w = 1 + alpha |r| against
    target 1, every pair weight alpha_0 against 0, frequency-scaled regularization.

    Parameters
    ----------
    factors : int
        Latent dimension F; iALS gains from large ones (Rendle et al. use 1,024 to 8,192).
    regularization : float
        lambda >= 0.
    unobserved_weight : float
        alpha_0 >= 0, the weight of every pair's pull towards 0.
    regularization_exponent : float
        nu in [0, 1]: lambda_u = lambda (n_u + alpha_0 n_items)^nu (1: the paper's
        frequency-scaled regularization; 0: plain lambda).
    alpha : float
        HKV confidence on top of the observed weight: w = 1 + alpha |r| (0: weight 1).
    iterations : int
        Epochs (users, then items) run by :meth:`fit`.
    solver : {"ials++", "cholesky"}
        Block coordinate descent over blocks of `block_size` coordinates (one pass per
        epoch, warm-started), or the exact solve of every row.
    block_size : int, optional
        1 <= block_size <= factors; default min(factors, 128).
    init_std : float
        The initial factors are N(0, (init_std / sqrt(factors))^2) (Rendle et al.'s
        ``stddev / sqrt(dim)``; their default 0.1).
    dtype, random_state, num_threads, calculate_training_loss
        As for :class:`~fastals.ImplicitALS`; the loss is L divided by the total weight
        sum_S w + alpha_0 n_users n_items.

    Notes
    -----
    A negative stored value is a confident dislike (target 0, weight w), as in ImplicitALS.
    :meth:`explain` is not available (its decomposition is HKV's).

    Examples
    --------
    >>> import fastals, scipy.sparse as sp
    >>> user_items = sp.random(50, 40, density=0.1, format="csr", random_state=0)
    >>> model = fastals.iALS(factors=16, iterations=5, random_state=0)
    >>> model = model.fit(user_items, show_progress=False)
    >>> ids, scores = model.recommend(0, user_items[0], N=5)
    """

    def __init__(self, factors: int = 128, regularization: float = 0.003,
                 unobserved_weight: float = 0.1, regularization_exponent: float = 1.0,
                 alpha: float = 0.0, iterations: int = 16, solver: str = "ials++",
                 block_size: int | None = None, init_std: float = 0.1,
                 dtype: DTypeLike = np.float32, random_state: SeedLike = None,
                 num_threads: int = 0, calculate_training_loss: bool = False) -> None:
        self.factors = factors
        self.regularization = regularization
        self.unobserved_weight = unobserved_weight
        self.regularization_exponent = regularization_exponent
        self.alpha = alpha
        self.iterations = iterations
        self.solver = solver
        self.block_size = block_size
        self.init_std = init_std
        self.dtype = dtype
        self.random_state = random_state
        self.num_threads = num_threads
        self.calculate_training_loss = calculate_training_loss
        # the stored values are taken as given (ImplicitALS' `weighting`, not a parameter
        # here: with the default alpha = 0 only their sign matters)
        self.weighting = "none"
        self.weighting_applied = "none"
        self._check_params()
        self.user_factors = None
        self.item_factors = None
        self.loss_history = []

    _plain_regularization = False  # scaled per row: ImplicitALS' vanishing limit does not apply

    def regularization_limit(self, user_items: SparseMatrix, *,
                             at_least: float | None = None) -> NoReturn:
        """Not defined for iALS: its lambda is scaled per row by
        (n_u + alpha_0 n_items)^nu, so no single number bounds it."""
        raise TypeError("iALS scales its regularization per row ((n_u + alpha_0 n_items)^nu): "
                        "it has no single regularization_limit (that of ImplicitALS' plain "
                        "lambda)")

    def _check_params(self):
        self.unobserved_weight = check_float("unobserved_weight", self.unobserved_weight,
                                             minimum=0)
        self.regularization_exponent = check_float(
            "regularization_exponent", self.regularization_exponent, minimum=0, maximum=1)
        # (zero factors would stay zero)
        self.init_std = check_float("init_std", self.init_std, minimum=0, exclusive=True)
        self._check_shared_params(("ials++", "cholesky"))

    @property
    def _offset(self):
        """w = 1 + alpha |r| for stored values."""
        return self.dtype(1)

    def _start_factors(self, rng, n_users, n_items):
        """N(0, (init_std / sqrt(F))^2) rows, users drawn first, then items."""
        finish = scaled_by(self.init_std / np.sqrt(self.factors), self.dtype)
        return (normal_rows(rng, n_users, self.factors, self.dtype, finish),
                normal_rows(rng, n_items, self.factors, self.dtype, finish))

    def _block_solver(self, exact=False):
        """The rows' solver: alpha_0 Y^T Y in the Gram matrix, w y y^T per stored value
        (gram_weight 0), each row's lambda_u as its diagonal shift."""
        block_size = self.factors if exact or self.solver == "cholesky" else self.block_size
        return ImplicitBlockSolver(0.0, self.alpha, self._offset, "ials++", 1, self.dtype,
                                   block_size, self.unobserved_weight, 0.0)

    def _row_regularization(self, rows_csr, n_other):
        """lambda (n + alpha_0 n_other)^nu per row of `rows_csr`, in the model's dtype."""
        return self._regularization_of(np.diff(rows_csr.indptr), n_other)

    def _regularization_of(self, counts, n_other):
        """lambda (n + alpha_0 n_other)^nu for stored-value counts n, in the model's dtype."""
        counts = np.asarray(counts, dtype=np.float64)
        shift = self.regularization * (counts + self.unobserved_weight * n_other) \
            ** self.regularization_exponent
        return shift.astype(self.dtype)

    def _solve(self, rows_csr, blocks, X, Y, side, threads, gram=None, first_row=0,
               row_shift=None):
        """One half-iteration: every row of X in place against the fixed Y."""
        solver = self._block_solver()
        gram = solver.regularized_gram(Y, threads) if gram is None else gram
        if row_shift is None:
            row_shift = self._row_regularization(rows_csr, Y.shape[0])
        solver.solve(rows_csr, blocks, Y, gram, X, threads, side, first_row, row_shift)

    def _exact_rows(self, rows, Y):
        """Exact solves of the given rows against fixed factors Y (a fold-in)."""
        X = np.zeros((rows.shape[0], self.factors), dtype=self.dtype)
        solver = self._block_solver(exact=True)
        with single_threaded_blas():
            gram = solver.regularized_gram(Y)
        solver.solve_block(rows, Y, gram, X, resolve_threads(self.num_threads), side="row",
                           row_shift=self._row_regularization(rows, Y.shape[0]))
        return X

    def _loss(self, Cui, X, Y, threads):
        """L divided by the total weight sum_S w + alpha_0 n_users n_items."""
        n_users, n_items = Cui.shape
        rows = np.repeat(np.arange(n_users), np.diff(Cui.indptr))
        values = Cui.data.astype(np.float64)
        observed = 0.0
        for lo in range(0, Cui.nnz, _LOSS_CHUNK):
            hi = min(lo + _LOSS_CHUNK, Cui.nnz)
            predicted = np.einsum("ij,ij->i", X[rows[lo:hi]].astype(np.float64),
                                  Y[Cui.indices[lo:hi]].astype(np.float64))
            w = 1 + self.alpha * np.abs(values[lo:hi])
            observed += float((w * ((values[lo:hi] > 0) - predicted) ** 2).sum())
        all_pairs = float((gram_matrix(X) * gram_matrix(Y)).sum())  # sum_ui (x_u . y_i)^2
        item_counts = np.bincount(Cui.indices, minlength=n_items)
        regularization = sum(
            float(self._regularization_of(counts, n_other).astype(np.float64)
                  @ np.square(F, dtype=np.float64).sum(1))
            for counts, F, n_other in ((np.diff(Cui.indptr), X, n_items),
                                       (item_counts, Y, n_users)))
        weight = float((1 + self.alpha * np.abs(values)).sum()) \
            + self.unobserved_weight * n_users * n_items
        return (observed + self.unobserved_weight * all_pairs + regularization) / weight

    def explain(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Not available for iALS: the decomposition of ImplicitALS.explain is HKV's."""
        raise NotImplementedError("iALS.explain is not available (ImplicitALS.explain "
                                  "decomposes Hu, Koren & Volinsky's solve, not this one)")
