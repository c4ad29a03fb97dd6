"""Property tests: every public model and kernel against its numpy reference on random small
sparse inputs (hypothesis).

Inputs (:func:`matrices`) range over shapes from 1 x 1 up to 7 x 7 with empty rows and
columns, COO with repeated entries, non-canonical CSR (unsorted, repeated columns), CSC,
int32 and int64 index arrays, float32 and float64 values, and value scales from 1e-30 to
1e30. Each property says what must come out: agreement with the reference (tolerances
below), or one of the errors the model documents for that input.

Tolerances. An exact solve of a system A x = b is compared row by row in the 2-norm:
``|x - x_ref| <= 30 eps kappa(A) |x_ref| + 1e4 tiny``, with eps the unit roundoff of the
model's dtype, kappa the condition number of the row's system (computed by the reference in
float64) and tiny the dtype's smallest normal number: a backward-stable solve of a system
assembled with O(eps) relative rounding errors cannot promise more (with float32 or huge
confidences kappa grows), and with values near 1e-30 products underflow float32. Where
``eps * kappa`` reaches 1 no digit is guaranteed and only finiteness is checked. Scores that
are plain sums (similarities, metrics) are compared at 1e-9 (float64) / 1e-5 (float32)
relative to their largest magnitude.

Runs are deterministic (``derandomize=True``, no example database) and sized for CI: about
25 s on two cores in all.
"""
import os

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import fastals
from fastals import evaluation
from fastals._validation import as_csr
from fastals.data import bm25_weight, tfidf_weight
from fastals.exceptions import ModelFitError
from fastals.models.explicit_als import initial_item_factors
from fastals.models.implicit_als import _initial_factors
from fastals.models.sgd import MAX_STRATA, RatingOrder, auto_strata, initial_factors
from fastals.reference import (
    explicit_als_normal_equations,
    implicit_als_cg_step,
    normal_equations,
    ranking_metrics_loop,
    sgd_epoch,
)
from fastals.reference import similarity as ref
from test_knn import reference_items


def profile(examples):
    """Deterministic settings sized for CI. For a deeper local search, set
    FASTALS_PROPERTY_SCALE (a multiplier of the examples) and FASTALS_PROPERTY_RANDOM=1 (new
    random examples on every run instead of the fixed ones)."""
    scale = float(os.environ.get("FASTALS_PROPERTY_SCALE", "1"))
    fixed = os.environ.get("FASTALS_PROPERTY_RANDOM", "") != "1"
    return settings(max_examples=max(1, int(examples * scale)), deadline=None,
                    derandomize=fixed, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


SCALES = {"unit": 1.0, "large": 1e6, "tiny": 1e-30, "huge": 1e30}
FORMATS = ("coo", "csr", "csr-noncanonical", "csc")
DTYPES = (np.float32, np.float64)
EPS = {np.float32: float(np.finfo(np.float32).eps), np.float64: float(np.finfo(np.float64).eps)}


class Drawn:
    """A generated input: `matrix` (what the caller passes), `truth` (its canonical CSR in
    float64: duplicates summed the way scipy sums them, stored zeros kept), and how it was
    made (for messages)."""

    def __init__(self, matrix, truth, scale, fmt, has_duplicates):
        self.matrix, self.truth, self.scale, self.fmt = matrix, truth, scale, fmt
        self.has_duplicates = has_duplicates

    @property
    def keeps_duplicates(self):
        """Whether the matrix passed stores a (row, column) twice (CSC and CSR sum them)."""
        return self.has_duplicates and self.fmt in ("coo", "csr-noncanonical")

    @property
    def dense(self):
        return self.truth.toarray()

    def __repr__(self):
        return (f"Drawn({self.fmt}, shape={self.matrix.shape}, scale={self.scale}, "
                f"index={_index_dtype(self.matrix)}, values={self.matrix.dtype}, "
                f"duplicates={self.has_duplicates},\n{self.truth.toarray()!r})")


def _index_dtype(m):
    return (m.coords[0] if m.format == "coo" else m.indices).dtype


@st.composite
def matrices(draw, max_rows=7, max_cols=7, signed=False, zeros=False, duplicates=True,
             scales=("unit", "large", "tiny"), min_entries=0, formats=FORMATS,
             value_dtypes=DTYPES):
    """A random sparse matrix in one of FORMATS, with the properties listed in the module."""
    n_rows = draw(st.integers(1, max_rows))
    n_cols = draw(st.integers(1, max_cols))
    cells = n_rows * n_cols
    mask = np.array(draw(st.lists(st.booleans(), min_size=cells, max_size=cells)))
    stored = np.flatnonzero(mask)
    if len(stored) < min_entries:
        stored = np.arange(min(cells, max(min_entries, 1)))
    extra = draw(st.lists(st.sampled_from(stored.tolist()), max_size=4)) \
        if duplicates and len(stored) else []
    flat = np.concatenate([stored, np.array(extra, dtype=np.int64)]).astype(np.int64)
    order = np.array(draw(st.permutations(range(len(flat))))) if len(flat) else flat
    flat = flat[order] if len(flat) else flat
    rows, cols = np.divmod(flat, n_cols)
    low = 0 if zeros else 1
    values = np.array(draw(st.lists(st.integers(low, 5), min_size=len(flat),
                                    max_size=len(flat))), dtype=np.float64)
    values += np.array(draw(st.lists(st.sampled_from([0.0, 0.25, 0.5]), min_size=len(flat),
                                     max_size=len(flat))))
    if signed and len(values):
        values *= np.where(draw(st.lists(st.booleans(), min_size=len(flat),
                                         max_size=len(flat))), -1.0, 1.0)
    scale = draw(st.sampled_from(scales))
    value_dtype = draw(st.sampled_from(value_dtypes))
    values = (values * SCALES[scale]).astype(value_dtype)
    fmt = draw(st.sampled_from(formats))
    index = draw(st.sampled_from((np.int32, np.int64)))
    shape = (n_rows, n_cols)
    if fmt == "coo":
        matrix = sp.coo_matrix((values, (rows, cols)), shape=shape)
        matrix.coords = (rows.astype(index), cols.astype(index))
    elif fmt == "csc":
        matrix = sp.csc_matrix(sp.coo_matrix((values, (rows, cols)), shape=shape))
        matrix.indices, matrix.indptr = matrix.indices.astype(index), matrix.indptr.astype(index)
    else:
        by_row = np.argsort(rows, kind="stable")  # rows in order, columns as drawn
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_rows))])
        matrix = sp.csr_matrix((values[by_row], cols[by_row], indptr), shape=shape)
        if fmt == "csr":
            matrix.sum_duplicates()
        matrix.indices, matrix.indptr = matrix.indices.astype(index), matrix.indptr.astype(index)
    truth = sp.coo_matrix((values, (rows, cols)), shape=shape).tocsr()  # scipy's sums
    truth.sum_duplicates()
    truth = truth.astype(np.float64)
    return Drawn(matrix, truth, scale, fmt, len(extra) > 0)


