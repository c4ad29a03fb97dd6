r"""iALS as Rendle et al. parametrise it, and the iALS++ subspace step, in plain numpy.

Rendle, Krichene, Zhang & Koren, "Revisiting the Performance of iALS on Item Recommendation
Benchmarks" (RecSys 2022), eq. (1), with stored values r_ui (S the stored pairs):

    L = sum_{(u,i) in S} w_ui (p_ui - x_u . y_i)^2 + alpha_0 sum_{u,i} (x_u . y_i)^2
        + sum_u lambda_u |x_u|^2 + sum_i lambda_i |y_i|^2

* w_ui = 1 + alpha |r_ui| (alpha = 0: the paper's weight 1), p_ui = [r_ui > 0]
* alpha_0 the unobserved weight: every pair, stored or not, is pulled towards 0 with it
  (the second sum is alpha_0 x_u^T (Y^T Y) x_u per user: the Gram trick)
* lambda_u = lambda (n_u + alpha_0 n_items)^nu, lambda_i = lambda (n_i + alpha_0 n_users)^nu

With Y fixed, row u minimises x^T A_u x - 2 b_u^T x with

    A_u = alpha_0 Y^T Y + lambda_u I + sum_{i in S_u} w_ui y_i y_i^T,  b_u = sum w_ui p_ui y_i

The general row system, shared with Hu, Koren & Volinsky's ALS (``gram_weight`` 1,
``gram`` = Y^T Y + lambda I, w = c), is A_u = gram + s_u I + sum_i (w_ui - gram_weight)
y_i y_i^T and b_u = sum_i w_ui p_ui y_i, with w = offset + alpha |r|.

The iALS++ step (Rendle et al. 2021, "iALS++: Speeding up Matrix Factorization with
Subspace Optimization") minimises each row's f_u exactly over one block B of coordinates at
a time, the others fixed: x_B += A_u[B, B]^{-1} (b_u - A_u x_u)[B], for B = [0, block),
[block, 2 block), ...  With block >= F that is the exact solve x_u = A_u^{-1} b_u.

Imports numpy and scipy only.
"""
import numpy as np
import scipy.sparse as sp


def rendle_regularization(counts, n_other, regularization, unobserved_weight, exponent):
    """lambda (n + alpha_0 n_other)^nu per row (n: the row's stored values)."""
    counts = np.asarray(counts, dtype=np.float64)
    return regularization * (counts + unobserved_weight * n_other) ** exponent


def row_system(row, Y, gram, shift, alpha, offset=1.0, gram_weight=1.0):
    """(A_u, b_u) of one CSR row: A = gram + shift I + sum (w - gram_weight) y y^T,
    b = sum w p y, with w = offset + alpha |r|, p = [r > 0]."""
    Y = np.asarray(Y, dtype=np.float64)
    values = np.asarray(row.data, dtype=np.float64)
    w = offset + alpha * np.abs(values)
    p = (values > 0).astype(np.float64)
    Y_u = Y[row.indices]
    A = np.asarray(gram, dtype=np.float64) + shift * np.eye(Y.shape[1]) \
        + (Y_u.T * (w - gram_weight)) @ Y_u
    return A, Y_u.T @ (w * p)


def subspace_step(user_items, X, Y, gram, shifts, alpha, block_size, offset=1.0,
                  gram_weight=1.0):
    """One iALS++ pass over every row of X (a new float64 array): for each row, the blocks
    of `block_size` coordinates in order, each solved exactly with the others fixed.
    `shifts` holds s_u per row (or None for zeros)."""
    user_items = sp.csr_matrix(user_items)
    X = np.array(X, dtype=np.float64)
    F = X.shape[1]
    for u in range(X.shape[0]):
        shift = 0.0 if shifts is None else float(shifts[u])
        A, b = row_system(user_items[u], Y, gram, shift, alpha, offset, gram_weight)
        x = X[u]
        for lo in range(0, F, block_size):
            block = slice(lo, min(lo + block_size, F))
            x[block] += np.linalg.solve(A[block, block], (b - A @ x)[block])
    return X


def row_objectives(user_items, X, Y, gram, shifts, alpha, offset=1.0, gram_weight=1.0):
    """x_u^T A_u x_u - 2 b_u^T x_u + sum_i w_ui p_ui per row: the row's part of the loss
    (what the kernel's `objective` output holds)."""
    user_items = sp.csr_matrix(user_items)
    out = np.empty(X.shape[0])
    for u in range(X.shape[0]):
        shift = 0.0 if shifts is None else float(shifts[u])
        row = user_items[u]
        A, b = row_system(row, Y, gram, shift, alpha, offset, gram_weight)
        x = np.asarray(X[u], dtype=np.float64)
        w = offset + alpha * np.abs(row.data)
        out[u] = x @ A @ x - 2 * b @ x + (w * (row.data > 0)).sum()
    return out


def ials_loss(user_items, X, Y, regularization, unobserved_weight, exponent, alpha=0.0):
    """The loss L above, summed over every (user, item) cell (dense: small inputs only)."""
    R = sp.csr_matrix(user_items)
    dense = R.toarray().astype(np.float64)
    stored = dense != 0
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    predictions = X @ Y.T
    w = 1.0 + alpha * np.abs(dense)
    p = (dense > 0).astype(np.float64)
    n_users, n_items = R.shape
    lambda_u = rendle_regularization(stored.sum(1), n_items, regularization,
                                     unobserved_weight, exponent)
    lambda_i = rendle_regularization(stored.sum(0), n_users, regularization,
                                     unobserved_weight, exponent)
    return float((stored * w * (p - predictions) ** 2).sum()
                 + unobserved_weight * (predictions ** 2).sum()
                 + lambda_u @ (X ** 2).sum(1) + lambda_i @ (Y ** 2).sum(1))


def ials_fit(user_items, X, Y, regularization, unobserved_weight, exponent, iterations,
             block_size, alpha=0.0):
    """Alternate iALS++ passes over the users, then the items, `iterations` times."""
    user_items = sp.csr_matrix(user_items)
    item_users = user_items.T.tocsr()
    X = np.array(X, dtype=np.float64)
    Y = np.array(Y, dtype=np.float64)
    n_users, n_items = user_items.shape
    for _ in range(iterations):
        for rows, own, other, n_other in ((user_items, "X", "Y", n_items),
                                          (item_users, "Y", "X", n_users)):
            fixed = Y if other == "Y" else X
            solved = X if own == "X" else Y
            shifts = rendle_regularization(np.diff(rows.indptr), n_other, regularization,
                                           unobserved_weight, exponent)
            new = subspace_step(rows, solved, fixed, unobserved_weight * fixed.T @ fixed,
                                shifts, alpha, block_size, offset=1.0, gram_weight=0.0)
            if own == "X":
                X = new
            else:
                Y = new
    return X, Y
