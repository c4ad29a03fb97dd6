r"""Row similarities, their top-K, term weightings and user-based prediction in plain numpy.

Dense and direct: every function forms the full n_a x n_b matrix, so use them on small
inputs only. For rows a (of A) and b (of B), with f columns:

* dot      a . b
* cosine   a . b / (|a| |b|)                     (0 when a or b is all-zero)
* pearson  np.corrcoef(a, b): the cosine of a - mean(a) and b - mean(b), the means taken
           over all f entries, missing ones counting as 0  (0 when a or b is constant)
* jaccard  |a & b| / |a | b| over the sets of non-zero columns  (0 when both are empty)

top-K keeps, per row, the K largest non-zero similarities (equal ones: lower column first).
"""
import numpy as np
import scipy.sparse as sp


def _dense(X):
    return np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float64)


def similarity_matrix(A, B=None, similarity="cosine"):
    """The dense n_a x n_b matrix of similarities between the rows of A and of B (B = A)."""
    A = _dense(A)
    B = A if B is None else _dense(B)
    if similarity == "dot":
        return A @ B.T
    if similarity == "cosine":
        return _cosine(A, B)
    if similarity == "pearson":
        with np.errstate(divide="ignore", invalid="ignore"):
            S = np.corrcoef(A, B)[:len(A), len(A):] if len(A) and len(B) else np.zeros((len(A), len(B)))
        return np.nan_to_num(S, nan=0.0)
    if similarity == "jaccard":
        A, B = (A != 0).astype(np.float64), (B != 0).astype(np.float64)
        shared = A @ B.T
        union = A.sum(axis=1)[:, None] + B.sum(axis=1)[None, :] - shared
        return np.divide(shared, union, out=np.zeros_like(shared), where=union > 0)
    raise ValueError(f"unknown similarity {similarity!r}")


def _cosine(A, B):
    norm_a, norm_b = np.linalg.norm(A, axis=1), np.linalg.norm(B, axis=1)
    denominator = norm_a[:, None] * norm_b[None, :]
    dots = A @ B.T
    return np.divide(dots, denominator, out=np.zeros_like(dots), where=denominator > 0)


def top_k(S, K, skip_self=False):
    """Keep each row's K largest non-zero entries of a dense S: a CSR sorted by column.

    Ties go to the lower column; with `skip_self`, entry (i, i) is never kept.
    """
    S = np.asarray(S, dtype=np.float64)
    rows, cols, vals = [], [], []
    for i, row in enumerate(S):
        candidates = [j for j in np.flatnonzero(row) if not (skip_self and j == i)]
        best = sorted(candidates, key=lambda j: (-row[j], j))[:K]
        for j in sorted(best):
            rows.append(i)
            cols.append(j)
            vals.append(row[j])
    return sp.csr_matrix((vals, (rows, cols)), shape=S.shape)


def top_k_similarity(A, B=None, K=20, similarity="cosine", skip_self=None):
    """top_k(similarity_matrix(A, B)); the diagonal is skipped by default when B is A."""
    skip_self = B is None if skip_self is None else skip_self
    return top_k(similarity_matrix(A, B, similarity), K, skip_self)


def tfidf_weight(X):
    """TF-IDF of a documents x terms count matrix, as `implicit` defines it.

    tf = sqrt(count), idf(term) = log(n_documents) - log(1 + documents containing the term).
    """
    X = _dense(X)
    n_docs = X.shape[0]
    idf = np.log(n_docs) - np.log1p((X != 0).sum(axis=0))
    return np.sqrt(X) * idf[None, :]


def bm25_weight(X, K1=1.2, B=0.75):
    """Okapi BM25 of a documents x terms count matrix, as `implicit` defines it.

    w = count (K1 + 1) / (K1 length_norm + count) idf, with length_norm = 1 - B + B
    length / mean length, length = the document's total count, idf as in TF-IDF.
    """
    X = _dense(X)
    n_docs = X.shape[0]
    idf = np.log(n_docs) - np.log1p((X != 0).sum(axis=0))
    length = X.sum(axis=1)
    length_norm = (1 - B) + B * length / length.mean()
    W = X * (K1 + 1) / (K1 * length_norm[:, None] + X) * idf[None, :]
    return np.where(X != 0, W, 0.0)


def user_knn_predict(ratings, user, item, K, similarity="cosine", mean_centered=False):
    """Predicted rating of `item` by `user` from the K most similar users who rated it.

    Neighbours are the K users v != user with a stored rating of the item and the highest
    similarity (ties: lower id); only those with positive similarity contribute:

        basic:         r = sum_v s_uv r_vi / sum_v s_uv
        mean-centred:  r = mu_u + sum_v s_uv (r_vi - mu_v) / sum_v s_uv

    mu is the mean of a user's stored ratings. Without contributing neighbours the
    prediction is mu_u (or the global mean for a user without ratings).
    Returns (prediction, number of contributing neighbours).
    """
    R = _dense(ratings)
    rated = R != 0
    counts = rated.sum(axis=1)
    means = np.divide(R.sum(axis=1), counts, out=np.zeros(len(R)), where=counts > 0)
    fallback = means[user] if counts[user] else R[rated].mean()
    S = similarity_matrix(R, R, similarity)
    raters = [v for v in np.flatnonzero(rated[:, item]) if v != user]
    neighbours = sorted(raters, key=lambda v: (-S[user, v], v))[:K]
    neighbours = [v for v in neighbours if S[user, v] > 0]
    if not neighbours:
        return fallback, 0
    weights = S[user, neighbours]
    values = R[neighbours, item] - (means[neighbours] if mean_centered else 0)
    estimate = weights @ values / weights.sum()
    return (means[user] + estimate if mean_centered else estimate), len(neighbours)


def top_k_cosine_blocked(X, K, block_rows=1000):
    """Item-item top-K cosine of a users x items matrix with numpy/scipy, block by block.

    The same result as ``top_k(similarity_matrix(X.T), K, skip_self=True)`` without the
    dense items x items matrix: each block of items is multiplied with scipy and selected with
    numpy (largest first, ties to the lower item). Slow but plain; the benchmark's baseline.
    """
    X = sp.csr_matrix(X, dtype=np.float64)
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=0))).ravel()
    inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    normalised = (X @ sp.diags(inverse)).tocsr()
    items = normalised.T.tocsr()
    n = items.shape[0]
    indptr, indices, values = [0], [], []
    for lo in range(0, n, block_rows):
        hi = min(lo + block_rows, n)
        S = (items[lo:hi] @ normalised).toarray()
        S[np.arange(hi - lo), np.arange(lo, hi)] = 0  # never its own neighbour
        S[S == 0] = -np.inf
        for row in S:
            keep = min(K, int(np.isfinite(row).sum()))
            if keep == 0:
                indptr.append(indptr[-1])
                continue
            kth = -np.partition(-row, keep - 1)[keep - 1]
            above = np.flatnonzero(row > kth)
            tied = np.flatnonzero(row == kth)[:keep - len(above)]
            chosen = np.sort(np.concatenate([above, tied]))
            indices.append(chosen)
            values.append(row[chosen])
            indptr.append(indptr[-1] + len(chosen))
    if not indices:
        return sp.csr_matrix((n, n))
    return sp.csr_matrix((np.concatenate(values), np.concatenate(indices), indptr), shape=(n, n))