def _unchanged(matrix):
    """A check that `matrix` (the caller's) is as it was when this was called."""
    arrays = [a.copy() for a in _arrays(matrix)]
    return lambda: all(np.array_equal(a, b, equal_nan=True) for a, b in zip(arrays,
                                                                              _arrays(matrix)))


def _arrays(m):
    if m.format == "coo":
        return [m.data, *m.coords]
    return [m.data, m.indices, m.indptr]


def _solutions(systems, rights):
    """Each row's exact solution in float64 (NaN where the system is singular even there:
    _rows_agree then only checks that the model's row is finite)."""
    out = []
    for A, b in zip(systems, rights):
        try:
            out.append(np.linalg.solve(A, b))
        except np.linalg.LinAlgError:
            out.append(np.full(len(b), np.nan))
    return np.array(out).reshape(len(rights), -1)


def _rows_agree(got, want, systems, dtype, what):
    """Row-wise 2-norm agreement of solutions, scaled by each row's condition number."""
    eps = EPS[dtype]
    for row, (g, w, A) in enumerate(zip(got, want, systems)):
        kappa = np.linalg.cond(A) if A is not None else 1.0
        if not np.isfinite(kappa) or eps * kappa > 1e-2 or not np.isfinite(w).all():
            assert np.isfinite(g).all(), f"{what} row {row}: non-finite result"
            continue
        # + products that underflow the dtype (each off by at most its smallest normal)
        bound = 30 * eps * kappa * np.linalg.norm(w) + 1e4 * np.finfo(dtype).tiny
        assert np.linalg.norm(g - w) <= bound, \
            f"{what} row {row}: |got - ref| = {np.linalg.norm(g - w):.3g} > {bound:.3g} " \
            f"(kappa {kappa:.3g})\ngot {g}\nref {w}"


# --- validation ----------------------------------------------------------------------------------
@profile(150)
@given(drawn=matrices(signed=True, zeros=True, scales=tuple(SCALES)),
       dtype=st.sampled_from(DTYPES), keep_zeros=st.booleans())
