r"""EASE: the closed-form linear item-item model of Steck (2019).

"Embarrassingly Shallow Autoencoders for Sparse Data" learns an items x items weight matrix
B with a zero diagonal that reconstructs each user's row from the user's other items:

    minimise  |X - X B|_F^2 + lambda |B|_F^2   subject to  diag(B) = 0

whose solution, with the (regularised) precision matrix ``P = (X^T X + lambda I)^-1``, is

    B = I - P diagMat(1 / diag(P)),   i.e.  B_ij = -P_ij / P_jj  (i != j),  B_ii = 0.

A user u is scored by ``x_u B`` (their row of interactions times B), so any row of
interactions can be scored: new users need no refit. Items are compared by the partial
correlations ``rho_ij = -P_ij / sqrt(P_ii P_jj) = B_ij sqrt(P_jj / P_ii)`` (rho_ii = 1).

B is dense, so the model needs n_items^2 values in memory (and on disk); :class:`EASE`
refuses more than `max_items` items, naming the memory it would take. The Gram matrix is
accumulated from sparse column blocks, and the inverse is one LAPACK Cholesky
factorisation and inversion in place (``?potrf``, ``?potri``), BLAS-threaded with the model's
`num_threads` at most; no kernel of ours is involved. The numpy oracle is
:mod:`fastals.reference.itemitem`.

May import: numpy, scipy, tqdm, :mod:`fastals._validation`, :mod:`fastals._threads`,
:mod:`fastals.exceptions` and the model bases (:mod:`fastals.models.base`,
:class:`fastals.models.knn.UserItemsModel` for the stored interactions and users' side).
"""
from __future__ import annotations

import time

import numpy as np
import scipy.linalg
from tqdm.auto import tqdm

from fastals._threads import limited_blas, resolve_threads
from fastals._typing import DTypeLike, FitCallback, Self, SparseMatrix
from fastals._validation import as_csr, check_dtype, check_float, check_int, check_num_threads
from fastals.exceptions import ModelFitError
from fastals.models.base import check_fit_arguments
from fastals.models.knn import UserItemsModel

#: rows of the Gram matrix accumulated per sparse product (bounds its temporaries)
_GRAM_BLOCK_CELLS = 1 << 23


def dense_bytes(n_items: int, dtype) -> int:
    """Bytes of one dense n_items x n_items matrix of `dtype` (what EASE keeps)."""
    return int(n_items) ** 2 * np.dtype(dtype).itemsize


def _size(n_bytes):
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes / 1e3:.1f} kB"


