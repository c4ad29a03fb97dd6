r"""What the explicit-ratings models share: prediction, evaluation, ranking, fold-in, save/load.

A model of explicit ratings (stars, scores) predicts

    r^_ui = mu + b_u + b_i + x_u . y_i        (mu, b_u, b_i are 0 without biases)

where mu is the mean training rating, b_u / b_i the user / item biases and x_u / y_i the
factors. Ratings are the *stored* entries of a sparse matrix: an explicit zero is a rating
of 0, and a (user, item) pair stored twice is an error rather than a silent sum.

Users or items that had no rating in training (or ids beyond the training matrix) are
*unknown*: :meth:`ExplicitFactorizationBase.predict` gives them the baseline (mu plus the
biases that are known) and says so, with a mask (``return_known=True``) or a warning.

For ranking (:meth:`recommend`), the biases enter the scores by augmenting the factors,
[x_u, 1, mu + b_u] . [y_i, b_i, 1] = r^_ui, so the shared top-N kernel ranks by predicted
rating. :meth:`similar_items` compares the factors only (cosine), as for every model.

Imports the kernels, fastals' validation and threading helpers and fastals.models (base,
factorization, blocksolve).
"""
from __future__ import annotations

import logging
import warnings

import numpy as np

from fastals._kernels import checked
from fastals._kernels.dispatch import kernels
from fastals._threads import resolve_threads
from fastals._typing import Indices, SparseMatrix
from fastals._validation import as_ratings, check_bool, check_ids
from fastals.exceptions import ModelFitError
from fastals.models.base import FactorScores
from fastals.models.blocksolve import ExplicitBlockSolver, publish_explicit
from fastals.models.factorization import MatrixFactorizationBase

log = logging.getLogger("fastals")

_ANY_ID = np.iinfo(np.int64).max