def test_as_csr_gives_the_canonical_matrix_and_leaves_the_input_alone(drawn, dtype, keep_zeros):
    unchanged = _unchanged(drawn.matrix)
    try:
        csr = as_csr(drawn.matrix, "user_items", dtype, keep_zeros=keep_zeros)
    except ValueError as exc:  # 1e30 summed or cast into float32
        assert "too large" in str(exc) and dtype == np.float32
        assert np.abs(drawn.truth.data).max() * 2 > np.finfo(np.float32).max or \
            not np.isfinite(drawn.truth.data.astype(np.float32)).all()
        return
    assert unchanged()
    assert csr.indptr.dtype == csr.indices.dtype and csr.data.dtype == dtype
    for row in range(csr.shape[0]):
        columns = csr.indices[csr.indptr[row]:csr.indptr[row + 1]]
        assert np.all(np.diff(columns) > 0), "not canonical"
    expected = drawn.truth.copy()
    if not keep_zeros:
        expected.eliminate_zeros()
    got = csr.to_scipy()
    assert got.shape == expected.shape and got.nnz == expected.nnz
    np.testing.assert_array_equal(got.indices, expected.indices)
    np.testing.assert_allclose(got.data, expected.data, rtol=EPS[dtype], atol=0)


# --- implicit ALS --------------------------------------------------------------------------------
@profile(60)
@given(drawn=matrices(signed=True, scales=tuple(SCALES)), dtype=st.sampled_from(DTYPES),
       factors=st.integers(1, 4), regularization=st.sampled_from([0.01, 0.1, 1.0]),
       alpha=st.sampled_from([0.0, 1.0, 40.0]), num_threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 3))
def test_implicit_als_half_steps_match_the_reference(drawn, dtype, factors, regularization,
                                                      alpha, num_threads, seed):
    """One exact iteration: the users' factors solve the reference's normal equations
    against the initial items, the items' against the users' result."""
    unchanged = _unchanged(drawn.matrix)
    model = fastals.ImplicitALS(factors=factors, regularization=regularization, alpha=alpha,
                                iterations=1, solver="cholesky", dtype=dtype,
                                random_state=seed, num_threads=num_threads)
    R = drawn.truth.copy()
    R.data = R.data.astype(dtype).astype(np.float64)  # the values as the model holds them
    R.eliminate_zeros()
    rng = np.random.default_rng(seed)
    _initial_factors(rng, R.shape[0], factors, dtype)
    Y0 = _initial_factors(rng, R.shape[1], factors, dtype).astype(np.float64)

    def equations(rows, fixed):
        return [normal_equations(rows, u, fixed, regularization, alpha)
                for u in range(rows.shape[0])]

    def systems(rows, fixed):
        return [A for A, _ in equations(rows, fixed)]

    try:
        model.fit(drawn.matrix, show_progress=False)
    except ModelFitError as exc:
        if "overflow" in str(exc):  # documented: confidences whose systems exceed the dtype
            assert alpha * np.abs(R.data).max() > 1e15 and "scale them down" in str(exc)
            event("ModelFitError (overflow)")
            return
        # documented for systems that are singular in the dtype (large confidences in
        # float32, small regularization): the half-step that failed must have one, with
        # eps * kappa beyond what a Cholesky factorisation survives
        assert "raise regularization" in str(exc)
        X = np.nan_to_num(model.user_factors.astype(np.float64))
        worst = max(np.linalg.cond(A) for A in systems(R, Y0) + systems(R.T.tocsr(), X))
        assert EPS[dtype] * worst > 1e-4, f"ModelFitError at kappa {worst:.3g}: {exc}"
        event("ModelFitError (singular in the dtype)")
        return
    except ValueError as exc:
        assert drawn.truth.count_nonzero() == 0 and "empty" in str(exc) or \
            "too large" in str(exc) and dtype == np.float32
        event(f"ValueError ({'empty' if 'empty' in str(exc) else 'too large'})")
        return
    event(f"compared ({drawn.scale} values)")
    assert unchanged()
    X = model.user_factors.astype(np.float64)
    for rows, fixed, got, what in ((R, Y0, X, "users"),
                                   (R.T.tocsr(), X, model.item_factors.astype(np.float64),
                                    "items")):
        pairs = equations(rows, fixed)
        want = _solutions([A for A, _ in pairs], [b for _, b in pairs])
        _rows_agree(got, want, [A for A, _ in pairs], dtype, what)


@profile(40)
@given(drawn=matrices(signed=True, scales=("unit", "tiny")), factors=st.integers(1, 4),
       cg_steps=st.integers(1, 4), num_threads=st.sampled_from([1, 2]), seed=st.integers(0, 3))
