r"""Explicit-ratings matrix factorisation in plain numpy: ALS (ridge, ALS-WR, NNLS) and SGD.

For a ratings matrix R (users x items) whose *stored* entries r_ui are the observed ratings
(an explicit zero is a rating), a model predicts

    r^_ui = mu + b_u + b_i + x_u . y_i          (mu = b_u = b_i = 0 without biases)

**ALS** minimises over the observed entries only

    L = sum_obs (r_ui - r^_ui)^2
        + sum_u s_u (lambda_U |x_u|^2 + lambda_bU b_u^2) + sum_i s_i (lambda_I |y_i|^2 + lambda_bI b_i^2)

with s_u = n_u (the row's number of ratings) under weighted regularisation (ALS-WR, Zhou et
al. 2008, as Spark MLlib does) and s_u = 1 otherwise; mu is the mean rating, kept fixed.
With the items fixed, user u's unknowns w = [x_u, b_u] solve the ridge system

    (Z_u^T Z_u + s_u diag(lambda_U, ..., lambda_U, lambda_bU)) w = Z_u^T t_u,
    Z_u rows z_j = [y_j, 1],  t_uj = r_uj - mu - c_j

(without biases z_j = y_j and w = x_u). ``nonnegative=True`` keeps x_u >= 0 (the bias
stays free): the same quadratic minimised over that set (NNLS, as Spark's ``nonnegative``).
A row without ratings gets x_u = 0, b_u = 0.

**SGD** (Funk 2006; Au Yeung 2010) visits the ratings in a given order and, for each,

    e = r_ui - r^_ui
    b_u += lr_b (2 e - beta_b b_u);  b_i += lr_b (2 e - beta_b b_i)
    x_u += lr (2 e y_i - beta x_u);  y_i += lr (2 e x_u - beta y_i)   (both from the old values)
"""
import numpy as np
import scipy.optimize
import scipy.sparse as sp


def _csr(ratings):
    """CSR of the ratings, keeping explicit zeros (they are ratings)."""
    return sp.csr_matrix(ratings)


def explicit_als_normal_equations(ratings, u, Y, y_bias, mu, regularization,
                                  bias_regularization, weighted, biases):
    """(A_u, b_u, Z_u, t_u, penalty) for row u against the fixed Y (module docstring)."""
    row = _csr(ratings)[u]
    Y = np.asarray(Y, dtype=np.float64)
    Z = Y[row.indices]
    t = row.data.astype(np.float64)
    penalty = np.full(Y.shape[1], float(regularization))
    if biases:
        Z = np.hstack([Z, np.ones((len(t), 1))])
        t = t - mu - np.asarray(y_bias, dtype=np.float64)[row.indices]
        penalty = np.append(penalty, float(bias_regularization))
    penalty = penalty * (len(t) if weighted else 1)
    return Z.T @ Z + np.diag(penalty), Z.T @ t, Z, t, penalty


def _nonnegative_ridge(Z, t, penalty, n_constrained):
    """argmin_{w[:n_constrained] >= 0} |Z w - t|^2 + sum penalty w^2, by scipy's exact NNLS.

    Free coordinates are split into w+ - w- (both >= 0); at the optimum one of them is 0, so
    the penalty on the split pair equals the penalty on w.
    """
    D = Z.shape[1]
    free = list(range(n_constrained, D))
    columns = np.hstack([Z, -Z[:, free]])
    root = np.sqrt(penalty)
    ridge = np.hstack([np.diag(root), -np.diag(root)[:, free]])
    design = np.vstack([columns, ridge])
    target = np.concatenate([t, np.zeros(D)])
    solution, _ = scipy.optimize.nnls(design, target, maxiter=50 * design.shape[1])
    w = solution[:D].copy()
    w[free] -= solution[D:]
    return w


def explicit_als_step(ratings, Y, y_bias, mu, regularization, bias_regularization=None,
                      weighted=False, biases=True, nonnegative=False):
    """Solve every row of `ratings` against fixed (Y, y_bias): returns (X, x_bias) in float64."""
    ratings = _csr(ratings)
    if bias_regularization is None:
        bias_regularization = regularization
    n_rows, K = ratings.shape[0], np.shape(Y)[1]
    X = np.zeros((n_rows, K))
    x_bias = np.zeros(n_rows)
    for u in range(n_rows):
        if ratings.indptr[u + 1] == ratings.indptr[u]:
            continue
        A, b, Z, t, penalty = explicit_als_normal_equations(
            ratings, u, Y, y_bias, mu, regularization, bias_regularization, weighted, biases)
        w = _nonnegative_ridge(Z, t, penalty, K) if nonnegative else np.linalg.solve(A, b)
        X[u] = w[:K]
        if biases:
            x_bias[u] = w[K]
    return X, x_bias


