"""Every bad input to every public entry point, in one table, and the unusual inputs that
must be accepted.

Each row of :data:`BAD` calls one entry point with one bad argument and says what must come
out: the exception type (or a documented subclass) and the name of the argument, which the
message must contain, plus the problem (a regular expression). For every row the test also
checks that the caller's arguments (arrays, sparse matrices, lists, files) are unchanged,
that a fitted model the call went to is unchanged, and that the call returns at all (a
watchdog ends the process with a traceback after a minute, instead of hanging CI; a
segfault ends it too, so a crash cannot pass unnoticed).

:data:`ACCEPTED` lists the inputs that look unusual but are valid (numpy scalars for
hyper-parameters, COO with repeated entries, unsorted CSR, int64 indices, ...): each must
give the same result as its plain equivalent.

``python tests/list_bad_inputs.py`` runs both tables and writes what each case produced.
"""
from __future__ import annotations

import copy
import faulthandler
import functools
import json
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field

import numpy as np
import pytest
import scipy.sparse as sp

import fastals
from fastals import evaluation
from fastals.data import (
    IdMapping,
    IdRecommender,
    Interactions,
    bm25_weight,
    from_arrays,
    linear_weight,
    log_weight,
    read_csv,
    score_pairs,
    tfidf_weight,
)
from fastals.exceptions import IdOutOfRangeError, ModelFileError, NotFittedError

N_USERS, N_ITEMS, N_FEATURES = 12, 10, 6
WATCHDOG_SECONDS = 60


# --- data ------------------------------------------------------------------------------------
def _interactions(n_rows, n_cols, seed):
    """A random CSR with every row and column stored at least once, values 1..5."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n_rows, n_cols)) < 0.35
    mask[np.arange(n_rows), rng.integers(0, n_cols, n_rows)] = True
    mask[rng.integers(0, n_rows, n_cols), np.arange(n_cols)] = True
    values = rng.integers(1, 6, (n_rows, n_cols)).astype(np.float64)
    return sp.csr_matrix(np.where(mask, values, 0.0))


R = _interactions(N_USERS, N_ITEMS, 4)  # implicit counts, users x items
RATINGS = _interactions(N_USERS, N_ITEMS, 5)  # stars, users x items
FEATURES = (_interactions(N_ITEMS, N_FEATURES, 6) > 2).astype(np.float64).toarray()
FEATURES[:, 0] = 1.0  # every item has a feature


def _like(source, **changes):
    """A copy of a CSR with some of its arrays replaced (a hand-built, broken matrix)."""
    m = source.copy()
    for name, value in changes.items():
        setattr(m, name, value)
    return m


def _coo_set(source, part, position, value):
    """A COO copy whose row or col coordinate at `position` is set after construction."""
    coo = sp.coo_matrix(source)
    coords = list(coo.coords)
    coords[0 if part == "row" else 1] = coords[0 if part == "row" else 1].copy()
    coords[0 if part == "row" else 1][position] = value
    coo.coords = tuple(coords)
    return coo


def _csc_set(source, name, position, value):
    csc = sp.csc_matrix(source)
    array = getattr(csc, name).copy()
    array[position] = value
    setattr(csc, name, array)
    return csc


def _with_value(source, value, position=0):
    m = source.copy().astype(np.float64)
    m.data[position] = value
    return m


def bad_matrices(source, name, float32=True):
    """(id, matrix, exception, match) for every way a users x items input can be broken.

    `source` is a valid CSR of the shape the entry point wants; `name` the argument.
    """
    nnz = source.nnz
    indptr, indices = source.indptr, source.indices
    decreasing = indptr.copy()
    if len(indptr) > 2:
        decreasing[1], decreasing[2] = nnz, min(indptr[2], nnz - 1)  # row 1 ends before it starts
    else:
        decreasing[1] = -1  # the only row ends before it starts
    cases = [
        ("NaN value", _with_value(source, np.nan), ValueError, "NaN or infinite"),
        ("inf value", _with_value(source, np.inf), ValueError, "NaN or infinite"),
        ("-inf value", _with_value(source, -np.inf), ValueError, "NaN or infinite"),
        ("dense ndarray", source.toarray(), TypeError, "dense"),
        ("list of lists", source.toarray().tolist(), TypeError, "sparse"),
        ("None", None, TypeError, "sparse"),
        ("a string", "user_items.csv", TypeError, "sparse"),
        ("1-D sparse array", sp.coo_array(np.ones(3)), ValueError, "2-D"),
        ("complex values", source.astype(np.complex128), TypeError, "real numbers"),
        ("column index out of bounds (hand-built CSR)",
         _like(source, indices=np.where(np.arange(nnz) == 0, source.shape[1], indices)
               .astype(indices.dtype)), ValueError, "out of bounds"),
        ("negative column index (hand-built CSR)",
         _like(source, indices=np.where(np.arange(nnz) == 0, -1, indices).astype(indices.dtype)),
         ValueError, "out of bounds"),
        ("indptr decreasing (hand-built CSR)", _like(source, indptr=decreasing), ValueError,
         r"CSR structure \(indptr\)"),
        ("indptr past the stored values (hand-built CSR)",
         _like(source, indptr=np.append(indptr[:-1], nnz + 7).astype(indptr.dtype)),
         ValueError, r"CSR structure \(indptr\)"),
        ("indptr not starting at 0 (hand-built CSR)",
         _like(source, indptr=np.append([1], indptr[1:]).astype(indptr.dtype)),
         ValueError, r"CSR structure \(indptr\)"),
        ("indptr one entry short (hand-built CSR)", _like(source, indptr=indptr[:-1]),
         ValueError, r"CSR structure \(indptr\)"),
        ("float indices (hand-built CSR)", _like(source, indices=indices.astype(np.float64)),
         ValueError, "indices array"),
        ("2-D data array (hand-built CSR)", _like(source, data=source.data[:, None]),
         ValueError, "data array"),
        ("COO row out of bounds (set after construction)",
         _coo_set(source, "row", 0, source.shape[0] + 100), ValueError, "out of bounds"),
        ("COO negative column (set after construction)", _coo_set(source, "col", 0, -3),
         ValueError, "out of bounds"),
        ("CSC row index out of bounds (hand-built)",
         _csc_set(source, "indices", 0, source.shape[0] + 5), ValueError, "out of bounds"),
        ("CSC indptr decreasing (hand-built)", _csc_set(source, "indptr", 1, nnz),
         ValueError, r"CSC structure \(indptr\)"),
    ]
    if float32:
        cases.append(("value too large for float32", _with_value(source, 1e300), ValueError,
                      "too large for float32"))
    return cases


def wrong_columns(n_rows, n_cols):
    return sp.csr_matrix(np.ones((n_rows, n_cols + 1)))


# --- fitted models, built once -----------------------------------------------------------------
class Fitted:
    """The fitted models the method cases call (built on first use)."""

    @functools.cached_property
    def implicit(self):
        return fastals.ImplicitALS(factors=3, iterations=2, random_state=0, num_threads=1).fit(
            R, show_progress=False)

    @functools.cached_property
    def explicit(self):
        return fastals.ExplicitALS(factors=3, iterations=2, random_state=0).fit(
            RATINGS, show_progress=False)

    @functools.cached_property
    def sgd(self):
        return fastals.SGDMatrixFactorization(factors=3, epochs=2, random_state=0).fit(
            RATINGS, show_progress=False)

    @functools.cached_property
    def itemknn(self):
        return fastals.ItemKNN(K=4).fit(R, show_progress=False)

    @functools.cached_property
    def ease(self):
        return fastals.EASE(regularization=10.0).fit(R, show_progress=False)

    @functools.cached_property
    def rp3beta(self):
        return fastals.RP3beta(K=4).fit(R, show_progress=False)

    @functools.cached_property
    def userknn(self):
        return fastals.UserKNN(K=4).fit(RATINGS, show_progress=False)

    @functools.cached_property
    def contentknn(self):
        return fastals.ContentKNN(K=4).fit(FEATURES, show_progress=False)

    @functools.cached_property
    def popularity(self):
        return fastals.PopularityBaseline().fit(R, show_progress=False)

    @functools.cached_property
    def unfitted(self):
        return fastals.ImplicitALS(factors=3)

    @functools.cached_property
    def data(self):
        users = np.repeat([f"u{k}" for k in range(N_USERS)], np.diff(R.indptr))
        items = np.array([f"i{k}" for k in range(N_ITEMS)])[R.indices]
        return from_arrays(users, items, R.data)

    @functools.cached_property
    def idrec(self):
        return IdRecommender(fastals.ImplicitALS(factors=3, iterations=2, random_state=0)).fit(
            self.data, show_progress=False)

    @functools.cached_property
    def folder(self):
        folder = tempfile.mkdtemp(prefix="fastals-bad-input-")
        _FOLDERS.append(folder)
        return folder

    @functools.cached_property
    def files(self):
        """Good and damaged model files, by name."""
        return _model_files(self)


_FOLDERS: list = []
FITTED = Fitted()


def teardown_module():
    for folder in _FOLDERS:
        shutil.rmtree(folder, ignore_errors=True)


def _rewrite_npz(source, target, edit):
    """Copy an .npz, letting `edit(name, bytes) -> bytes or None` change or drop members."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for info in zin.infolist():
            data = edit(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info, data)


def _header_bytes(header):
    import io
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array(json.dumps(header)))
    return buffer.getvalue()