def test_implicit_als_cg_matches_the_reference_cg(drawn, factors, cg_steps, num_threads, seed):
    """The users' half-step of the CG solver, warm-started from the initial factors, in
    float64 (CG's few steps are not backward stable: compared at 1e-7 relative)."""
    model = fastals.ImplicitALS(factors=factors, regularization=0.1, alpha=2.0, iterations=1,
                                cg_steps=cg_steps, dtype=np.float64, random_state=seed,
                                num_threads=num_threads)
    if drawn.truth.count_nonzero() == 0:
        with pytest.raises(ValueError, match="empty"):
            model.fit(drawn.matrix, show_progress=False)
        return
    model.fit(drawn.matrix, show_progress=False)
    R = drawn.truth.copy()
    R.eliminate_zeros()
    rng = np.random.default_rng(seed)
    X0 = _initial_factors(rng, R.shape[0], factors, np.float64)
    Y0 = _initial_factors(rng, R.shape[1], factors, np.float64)
    want = implicit_als_cg_step(R, X0, Y0, 0.1, 2.0, cg_steps)
    scale = max(np.abs(want).max(), np.abs(X0).max())  # the steps move x by up to this
    np.testing.assert_allclose(model.user_factors, want, rtol=1e-7, atol=1e-7 * scale)


# --- explicit ALS --------------------------------------------------------------------------------
@profile(80)
@given(drawn=matrices(signed=True, zeros=True, scales=tuple(SCALES)),
       dtype=st.sampled_from(DTYPES), factors=st.integers(1, 3),
       regularization=st.sampled_from([0.01, 0.1, 1.0]), weighted=st.booleans(),
       biases=st.booleans(), num_threads=st.sampled_from([1, 2]), seed=st.integers(0, 3))
def test_explicit_als_half_steps_match_the_reference(drawn, dtype, factors, regularization,
                                                      weighted, biases, num_threads, seed):
    unchanged = _unchanged(drawn.matrix)
    model = fastals.ExplicitALS(factors=factors, regularization=regularization,
                                weighted_regularization=weighted, biases=biases, iterations=1,
                                dtype=dtype, random_state=seed, num_threads=num_threads)
    R = drawn.truth.copy()
    R.data = R.data.astype(dtype).astype(np.float64)  # the ratings as the model holds them
    mu = float(R.data.mean()) if biases and R.nnz else 0.0
    rng = np.random.default_rng(seed)
    Y0 = initial_item_factors(rng, np.bincount(R.indices, minlength=R.shape[1]), factors, False,
                              dtype).astype(np.float64)

    def equations(rows, fixed, fixed_bias):
        """(A_u, b_u) of every row; None for rows without ratings (their unknowns are 0)."""
        return [explicit_als_normal_equations(rows, u, fixed, fixed_bias, mu, regularization,
                                              regularization, weighted, biases)[:2]
                if rows.indptr[u + 1] > rows.indptr[u] else None for u in range(rows.shape[0])]

    def systems(rows, fixed, fixed_bias):
        return [pair[0] if pair else None for pair in equations(rows, fixed, fixed_bias)]

    try:
        model.fit(drawn.matrix, show_progress=False)
    except ValueError as exc:
        message = str(exc)
        if drawn.keeps_duplicates:  # documented: a pair stored twice is an error
            assert "duplicate" in message
            event("ValueError (duplicate ratings)")
        elif R.nnz == 0:
            assert "empty" in message
            event("ValueError (no ratings)")
        else:
            assert "too large" in message and dtype == np.float32
            event("ValueError (too large)")
        return
    except ModelFitError as exc:
        message = str(exc)
        if "non-finite" in message:  # documented: ratings whose squares overflow the dtype
            assert np.abs(R.data).max() ** 2 > np.finfo(dtype).max / 1e3 and "float64" in message
            event("ModelFitError (overflow)")
        else:  # documented: a system singular in the dtype
            assert "raise regularization" in message
            X = np.nan_to_num(model.user_factors.astype(np.float64))
            b = np.nan_to_num(model.user_bias.astype(np.float64))
            worst = max(np.linalg.cond(A) for A in systems(R, Y0, np.zeros(R.shape[1]))
                        + systems(R.T.tocsr(), X, b) if A is not None)
            assert EPS[dtype] * worst > 1e-4, f"ModelFitError at kappa {worst:.3g}: {exc}"
            event("ModelFitError (singular in the dtype)")
        return
    assert not drawn.keeps_duplicates, "duplicates were accepted"
    assert unchanged()
    event(f"compared ({drawn.scale} values)")
    X = model.user_factors.astype(np.float64)
    x_bias = model.user_bias.astype(np.float64)
    steps = ((R, Y0, np.zeros(R.shape[1]), X, x_bias, "users"),
             (R.T.tocsr(), X, x_bias, model.item_factors.astype(np.float64),
              model.item_bias.astype(np.float64), "items"))
    for rows, fixed, fixed_bias, got, got_bias, what in steps:
        pairs = equations(rows, fixed, fixed_bias)
        unknowns = factors + biases
        wanted = np.array([_solutions([p[0]], [p[1]])[0] if p else np.zeros(unknowns)
                           for p in pairs]).reshape(len(pairs), unknowns)
        both = np.hstack([got, got_bias[:, None]]) if biases else got
        _rows_agree(both, wanted, [p[0] if p else None for p in pairs], dtype, what)