def explicit_predict(users, items, X, x_bias, Y, y_bias, mu):
    """r^ for each (users[k], items[k]) pair."""
    users, items = np.asarray(users), np.asarray(items)
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    return (mu + np.asarray(x_bias, dtype=np.float64)[users]
            + np.asarray(y_bias, dtype=np.float64)[items] + np.sum(X[users] * Y[items], axis=1))


def explicit_als_loss(ratings, X, x_bias, Y, y_bias, mu, regularization,
                      bias_regularization=None, weighted=False):
    """L of the module docstring. `regularization` (and bias_regularization) may be a
    (user, item) pair; bias_regularization defaults to regularization."""
    ratings = _csr(ratings)
    reg_u, reg_i = np.broadcast_to(np.asarray(regularization, dtype=np.float64), (2,))
    if bias_regularization is None:
        bias_regularization = (reg_u, reg_i)
    breg_u, breg_i = np.broadcast_to(np.asarray(bias_regularization, dtype=np.float64), (2,))
    coo = ratings.tocoo()
    errors = coo.data - explicit_predict(coo.row, coo.col, X, x_bias, Y, y_bias, mu)
    s_u = np.diff(ratings.indptr) if weighted else np.ones(ratings.shape[0])
    s_i = np.bincount(coo.col, minlength=ratings.shape[1]) if weighted \
        else np.ones(ratings.shape[1])
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    x_bias, y_bias = np.asarray(x_bias, dtype=np.float64), np.asarray(y_bias, dtype=np.float64)
    return float(errors @ errors
                 + s_u @ (reg_u * np.sum(X ** 2, axis=1) + breg_u * x_bias ** 2)
                 + s_i @ (reg_i * np.sum(Y ** 2, axis=1) + breg_i * y_bias ** 2))


def explicit_als_fit(ratings, Y, iterations, regularization, bias_regularization=None,
                     weighted=False, biases=True, nonnegative=False):
    """Alternate users then items from the item factors Y (item biases start at 0).

    `regularization` / `bias_regularization` may be (user, item) pairs. Returns
    (X, x_bias, Y, y_bias, mu) in float64; mu is the mean rating with biases, else 0.
    """
    ratings = _csr(ratings)
    transposed = _csr(ratings.T)
    reg_u, reg_i = np.broadcast_to(np.asarray(regularization, dtype=np.float64), (2,))
    if bias_regularization is None:
        bias_regularization = (reg_u, reg_i)
    breg_u, breg_i = np.broadcast_to(np.asarray(bias_regularization, dtype=np.float64), (2,))
    mu = float(ratings.data.mean()) if biases else 0.0
    Y = np.array(Y, dtype=np.float64)
    y_bias = np.zeros(ratings.shape[1])
    X, x_bias = np.zeros((ratings.shape[0], Y.shape[1])), np.zeros(ratings.shape[0])
    for _ in range(iterations):
        X, x_bias = explicit_als_step(ratings, Y, y_bias, mu, reg_u, breg_u, weighted, biases,
                                      nonnegative)
        Y, y_bias = explicit_als_step(transposed, X, x_bias, mu, reg_i, breg_i, weighted,
                                      biases, nonnegative)
    return X, x_bias, Y, y_bias, mu


def sgd_epoch(users, items, ratings, P, Q, user_bias, item_bias, mu, learning_rate,
              regularization, bias_learning_rate=None, bias_regularization=None, biases=True):
    """One SGD pass over the ratings in the given order (module docstring).

    Returns (P, Q, user_bias, item_bias, squared_error) as new float64 arrays, where
    squared_error sums e^2 measured just before each update.
    """
    P, Q = np.array(P, dtype=np.float64), np.array(Q, dtype=np.float64)
    b_user = np.array(user_bias, dtype=np.float64)
    b_item = np.array(item_bias, dtype=np.float64)
    lr, beta = float(learning_rate), float(regularization)
    lr_b = lr if bias_learning_rate is None else float(bias_learning_rate)
    beta_b = beta if bias_regularization is None else float(bias_regularization)
    squared_error = 0.0
    for u, i, r in zip(np.asarray(users), np.asarray(items), np.asarray(ratings, dtype=np.float64)):
        p, q = P[u].copy(), Q[i].copy()
        prediction = (mu + b_user[u] + b_item[i] + p @ q) if biases else p @ q
        e = r - prediction
        squared_error += e * e
        if biases:
            b_user[u] += lr_b * (2 * e - beta_b * b_user[u])
            b_item[i] += lr_b * (2 * e - beta_b * b_item[i])
        P[u] = p + lr * (2 * e * q - beta * p)
        Q[i] = q + lr * (2 * e * p - beta * q)
    return P, Q, b_user, b_item, squared_error
