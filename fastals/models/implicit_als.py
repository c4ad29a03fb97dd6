r"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008) with a conjugate-gradient or exact solve.

Objective, over every (user, item) cell, with c_ui = 1 + alpha |r_ui| for stored values r_ui
(1 elsewhere) and p_ui = [r_ui > 0], where r_ui is the input value after the ``weighting``
(``log``: log(1 + value); ``"auto"``, the default, picks it for counts, see
:func:`fastals.data.weighting.choose_weighting`):

    L = sum_{u,i} c_ui (p_ui - x_u . y_i)^2 + regularization (sum_u |x_u|^2 + sum_i |y_i|^2)

``regularization="auto"`` (ImplicitALS's default) is lambda = 10 mean(c), ten times the
mean confidence of the stored values (:func:`auto_regularization`): scaling every
confidence by s scales the data term by about s, and lambda with it. On small data it is
capped at a fifth of sigma_1, the largest singular value of the matrix of confidences
c_ui p_ui: from lambda = sigma_1 on, every factor shrinks to zero.

Each half-iteration fixes one side and solves, for every row u of the other,

    (Y^T Y + Y^T (C^u - I) Y + regularization I) x_u = Y^T C^u p(u)

either exactly (``solver="cholesky"``), by ``cg_steps`` conjugate-gradient steps
warm-started from the current x_u (``solver="cg"``, Takacs et al. 2011), or by one pass of
iALS++ block coordinate descent over blocks of ``block_size`` coordinates, warm-started too
(``solver="ials++"``, Rendle et al. 2021). The kernels are in ``fastals/_kernels/_als.pxi``
and ``_ials.pxi``; the numpy references that define the same arithmetic are
:mod:`fastals.reference.implicit_als` and :mod:`fastals.reference.ials`.

The row solves themselves are in :mod:`fastals.models.blocksolve` (shared with
fastals.spark). Imports the kernels, fastals' validation, array and threading helpers,
fastals.data.weighting (the weighting of the values) and fastals.models (base,
factorization, blocksolve).
"""
from __future__ import annotations

import logging
import warnings

import numpy as np

from fastals._arrays import aligned, aligned_zeros
from fastals._kernels.dispatch import kernels
from fastals._kernels.status import raise_for_status
from fastals._threads import resolve_threads, single_threaded_blas
from fastals._typing import DTypeLike, FitCallback, Indices, SeedLike, Self, SparseMatrix
from fastals._validation import (
    CSR,
    as_csr,
    check_bool,
    check_choice,
    check_dtype,
    check_float,
    check_ids,
    check_int,
    check_num_threads,
    check_random_state,
)
from fastals.data.weighting import (
    check_weighting,
    choose_weighting_for_values,
    resolve_weighting,
    weighted_values,
)
from fastals.exceptions import ModelFitError
from fastals.models.base import check_fit_arguments, prepare_validation, run_training
from fastals.models.blocksolve import (
    ImplicitBlockSolver,
    balance,
    gram_matrix,
    implicit_initial_factors,
    row_blocks,
)
# the per-side draw, under the name it had here before blocksolve.py held it
from fastals.models.blocksolve import implicit_initial_rows as _initial_factors  # noqa: F401
from fastals.models.factorization import (
    MatrixFactorizationBase,
    check_counts,
    interaction_counts,
)

kernels("_als")  # load the kernel build now, not inside the first fit
log = logging.getLogger("fastals")

#: ``regularization="auto"`` is this many times the mean confidence of the stored values.
#: Measured (bench/RESULTS.md, bench/defaults.py) with factors=100, alpha=1: the best
#: multiple was 8-12 on MovieLens 100K (binary and ratings) and a Last.fm-like set, 12-16 on
#: synthetic counts; beyond about 20-30 every data set collapsed towards popularity. 10 was
#: then checked on data sets not used to choose it.
REGULARIZATION_PER_CONFIDENCE = 10.0

#: ``regularization="auto"`` is at most sigma_1 / this, sigma_1 the largest singular value of
#: the matrix of confidences c_ui p_ui. Near zero the objective is about
#: -2 tr(X^T (C o P) Y) + lambda (|X|^2 + |Y|^2), so from lambda = sigma_1 on X = Y = 0 is its
#: minimum and every factor (and every score) shrinks to zero. sigma_1 / lambda was 5.5-18
#: with the multiple above on the training parts of the fifteen data sets of
#: bench/defaults.py (never capped); on 30-100 MovieLens users (sigma_1 / lambda 2-5) the
#: best lambda was sigma_1 / 6 to / 10, and the cap raised nDCG@10 by 2-27% there.
SINGULAR_VALUE_PER_REGULARIZATION = 5.0


class ImplicitALS(MatrixFactorizationBase):
    r"""Alternating least squares for implicit feedback (clicks, plays, purchases).

    Parameters
    ----------
    factors : int
        Latent dimension K.
    regularization : float or "auto"
        lambda >= 0 in the objective (module docstring). The default ``"auto"`` resolves at
        fit time to :data:`REGULARIZATION_PER_CONFIDENCE` (10) times the mean confidence
        c = 1 + alpha |r| of the stored values after the weighting
        (:func:`auto_regularization`: 20 on binary data with alpha = 1, about 45 on
        MovieLens ratings; on data so small that this would shrink the factors towards
        zero, at most a fifth of the largest singular value of the confidences c_ui p_ui),
        says so in the fit log (logger ``"fastals"``, info) and records
        it in :attr:`regularization_applied` (saved and loaded with the model). `implicit`'s
        0.01 (:class:`AlternatingLeastSquares`' default) over-fits small data sets: measured
        in bench/RESULTS.md. With 0, users or items without
        enough interactions make the system singular: raise it if fit says so. With 0 the
        objective fixes only the products X Y^T, so fit ends by balancing the factors
        (X^T X = Y^T Y, the same scores), as a vanishing lambda would leave them: cosines
        (similar_items, similar_users) then depend on the fitted scores, not on the
        random start.
    alpha : float
        Confidence scale: c = 1 + alpha |r|.
    iterations : int
        Alternations (users, then items) run by :meth:`fit`.
    cg_steps : int
        Conjugate-gradient steps per row and half-iteration (``solver="cg"``).
    solver : {"cg", "cholesky", "ials++"}
        Approximate CG solve (fast; the default), the exact solve, or iALS++'s subspace
        solve: each row's coordinates in blocks of `block_size`, each block solved exactly
        with the others fixed (cost per row about nnz_u F block_size + F^2 instead of
        nnz_u F^2 + F^3: the choice for large `factors`).
    dtype : float32 or float64
        Dtype of the factors and of the arithmetic.
    random_state : int, numpy Generator or None
        Seed of the initial factors. With an int seed, fit gives bit-identical factors for
        any num_threads (on one machine and build).
    num_threads : int
        OpenMP threads for the kernels; 0 uses every core.
    calculate_training_loss : bool
        Compute the loss after each iteration (shown on the progress bar, passed to the
        callback). Costs about one extra CG step.
    confidence : {"1+alpha", "alpha"}
        How a stored value r becomes a confidence: c = 1 + alpha |r| (Hu, Koren & Volinsky;
        the default) or c = alpha |r|, as the `implicit` library weighs its input (the
        default of :class:`AlternatingLeastSquares`). Cells with nothing stored have c = 1
        either way.
    weighting : {"auto", "none", "log"}
        What the stored values go through before they become confidences: ``"log"``
        replaces r by log(1 + r) (:func:`fastals.data.log_weight`: damps play counts in the
        hundreds of thousands, which would otherwise dominate), ``"none"`` keeps them. The
        default ``"auto"`` picks ``"log"`` for counts (non-negative, heavy-tailed:
        max / median >= 20) and ``"none"`` for binary data and ratings (measured:
        bench/RESULTS.md), and says what it chose and why in the
        fit log (logger ``"fastals"``, info); :attr:`weighting_applied` records the choice.
        Rows given to a fold-in (``recalculate_user``, ``partial_fit_users``, ``explain``)
        get the same weighting.
    block_size : int, optional
        Coordinates per block of ``solver="ials++"`` (1 <= block_size <= factors; default
        min(factors, 128)); block_size = factors is the exact solve.
    use_cg, use_native, use_gpu : bool, optional
        `implicit`'s switches, accepted so that its code runs unchanged: ``use_cg`` picks the
        solver (True: "cg", False: "cholesky"); ``use_native`` changes nothing (the compiled
        kernels always run); ``use_gpu=True`` is an error, as fastals runs on CPUs. They are
        not stored: ``solver`` records the choice.

    Notes
    -----
    Values are interaction strengths. A negative value is read as a confident *dislike*
    (p = 0, c = 1 + alpha |r|), as in `implicit`; stored zeros carry no information and are
    ignored, like missing entries. Duplicate entries of a COO input are summed.

    Examples
    --------
    >>> import fastals, scipy.sparse as sp
    >>> user_items = sp.random(50, 40, density=0.1, format="csr", random_state=0)
    >>> model = fastals.ImplicitALS(factors=8, iterations=5, random_state=0)
    >>> model = model.fit(user_items, show_progress=False)
    >>> ids, scores = model.recommend(0, user_items[0], N=5)
    """

    loss_history: list[float]
    #: the weighting the last fit used ("auto" resolved; "none" for files saved before)
    weighting_applied: str
    #: the lambda the last fit used (``regularization="auto"`` resolved; before a fit, the
    #: regularization if it is a number, else None)
    regularization_applied: float | None
    #: interactions per user / item, kept since they decide who has a similarity (files
    #: saved before have none: see MatrixFactorizationBase)
    _optional_state_names = ("user_counts", "item_counts")
    #: initial factors uniform on [0, 0.01) (`implicit`'s) rather than N(0, 0.01^2)
    _uniform_start = False

    def __init__(self, factors: int = 100, regularization: float | str = "auto",
                 alpha: float = 1.0, iterations: int = 15, cg_steps: int = 3,
                 solver: str = "cg", dtype: DTypeLike = np.float32,
                 random_state: SeedLike = None, num_threads: int = 0,
                 calculate_training_loss: bool = False, confidence: str = "1+alpha",
                 weighting: str = "auto",
                 block_size: int | None = None, *,
                 use_cg: bool | None = None, use_native: bool | None = None,
                 use_gpu: bool | None = None) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.cg_steps = cg_steps
        self.solver = solver
        self.dtype = dtype
        self.random_state = random_state
        self.num_threads = num_threads
        self.calculate_training_loss = calculate_training_loss
        self.confidence = confidence
        self.weighting = weighting
        self.weighting_applied = "none"
        self.regularization_applied = None
        self.block_size = block_size
        self._check_params()
        self.solver = implicit_switches(self.solver, use_cg, use_native, use_gpu)
        self.user_factors = None
        self.item_factors = None
        self.loss_history = []

    def _check_params(self):
        self.cg_steps = check_int("cg_steps", self.cg_steps, minimum=1)
        self._check_shared_params(("cg", "cholesky", "ials++"), auto_regularization=True)
        self.confidence = check_choice("confidence", self.confidence, ("1+alpha", "alpha"))
        if self.confidence == "alpha" and self.alpha == 0:
            raise ValueError("alpha must be > 0 with confidence='alpha': c = alpha |r| would "
                             "give every stored value zero confidence")
        self.weighting = check_weighting("weighting", self.weighting)

    def _check_shared_params(self, solvers, auto_regularization=False):
        """The parameters ImplicitALS and iALS share (`solvers`: the allowed ``solver``;
        `auto_regularization`: whether ``regularization="auto"`` is allowed)."""
        self.factors = check_int("factors", self.factors, minimum=1)
        self.regularization = check_regularization(self.regularization, auto_regularization)
        if self.regularization != "auto":
            self.regularization_applied = self.regularization
        self.alpha = check_float("alpha", self.alpha, minimum=0)
        self.iterations = check_int("iterations", self.iterations, minimum=0)
        self.solver = check_choice("solver", self.solver, solvers)
        self.block_size = check_block_size(self.block_size, self.factors)
        self.dtype = check_dtype("dtype", self.dtype)
        self.num_threads = check_num_threads(self.num_threads)
        self.calculate_training_loss = check_bool("calculate_training_loss",
                                                  self.calculate_training_loss)
        check_random_state(self.random_state)

    @property
    def _offset(self):
        """c = offset + alpha |r| for stored values."""
        return self.dtype(1 if self.confidence == "1+alpha" else 0)

    # --- training ----------------------------------------------------------------------------
    def fit(self, user_items: SparseMatrix, show_progress: bool = True,
            callback: FitCallback | None = None, *,
            validation: tuple[SparseMatrix, SparseMatrix] | None = None,
            metric: str | None = None, early_stopping_rounds: int | None = None,
            validation_split: float | None = None) -> Self:
        """Fit the factors to `user_items` (users x items, any scipy sparse format).

        Starts from fresh random factors (seeded by `random_state`) on every call; the
        input is never modified. `callback(iteration, seconds, loss)` is called after each
        iteration (loss is None unless calculate_training_loss). Returns self.

        Factors are updated in place, block by block of rows, so memory stays close to
        input + factors. After each iteration (and when the callback raises) the model
        holds exactly that iteration's factors. A Ctrl-C is noticed between blocks (within
        about a second) and propagates; rows then hold their most recent solve, a
        consistent model at least as good as the last completed iteration.

        Validation (keyword only; see :mod:`fastals.models.validation`):
        ``validation=(train_part, held_out)`` scores the model on `held_out` after each
        iteration with `metric` (default "ndcg@10"; any of precision, precision_standard,
        hit_rate, recall, map, ndcg, auc, mrr with ``@K``), `train_part`'s items filtered
        out of the lists. The score is on the progress bar and in ``history[metric]``.
        ``early_stopping_rounds=N`` stops after N iterations without improvement and keeps
        the best iteration's factors (``best_iteration`` says which).
        ``validation_split=f`` holds out a fraction f of each user's interactions (seeded
        with an int random_state, else 0) and fits on the rest.
        """
        self._check_params()
        check_fit_arguments(show_progress, callback)
        user_items, validation = prepare_validation(self, user_items, validation, metric,
                                                    early_stopping_rounds, validation_split)
        Cui = self._weigh_training(as_csr(user_items, "user_items", self.dtype,
                                          allow_empty=False))
        self._resolve_regularization(Cui)
        Ciu = Cui.transpose()
        rng = check_random_state(self.random_state)
        n_users, n_items = Cui.shape
        X, Y = self._start_factors(rng, n_users, n_items)
        self.loss_history = []
        self.clear_cache()
        # solved in place (no second copy of the factors: memory stays ~ input + factors)
        self.user_factors, self.item_factors = X, Y
        self.user_counts, self.item_counts = interaction_counts(Cui), interaction_counts(Ciu)
        user_blocks, item_blocks = row_blocks(Cui), row_blocks(Ciu)
        threads = resolve_threads(self.num_threads)

        def iteration(_):
            self._solve(Cui, user_blocks, X, Y, "user", threads)
            self._solve(Ciu, item_blocks, Y, X, "item", threads)
            if not self.calculate_training_loss:
                return None
            self.loss_history.append(self._loss(Cui, X, Y, threads))
            return self.loss_history[-1]

        with single_threaded_blas():
            run_training("ImplicitALS", self.iterations, iteration, show_progress, callback,
                         validation=validation, model=self)
            validation.restore_best(self)
            if self.regularization_applied == 0 and self.iterations:
                self._balance(self.user_factors, self.item_factors)
        return self

    def _weigh_training(self, Cui):
        """The validated training CSR after the weighting (``"auto"`` resolved and logged),
        recorded in :attr:`weighting_applied`; new values unless the weighting is "none"."""
        self.weighting_applied = resolve_weighting(Cui.data, self.weighting,
                                                   type(self).__name__)
        return self._weigh_rows(Cui)

    def regularization_for(self, user_items: SparseMatrix) -> float:
        """The lambda a fit on `user_items` (all of it: no ``validation_split``) would use:
        :attr:`regularization` when it is a number, else what ``"auto"`` resolves to after
        this model's weighting (the same validation and arithmetic as :meth:`fit`; nothing
        is fitted or changed)."""
        self._check_params()
        weighted = self._weighted_copy(user_items)  # validated either way
        if self.regularization != "auto":
            return float(self.regularization)
        return auto_regularization(weighted, self.alpha, self._offset)[0]

    #: lambda is one number for every row (iALS scales it per row: no single limit)
    _plain_regularization = True

    def regularization_limit(self, user_items: SparseMatrix, *,
                             at_least: float | None = None) -> float:
        """sigma_1, the largest singular value of the confidences c p of `user_items` after
        this model's weighting: from ``regularization = sigma_1`` on, X = Y = 0 minimises
        the objective and a fit shrinks every factor (and score) towards zero (fit warns).
        With `at_least`, the power iteration stops as soon as sigma_1 is known to be at
        least that (the value returned is then a lower bound >= `at_least`)."""
        self._check_params()
        stop = np.inf if at_least is None else check_float("at_least", at_least, minimum=0)
        return _largest_confidence_singular_value(self._weighted_copy(user_items), self.alpha,
                                                  self._offset, stop_above=stop)

    def _weighted_copy(self, user_items):
        """`user_items` validated and weighted as fit would ("auto" resolved silently)."""
        rows = as_csr(user_items, "user_items", self.dtype, allow_empty=False)
        weighting = (self.weighting if self.weighting != "auto"
                     else choose_weighting_for_values(rows.data).weighting)
        values = weighted_values(rows.data.astype(np.float64), weighting).astype(self.dtype)
        return CSR(rows.indptr, rows.indices, values, rows.shape)

    def _resolve_regularization(self, Cui):
        """:attr:`regularization_applied` for the fit on the (weighted) training CSR `Cui`:
        the regularization, or for "auto" :func:`auto_regularization`'s, logged."""
        if self.regularization != "auto":
            self.regularization_applied = self.regularization
            if self.regularization > 0 and self._plain_regularization:
                _warn_if_every_factor_vanishes(Cui, self.regularization, self.alpha,
                                               self._offset, type(self).__name__)
            return
        self.regularization_applied, reason = auto_regularization(Cui, self.alpha,
                                                                  self._offset)
        log.info("%s: %s (pass a number to set it)", type(self).__name__, reason)

    def _weigh_rows(self, rows):
        """Rows (a validated CSR of the model's dtype) with the weighting of the fit
        (element-wise, computed in float64: new values, the same structure)."""
        if self.weighting_applied == "none":
            return rows
        values = weighted_values(rows.data.astype(np.float64), self.weighting_applied)
        return CSR(rows.indptr, rows.indices, values.astype(self.dtype), rows.shape)

    def _extra_state(self):
        return {**super()._extra_state(), "weighting_applied": self.weighting_applied,
                "regularization_applied": self.regularization_applied}

    def _start_factors(self, rng, n_users, n_items):
        """The (X, Y) fit starts from (blocksolve.implicit_initial_factors)."""
        return implicit_initial_factors(rng, n_users, n_items, self.factors, self.dtype,
                                        self._uniform_start)

    def _balance(self, X, Y):
        """Without regularization the fit fixes X Y^T only, and the factors keep the scale
        of their random start: balance them (blocksolve.balance) so that similar_items and
        similar_users rank by cosines of the fitted scores, as a vanishing regularization
        would. Scores change only by rounding; the loss is unchanged."""
        if balance(X, Y):
            self.clear_cache()
        else:
            log.debug("ImplicitALS: the factors are rank-deficient, left unbalanced")

    def _solve(self, rows_csr, blocks, X, Y, side, threads, gram=None, first_row=0,
               row_shift=None):
        """One half-iteration: every row of X solved in place against the fixed Y, block by
        block (:meth:`ImplicitBlockSolver.solve` with this model's parameters).

        `gram` is Y^T Y + regularization I when the caller already has it; without it,
        where blocksolve.eigenbasis_applies, X and Y are first rotated into
        the eigenbasis of Y^T Y (the scores stay the same; each product with the Gram
        matrix then costs K instead of K^2). `first_row` is the position of X's row 0 in
        the whole side (for error messages); `row_shift` is added to the diagonal of each
        row's system.
        """
        solver = ImplicitBlockSolver.for_model(self)
        gram = solver.half_iteration_gram(Y, X, threads) if gram is None else gram
        solver.solve(rows_csr, blocks, Y, gram, X, threads, side, first_row, row_shift)

    def _loss(self, Cui, X, Y, threads):
        """The objective L divided by the total confidence sum_{u,i} c_ui."""
        out = np.empty(Cui.shape[0], dtype=np.float64)
        YtY = gram_matrix(Y, threads).astype(self.dtype)
        status = kernels("_als").row_losses(Cui.indptr, Cui.indices, Cui.data, X, Y, YtY,
                                            self.dtype(self.alpha), threads, out, self._offset)
        raise_for_status(status, "the ALS loss kernel")
        total = out.sum() + self.regularization_applied * (
            np.square(X, dtype=np.float64).sum() + np.square(Y, dtype=np.float64).sum())
        weight = (Cui.shape[0] * Cui.shape[1] + (float(self._offset) - 1) * Cui.nnz
                  + self.alpha * np.abs(Cui.data, dtype=np.float64).sum())
        return float(total / weight)

    # --- fold-in ------------------------------------------------------------------------------
    def _exact_rows(self, rows, Y):
        """Exact solves of the given rows against fixed factors Y (a fold-in)."""
        X = np.zeros((rows.shape[0], self.factors), dtype=self.dtype)
        rows = self._weigh_rows(rows)
        solver = ImplicitBlockSolver.for_model(self, method="cholesky")
        with single_threaded_blas():
            gram = solver.regularized_gram(Y)
        solver.solve_block(rows, Y, gram, X, resolve_threads(self.num_threads), side="row")
        return X

    def _recalculate_users(self, rows):
        return self._exact_rows(rows, self.item_factors)

    def recalculate_user(self, userid: Indices, user_items: SparseMatrix) -> np.ndarray:
        """Factors of users computed from their interactions against the item factors.

        `user_items` has one row per requested user (or is the full users x items matrix).
        Returns a 1-D array for one user, else 2-D. The model is not changed.
        """
        self._check_fitted()
        ids, scalar = check_ids("userid", userid, np.iinfo(np.int64).max)
        rows = self._rows_for(ids, user_items, "user_items", self.n_users, self.n_items)
        X = self._recalculate_users(rows)
        return X[0] if scalar else X

    def recalculate_item(self, itemid: Indices, item_users: SparseMatrix) -> np.ndarray:
        """Factors of items computed from their interactions (items x users) with the users."""
        self._check_fitted()
        ids, scalar = check_ids("itemid", itemid, np.iinfo(np.int64).max)
        rows = self._rows_for(ids, item_users, "item_users", self.n_items, self.n_users)
        Y = self._exact_rows(rows, self.user_factors)
        return Y[0] if scalar else Y

    def explain(self, userid: int, user_items: SparseMatrix, itemid: int,
                user_weights: tuple[np.ndarray, bool] | None = None, N: int = 10
                ) -> tuple[float, list[tuple[int, float]], tuple[np.ndarray, bool]]:
        """Why the user scores the item as it does, as in `implicit` (Hu, Koren & Volinsky,
        section 5).

        With the user's factor solved exactly from `user_items`,
        x_u = W_u Y^T C_u p(u) and W_u = (Y^T C_u Y + lambda I)^-1, the score x_u . y_i is a
        sum over the user's positively rated items j of c_uj (y_i^T W_u y_j): how much each
        of them pulls the item up (or down, when negative).

        Parameters
        ----------
        userid : int
            The user (a row of `user_items` when that is the full matrix).
        user_items : sparse matrix
            The user's interactions: one row, or the full users x items matrix.
        itemid : int
            The item to explain.
        user_weights : tuple, optional
            The ``user_weights`` returned by an earlier call for the same user and
            interactions; passing it back skips the factorisation.
        N : int
            How many of the largest contributions to list.

        Returns
        -------
        total_score : float
            The sum of all contributions: the score that ``recommend(...,
            recalculate_user=True)`` gives (float64 here, so it may differ from a float32
            model's by rounding).
        top_contributions : list of (item, contribution)
            The N largest contributions, largest first.
        user_weights : tuple
            ``scipy.linalg.cho_factor`` of W_u^-1, for further calls.
        """
        import scipy.linalg

        self._check_fitted()
        N = check_int("N", N, minimum=1)
        ids, scalar = check_ids("userid", userid, np.iinfo(np.int64).max)
        if not scalar:
            raise ValueError("explain takes one userid, not an array")
        item, scalar = check_ids("itemid", itemid, self.n_items)
        if not scalar:
            raise ValueError("explain takes one itemid, not an array")
        row = self._weigh_rows(self._rows_for(ids, user_items, "user_items", self.n_users,
                                              self.n_items))
        items, values = row.indices, row.data.astype(np.float64)
        Y_u = self.item_factors[items].astype(np.float64)  # the user's rows only
        if user_weights is None:
            c_minus_1 = float(self._offset) - 1 + self.alpha * np.abs(values)
            with single_threaded_blas():  # Y^T Y + Y_u^T (C_u - I) Y_u + lambda I
                A = gram_matrix(self.item_factors) + (Y_u * c_minus_1[:, None]).T @ Y_u \
                    + self.regularization_applied * np.eye(self.factors)
            try:
                user_weights = scipy.linalg.cho_factor(A)
            except (np.linalg.LinAlgError, ValueError):
                raise ModelFitError(
                    f"user {int(ids[0])}'s system is not positive definite (regularization="
                    f"{self.regularization_applied}): raise regularization") from None
        else:
            user_weights = _check_user_weights(user_weights, self.factors)
        weighted_item = scipy.linalg.cho_solve(
            user_weights, self.item_factors[int(item[0])].astype(np.float64))
        liked = values > 0
        contributions = (float(self._offset) + self.alpha * values[liked]) \
            * (Y_u[liked] @ weighted_item)
        top = np.argsort(-contributions, kind="stable")[:N]
        liked_items = items[liked]
        return (float(contributions.sum()),
                [(int(liked_items[k]), float(contributions[k])) for k in top], user_weights)

    def partial_fit_users(self, userids: Indices, user_items: SparseMatrix) -> Self:
        """Fold in (or refresh) users from their interactions; new ids grow the model.

        Row k of `user_items` (rows x n_items) holds the interactions of `userids[k]`. Each
        user's factor is solved exactly against the current item factors; ids beyond the
        current number of users add rows (users in between get zero factors).
        """
        self.user_factors, self.user_counts = self._partial_fit(
            userids, user_items, "userids", "user_items", self.user_factors, self.item_factors,
            self.user_counts)
        return self

    def partial_fit_items(self, itemids: Indices, item_users: SparseMatrix) -> Self:
        """Fold in (or refresh) items from their interactions (items x n_users)."""
        self.item_factors, self.item_counts = self._partial_fit(
            itemids, item_users, "itemids", "item_users", self.item_factors, self.user_factors,
            self.item_counts)
        return self

    def _partial_fit(self, ids, matrix, ids_name, matrix_name, own, other, counts):
        """(the side's new factors, its new interaction counts: those of the folded rows
        are their stored values, rows added in between have none; None stays None)."""
        self._check_fitted()
        ids, _ = check_ids(ids_name, ids, np.iinfo(np.int32).max, allow_scalar=True)
        if len(np.unique(ids)) != len(ids):
            raise ValueError(f"{ids_name} contains duplicate ids")
        rows = as_csr(matrix, matrix_name, self.dtype, shape=(len(ids), other.shape[0]))
        solved = self._exact_rows(rows, other)
        n = max(own.shape[0], int(ids.max()) + 1 if ids.size else 0)
        if n > own.shape[0]:
            grown = aligned_zeros((n, own.shape[1]), own.dtype)
            grown[:own.shape[0]] = own
        else:
            grown = aligned(own, copy=True)
        grown[ids] = solved
        if counts is not None:
            counts = np.concatenate([counts, np.zeros(n - len(counts), dtype=np.int64)])
            counts[ids] = interaction_counts(rows)
        return grown, counts

    def _restore(self, arrays, extra):
        super()._restore(arrays, extra)
        self.weighting_applied = check_choice("weighting_applied",
                                              extra.get("weighting_applied", "none"),
                                              ("none", "log"))
        applied = extra.get("regularization_applied", self.regularization)
        self.regularization_applied = check_float("regularization_applied", applied, minimum=0)
        for name in self._state_names:
            value = getattr(self, name)
            if value.ndim != 2 or value.shape[1] != self.factors or not np.isfinite(value).all():
                raise ValueError(f"{name} must be a finite (n, {self.factors}) array")
            setattr(self, name, aligned(value, self.dtype))
        self.user_counts = check_counts("user_counts", self.user_counts, self.n_users)
        self.item_counts = check_counts("item_counts", self.item_counts, self.n_items)


