"""The executor side of fastals.spark: CSR blocks, block solves and top-N, in numpy.

Nothing here imports pyspark at module level: these functions take and return numpy
arrays, bytes and pyarrow record batches, so they run in Spark's Python workers with only
fastals, numpy, scipy and pyarrow, and the tests call them directly without Spark.

A *block* is a contiguous range [lo, hi) of dense row indices of one side (users or
items) with its interactions as the CSR the kernels read. The solvers
(:class:`ImplicitSolver`) say what state a row carries (its factor), what the driver
broadcasts for the fixed side (its factors and Gram matrix), and how a block of rows is
solved (the block solver of the single-machine model, :mod:`fastals.models.blocksolve`);
the distributed loop in :mod:`fastals.spark._train` knows nothing else about the model.

Imports numpy, scipy, fastals' validation and threading helpers and the models' public
names and :mod:`fastals.models.blocksolve` (never a model's private method); pyspark,
pyarrow and pandas only inside functions.
"""
from __future__ import annotations

import pickle
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from fastals._threads import resolve_threads, single_threaded_blas
from fastals._validation import CSR, as_csr, check_random_state
from fastals.exceptions import ModelFitError
from fastals.models.blocksolve import (
    ExplicitBlockSolver,
    ImplicitBlockSolver,
    balance,
    explicit_initial_factors,
    gram_matrix,
    implicit_initial_factors,
    implicit_initial_rows,
    initial_item_factors,
    publish_explicit,
    row_blocks,
)
from fastals.models.explicit import augmented_items, augmented_users
from fastals.models.implicit_als import ImplicitALS

USER, ITEM = 0, 1
SIDES = ("user", "item")
# a partition's interactions are split and shipped at most this many rows at a time
_FLUSH_ROWS = 1 << 22
# output record batches hold at most this many rows
_BATCH_ROWS = 1 << 15


class Block(NamedTuple):
    """Rows [lo, hi) of one side and their interactions (columns: the other side)."""

    index: int
    lo: int
    hi: int
    n_cols: int
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    error: str | None = None
    total: float = 0.0  # sum, min and max of the values (explicit ALS needs the mean, range)
    low: float = np.inf
    high: float = -np.inf
    # block-to-block exchange: the sorted rows of the other side the block reads, its
    # `indices` renumbered into them (None: `indices` address the whole other side)
    columns: np.ndarray | None = None

    def csr(self) -> CSR:
        return CSR(self.indptr, self.indices, self.data, (self.hi - self.lo, self.n_cols))

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])


class Solved(NamedTuple):
    """The new state of a block's rows (a tuple of arrays), or why solving failed."""

    lo: int
    state: tuple
    error: str | None = None
    error_row: int | None = None


# --- layout ---------------------------------------------------------------------------------
def balanced_bounds(counts, n_blocks, row_cost=0.0):
    """Boundaries of at most `n_blocks` contiguous row ranges of about equal work.

    The work of a row is its number of interactions plus `row_cost` (the per-row part of a
    solve, in units of one interaction). Returns int64 bounds [0, ..., n]; every range is
    non-empty, so there are fewer ranges than asked when there are fewer rows.
    """
    counts = np.asarray(counts, dtype=np.float64)
    n = len(counts)
    n_blocks = max(1, min(int(n_blocks), n))
    cost = np.cumsum(counts + row_cost)
    targets = cost[-1] * np.arange(1, n_blocks) / n_blocks
    cuts = np.searchsorted(cost, targets, side="left") + 1
    return np.unique(np.concatenate([[0], np.clip(cuts, 1, n), [n]])).astype(np.int64)


def index_dtype(*sizes):
    return np.int32 if max(sizes) <= np.iinfo(np.int32).max else np.int64


