r"""Implicit-feedback ALS in plain numpy (Hu, Koren & Volinsky, 2008).

For an interaction matrix R (users x items) with stored values r_ui:

* confidence  c_ui = 1 + alpha |r_ui|   (c_ui = 1 where nothing is stored); with
  ``offset=0``, c_ui = alpha |r_ui| on stored values, as the `implicit` library weighs them
* preference  p_ui = 1 if r_ui > 0 else 0  (a negative value is a confident dislike)
* loss        L = sum_{u,i} c_ui (p_ui - x_u^T y_i)^2 + lambda (sum_u |x_u|^2 + sum_i |y_i|^2)

With the items fixed, each user's factor solves the normal equations

    x_u = (Y^T Y + Y^T (C^u - I) Y + lambda I)^{-1} Y^T C^u p(u)

and symmetrically for items. The CG variant (Takacs, Pilaszy & Tikk, 2011) takes a few
conjugate-gradient steps on the same system, warm-started from the current x_u.
"""
import numpy as np
import scipy.sparse as sp


def confidence_preference(values, alpha, offset=1.0):
    """(c, p) for stored values: c = offset + alpha |r|, p = [r > 0]."""
    values = np.asarray(values, dtype=np.float64)
    return offset + alpha * np.abs(values), (values > 0).astype(np.float64)


def normal_equations(user_items, u, Y, regularization, alpha, offset=1.0):
    """(A_u, b_u) of row u: A_u = Y^T C^u Y + lambda I, b_u = Y^T C^u p(u)."""
    row = sp.csr_matrix(user_items)[u]
    Y = np.asarray(Y, dtype=np.float64)
    c, p = confidence_preference(row.data, alpha, offset)
    Y_u = Y[row.indices]
    A = Y.T @ Y + (Y_u.T * (c - 1.0)) @ Y_u + regularization * np.eye(Y.shape[1])
    b = Y_u.T @ (c * p)
    return A, b


def implicit_als_exact_step(user_items, Y, regularization, alpha, offset=1.0):
    """Solve every row's normal equations exactly: the new X (float64)."""
    n_rows = user_items.shape[0]
    X = np.empty((n_rows, Y.shape[1]))
    for u in range(n_rows):
        A, b = normal_equations(user_items, u, Y, regularization, alpha, offset)
        X[u] = np.linalg.solve(A, b)
    return X


def implicit_als_cg_step(user_items, X, Y, regularization, alpha, cg_steps, offset=1.0):
    """`cg_steps` steps of conjugate gradient on each row's normal equations, from X."""
    X = np.array(X, dtype=np.float64)
    for u in range(X.shape[0]):
        A, b = normal_equations(user_items, u, Y, regularization, alpha, offset)
        x = X[u]
        r = b - A @ x
        p = r.copy()
        rs_old = r @ r
        if rs_old < 1e-20:
            continue
        for _ in range(cg_steps):
            Ap = A @ p
            step = rs_old / (p @ Ap)
            x = x + step * p
            r = r - step * Ap
            rs_new = r @ r
            if rs_new < 1e-20:
                break
            p = r + (rs_new / rs_old) * p
            rs_old = rs_new
        X[u] = x
    return X


def implicit_als_loss(user_items, X, Y, regularization, alpha, offset=1.0):
    """The full loss L above, summed over every (user, item) cell (dense: small inputs only)."""
    R = sp.csr_matrix(user_items).toarray().astype(np.float64)
    stored = sp.csr_matrix(user_items).toarray() != 0
    C = np.where(stored, offset + alpha * np.abs(R), 1.0)
    P = (R > 0).astype(np.float64)
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    return float((C * (P - X @ Y.T) ** 2).sum()
                 + regularization * ((X ** 2).sum() + (Y ** 2).sum()))


def implicit_als_fit(user_items, X, Y, regularization, alpha, iterations,
                     solver="cholesky", cg_steps=3, offset=1.0):
    """Alternate users then items for `iterations` rounds from the given X and Y."""
    user_items = sp.csr_matrix(user_items)
    item_users = user_items.T.tocsr()
    X = np.array(X, dtype=np.float64)
    Y = np.array(Y, dtype=np.float64)
    for _ in range(iterations):
        if solver == "cholesky":
            X = implicit_als_exact_step(user_items, Y, regularization, alpha, offset)
            Y = implicit_als_exact_step(item_users, X, regularization, alpha, offset)
        else:
            X = implicit_als_cg_step(user_items, X, Y, regularization, alpha, cg_steps, offset)
            Y = implicit_als_cg_step(item_users, Y, X, regularization, alpha, cg_steps, offset)
    return X, Y