class AlternatingLeastSquares(ImplicitALS):
    """:class:`ImplicitALS` under the `implicit` library's name and with its weighting.

    The same model, parameters and methods, except that the default ``confidence="alpha"``
    weighs a stored value r as c = alpha |r|, as `implicit` does (ImplicitALS's default is
    Hu, Koren & Volinsky's c = 1 + alpha |r|), and that fit starts where `implicit`'s does:
    ``rng.random((n, factors), dtype) * 0.01`` for the users, then the items (ImplicitALS:
    N(0, 0.01^2)), so the same `random_state` gives the same initial factors, and a fitted
    model equal to `implicit`'s up to float rounding. Code written for
    ``implicit.als.AlternatingLeastSquares``, hyper-parameters tuned for it included, runs
    unchanged; ``use_cg``, ``use_native`` and ``use_gpu`` are accepted as ImplicitALS
    describes.

    Its ``weighting`` defaults to ``"none"``, not ImplicitALS's ``"auto"``: `implicit` trains
    on the values as given, so the same call on the same data gives `implicit`'s model
    (play counts included: `implicit` users weigh them first, e.g. with ``bm25_weight``).
    Pass ``weighting="auto"`` or ``"log"`` to have the counts damped here.
    """

    _uniform_start = True

    def __init__(self, factors: int = 100, regularization: float = 0.01, alpha: float = 1.0,
                 iterations: int = 15, cg_steps: int = 3, solver: str = "cg",
                 dtype: DTypeLike = np.float32, random_state: SeedLike = None,
                 num_threads: int = 0, calculate_training_loss: bool = False,
                 confidence: str = "alpha", weighting: str = "none",
                 block_size: int | None = None, *,
                 use_cg: bool | None = None, use_native: bool | None = None,
                 use_gpu: bool | None = None) -> None:
        super().__init__(factors, regularization, alpha, iterations, cg_steps, solver, dtype,
                         random_state, num_threads, calculate_training_loss, confidence,
                         weighting, block_size, use_cg=use_cg, use_native=use_native,
                         use_gpu=use_gpu)