# --- building the blocks (once per fit) ---------------------------------------------------
def count_ids(batches):
    """``mapInArrow`` body over (user, item, rating) rows with integral ids: one pickled
    record per partition of (distinct users, their row counts, null users, distinct items,
    their counts, null items, ratings that are null, NaN or infinite), for
    :func:`merge_id_counts`. One pass over the data replaces the sort and joins of
    arbitrary ids."""
    import pyarrow as pa

    pending = [batch for batch in batches if batch.num_rows]
    if not pending:
        return
    table = pa.Table.from_batches(pending)
    out = []
    for k in (0, 1):
        column = table.column(k)
        values = column.drop_null().to_numpy().astype(np.int64, copy=False)
        ids, counts = np.unique(values, return_counts=True)
        out += [ids, counts.astype(np.int64), column.null_count]
    ratings = table.column(2).to_numpy()  # float64; nulls become NaN
    out.append(int(np.count_nonzero(~np.isfinite(ratings))))
    yield pa.RecordBatch.from_arrays(
        [pa.array([pickle.dumps(tuple(out), protocol=pickle.HIGHEST_PROTOCOL)], pa.binary())],
        names=["payload"])


def merge_id_counts(parts, side):
    """Driver: the sorted distinct ids of `side` (0 users, 1 items) over the partitions'
    :func:`count_ids` records, their row counts, and the rows with a null id."""
    ids = [p[3 * side] for p in parts]
    counts = [p[3 * side + 1] for p in parts]
    nulls = sum(p[3 * side + 2] for p in parts)
    if not ids:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), nulls
    ids, inverse = np.unique(np.concatenate(ids), return_inverse=True)
    counts = np.bincount(inverse.reshape(-1), weights=np.concatenate(counts),
                         minlength=len(ids)).astype(np.int64)
    return ids, counts, nulls


def dense_lookup(ids):
    """The sorted id array a task maps raw ids through (``searchsorted``), or None when the
    ids are already 0..n-1 (the fast path: the ids are the dense indices)."""
    if len(ids) and ids[0] == 0 and ids[-1] == len(ids) - 1:
        return None
    return ids


def split_interactions(batches, user_bounds, item_bounds, dtype, flush_rows=_FLUSH_ROWS,
                       lookups=(None, None)):
    """``mapInArrow`` body: a partition's (user, item, rating) rows, grouped by user block
    and by item block, as (side, block, pickled (rows, cols, values)) records. With
    `lookups` (a broadcast sorted id array per side, or None), the id columns hold the
    original integral ids, mapped to dense indices here (no join)."""
    pending, rows = [], 0
    for batch in batches:
        if batch.num_rows:
            pending.append(batch)
            rows += batch.num_rows
        if rows >= flush_rows:
            yield _split(pending, user_bounds, item_bounds, dtype, lookups)
            pending, rows = [], 0
    if pending:
        yield _split(pending, user_bounds, item_bounds, dtype, lookups)


def _dense(column, lookup):
    values = column.to_numpy()
    if lookup is None:
        return values
    return np.searchsorted(lookup.value[0], values)


def _split(batches, user_bounds, item_bounds, dtype, lookups=(None, None)):
    import pyarrow as pa

    table = pa.Table.from_batches(batches)
    users, items = (_dense(table.column(k), lookups[k]) for k in (0, 1))
    values = table.column(2).to_numpy()
    sides, blocks, payloads = [], [], []
    for side, rows, cols, bounds in ((USER, users, items, user_bounds),
                                     (ITEM, items, users, item_bounds)):
        for block, take in _groups(np.searchsorted(bounds, rows, side="right") - 1):
            sides.append(side)
            blocks.append(block)
            payloads.append(pickle.dumps(
                (rows[take].astype(dtype), cols[take].astype(dtype), values[take]),
                protocol=pickle.HIGHEST_PROTOCOL))
    return pa.RecordBatch.from_arrays(
        [pa.array(sides, pa.int8()), pa.array(blocks, pa.int32()),
         pa.array(payloads, pa.binary())], names=["side", "block", "payload"])


def _groups(keys):
    """(key, positions) for each distinct key, in increasing key order."""
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]])) if len(keys) \
        else np.zeros(0, dtype=np.int64)
    ends = np.append(starts[1:], len(keys))
    return [(int(keys[s]), order[s:e]) for s, e in zip(starts, ends)]


