"""The distributed alternation of fastals.spark (driver side).

Data layout, built once per fit (:func:`build_blocks`): the interactions of each side are
cut into contiguous row blocks of about equal work, one block per partition, held as the
CSR arrays the kernels read and persisted on the executors.

One half-iteration (:meth:`Alternation.half`), solving side S against the fixed side F:

1. the driver broadcasts what the solver needs of F (implicit ALS: its factors and
   Y^T Y + lambda I, computed once);
2. each task zips its S block with the block's current state (the warm start, persisted
   from the previous half-iteration) and solves it with the single-machine kernels;
3. the new state is persisted, its lineage truncated (a local checkpoint, or a reliable one
   every `checkpoint_interval` iterations when the SparkContext has a checkpoint directory)
   and collected: the driver needs all of S to broadcast it in the next half-iteration.

So the plan of every half-iteration has the same size, whatever the iteration count. The
driver always holds a complete copy of both sides: if a job fails (an executor lost with
its cached state, say), the half-iteration is retried once from that copy.

That is :class:`Alternation` (``exchange="broadcast"``). :class:`ExchangeAlternation`
(``exchange="shuffle"``) replaces steps 1 and 3 by MLlib's block-to-block exchange: the
routes recorded at set-up (:func:`build_routes`) say which rows of each fixed block each
solving block reads; one shuffle keyed by destination block sends just those, the Gram
matrix is a tree-aggregate of per-block sums, and nothing but K x K matrices and error
summaries reaches the driver until the final factors are collected block by block.

Imports numpy, fastals.exceptions and fastals.spark._blocks (which holds everything that
knows the model); pyspark only inside functions.
"""
from __future__ import annotations

import logging
import time
from functools import partial

import numpy as np

from fastals.exceptions import ModelFitError
from fastals.spark._blocks import (
    ITEM,
    SIDES,
    USER,
    Solved,
    add_summaries,
    build_partition,
    index_dtype,
    initial_block_state,
    initial_state_rows,
    out_block,
    routes_of,
    send_factors,
    solve_pair,
    solve_partition,
    solved_summary,
    split_interactions,
)

log = logging.getLogger("fastals")


def _identity(key):
    return key


def _keyed(row):
    return (int(row[0]), int(row[1])), row[2]


def _on_side(record, side):
    return record[0][0] == side


def _block_and_payload(record):
    return record[0][1], record[1]


def _summary(block):
    return block.index, block.lo, block.hi, block.nnz, block.error, block.total, block.low, \
        block.high, block.n_cols


def _one_per_batch(rdd):
    """`rdd` pickled one record at a time, so that two such RDDs zip without re-pickling."""
    from pyspark.serializers import BatchedSerializer, CPickleSerializer

    return rdd._reserialize(BatchedSerializer(CPickleSerializer(), 1))


def build_blocks(mapped, bounds, shape, solver, storage_level, rating_col,
                 lookups=(None, None), exchange=False):
    """The persisted Block RDDs of both sides from the (user, item, rating) DataFrame of
    dense indices (or of integral ids and their `lookups`, see split_interactions).
    Returns ([user blocks, item blocks], statistics) with statistics the stored values'
    count, mean and (min, max)."""
    pieces = mapped.mapInArrow(
        partial(split_interactions, user_bounds=bounds[USER], item_bounds=bounds[ITEM],
                dtype=index_dtype(*shape), lookups=lookups),
        "side byte, block int, payload binary").rdd.map(_keyed).persist(storage_level)
    blocks, summaries = [], []
    try:
        for side in (USER, ITEM):
            n_blocks = len(bounds[side]) - 1
            rdd = pieces.filter(partial(_on_side, side=side)).map(_block_and_payload) \
                .partitionBy(n_blocks, _identity) \
                .mapPartitionsWithIndex(partial(build_partition, bounds=bounds[side],
                                                n_cols=shape[1 - side], dtype=solver.dtype,
                                                canonical=solver.canonical,
                                                exchange=exchange),
                                        preservesPartitioning=True)
            rdd = _one_per_batch(rdd).persist(storage_level)
            blocks.append(rdd)
            summary = sorted(rdd.map(_summary).collect())
            if [s[0] for s in summary] != list(range(n_blocks)):
                raise RuntimeError(f"the {SIDES[side]} blocks are not one per partition "
                                   "(a fastals bug)")
            errors = [s[4] for s in summary if s[4]]
            if errors:
                raise ValueError(f"ratingCol={rating_col!r}: {errors[0]}")
            summaries.append(summary)
    except BaseException:
        for rdd in blocks:
            rdd.unpersist()
        raise
    finally:
        pieces.unpersist()
    summary = summaries[USER]
    nnz = sum(s[3] for s in summary)
    mean = sum(s[5] for s in summary) / nnz if nnz else 0.0
    value_range = (min((s[6] for s in summary), default=0.0),
                   max((s[7] for s in summary), default=0.0))
    received = [[s[8] for s in side] for side in summaries] if exchange else None
    return blocks, (nnz, mean, value_range), received