def _check_user_weights(user_weights, factors):
    """explain's user_weights: the (matrix, lower) pair of scipy.linalg.cho_factor."""
    try:
        matrix, lower = user_weights
    except (TypeError, ValueError):
        raise TypeError("user_weights must be the user_weights an earlier explain() returned "
                        f"(scipy.linalg.cho_factor's (matrix, lower)), got {user_weights!r:.80}"
                        ) from None
    matrix = np.asarray(matrix)
    if matrix.shape != (factors, factors) or matrix.dtype.kind != "f" \
            or not np.isfinite(matrix).all():
        raise ValueError(f"user_weights must hold a finite {factors} x {factors} float "
                         f"Cholesky factor, got shape {matrix.shape} and dtype {matrix.dtype}")
    return matrix, bool(lower)


def check_regularization(value, allow_auto=True):
    """lambda: a number >= 0, or (`allow_auto`) the string "auto"."""
    if allow_auto and isinstance(value, str):
        if value != "auto":
            raise TypeError(f"regularization must be a number >= 0 or 'auto', got {value!r} "
                            "(str)")
        return value
    return check_float("regularization", value, minimum=0)


def auto_regularization(matrix, alpha, offset):
    """``regularization="auto"``: (lambda, the reason, one line for the fit log) for the
    training `matrix` (a CSR: shape, indptr, indices, data) after the weighting.

    lambda = :data:`REGULARIZATION_PER_CONFIDENCE` x mean(c), the mean confidence
    c = offset + alpha |r| of the stored values. Multiplying every confidence by s
    multiplies the data term of the objective by about s, so lambda follows it: the same
    amount of shrinkage for ratings, binary data or damped counts, and for any alpha.
    It is capped at sigma_1 / :data:`SINGULAR_VALUE_PER_REGULARIZATION`, sigma_1 the largest
    singular value of the confidences c_ui p_ui (p_ui = [r_ui > 0]), which scales with the
    confidences too: on small data the mean rule alone would shrink every factor to zero.
    """
    values = np.asarray(matrix.data)
    mean = float(np.abs(values, dtype=np.float64).mean()) if values.size else 0.0
    confidence = float(offset) + alpha * mean
    if not confidence > 0:  # nothing stored, or alpha = 0 with c = alpha |r|: any lambda
        confidence = 1.0
    value = REGULARIZATION_PER_CONFIDENCE * confidence
    reason = (f"{REGULARIZATION_PER_CONFIDENCE:g} x the mean confidence {confidence:.4g} "
              f"(= {float(offset):g} + alpha {alpha:g} x mean |r| {mean:.4g}) of the stored "
              "values")
    sigma = _largest_confidence_singular_value(
        matrix, alpha, offset, stop_above=SINGULAR_VALUE_PER_REGULARIZATION * value)
    if 0 < sigma < SINGULAR_VALUE_PER_REGULARIZATION * value:
        reason = (f"sigma_1 / {SINGULAR_VALUE_PER_REGULARIZATION:g}, sigma_1 = {sigma:.4g} the "
                  "largest singular value of the confidences c p, instead of "
                  f"{float(f'{value:.4g}'):g} = {reason}: with this little data that would "
                  "shrink every factor towards zero")
        value = sigma / SINGULAR_VALUE_PER_REGULARIZATION
    value = float(f"{value:.4g}")
    return value, f"regularization='auto' is {value:g} = {reason}"