def build_block(index, payloads, bounds, n_cols, dtype, canonical=None):
    """The :class:`Block` of rows [bounds[index], bounds[index + 1]) from its pieces.

    `canonical(coo, dtype)` is the model's own input check (implicit ALS by default:
    :func:`fastals._validation.as_csr`, which sums duplicate (row, column) pairs and drops
    zeros), so a block holds exactly what the single-machine model would. Invalid values
    give a Block whose `error` says why (the driver raises it).
    """
    lo, hi = int(bounds[index]), int(bounds[index + 1])
    parts = [pickle.loads(payload) for payload in payloads]
    idx = index_dtype(hi - lo, n_cols)
    rows = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, idx)
    cols = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, idx)
    values = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.float64)
    try:
        csr = (canonical or _implicit_csr)(_row_sorted(rows - lo, cols, values, hi - lo, n_cols),
                                           dtype)
    except (ValueError, TypeError) as exc:
        empty = np.zeros(1, dtype=idx)
        return Block(index, lo, hi, n_cols, empty, empty[:0], np.zeros(0, dtype), str(exc))
    data = csr.data
    return Block(index, lo, hi, n_cols, csr.indptr, csr.indices, data, None,
                 float(np.sum(data, dtype=np.float64)),
                 float(data.min()) if len(data) else np.inf,
                 float(data.max()) if len(data) else -np.inf)


def _row_sorted(rows, cols, values, n_rows, n_cols):
    """The CSR of (rows, cols, values) with sorted column indices, repeated pairs kept
    (adjacent): one sort of the (row, column) keys, so the model's check that follows
    (`canonical`) finds the indices sorted and sums or rejects repeats in one linear pass
    (scipy's COO conversion would sort every row again, several times slower)."""
    idx = index_dtype(n_rows, n_cols, len(values))
    order = np.argsort(rows.astype(np.int64) * n_cols + cols)
    indptr = np.zeros(n_rows + 1, dtype=idx)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    return sp.csr_matrix((values[order], cols[order].astype(idx), indptr),
                         shape=(n_rows, n_cols))


def _implicit_csr(coo, dtype):
    return as_csr(coo, "ratings", dtype)


def build_partition(index, records, bounds, n_cols, dtype, canonical=None, exchange=False):
    """``mapPartitionsWithIndex`` body after ``partitionBy(block)``: exactly one Block per
    partition (an empty one when no interaction fell in it); with `exchange`, its columns
    renumbered (:func:`localized`)."""
    payloads = [payload for _, payload in _records_of(index, records)]
    block = build_block(index, payloads, bounds, n_cols, dtype, canonical)
    yield localized(block) if exchange else block


def _records_of(index, records):
    for key, value in records:
        if key != index:  # the partitioner is the identity; anything else is a bug
            raise RuntimeError(f"block {key} arrived in partition {index}")
        yield key, value


# --- the block-to-block exchange (set-up) ---------------------------------------------------
def localized(block):
    """`block` reading only the rows of the other side it needs: ``columns`` the sorted
    distinct column indices of its CSR, the indices renumbered into them (so the kernels
    read a compact array of just those rows, in the same order as the whole side's)."""
    if block.error is not None:
        return block._replace(columns=np.zeros(0, np.int64), n_cols=0)
    columns, local = np.unique(block.indices, return_inverse=True)
    return block._replace(indices=local.reshape(-1).astype(block.indices.dtype),
                          n_cols=len(columns), columns=columns.astype(np.int64))


def routes_of(block, source_bounds):
    """``flatMap`` body over the blocks of one side: for each block j of the other side
    (rows [source_bounds[j], source_bounds[j + 1])) holding rows this block reads,
    (j, (this block's number, those rows' offsets in block j)): MLlib's out-block links."""
    columns = block.columns
    cuts = np.searchsorted(columns, source_bounds)
    for j in range(len(source_bounds) - 1):
        if cuts[j + 1] > cuts[j]:
            offsets = columns[cuts[j]:cuts[j + 1]] - source_bounds[j]
            yield j, (block.index, offsets.astype(index_dtype(int(offsets[-1]) + 1)))


def out_block(index, records):
    """``mapPartitionsWithIndex`` body after ``partitionBy(source block)``: the one record of
    source block `index`, [(destination block, row offsets)] by destination."""
    yield sorted((pair for _, pair in _records_of(index, records)), key=lambda p: p[0])


