r"""Ranking losses for implicit feedback: BPR, WARP and logistic matrix factorisation.

Each stored (u, i) of ``user_items`` is one sample per epoch; a sample draws negative items
j and takes SGD steps on the user's and the items' factors (the update rules are in
``fastals/_kernels/_ranking.pxi`` and, in numpy, :mod:`fastals.reference.ranking`):

* BPR (Rendle et al. 2009): one step on ln sigma(x_uij), x_uij = s_ui - s_uj, with
  s_ui = x_u . y_i + b_i and L2 on every row touched.
* WARP (Weston et al. 2011): draws j until s_uj > s_ui - 1 (at most ``max_sampled``), then a
  hinge step scaled by ln(floor((n_items - 1) / draws)), the rank estimate's weight.
* Logistic MF (Johnson 2014): the stored pair with confidence c = r_ui and ``neg_prop``
  unobserved pairs, one step on their log-likelihood sum_k c_k l_k - (1 + c_k) ln(1 +
  exp(l_k)), l = x_u . y_i + b_u + b_i (each item steps, then the user once).

The sweep is the SGD family's stratified one (:mod:`fastals.models.sgd`): users and items
are dealt into G groups, the pairs stored in G x G blocks, and blocks that share no group
run side by side on different threads, so no two threads ever touch one row. A block draws
its negatives from its own item group (a random 1/G of the items: the distribution of j is
uniform, or by popularity, over that group) and from a random stream keyed by (epoch seed,
block): with a seed, the result is bit-identical for any ``num_threads``.

Models: :class:`BayesianPersonalizedRanking` (implicit's call shape and defaults),
:class:`LogisticMatrixFactorization` (implicit's call shape and defaults) and :class:`WARP`.
Scores are dot products of ``user_factors`` and ``item_factors`` whose last columns carry
the biases, as in implicit: BPR and WARP keep (x_u, 1) and (y_i, b_i); LMF keeps
(x_u, b_u, 1) and (y_i, 1, b_i).

Imports numpy, the kernel room (checked), fastals' validation, array, threading and typing
helpers and fastals.models (base, factorization, sgd).
"""
from __future__ import annotations

import math
import numpy as np