def build_routes(blocks, bounds, storage_level):
    """The out-blocks of the exchange: routes[S] (partitioned like the blocks of the other
    side F) holds, for block j of F, [(block of S, offsets of the rows of block j it
    reads)]; persisted and computed here (set-up)."""
    routes = []
    try:
        for side in (USER, ITEM):
            source = bounds[1 - side]
            rdd = blocks[side].flatMap(partial(routes_of, source_bounds=source)) \
                .partitionBy(len(source) - 1, _identity) \
                .mapPartitionsWithIndex(out_block, preservesPartitioning=True)
            rdd = _one_per_batch(rdd).persist(storage_level)
            routes.append(rdd)
            rdd.count()
    except BaseException:
        for rdd in routes:
            rdd.unpersist()
        raise
    return routes


class Alternation:
    """Runs the half-iterations of one fit; :meth:`close` releases everything it cached."""

    def __init__(self, sc, solver, blocks, num_threads, checkpoint_interval, storage_level,
                 describe_row):
        self.sc, self.solver, self.blocks = sc, solver, blocks
        self.num_threads = num_threads
        self.checkpoint_interval = checkpoint_interval
        self.storage_level = storage_level
        self.describe_row = describe_row  # (side, dense row) -> text naming the original id
        self.states = [None, None]  # persisted Solved RDDs aligned with the blocks
        self._broadcasts = [[], []]  # broadcasts the state RDDs were computed from
        self.lineage = []  # RDDs in the plan of each new state (for tests and logs)

    def run(self, state, iterations, callback=None):
        """Alternate `iterations` times from `state` ([user state, item state] on the driver,
        tuples of arrays); returns the final state. `callback(iteration, seconds)` runs
        after each iteration."""
        state = list(state)
        start = time.perf_counter()
        for iteration in range(iterations):
            for side in (USER, ITEM):
                state[side] = self.half(side, state, iteration)
            elapsed = time.perf_counter() - start
            log.info("fastals.spark ALS iteration %d/%d: %.3f s", iteration + 1, iterations,
                     elapsed)
            if callback is not None:
                callback(iteration, elapsed)
        return state

    def half(self, side, state, iteration):
        """Solve every block of `side` against the other side's state; the new state."""
        try:
            return self._half(side, state, iteration)
        except (ValueError, ArithmeticError, MemoryError):
            raise  # the model's own errors: retrying cannot help
        except Exception as exc:
            log.warning("fastals.spark: the %s half-iteration failed (%s); retrying once from "
                        "the driver's copy of the factors", SIDES[side],
                        str(exc).splitlines()[0][:200])
            self._reseed(side, state)
            return self._half(side, state, iteration)

    def _half(self, side, state, iteration):
        if self.states[side] is None:
            self._reseed(side, state)
        fixed = self.sc.broadcast(self.solver.fixed(state[1 - side]))
        try:
            solved = self.blocks[side].zip(self.states[side]).map(
                partial(solve_pair, solver=self.solver, fixed_broadcast=fixed, side=side,
                        num_threads=self.num_threads), preservesPartitioning=True)
            solved = self._persisted(solved, iteration)
            results = solved.collect()
        except BaseException:
            fixed.destroy()
            if "solved" in locals():
                solved.unpersist()
            raise
        # the RDD object keeps a reference to `fixed` (tasks that read it as the next warm
        # start serialise it), so `fixed` lives as long as this state does
        self._replace(side, solved, [fixed])
        self.lineage.append(_lineage_depth(solved))
        return self._assemble(side, results, len(state[side][0]))

    def _persisted(self, solved, iteration):
        """`solved` persisted, its lineage to be truncated when first computed (a local
        checkpoint, or a reliable one every checkpoint_interval iterations)."""
        solved = _one_per_batch(solved).persist(self.storage_level)
        if (self.checkpoint_interval > 0 and self.sc.getCheckpointDir()
                and (iteration + 1) % self.checkpoint_interval == 0):
            solved.checkpoint()
        else:
            solved.localCheckpoint()
        return solved

    def _assemble(self, side, results, n_rows):
        failed = [r for r in results if r.error]
        if failed:
            self._raise_failed(side, failed)
        results = sorted(results, key=lambda r: r.lo)
        sizes = [len(r.state[0]) for r in results]
        if [r.lo for r in results] != np.cumsum([0] + sizes[:-1]).tolist() \
                or sum(sizes) != n_rows:
            raise RuntimeError("the solved blocks do not cover every row (a fastals bug)")
        return tuple(np.concatenate([r.state[k] for r in results])
                     for k in range(len(results[0].state)))

    def _raise_failed(self, side, failed):
        """Raise the error of the first failed block, naming the row by its id."""
        first = min(failed, key=lambda r: r.lo)
        kind, _, message = first.error.partition(": ")
        if first.error_row is not None:  # name the row by its id, not its dense index
            dense = f"{SIDES[side]} {first.error_row}"
            named = self.describe_row(side, first.error_row)
            message = message.replace(dense, named) if dense in message \
                else f"{message} ({dense} is {named})"
        raise (MemoryError if kind == "MemoryError" else ModelFitError)(message)

    def _reseed(self, side, state):
        """Start the state RDD of `side` from the driver's copy (a fresh lineage)."""
        seed = self.sc.broadcast(tuple(state[side]))
        rdd = self.blocks[side].map(partial(initial_state_rows, state_broadcast=seed),
                                    preservesPartitioning=True)
        self._replace(side, _one_per_batch(rdd), [seed])

    def _replace(self, side, rdd, broadcasts=()):
        """Make `rdd` the state of `side`, releasing the old state and its broadcasts."""
        old, old_broadcasts = self.states[side], self._broadcasts[side]
        self.states[side], self._broadcasts[side] = rdd, list(broadcasts)
        if old is not None:
            old.unpersist()
            _delete_checkpoint(self.sc, old)
        for broadcast in old_broadcasts:
            broadcast.destroy()

    def close(self):
        for side in (USER, ITEM):
            self._replace(side, None)
        for rdd in self.blocks:
            rdd.unpersist()