def required_rows(columns, source_bounds):
    """How many rows of each block of the other side a block with these sorted `columns`
    receives per half-iteration (its share of the exchange)."""
    return np.diff(np.searchsorted(columns, source_bounds))


# --- the block-to-block exchange (each half-iteration) --------------------------------------
def send_factors(pair):
    """``flatMap`` body over (Solved, routes) of the fixed side's blocks: for each
    destination block, (destination, (first row, the state rows it reads))."""
    solved, routes = pair
    for destination, rows in routes:
        yield destination, (solved.lo, tuple(a[rows] for a in solved.state))


def solve_partition(index, records, solver, extra_broadcast, side, num_threads):
    """``mapPartitionsWithIndex`` body over the union of a side's blocks, its states and the
    rows shuffled to it (all partitioned by block): the block's rows solved against the
    rows of the fixed side it received (and the broadcast Gram matrix, implicit ALS). The
    received rows go from the shuffle straight into this task (never one record of the
    JVM's)."""
    block = previous = None
    pieces = []
    for record in records:
        if isinstance(record, Block):
            block = record
        elif isinstance(record, Solved):
            previous = record
        else:
            pieces.append(record)
    if block is None or previous is None or block.index != index:
        raise RuntimeError(f"partition {index} does not hold its block and state "
                           "(a fastals bug)")
    received = _received(index, pieces, previous)
    if len(received[0]) != block.n_cols:
        raise RuntimeError(f"block {block.index} received {len(received[0])} rows of the "
                           f"other side, not {block.n_cols} (a fastals bug)")
    extra = None if extra_broadcast is None else extra_broadcast.value
    yield _solved(solver, block, previous, solver.local_fixed(received, extra), side,
                  num_threads)


def _received(index, pieces, previous):
    """The received (destination, (first row, arrays)) pieces concatenated in row order
    (that of the block's ``columns``); empty arrays shaped like the state when none."""
    parts = sorted((piece for _, piece in _records_of(index, pieces)), key=lambda p: p[0])
    if not parts:
        return tuple(np.zeros((0,) + a.shape[1:], a.dtype) for a in previous.state)
    return tuple(np.concatenate([p[1][k] for p in parts]) for k in range(len(parts[0][1])))


def solved_summary(solved, solver):
    """``map`` body over the new Solved blocks: ([(first row, error, error row)] of a failed
    block, its part of the Gram matrix): what the driver aggregates of a half-iteration."""
    if solved.error is not None:
        return [(solved.lo, solved.error, solved.error_row)], None
    return [], solver.gram_part(solved.state)


def add_summaries(a, b):
    """``treeAggregate`` operation of :func:`solved_summary` values."""
    gram = b[1] if a[1] is None else a[1] if b[1] is None else a[1] + b[1]
    return a[0] + b[0], gram


def initial_block_state(block, solver, seed, side):
    """The initial state of a block drawn on the executor (for factor matrices too large
    to draw on the driver): rows from a generator seeded by (seed, side, block)."""
    rng = np.random.default_rng([seed, side, block.index])
    return Solved(block.lo, solver.initial_rows(rng, block.hi - block.lo, side))


def fail_once():
    """Raise once in a task when the task's environment names an existing file in
    FASTALS_SPARK_FAIL_ONCE (which this removes): the tests' injected fault."""
    import os

    path = os.environ.get("FASTALS_SPARK_FAIL_ONCE")
    if path:
        try:
            os.remove(path)
        except FileNotFoundError:
            return
        raise RuntimeError("fastals.spark: injected fault (FASTALS_SPARK_FAIL_ONCE)")


# --- one half-iteration -----------------------------------------------------------------------
def task_threads(num_threads):
    """`num_threads`, or when 0 the cores Spark gives this task (spark.task.cpus)."""
    if num_threads:
        return num_threads
    try:
        from pyspark import TaskContext
        context = TaskContext.get()
    except ImportError:
        context = None
    if context is None:
        return resolve_threads(0)
    try:
        return max(1, int(context.cpus()))
    except Exception:  # older pyspark without TaskContext.cpus()
        return 1


def initial_state_rows(block, state_broadcast):
    """The rows of a block in the driver's initial (or recovered) state."""
    return Solved(block.lo, tuple(np.ascontiguousarray(a[block.lo:block.hi])
                                  for a in state_broadcast.value))