from fastals._arrays import aligned, aligned_empty, aligned_zeros, padded_width
from fastals._kernels import checked
from fastals._kernels.dispatch import kernels
from fastals._threads import resolve_threads
from fastals._typing import DTypeLike, FitCallback, Indices, SeedLike, Self, SparseMatrix
from fastals._validation import (
    all_finite,
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
from fastals.exceptions import ModelFitError
from fastals.models.base import check_fit_arguments, run_training
from fastals.models.factorization import (
    MatrixFactorizationBase,
    check_counts,
    interaction_counts,
    normal_rows,
    scaled_by,
)
from fastals.models.sgd import (
    MAX_PADDING,
    MAX_STRATA,
    GroupLayout,
    RatingOrder,
    auto_strata,
    epoch_seed,
)

kernels("_sgd")  # load the kernel build now, not inside the first fit

LOSS_CODES = {"bpr": 0, "warp": 1, "lmf": 2}
# each thread gets at least this many steps per sweep: below it, handing blocks between
# threads costs more than a second thread gains (the results do not depend on it)
MIN_STEPS_PER_THREAD = 1 << 15
SCHEDULES = ("constant", "adagrad")
GATHER_ROWS = 4096
# blocks of at most this many pairs check negatives against a hash set of the block's pairs
# (2^21 slots, 16 MB per thread at most); larger ones by binary search in the user's row
HASHED_BLOCK_PAIRS = 1 << 20  # rows renumbered at a time when the factors are published
SAMPLINGS = ("uniform", "popularity")


class RankingFactorizationBase(MatrixFactorizationBase):
    """What BPR, WARP and LMF share: the sweep, the fold-in of users and the saved state.

    Subclasses set ``_loss`` and provide ``_negatives()`` (draws per sample) and
    ``_regularization_weights()``.
    """

    _loss = "bpr"
    _optional_state_names = ("user_counts", "item_counts")
    _verify = True
    loss_history: list[float]

    def _check_common(self):
        self.factors = check_int("factors", self.factors, minimum=1)
        self.learning_rate = check_float("learning_rate", self.learning_rate, minimum=0,
                                         exclusive=True)
        self.regularization = check_float("regularization", self.regularization, minimum=0)
        self.iterations = check_int("iterations", self.iterations, minimum=0)
        self.dtype = check_dtype("dtype", self.dtype)
        self.num_threads = check_num_threads(self.num_threads)
        self.learning_schedule = check_choice("learning_schedule", self.learning_schedule,
                                              SCHEDULES)
        self.negative_sampling = check_choice("negative_sampling", self.negative_sampling,
                                              SAMPLINGS)
        if self.strata is not None:
            self.strata = check_int("strata", self.strata, minimum=1)
        check_random_state(self.random_state)

    @property
    def _bias_columns(self):
        return 2 if self._loss == "lmf" else 1

    # --- training ----------------------------------------------------------------------------
    def fit(self, user_items: SparseMatrix, show_progress: bool = True,
            callback: FitCallback | None = None) -> Self:
        """Fit to `user_items` (users x items, any scipy sparse format): every stored
        value is a liked item (for LMF, its value is the confidence c and must be > 0).

        Starts from fresh random factors on every call; the input is never modified.
        `callback(epoch, seconds, loss)` is called after each epoch with the mean loss of
        its samples. If interrupted, the model keeps the last completed epoch; if training
        diverges, ModelFitError names the epoch and the model is left unfitted.
        """
        self._check_params()
        check_fit_arguments(show_progress, callback)
        R = self._training_matrix(user_items)
        n_users, n_items = R.shape
        rng = check_random_state(self.random_state)
        F = self.factors
        user_counts = interaction_counts(R)
        item_counts = np.bincount(R.indices, minlength=n_items).astype(np.int64)
        strata = min(self.strata or auto_strata(n_users, n_items, F, self.dtype),
                     n_users, n_items, MAX_STRATA)
        steps = R.nnz * max(1, self._negatives() if self._loss != "warp" else 2)
        threads = min(resolve_threads(self.num_threads), strata,
                      -(-steps // MIN_STEPS_PER_THREAD))
        # the sweep runs in the layout's numbering (each group a range of ids), on rows
        # padded with zeros to whole cache lines (as fastals.models.sgd; the padding stays
        # zero and adds nothing to the dot products); publish gives the caller's numbering
        layout = GroupLayout(rng, R, (user_counts, item_counts), strata)
        width = padded_width(F, self.dtype)
        width = width if width <= F * (1 + MAX_PADDING) else F
        X, Y = (self._initial(rng, n, F, width) for n in (n_users, n_items))
        X[layout.counts[0] == 0] = 0  # never updated: users without interactions
        b_user = np.zeros(n_users, dtype=self.dtype)
        b_item = np.zeros(n_items, dtype=self.dtype)
        order = RatingOrder(rng, layout.matrix, layout.counts, strata, threads, layout.groups)
        sweep = _Sweep(self, layout.matrix, X, Y, b_user, b_item, threads)
        item_groups = layout.groups[1] if layout.groups else np.zeros(n_items, np.int32)
        sweep.set_groups(item_groups, strata, layout.counts[1])
        self.loss_history = []

        def publish():
            self._publish(X, Y, b_user, b_item, layout.ranks)
            self.user_counts, self.item_counts = user_counts, item_counts

        def epoch(e):
            order.draw()
            total, done = sweep.run(order.triples, *blocks_of(order, R.nnz), epoch_seed(rng),
                                    True)
            mean = total / max(done, 1)
            if not math.isfinite(total) or (e + 1 == self.iterations and not all(
                    all_finite(a) for a in (X, Y, b_user, b_item))):
                for name in self._state_names:
                    setattr(self, name, None)
                raise ModelFitError(
                    f"{type(self).__name__} diverged in epoch {e + 1} of {self.iterations}: "
                    f"the training loss became {total:g} (learning rate "
                    f"{self.learning_rate:g}). Lower learning_rate (e.g. "
                    f"{self.learning_rate / 10:g}) or raise regularization; the model is "
                    "left unfitted")
            self.loss_history.append(mean)
            if callback is not None:
                publish()
            return mean

        try:
            run_training(type(self).__name__, self.iterations, epoch, show_progress, callback,
                         step_name="epoch", unit="epoch", metric="loss")
        except ModelFitError:
            raise
        except BaseException:
            publish()  # interrupted: the arrays hold the last completed epoch
            raise
        publish()
        return self

    def _training_matrix(self, user_items):
        return self._check_likes(as_csr(user_items, "user_items", self.dtype,
                                        allow_empty=False))

    def _check_likes(self, R):
        """R (a validated CSR), after checking what the samples need of its rows."""
        if self._loss == "lmf" and (R.data < 0).any():
            raise ValueError("user_items holds negative values; LogisticMatrixFactorization "
                             "takes them as confidences, which must be > 0")
        if self._verify:
            full = np.flatnonzero(np.diff(R.indptr) >= R.shape[1])
            if len(full):
                raise ValueError(
                    f"user {full[0]} liked every one of the {R.shape[1]} items in user_items: "
                    f"{type(self).__name__} has no negative item to sample for it. Drop "
                    "the user" + (" or pass verify_negative_samples=False"
                                  if hasattr(self, "verify_negative_samples") else ""))
        return R

    def _initial(self, rng, n, F, width):
        """Uniform in (-0.5, 0.5) / F, as implicit's BPR starts, in (n, width) rows."""
        def finish(draws):
            draws -= 0.5
            draws /= F
            return draws
        return normal_rows(rng, n, F, self.dtype, finish, width=width, uniform=True)

    def _publish(self, X, Y, b_user, b_item, ranks=None):
        """user_factors / item_factors with the bias columns (module docstring) from the
        first F columns of X and Y; with `ranks` (GroupLayout.ranks), row u of the result
        is row ranks[0][u] of X (and of b_user), and likewise for the items."""
        if self._loss == "lmf":
            users, items = (b_user, 1), (1, b_item)
        else:
            users, items = (1,), (b_item,)
        rows = ranks or (None, None)
        self.user_factors = self._stacked(X, users, rows[0])
        self.item_factors = self._stacked(Y, items, rows[1])
        self.clear_cache()

    def _stacked(self, factors, columns, rows):
        """The first F columns of factors[rows], then `columns` (a number, or an array
        indexed by the same rows), in one aligned array."""
        F, n = self.factors, len(factors)
        out = aligned_empty((n, F + len(columns)), self.dtype)
        if rows is None:
            out[:, :F] = factors[:, :F]
        for start in range(0, n if rows is not None else 0, GATHER_ROWS):
            stop = min(start + GATHER_ROWS, n)  # (a cache-sized temporary at a time)
            out[start:stop, :F] = factors[rows[start:stop], :F]
        for k, column in enumerate(columns):
            out[:, F + k] = column if np.isscalar(column) or rows is None else column[rows]
        return out

    def _item_parts(self):
        """(y_i rows, b_i) of the published item factors (copies)."""
        factors = self.item_factors
        return (aligned(factors[:, :self.factors], copy=True),
                np.ascontiguousarray(factors[:, -1], dtype=self.dtype))

    # --- fold-in --------------------------------------------------------------------------
    def _recalculate_users(self, rows):
        """Users' factors fitted to their rows by `iterations` epochs of the same samples,
        the item factors held fixed (from zero, in a fixed seeded order)."""
        R = self._check_likes(rows)
        n_users, n_items = R.shape
        Y, b_item = self._item_parts()
        X = aligned_zeros((n_users, self.factors), self.dtype)
        b_user = np.zeros(n_users, dtype=self.dtype)
        user_counts = interaction_counts(R)
        item_counts = (self.item_counts if self.item_counts is not None
                       else np.ones(n_items, np.int64))
        sweep = _Sweep(self, R, X, Y, b_user, b_item, 1)
        sweep.set_groups(np.zeros(n_items, np.int32), 1, item_counts, user_counts)
        order = RatingOrder(np.random.default_rng(0), R, (user_counts, item_counts), 1, 1)
        for _ in range(self.iterations):
            order.draw()
            sweep.run(order.triples, *blocks_of(order, R.nnz), epoch_seed(order.rng), False)
        return self._stacked(X, (b_user, 1) if self._loss == "lmf" else (1,), None)

    def recalculate_user(self, userid: Indices, user_items: SparseMatrix) -> np.ndarray:
        """Factors of users fitted to their interactions against the fixed item factors.

        All three losses allow it (a user's samples touch only the user's row when the
        items are fixed). `user_items` has one row per requested user (or is the full
        users x items matrix). Returns a 1-D array for one user, else 2-D. The model is
        not changed; the result depends only on the rows and the item factors.
        """
        self._check_fitted()
        ids, scalar = check_ids("userid", userid, np.iinfo(np.int64).max)
        rows = self._rows_for(ids, user_items, "user_items", self.n_users, self.n_items)
        X = self._recalculate_users(rows)
        return X[0] if scalar else X

    def partial_fit_users(self, userids: Indices, user_items: SparseMatrix) -> Self:
        """Fold in (or refresh) users from their interactions (rows aligned with
        `userids`), as :meth:`recalculate_user` computes them; new ids grow the model."""
        self._check_fitted()
        ids, _ = check_ids("userids", userids, np.iinfo(np.int32).max, allow_scalar=True)
        if len(np.unique(ids)) != len(ids):
            raise ValueError("userids contains duplicate ids")
        rows = as_csr(user_items, "user_items", self.dtype, shape=(len(ids), self.n_items))
        solved = self._recalculate_users(rows)
        n = max(self.n_users, int(ids.max()) + 1 if ids.size else 0)
        grown = aligned_zeros((n, self.user_factors.shape[1]), self.dtype)
        grown[:self.n_users] = self.user_factors
        grown[self.n_users:, -1] = 1  # the column that carries the item bias
        grown[ids] = solved
        counts = self.user_counts
        if counts is not None:
            counts = np.concatenate([counts, np.zeros(n - len(counts), dtype=np.int64)])
            counts[ids] = interaction_counts(rows)
        self.user_factors, self.user_counts = grown, counts
        self.clear_cache()
        return self

    # --- state ----------------------------------------------------------------------------
    def _restore(self, arrays, extra):
        super()._restore(arrays, extra)
        width = self.factors + self._bias_columns
        for name in self._state_names:
            value = getattr(self, name)
            if value.ndim != 2 or value.shape[1] != width or not np.isfinite(value).all():
                raise ValueError(f"{name} must be a finite (n, {width}) array")
            setattr(self, name, aligned(value, self.dtype))
        self.user_counts = check_counts("user_counts", self.user_counts, self.n_users)
        self.item_counts = check_counts("item_counts", self.item_counts, self.n_items)


def blocks_of(order, nnz):
    """(block_start, schedule) of a RatingOrder's epoch; one block when it has no strata."""
    if order.schedule is None:
        return np.array([0, nnz], np.int64), np.zeros(1, np.int64)
    return order.block_start, order.schedule


class _Sweep:
    """One fit's (or fold-in's) arguments of the ranking kernel beyond the pairs' order."""

    def __init__(self, model, R, X, Y, b_user, b_item, threads):
        self.model, self.X, self.Y, self.b_user, self.b_item = model, X, Y, b_user, b_item
        self.threads = threads
        self.table = None  # the liked-pairs tables (_liked_table)
        index = R.indices.dtype
        self.indptr = R.indptr.astype(index, copy=False)
        self.indices = R.indices
        self.adagrad = model.learning_schedule == "adagrad"
        dt = model.dtype
        if self.adagrad:  # LightFM's adagrad starts its accumulators at 1
            self.A = (np.ones_like(X), np.ones_like(Y), np.ones_like(b_user),
                      np.ones_like(b_item))
        else:
            self.A = (np.ones((1, 1), dt), np.ones((1, 1), dt), np.ones(1, dt), np.ones(1, dt))

    def set_groups(self, item_group, strata, item_counts, user_counts=None):
        """The items of each item group (the negatives' pools) and the per-step L2 weights."""
        index = self.indices.dtype
        self.group_items = np.argsort(item_group, kind="stable").astype(index)
        self.group_start = np.zeros(strata + 1, np.int64)
        np.cumsum(np.bincount(item_group, minlength=strata), out=self.group_start[1:])
        if user_counts is None:
            user_counts = np.diff(self.indptr).astype(np.int64)
        self.user_reg, self.item_reg = self.model._regularization_weights(
            user_counts, item_counts, item_group, strata)

    def run(self, triples, block_start, schedule, seed, update_items):
        """One epoch; returns (loss sum, steps)."""
        m = self.model
        stats = np.zeros((len(schedule), 3), dtype=np.float64)
        checked.ranking_epoch(
            LOSS_CODES[m._loss], *triples, self.indptr, self.indices, self.group_items,
            self.group_start, self.X, self.Y, self.b_user, self.b_item, *self.A,
            self.user_reg, self.item_reg, m.dtype(m.learning_rate), self.adagrad,
            m._negatives(), m._verify, m.negative_sampling == "popularity", update_items,
            self.Y.shape[0], block_start, schedule, seed, self.threads,
            np.empty((max(self.threads, 1), self.X.shape[1]), m.dtype),
            self._liked_table(block_start), stats)
        return float(stats[:, 0].sum()), float(stats[:, 1].sum())

    def _liked_table(self, block_start):
        """The kernel's per-thread hash sets of a block's pairs for the liked check: a power
        of 2 at least twice the largest block, or no columns (the binary search) when
        nothing is checked or a block is too large to hash."""
        largest = int(np.diff(block_start).max()) if len(block_start) > 1 else 0
        size = 1 << max(4, (2 * largest - 1).bit_length())
        if (not self.model._verify or largest > HASHED_BLOCK_PAIRS
                or max(self.X.shape[0], self.Y.shape[0]) >= 2**32 - 1):
            size = 0
        rows = max(self.threads, 1)
        if self.table is None or self.table.shape != (rows, size):
            self.table = np.empty((rows, size), np.uint64)
        return self.table


class BayesianPersonalizedRanking(RankingFactorizationBase):
    r"""Bayesian Personalized Ranking (Rendle et al. 2009) by parallel, reproducible SGD.

    Per stored (u, i) and a negative j the user did not like (module docstring),
    x_uij = x_u . (y_i - y_j) + b_i - b_j, g = sigma(-x_uij), and with the values of before:

        x_u += lr (g (y_i - y_j) - lambda x_u)
        y_i += lr (g x_u - lambda y_i)     b_i += lr (g - lambda b_i)
        y_j += lr (-g x_u - lambda y_j)    b_j += lr (-g - lambda b_j)

    Parameters (implicit 0.7.3's, in its order, then fastals' own)
    ----------
    factors : int
        F; ``user_factors`` has F + 1 columns (the last is 1) and ``item_factors`` F + 1
        (the last is b_i), as in implicit.
    learning_rate, regularization : float
        lr > 0 and lambda >= 0 (per step, as implicit).
    dtype : float32 or float64
    iterations : int
        Epochs (passes over the stored pairs).
    num_threads : int
        OpenMP threads, 0 for every core (an upper bound: at most G, and fewer on small data).
    verify_negative_samples : bool
        Redraw a negative the user liked (at most 64 draws, then the sample is skipped).
    random_state : int, numpy Generator or None
        With a seed, fit is bit-identical for any ``num_threads``.
    learning_schedule : "constant" or "adagrad"
    negative_sampling : "uniform" or "popularity"
        j uniform over the block's item group, or the item of a random stored pair of the
        block (so by popularity).
    strata : int or None
        G of the stratified sweep (:class:`fastals.SGDMatrixFactorization`); None chooses it
        from the data's shape.

    Examples
    --------
    >>> import fastals, scipy.sparse as sp
    >>> likes = sp.random(50, 40, density=0.2, format="csr", random_state=0)
    >>> model = fastals.BayesianPersonalizedRanking(factors=8, iterations=5, random_state=0)
    >>> ids, scores = model.fit(likes, show_progress=False).recommend(0, likes[0], N=3)
    """

    _loss = "bpr"

    def __init__(self, factors: int = 100, learning_rate: float = 0.01,
                 regularization: float = 0.01, dtype: DTypeLike = np.float32,
                 iterations: int = 100, num_threads: int = 0,
                 verify_negative_samples: bool = True, random_state: SeedLike = None,
                 learning_schedule: str = "constant", negative_sampling: str = "uniform",
                 strata: int | None = None) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.dtype = dtype
        self.iterations = iterations
        self.num_threads = num_threads
        self.verify_negative_samples = verify_negative_samples
        self.random_state = random_state
        self.learning_schedule = learning_schedule
        self.negative_sampling = negative_sampling
        self.strata = strata
        self._check_params()
        self.loss_history = []

    def _check_params(self):
        self._check_common()
        self.verify_negative_samples = check_bool("verify_negative_samples",
                                                  self.verify_negative_samples)
        self._verify = self.verify_negative_samples

    def _negatives(self):
        return 1

    def _regularization_weights(self, user_counts, item_counts, item_group, strata):
        dt = self.dtype
        return (np.full(len(user_counts), self.regularization, dt),
                np.full(len(item_counts), self.regularization, dt))


class WARP(BayesianPersonalizedRanking):
    r"""WARP, the weighted approximate-rank pairwise loss (Weston et al. 2011), as LightFM's
    ``loss="warp"``.

    Per stored (u, i): draw j until s_uj > s_ui - 1 (at most ``max_sampled`` draws, a liked
    j counting as one), then the pairwise step of :class:`BayesianPersonalizedRanking` with
    g = ln(max(1, floor((n_items - 1) / draws))) instead of sigma(-x_uij); a sample whose
    draws all respect the margin takes no step.

    A class of its own rather than a ``loss=`` option of BPR: its parameters differ
    (``max_sampled``) and so do its good defaults (LightFM's adagrad and learning rate,
    not implicit's BPR settings, which BPR's call shape fixes), so one class with a loss
    switch would carry parameters that mean nothing for one of its losses. Both run the
    same kernel and the same sweep.

    Parameters
    ----------
    factors, learning_rate, regularization, dtype, iterations, num_threads,
    verify_negative_samples, random_state, learning_schedule, negative_sampling, strata
        As for :class:`BayesianPersonalizedRanking`; the defaults follow LightFM's (adagrad,
        no regularization) but with learning_rate 0.02 instead of its 0.05, which
        overfits MovieLens 100K at 100 factors within 30 epochs (P@10 0.33 against 0.40).
    max_sampled : int
        Most negatives drawn per sample (LightFM's 10).
    """

    _loss = "warp"

    def __init__(self, factors: int = 100, learning_rate: float = 0.02,
                 regularization: float = 0.0, dtype: DTypeLike = np.float32,
                 iterations: int = 30, num_threads: int = 0,
                 verify_negative_samples: bool = True, random_state: SeedLike = None,
                 learning_schedule: str = "adagrad", negative_sampling: str = "uniform",
                 strata: int | None = None, max_sampled: int = 10) -> None:
        self.max_sampled = max_sampled
        super().__init__(factors, learning_rate, regularization, dtype, iterations,
                         num_threads, verify_negative_samples, random_state,
                         learning_schedule, negative_sampling, strata)

    def _check_params(self):
        super()._check_params()
        self.max_sampled = check_int("max_sampled", self.max_sampled, minimum=1)

    def _negatives(self):
        return self.max_sampled


class LogisticMatrixFactorization(RankingFactorizationBase):
    r"""Logistic matrix factorisation (Johnson 2014) by parallel, reproducible SGD.

    The log-likelihood of a pair with confidence c and l = x_u . y_i + b_u + b_i is
    c l - (1 + c) ln(1 + exp(l)). One sample is a stored (u, i) (c = r_ui) and ``neg_prop``
    drawn unobserved pairs (c = 0), all scored with the same x_u; with
    g_k = c_k - (1 + c_k) sigma(l_uk), each item k steps in turn and then the user, once:

        y_k += lr (g_k x_u - lambda_k y_k)           b_k += lr (g_k - lambda_k b_k)
        x_u += lr (sum_k g_k y_k - lambda_u x_u)     b_u += lr (sum_k g_k - lambda_u b_u)

    with adagrad by default. Johnson's penalty lambda/2 (|x_u|^2 + |y_i|^2) is counted once
    per row and epoch: lambda_u = lambda / (steps of row u per epoch), and likewise for items
    (their expected steps, stored and drawn), so ``regularization`` means what it does in
    implicit's full-gradient update.

    Parameters (implicit 0.7.3's, in its order, then fastals' own)
    ----------
    factors : int
        F; ``user_factors`` holds (x_u, b_u, 1) and ``item_factors`` (y_i, 1, b_i).
    learning_rate, regularization : float
    dtype : float32 or float64
    iterations : int
    neg_prop : int
        Unobserved pairs drawn per stored one (never a liked item; at most 64 draws each).
    num_threads, random_state, learning_schedule, negative_sampling, strata
        As for :class:`BayesianPersonalizedRanking`.
    """

    _loss = "lmf"

    def __init__(self, factors: int = 30, learning_rate: float = 1.0,
                 regularization: float = 0.6, dtype: DTypeLike = np.float32,
                 iterations: int = 30, neg_prop: int = 30, num_threads: int = 0,
                 random_state: SeedLike = None, learning_schedule: str = "adagrad",
                 negative_sampling: str = "uniform", strata: int | None = None) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.dtype = dtype
        self.iterations = iterations
        self.neg_prop = neg_prop
        self.num_threads = num_threads
        self.random_state = random_state
        self.learning_schedule = learning_schedule
        self.negative_sampling = negative_sampling
        self.strata = strata
        self._check_params()
        self.loss_history = []

    def _check_params(self):
        self._check_common()
        self.neg_prop = check_int("neg_prop", self.neg_prop, minimum=0)

    def _negatives(self):
        return self.neg_prop

    def _initial(self, rng, n, F, width):
        """N(0, 0.01^2), as implicit's LMF starts, in (n, width) rows."""
        return normal_rows(rng, n, F, self.dtype, scaled_by(0.01, self.dtype), width=width)

    def _regularization_weights(self, user_counts, item_counts, item_group, strata):
        """lambda / (a row's steps per epoch): the user's n_u (one per sample), the item's
        n_i + neg_prop n_h / |h| (the stored pairs of its group h shared by its items)."""
        group_pairs = np.bincount(item_group, weights=item_counts, minlength=strata)
        group_size = np.maximum(np.bincount(item_group, minlength=strata), 1)
        item_steps = item_counts + self.neg_prop * group_pairs[item_group] / group_size[item_group]
        user_steps = user_counts.astype(np.float64)
        dt = self.dtype
        return (np.asarray(self.regularization / np.maximum(user_steps, 1), dt),
                np.asarray(self.regularization / np.maximum(item_steps, 1), dt))