class EASE(UserItemsModel):
    r"""EASE (Steck 2019): a dense item-item linear model in closed form.

    Fitting solves ``min |X - X B|_F^2 + lambda |B|_F^2`` with diag(B) = 0:
    ``B = I - P / diag(P)`` with ``P = (X^T X + lambda I)^-1``; recommending scores user u by
    ``x_u B`` over the items of u's row. Binary interactions (X = 1 where a user interacted)
    are what the model was designed for: pass counts binarised, or weighted if you mean it.

    Parameters
    ----------
    regularization : float > 0
        lambda, added to the diagonal of the Gram matrix X^T X. The default, 500, is
        Steck's value for MovieLens-20M and holds up on the data we measured
        (``bench/quality.py``; binary, 80/20 splits): nDCG@10 is flat from 300 to 1,000
        and 500 is within 1% of the best lambda of a 1-2,000 grid on MovieLens 100K
        (0.435-0.440; best 300-500) and on the demo data (``make_synthetic()``, 0.304-0.309;
        best 500), while 100 loses 4-5% and 50 8-9%. lambda acts against the diagonal of
        X^T X (the items' popularities), so data with much more popular items can
        gain from a larger value (Steck used 200-1,000 on larger data sets).
    max_items : int
        The largest number of items fitted: B is a dense n_items x n_items matrix
        (``n_items^2 * 4`` bytes in float32), and the fit needs about that much again for
        the Gram matrix. More items raise ValueError naming the memory needed; raise the
        limit if the memory is there.
    dtype : float32 or float64
        Precision of the Gram matrix, its inverse and B. float64 for a very small
        regularization (the Gram matrix's condition number grows like its largest
        eigenvalue over lambda).
    num_threads : int
        BLAS threads for the inverse (0: every core). The process's BLAS setting is
        restored after fit.

    Attributes
    ----------
    item_weights : ndarray (n_items x n_items)
        B, with a zero diagonal.
    precision_diagonal : ndarray (n_items,)
        diag(P), which turns B into the partial correlations of :meth:`similar_items`.
    user_items : scipy.sparse.csr_matrix
        The training interactions (a copy), used when recommend() gets no user_items.

    Examples
    --------
    >>> import fastals, scipy.sparse as sp
    >>> user_items = sp.random(50, 40, density=0.1, format="csr", random_state=0)
    >>> user_items.data[:] = 1
    >>> model = fastals.EASE(regularization=10).fit(user_items, show_progress=False)
    >>> ids, scores = model.recommend(0, user_items[0], N=5)
    """

    _state_names = ("item_weights", "precision_diagonal", "user_items_indptr",
                    "user_items_indices", "user_items_data", "user_items_shape")

    def __init__(self, regularization: float = 500.0, max_items: int = 20_000,
                 dtype: DTypeLike = np.float32, num_threads: int = 0) -> None:
        self.regularization = regularization
        self.max_items = max_items
        self.dtype = dtype
        self.num_threads = num_threads
        self._check_params()

    def _check_params(self):
        self.regularization = check_float("regularization", self.regularization, minimum=0,
                                          exclusive=True)
        self.max_items = check_int("max_items", self.max_items, minimum=1)
        self.dtype = check_dtype("dtype", self.dtype)
        self.num_threads = check_num_threads(self.num_threads)

    @property
    def n_items(self) -> int:
        weights = getattr(self, "item_weights", None)
        return 0 if weights is None else int(weights.shape[0])

    def fit(self, user_items: SparseMatrix, show_progress: bool = True,
            callback: FitCallback | None = None) -> Self:
        """Solve for B from `user_items` (users x items, any sparse format).

        The input is never modified; the model keeps a copy of it to score users.
        `callback(0, seconds, None)` is called once when done. Returns self.
        """
        self._check_params()
        check_fit_arguments(show_progress, callback)
        start = time.perf_counter()
        X = as_csr(user_items, "user_items", self.dtype, allow_empty=False)
        n_items = X.shape[1]
        if n_items > self.max_items:
            need = dense_bytes(n_items, self.dtype)
            raise ValueError(
                f"user_items has {n_items:,} items, more than max_items={self.max_items:,}: "
                f"EASE keeps a dense {n_items:,} x {n_items:,} {np.dtype(self.dtype).name} "
                f"matrix, {_size(need)} of memory (and about as much again while fitting); "
                f"raise max_items if the memory is there, or use RP3beta or ItemKNN, whose "
                f"similarities are sparse")
        with limited_blas(resolve_threads(self.num_threads)), \
                tqdm(total=3, disable=not show_progress, desc="EASE", unit="step") as bar:
            G = _gram(X)
            bar.update(1)
            G[np.diag_indices(n_items)] += self.regularization
            P = _inverse_in_place(G, self.regularization)
            bar.update(1)
            diagonal = np.diag(P).copy()
            P /= -diagonal[None, :]  # B_ij = -P_ij / P_jj, in place
            P[np.diag_indices(n_items)] = 0
            bar.update(1)
        self.item_weights = P
        self.precision_diagonal = diagonal
        self._keep_user_items(X, user_items)
        if callback is not None:
            callback(0, time.perf_counter() - start, None)
        return self

    def _item_block(self, candidates):
        B = self.item_weights
        return B if candidates is None else B[:, candidates]

    def _user_scores(self, userids, rows, item_block, recalculate):
        R = rows.to_scipy() if rows is not None else self._stored_user_rows(userids)
        return np.asarray(R @ item_block, dtype=self.dtype)

    def _similar_item_scores(self, ids, candidates):
        d = np.sqrt(self.precision_diagonal)
        rho = self.item_weights[ids] * (d[None, :] / d[ids, None])
        rho[np.arange(len(ids)), ids] = 1
        rho = rho.astype(self.dtype, copy=False)
        return rho if candidates is None else rho[:, candidates]

    def _restore(self, arrays, extra):
        super()._restore(arrays, extra)
        B = np.asarray(self.item_weights)
        if B.ndim != 2 or B.shape[0] != B.shape[1] or B.dtype.kind != "f" \
                or not np.isfinite(B).all():
            raise ValueError("item_weights must be a square matrix of finite numbers")
        diagonal = np.asarray(self.precision_diagonal)
        if diagonal.shape != (B.shape[0],) or diagonal.dtype.kind != "f" \
                or not (diagonal > 0).all() or not np.isfinite(diagonal).all():
            raise ValueError("precision_diagonal must hold one positive finite value per item")
        self.item_weights = np.ascontiguousarray(B, dtype=self.dtype)
        self.precision_diagonal = diagonal.astype(np.float64)


def _gram(X):
    """The dense X^T X (n_items x n_items, X's dtype) from sparse products of row blocks of
    X^T with X, so the sparse temporaries stay bounded."""
    n_items = X.shape[1]
    Xt = X.transpose().to_scipy()
    Xs = X.to_scipy()
    G = np.empty((n_items, n_items), dtype=X.data.dtype)
    step = max(1, _GRAM_BLOCK_CELLS // max(n_items, 1))
    for lo in range(0, n_items, step):
        hi = min(n_items, lo + step)
        G[lo:hi] = (Xt[lo:hi] @ Xs).toarray()
    return G


def _inverse_in_place(G, regularization):
    """The inverse of the symmetric positive definite G, overwriting G (one matrix in
    memory): Cholesky (``?potrf``) then the inverse from it (``?potri``)."""
    n = G.shape[0]
    potrf, potri = scipy.linalg.get_lapack_funcs(("potrf", "potri"), (G,))
    F = G.T  # Fortran-ordered view of the same (symmetric) memory
    factor, info = potrf(F, lower=False, overwrite_a=True, clean=False)
    if info == 0:
        inverse, info = potri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise ModelFitError(
            f"EASE: X^T X + regularization I is not numerically positive definite in "
            f"{G.dtype.name} (LAPACK info {info}) with regularization={regularization:g}: "
            "use a larger regularization or dtype=float64")
    M = inverse.T  # the C-ordered matrix: its lower triangle holds the inverse
    if not np.shares_memory(M, G):
        G[...] = M
    M = G
    step = max(1, _GRAM_BLOCK_CELLS // max(n, 1))
    for lo in range(0, n, step):  # mirror the lower triangle into the upper one
        hi = min(n, lo + step)
        M[lo:hi, hi:] = M[hi:, lo:hi].T
        block = M[lo:hi, lo:hi]
        upper = np.triu_indices(hi - lo, 1)
        block[upper] = block.T[upper]
    return M