def solve_pair(pair, solver, fixed_broadcast, side, num_threads):
    """``map`` body over (Block, Solved) pairs: the block's rows solved against the fixed side."""
    block, previous = pair
    return _solved(solver, block, previous, fixed_broadcast.value, side, num_threads)


def _solved(solver, block, previous, fixed, side, num_threads):
    fail_once()
    try:
        state = solver.solve(block, previous.state, fixed, side, task_threads(num_threads))
    except (ModelFitError, MemoryError) as exc:
        row = getattr(exc, "row", None)
        return Solved(block.lo, previous.state, f"{type(exc).__name__}: {exc}", row)
    return Solved(block.lo, state)


class ImplicitSolver:
    """Implicit ALS per block: :class:`ImplicitBlockSolver` with the driver's Gram matrix.

    A row's state is its factor; the fixed side is broadcast as (factors, Gram matrix).
    With `weighted`, row u is regularized by lambda n_u, n_u its number of positive
    interactions (ALS-WR, what Spark MLlib's regParam means) instead of by lambda.

    The distributed loop only talks to a solver through these members, which is how
    :class:`ExplicitSolver` plugs the explicit model's kernel in: ``kind``, ``dtype``,
    ``row_cost()``, ``canonical(coo, dtype)`` (the model's input check, per block),
    ``prepare(statistics)`` (driver, once the data is known), ``initial_state``,
    ``fixed(state)`` (driver: the broadcast), ``solve(block, state, fixed, side,
    threads)`` (executor), ``factors(state)``, ``scoring(state, side)`` and
    ``local_model``.
    """

    kind = "implicit"
    canonical = None  # as_csr: duplicates summed, zeros dropped

    def __init__(self, factors, regularization, alpha, cg_steps, solver, dtype, weighted=False):
        self.params = dict(factors=factors, regularization=regularization, alpha=alpha,
                           cg_steps=cg_steps, solver=solver, dtype=dtype)
        self.model().get_params()  # validates every value, raising like ImplicitALS does
        self.weighted = bool(weighted)

    def prepare(self, mean, value_range):
        """Driver, before the first iteration: implicit ALS needs nothing from the data."""

    def model(self, **extra) -> ImplicitALS:
        return ImplicitALS(**self.params, **extra)

    def block_solver(self) -> ImplicitBlockSolver:
        return ImplicitBlockSolver.for_model(self.model())

    @property
    def dtype(self):
        return np.dtype(self.params["dtype"]).type

    @property
    def itemsize(self):
        """Bytes per factor value."""
        return np.dtype(self.dtype).itemsize

    def row_cost(self):
        """The work of a row's own arithmetic, in units of the work per interaction
        (conjugate gradient: 2K^2 vs 4K per pass; Cholesky: ~K^3/3 + 4K^2 vs K^2 + 2K)."""
        K = self.params["factors"]
        return K / 2 if self.params["solver"] == "cg" else K / 3 + 4

    def initial_state(self, n_users, n_items, random_state, counts=None):
        """Driver: the same initial factors as ImplicitALS.fit draws for this shape."""
        rng = check_random_state(random_state)
        X, Y = implicit_initial_factors(rng, n_users, n_items, self.params["factors"],
                                        self.dtype)
        return (X,), (Y,)

    def fixed(self, state):
        """Driver: what each block of the other side needs: (Y, Y^T Y + lambda I), or
        (Y, Y^T Y in float64) when each row adds its own lambda n_u."""
        (Y,) = state
        with single_threaded_blas():  # the same summation as the single-machine fit
            gram = gram_matrix(Y) if self.weighted else self.block_solver().regularized_gram(Y)
        return Y, gram

    def gram_part(self, state):
        """Executor: the Y^T Y (float64) of a block's rows; the Gram matrix of a side is the
        sum over its blocks (block-to-block exchange)."""
        with single_threaded_blas():
            return gram_matrix(state[0], fast=not self.weighted)

    def fixed_from_gram(self, YtY):
        """Driver: what the exchange broadcasts (a K x K matrix) from the summed Y^T Y."""
        return YtY if self.weighted else self.block_solver().regularize(YtY)

    @staticmethod
    def local_fixed(received, gram):
        """Executor: ``fixed`` from the rows a block received and the broadcast Gram."""
        return received[0], gram

    def initial_rows(self, rng, n, side):
        """Executor: initial factors of n rows (the distribution of initial_state)."""
        return (implicit_initial_rows(rng, n, self.params["factors"], self.dtype),)

    def solve(self, block, state, fixed, side, threads):
        """Executor: the rows of `block`, warm-started from `state`, against `fixed`."""
        X = np.array(state[0], dtype=self.dtype, order="C", copy=True)
        Y, gram = fixed
        csr = block.csr()
        if self.weighted:
            solve_weighted(self.model(), csr, X, Y, gram, SIDES[side], threads, block.lo)
        else:
            self.block_solver().solve(csr, row_blocks(csr), Y, gram, X, threads, SIDES[side],
                                      first_row=block.lo)
        return (X,)

    def finish(self, state, iterations):
        """Driver, after the last iteration: [user state, item state] as ImplicitALS.fit
        leaves them: without regularization, the factors balanced (the same scores)."""
        if not iterations or self.params["regularization"] != 0:
            return state
        X, Y = (np.require(side[0], requirements=["C", "W"]) for side in state)
        with single_threaded_blas():  # the same arithmetic as the single-machine fit
            balance(X, Y)
        return [(X,), (Y,)]

    @staticmethod
    def factors(state):
        return state[0]

    @staticmethod
    def scoring(state, side):
        """Vectors whose dot products are the model's scores."""
        return state[0]

    def local_model(self, user_state, item_state, counts=None, **extra) -> ImplicitALS:
        model = self.model(**extra)
        model.user_factors, model.item_factors = user_state[0], item_state[0]
        return model