class ExchangeAlternation(Alternation):
    """The half-iterations with MLlib's block-to-block exchange: no factor matrix passes
    through the driver.

    Solving side S against F: each block of F sends every block of S the rows of F it
    reads (its routes, recorded at set-up), in one shuffle keyed by the destination block;
    each block of S solves against the compact array it received (its CSR's columns were
    renumbered into it at set-up) and the Gram matrix of F, a tree-aggregate of per-block
    K x K sums computed when F was solved, broadcast (K x K only). The new state stays
    persisted on the executors, its lineage truncated; the driver collects a summary
    (errors, the new Gram matrix) only, and the factors once, block by block, at the end.
    A failed half-iteration is retried once from the persisted states.
    """

    def __init__(self, sc, solver, blocks, routes, num_threads, checkpoint_interval,
                 storage_level, describe_row):
        super().__init__(sc, solver, blocks, num_threads, checkpoint_interval, storage_level,
                         describe_row)
        self.routes = routes  # routes[S]: aligned with the blocks of the other side
        self.grams = [None, None]  # the summed Y^T Y of each side's current state

    def run(self, state, iterations, callback=None, seed=None):
        """Alternate from `state` ([user, item] on the driver), or when None from initial
        rows drawn per block on the executors from `seed`; returns the final state,
        collected one block at a time."""
        for side in (USER, ITEM):
            if state is not None:
                self._reseed(side, state)
            else:
                rdd = self.blocks[side].map(partial(initial_block_state, solver=self.solver,
                                                    seed=seed, side=side),
                                            preservesPartitioning=True)
                self._replace(side, _one_per_batch(rdd).persist(self.storage_level))
        start = time.perf_counter()
        for iteration in range(iterations):
            for side in (USER, ITEM):
                self.half(side, None, iteration)
            elapsed = time.perf_counter() - start
            log.info("fastals.spark ALS iteration %d/%d: %.3f s", iteration + 1, iterations,
                     elapsed)
            if callback is not None:
                callback(iteration, elapsed)
        return [self._collect(side) for side in (USER, ITEM)]

    def half(self, side, state, iteration):
        try:
            return self._half(side, iteration)
        except (ValueError, ArithmeticError, MemoryError):
            raise  # the model's own errors: retrying cannot help
        except Exception as exc:
            log.warning("fastals.spark: the %s half-iteration failed (%s); retrying once from "
                        "the persisted factors", SIDES[side], str(exc).splitlines()[0][:200])
            return self._half(side, iteration)

    def _gram(self, side):
        """The summed Y^T Y of the current state of `side` (implicit ALS; else None)."""
        if self.grams[side] is None and self.solver.kind == "implicit":
            self.grams[side] = self.states[side].map(
                partial(solved_summary, solver=self.solver)).treeAggregate(
                ([], None), add_summaries, add_summaries)[1]
        return self.grams[side]

    def _half(self, side, iteration):
        other = 1 - side
        gram = self._gram(other)
        extra = None if gram is None else self.sc.broadcast(self.solver.fixed_from_gram(gram))
        try:
            n_blocks = self.blocks[side].getNumPartitions()
            received = _one_per_batch(self.states[other].zip(self.routes[side])
                                      .flatMap(send_factors).partitionBy(n_blocks, _identity))
            # one partitioner for all three: the union is partition-wise (no shuffle)
            parts = self.blocks[side].union(self.states[side]).union(received)
            if parts.getNumPartitions() != n_blocks:
                raise RuntimeError("the blocks, states and received rows are not "
                                   "co-partitioned (a fastals bug)")
            solved = parts.mapPartitionsWithIndex(
                partial(solve_partition, solver=self.solver, extra_broadcast=extra, side=side,
                        num_threads=self.num_threads), preservesPartitioning=True)
            solved = self._persisted(solved, iteration)
            errors, new_gram = solved.map(partial(solved_summary, solver=self.solver)) \
                .treeAggregate(([], None), add_summaries, add_summaries)
            if errors:
                self._raise_failed(side, [Solved(lo, (), error, row)
                                          for lo, error, row in errors])
        except BaseException:
            if extra is not None:
                extra.destroy()
            if "solved" in locals():
                solved.unpersist()
            raise
        self._replace(side, solved, [] if extra is None else [extra])
        self.grams[side] = new_gram
        self.lineage.append(_lineage_depth(solved))

    def _collect(self, side):
        """The state of `side` on the driver, one block at a time through the JVM."""
        parts = sorted(self.states[side].toLocalIterator(), key=lambda r: r.lo)
        return tuple(np.concatenate([r.state[k] for r in parts])
                     for k in range(len(parts[0].state)))

    def close(self):
        super().close()
        for rdd in self.routes:
            rdd.unpersist()


def _delete_checkpoint(sc, rdd):
    """Remove the reliable checkpoint files of a state nothing reads any more (as MLlib
    does; Spark keeps them by default), so a long fit leaves at most one per side."""
    path = rdd.getCheckpointFile()
    if not path:
        return
    try:
        jvm_path = sc._jvm.org.apache.hadoop.fs.Path(path)
        jvm_path.getFileSystem(sc._jsc.hadoopConfiguration()).delete(jvm_path, True)
    except Exception as exc:  # a leftover file is not worth failing a fit for
        log.warning("fastals.spark: could not delete the checkpoint %s (%s)", path, exc)


def _lineage_depth(rdd):
    """How many RDDs the plan of `rdd` goes through (one line each in its debug string)."""
    text = rdd.toDebugString()
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text.count("\n") + 1
