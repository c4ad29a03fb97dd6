r"""Matrix factorisation of explicit ratings by stochastic gradient descent (Funk-style SVD).

For each observed rating r_ui, visited in a shuffled order, with r^_ui = mu + b_u + c_i +
p_u . q_i (mu = b = c = 0 when ``biases=False``; mu is the mean training rating):

    e_ui = r_ui - r^_ui
    b_u += lr_b (2 e_ui - beta_b b_u)          c_i += lr_b (2 e_ui - beta_b c_i)
    p_u += lr   (2 e_ui q_i - beta p_u)        q_i += lr   (2 e_ui p_u - beta q_i)

(the p_u and q_i updates both use the values from before the step): one gradient step on
e_ui^2 + beta/2 (|p_u|^2 + |q_i|^2) + beta_b/2 (b_u^2 + c_i^2). This is the notebooks' rule;
scikit-surprise's ``SVD`` takes the step on e^2/2, so its ``lr_all`` and ``reg_all`` are
``2 * learning_rate`` and ``regularization / 2`` here.

Every epoch is one lock-free parallel (Hogwild) sweep over the ratings in a freshly
shuffled order. Kernels: ``fastals/_kernels/_sgd.pxi`` (``sgd_epoch``, ``shuffle_ratings``);
reference: :func:`fastals.reference.explicit.sgd_epoch`.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from fastals._kernels.dispatch import kernels
from fastals._threads import resolve_threads
from fastals._validation import (
    all_finite,
    check_bool,
    check_dtype,
    check_float,
    check_int,
    check_num_threads,
    check_random_state,
)
from fastals.exceptions import ModelFitError
from fastals.models.base import run_training
from fastals.models.explicit import ExplicitFactorizationBase

kernels("_sgd")  # load the kernel build now, not inside the first fit

# Each thread gets at least this many ratings per sweep (about 10 ms of work): a sweep is one
# parallel region, and on a busy machine ending a region waits for every thread to be
# scheduled again, which on smaller sweeps costs more than a second thread gains (measured:
# MovieLens 100K on 2 threads 1.3x faster on an idle machine, 3-7x slower at load 8).
MIN_RATINGS_PER_THREAD = 1 << 18


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
        Funk's plain p_u . q_i.
    lr_decay : float or sequence of float
        Learning-rate schedule: a float d in (0, 1] multiplies the rates of epoch e by d**e;
        a sequence gives the multiplier of each epoch (at least `epochs` values).
    shuffle : bool
        Draw a new random order of the ratings every epoch (True) or once per fit (False).
        Ratings are never visited in the input's row order, which would bunch each user's
        ratings together and slow convergence.
    dtype : float32 or float64
        Dtype of the factors and of the arithmetic.
    random_state : int, numpy Generator or None
        Seed of the initial factors and of the orders. With a seed and ``num_threads=1``
        fit is exactly reproducible; with more threads, concurrent updates make the result
        vary slightly from run to run.
    num_threads : int
        OpenMP threads; 0 uses every core. An upper bound: each thread gets at least
        ``MIN_RATINGS_PER_THREAD`` (262,144) ratings per sweep, as on smaller data the
        threads can cost more than they gain (so MovieLens 100K runs on one).

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

    def __init__(self, factors=100, learning_rate=0.01, regularization=0.15,
                 bias_learning_rate=None, bias_regularization=None, epochs=20, init_std=0.05,
                 biases=True, lr_decay=0.95, shuffle=True, dtype=np.float32, random_state=None,
                 num_threads=0):
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
        self._schedule = _schedule(self.lr_decay, self.epochs)
        self.shuffle = check_bool("shuffle", self.shuffle)
        self.dtype = check_dtype("dtype", self.dtype)
        self.num_threads = check_num_threads(self.num_threads)
        check_random_state(self.random_state)

    def _rates(self, epoch):
        """(lr, lr_b, beta, beta_b) of an epoch, in the model dtype."""
        lr = self.learning_rate * self._schedule[epoch]
        lr_b = (self.learning_rate if self.bias_learning_rate is None
                else self.bias_learning_rate) * self._schedule[epoch]
        beta = self.regularization
        beta_b = beta if self.bias_regularization is None else self.bias_regularization
        return tuple(self.dtype(v) for v in (lr, lr_b, beta, beta_b))

    # --- training ----------------------------------------------------------------------------
    def fit(self, ratings, show_progress=True, callback=None):
        """Fit to `ratings` (users x items, any scipy sparse format; stored entries are ratings).

        Starts from fresh random factors on every call; the input is never modified.
        `callback(epoch, seconds, training_rmse)` is called after each epoch. Returns self.
        If interrupted (Ctrl-C), the model keeps the last completed epoch. If training
        diverges, ModelFitError names the epoch and the model is left unfitted.
        """
        self._check_params()
        check_bool("show_progress", show_progress)
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        R = self._training_ratings(ratings)
        n_users, n_items = R.shape
        rng = check_random_state(self.random_state)
        P, Q = initial_factors(rng, n_users, n_items, self.factors, self.init_std, self.dtype)
        P[self._statistics[0] == 0] = 0  # never updated: unknown users and items
        Q[self._statistics[1] == 0] = 0
        b_user = np.zeros(n_users, dtype=self.dtype)
        b_item = np.zeros(n_items, dtype=self.dtype)
        mu = self.dtype(self._statistics[2] if self.biases else 0.0)
        # COO triples in row order, and two buffers the shuffles alternate between
        users = np.repeat(np.arange(n_users, dtype=R.indices.dtype), np.diff(R.indptr))
        source = (users, R.indices, R.data)
        buffers = [tuple(np.empty_like(a) for a in source) for _ in range(2 if self.shuffle else 1)]
        sgd = kernels("_sgd")
        threads = min(resolve_threads(self.num_threads), -(-R.nnz // MIN_RATINGS_PER_THREAD))
        # (the shuffle gives the same order for any thread count; below ~1M ratings it takes
        # under a few milliseconds on one thread, less than waking the others)
        shuffle_threads = threads if R.nnz >= 1 << 20 else 1
        self.training_rmse_history = []
        # the model holds the working arrays themselves: the kernels run between Python
        # statements, so an interrupt always leaves them at the end of an epoch
        self._publish(P, Q, b_user, b_item, copy=False)

        def epoch(e):
            nonlocal source
            if e == 0 or self.shuffle:
                target = buffers[e % len(buffers)]
                sgd.shuffle_ratings(*source, *target, epoch_seed(rng), shuffle_threads)
                source = target
            lr, lr_b, beta, beta_b = self._rates(e)
            squared_error = sgd.sgd_epoch(*source, P, Q, b_user, b_item, mu, lr, lr_b, beta,
                                          beta_b, self.biases, threads)
            # a non-finite value met by any update shows in the error sum; the arrays
            # themselves are scanned after the last epoch
            self._check_divergence(e, squared_error, lr,
                                   (P, Q, b_user, b_item) if e + 1 == self.epochs else ())
            self.training_rmse_history.append(math.sqrt(squared_error / R.nnz))
            self.clear_cache()  # the factors changed in place
            return self.training_rmse_history[-1]

        run_training("SGD", self.epochs, epoch, show_progress, callback, step_name="epoch",
                     unit="epoch", metric="training rmse")
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

    def get_params(self):
        params = super().get_params()
        if not isinstance(params["lr_decay"], numbers.Real):
            params["lr_decay"] = [float(v) for v in params["lr_decay"]]
        return params


#: the name Surprise and the notebooks use
FunkSVD = SGDMatrixFactorization


def initial_factors(rng, n_users, n_items, factors, init_std, dtype):
    """The initial (P, Q): N(0, init_std^2) entries, drawn directly in `dtype`."""
    P = rng.standard_normal((n_users, factors), dtype=dtype)
    P *= dtype(init_std)
    Q = rng.standard_normal((n_items, factors), dtype=dtype)
    Q *= dtype(init_std)
    return P, Q


def epoch_seed(rng):
    """The seed of one shuffle of the ratings, drawn from the model's generator."""
    return int(rng.integers(0, 2**63 - 1))


def _schedule(lr_decay, epochs):
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