class ExplicitSolver:
    """Explicit ALS per block: :class:`ExplicitBlockSolver` (the ``_explicit.solve_rows``
    kernel), rows holding (factor, bias), the fixed side broadcast as (factors, biases)."""

    kind = "explicit"

    def __init__(self, factors, regularization, bias_regularization, weighted, biases,
                 nonnegative, dtype):
        self.params = dict(factors=factors, regularization=regularization,
                           bias_regularization=bias_regularization,
                           weighted_regularization=weighted, biases=biases,
                           nonnegative=nonnegative, dtype=dtype)
        self.mean, self.value_range = 0.0, (0.0, 0.0)
        self.model()  # validates every value, raising like ExplicitALS does

    def model(self, **extra):
        from fastals.models.explicit_als import ExplicitALS

        model = ExplicitALS(**self.params, **extra)
        model.global_mean = self.mean  # the mu of its solves
        return model

    @property
    def dtype(self):
        return np.dtype(self.params["dtype"]).type

    @property
    def itemsize(self):
        """Bytes per factor value."""
        return np.dtype(self.dtype).itemsize

    def row_cost(self):
        """A row's exact (K+1) x (K+1) solve against K^2 per rating."""
        return self.params["factors"] / 3 + 4

    @staticmethod
    def canonical(coo, dtype):
        """as_ratings: stored zeros are ratings, a repeated (row, column) pair an error."""
        from fastals._validation import as_ratings

        return as_ratings(coo, "ratings", dtype, allow_empty=True)

    def prepare(self, mean, value_range):
        """Driver: the mean rating (mu) and the (min, max) rating of the training data."""
        self.mean, self.value_range = float(mean), tuple(value_range)

    def initial_state(self, n_users, n_items, random_state, counts):
        """Driver: the initial state ExplicitALS.fit starts from (same draws, same order)."""
        rng = check_random_state(random_state)
        dtype = self.dtype
        X, Y = explicit_initial_factors(rng, n_users, counts[1], self.params["factors"],
                                        self.params["nonnegative"], dtype)
        return (X, np.zeros(n_users, dtype)), (Y, np.zeros(n_items, dtype))

    @staticmethod
    def fixed(state):
        return state

    @staticmethod
    def gram_part(state):
        return None  # the explicit solve needs no Gram matrix

    @staticmethod
    def fixed_from_gram(YtY):
        return None

    @staticmethod
    def local_fixed(received, gram):
        return received  # (factors, biases) of the rows the block reads

    def initial_rows(self, rng, n, side):
        """Executor: initial (factors, biases) of n rows (initial_state's distribution;
        every row of the data has a rating)."""
        dtype = self.dtype
        X = initial_item_factors(rng, np.ones(n), self.params["factors"],
                                 self.params["nonnegative"], dtype)
        return X, np.zeros(n, dtype)

    @staticmethod
    def finish(state, iterations):
        """Driver, after the last iteration: explicit ALS keeps its solved state."""
        return state

    def solve(self, block, state, fixed, side, threads):
        X = np.array(state[0], dtype=self.dtype, order="C", copy=True)
        x_bias = np.array(state[1], dtype=self.dtype, copy=True)
        Y, y_bias = fixed
        csr = block.csr()
        ExplicitBlockSolver.for_model(self.model()).solve(
            csr, row_blocks(csr), Y, y_bias, X, x_bias, threads, SIDES[side], first_row=block.lo)
        return X, x_bias

    @staticmethod
    def factors(state):
        return state[0]

    def scoring(self, state, side):
        """[x_u, 1, mu + b_u] and [y_i, b_i, 1]: their dot product is the predicted rating."""
        X, bias = state
        if not self.params["biases"]:
            return X
        return augmented_users(X, bias, self.mean) if side == USER else augmented_items(X, bias)

    def local_model(self, user_state, item_state, counts, **extra):
        model = self.model(**extra)
        publish_explicit(model, user_state[0], item_state[0], user_state[1], item_state[1],
                         (counts[0], counts[1], self.mean, self.value_range))
        return model


