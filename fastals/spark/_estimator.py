"""``fastals.spark.ALS``: the estimator (parameters, checks, the fit pipeline).

Imports numpy, fastals' validation helpers, fastals.models.base (the fit-argument check)
and the other fastals.spark modules; pyspark only inside functions (and its types for the
hints, under ``TYPE_CHECKING``).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fastals._typing import DTypeLike, FitCallback, SeedLike, Self
from fastals._validation import (
    check_bool,
    check_choice,
    check_int,
    check_num_threads,
    check_random_state,
)
from fastals.models.base import check_callback
from fastals.spark import _frames
from fastals.spark._blocks import (
    ITEM,
    USER,
    ExplicitSolver,
    ImplicitSolver,
    balanced_bounds,
    dense_lookup,
)
from fastals.spark._model import ALSModel, FitSummary
from fastals.spark._train import Alternation, ExchangeAlternation, build_blocks, build_routes

if TYPE_CHECKING:
    from pyspark import StorageLevel
    from pyspark.sql import DataFrame

#: MLlib's parameter names and the fastals names they stand for
ALIASES = {"rank": "factors", "maxIter": "iterations", "regParam": "regularization",
           "seed": "random_state"}
# (implicit feedback, explicit ratings): the defaults of ImplicitALS and of ExplicitALS
_DEFAULTS = {True: {"factors": 100, "regularization": 0.01, "iterations": 15,
                    "random_state": None},
             False: {"factors": 64, "regularization": 0.12, "iterations": 15,
                     "random_state": None}}
log = logging.getLogger("fastals")
_EXCHANGES = ("auto", "broadcast", "shuffle")
# exchange="auto" broadcasts while the larger factor matrix is at most this (and at most
# an eighth of spark.driver.memory, which the broadcast passes through)
BROADCAST_LIMIT = 256 << 20
# initial factors are drawn on the driver (as the single-machine model draws them) while
# both matrices together are at most this; else per block on the executors
DRIVER_DRAW_LIMIT = 256 << 20
_STORAGE_LEVELS = ("MEMORY_AND_DISK", "MEMORY_ONLY", "DISK_ONLY", "MEMORY_AND_DISK_2",
                   "MEMORY_ONLY_2", "DISK_ONLY_2", "DISK_ONLY_3", "MEMORY_AND_DISK_DESER",
                   "OFF_HEAP")


class ALS:
    r"""Alternating least squares on a Spark DataFrame, solved by the fastals kernels.

    ``ALS(...).fit(df)`` returns an :class:`ALSModel`, as ``pyspark.ml.recommendation.ALS``
    does. The objective and the per-row solves are exactly those of
    :class:`fastals.ImplicitALS` (``implicitPrefs=True``, the default) or
    :class:`fastals.ExplicitALS` (``implicitPrefs=False``): the same kernels, so from the
    same initial factors the distributed factors equal the single-machine ones. See
    :mod:`fastals.spark` for how the work is distributed and the memory it needs.

    Parameters
    ----------
    factors, regularization, alpha, iterations, cg_steps, solver, dtype, random_state
        As in :class:`fastals.ImplicitALS` (defaults 100, 0.01, 1.0, 15, 3, "cg", float32,
        None). With ``implicitPrefs=False``, as in :class:`fastals.ExplicitALS` (defaults
        64 factors, regularization 0.12; alpha, cg_steps and solver do not apply).
    weighted_regularization : bool or None
        False: every row is regularized by lambda, as in fastals (the distributed factors
        then equal :class:`fastals.ImplicitALS`'s). True: row u by lambda n_u, n_u its
        number of positive interactions (ALS-WR), which is what MLlib's ``regParam``
        means. None (default): for implicit feedback True when lambda was given as
        ``regParam``, else False, so MLlib code keeps its meaning and fastals code keeps
        fastals'; for explicit ratings True (ExplicitALS' and MLlib's default).
    biases, bias_regularization
        Explicit ratings only, as in :class:`fastals.ExplicitALS`: fit a user and an item
        bias around the mean rating (default True) and their penalty (default: as
        ``regularization``).
    num_threads : int
        OpenMP threads per Spark task; 0 uses the task's cores (``spark.task.cpus``).
    userCol, itemCol : str
        Id columns. Any atomic type (integers, strings, dates, ...); ids are numbered
        0..n-1 in sorted order on the cluster. Integral ids take a fast path: one pass
        counts them and each task maps its rows through the sorted ids (no sort or join
        of the interactions), and ids that are already 0..n-1 are used as they are.
    ratingCol : str or None
        Interaction strength (numeric); None counts every row as 1. Rows repeating a
        (user, item) pair are summed; zeros carry no information and are dropped.
    predictionCol : str
        Column added by :meth:`ALSModel.transform`.
    implicitPrefs : bool
        True (the default, unlike MLlib) for implicit feedback (:class:`fastals.ImplicitALS`
        per block); False for explicit ratings (:class:`fastals.ExplicitALS` per block:
        stored zeros are ratings, a repeated (user, item) pair is an error).
    nonnegative : bool
        Non-negative factors; explicit ratings only (ExplicitALS' NNLS solve).
    numUserBlocks, numItemBlocks : int or None
        Row blocks (one Spark task each) per side; None uses ``defaultParallelism``.
        Blocks are contiguous id ranges of about equal work.
    checkpointInterval : int
        Lineage is truncated after every half-iteration (a local checkpoint). When the
        SparkContext has a checkpoint directory, every ``checkpointInterval``-th iteration
        writes a reliable checkpoint instead; -1 never does.
    coldStartStrategy : {"nan", "drop"}
        What :meth:`ALSModel.transform` does with unknown users or items.
    intermediateStorageLevel : str
        StorageLevel name for the cached blocks and factors (default MEMORY_AND_DISK).
    exchange : {"auto", "broadcast", "shuffle"}
        How a half-iteration gets the fixed side's factors to the blocks solving against
        them. "broadcast": collected on the driver and broadcast whole. "shuffle": MLlib's
        block-to-block exchange, each block of the fixed side sending each block only
        the rows it reads; no factor matrix passes through the driver until the end.
        "auto" (default) broadcasts while the larger factor matrix is at most
        min(256 MiB, spark.driver.memory / 8), else shuffles, and logs which and why.
        See :mod:`fastals.spark` for the memory of each.
    rank, maxIter, regParam, seed
        MLlib's names for factors, iterations, regularization and random_state; give
        either name, not two different values.

    Examples
    --------
    >>> from fastals.spark import ALS                                 # doctest: +SKIP
    >>> als = ALS(rank=64, maxIter=10, regParam=0.05, alpha=1.0,      # doctest: +SKIP
    ...           userCol="user", itemCol="track", ratingCol="plays")
    >>> model = als.fit(plays)                                        # doctest: +SKIP
    >>> model.recommendForAllUsers(10).show()                         # doctest: +SKIP
    >>> local = model.to_local()       # fastals.ImplicitALS + the id arrays  # doctest: +SKIP
    """

    def __init__(self, factors: int | None = None,
                 regularization: float | Sequence[float] | None = None, alpha: float = 1.0,
                 iterations: int | None = None, cg_steps: int = 3, solver: str = "cg",
                 dtype: DTypeLike = np.float32, random_state: SeedLike = None,
                 num_threads: int = 0, weighted_regularization: bool | None = None,
                 biases: bool = True,
                 bias_regularization: float | Sequence[float] | None = None, *,
                 userCol: str = "user", itemCol: str = "item", ratingCol: str | None = "rating",
                 predictionCol: str = "prediction", implicitPrefs: bool = True,
                 nonnegative: bool = False, numUserBlocks: int | None = None,
                 numItemBlocks: int | None = None, checkpointInterval: int = 10,
                 coldStartStrategy: str = "nan",
                 intermediateStorageLevel: str | StorageLevel = "MEMORY_AND_DISK",
                 exchange: str = "auto", rank: int | None = None, maxIter: int | None = None,
                 regParam: float | None = None, seed: SeedLike = None) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.cg_steps = cg_steps
        self.solver = solver
        self.dtype = dtype
        self.random_state = random_state
        self.num_threads = num_threads
        self.weighted_regularization = weighted_regularization
        self.biases = biases
        self.bias_regularization = bias_regularization
        self.userCol = userCol
        self.itemCol = itemCol
        self.ratingCol = ratingCol
        self.predictionCol = predictionCol
        self.implicitPrefs = implicitPrefs
        self.nonnegative = nonnegative
        self.numUserBlocks = numUserBlocks
        self.numItemBlocks = numItemBlocks
        self.checkpointInterval = checkpointInterval
        self.coldStartStrategy = coldStartStrategy
        self.intermediateStorageLevel = intermediateStorageLevel
        self.exchange = exchange
        self.rank = rank
        self.maxIter = maxIter
        self.regParam = regParam
        self.seed = seed
        self._resolve()

    # --- parameters ----------------------------------------------------------------------
    def _param_names(self):
        import inspect

        return [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names()}

    def setParams(self, **params: Any) -> Self:
        """Set parameters by name (fastals or MLlib names); returns self."""
        known = set(self._param_names())
        for name, value in params.items():
            if name not in known:
                raise TypeError(f"ALS has no parameter {name!r}")
        old = self.get_params()
        for name, value in params.items():
            setattr(self, name, value)
            if name in ALIASES:  # the newest value wins over the other name's
                setattr(self, ALIASES[name], None)
            elif name in ALIASES.values():
                setattr(self, next(k for k, v in ALIASES.items() if v == name), None)
        try:
            self._resolve()
        except BaseException:
            for name, value in old.items():
                setattr(self, name, value)
            raise
        return self

    def __getattr__(self, name):
        # MLlib-style setters and getters: setRank(64), getMaxIter(), setUserCol("u"), ...
        if name[:3] in ("set", "get") and len(name) > 3:
            target = name[3].lower() + name[4:]
            if target in self._param_names():
                if name.startswith("set"):
                    return lambda value: self.setParams(**{target: value})
                return lambda: self._resolve().get(ALIASES.get(target, target),
                                                   getattr(self, target))
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items()
                         if v is not None or k in _DEFAULTS[True])
        return f"ALS({args})"

    def _resolve(self) -> dict:
        """Every parameter checked, MLlib names folded into fastals names."""
        p = {"implicit": check_bool("implicitPrefs", self.implicitPrefs)}
        for alias, name in ALIASES.items():
            ours, theirs = getattr(self, name), getattr(self, alias)
            if ours is not None and theirs is not None and ours != theirs:
                raise ValueError(f"{name}={ours!r} and {alias}={theirs!r} disagree; give one "
                                 f"of them ({alias} is MLlib's name for {name})")
            p[name] = ours if ours is not None else theirs if theirs is not None \
                else _DEFAULTS[p["implicit"]][name]
        p["iterations"] = check_int("iterations", p["iterations"], minimum=0)
        check_random_state(p["random_state"])
        p["num_threads"] = check_num_threads(self.num_threads)
        p["nonnegative"] = check_bool("nonnegative", self.nonnegative)
        weighted = self.weighted_regularization
        if weighted is None:
            weighted = not p["implicit"] or (self.regParam is not None
                                             and self.regularization is None)
        p["weighted_regularization"] = check_bool("weighted_regularization", weighted)
        if p["implicit"]:
            if p["nonnegative"]:
                raise ValueError("nonnegative=True is not supported with implicitPrefs=True "
                                 "(fastals' implicit ALS has no non-negative solve); it is "
                                 "with implicitPrefs=False")
            p["engine"] = ImplicitSolver(p["factors"], p["regularization"], self.alpha,
                                         self.cg_steps, self.solver, self.dtype,
                                         weighted=p["weighted_regularization"])
        else:
            p["engine"] = ExplicitSolver(p["factors"], p["regularization"],
                                         self.bias_regularization,
                                         p["weighted_regularization"],
                                         check_bool("biases", self.biases), p["nonnegative"],
                                         self.dtype)
        for name in ("userCol", "itemCol", "predictionCol"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise TypeError(f"{name} must be a column name (a non-empty str), got {value!r}")
        if self.userCol == self.itemCol:
            raise ValueError(f"userCol and itemCol must differ, both are {self.userCol!r}")
        if self.ratingCol is not None and (not isinstance(self.ratingCol, str)
                                           or not self.ratingCol):
            raise TypeError("ratingCol must be a column name (a non-empty str) or None, got "
                            f"{self.ratingCol!r}")
        for name in ("numUserBlocks", "numItemBlocks"):
            value = getattr(self, name)
            p[name] = None if value is None else check_int(name, value, minimum=1)
        p["checkpointInterval"] = check_int("checkpointInterval", self.checkpointInterval,
                                            minimum=-1)
        if p["checkpointInterval"] == 0:
            raise ValueError("checkpointInterval must be >= 1, or -1 for never, got 0")
        check_choice("coldStartStrategy", self.coldStartStrategy, ("nan", "drop"))
        p["exchange"] = check_choice("exchange", self.exchange, _EXCHANGES)
        if not hasattr(self.intermediateStorageLevel, "useDisk"):
            check_choice("intermediateStorageLevel", self.intermediateStorageLevel,
                         _STORAGE_LEVELS)
        return p

    # --- fit ---------------------------------------------------------------------------------
    def fit(self, df: DataFrame, callback: FitCallback | None = None) -> ALSModel:
        """Fit to the interactions in `df` (one row per user-item interaction).

        `callback(iteration, seconds, None)` runs on the driver after each iteration (the
        third argument is the loss slot of fastals' callbacks; not computed here).
        Returns an :class:`ALSModel`. Everything fit caches on the cluster is released
        before it returns, also when it fails.
        """
        sc = _frames.spark_context(df)
        p = self._resolve()
        check_callback(callback)
        solver = p["engine"]
        user_field = _frames.check_column(df, "userCol", self.userCol, "id")
        item_field = _frames.check_column(df, "itemCol", self.itemCol, "id")
        if self.ratingCol is not None:
            _frames.check_column(df, "ratingCol", self.ratingCol, "rating")
        elif not p["implicit"]:
            raise ValueError("ratingCol=None counts every row as 1, which explicit ALS "
                             "(implicitPrefs=False) cannot learn from; name the rating column")
        storage = self._storage_level()
        start = time.perf_counter()
        if not p["implicit"]:
            self._check_single_ratings(df)
        rating, invalid = self._rating(df)
        rows = self._rows(df, rating)
        # integral ids: numbered in one pass (no sort, no join; none at all for 0..n-1)
        integral = _frames.is_integral(user_field) and _frames.is_integral(item_field)
        if integral:
            (user_ids, item_ids), (user_counts, item_counts), bad = \
                _frames.counted_integer_ids(rows, (self.userCol, self.itemCol),
                                            ("userCol", "itemCol"))
        else:
            user_ids, user_counts, bad = _frames.sorted_ids(df, self.userCol, "userCol",
                                                            invalid)
        if not len(user_ids):
            raise ValueError("the DataFrame is empty: fit needs at least one interaction")
        if bad:
            raise ValueError(f"ratingCol={self.ratingCol!r} has {bad} null, NaN or infinite "
                             "value(s); drop or fill them before fitting")
        if not integral:
            item_ids, item_counts, _ = _frames.sorted_ids(df, self.itemCol, "itemCol")
        ids = (user_ids, item_ids)
        shape = (len(user_ids), len(item_ids))
        row_cost = solver.row_cost()
        bounds: list[Any] = [None, None]
        bounds[USER] = balanced_bounds(user_counts, p["numUserBlocks"] or sc.defaultParallelism,
                                       row_cost)
        bounds[ITEM] = balanced_bounds(item_counts, p["numItemBlocks"] or sc.defaultParallelism,
                                       row_cost)
        names = (self.userCol, self.itemCol)
        exchange = self._choose_exchange(sc, p["exchange"], shape, p["factors"], solver)

        def describe_row(side, row):
            return f"{names[side]}={ids[side][row]!r}"

        seconds: list[float] = []

        def on_iteration(iteration, elapsed):
            seconds.append(elapsed - sum(seconds))
            if callback is not None:
                callback(iteration, elapsed, None)

        # the id broadcasts stay alive while the blocks may be recomputed from the input
        id_broadcasts = [sc.broadcast((side_ids, None)) for side_ids in ids]
        alternation = None
        try:
            if integral:
                mapped = rows
                lookups = tuple(None if dense_lookup(ids[side]) is None
                                else id_broadcasts[side] for side in (USER, ITEM))
            else:
                frames = [_frames.id_frame(df.sparkSession, id_broadcasts[side], shape[side],
                                           (user_field, item_field)[side],
                                           sc.defaultParallelism) for side in (USER, ITEM)]
                mapped = self._dense(rows, frames[USER], frames[ITEM])
                lookups = (None, None)
            shuffle = exchange == "shuffle"
            blocks, (nnz, mean, value_range), received = build_blocks(
                mapped, bounds, shape, solver, storage, self.ratingCol, lookups,
                exchange=shuffle)
            solver.prepare(mean, value_range)
            if shuffle:
                alternation = ExchangeAlternation(sc, solver, blocks, None, p["num_threads"],
                                                  p["checkpointInterval"], storage,
                                                  describe_row)
                alternation.routes = build_routes(blocks, bounds, storage)
            else:
                alternation = Alternation(sc, solver, blocks, p["num_threads"],
                                          p["checkpointInterval"], storage, describe_row)
            setup = time.perf_counter() - start
            if not shuffle or sum(shape) * p["factors"] * solver.itemsize <= DRIVER_DRAW_LIMIT:
                initial = solver.initial_state(shape[0], shape[1], p["random_state"],
                                               (user_counts, item_counts))
                state = alternation.run(initial, p["iterations"], on_iteration)
            else:  # too large to draw on the driver: each block draws its own rows
                seed = int(check_random_state(p["random_state"]).integers(2 ** 63))
                state = alternation.run(None, p["iterations"], on_iteration, seed=seed)
            state = solver.finish(state, p["iterations"])
        finally:
            if alternation is not None:
                alternation.close()
            for broadcast in id_broadcasts:
                broadcast.destroy()
        summary = FitSummary(setup_seconds=setup, iteration_seconds=seconds,
                             n_users=shape[0], n_items=shape[1], nnz=nnz,
                             user_blocks=len(bounds[USER]) - 1, item_blocks=len(bounds[ITEM]) - 1,
                             lineage=list(alternation.lineage), exchange=exchange,
                             received_rows=received)
        return ALSModel(df.sparkSession, solver, dict(p, alpha=self.alpha), self.userCol,
                        self.itemCol, self.predictionCol, self.coldStartStrategy, user_field,
                        item_field, user_ids, item_ids, state[USER], state[ITEM],
                        (user_counts, item_counts), summary)

    @staticmethod
    def _choose_exchange(sc, asked, shape, factors, solver):
        """"broadcast" or "shuffle" (see the ``exchange`` parameter), logged with why."""
        largest = max(shape) * factors * solver.itemsize
        limit = min(BROADCAST_LIMIT, _frames.driver_memory(sc) // 8)
        if asked != "auto":
            chosen, why = asked, "as asked (exchange=%r)" % asked
        elif largest > limit:
            chosen, why = "shuffle", f"the larger factor matrix, {largest / 2**20:.1f} MiB, " \
                f"is over the broadcast limit of {limit / 2**20:.1f} MiB"
        else:
            chosen, why = "broadcast", f"the larger factor matrix, {largest / 2**20:.1f} " \
                f"MiB, is within the broadcast limit of {limit / 2**20:.1f} MiB"
        log.info("fastals.spark: %s exchange: %s", chosen, why)
        return chosen

    def _storage_level(self):
        from pyspark import StorageLevel

        level = self.intermediateStorageLevel
        return level if hasattr(level, "useDisk") else getattr(StorageLevel, level)

    def _check_single_ratings(self, df):
        """Explicit ratings: one per (user, item) pair, as ExplicitALS requires."""
        from pyspark.sql import functions as F

        repeated = df.groupBy(_frames.col(self.userCol), _frames.col(self.itemCol)) \
            .agg(F.count(F.lit(1)).alias("n")).filter(F.col("n") > 1)
        first = repeated.limit(1).collect()
        if first:
            user, item, n = first[0]
            raise ValueError(
                f"the pair {self.userCol}={user!r}, {self.itemCol}={item!r} has {n} ratings; "
                "explicit ALS (implicitPrefs=False) takes one rating per (user, item) pair: "
                "aggregate them first (e.g. keep the latest or the mean)")

    def _rating(self, df):
        """The rating as a double expression, and an expression flagging unusable values."""
        from pyspark.sql import functions as F

        if self.ratingCol is None:
            return F.lit(1.0), None
        rating = _frames.col(self.ratingCol).cast("double")
        return rating, rating.isNull() | F.isnan(rating) | (F.abs(rating) == float("inf"))

    def _rows(self, df, rating):
        """(user id, item id, rating as double) rows."""
        return df.select(_frames.col(self.userCol).alias("__fastals_user"),
                         _frames.col(self.itemCol).alias("__fastals_item"),
                         rating.alias("__fastals_r"))

    @staticmethod
    def _dense(rows, users, items):
        """(user index, item index, rating) rows, joined on the cluster."""
        from pyspark.sql import functions as F

        u, i = "__fastals_user", "__fastals_item"
        users = users.select(F.col("id").alias(u), F.col("idx").alias("__fastals_u"))
        items = items.select(F.col("id").alias(i), F.col("idx").alias("__fastals_i"))
        return rows.join(F.broadcast(users), u).join(F.broadcast(items), i) \
            .select("__fastals_u", "__fastals_i", "__fastals_r")