class ExplicitFactorizationBase(MatrixFactorizationBase):
    """Base of the explicit-ratings models (ExplicitALS, SGDMatrixFactorization).

    Attributes (after fit)
    ----------------------
    user_factors, item_factors : ndarray (n, factors)
    user_bias, item_bias : ndarray (n,)   (zeros for a model without biases)
    user_counts, item_counts : ndarray (n,)   training ratings per user / item
    global_mean : float   mean training rating (the baseline of unknown users and items)
    rating_range : (float, float)   smallest and largest training rating (``clip`` bounds)
    """

    _state_names = ("user_factors", "item_factors", "user_bias", "item_bias",
                    "user_counts", "item_counts")
    _stored_zeros_are_data = True
    user_bias: np.ndarray | None = None
    item_bias: np.ndarray | None = None
    user_counts: np.ndarray | None = None
    item_counts: np.ndarray | None = None
    global_mean: float = 0.0
    rating_range: tuple[float, float] = (0.0, 0.0)

    # --- shared by the fit() of subclasses ----------------------------------------------------
    def _training_ratings(self, ratings):
        """The ratings as a CSR in the model dtype, and the statistics the model keeps."""
        R = as_ratings(ratings, "ratings", self.dtype)
        self._statistics = (
            np.diff(R.indptr).astype(np.int64),
            column_counts(R),
            float(np.mean(R.data, dtype=np.float64)),
            (float(R.data.min()), float(R.data.max())),
        )
        return R

    def _publish(self, X, Y, x_bias, y_bias, copy=True):
        """Make the given arrays (or copies of them) the fitted state."""
        publish_explicit(self, X, Y, x_bias, y_bias, self._statistics, copy)

    @property
    def _mu(self):
        """The mu of the prediction formula: the global mean with biases, else 0."""
        return self.global_mean if self.biases else 0.0

    # --- prediction --------------------------------------------------------------------------
    def predict(self, user_ids: Indices, item_ids: Indices, clip: bool = True,
                return_known: bool = False
                ) -> float | np.ndarray | tuple[float, bool] | tuple[np.ndarray, np.ndarray]:
        """Predicted ratings of (user, item) pairs, vectorised.

        Parameters
        ----------
        user_ids, item_ids : int or 1-D arrays of int
            Equally long arrays (or a scalar with an array: it is repeated).
        clip : bool
            Clip to the range of the training ratings (`rating_range`).
        return_known : bool
            Also return a boolean array, False where the user or the item is unknown.

        Unknown users or items (ids with no training rating, including ids beyond the
        training matrix) get the baseline: global mean plus the bias of whichever side is
        known. Without ``return_known`` a warning says how many pairs used it. Negative or
        non-integer ids raise an error.

        Returns
        -------
        float64 array (a float for two scalars), and with ``return_known`` the mask.
        """
        self._check_fitted()
        clip = check_bool("clip", clip)
        return_known = check_bool("return_known", return_known)
        users, user_scalar = check_ids("user_ids", user_ids, _ANY_ID)
        items, item_scalar = check_ids("item_ids", item_ids, _ANY_ID)
        if users.size != items.size:
            if user_scalar:
                users = np.repeat(users, items.size)
            elif item_scalar:
                items = np.repeat(items, users.size)
            else:
                raise ValueError(f"user_ids and item_ids must have the same length, got "
                                 f"{users.size} and {items.size}")
        predictions, known = self._predict_pairs(users, items, clip)
        if not return_known and not known.all():
            warnings.warn(
                f"{int((~known).sum())} of {known.size} (user, item) pairs involve a user or "
                "item without training ratings; they were predicted from the baseline (global "
                "mean + known bias). Pass return_known=True to get the mask.", stacklevel=2)
        if user_scalar and item_scalar:
            return (float(predictions[0]), bool(known[0])) if return_known \
                else float(predictions[0])
        return (predictions, known) if return_known else predictions

    def _predict_pairs(self, users, items, clip):
        """(float64 predictions, known mask) for validated non-negative id arrays."""
        known_user = users < self.n_users
        known_user[known_user] = self.user_counts[users[known_user]] > 0
        known_item = items < self.n_items
        known_item[known_item] = self.item_counts[items[known_item]] > 0
        known = known_user & known_item
        out = np.full(users.size, self.global_mean, dtype=np.float64)
        if self.biases:
            out[known_user] += self.user_bias[users[known_user]]
            out[known_item] += self.item_bias[items[known_item]]
        if known.any():
            block = np.empty(int(known.sum()), dtype=self.dtype)
            kernels("_explicit").predict_pairs(
                np.ascontiguousarray(users[known]), np.ascontiguousarray(items[known]),
                self.user_factors, self.item_factors, self.user_bias, self.item_bias,
                self.dtype(self._mu), block, resolve_threads(self.num_threads))
            out[known] = block
        if not np.isfinite(out).all():
            raise ModelFitError("the model holds non-finite values; refit it")
        if clip:
            np.clip(out, *self.rating_range, out=out)
        return out, known

    # --- evaluation ----------------------------------------------------------------------------
    def evaluate(self, ratings: SparseMatrix, clip: bool = True) -> dict[str, float]:
        """RMSE and MAE on the stored ratings of a users x items test matrix.

        Returns a dict with ``rmse``, ``mae``, ``n_ratings`` and ``n_unknown`` (ratings of
        users or items unknown in training, predicted from the baseline). The test matrix
        may be larger than the training one: the extra users and items are unknown.
        """
        self._check_fitted()
        test = as_ratings(ratings, "ratings", np.float64)
        users = np.repeat(np.arange(test.shape[0], dtype=np.int64), np.diff(test.indptr))
        items = test.indices.astype(np.int64)
        predictions, known = self._predict_pairs(users, items, check_bool("clip", clip))
        errors = test.data - predictions
        n_unknown = int((~known).sum())
        if n_unknown:
            log.info("%s.evaluate: %d of %d test ratings involve unknown users or items "
                     "(baseline predictions)", type(self).__name__, n_unknown, errors.size)
        return {"rmse": float(np.sqrt(np.mean(np.square(errors)))),
                "mae": float(np.mean(np.abs(errors))),
                "n_ratings": int(errors.size), "n_unknown": n_unknown}

    def rmse(self, ratings: SparseMatrix, clip: bool = True) -> float:
        """Root mean squared error on the stored ratings of a test matrix (see evaluate)."""
        return self.evaluate(ratings, clip)["rmse"]

    def mae(self, ratings: SparseMatrix, clip: bool = True) -> float:
        """Mean absolute error on the stored ratings of a test matrix (see evaluate)."""
        return self.evaluate(ratings, clip)["mae"]

    # --- ranking: biases enter through augmented factors -------------------------------------
    def _item_block(self, candidates):
        """[y_i, b_i, 1] per candidate item, transposed (the top-N kernel's layout)."""
        if candidates is None:
            return self._derived("items_augmented_t", self.item_factors,
                                 lambda _: self._augmented_items(None))
        return self._augmented_items(candidates)

    def _augmented_items(self, candidates):
        Y, c = self.item_factors, self.item_bias
        if candidates is not None:
            Y, c = Y[candidates], c[candidates]
        if self.biases:
            Y = augmented_items(Y, c)
        return np.ascontiguousarray(Y.T)

    def _user_scores(self, userids, rows, item_block, recalculate):
        """[x_u, 1, mu + b_u] . [y_i, b_i, 1] = the predicted rating, unclipped."""
        if recalculate:
            X, b = self._recalculate_users(rows)
        else:
            X, b = self.user_factors[userids], self.user_bias[userids]
        if self.biases:
            X = augmented_users(X, b, self.global_mean)
        return FactorScores(X, item_block)

    # --- fold-in -------------------------------------------------------------------------------
    def _fold_in_regularization(self):
        """(regularization, bias_regularization, weighted) of a user's ridge fold-in."""
        raise NotImplementedError

    def _recalculate_users(self, rows):
        """Factors and biases of users with the given ratings rows, solved against the items."""
        reg, reg_bias, weighted = self._fold_in_regularization()
        X = np.zeros((rows.shape[0], self.factors), dtype=self.dtype)
        b = np.zeros(rows.shape[0], dtype=self.dtype)
        solver = ExplicitBlockSolver(reg, reg_bias, weighted, self.biases,
                                     bool(getattr(self, "nonnegative", False)), self._mu,
                                     self.dtype, diagnose_overflow=False)
        solver.solve_block(rows, self.item_factors, self.item_bias, X, b,
                           resolve_threads(self.num_threads), "user")
        return X, b

    # --- save / load ---------------------------------------------------------------------------
    def _extra_state(self):
        return {"global_mean": self.global_mean, "rating_range": list(self.rating_range)}

    def _restore(self, arrays, extra):
        super()._restore(arrays, extra)
        n = {"user": self.user_factors.shape[0], "item": self.item_factors.shape[0]}
        for side in ("user", "item"):
            factors = getattr(self, f"{side}_factors")
            if factors.ndim != 2 or factors.shape[1] != self.factors:
                raise ValueError(f"{side}_factors must be an (n, {self.factors}) array")
            for name in (f"{side}_bias", f"{side}_counts"):
                if getattr(self, name).shape != (n[side],):
                    raise ValueError(f"{name} must have {n[side]} values")
            for name in (f"{side}_factors", f"{side}_bias"):
                value = np.ascontiguousarray(getattr(self, name), dtype=self.dtype)
                if not np.isfinite(value).all():
                    raise ValueError(f"{name} holds non-finite values")
                setattr(self, name, value)
            setattr(self, f"{side}_counts", getattr(self, f"{side}_counts").astype(np.int64))
        self.global_mean = float(extra["global_mean"])
        low, high = (float(v) for v in extra["rating_range"])
        if not (np.isfinite(self.global_mean) and low <= high):
            raise ValueError("global_mean / rating_range are invalid")
        self.rating_range = (low, high)


__all__ = ["ExplicitFactorizationBase"]


def augmented_users(X, user_bias, global_mean):
    """[x_u, 1, mu + b_u] per user: its dot product with :func:`augmented_items`'s
    [y_i, b_i, 1] is the predicted rating mu + b_u + b_i + x_u . y_i."""
    shifted = (global_mean + user_bias.astype(np.float64))[:, None].astype(X.dtype)
    return np.hstack([X, np.ones((len(user_bias), 1), dtype=X.dtype), shifted])


def augmented_items(Y, item_bias):
    """[y_i, b_i, 1] per item (see :func:`augmented_users`)."""
    return np.hstack([Y, item_bias[:, None], np.ones((len(item_bias), 1), dtype=Y.dtype)])


def column_counts(R):
    """Stored values per column of a CSR (int64), without widening its indices."""
    counts = np.zeros(R.shape[1], dtype=np.int64)
    checked.column_counts(R.indices, counts)
    return counts