def _model_files(fitted):
    folder = fitted.folder
    path = lambda name: os.path.join(folder, name)  # noqa: E731
    good = fitted.implicit.save(path("good.npz"))
    fitted.itemknn.save(path("itemknn.npz"))
    fitted.idrec.save(path("idrec.npz"))
    raw = open(good, "rb").read()
    with open(path("truncated.npz"), "wb") as f:
        f.write(raw[:len(raw) // 2])
    corrupted = bytearray(raw)
    with zipfile.ZipFile(good) as z:  # flip bytes inside the user_factors array's data
        info = z.getinfo("user_factors.npy")
    start = info.header_offset + 30 + len(info.filename) + 200
    for k in range(start, start + 16):
        corrupted[k] ^= 0xFF
    with open(path("corrupted.npz"), "wb") as f:
        f.write(bytes(corrupted))
    with open(path("text.npz"), "w") as f:
        f.write("user,item,rating\n1,2,3\n")
    open(path("empty.npz"), "wb").close()
    np.savez(path("plain.npz"), a=np.arange(3))
    header = json.loads(str(np.load(good)["__fastals__"]))

    def with_header(name, new_header):
        _rewrite_npz(good, path(name), lambda member, data: _header_bytes(new_header)
                     if member == "__fastals__.npy" else data)

    with_header("version2.npz", dict(header, format=2))
    with_header("unknown_class.npz", dict(header, **{"class": "os.system"}))
    with_header("bad_params.npz", dict(header, params=dict(header["params"], factors=-4)))
    with_header("unknown_param.npz", dict(header, params=dict(header["params"], evil=1)))
    with_header("header_list.npz", [1, 2, 3])
    _rewrite_npz(good, path("missing_array.npz"),
                 lambda member, data: None if member == "item_factors.npy" else data)
    _rewrite_npz(good, path("nan_factors.npz"), lambda member, data: _array_bytes(
        np.full((N_ITEMS, 3), np.nan, np.float32)) if member == "item_factors.npy" else data)
    _rewrite_npz(good, path("wrong_shape.npz"), lambda member, data: _array_bytes(
        np.zeros((N_ITEMS, 5), np.float32)) if member == "item_factors.npy" else data)
    marker = path("pickle_ran")
    _rewrite_npz(good, path("pickled.npz"), lambda member, data: _pickled_array(marker)
                 if member == "item_factors.npy" else data)
    three_ids = np.frombuffer(json.dumps(["a", "b", "c"]).encode(), dtype=np.uint8)
    _rewrite_npz(path("idrec.npz"), path("idrec_bad_ids.npz"), lambda member, data: _array_bytes(
        three_ids) if member == "__user_ids___json.npy" else data)
    os.makedirs(path("a_folder.npz"), exist_ok=True)
    return {name: path(name) for name in os.listdir(folder)} | {"pickle marker": marker}


def _array_bytes(array):
    import io
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    return buffer.getvalue()


class _Payload:
    """Unpickling this would create a file: the proof that a load ran code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _pickled_array(marker):
    import io
    buffer = io.BytesIO()
    array = np.empty(1, dtype=object)
    array[0] = _Payload(marker)
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


# --- the table --------------------------------------------------------------------------------
class Lazy:
    """An argument built when the case runs: ``Lazy(lambda fitted: ...)``."""

    def __init__(self, make):
        self.make = make


def resolve(value):
    if isinstance(value, Lazy):
        return value.make(FITTED)
    if isinstance(value, tuple):
        return tuple(resolve(v) for v in value)
    if isinstance(value, dict):
        return {k: resolve(v) for k, v in value.items()}
    return value


def file(name):
    return Lazy(lambda fitted: fitted.files[name])


@dataclass
class Call:
    """``target(*args, **kwargs)``; target is a callable or "model.method" on FITTED."""

    target: object
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    def prepare(self):
        if isinstance(self.target, str):
            obj_name, _, method = self.target.partition(".")
            owner = getattr(FITTED, obj_name)
            fn = getattr(owner, method) if method else owner
        else:
            owner, fn = None, self.target
        return owner, fn, resolve(self.args), resolve(self.kwargs)

    def describe(self):
        name = self.target if isinstance(self.target, str) else \
            getattr(self.target, "__qualname__", repr(self.target))
        return name


def call(target, *args, **kwargs):
    return Call(target, args, kwargs)


@dataclass
class Bad:
    id: str
    call: Call
    error: type
    names: str  # the argument, which the message must name
    match: str = ""  # a regular expression the message must also match


BAD: list[Bad] = []


def bad(id, how, error, names, match=""):
    BAD.append(Bad(id, how, error, names, match))


# constructors: every hyper-parameter of every model, wrong in type and in range
INT_POS = [("a string", "3", TypeError, "int"), ("a bool", True, TypeError, "int"),
           ("a fraction", 2.5, TypeError, "int"), ("None", None, TypeError, "int"),
           ("zero", 0, ValueError, "positive"), ("negative", -1, ValueError, "positive"),
           ("a list", [3], TypeError, "int")]
INT_NONNEG = [("a string", "3", TypeError, "int"), ("a bool", False, TypeError, "int"),
              ("a fraction", 2.5, TypeError, "int"), ("negative", -1, ValueError, ">= 0"),
              ("NaN", float("nan"), TypeError, "int")]
FLOAT_NONNEG = [("a string", "0.1", TypeError, "number"), ("a bool", True, TypeError, "number"),
                ("None", None, TypeError, "number"), ("negative", -0.5, ValueError, ">= 0"),
                ("NaN", float("nan"), ValueError, "finite"), ("inf", float("inf"), ValueError,
                                                              "finite"),
                ("a complex", 1j, TypeError, "number")]
FLOAT_POS = [("a string", "0.1", TypeError, "number"), ("zero", 0.0, ValueError, "> 0"),
             ("negative", -0.01, ValueError, "> 0"), ("NaN", float("nan"), ValueError, "finite")]
BOOL = [("a string", "yes", TypeError, "True or False"), ("an int", 1, TypeError, "True or False"),
        ("None", None, TypeError, "True or False")]
DTYPE = [("int32", np.int32, ValueError, "float32 or float64"),
         ("float16", "float16", ValueError, "float32 or float64"),
         ("not a dtype", "fast", TypeError, "float32 or float64")]
THREADS = [("negative", -1, ValueError, ">= 0"), ("a string", "2", TypeError, "int"),
           ("a bool", True, TypeError, "int"), ("huge", 100_000, ValueError, "<= 1024"),
           ("beyond a C int", 2**31, ValueError, "<= 1024")]
SEED = [("a string", "seed", TypeError, "random_state"), ("negative", -1, ValueError,
                                                          "non-negative"),
        ("a float", 1.5, TypeError, "random_state"), ("a bool", True, TypeError, "random_state")]

HYPER = {
    fastals.ImplicitALS: dict(factors=INT_POS, regularization=FLOAT_NONNEG, alpha=FLOAT_NONNEG,
                              iterations=INT_NONNEG, cg_steps=INT_POS, dtype=DTYPE,
                              num_threads=THREADS, random_state=SEED,
                              calculate_training_loss=BOOL,
                              solver=[("unknown", "lu", ValueError, "cg"),
                                      ("not a string", 1, ValueError, "cg")],
                              block_size=[("zero", 0, ValueError, "positive"),
                                          ("beyond factors", 101, ValueError,
                                           "at most factors=100")],
                              confidence=[("unknown", "hu", ValueError, "one of"),
                                          ("not a string", 1.0, ValueError, "one of")],
                              use_cg=BOOL[:2], use_native=BOOL[:2],  # (None: not given)
                              use_gpu=BOOL[:2] + [("True", True, ValueError, "CPUs only")]),
    fastals.iALS: dict(factors=INT_POS, regularization=FLOAT_NONNEG,
                       unobserved_weight=FLOAT_NONNEG,
                       regularization_exponent=FLOAT_NONNEG + [("above 1", 1.5, ValueError,
                                                                "<= 1")],
                       alpha=FLOAT_NONNEG, iterations=INT_NONNEG, init_std=FLOAT_POS,
                       block_size=INT_POS[:3] + INT_POS[4:6] + [("beyond factors", 129, ValueError,
                                                   "at most factors=128")],
                       dtype=DTYPE, num_threads=THREADS, random_state=SEED,
                       calculate_training_loss=BOOL,
                       solver=[("unknown", "cg", ValueError, "ials++")]),
    fastals.ExplicitALS: dict(factors=INT_POS, regularization=FLOAT_NONNEG[:-1] + [
                                  ("three values", (0.1, 0.1, 0.1), TypeError, "pair"),
                                  ("a pair with a string", (0.1, "x"), TypeError, "items")],
                              bias_regularization=[("negative", -1.0, ValueError, ">= 0"),
                                                   ("a string", "0.1", TypeError, "number")],
                              weighted_regularization=BOOL, biases=BOOL, nonnegative=BOOL,
                              iterations=INT_NONNEG, dtype=DTYPE, num_threads=THREADS,
                              random_state=SEED, calculate_training_loss=BOOL),
    fastals.SGDMatrixFactorization: dict(
        factors=INT_POS, learning_rate=FLOAT_POS, regularization=FLOAT_NONNEG,
        bias_learning_rate=FLOAT_POS, bias_regularization=FLOAT_NONNEG[:2] + FLOAT_NONNEG[3:5],
        epochs=INT_NONNEG, init_std=FLOAT_NONNEG[:5], biases=BOOL, shuffle=BOOL, dtype=DTYPE,
        num_threads=THREADS, random_state=SEED,
        lr_decay=[("zero", 0.0, ValueError, "> 0"), ("above 1", 1.5, ValueError, "<= 1"),
                  ("a string", "0.9", TypeError, "lr_decay"),
                  ("too short a schedule", [0.9], ValueError, "multipliers"),
                  ("a negative multiplier", [1.0] * 19 + [-1.0], ValueError, r"lr_decay\[19\]")]),
    fastals.ItemKNN: dict(K=INT_POS, dtype=DTYPE, num_threads=THREADS, K1=FLOAT_NONNEG[:5],
                          B=FLOAT_NONNEG[:5] + [("above 1", 1.5, ValueError, "<= 1")],
                          similarity=[("unknown", "euclid", ValueError, "cosine"),
                                      ("None", None, ValueError, "cosine")]),
    fastals.UserKNN: dict(K=INT_POS, dtype=DTYPE, num_threads=THREADS, mean_centered=BOOL,
                          similarity=[("item-only", "bm25", ValueError, "pearson")]),
    fastals.ContentKNN: dict(K=INT_POS, dtype=DTYPE, num_threads=THREADS,
                             similarity=[("unknown", "euclid", ValueError, "cosine")]),
    fastals.CosineRecommender: dict(K=INT_POS, num_threads=THREADS),
    fastals.TFIDFRecommender: dict(K=INT_POS, dtype=DTYPE),
    fastals.BM25Recommender: dict(K=INT_POS, K1=FLOAT_NONNEG[:4], B=FLOAT_NONNEG[3:5]),
    fastals.PopularityBaseline: dict(dtype=DTYPE, num_threads=THREADS),
    fastals.EASE: dict(regularization=FLOAT_POS, max_items=INT_POS, dtype=DTYPE,
                       num_threads=THREADS),
    fastals.RP3beta: dict(K=INT_POS, alpha=FLOAT_NONNEG, beta=FLOAT_NONNEG,
                          normalize_similarity=BOOL, dtype=DTYPE, num_threads=THREADS),
    fastals.BayesianPersonalizedRanking: dict(
        factors=INT_POS, learning_rate=FLOAT_POS, regularization=FLOAT_NONNEG,
        iterations=INT_NONNEG, dtype=DTYPE, num_threads=THREADS, random_state=SEED,
        verify_negative_samples=BOOL,
        learning_schedule=[("unknown", "sometimes", ValueError, "one of")],
        negative_sampling=[("unknown", "random", ValueError, "one of")]),
    fastals.WARP: dict(factors=INT_POS, learning_rate=FLOAT_POS, max_sampled=INT_POS),
    fastals.LogisticMatrixFactorization: dict(
        factors=INT_POS, learning_rate=FLOAT_POS, regularization=FLOAT_NONNEG,
        iterations=INT_NONNEG, neg_prop=INT_NONNEG, dtype=DTYPE, num_threads=THREADS,
        random_state=SEED),
}
HYPER[fastals.AlternatingLeastSquares] = HYPER[fastals.ImplicitALS]  # implicit's weighting
bad("AlternatingLeastSquares(alpha=<0>)", call(fastals.AlternatingLeastSquares, alpha=0.0),
    ValueError, "alpha", "zero confidence")
for cls, params in HYPER.items():
    for param, values in params.items():
        for what, value, error, match in values:
            bad(f"{cls.__name__}({param}=<{what}>)", call(cls, **{param: value}), error, param,
                re.escape(match) if match in ("> 0", ">= 0") else match)

# a parameter made bad after construction is caught again by fit
for cls, param, value, data in [(fastals.ImplicitALS, "factors", "8", R),
                                (fastals.ExplicitALS, "iterations", -2, RATINGS),
                                (fastals.SGDMatrixFactorization, "learning_rate", 0.0, RATINGS),
                                (fastals.ItemKNN, "K", 0, R),
                                (fastals.UserKNN, "similarity", "bm25", R),
                                (fastals.ContentKNN, "K", 1.5, FEATURES)]:
    def set_then_fit(data, cls=cls, param=param, value=value):
        model = cls()
        setattr(model, param, value)
        return model.fit(data, show_progress=False)
    bad(f"{cls.__name__}.fit after setting {param}={value!r}", call(set_then_fit, data),
        (TypeError, ValueError), param)

# fit: the training matrix, and show_progress / callback
FITS = [(fastals.ImplicitALS(factors=2, iterations=1), R, "user_items", True),
        (fastals.ExplicitALS(factors=2, iterations=1), RATINGS, "ratings", True),
        (fastals.SGDMatrixFactorization(factors=2, epochs=1), RATINGS, "ratings", True),
        (fastals.ItemKNN(K=3), R, "user_items", True),
        (fastals.BM25Recommender(K=3), R, "user_items", True),
        (fastals.UserKNN(K=3), RATINGS, "user_items", True),
        (fastals.ContentKNN(K=3), sp.csr_matrix(FEATURES), "item_features", True),
        (fastals.PopularityBaseline(), R, "user_items", True),
        (fastals.EASE(), R, "user_items", True),
        (fastals.RP3beta(K=3), R, "user_items", True)]
for model, data, name, float32 in FITS:
    label = type(model).__name__
    dense_ok = isinstance(model, fastals.ContentKNN)
    for what, matrix, error, match in bad_matrices(data, name, float32):
        if dense_ok and what in ("dense ndarray", "list of lists"):
            continue  # ContentKNN takes dense features (see ACCEPTED)
        if dense_ok and what in ("None", "a string"):
            error, match = TypeError, "sparse"
        bad(f"{label}.fit({name}=<{what}>)",
            call(model.fit, matrix, show_progress=False), error, name, match)
    empty = sp.csr_matrix(data.shape)
    bad(f"{label}.fit({name}=<no stored values>)", call(model.fit, empty, show_progress=False),
        ValueError, name, "empty")
    bad(f"{label}.fit({name}=<0 x 0>)", call(model.fit, sp.csr_matrix((0, 0)),
                                             show_progress=False), ValueError, name, "empty")
    if name != "ratings":  # (stored zeros are ratings for the explicit models)
        zeros = sp.coo_matrix((np.array([0.0, 2.0, -2.0]), (np.array([0, 1, 1]),
                                                            np.array([0, 1, 1]))),
                              shape=data.shape)
        bad(f"{label}.fit({name}=<only stored zeros and entries that cancel>)",
            call(model.fit, zeros, show_progress=False), ValueError, name, "empty")
    bad(f"{label}.fit(show_progress=<a string>)", call(model.fit, data, show_progress="no"),
        TypeError, "show_progress")
    bad(f"{label}.fit(callback=<not callable>)", call(model.fit, data, show_progress=False,
                                                       callback=3), TypeError, "callback")

# fit's validation arguments (the shared mechanism of fastals.models.validation)
for model, data, _, _ in FITS[:3]:
    label = type(model).__name__
    pair = (data, data)
    for what, kwargs, error, name in [
            ("metric=<misspelt>", dict(validation=pair, metric="ndgc@10"), ValueError, "metric"),
            ("metric=<not a string>", dict(validation=pair, metric=10), TypeError, "metric"),
            ("metric=<without validation data>", dict(metric="ndcg@10"), ValueError, "metric"),
            ("early_stopping_rounds=<0>", dict(validation=pair, early_stopping_rounds=0),
             ValueError, "early_stopping_rounds"),
            ("early_stopping_rounds=<without validation data>",
             dict(early_stopping_rounds=2), ValueError, "early_stopping_rounds"),
            ("validation_split=<1.5>", dict(validation_split=1.5), ValueError,
             "validation_split"),
            ("validation_split=<and validation>", dict(validation=pair, validation_split=0.2),
             ValueError, "validation_split"),
            ("validation=<one matrix, not a pair>", dict(validation=data), TypeError,
             "validation"),
            ("validation=<held_out with other items>",
             dict(validation=(data, sp.csr_matrix((data.shape[0], data.shape[1] + 1)))),
             ValueError, "held_out"),
            ("validation=<held_out with NaN>", dict(validation=(data, _with_value(data, np.nan))),
             ValueError, "held_out")]:
        bad(f"{label}.fit({what})", call(model.fit, data, show_progress=False, **kwargs), error,
            name)
bad("ImplicitALS.fit(metric=<'rmse': it predicts no ratings>)",
    call(fastals.ImplicitALS(factors=2, iterations=1).fit, R, show_progress=False,
         validation=(R, R), metric="rmse"), ValueError, "metric")

for cls, data in [(fastals.ExplicitALS, RATINGS), (fastals.SGDMatrixFactorization, RATINGS)]:
    duplicated = sp.coo_matrix((np.array([4.0, 2.0, 5.0]), (np.array([0, 0, 1]),
                                                            np.array([1, 1, 2]))), shape=(3, 3))
    bad(f"{cls.__name__}.fit(ratings=<a (user, item) pair stored twice>)",
        call(cls(factors=2).fit, duplicated, show_progress=False), ValueError, "ratings",
        "duplicate")
for cls in (fastals.TFIDFRecommender, fastals.BM25Recommender):
    bad(f"{cls.__name__}.fit(user_items=<negative counts>)",
        call(cls(K=3).fit, _with_value(R, -2.0), show_progress=False), ValueError, "user_items",
        "non-negative")
bad("ContentKNN(similarity='bm25').fit(item_features=<negative values>)",
    call(fastals.ContentKNN(K=3, similarity="bm25").fit, -FEATURES, show_progress=False),
    ValueError, "item_features", "non-negative")
bad("ContentKNN.fit(item_features=<ragged lists>)",
    call(fastals.ContentKNN(K=3).fit, [[1, 0], [1]], show_progress=False), ValueError,
    "item_features", "2-D")
bad("ContentKNN.fit(item_features=<3-D array>)",
    call(fastals.ContentKNN(K=3).fit, np.ones((2, 2, 2)), show_progress=False), ValueError,
    "item_features", "2-D")
bad("ContentKNN.fit(item_features=<text>)",
    call(fastals.ContentKNN(K=3).fit, np.array([["a", "b"]]), show_progress=False), TypeError,
    "item_features", "real numbers")

# EASE's dense items x items matrix: refused beyond max_items, naming the memory
bad("EASE.fit(user_items=<more items than max_items>)",
    call(fastals.EASE(max_items=N_ITEMS - 1).fit, R, show_progress=False), ValueError,
    "max_items", "0.4 kB")
bad("EASE.fit(user_items=<100,000 items, beyond the default max_items>)",
    call(fastals.EASE().fit, sp.csr_matrix((np.ones(1), ([0], [99_999])), shape=(1, 100_000)),
         show_progress=False), ValueError, "max_items", "40.0 GB")
bad("RP3beta.fit(user_items=<negative values>)",
    call(fastals.RP3beta(K=3).fit, -R, show_progress=False), ValueError, "user_items",
    "non-negative")

# recommend / similar_items / similar_users: the shared contract, on every model
QUERY_MODELS = ["implicit", "explicit", "sgd", "itemknn", "userknn", "popularity", "ease",
                "rp3beta"]
ROWS = {"implicit": R, "explicit": RATINGS, "sgd": RATINGS, "itemknn": R, "userknn": RATINGS,
        "popularity": R, "contentknn": R, "ease": R, "rp3beta": R}
for model in QUERY_MODELS + ["contentknn"]:
    rows = ROWS[model]
    rec = f"{model}.recommend"
    ranged = model != "contentknn"  # ContentKNN has no users: userid only labels the rows
    if ranged:
        bad(f"{model}.recommend(userid=<n_users>)", call(rec, N_USERS, rows[0]),
            IdOutOfRangeError, "userid", "out of range")
        bad(f"{model}.recommend(userid=<n_users in a batch>)", call(rec, [0, N_USERS], rows),
            IdOutOfRangeError, "userid", "out of range")
        bad(f"{model}.recommend(userid=<uint64 2**64-1>)",
            call(rec, np.array([2**64 - 1], dtype=np.uint64), rows), IdOutOfRangeError,
            "userid", "out of range")
    bad(f"{model}.recommend(userid=<-1>)", call(rec, -1, rows[0]), IdOutOfRangeError, "userid",
        "out of range")
    bad(f"{model}.recommend(userid=<2.5>)", call(rec, 2.5, rows[0]), TypeError, "userid",
        "integer ids")
    bad(f"{model}.recommend(userid=<'0'>)", call(rec, "0", rows[0]), TypeError, "userid",
        "integer ids")
    bad(f"{model}.recommend(userid=<True>)", call(rec, True, rows[0]), TypeError, "userid",
        "integer ids")
    bad(f"{model}.recommend(userid=<None>)", call(rec, None, rows[0]), TypeError, "userid",
        "integer ids")
    bad(f"{model}.recommend(userid=<NaN>)", call(rec, float("nan"), rows[0]), TypeError,
        "userid", "integer ids")
    bad(f"{model}.recommend(userid=<2-D>)", call(rec, [[0, 1]], rows[:2]), ValueError, "userid",
        "1-D")
    bad(f"{model}.recommend(userid=<ragged lists>)", call(rec, [[0, 1], [2]], rows[:2]),
        TypeError, "userid")
    for what, N, error, match in [("0", 0, ValueError, "positive"), ("-3", -3, ValueError,
                                                                     "positive"),
                                  ("'5'", "5", TypeError, "int"), ("True", True, TypeError, "int"),
                                  ("2.5", 2.5, TypeError, "int"), ("None", None, TypeError, "int")]:
        bad(f"{model}.recommend(N=<{what}>)", call(rec, 0, rows[0], N=N), error, "N", match)
    bad(f"{model}.recommend(filter_already_liked_items=<'yes'>)",
        call(rec, 0, rows[0], filter_already_liked_items="yes"), TypeError,
        "filter_already_liked_items")
    bad(f"{model}.recommend(recalculate_user=<1>)", call(rec, 0, rows[0], recalculate_user=1),
        TypeError, "recalculate_user")
    for what, ids, error, match in [("n_items", [N_ITEMS], IdOutOfRangeError, "out of range"),
                                    ("-1", [-1], IdOutOfRangeError, "out of range"),
                                    ("1.5", [1.5], TypeError, "integer ids"),
                                    ("text", ["a"], TypeError, "integer ids"),
                                    ("2-D", [[1, 2]], ValueError, "1-D")]:
        bad(f"{model}.recommend(filter_items=<{what}>)", call(rec, 0, rows[0], filter_items=ids),
            error, "filter_items", match)
        bad(f"{model}.recommend(items=<{what}>)", call(rec, 0, rows[0], items=ids), error,
            "items", match)
    bad(f"{model}.recommend(items=<an id twice>)", call(rec, 0, rows[0], items=[1, 1]),
        ValueError, "items", "duplicate")
    bad(f"{model}.recommend(user_items=<missing>)", call(rec, 0), ValueError, "user_items",
        "required" if ranged else "needs user_items")
    bad(f"{model}.recommend(user_items=<one column too many>)",
        call(rec, 0, wrong_columns(1, N_ITEMS)), ValueError, "user_items", "columns")
    if ranged:
        bad(f"{model}.recommend(user_items=<2 rows for 3 users>)", call(rec, [0, 1, 2], rows[:2]),
            ValueError, "user_items", "one row per")
    for what, matrix, error, match in bad_matrices(rows[:1], "user_items"):
        if what == "None":
            continue  # user_items=None is "missing", above
        bad(f"{model}.recommend(user_items=<{what}> as the user's row)", call(rec, 0, matrix),
            error, "user_items", match)
    for what, matrix, error, match in bad_matrices(rows, "user_items")[9:]:
        # (the damage is in row 0: a damaged row that is not asked for is not read)
        bad(f"{model}.recommend(user_items=<{what}> as the full matrix)",
            call(rec, [0, 3], matrix), error, "user_items", match)
    sim = f"{model}.similar_items"
    if model != "popularity":
        bad(f"{model}.similar_items(itemid=<n_items>)", call(sim, N_ITEMS), IdOutOfRangeError,
            "itemid", "out of range")
        bad(f"{model}.similar_items(itemid=<-1>)", call(sim, -1), IdOutOfRangeError, "itemid",
            "out of range")
        bad(f"{model}.similar_items(itemid=<'3'>)", call(sim, "3"), TypeError, "itemid",
            "integer ids")
        bad(f"{model}.similar_items(itemid=<1.5>)", call(sim, 1.5), TypeError, "itemid",
            "integer ids")
        bad(f"{model}.similar_items(N=<0>)", call(sim, 0, N=0), ValueError, "N", "positive")
        bad(f"{model}.similar_items(filter_items=<n_items>)",
            call(sim, 0, filter_items=[N_ITEMS]), IdOutOfRangeError, "filter_items")
        bad(f"{model}.similar_items(items=<an id twice>)", call(sim, 0, items=[2, 2]),
            ValueError, "items", "duplicate")
    if model not in ("popularity", "contentknn"):
        simu = f"{model}.similar_users"
        bad(f"{model}.similar_users(userid=<n_users>)", call(simu, N_USERS), IdOutOfRangeError,
            "userid", "out of range")
        bad(f"{model}.similar_users(userid=<True>)", call(simu, True), TypeError, "userid")
        bad(f"{model}.similar_users(filter_users=<-1>)", call(simu, 0, filter_users=[-1]),
            IdOutOfRangeError, "filter_users")
        bad(f"{model}.similar_users(users=<an id twice>)", call(simu, 0, users=[3, 3]),
            ValueError, "users", "duplicate")
bad("popularity.similar_items(<any item>)", call("popularity.similar_items", 0), TypeError,
    "PopularityBaseline", "no notion")
bad("contentknn.similar_users(<any user>)", call("contentknn.similar_users", 0), TypeError,
    "ContentKNN", "no users")
bad("unfitted ImplicitALS.recommend", call("unfitted.recommend", 0, R[0]), NotFittedError,
    "fit")
bad("unfitted ImplicitALS.similar_items", call("unfitted.similar_items", 0), NotFittedError,
    "fit")

# ImplicitALS: what a fit on given data would use
for method in ("regularization_for", "regularization_limit"):
    probe = fastals.ImplicitALS()
    for what, matrix, error, match in bad_matrices(R, "user_items"):
        bad(f"ImplicitALS.{method}(user_items=<{what}>)", call(getattr(probe, method), matrix),
            error, "user_items", match)
    bad(f"ImplicitALS.{method}(user_items=<no stored values>)",
        call(getattr(probe, method), sp.csr_matrix(R.shape)), ValueError, "user_items")
for what, value, error, match in FLOAT_NONNEG:
    if value is None:
        continue  # None is the default: no early stop
    bad(f"ImplicitALS.regularization_limit(at_least=<{what}>)",
        call(fastals.ImplicitALS().regularization_limit, R, at_least=value), error, "at_least",
        match)

# ImplicitALS fold-in
bad("implicit.recalculate_user(user_items=<wrong columns>)",
    call("implicit.recalculate_user", 0, wrong_columns(1, N_ITEMS)), ValueError, "user_items",
    "columns")
bad("implicit.recalculate_user(userid=<-2>)", call("implicit.recalculate_user", -2, R[0]),
    IdOutOfRangeError, "userid")
bad("implicit.recalculate_item(item_users=<wrong columns>)",
    call("implicit.recalculate_item", 0, wrong_columns(1, N_USERS)), ValueError, "item_users",
    "columns")
bad("implicit.recalculate_item(item_users=<NaN>)",
    call("implicit.recalculate_item", 0, _with_value(R.T.tocsr()[:1], np.nan)), ValueError,
    "item_users", "NaN")
bad("implicit.partial_fit_users(userids=<an id twice>)",
    call("implicit.partial_fit_users", [12, 12], R[:2]), ValueError, "userids", "duplicate")
bad("implicit.partial_fit_users(userids=<-1>)", call("implicit.partial_fit_users", [-1], R[:1]),
    IdOutOfRangeError, "userids")
bad("implicit.partial_fit_users(user_items=<rows != ids>)",
    call("implicit.partial_fit_users", [12, 13], R[:3]), ValueError, "user_items", "rows")
bad("implicit.partial_fit_users(user_items=<dense>)",
    call("implicit.partial_fit_users", [12], R[:1].toarray()), TypeError, "user_items", "dense")
bad("implicit.partial_fit_items(item_users=<wrong columns>)",
    call("implicit.partial_fit_items", [10], wrong_columns(1, N_USERS)), ValueError,
    "item_users", "columns")

# explicit models: predict and evaluate
for model in ("explicit", "sgd"):
    pred = f"{model}.predict"
    bad(f"{model}.predict(<3 users, 2 items>)", call(pred, [0, 1, 2], [0, 1]), ValueError,
        "user_ids and item_ids", "same length")
    bad(f"{model}.predict(user_ids=<-1>)", call(pred, -1, 0), IdOutOfRangeError, "user_ids")
    bad(f"{model}.predict(item_ids=<1.5>)", call(pred, 0, 1.5), TypeError, "item_ids")
    bad(f"{model}.predict(user_ids=<text>)", call(pred, ["a"], [0]), TypeError, "user_ids")
    bad(f"{model}.predict(item_ids=<2-D>)", call(pred, [0], [[0]]), ValueError, "item_ids")
    bad(f"{model}.predict(clip=<'yes'>)", call(pred, 0, 0, clip="yes"), TypeError, "clip")
    bad(f"{model}.predict(return_known=<1>)", call(pred, 0, 0, return_known=1), TypeError,
        "return_known")
    duplicated = sp.coo_matrix((np.array([4.0, 2.0]), (np.array([0, 0]), np.array([1, 1]))),
                               shape=(2, 2))
    bad(f"{model}.evaluate(ratings=<a pair stored twice>)", call(f"{model}.evaluate", duplicated),
        ValueError, "ratings", "duplicate")
    bad(f"{model}.evaluate(ratings=<NaN>)", call(f"{model}.evaluate", _with_value(RATINGS,
                                                                                 np.nan)),
        ValueError, "ratings", "NaN")
    bad(f"{model}.evaluate(ratings=<no ratings>)", call(f"{model}.evaluate",
                                                        sp.csr_matrix((3, 3))),
        ValueError, "ratings", "empty")
    bad(f"{model}.rmse(clip=<None>)", call(f"{model}.rmse", RATINGS, clip=None), TypeError,
        "clip")

# UserKNN: predict and most_similar_users
bad("userknn.predict(<3 users, 2 items>)", call("userknn.predict", [0, 1, 2], [0, 1]),
    ValueError, "userid and itemid", "same length")
bad("userknn.predict(itemid=<n_items>)", call("userknn.predict", 0, N_ITEMS), IdOutOfRangeError,
    "itemid")
bad("userknn.predict(userid=<n_users>)", call("userknn.predict", N_USERS, 0), IdOutOfRangeError,
    "userid")
bad("userknn.predict(user_items=<2 rows for 3 predictions>)",
    call("userknn.predict", [0, 1, 2], [0, 1, 2], user_items=RATINGS[:2]), ValueError,
    "user_items", "one row per prediction")
bad("userknn.predict(user_items=<wrong columns>)",
    call("userknn.predict", 0, 0, user_items=wrong_columns(1, N_ITEMS)), ValueError,
    "user_items", "columns")
bad("userknn.predict(return_neighbours=<'yes'>)",
    call("userknn.predict", 0, 0, return_neighbours="yes"), TypeError, "return_neighbours")
bad("userknn.most_similar_users(vector=<wrong length>)",
    call("userknn.most_similar_users", np.ones(N_ITEMS + 1)), ValueError, "vector", "columns")
bad("userknn.most_similar_users(vector=<NaN>)",
    call("userknn.most_similar_users", np.full(N_ITEMS, np.nan)), ValueError, "vector", "NaN")
bad("userknn.most_similar_users(vector=<text>)",
    call("userknn.most_similar_users", ["a"] * N_ITEMS), TypeError, "vector", "real numbers")
bad("userknn.most_similar_users(N=<0>)", call("userknn.most_similar_users", np.ones(N_ITEMS),
                                              N=0), ValueError, "N")

# fastals.similarity.top_k_similarity
TOPK = fastals.top_k_similarity
for what, value, error, match in INT_POS[:5]:
    bad(f"top_k_similarity(K=<{what}>)", call(TOPK, R, K=value), error, "K", match)
bad("top_k_similarity(similarity=<'euclid'>)", call(TOPK, R, similarity="euclid"), ValueError,
    "similarity")
bad("top_k_similarity(dtype=<int64>)", call(TOPK, R, dtype=np.int64), ValueError, "dtype")
bad("top_k_similarity(num_threads=<-1>)", call(TOPK, R, num_threads=-1), ValueError,
    "num_threads")
bad("top_k_similarity(skip_self=<'yes'>)", call(TOPK, R, R, skip_self="yes"), TypeError,
    "skip_self")
bad("top_k_similarity(show_progress=<1>)", call(TOPK, R, show_progress=1), TypeError,
    "show_progress")
bad("top_k_similarity(B=<other columns>)", call(TOPK, R, wrong_columns(3, N_ITEMS)),
    ValueError, "B", "columns")
bad("top_k_similarity(skip_self=True with A longer than B)", call(TOPK, R, R[:3], skip_self=True),
    ValueError, "skip_self")
bad("top_k_similarity(A=<ragged lists>)", call(TOPK, [[1, 0], [1]]), ValueError, "A")
bad("top_k_similarity(A=<3-D>)", call(TOPK, np.ones((2, 2, 2))), ValueError, "A", "2-D")
bad("top_k_similarity(A=<dense with NaN>)", call(TOPK, np.array([[1.0, np.nan]])), ValueError,
    "A", "NaN")
bad("top_k_similarity(A=<text>)", call(TOPK, np.array([["a"]])), TypeError, "A", "real numbers")
bad("top_k_similarity(A=<None>)", call(TOPK, None), TypeError, "A")
for what, matrix, error, match in bad_matrices(R, "A")[9:]:
    bad(f"top_k_similarity(A=<{what}>)", call(TOPK, matrix), error, "A", match)
    bad(f"top_k_similarity(B=<{what}>)", call(TOPK, R, matrix), error, "B", match)

# fastals.evaluation
E = evaluation
for what, value, error, match in [("0", 0.0, ValueError, "> 0"), ("1", 1.0, ValueError, "< 1"),
                                  ("1.5", 1.5, ValueError, "<= 1"),
                                  ("a string", "0.2", TypeError, "number"),
                                  ("NaN", float("nan"), ValueError, "finite")]:
    bad(f"train_test_split(test_size=<{what}>)", call(E.train_test_split, R, test_size=value),
        error, "test_size", re.escape(match))
    bad(f"train_test_split(train_percentage=<{what}>)",
        call(E.train_test_split, R, train_percentage=value), error, "train_percentage",
        re.escape(match))
bad("train_test_split(<test_size and train_percentage>)",
    call(E.train_test_split, R, 0.2, train_percentage=0.8), ValueError, "train_percentage",
    "not both")
bad("train_test_split(random_state=<'x'>)", call(E.train_test_split, R, random_state="x"),
    TypeError, "random_state")
for what, matrix, error, match in bad_matrices(R, "data", float32=False):
    if what == "list of lists":
        match = "sparse"
    bad(f"train_test_split(data=<{what}>)", call(E.train_test_split, matrix), error, "data",
        match)
bad("leave_k_out_split(K=<0>)", call(E.leave_k_out_split, R, K=0), ValueError, "K")
bad("leave_k_out_split(K=<True>)", call(E.leave_k_out_split, R, K=True), TypeError, "K")
bad("leave_k_out_split(train_only_size=<1>)", call(E.leave_k_out_split, R, train_only_size=1.0),
    ValueError, "train_only_size")
bad("leave_k_out_split(by_time=<'yes'>)", call(E.leave_k_out_split, R, by_time="yes"),
    TypeError, "by_time")
bad("leave_k_out_split(by_time=True without timestamps)",
    call(E.leave_k_out_split, R, by_time=True), ValueError, "by_time", "timestamps")
bad("split_by_time(<no timestamps>)", call(E.split_by_time, R), ValueError, "timestamps")
bad("split_by_time(timestamps=<wrong length>)", call(E.split_by_time, R, timestamps=[1, 2]),
    ValueError, "timestamps", "one value per")
bad("split_by_time(timestamps=<NaN>)",
    call(E.split_by_time, R, timestamps=np.full(R.nnz, np.nan)), ValueError, "timestamps",
    "NaN")
bad("split_by_time(timestamps=<text>)", call(E.split_by_time, R, timestamps=["x"] * R.nnz),
    TypeError, "timestamps", "numbers")
bad("split_by_time(cutoff=<'2020'>)", call(E.split_by_time, R, timestamps=np.arange(R.nnz),
                                           cutoff="2020"), TypeError, "cutoff")
RANK = E.ranking_metrics_at_k
bad("ranking_metrics_at_k(model=<a string>)", call(RANK, "als", R, R), TypeError, "model")
bad("ranking_metrics_at_k(model=<unfitted>)", call(RANK, fastals.ImplicitALS(), R, R),
    NotFittedError, "fit")
bad("ranking_metrics_at_k(K=<0>)", call(RANK, Lazy(lambda f: f.implicit), R, R, K=0), ValueError,
    "K")
bad("ranking_metrics_at_k(test_user_items=<other shape>)",
    call(RANK, Lazy(lambda f: f.implicit), R, R[:5]), ValueError, "test_user_items", "shape")
bad("ranking_metrics_at_k(train_user_items=<more items than the model>)",
    call(RANK, Lazy(lambda f: f.implicit), wrong_columns(N_USERS, N_ITEMS),
         wrong_columns(N_USERS, N_ITEMS)), ValueError, "model knows")
bad("ranking_metrics_at_k(num_threads=<'2'>)",
    call(RANK, Lazy(lambda f: f.implicit), R, R, num_threads="2"), TypeError, "num_threads")
bad("ranking_metrics_at_k(show_progress=<'no'>)",
    call(RANK, Lazy(lambda f: f.implicit), R, R, show_progress="no"), TypeError,
    "show_progress")
for what, matrix, error, match in bad_matrices(R, "test_user_items", float32=False)[9:]:
    bad(f"ranking_metrics_at_k(test_user_items=<{what}>)",
        call(RANK, Lazy(lambda f: f.implicit), R, matrix), error, "test_user_items", match)
    bad(f"ranking_metrics_at_k(train_user_items=<{what}>)",
        call(RANK, Lazy(lambda f: f.implicit), matrix, R), error, "train_user_items", match)
bad("ranking_metrics_at_k(test_user_items=<NaN>)",
    call(RANK, Lazy(lambda f: f.implicit), R, _with_value(R, np.nan)), ValueError,
    "test_user_items", "NaN")
METRICS = E.metrics_from_recommendations
LISTS = np.array([[0, 1, 2], [3, 4, 5]])
bad("metrics_from_recommendations(recommended=<1-D>)", call(METRICS, [0, 1], R), ValueError,
    "recommended", "2-D")
bad("metrics_from_recommendations(recommended=<floats>)", call(METRICS, LISTS * 1.0, R),
    TypeError, "recommended", "integer")
bad("metrics_from_recommendations(recommended=<an id >= n_items>)",
    call(METRICS, LISTS + N_ITEMS, R), ValueError, "recommended", "-1")
bad("metrics_from_recommendations(recommended=<an item twice in a row>)",
    call(METRICS, np.array([[1, 1, 2]]), R), ValueError, "recommended", "twice")
bad("metrics_from_recommendations(users=<-1>)", call(METRICS, LISTS, R, users=[-1, 0]),
    IdOutOfRangeError, "users", "out of range")
bad("metrics_from_recommendations(users=<1.5>)", call(METRICS, LISTS, R, users=[1.5, 0]),
    TypeError, "users", "integer")
bad("metrics_from_recommendations(users=<text>)", call(METRICS, LISTS, R, users=["1", "0"]),
    TypeError, "users", "integer")
bad("metrics_from_recommendations(users=<3 for 2 lists>)",
    call(METRICS, LISTS, R, users=[0, 1, 2]), ValueError, "users", "rows")
bad("metrics_from_recommendations(n_items=<fewer than the columns>)",
    call(METRICS, LISTS, R, n_items=3), ValueError, "n_items")
bad("metrics_from_recommendations(K=<0>)", call(METRICS, LISTS, R, K=0), ValueError, "K")
bad("rmse(<model>, test_user_items=<more items>)",
    call(E.rmse, Lazy(lambda f: f.explicit), wrong_columns(3, N_ITEMS)), ValueError,
    "test_user_items")
bad("rmse(y_true, y_pred=<other length>)", call(E.rmse, [1, 2, 3], [1, 2]), ValueError,
    "y_true and y_pred", "same length")
bad("rmse(y_pred=<NaN>)", call(E.rmse, [1.0, 2.0], [1.0, np.nan]), ValueError, "y_pred",
    "finite")
bad("mae(y_true=<text>)", call(E.mae, ["a", "b"], [1.0, 2.0]), TypeError, "y_true", "numbers")
bad("rmse(<empty arrays>)", call(E.rmse, [], []), ValueError, "test ratings", "nothing to score")
bad("cross_validate(folds=<1>)", call(E.cross_validate, fastals.ImplicitALS(), R, folds=1),
    ValueError, "folds")
bad("cross_validate(measures=<'accuracy'>)",
    call(E.cross_validate, fastals.ImplicitALS(), R, measures=["accuracy"]), ValueError,
    "measures", "unknown")
bad("cross_validate(model=<a class, not a model>)", call(E.cross_validate, fastals.ImplicitALS, R),
    TypeError, "model")
bad("cross_validate(data=<fewer values than folds>)",
    call(E.cross_validate, fastals.ImplicitALS(), sp.csr_matrix(np.eye(3)), folds=5),
    ValueError, "folds")

# fastals.data
bad("from_arrays(<users and items of other lengths>)", call(from_arrays, [1, 2], [1]),
    ValueError, "users and items", "same length")
bad("from_arrays(values=<other length>)", call(from_arrays, [1, 2], [1, 2], [1.0]), ValueError,
    "values")
bad("from_arrays(values=<inf>)", call(from_arrays, [1, 2], [1, 2], [1.0, np.inf]), ValueError,
    "values", "finite")
bad("from_arrays(values=<text>)", call(from_arrays, [1], [1], ["many"]), ValueError, "values")
bad("from_arrays(timestamps=<text>)", call(from_arrays, [1], [1], [1.0], ["soon"]), ValueError,
    "timestamps", "numbers or dates")
bad("from_arrays(users=<a string>)", call(from_arrays, "ann", ["x"]), ValueError, "users", "1-D")
bad("from_arrays(users=<2-D>)", call(from_arrays, [[1, 2]], [1, 2]), ValueError, "users")
bad("from_arrays(duplicates=<'bogus'>)", call(from_arrays, [1], [1], duplicates="bogus"),
    ValueError, "duplicates")
bad("from_arrays(duplicates='error' with a repeated pair)",
    call(from_arrays, [1, 1], [2, 2], duplicates="error"), ValueError, "duplicate")
bad("from_arrays(dtype=<int>)", call(from_arrays, [1], [1], dtype=int), ValueError, "dtype")
bad("from_arrays(<every record missing>)", call(from_arrays, [None], [1]), ValueError,
    "interactions", "no interactions")
bad("from_arrays(user_ids=<not an IdMapping>)", call(from_arrays, [1], [1], user_ids=[1]),
    TypeError, "user_ids")
for what, matrix, error, match in bad_matrices(R, "user_items", float32=False):
    if what == "list of lists":
        match = "sparse"
    bad(f"Interactions(user_items=<{what}>)", call(Interactions, matrix), error, "user_items",
        match)
bad("Interactions(users=<wrong length>)",
    call(Interactions, R, users=IdMapping(np.arange(3))), ValueError, "users")
bad("Interactions(users=<a list>)", call(Interactions, R, users=list(range(N_USERS))), TypeError,
    "users", "IdMapping")
bad("Interactions(timestamps=<wrong length>)", call(Interactions, R, timestamps=[1, 2]),
    ValueError, "timestamps")
bad("Interactions(item_info=<wrong length>)", call(Interactions, R, item_info={"title": ["a"]}),
    ValueError, "item_info")
bad("IdMapping(<repeated id>)", call(IdMapping, ["a", "b", "a"], name="user"), ValueError,
    "user ids", "not unique")
bad("IdMapping(<a missing id>)", call(IdMapping, ["a", None], name="item"), ValueError,
    "item ids", "missing")
bad("IdMapping(<an unhashable id>)", call(IdMapping, [["a"], "b"], name="item"), TypeError,
    "item ids", "hashable")
bad("IdMapping.index(<unknown id>)", call(IdMapping(["a"], name="user").index, "zed"),
    IdOutOfRangeError, "user 'zed'", "not known")
bad("IdMapping.index(missing=<'skip'>)", call(IdMapping(["a"]).index, "a", missing="skip"),
    ValueError, "missing")
bad("IdRecommender(model=<a string>)", call(IdRecommender, "als"), TypeError, "model")
bad("IdRecommender(data=<a list>)",
    call(IdRecommender(fastals.ImplicitALS(factors=2)).fit, [[1, 2]]), TypeError, "data")
for what, matrix, error, match in bad_matrices(R, "user_items", float32=False)[9:]:
    bad(f"IdRecommender(user_items=<{what}>)",
        call(IdRecommender, Lazy(lambda f: f.implicit), user_items=matrix), error, "user_items",
        match)
bad("IdRecommender(user_items=<other shape>)",
    call(IdRecommender, Lazy(lambda f: f.implicit), user_items=R[:3]), ValueError, "user_items",
    "shape")
bad("idrec.recommend(<unknown user>)", call("idrec.recommend", "nobody"), IdOutOfRangeError,
    "user 'nobody'", "not known")
bad("idrec.recommend(N=<0>)", call("idrec.recommend", "u1", N=0), ValueError, "N")
bad("idrec.recommend(history with several users)",
    call("idrec.recommend", ["u1", "u2"], history=["i1"]), ValueError, "history")
bad("idrec.recommend(history=<unknown item>)", call("idrec.recommend", "new", history=["zz"]),
    IdOutOfRangeError, "item 'zz'")
bad("idrec.similar_items(<unknown item>)", call("idrec.similar_items", "zz"), IdOutOfRangeError,
    "item 'zz'")
bad("idrec.predict(<2 users, 1 item list of 3>)",
    call("idrec.predict", ["u1", "u2"], ["i1", "i2", "i3"]), ValueError, "users and items")
bad("score_pairs(model=<a string>)", call(score_pairs, "als", [0], [0]), TypeError, "model")
bad("score_pairs(itemids=<n_items>)", call(score_pairs, Lazy(lambda f: f.implicit), [0], [N_ITEMS]),
    IdOutOfRangeError, "itemids")
bad("score_pairs(<2 users, 1 item>)", call(score_pairs, Lazy(lambda f: f.implicit), [0, 1], [0]),
    ValueError, "userids and itemids", "same length")
for fn, kwargs, error, name in [(linear_weight, dict(alpha=0), ValueError, "alpha"),
                                (linear_weight, dict(alpha="40"), TypeError, "alpha"),
                                (log_weight, dict(epsilon=0), ValueError, "epsilon"),
                                (log_weight, dict(alpha=float("nan")), ValueError, "alpha"),
                                (bm25_weight, dict(K1=-1), ValueError, "K1"),
                                (bm25_weight, dict(B=2), ValueError, "B")]:
    (what, value), = kwargs.items()
    bad(f"{fn.__name__}({what}=<{value!r}>)", call(fn, R, **kwargs), error, name)
bad("tfidf_weight(X=<negative values>)", call(tfidf_weight, _with_value(R, -1.0)), ValueError,
    "tfidf_weight", "non-negative")
for fn in (linear_weight, tfidf_weight):
    for what, matrix, error, match in bad_matrices(R, "X", float32=False)[:10]:
        if what == "list of lists":
            match = "sparse"
        bad(f"{fn.__name__}(X=<{what}>)", call(fn, matrix), error, "X", match)
bad("read_csv(<missing file>)", call(read_csv, "/nonexistent/ratings.csv"), FileNotFoundError,
    "/nonexistent/ratings.csv")
bad("read_csv(<a folder>)", call(read_csv, Lazy(lambda f: f.folder)), IsADirectoryError,
    "is a directory")

# fastals.datasets
D = fastals.datasets
for fn, args, kwargs, error, name in [
        (D.synthetic_interactions, (-1, 5, 10), {}, ValueError, "n_users"),
        (D.synthetic_interactions, (5, 5, "x"), {}, TypeError, "nnz"),
        (D.synthetic_interactions, (2, 2, 100), {}, ValueError, "nnz"),
        (D.synthetic_interactions, (2.5, 2, 3), {}, TypeError, "n_users"),
        (D.synthetic_interactions, (5, 5, 3), dict(item_exponent=float("nan")), ValueError,
         "item_exponent"),
        (D.synthetic_interactions, (5, 5, 3), dict(dtype=np.int8), ValueError, "dtype"),
        (D.synthetic_ratings, (5, 5, 10), dict(dtype="banana"), TypeError, "dtype"),
        (D.synthetic_ratings, (5, 5, 10), dict(rank=0), ValueError, "rank"),
        (D.synthetic_ratings, (5, 5, 10), dict(noise=-1), ValueError, "noise"),
        (D.make_synthetic, (), dict(n_groups=0), ValueError, "n_groups"),
        (D.make_synthetic, (), dict(n_users=True), TypeError, "n_users"),
        (D.load, ("nope",), {}, ValueError, "name"),
        (D.load_movielens_100k_split, ("u9",), {}, ValueError, "split"),
        (D.load_movielens_100k, ("/nonexistent",), {}, FileNotFoundError, "/nonexistent"),
        (D.load_movielens, ("/nonexistent",), {}, FileNotFoundError, "/nonexistent")]:
    shown = ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])
    bad(f"{fn.__name__}({shown})", call(fn, *args, **kwargs), error, name)

# files: load what is not a fastals model, save where it cannot go
LOADS = [("truncated.npz", ModelFileError, "not a readable fastals model"),
         ("corrupted.npz", ModelFileError, "not a readable fastals model"),
         ("text.npz", ModelFileError, "not a readable fastals model"),
         ("empty.npz", ModelFileError, "not a readable fastals model"),
         ("plain.npz", ModelFileError, "not a fastals model"),
         ("version2.npz", ModelFileError, "format 2"),
         ("unknown_class.npz", ModelFileError, "'os.system' model"),
         ("bad_params.npz", ModelFileError, "invalid ImplicitALS.*factors"),
         ("unknown_param.npz", ModelFileError, "invalid ImplicitALS.*evil"),
         ("header_list.npz", ModelFileError, "not a JSON object"),
         ("missing_array.npz", ModelFileError, "missing the arrays.*item_factors"),
         ("nan_factors.npz", ModelFileError, "item_factors must be a finite"),
         ("wrong_shape.npz", ModelFileError, "item_factors must be a finite"),
         ("pickled.npz", ModelFileError, "Object arrays cannot be loaded"),
         ("a_folder.npz", ModelFileError, "not a readable fastals model")]
for name, error, match in LOADS:
    bad(f"fastals.load(<{name}>)", call(fastals.load, file(name)), error, name, match)
bad("ImplicitALS.load(<an ItemKNN file>)", call(fastals.ImplicitALS.load, file("itemknn.npz")),
    ModelFileError, "itemknn.npz", "not a ImplicitALS")
bad("ExplicitALS.load(<an ImplicitALS file>)", call(fastals.ExplicitALS.load, file("good.npz")),
    ModelFileError, "good.npz", "ImplicitALS")
bad("IdRecommender.load(<ids of the wrong length>)",
    call(IdRecommender.load, file("idrec_bad_ids.npz")), ModelFileError, "idrec_bad_ids.npz")
bad("IdRecommender.load(<truncated>)", call(IdRecommender.load, file("truncated.npz")),
    ModelFileError, "truncated.npz")
bad("fastals.load(<missing file>)", call(fastals.load, "/nonexistent/model.npz"),
    FileNotFoundError, "/nonexistent/model.npz")
bad("fastals.load(path=<None>)", call(fastals.load, None), TypeError, "path")
bad("fastals.load(path=<an int>)", call(fastals.load, 3.5), TypeError, "path")
bad("save(path=<None>)", call("implicit.save", None), TypeError, "path")
bad("save(path=<in a missing folder>)", call("implicit.save", "/nonexistent/folder/model.npz"),
    FileNotFoundError, "/nonexistent/folder")
bad("save(path=<a folder>)", call("implicit.save", file("a_folder.npz")), IsADirectoryError,
    "a_folder.npz", "folder")
bad("IdRecommender.save(path=<in a missing folder>)",
    call("idrec.save", "/nonexistent/folder/model.npz"), FileNotFoundError, "/nonexistent/folder")


# --- checking a case -------------------------------------------------------------------------
def snapshot(value):
    """A deep copy of everything a call could modify in place (None for immutables)."""
    if isinstance(value, str) and os.path.isfile(value):
        with open(value, "rb") as f:
            return ("file", f.read())
    if isinstance(value, (np.ndarray, list, tuple, dict)) or sp.issparse(value) \
            or isinstance(value, (IdMapping, Interactions)):
        return ("copy", copy.deepcopy(value))
    return None


def same(a, b):
    """Structural equality that treats NaN as equal to NaN and compares sparse internals."""
    if sp.issparse(a) or sp.issparse(b):
        if type(a) is not type(b) or a.shape != b.shape:
            return False
        parts = [p for p in ("data", "indices", "indptr", "offsets") if hasattr(a, p)]
        if a.format == "coo":
            return all(same(x, y) for x, y in zip(a.coords, b.coords)) and same(a.data, b.data)
        return all(same(getattr(a, p), getattr(b, p)) for p in parts)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if a.dtype.kind in "fc":
            return bool(np.array_equal(a, b, equal_nan=True))
        return bool(np.array_equal(a, b))
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, IdMapping):
        return a == b
    if isinstance(a, Interactions):
        return same(a.user_items, b.user_items)
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return a == b


def model_state(owner):
    if not isinstance(owner, fastals.RecommenderBase) or not owner.is_fitted:
        return None
    state = {name: np.array(getattr(owner, name), copy=True) for name in owner._state_names}
    state["__params__"] = repr(owner.get_params())
    return state


def run_case(case: Bad):
    """Call the entry point; return the exception raised (None if none), after checking that
    the arguments and the model are unchanged."""
    owner, fn, args, kwargs = case.call.prepare()
    inputs = list(args) + list(kwargs.values())
    before = [snapshot(v) for v in inputs]
    state = model_state(owner)
    raised = None
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)
    try:
        fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 -- the table says which one is right
        raised = exc
    finally:
        faulthandler.cancel_dump_traceback_later()
    for value, saved in zip(inputs, before):
        if saved is None:
            continue
        kind, old = saved
        if kind == "file":
            with open(value, "rb") as f:
                assert f.read() == old, f"{case.id}: the file {value} was modified"
        else:
            assert same(value, old), f"{case.id}: the caller's argument was modified"
    if state is not None:
        after = model_state(owner)
        assert after.keys() == state.keys() and all(same(after[k], state[k]) for k in state), \
            f"{case.id}: the fitted model was changed by a failed call"
    return raised


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in BAD])
def test_bad_input_raises_a_named_error(case):
    raised = run_case(case)
    assert raised is not None, f"{case.id}: accepted, but it must raise {case.error}"
    assert isinstance(raised, case.error), \
        f"{case.id}: raised {type(raised).__name__}: {raised}, expected {case.error}"
    message = str(raised)
    assert case.names in message, f"{case.id}: the message does not name {case.names!r}: {message}"
    assert re.search(case.match, message), \
        f"{case.id}: the message does not say {case.match!r}: {message}"


def test_a_load_never_runs_code_from_the_file():
    with pytest.raises(ModelFileError):
        fastals.load(FITTED.files["pickled.npz"])
    with pytest.raises(ModelFileError):
        IdRecommender.load(FITTED.files["pickled.npz"])
    assert not os.path.exists(FITTED.files["pickle marker"])


def test_every_public_model_is_in_the_table():
    tested = {c.call.target for c in BAD if isinstance(c.call.target, type)}
    models = {getattr(fastals, name) for name in fastals.__all__
              if isinstance(getattr(fastals, name), type)
              and issubclass(getattr(fastals, name), fastals.RecommenderBase)
              and getattr(fastals, name) is not fastals.RecommenderBase}
    assert models <= tested, f"no constructor cases for {models - tested}"


# --- unusual inputs that must be accepted ----------------------------------------------------
ACCEPTED: list = []


def accepted(id):
    """Register a check that an unusual but valid input works; it returns what it found."""
    def register(check):
        ACCEPTED.append(pytest.param(check, id=id))
        return check
    return register


def _fit_same(make, plain, unusual, attributes):
    """Fit make() on both inputs; the fitted arrays must be identical."""
    a = make().fit(plain, show_progress=False)
    b = make().fit(unusual, show_progress=False)
    for name in attributes:
        x, y = getattr(a, name), getattr(b, name)
        if sp.issparse(x):
            x, y = x.toarray(), y.toarray()
        np.testing.assert_array_equal(x, y, err_msg=name)
    return "the same fitted model as the plain input"


def _als():
    return fastals.ImplicitALS(factors=3, iterations=2, random_state=0, num_threads=1)


def _knn():
    return fastals.ItemKNN(K=4, similarity="cosine")


FACTORS = ("user_factors", "item_factors")
SIMILARITY = ("similarity_matrix",)


def _duplicated_coo():
    """R as a COO whose every value is stored as two halves (repeated entries)."""
    coo = R.tocoo()
    return sp.coo_matrix((np.concatenate([coo.data / 2, coo.data / 2]),
                          (np.concatenate([coo.row, coo.row]),
                           np.concatenate([coo.col, coo.col]))), shape=R.shape)


def _unsorted_csr():
    """R with every row's columns in reverse order (valid, not canonical)."""
    indices, data = R.indices.copy(), R.data.copy()
    for row in range(R.shape[0]):
        lo, hi = R.indptr[row], R.indptr[row + 1]
        indices[lo:hi], data[lo:hi] = indices[lo:hi][::-1], data[lo:hi][::-1]
    return sp.csr_matrix((data, indices, R.indptr.copy()), shape=R.shape)


def _stale_flag_csr():
    """A CSR with a repeated column that claims (by scipy's cached flag) to be canonical."""
    coo = _duplicated_coo().tocsr()  # scipy sums: rebuild with the repeats kept
    rows = np.repeat(np.arange(R.shape[0]), np.diff(R.indptr))
    order = np.lexsort((np.concatenate([R.indices, R.indices]), np.concatenate([rows, rows])))
    indices = np.concatenate([R.indices, R.indices])[order]
    data = np.concatenate([R.data, R.data])[order] / 2
    indptr = np.concatenate([[0], np.cumsum(2 * np.diff(R.indptr))])
    m = sp.csr_matrix((data, indices, indptr), shape=R.shape)
    m.has_sorted_indices = True
    m.has_canonical_format = True  # a lie: every column is stored twice
    del coo
    return m


def _int64_indices():
    m = R.copy()
    m.indices, m.indptr = R.indices.astype(np.int64), R.indptr.astype(np.int64)
    return m


def _unpruned():
    """A CSR whose index and data arrays run past indptr[-1] (scipy allows it)."""
    return _like(R, indices=np.append(R.indices, [0, 1, 2]).astype(R.indices.dtype),
                 data=np.append(R.data, [np.nan, 7.0, -1.0]))


def _read_only():
    m = R.copy()
    for array in (m.data, m.indices, m.indptr):
        array.setflags(write=False)
    return m


def _with_zeros():
    coo = R.tocoo()
    return sp.coo_matrix((np.append(coo.data, [0.0, 0.0]), (np.append(coo.row, [0, 1]),
                                                            np.append(coo.col, [0, 0]))),
                         shape=R.shape)


INPUT_VARIANTS = {
    "COO with repeated entries (summed)": _duplicated_coo,
    "CSR with unsorted columns": _unsorted_csr,
    "CSR with a repeated column and a stale 'canonical' flag": _stale_flag_csr,
    "int64 indices": _int64_indices,
    "CSR arrays longer than indptr[-1] (unpruned)": _unpruned,
    "read-only arrays": _read_only,
    "stored zeros (ignored by implicit models)": _with_zeros,
    "csr_array instead of csr_matrix": lambda: sp.csr_array(R),
    "CSC": lambda: R.tocsc(), "COO": lambda: R.tocoo(), "LIL": lambda: R.tolil(),
    "DOK": lambda: R.todok(), "BSR": lambda: R.tobsr(blocksize=(2, 2)),
    "DIA": lambda: R.todia(),
    "int64 values": lambda: R.astype(np.int64), "float32 values": lambda: R.astype(np.float32),
    "big-endian float64 values": lambda: sp.csr_matrix((R.data.astype(">f8"), R.indices,
                                                        R.indptr), shape=R.shape),
}
for _what, _make in INPUT_VARIANTS.items():
    for _model, _make_model, _attributes in (("ImplicitALS", _als, FACTORS),
                                             ("ItemKNN", _knn, SIMILARITY)):
        accepted(f"{_model}.fit(user_items=<{_what}>)")(
            lambda make=_make, model=_make_model, attributes=_attributes:
            _fit_same(model, R, make(), attributes))


@accepted("ImplicitALS.fit(user_items=<bool values>)")
def _bool_values():
    return _fit_same(_als, (R > 0).astype(np.float64), R > 0, FACTORS)


NUMPY_PARAMS = [
    (fastals.ImplicitALS, dict(factors=np.int64(3), regularization=np.float32(0.1),
                               alpha=np.float64(2.0), iterations=np.int32(2),
                               cg_steps=np.uint8(2), solver=np.str_("cholesky"),
                               dtype=np.dtype("float64"), random_state=np.int64(4),
                               num_threads=np.int64(2),
                               calculate_training_loss=np.bool_(True)), R),
    (fastals.ExplicitALS, dict(factors=np.int16(3), regularization=(np.float32(0.1), 0.2),
                               bias_regularization=np.float64(0.3), biases=np.bool_(True),
                               weighted_regularization=np.bool_(False), iterations=np.int64(2),
                               dtype="float32", random_state=np.uint32(1),
                               num_threads=np.int8(1)), RATINGS),
    (fastals.SGDMatrixFactorization, dict(factors=np.int64(3), learning_rate=np.float32(0.01),
                                          regularization=np.float64(0.1), epochs=np.int64(3),
                                          init_std=np.float16(0.1), lr_decay=np.float64(0.9),
                                          shuffle=np.bool_(False), dtype=float,
                                          random_state=np.int64(2), num_threads=np.int64(1)),
     RATINGS),
    (fastals.ItemKNN, dict(K=np.int64(4), similarity=np.str_("bm25"), K1=np.float32(1.5),
                           B=np.float64(0.5), dtype=np.float64, num_threads=np.int32(2)), R),
    (fastals.UserKNN, dict(K=np.uint16(3), similarity="pearson", mean_centered=np.bool_(True),
                           num_threads=np.int64(1)), RATINGS),
    (fastals.ContentKNN, dict(K=np.int64(3), similarity="jaccard"), FEATURES),
    (fastals.BM25Recommender, dict(K=np.int64(3), K1=np.int64(2), B=np.float32(0.25)), R),
    (fastals.PopularityBaseline, dict(dtype=np.dtype(np.float64), num_threads=np.int64(1)), R),
]
for _cls, _params, _data in NUMPY_PARAMS:
    @accepted(f"{_cls.__name__}(<numpy scalars for every parameter>)")
    def _numpy_params(cls=_cls, params=_params, data=_data):
        plain = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in params.items()}
        plain = {k: ([x.item() if isinstance(x, np.generic) else x for x in v]
                     if isinstance(v, tuple) else v) for k, v in plain.items()}
        a = cls(**params).fit(data, show_progress=False)
        b = cls(**plain).fit(data, show_progress=False)
        for name in a._state_names:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        folder = tempfile.mkdtemp()
        try:
            loaded = fastals.load(a.save(os.path.join(folder, "model")))
        finally:
            shutil.rmtree(folder)
        assert json.dumps(loaded.get_params(), default=str) == json.dumps(b.get_params(),
                                                                          default=str)
        return "the same model as with Python numbers; save and load keep the parameters"


IDS = [("np.int64", np.int64(3)), ("np.uint8", np.uint8(3)), ("whole float 3.0", 3.0),
       ("0-d array", np.array(3))]
for _what, _id in IDS:
    @accepted(f"recommend(userid=<{_what}>)")
    def _scalar_id(userid=_id):
        ids, scores = FITTED.implicit.recommend(userid, R[3], N=4)
        expected = FITTED.implicit.recommend(3, R[3], N=4)
        np.testing.assert_array_equal(ids, expected[0])
        assert ids.ndim == 1
        return "the same as userid=3"

BATCHES = [("list", [3, 5]), ("tuple", (3, 5)), ("int32 array", np.array([3, 5], np.int32)),
           ("uint64 array", np.array([3, 5], np.uint64)), ("whole floats", np.array([3.0, 5.0]))]
for _what, _ids in BATCHES:
    @accepted(f"recommend(userid=<{_what}>)")
    def _batch_ids(userids=_ids):
        ids, _ = FITTED.implicit.recommend(userids, R[[3, 5]], N=4)
        np.testing.assert_array_equal(ids, FITTED.implicit.recommend([3, 5], R[[3, 5]], N=4)[0])
        return "the same as userid=[3, 5]"

for _what, _N in [("np.int64(4)", np.int64(4)), ("np.uint8(4)", np.uint8(4)),
                  ("whole float 4.0", 4.0)]:
    @accepted(f"recommend(N=<{_what}>)")
    def _n(N=_N):
        np.testing.assert_array_equal(FITTED.implicit.recommend(3, R[3], N=N)[0],
                                      FITTED.implicit.recommend(3, R[3], N=4)[0])
        return "the same as N=4"


@accepted("recommend(userid=<empty list>)")
def _empty_batch():
    ids, scores = FITTED.implicit.recommend([], R[:0], N=4)
    assert ids.shape == scores.shape and ids.shape[0] == 0
    return f"empty results of shape {ids.shape}"


@accepted("recommend(N=<more than the items>)")
def _large_n():
    ids, _ = FITTED.implicit.recommend(3, R[3], N=10**9)
    assert sorted(ids) == sorted(set(range(N_ITEMS)) - set(R[3].indices))
    return f"every allowed item ({len(ids)})"


@accepted("recommend(user_items=<non-canonical full matrix>)")
def _noncanonical_rows():
    ids, _ = FITTED.implicit.recommend([1, 3], _unsorted_csr(), N=4)
    np.testing.assert_array_equal(ids, FITTED.implicit.recommend([1, 3], R, N=4)[0])
    return "the same as the canonical matrix"


@accepted("recommend(user_items=<a COO row with repeated entries>)")
def _coo_row():
    ids, _ = FITTED.implicit.recommend(2, _duplicated_coo().tocsr()[2].tocoo(), N=4)
    np.testing.assert_array_equal(ids, FITTED.implicit.recommend(2, R[2], N=4)[0])
    return "the same as the summed row"


@accepted("top_k_similarity(A=<dense list of lists>)")
def _dense_topk():
    got = fastals.top_k_similarity(R.toarray().tolist(), K=3)
    np.testing.assert_array_equal(got.toarray(), fastals.top_k_similarity(R, K=3).toarray())
    return "the same as the sparse matrix"


@accepted("ContentKNN.fit(item_features=<dense array>)")
def _dense_features():
    return _fit_same(lambda: fastals.ContentKNN(K=3), sp.csr_matrix(FEATURES), FEATURES,
                     SIMILARITY)


@accepted("predict(user_ids=<scalar>, item_ids=<array>)")
def _broadcast_predict():
    out = FITTED.explicit.predict(2, [0, 1, 2])
    np.testing.assert_allclose(out, FITTED.explicit.predict([2, 2, 2], [0, 1, 2]))
    return "the user is repeated for every item"


@accepted("fastals.load(path=<pathlib.Path and bytes>)")
def _path_types():
    import pathlib
    path = FITTED.files["good.npz"]
    a = fastals.load(pathlib.Path(path))
    b = fastals.load(os.fsencode(path))
    np.testing.assert_array_equal(a.item_factors, b.item_factors)
    return "loaded"


@pytest.mark.parametrize("check", ACCEPTED)
def test_unusual_valid_input_is_accepted(check):
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)
    try:
        check()
    finally:
        faulthandler.cancel_dump_traceback_later()
