r"""Alternating least squares for explicit ratings: ridge, ALS-WR, biases, non-negative.

Objective, over the observed ratings r_ui only (r^_ui = mu + b_u + b_i + x_u . y_i, with
mu = b = c = 0 when ``biases=False``):

    L = sum_obs (r_ui - r^_ui)^2
        + sum_u s_u (lambda_U |x_u|^2 + lambda_bU b_u^2) + sum_i s_i (lambda_I |y_i|^2 + lambda_bI b_i^2)

s_u = n_u (the number of ratings of u) with ``weighted_regularization`` (ALS-WR, as Spark
MLlib), else 1; mu is the mean training rating. Each half-iteration fixes one side and,
for every row of the other, solves the ridge system over that row's ratings for its
factor and bias together,

    (Z_u^T Z_u + s_u diag(lambda_U, ..., lambda_bU)) [x_u, b_u] = Z_u^T (r_u - mu - c),
    Z_u rows [y_j, 1],

exactly (Cholesky), or with ``nonnegative=True`` under x_u >= 0 (coordinate-descent NNLS,
warm-started, so L never increases). Kernels: ``fastals/_kernels/_explicit.pxi``
(``solve_rows``); reference: :mod:`fastals.reference.explicit` (``explicit_als_step``).
The row solves are in :mod:`fastals.models.blocksolve` (shared with fastals.spark).

Imports the kernels, fastals' validation and threading helpers and fastals.models (base,
explicit, blocksolve).
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from fastals._kernels.dispatch import kernels
from fastals._threads import resolve_threads, single_threaded_blas
from fastals._typing import DTypeLike, FitCallback, SeedLike, Self, SparseMatrix
from fastals._validation import (
    check_bool,
    check_dtype,
    check_float,
    check_int,
    check_num_threads,
    check_random_state,
)
from fastals.models.base import check_fit_arguments, prepare_validation, run_training
from fastals.models.blocksolve import ExplicitBlockSolver, explicit_initial_factors, row_blocks
from fastals.models.blocksolve import initial_item_factors  # noqa: F401  (its home before)
from fastals.models.explicit import ExplicitFactorizationBase

kernels("_explicit")  # load the kernel build now, not inside the first fit

# Multiply-adds (ratings x unknowns^2) each thread gets per half-iteration at least, about
# 10 ms: a half-iteration is a parallel region, and on a busy machine ending one waits for
# every thread to be scheduled again, which costs more than small ones gain from a second
# thread (rank 10 on MovieLens 100K runs on one thread; the default rank 64 on two).
MIN_WORK_PER_THREAD = 1 << 26


def _pair(name, value):
    """(user, item) values from one non-negative number or a pair of them."""
    if isinstance(value, (numbers.Real, np.generic)) and not isinstance(value, (bool, np.bool_)):
        value = check_float(name, value, minimum=0)
        return value, value
    if isinstance(value, (tuple, list, np.ndarray)) and len(value) == 2:
        return (check_float(f"{name}[0] (users)", value[0], minimum=0),
                check_float(f"{name}[1] (items)", value[1], minimum=0))
    raise TypeError(f"{name} must be a number or a (users, items) pair of numbers, "
                    f"got {value!r}")


class ExplicitALS(ExplicitFactorizationBase):
    r"""Alternating least squares on explicit ratings (stars), with optional biases.

    Parameters
    ----------
    factors : int
        Latent dimension K.
    regularization : float or (float, float)
        lambda_U and lambda_I of the objective (module docstring): one value for both, or a
        (users, items) pair.
    bias_regularization : float, (float, float) or None
        lambda_bU and lambda_bI; None uses `regularization`.
    weighted_regularization : bool
        Scale each row's lambda by its number of ratings (ALS-WR, as Spark MLlib does).
    biases : bool
        Fit a user and an item bias around the global mean, inside the alternation.
    nonnegative : bool
        Constrain the factors to be >= 0 (the biases stay free), as Spark's `nonnegative`.
    iterations : int
        Alternations (users, then items).
    dtype : float32 or float64
        Dtype of the factors and of the arithmetic.
    random_state : int, numpy Generator or None
        Seed of the initial item factors. With an int seed, fit gives identical factors for
        any num_threads (rows are solved independently).
    num_threads : int
        OpenMP threads; 0 uses every core. An upper bound: each thread gets at least
        ``MIN_WORK_PER_THREAD`` (2^26) multiply-adds per half-iteration, so very small
        problems run on fewer threads.
    calculate_training_loss : bool
        Record L / (number of ratings) after each iteration in `loss_history`.

    Notes
    -----
    Ratings are the stored entries of the sparse matrix: a stored 0 is a rating of 0 (pass
    a COO or CSR that keeps it); a (user, item) pair stored twice raises an error. Users and
    items without ratings get zero factors and biases; :meth:`predict` treats them as unknown.

    Examples
    --------
    >>> import fastals, numpy as np, scipy.sparse as sp
    >>> rng = np.random.default_rng(0)
    >>> ratings = sp.random(60, 40, density=0.2, format="csr", random_state=0,
    ...                     data_rvs=lambda n: rng.integers(1, 6, n))
    >>> model = fastals.ExplicitALS(factors=8, iterations=5, random_state=0)
    >>> model = model.fit(ratings, show_progress=False)
    >>> stars = model.predict([0, 1], [3, 4])
    >>> ids, scores = model.recommend(0, ratings[0], N=5)
    """

    loss_history: list[float]

    def __init__(self, factors: int = 64, regularization: float | Sequence[float] = 0.12,
                 bias_regularization: float | Sequence[float] | None = None,
                 weighted_regularization: bool = True, biases: bool = True,
                 nonnegative: bool = False, iterations: int = 15, dtype: DTypeLike = np.float32,
                 random_state: SeedLike = None, num_threads: int = 0,
                 calculate_training_loss: bool = False) -> None:
        self.factors = factors
        self.regularization = regularization
        self.bias_regularization = bias_regularization
        self.weighted_regularization = weighted_regularization
        self.biases = biases
        self.nonnegative = nonnegative
        self.iterations = iterations
        self.dtype = dtype
        self.random_state = random_state
        self.num_threads = num_threads
        self.calculate_training_loss = calculate_training_loss
        self._check_params()
        self.loss_history = []

    def _check_params(self):
        self.factors = check_int("factors", self.factors, minimum=1)
        self._regularization = _pair("regularization", self.regularization)
        self._bias_regularization = self._regularization if self.bias_regularization is None \
            else _pair("bias_regularization", self.bias_regularization)
        self.weighted_regularization = check_bool("weighted_regularization",
                                                  self.weighted_regularization)
        self.biases = check_bool("biases", self.biases)
        self.nonnegative = check_bool("nonnegative", self.nonnegative)
        self.iterations = check_int("iterations", self.iterations, minimum=0)
        self.dtype = check_dtype("dtype", self.dtype)
        self.num_threads = check_num_threads(self.num_threads)
        self.calculate_training_loss = check_bool("calculate_training_loss",
                                                  self.calculate_training_loss)
        check_random_state(self.random_state)

    # --- training ----------------------------------------------------------------------------
    def fit(self, ratings: SparseMatrix, show_progress: bool = True,
            callback: FitCallback | None = None, *,
            validation: tuple[SparseMatrix, SparseMatrix] | None = None,
            metric: str | None = None, early_stopping_rounds: int | None = None,
            validation_split: float | None = None) -> Self:
        """Fit to `ratings` (users x items, any scipy sparse format; stored entries are ratings).

        Starts from fresh random item factors on every call; the input is never modified.
        `callback(iteration, seconds, loss)` is called after each iteration (loss is None
        unless calculate_training_loss). Returns self. The factors are solved in place (no
        second copy): if interrupted (Ctrl-C), the model holds them as far as they got, a
        usable model that is between two iterations.

        Validation (keyword only; see :mod:`fastals.models.validation`):
        ``validation=(train_part, held_out)`` scores the model on `held_out` after each
        iteration with `metric`: "rmse" (the default) or "mae" on the held-out ratings, or
        a ranking metric such as "ndcg@10" (`train_part`'s items filtered out of the
        lists). The score is on the progress bar and in ``history[metric]``.
        ``early_stopping_rounds=N`` stops after N iterations without improvement and keeps
        the best iteration's factors and biases (``best_iteration`` says which).
        ``validation_split=f`` holds out a fraction f of each user's ratings (seeded with
        an int random_state, else 0) and fits on the rest.
        """
        self._check_params()
        check_fit_arguments(show_progress, callback)
        ratings, validation = prepare_validation(self, ratings, validation, metric,
                                                 early_stopping_rounds, validation_split)
        R = self._training_ratings(ratings)
        Rt = R.transpose()
        n_users, n_items = R.shape
        K = self.factors
        rng = check_random_state(self.random_state)
        X, Y = explicit_initial_factors(rng, n_users, self._statistics[1], K, self.nonnegative,
                                        self.dtype)
        x_bias = np.zeros(n_users, dtype=self.dtype)
        y_bias = np.zeros(n_items, dtype=self.dtype)
        self.loss_history = []
        # solved in place (no second copy of the factors: memory stays ~ input + factors)
        self._publish(X, Y, x_bias, y_bias, copy=False)
        user_blocks, item_blocks = row_blocks(R), row_blocks(Rt)
        D = K + self.biases
        threads = min(resolve_threads(self.num_threads),
                      max(1, R.nnz * D * D // MIN_WORK_PER_THREAD))

        def iteration(_):
            solver = ExplicitBlockSolver.for_model(self)
            solver.solve(R, user_blocks, Y, y_bias, X, x_bias, threads, "user")
            solver.solve(Rt, item_blocks, X, x_bias, Y, y_bias, threads, "item")
            self.clear_cache()  # the factors changed in place
            if not self.calculate_training_loss:
                return None
            self.loss_history.append(self._loss(R, threads))
            return self.loss_history[-1]

        with single_threaded_blas():
            run_training("ExplicitALS", self.iterations, iteration, show_progress, callback,
                         validation=validation, model=self)
        validation.restore_best(self)
        return self

    def _loss(self, R, threads):
        """The objective L divided by the number of ratings, from the published state."""
        squared = np.empty(R.shape[0], dtype=np.float64)
        kernels("_explicit").row_errors(R.indptr, R.indices, R.data, self.user_factors,
                                        self.user_bias, self.item_factors, self.item_bias,
                                        self.dtype(self._mu), threads, squared)
        total = squared.sum()
        for which, side in enumerate(("user", "item")):
            counts = getattr(self, f"{side}_counts")
            scale = counts if self.weighted_regularization else np.ones_like(counts)
            factors = getattr(self, f"{side}_factors")
            bias = getattr(self, f"{side}_bias").astype(np.float64)
            total += scale @ (self._regularization[which] * np.square(factors, dtype=np.float64)
                              .sum(axis=1) + self._bias_regularization[which] * bias ** 2)
        return float(total / R.nnz)

    def _fold_in_regularization(self):
        return self._regularization[0], self._bias_regularization[0], \
            self.weighted_regularization

    def get_params(self) -> dict[str, Any]:
        params = super().get_params()
        for name in ("regularization", "bias_regularization"):
            if isinstance(params[name], (tuple, np.ndarray)):
                params[name] = [float(v) for v in params[name]]
        return params