# --- SGD -----------------------------------------------------------------------------------------
@profile(40)
@given(drawn=matrices(signed=True, zeros=True, duplicates=False, scales=("unit", "tiny"),
                      min_entries=1, formats=("coo", "csr", "csc")),
       dtype=st.sampled_from(DTYPES), biases=st.booleans(), shuffle=st.booleans(),
       seed=st.integers(0, 3), strata=st.sampled_from([None, 1, 2, 5]))
def test_sgd_matches_the_reference(drawn, dtype, biases, shuffle, seed, strata):
    """The same updates in the same (seeded) order as the reference, with 2 threads in the
    stratified orders and 1 for Hogwild (strata=1); float64 to 1e-9 relative, float32 to 1e-4
    (three epochs of rounding)."""
    params = dict(factors=2, learning_rate=0.01, regularization=0.05, epochs=3, init_std=0.1,
                  biases=biases, lr_decay=0.9, shuffle=shuffle, strata=strata)
    model = fastals.SGDMatrixFactorization(dtype=dtype, random_state=seed,
                                           num_threads=1 if strata == 1 else 2, **params)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fastals.models.sgd, "MIN_RATINGS_PER_THREAD", 1)
        model.fit(drawn.matrix, show_progress=False)
    R = drawn.truth
    n_users, n_items = R.shape
    rng = np.random.default_rng(seed)
    P, Q = (X[:, :2] for X in initial_factors(rng, n_users, n_items, 2, 0.1, dtype))
    P, Q = P.astype(np.float64), Q.astype(np.float64)
    P[np.diff(R.indptr) == 0] = 0
    Q[np.bincount(R.indices, minlength=n_items) == 0] = 0
    b_user, b_item = np.zeros(n_users), np.zeros(n_items)
    mu = float(R.data.astype(dtype).mean(dtype=np.float64)) if biases else 0.0
    G = min(strata or auto_strata(n_users, n_items, 2, dtype), n_users, n_items, MAX_STRATA)
    counts = (np.diff(R.indptr), np.bincount(R.indices, minlength=n_items))
    order = RatingOrder(rng, R.astype(dtype), counts, G, 1)
    for epoch in range(3):
        if epoch == 0 or shuffle:
            order.draw()
        P, Q, b_user, b_item, _ = sgd_epoch(*order.sequential(), P, Q, b_user, b_item, mu,
                                            0.01 * 0.9 ** epoch, 0.05, biases=biases)
    rtol = 1e-9 if dtype == np.float64 else 1e-4
    for got, want in ((model.user_factors, P), (model.item_factors, Q), (model.user_bias, b_user),
                      (model.item_bias, b_item)):
        scale = max(np.abs(want).max(initial=0), 1e-300)
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


@profile(15)
@given(drawn=matrices(duplicates=False, scales=("huge", "large"), min_entries=1,
                      formats=("csr",)), dtype=st.sampled_from(DTYPES))
def test_sgd_on_huge_ratings_diverges_with_a_named_error_or_stays_finite(drawn, dtype):
    model = fastals.SGDMatrixFactorization(factors=2, epochs=3, random_state=0, num_threads=1,
                                           dtype=dtype)
    try:
        model.fit(drawn.matrix, show_progress=False)
    except ModelFitError as exc:
        assert "learning_rate" in str(exc) and not model.is_fitted
        event("ModelFitError (diverged)")
        return
    except ValueError as exc:
        assert "too large" in str(exc) and dtype == np.float32
        event("ValueError (too large)")
        return
    event("finite")
    for name in model._state_names:
        assert np.isfinite(getattr(model, name)).all()


