r"""EASE and RP3beta, the item-item models whose scores are ``user_items @ B``, in numpy.

Dense and direct (every matrix is n_items x n_items), for small inputs only. X is the
users x items matrix of stored values r_ui.

* EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"): minimise
  ``|X - X B|_F^2 + lambda |B|_F^2`` subject to diag(B) = 0. With the precision matrix
  ``P = (X^T X + lambda I)^-1`` the solution is ``B = I - P diagMat(1 / diag(P))``, i.e.
  ``B_ij = -P_ij / P_jj`` off the diagonal and ``B_ii = 0``. Items are compared by the
  partial correlations ``rho_ij = -P_ij / sqrt(P_ii P_jj)`` (rho_ii = 1), the symmetric form
  of B: ``rho_ij = B_ij sqrt(P_jj / P_ii)``.
* RP3beta (Paudel, Christoffel, Newell & Bernstein 2017, "Updatable, accurate, diverse, and
  scalable recommendations for interactive applications"): a three-step random walk
  user -> item -> user -> item on the bipartite graph, with transition probabilities
  ``P_ui = r_ui / sum_j r_uj`` (users to items, by value) and ``P_iu = 1 / n_i`` (items to
  their n_i users, uniformly), each stored probability raised to the power alpha, and the
  arrival item j penalised by its popularity: ``W_ij = (P_iu^alpha P_ui^alpha)_ij / n_j^beta``.
  Each item keeps its K largest ``W_ij`` (j != i), optionally divided by their sum (l1
  row normalisation), as in the reference implementation of Dacrema et al. (2019,
  "Are we really making much progress?").

May import: numpy, scipy and the rest of :mod:`fastals.reference`.
"""
import numpy as np
import scipy.sparse as sp

from fastals.reference.similarity import top_k


def _dense(X):
    return np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float64)


def ease_precision(X, regularization):
    """P = (X^T X + lambda I)^-1 by a dense numpy solve."""
    X = _dense(X)
    G = X.T @ X + regularization * np.eye(X.shape[1])
    return np.linalg.solve(G, np.eye(X.shape[1]))


def ease_weights(X, regularization):
    """EASE's B = I - P / diag(P) (columns divided by P_jj): zero diagonal."""
    P = ease_precision(X, regularization)
    return np.eye(P.shape[0]) - P / np.diag(P)[None, :]


def ease_similarity(X, regularization):
    """The partial correlations rho_ij = -P_ij / sqrt(P_ii P_jj), with rho_ii = 1."""
    P = ease_precision(X, regularization)
    d = np.sqrt(np.diag(P))
    rho = -P / d[:, None] / d[None, :]
    np.fill_diagonal(rho, 1.0)
    return rho


def rp3beta_walk(X, alpha=1.0, beta=0.6):
    """The dense items x items W_ij = (P_iu^alpha P_ui^alpha)_ij / n_j^beta, diagonal kept.

    Only stored entries are transition probabilities (and raised to alpha): an entry that is
    not stored stays 0 even for alpha = 0. Items without users get a penalty of 0.
    """
    R = _dense(X)
    stored = R != 0
    n_u = R.sum(axis=1)
    n_i = stored.sum(axis=0).astype(np.float64)
    P_ui = np.where(stored, R / np.where(n_u > 0, n_u, 1)[:, None], 0.0)
    P_iu = np.where(stored.T, 1.0 / np.where(n_i > 0, n_i, 1)[:, None], 0.0)
    P_ui = np.where(stored, P_ui ** alpha, 0.0)
    P_iu = np.where(stored.T, P_iu ** alpha, 0.0)
    penalty = np.where(n_i > 0, np.where(n_i > 0, n_i, 1) ** -beta, 0.0)
    return (P_iu @ P_ui) * penalty[None, :]


def rp3beta_similarity(X, alpha=1.0, beta=0.6, K=100, normalize_similarity=False):
    """(RP3beta's sparse W with each item's K best neighbours j != i, W_ii per item).

    With `normalize_similarity` every row (and its W_ii) is divided by the sum of the row's
    K kept values, when that sum is positive.
    """
    W = rp3beta_walk(X, alpha, beta)
    diagonal = np.diag(W).copy()
    S = top_k(W, K, skip_self=True).tocsr()
    if normalize_similarity:
        sums = np.asarray(S.sum(axis=1)).ravel()
        scale = np.divide(1.0, sums, out=np.ones_like(sums), where=sums > 0)
        S = sp.csr_matrix(sp.diags(scale) @ S)
        diagonal = diagonal * scale
    return S, diagonal