def positive_counts(csr):
    """n_u: the positive stored values of each row (one pass over the values; the running
    count is in the index dtype, which holds the block's number of values)."""
    running = np.zeros(len(csr.data) + 1, dtype=csr.indptr.dtype)
    np.cumsum(csr.data > 0, out=running[1:])
    return running[csr.indptr[1:]] - running[csr.indptr[:-1]]


def solve_weighted(model, csr, X, Y, YtY, side, threads, offset=0):
    """Rows of X solved in place with regularization lambda n_u (ALS-WR, as Spark MLlib).

    One :meth:`ImplicitBlockSolver.solve` of the ImplicitALS `model` with Gram matrix Y^T Y
    (`YtY`, float64, cast to the model's dtype) and each row's lambda n_u added to its
    diagonal by the kernel (``row_shift``); `offset` is the first row's position in the
    whole side (its ``first_row``). A row without positive values gets no regularization,
    as in MLlib.
    """
    shift = (model.regularization * positive_counts(csr)).astype(model.dtype)
    ImplicitBlockSolver.for_model(model).solve(csr, row_blocks(csr), Y, YtY.astype(model.dtype),
                                               X, threads, side, first_row=offset,
                                               row_shift=shift)


# --- outputs ----------------------------------------------------------------------------------
def top_n(queries, targets, n, threads):
    """Best `n` targets for each query row by dot product: (ids, scores), best first.

    The single-machine model's own top-N path (RecommenderBase.recommend, no filters).
    """
    shell = ImplicitALS(factors=queries.shape[1], dtype=queries.dtype, num_threads=threads)
    shell.user_factors, shell.item_factors = queries, targets
    return shell.recommend(np.arange(len(queries)), N=n, filter_already_liked_items=False)


def _column(values, arrow_type):
    import pyarrow as pa

    if isinstance(values, np.ndarray) and values.dtype != object:
        return pa.array(values, type=arrow_type)
    return pa.array(list(values), type=arrow_type)


def _vectors(matrix, arrow_type):
    """A (rows x K) array as an Arrow list<float> column."""
    import pyarrow as pa

    rows, K = matrix.shape
    offsets = pa.array(np.arange(0, (rows + 1) * K, K, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1), type=arrow_type))