# --- similarity and neighbourhood models ---------------------------------------------------------
def assert_top_k_within(got, S, K, tol):
    """`got` (a CSR, a row's columns sorted) is the top-K of some S' within `tol` of S, the
    diagonal left out.

    The kernel keeps each row's K largest non-zero similarities. Where S has equal values,
    or values that are 0 only up to rounding (a mathematically zero correlation computes as
    +-1e-8 in float32), which columns it keeps is decided by the rounding: every choice that
    is right for some S' within tol of S is accepted, and nothing else.
    """
    assert got.shape == S.shape
    for i in range(S.shape[0]):
        ids = got.indices[got.indptr[i]:got.indptr[i + 1]]
        values = got.data[got.indptr[i]:got.indptr[i + 1]].astype(np.float64)
        assert np.all(np.diff(ids) > 0) and i not in ids and len(ids) <= K, f"row {i}: {ids}"
        assert np.all(values != 0)
        np.testing.assert_allclose(values, S[i, ids], atol=tol, rtol=0, err_msg=f"row {i}")
        others = np.setdiff1d(np.delete(np.arange(S.shape[1]), i) if i < S.shape[1]
                              else np.arange(S.shape[1]), ids)
        clearly_nonzero = others[np.abs(S[i, others]) > tol]
        if len(ids) < K:  # fewer than K: everything left out must be (nearly) 0
            assert not len(clearly_nonzero), f"row {i}: left out {clearly_nonzero}"
        else:  # K kept: nothing left out beats the worst kept (beyond tol)
            better = clearly_nonzero[S[i, clearly_nonzero] > values.min() + tol]
            assert not len(better), f"row {i}: left out {better}, kept {ids}"


def _top_k_tol(dtype, S):
    return (1e-5 if dtype == np.float32 else 1e-9) * max(1.0, np.abs(S).max(initial=0))


@profile(80)
@given(a=matrices(signed=True, scales=("unit", "large", "tiny", "huge")),
       similarity=st.sampled_from(fastals.similarity.SIMILARITIES), K=st.integers(1, 8),
       dtype=st.sampled_from(DTYPES), num_threads=st.sampled_from([1, 2]))
def test_top_k_similarity_matches_the_reference(a, similarity, K, dtype, num_threads):
    unchanged = _unchanged(a.matrix)
    got = _unless_out_of_range(lambda: fastals.top_k_similarity(
        a.matrix, K=K, similarity=similarity, dtype=dtype, num_threads=num_threads),
        similarity, a.scale, dtype)
    if got is None:
        return
    assert unchanged()
    S = _in_range(ref.similarity_matrix(a.dense, None, similarity), similarity, dtype)
    assert_top_k_within(got, S, K, _top_k_tol(dtype, S))


def _unless_out_of_range(compute, similarity, scale, dtype):
    """compute(), or None after the error documented for values beyond the dtype's range:
    OverflowError for raw dot products (the normalised measures scale rows first),
    ValueError for values that do not fit the dtype at all."""
    try:
        result = compute()
    except OverflowError as exc:
        assert similarity == "dot" and scale == "huge" and "float64" in str(exc)
        event("OverflowError (huge values)")
        return None
    except ValueError as exc:
        assert "too large" in str(exc) and dtype == np.float32 and scale == "huge"
        event("ValueError (too large)")
        return None
    event(f"compared ({scale} values)")
    return result


def _in_range(S, measure, dtype):
    """The reference similarities as the dtype can hold them: dot products below its
    smallest normal number are 0 in it (normalised measures scale the rows first)."""
    if measure == "dot":
        S[np.abs(S) < 1e4 * np.finfo(dtype).tiny] = 0
    return S


@profile(50)
@given(a=matrices(scales=tuple(SCALES)),
       similarity=st.sampled_from(["cosine", "tfidf", "bm25", "pearson", "jaccard", "dot"]),
       K=st.integers(1, 8), dtype=st.sampled_from(DTYPES))
def test_item_knn_neighbours_match_the_reference(a, similarity, K, dtype):
    model = fastals.ItemKNN(K=K, similarity=similarity, dtype=dtype, num_threads=2)
    if a.truth.count_nonzero() == 0:
        with pytest.raises(ValueError, match="empty"):
            model.fit(a.matrix, show_progress=False)
        return
    if _unless_out_of_range(lambda: model.fit(a.matrix, show_progress=False), similarity,
                            a.scale, dtype) is None:
        return
    truth = a.truth.copy()
    truth.eliminate_zeros()
    items, measure = reference_items(truth, similarity)
    S = _in_range(ref.similarity_matrix(items, None, measure), measure, dtype)
    assert_top_k_within(model.similarity_matrix, S, K, _top_k_tol(dtype, S))


def _prediction_is_ambiguous(dense, user, item, K, similarity, tol):
    """Whether the K-th and the next candidate neighbour of (user, item) are tied within tol
    (the reference and the kernel may then pick different neighbours)."""
    S = ref.similarity_matrix(dense, dense, similarity)
    raters = [v for v in np.flatnonzero(dense[:, item] != 0) if v != user]
    scores = sorted((S[user, v] for v in raters), reverse=True)
    scores = [s for s in scores if s > -np.inf]
    return any(abs(scores[k] - scores[k + 1]) <= tol for k in range(min(K, len(scores) - 1))) \
        or any(abs(s) <= tol for s in scores[:K + 1])


