"""The all-users top-N in plain numpy: the oracle of fastals._kernels._retrieval.

For every user u, the N items i with the largest r^_ui = x_u . y_i, best first, leaving out
the items of u's row of `exclude` (already liked) and the `blocked` ones; ties go to the
lower item, NaN and -inf scores are never returned, short rows are padded with id -1 and
score -inf. The scores are computed densely, one user at a time.

May import: numpy, scipy.
"""
import numpy as np


def top_n_dot(X, Y, N, exclude=None, blocked=None):
    """(ids, scores), n_users x min(N, n_items), of the top-N of X @ Y.T per row.

    X is n_users x F, Y is n_items x F; `exclude` a users x items scipy sparse matrix (its
    stored entries are excluded) or None; `blocked` a bool mask over the items or None.
    """
    n_users, n_items = X.shape[0], Y.shape[0]
    width = min(N, n_items)
    ids = np.full((n_users, width), -1, dtype=np.int64)
    scores = np.full((n_users, width), -np.inf, dtype=X.dtype)
    exclude = None if exclude is None else exclude.tocsr()
    for u in range(n_users):
        r = (Y @ X[u]).astype(X.dtype)
        allowed = r > -np.inf  # (False for NaN)
        if exclude is not None:
            allowed[exclude.indices[exclude.indptr[u]:exclude.indptr[u + 1]]] = False
        if blocked is not None:
            allowed &= ~np.asarray(blocked, dtype=bool)
        candidates = np.flatnonzero(allowed)
        order = np.lexsort((candidates, -r[candidates]))[:width]  # best score, then lower id
        ids[u, :len(order)] = candidates[order]
        scores[u, :len(order)] = r[candidates[order]]
    return ids, scores