def factor_batches(batches, broadcast, bounds, schema):
    """``mapInArrow`` body over block numbers: (id, features) rows of those blocks, from a
    broadcast (ids, factors); with (ids, None), (id, dense index) rows."""
    import pyarrow as pa

    ids, factors = broadcast.value
    for block in _block_numbers(batches):
        for lo, hi in _chunks(bounds[block], bounds[block + 1]):
            if factors is None:
                values = pa.array(np.arange(lo, hi, dtype=np.int64), type=schema.field(1).type)
            else:
                values = _vectors(np.ascontiguousarray(factors[lo:hi]),
                                  schema.field(1).type.value_type)
            yield pa.RecordBatch.from_arrays([_column(ids[lo:hi], schema.field(0).type), values],
                                             schema=schema)


def recommendation_batches(batches, queries_bc, targets_bc, bounds, n, num_threads, schema):
    """``mapInArrow`` body over block numbers: the top-`n` targets of every query of those
    blocks, as (query id, [(target id, score)]) rows."""
    for block in _block_numbers(batches):
        for lo, hi in _chunks(bounds[block], bounds[block + 1]):
            yield _recommendations(np.arange(lo, hi), queries_bc, targets_bc, n, num_threads,
                                   schema)


def subset_recommendation_batches(batches, queries_bc, targets_bc, n, num_threads, schema):
    """``mapInArrow`` body over query ids: the top-`n` targets of each known id (unknown
    ids are dropped, as in Spark MLlib)."""
    for batch in batches:
        if not batch.num_rows:
            continue
        rows = lookup(queries_bc, batch.column(0))
        rows = rows[rows >= 0]
        for lo, hi in _chunks(0, len(rows)):
            yield _recommendations(rows[lo:hi], queries_bc, targets_bc, n, num_threads, schema)


def _recommendations(rows, queries_bc, targets_bc, n, num_threads, schema):
    import pyarrow as pa

    query_ids, queries = queries_bc.value
    target_ids, targets = targets_bc.value
    ids, scores = top_n(np.ascontiguousarray(queries[rows]), targets, n,
                        task_threads(num_threads))
    width = ids.shape[1]
    entry = schema.field(1).type.value_type
    found = ids.reshape(-1)
    structs = pa.StructArray.from_arrays(
        [_column(target_ids[found], entry.field(0).type),
         pa.array(scores.reshape(-1).astype(np.float32), type=entry.field(1).type)],
        fields=[entry.field(0), entry.field(1)])
    offsets = pa.array(np.arange(0, (len(rows) + 1) * width, width, dtype=np.int32))
    return pa.RecordBatch.from_arrays(
        [_column(query_ids[rows], schema.field(0).type),
         pa.ListArray.from_arrays(offsets, structs)], schema=schema)


_LOOKUP: list = [None, None]  # [broadcast, its pandas Index] of this worker process


def lookup(broadcast, column):
    """Dense indices of the ids in an Arrow column (-1 where unknown), through a hash index
    built once per worker process for the broadcast id array (the broadcast is kept
    referenced, so an identity match cannot be a recycled object)."""
    import pandas as pd

    if _LOOKUP[0] is not broadcast:
        _LOOKUP[:] = [None, None]  # keep one index per worker: memory stays flat
        _LOOKUP[:] = [broadcast, pd.Index(broadcast.value[0])]
    import pyarrow as pa

    numeric = pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
    values = column.to_numpy(zero_copy_only=False) if numeric else column.to_pylist()
    return np.asarray(_LOOKUP[1].get_indexer(values), dtype=np.int64)


def collect_columns(batches):
    """``mapInArrow`` body: a partition's columns as one pickled list of Arrow arrays."""
    import pyarrow as pa

    pending = [batch for batch in batches if batch.num_rows]
    if not pending:
        return
    table = pa.Table.from_batches(pending)
    columns = [table.column(k).combine_chunks() for k in range(table.num_columns)]
    yield pa.RecordBatch.from_arrays(
        [pa.array([pickle.dumps(columns, protocol=pickle.HIGHEST_PROTOCOL)], pa.binary())],
        names=["payload"])


def _block_numbers(batches):
    for batch in batches:
        yield from (int(b) for b in batch.column(0).to_numpy())


def _chunks(lo, hi, step=_BATCH_ROWS):
    lo, hi = int(lo), int(hi)
    return [(s, min(s + step, hi)) for s in range(lo, hi, step)]