@profile(40)
@given(a=matrices(scales=("unit", "tiny"), max_rows=6, max_cols=5),
       similarity=st.sampled_from(["cosine", "pearson", "jaccard", "dot"]),
       mean_centered=st.booleans(), K=st.integers(1, 4), dtype=st.sampled_from(DTYPES))
def test_user_knn_predictions_match_the_reference(a, similarity, mean_centered, K, dtype):
    """(Ratings near 1e-30 run in float64: the neighbour votes accumulate products of two
    ratings in the model's dtype, and 1e-60 is below float32's range, so in float32 such
    users share no similarity and every estimate falls back to the user's mean.)"""
    if a.scale == "tiny":
        dtype = np.float64
    model = fastals.UserKNN(K=K, similarity=similarity, mean_centered=mean_centered,
                            dtype=dtype, num_threads=2)
    if a.truth.count_nonzero() == 0:
        return
    model.fit(a.matrix, show_progress=False)
    dense = a.dense
    users, items = np.meshgrid(np.arange(dense.shape[0]), np.arange(dense.shape[1]),
                               indexing="ij")
    got, voters = model.predict(users.ravel(), items.ravel(), return_neighbours=True)
    tol = (1e-4 if dtype == np.float32 else 1e-9)
    scale = np.abs(dense).max()
    for k, (u, i) in enumerate(zip(users.ravel(), items.ravel())):
        if _prediction_is_ambiguous(dense, u, i, K, similarity, tol):
            continue
        expected, count = ref.user_knn_predict(dense, u, i, K, similarity, mean_centered)
        assert got[k] == pytest.approx(expected, abs=tol * scale), (u, i)
        assert voters[k] == count


@profile(40)
@given(a=matrices(signed=True, scales=("unit", "large")), N=st.integers(1, 9))
def test_popularity_recommends_a_top_n_of_the_reference_scores(a, N):
    if a.truth.count_nonzero() == 0:
        return
    model = fastals.PopularityBaseline(dtype=np.float64).fit(a.matrix, show_progress=False)
    R = a.truth.copy()
    R.eliminate_zeros()
    positive = R.multiply(R > 0).tocsr()
    counts = np.diff(positive.tocsc().indptr).astype(np.float64)
    totals = np.asarray(positive.sum(axis=0)).ravel()
    scores = counts + (0.5 * totals / (totals.max() + 1.0) if totals.max() > 0 else 0.0)
    for user in range(R.shape[0]):
        ids, got = model.recommend(user, R[user], N=N)
        allowed = np.setdiff1d(np.arange(R.shape[1]), R[user].indices)
        _assert_top_n(ids, got, scores, allowed, N, 1e-9 * max(1.0, scores.max()))


def _assert_top_n(ids, got, scores, allowed, N, tol):
    """`ids` (best first) are N of `allowed` with the highest `scores` (ties within tol)."""
    assert len(ids) == min(N, len(allowed)) and len(set(ids.tolist())) == len(ids)
    assert set(ids.tolist()) <= set(allowed.tolist())
    np.testing.assert_allclose(got, scores[ids], atol=tol, rtol=0)
    assert np.all(np.diff(got) <= tol)
    if len(ids) < len(allowed):
        rest = np.setdiff1d(allowed, ids)
        assert scores[rest].max() <= got.min() + tol


# --- top-N selection ------------------------------------------------------------------------------
@profile(60)
@given(a=matrices(signed=True, zeros=False, scales=("unit",)), dtype=st.sampled_from(DTYPES),
       factors=st.integers(1, 5), N=st.integers(1, 9), filtered=st.booleans(),
       subset=st.booleans(), seed=st.integers(0, 5), num_threads=st.sampled_from([1, 2]))
