r"""Matrix factorisation of explicit ratings by stochastic gradient descent (Funk-style SVD).

For each observed rating r_ui, visited in a shuffled order, with r^_ui = mu + b_u + b_i +
x_u . y_i (mu = b_u = b_i = 0 when ``biases=False``; mu is the mean training rating):

    e_ui = r_ui - r^_ui
    b_u += lr_b (2 e_ui - beta_b b_u)          b_i += lr_b (2 e_ui - beta_b b_i)
    x_u += lr   (2 e_ui y_i - beta x_u)        y_i += lr   (2 e_ui x_u - beta y_i)

(the x_u and y_i updates both use the values from before the step): one gradient step on
e_ui^2 + beta/2 (|x_u|^2 + |y_i|^2) + beta_b/2 (b_u^2 + b_i^2), the rule of Au Yeung (2010);
scikit-surprise's ``SVD`` takes the step on e^2/2, so its ``lr_all`` and ``reg_all`` are
``2 * learning_rate`` and ``regularization / 2`` here.

Every epoch is one lock-free parallel sweep over the ratings in a freshly drawn random order.
By default the order is stratified (DSGD, Gemulla et al. 2011; FPSGD, Zhuang et al. 2013):
users and items are dealt at random into G groups each (once per fit), and every epoch
visits the G x G blocks of ratings diagonal by diagonal, in a fresh random schedule, each
block in a fresh uniformly shuffled order. The blocks of a diagonal share no user or item,
so threads work on them side by side without ever writing the same factor row: the result
is exactly the sequential sweep's, for any number of threads, and each thread's rows fit
in cache.
The sweeps work on factor rows padded with zeros to whole cache lines (112 float32 for
K=100) unless that costs more than MAX_PADDING of extra memory: every vector load and store
of a row then stays within one line instead of straddling two, which measured 1.2-1.5x
faster sweeps (bench/sgd_sweep.py). The padding is zero and stays zero (an update maps 0 to
c1 0 + c2 0) and adds nothing to the dot products: the updates are those of unpadded rows
(bit for bit where a row's tail was already one masked register, as with AVX-512; else up to
the order of the dot product's sums). At the end of a fit the rows are unpadded in place.
``strata=1`` gives a uniformly shuffled order swept Hogwild-style instead (threads race on
shared rows; approximate with more than one thread). Kernels: ``fastals/_kernels/_sgd.pxi``
(``sgd_epoch``, ``order_ratings``); reference: :func:`fastals.reference.explicit.sgd_epoch`.

Imports the kernels, fastals' validation, array and threading helpers and fastals.models
(base, explicit, factorization).
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from fastals._arrays import aligned, padded_width, unpad_in_place
from fastals._kernels import checked
from fastals._kernels.dispatch import kernels
from fastals._threads import resolve_threads
from fastals._typing import DTypeLike, FitCallback, SeedLike, Self, SparseMatrix
from fastals._validation import (
    CSR,
    all_finite,
    check_bool,
    check_dtype,
    check_float,
    check_int,
    check_num_threads,
    check_random_state,
)
from fastals.exceptions import ModelFitError
from fastals.models.base import check_fit_arguments, prepare_validation, run_training
from fastals.models.explicit import ExplicitFactorizationBase
from fastals.models.factorization import normal_rows, scaled_by

kernels("_sgd")  # load the kernel build now, not inside the first fit

# Each thread gets at least this many ratings per sweep (a few milliseconds of work): below
# it, starting the threads and handing blocks between them costs more than a second thread
# gains, and on a busy machine far more (measured: MovieLens 100K, 80,000 ratings, fits 3x
# slower on 2 threads than on 1 at load 5 on 2 cores). The results do not depend on it.
MIN_RATINGS_PER_THREAD = 1 << 17
# Automatic strata: at least MIN_STRATA groups per side (so that threads can balance the G
# blocks of a diagonal), and enough that one group of users plus one of items holds about
# STRATUM_BYTES of factors (a block's rows stay in cache while its ratings stream by).
MIN_STRATA = 4
STRATUM_BYTES = 4 << 20
# more groups only add bookkeeping (G * G blocks per epoch)
MAX_STRATA = 256
# factor rows are padded to whole cache lines only when that adds at most this fraction of
# memory (K=100 float32: 112 floats, +12%; short rows, e.g. K=8, would double)
MAX_PADDING = 0.25


class SGDMatrixFactorization(ExplicitFactorizationBase):
    r"""Funk-style SVD: biased matrix factorisation of ratings fitted by parallel SGD.

    Parameters
    ----------
    factors : int
        Latent dimension K.
    learning_rate : float
        lr > 0 of the factor updates (module docstring).
    regularization : float
        beta >= 0 of the factor updates.
    bias_learning_rate, bias_regularization : float or None
        lr_b and beta_b of the bias updates; None uses learning_rate / regularization.
    epochs : int
        Passes over the ratings.
    init_std : float
        Standard deviation of the normal initial factors (mean 0).
    biases : bool
        Fit the global mean and user and item biases (Surprise's ``SVD``); False gives
        Funk's plain x_u . y_i.
    lr_decay : float or sequence of float
        Learning-rate multipliers: a float d in (0, 1] multiplies the rates of epoch e by d**e;
        a sequence gives the multiplier of each epoch (at least `epochs` values).
    shuffle : bool
        Draw a new random order of the ratings every epoch (True) or once per fit (False).
        Ratings are never visited in the input's row order, which would bunch each user's
        ratings together and slow convergence.
    strata : int or None
        G, the number of groups users and items are each dealt into for the stratified order
        (module docstring); None chooses it from the data alone (at least 4, more when the
        factors outgrow the caches), so results do not depend on the machine or the thread
        count. At most min(n_users, n_items, 256) are used. 1 gives a uniformly shuffled
        order swept Hogwild-style.
    dtype : float32 or float64
        Dtype of the factors and of the arithmetic.
    random_state : int, numpy Generator or None
        Seed of the initial factors and of the orders. With a seed, fit is exactly
        reproducible (bit for bit, for any ``num_threads``) in the stratified order; with
        ``strata=1`` only with ``num_threads=1``, as Hogwild's concurrent updates make the
        result vary slightly from run to run.
    num_threads : int
        OpenMP threads; 0 uses every core. An upper bound: at most G threads, each with at
        least ``MIN_RATINGS_PER_THREAD`` (131,072) ratings per sweep, as on small data the
        threads cost more than they gain (MovieLens 100K runs on one).

    Attributes
    ----------
    training_rmse_history : list of float
        Per epoch, the RMSE of the errors met during the epoch (before each update).

    Examples
    --------
    >>> import fastals, numpy as np, scipy.sparse as sp
    >>> rng = np.random.default_rng(0)
    >>> ratings = sp.random(60, 40, density=0.2, format="csr", random_state=0,
    ...                     data_rvs=lambda n: rng.integers(1, 6, n))
    >>> model = fastals.FunkSVD(factors=8, epochs=10, random_state=0)
    >>> model = model.fit(ratings, show_progress=False)
    >>> stars = model.predict([0, 1], [3, 4])
    """

    training_rmse_history: list[float]

    def __init__(self, factors: int = 100, learning_rate: float = 0.01,
                 regularization: float = 0.15, bias_learning_rate: float | None = None,
                 bias_regularization: float | None = None, epochs: int = 20,
                 init_std: float = 0.05, biases: bool = True,
                 lr_decay: float | Sequence[float] = 0.95, shuffle: bool = True,
                 strata: int | None = None, dtype: DTypeLike = np.float32,
                 random_state: SeedLike = None, num_threads: int = 0) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.bias_learning_rate = bias_learning_rate
        self.bias_regularization = bias_regularization
        self.epochs = epochs
        self.init_std = init_std
        self.biases = biases
        self.lr_decay = lr_decay
        self.shuffle = shuffle
        self.strata = strata
        self.dtype = dtype
        self.random_state = random_state
        self.num_threads = num_threads
        self._check_params()
        self.training_rmse_history = []

    def _check_params(self):
        self.factors = check_int("factors", self.factors, minimum=1)
        self.learning_rate = check_float("learning_rate", self.learning_rate, minimum=0,
                                         exclusive=True)
        self.regularization = check_float("regularization", self.regularization, minimum=0)
        if self.bias_learning_rate is not None:
            self.bias_learning_rate = check_float("bias_learning_rate", self.bias_learning_rate,
                                                  minimum=0, exclusive=True)
        if self.bias_regularization is not None:
            self.bias_regularization = check_float("bias_regularization",
                                                   self.bias_regularization, minimum=0)
        self.epochs = check_int("epochs", self.epochs, minimum=0)
        self.init_std = check_float("init_std", self.init_std, minimum=0)
        self.biases = check_bool("biases", self.biases)
        self._lr_multipliers = lr_multipliers(self.lr_decay, self.epochs)
        self.shuffle = check_bool("shuffle", self.shuffle)
        if self.strata is not None:
            self.strata = check_int("strata", self.strata, minimum=1)
        self.dtype = check_dtype("dtype", self.dtype)
        self.num_threads = check_num_threads(self.num_threads)
        check_random_state(self.random_state)

    def _rates(self, epoch):
        """(lr, lr_b, beta, beta_b) of an epoch, in the model dtype."""
        lr = self.learning_rate * self._lr_multipliers[epoch]
        lr_b = (self.learning_rate if self.bias_learning_rate is None
                else self.bias_learning_rate) * self._lr_multipliers[epoch]
        beta = self.regularization
        beta_b = beta if self.bias_regularization is None else self.bias_regularization
        return tuple(self.dtype(v) for v in (lr, lr_b, beta, beta_b))

    # --- training ----------------------------------------------------------------------------
    def fit(self, ratings: SparseMatrix, show_progress: bool = True,
            callback: FitCallback | None = None, *,
            validation: tuple[SparseMatrix, SparseMatrix] | None = None,
            metric: str | None = None, early_stopping_rounds: int | None = None,
            validation_split: float | None = None) -> Self:
        """Fit to `ratings` (users x items, any scipy sparse format; stored entries are ratings).

        Starts from fresh random factors on every call; the input is never modified.
        `callback(epoch, seconds, training_rmse)` is called after each epoch. Returns self.
        If interrupted (Ctrl-C), the model keeps the last completed epoch. If training
        diverges, ModelFitError names the epoch and the model is left unfitted.

        Validation (keyword only; see :mod:`fastals.models.validation`):
        ``validation=(train_part, held_out)`` scores the model on `held_out` after each
        epoch with `metric`: "rmse" (the default) or "mae" on the held-out ratings, or a
        ranking metric such as "ndcg@10" (`train_part`'s items filtered out of the lists).
        The score is on the progress bar and in ``history[metric]``.
        ``early_stopping_rounds=N`` stops after N epochs without improvement and keeps the
        best epoch's factors and biases (``best_iteration`` counts its epochs).
        ``validation_split=f`` holds out a fraction f of each user's ratings (seeded with
        an int random_state, else 0) and fits on the rest.
        """
        self._check_params()
        check_fit_arguments(show_progress, callback)
        ratings, validation = prepare_validation(self, ratings, validation, metric,
                                                 early_stopping_rounds, validation_split)
        R = self._training_ratings(ratings)
        n_users, n_items = R.shape
        rng = check_random_state(self.random_state)
        # the sweeps run on rows padded with zeros to whole cache lines (module docstring);
        # `publish` gives the model unpadded arrays
        K = self.factors
        P, Q = initial_factors(rng, n_users, n_items, K, self.init_std, self.dtype)
        P[self._statistics[0] == 0] = 0  # never updated: unknown users and items
        Q[self._statistics[1] == 0] = 0
        b_user = np.zeros(n_users, dtype=self.dtype)
        b_item = np.zeros(n_items, dtype=self.dtype)
        mu = self.dtype(self._statistics[2] if self.biases else 0.0)
        strata = min(self.strata or auto_strata(n_users, n_items, self.factors, self.dtype),
                     n_users, n_items, MAX_STRATA)
        threads = min(resolve_threads(self.num_threads), -(-R.nnz // MIN_RATINGS_PER_THREAD))
        if strata > 1:
            threads = min(threads, strata)
        order = RatingOrder(rng, R, self._statistics[:2], strata, threads)
        self.training_rmse_history = []

        def publish(final):
            if final:  # the working arrays themselves, unpadded where they lie
                self._publish(unpad_in_place(P, K), unpad_in_place(Q, K), b_user, b_item,
                              copy=False)
            else:  # training goes on: copies, which later epochs leave alone
                self._publish(aligned(P[:, :K], copy=True), aligned(Q[:, :K], copy=True),
                              b_user.copy(), b_item.copy(), copy=False)
            self.clear_cache()

        def epoch(e):
            if e == 0 or self.shuffle:
                order.draw()
            lr, lr_b, beta, beta_b = self._rates(e)
            squared_error = checked.sgd_epoch(*order.triples, P, Q, b_user, b_item, mu, lr,
                                              lr_b, beta, beta_b, self.biases, threads,
                                              order.block_start, order.schedule)
            # a non-finite value met by any update shows in the error sum; the arrays
            # themselves are scanned after the last epoch
            self._check_divergence(e, squared_error, lr,
                                   (P, Q, b_user, b_item) if e + 1 == self.epochs else ())
            self.training_rmse_history.append(math.sqrt(squared_error / R.nnz))
            if callback is not None or validation.active:  # they see this epoch's model
                publish(final=False)
            return self.training_rmse_history[-1]

        try:
            run_training("SGD", self.epochs, epoch, show_progress, callback, step_name="epoch",
                         unit="epoch", metric="training rmse", validation=validation,
                         model=self)
        except ModelFitError:
            raise  # diverged: _check_divergence left the model unfitted
        except BaseException:
            # interrupted (Ctrl-C, or an error in the callback): the kernels run between
            # Python statements, so the working arrays hold the last completed epoch
            publish(final=True)
            raise
        publish(final=True)
        validation.restore_best(self)
        return self

    def _check_divergence(self, epoch, squared_error, lr, arrays=()):
        if math.isfinite(squared_error) and all(all_finite(a) for a in arrays):
            return
        for name in self._state_names:
            setattr(self, name, None)
        raise ModelFitError(
            f"SGD diverged in epoch {epoch + 1} of {self.epochs}: the training error became "
            f"{squared_error:g} (learning rate {float(lr):g}). Lower learning_rate (e.g. "
            f"{self.learning_rate / 10:g}) or raise regularization; the model is left unfitted")

    def _fold_in_regularization(self):
        # the SGD objective summed over a user's n_u ratings is a ridge with lambda = beta/2
        # per rating: weighted regularisation
        beta_b = self.regularization if self.bias_regularization is None \
            else self.bias_regularization
        return self.regularization / 2, beta_b / 2, True

    def get_params(self) -> dict[str, Any]:
        params = super().get_params()
        if not isinstance(params["lr_decay"], numbers.Real):
            params["lr_decay"] = [float(v) for v in params["lr_decay"]]
        return params


#: Simon Funk's name for it (scikit-surprise calls it SVD, LensKit FunkSVD)
FunkSVD = SGDMatrixFactorization


def initial_factors(rng, n_users, n_items, factors, init_std, dtype):
    """The initial (P, Q): N(0, init_std^2) entries drawn in `dtype`, P's rows then Q's, in
    rows padded with zeros to whole cache lines where that costs at most MAX_PADDING more
    memory (module docstring; ``X[:, :factors]`` are the factors)."""
    return tuple(_normal_rows(rng, n, factors, init_std, dtype) for n in (n_users, n_items))


def _normal_rows(rng, n, factors, init_std, dtype, chunk_bytes=1 << 20):
    """Rows of N(0, init_std^2) draws, drawn a cache-sized chunk at a time straight into the
    padded array (the same values as one draw of all n rows, without a full-size buffer)."""
    width = padded_width(factors, dtype)
    if width > factors * (1 + MAX_PADDING):
        width = factors
    return normal_rows(rng, n, factors, dtype, scaled_by(init_std, dtype), width=width,
                       chunk_bytes=chunk_bytes)


def epoch_seed(rng):
    """The seed of one shuffle of the ratings, drawn from the model's generator."""
    return int(rng.integers(0, 2**63 - 1))


def auto_strata(n_users, n_items, factors, dtype):
    """G for data of this shape: MIN_STRATA, or more when a group would outgrow STRATUM_BYTES."""
    row_bytes = factors * np.dtype(dtype).itemsize
    strata = max(MIN_STRATA, -(-(n_users + n_items) * row_bytes // STRATUM_BYTES))
    return int(max(1, min(strata, n_users, n_items, MAX_STRATA)))


def balanced_groups(rng, counts, strata):
    """Deal the rows into `strata` groups at random, about equal in total rating count.

    The rows are put in a random order and cut where the running count crosses each
    1/strata of the total (a row is never split: each goes where its middle falls), giving
    int32 group ids.
    """
    order = rng.permutation(len(counts))
    running = np.cumsum(counts[order], dtype=np.float64)
    total = running[-1] if len(running) and running[-1] > 0 else 1.0
    middle = running - 0.5 * counts[order]
    group = np.empty(len(counts), dtype=np.int32)
    group[order] = np.minimum(middle * strata // total, strata - 1)
    return group


class GroupLayout:
    """The users and the items renumbered group by group, for a stratified sweep.

    With the groups dealt at random (``balanced_groups``), the rows of one group lie all
    over the factor arrays, and the one-value-per-row arrays (biases, their accumulators)
    share every cache line between groups, so between the threads: each write of a bias then
    pulls the line from the other core (measured: BPR on MovieLens 100K slower on 2 threads
    than on 1). Renumbered so that each group is a contiguous range of ids, a thread's
    rows and biases are its own lines, and a group's rows are one stretch of memory.

    ``matrix`` is R in the local numbering (rows and columns permuted, each row's columns
    sorted), ``counts`` and ``groups`` (user_group, item_group) likewise. ``orders`` are
    the (users, items) in local order (local id k is caller's id orders[side][k]) and
    ``ranks`` their inverses (caller's id u is local id ranks[0][u]). With one stratum
    nothing is renumbered, and groups, orders and ranks are None.
    """

    def __init__(self, rng, R, counts, strata):
        self.strata = strata
        if strata == 1:
            self.matrix, self.counts = R, counts
            self.groups = self.orders = self.ranks = None
            return
        groups = tuple(balanced_groups(rng, c, strata) for c in counts)
        self.orders = tuple(np.argsort(g, kind="stable") for g in groups)
        self.ranks = tuple(np.argsort(o) for o in self.orders)
        self.groups = tuple(g[o] for g, o in zip(groups, self.orders))
        self.counts = tuple(c[o] for c, o in zip(counts, self.orders))
        index = R.indices.dtype
        renamed = sp.csr_matrix((R.data, self.ranks[1].astype(index)[R.indices], R.indptr),
                                shape=R.shape)[self.orders[0]]
        renamed.sort_indices()
        self.matrix = CSR(renamed.indptr.astype(index, copy=False),
                          renamed.indices.astype(index, copy=False), renamed.data, R.shape)


class RatingOrder:
    """The orders in which one fit visits the ratings (module docstring), drawn from `rng`.

    ``draw()`` makes the next epoch's order: ``triples`` (users, items, ratings) to sweep,
    and for the stratified order ``block_start`` and ``schedule`` (kernel arguments; None
    for a uniform shuffle, strata == 1). ``sequential()`` lists the triples in visiting
    order, which is what any number of threads computes (the reference's input).
    """

    def __init__(self, rng, R, counts, strata, num_threads, groups=None):
        self.rng, self.strata = rng, strata
        self.source = (np.repeat(np.arange(R.shape[0], dtype=R.indices.dtype), np.diff(R.indptr)),
                       R.indices, R.data)
        self.counts = counts
        # (the orders are the same for any thread count; below ~1M ratings they take a few
        # milliseconds on one thread, less than waking the others)
        self.num_threads = num_threads if R.nnz >= 1 << 20 else 1
        self.triples = self.block_start = self.schedule = None
        # (user_group, item_group): given (a GroupLayout's), else drawn by the first epoch
        self.groups = groups

    def draw(self):
        sgd, rng, G = checked, self.rng, self.strata  # the _sgd kernels, checked
        if G == 1:
            if self.triples is None:
                self.triples = tuple(np.empty_like(a) for a in self.source)
            sgd.order_ratings(*self.source, *self.triples, epoch_seed(rng), self.num_threads)
            return
        if self.triples is None:  # the first epoch deals the groups and sorts into blocks
            self.triples = tuple(np.empty_like(a) for a in self.source)
            if self.groups is None:
                self.groups = tuple(balanced_groups(rng, c, G) for c in self.counts)
            user_group, item_group = self.groups
            self.block_start = sgd.order_ratings(*self.source, *self.triples, epoch_seed(rng),
                                                 self.num_threads, user_group, item_group, G)
            self.source = None
        else:
            sgd.shuffle_blocks(*self.triples, self.block_start, epoch_seed(rng),
                               self.num_threads)
        self.schedule = random_schedule(rng, G)

    def sequential(self):
        if self.schedule is None:
            return self.triples
        pieces = [slice(self.block_start[b], self.block_start[b + 1]) for b in self.schedule]
        return tuple(np.concatenate([a[piece] for piece in pieces]) for a in self.triples)


def random_schedule(rng, G):
    """G diagonals of G blocks (block = user group * G + item group), in random order.

    Diagonal k pairs user group g with item group sigma[(g + shift[k]) % G], for a random
    permutation sigma of the item groups and a random order `shift` of the G offsets: every
    block once, and no user or item group twice in a diagonal.
    """
    sigma, shift = rng.permutation(G), rng.permutation(G)
    groups = np.arange(G)
    return np.concatenate([groups * G + sigma[(groups + k) % G] for k in shift]).astype(np.int64)


def lr_multipliers(lr_decay, epochs):
    """Per-epoch learning-rate multipliers from a decay factor or an explicit sequence."""
    epochs = check_int("epochs", epochs, minimum=0)
    if isinstance(lr_decay, numbers.Real) and not isinstance(lr_decay, (bool, np.bool_)):
        decay = check_float("lr_decay", lr_decay, minimum=0, exclusive=True, maximum=1)
        return [decay ** e for e in range(epochs)]
    try:
        values = [check_float(f"lr_decay[{e}]", v, minimum=0, exclusive=True)
                  for e, v in enumerate(lr_decay)]
    except TypeError:
        raise TypeError(f"lr_decay must be a number in (0, 1] or a sequence of per-epoch "
                        f"multipliers, got {lr_decay!r}") from None
    if len(values) < epochs:
        raise ValueError(f"lr_decay has {len(values)} multipliers but epochs={epochs}: give one "
                         "per epoch")
    return values