def _warn_if_every_factor_vanishes(matrix, regularization, alpha, offset, owner):
    """A UserWarning when lambda >= sigma_1 of the confidences c p of `matrix`: X = Y = 0 is
    then the minimum of the objective, every factor shrinks towards zero and every score
    with it (recommendations and similar items become ties in no meaningful order). Stops
    its power iteration as soon as sigma_1 is known to be above lambda."""
    sigma = _largest_confidence_singular_value(matrix, alpha, offset,
                                               stop_above=regularization * (1 + 1e-6))
    if sigma == 0:
        warnings.warn(f"{owner}: no stored value is positive (p = 0 everywhere), so the fit "
                      "has nothing to rank by: every factor (and every score) shrinks "
                      "towards zero whatever the regularization", UserWarning, stacklevel=4)
    elif sigma <= regularization:
        warnings.warn(f"{owner}: regularization={regularization:g} is at or above the largest "
                      f"singular value {sigma:.4g} of the confidences c p of this data: the "
                      "fit shrinks every factor (and every score) towards zero; lower it "
                      f"({owner}(regularization='auto') would take "
                      f"{auto_regularization(matrix, alpha, offset)[0]:g})", UserWarning,
                      stacklevel=4)


def _largest_confidence_singular_value(matrix, alpha, offset, stop_above, iterations=300,
                                       rtol=1e-6):
    """A lower bound on sigma_1 of the confidences A = c_ui p_ui of the CSR `matrix`
    (c = offset + alpha |r|, p = [r > 0]): power iteration on A^T A from the constant
    vector (A >= 0, so its top singular vectors are >= 0 and meet it), every estimate
    |A^T u| for a unit u, non-decreasing. Returns early once it reaches `stop_above` (at
    once when the largest entry, itself a lower bound, does), else when it changes by less
    than `rtol` (0 without a positive stored value)."""
    import scipy.sparse as sp

    n_rows, n_columns = matrix.shape
    values = np.asarray(matrix.data)
    if not values.size or n_columns == 0:
        return 0.0
    top = float(values.max())
    if top > 0 and float(offset) + alpha * top >= stop_above:
        return float(offset) + alpha * top  # sigma_1 >= every entry: no pass over A needed
    # in the values' dtype: a transient copy of nnz values, no more
    confidences = np.where(values > 0, float(offset) + alpha * np.abs(values), 0).astype(
        values.dtype, copy=False)
    A = sp.csr_matrix((confidences, np.asarray(matrix.indices), np.asarray(matrix.indptr)),
                      shape=(n_rows, n_columns))
    # every row's norm is a lower bound too (|A^T e_u|): it keeps the estimate up where the
    # constant start meets the top singular vectors only faintly (e.g. block-diagonal data)
    indptr = np.asarray(matrix.indptr)
    starts = indptr[:-1][np.diff(indptr) > 0]  # segments of the non-empty rows, no copy of A
    floor = float(np.sqrt(np.add.reduceat(confidences * confidences, starts).max()))
    if floor >= stop_above:
        return floor
    v = np.full(n_columns, 1.0 / np.sqrt(n_columns))
    estimate = 0.0
    for _ in range(iterations):
        u = A @ v
        norm = float(np.linalg.norm(u))
        if not norm > 0:
            return max(estimate, floor)
        w = A.T @ (u / norm)
        sigma = float(np.linalg.norm(w))
        if sigma >= stop_above or sigma - estimate <= rtol * sigma:
            return max(sigma, floor)
        estimate, v = sigma, w / sigma
    return max(estimate, floor)


def check_block_size(block_size, factors):
    """iALS++'s block size: None (the solve takes min(factors, 128)) or an int in
    [1, factors]."""
    if block_size is None:
        return None
    block_size = check_int("block_size", block_size, minimum=1)
    if block_size > factors:
        raise ValueError(f"block_size must be at most factors={factors}, got {block_size}")
    return block_size


def implicit_switches(solver, use_cg, use_native, use_gpu):
    """The solver after `implicit`'s use_cg / use_native / use_gpu switches (None: not given)."""
    for name, value in (("use_cg", use_cg), ("use_native", use_native), ("use_gpu", use_gpu)):
        if value is not None:
            check_bool(name, value)
    if use_gpu:
        raise ValueError("use_gpu=True: fastals runs on CPUs only (its kernels are compiled "
                         "OpenMP code); leave use_gpu unset or False")
    if use_cg is None:
        return solver
    if use_cg and solver != "cg":
        raise ValueError(f"solver={solver!r} and use_cg=True disagree: give one of them")
    if solver == "ials++":  # not CG either: use_cg=False agrees with it
        return solver
    return "cg" if use_cg else "cholesky"