def test_recommend_is_the_top_n_of_the_factor_scores(a, dtype, factors, N, filtered, subset,
                                                      seed, num_threads):
    """recommend on factors set by hand = numpy's top-N of X Y^T with the liked items, the
    filter_items and the items outside `items` left out; with `items`, as in implicit, the
    listed liked items then follow at -inf, up to N."""
    R = a.truth.copy()
    R.eliminate_zeros()
    n_users, n_items = R.shape
    rng = np.random.default_rng(seed)
    model = fastals.ImplicitALS(factors=factors, dtype=dtype, num_threads=num_threads)
    model.user_factors = rng.standard_normal((n_users, factors)).astype(dtype)
    model.item_factors = rng.standard_normal((n_items, factors)).astype(dtype)
    scores = model.user_factors.astype(np.float64) @ model.item_factors.T.astype(np.float64)
    blocked = rng.choice(n_items, n_items // 3, replace=False) if filtered else None
    items = np.sort(rng.choice(n_items, max(1, n_items // 2), replace=False)) if subset else None
    users = np.arange(n_users)
    ids, got = model.recommend(users, a.matrix, N=N, filter_items=blocked, items=items)
    tol = (1e-5 if dtype == np.float32 else 1e-12) * max(1.0, np.abs(scores).max()) * factors
    for u in users:
        allowed = np.arange(n_items) if items is None else items
        allowed = np.setdiff1d(allowed, R[u].indices)
        if blocked is not None:
            allowed = np.setdiff1d(allowed, blocked)
        row = ids[u][ids[u] >= 0]
        finite = np.isfinite(got[u][:len(row)])
        assert list(finite) == sorted(finite, reverse=True)  # scored items first
        _assert_top_n(row[finite], got[u][:len(row)][finite], scores[u], allowed, N, tol)
        listed = np.arange(n_items) if items is None else items
        if blocked is not None:
            listed = np.setdiff1d(listed, blocked)
        if items is None:
            assert finite.all()
        else:  # the rest of the list, liked items at -inf
            assert len(row) == min(N, len(listed)) and set(row) <= set(listed)


# --- metrics, weightings, splits ------------------------------------------------------------------
@profile(60)
@given(test=matrices(signed=True, scales=("unit",)), K=st.integers(1, 8), seed=st.integers(0, 9),
       num_threads=st.sampled_from([1, 2]))
def test_ranking_metrics_match_the_reference_loop(test, K, seed, num_threads):
    n_users, n_items = test.matrix.shape
    rng = np.random.default_rng(seed)
    width = min(K, n_items)
    lists = np.full((n_users, width), -1, dtype=np.int64)
    for u in range(n_users):
        length = rng.integers(0, width + 1)
        lists[u, :length] = rng.choice(n_items, length, replace=False)
    truth = test.truth.copy()
    truth.eliminate_zeros()
    users = np.flatnonzero(np.diff(truth.multiply(truth > 0).tocsr().indptr) > 0)
    got = evaluation.metrics_from_recommendations(lists, test.matrix, K=K,
                                                  num_threads=num_threads, per_user=True)
    assert got["users"] == len(users)
    if not len(users):
        return
    per_user, totals = ranking_metrics_loop(lists[users], truth, users, K, n_items)
    np.testing.assert_array_equal(got["per_user"]["users"], users)
    np.testing.assert_allclose(got["per_user"]["ap"], per_user[:, 3], rtol=1e-12)
    np.testing.assert_allclose(got["per_user"]["ndcg"], per_user[:, 4], rtol=1e-12)
    np.testing.assert_allclose(got["per_user"]["auc"], per_user[:, 5], rtol=1e-12)
    for name in ("precision", "recall", "map", "ndcg"):
        assert got[name] == pytest.approx(totals[name], rel=1e-12)


@pytest.mark.filterwarnings("ignore::fastals.data.DataWarning")  # columns in every row
@profile(60)
@given(a=matrices(scales=("unit", "large", "tiny")), K1=st.sampled_from([0.5, 1.2, 100.0]),
       B=st.sampled_from([0.0, 0.75, 1.0]))
def test_weightings_match_the_reference(a, K1, B):
    truth = a.truth.copy()
    truth.eliminate_zeros()
    dense = truth.toarray()
    scale = max(1.0, np.abs(dense).max())
    got = tfidf_weight(a.matrix).toarray()
    np.testing.assert_allclose(got, ref.tfidf_weight(dense), rtol=1e-12, atol=1e-12 * scale)
    if np.all(dense.sum(axis=1) == 0):
        return
    got = bm25_weight(a.matrix, K1=K1, B=B).toarray()
    np.testing.assert_allclose(got, ref.bm25_weight(dense, K1=K1, B=B), rtol=1e-9,
                               atol=1e-12 * scale)


@profile(60)
@given(a=matrices(signed=True, zeros=True, scales=tuple(SCALES)),
       test_size=st.sampled_from([0.1, 0.5, 0.9]), seed=st.integers(0, 9), K=st.integers(1, 3))
def test_splits_partition_the_input(a, test_size, seed, K):
    unchanged = _unchanged(a.matrix)
    truth = a.truth
    for train, test in (evaluation.train_test_split(a.matrix, test_size, random_state=seed),
                        evaluation.leave_k_out_split(a.matrix, K, random_state=seed)):
        assert train.shape == test.shape == truth.shape
        assert train.multiply(test).nnz == 0 or not (train.multiply(test) != 0).nnz
        assert train.nnz + test.nnz == truth.nnz
        np.testing.assert_array_equal((train + test).toarray(), truth.toarray().astype(
            train.dtype))
    assert unchanged()
    counts = np.diff(truth.indptr)
    _, test = evaluation.leave_k_out_split(a.matrix, K, random_state=seed)
    np.testing.assert_array_equal(np.diff(test.indptr), np.where(counts >= K + 1, K, 0))
