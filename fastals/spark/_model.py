"""``fastals.spark.ALSModel``: a fitted model, its factor DataFrames and recommendations.

Imports numpy, fastals' validation helpers and the other fastals.spark modules (the local
model comes from the solver); pyspark only inside functions (and its types for the hints,
under ``TYPE_CHECKING``).
"""
from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from fastals._validation import check_int
from fastals.spark import _frames
from fastals.spark._blocks import (
    ITEM,
    USER,
    ExplicitSolver,
    ImplicitSolver,
    balanced_bounds,
    factor_batches,
    recommendation_batches,
    subset_recommendation_batches,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructField


class FitSummary(NamedTuple):
    """What a fit did: timings (seconds), sizes, and the plan size of each new state."""

    setup_seconds: float
    iteration_seconds: list
    n_users: int
    n_items: int
    nnz: int
    user_blocks: int
    item_blocks: int
    lineage: list
    exchange: str = "broadcast"  # how the factors moved between the blocks
    # shuffle exchange: [user blocks, item blocks] -> the rows of the other side each
    # block received per half-iteration (its columns); None with the broadcast
    received_rows: list | None = None


class LocalModel(NamedTuple):
    """A fitted model on the driver: ``model.user_factors[k]`` belongs to ``user_ids[k]``."""

    model: object
    user_ids: np.ndarray
    item_ids: np.ndarray


class ALSModel:
    """A model fitted by :class:`fastals.spark.ALS`.

    The factors live on the driver (``user_factors``, ``item_factors``, numpy; row k is the
    k-th id of ``user_ids`` / ``item_ids``, sorted). The DataFrame methods compute on the
    executors from broadcast copies, made once per model; :meth:`unpersist` frees them.

    Output schemas follow ``pyspark.ml.recommendation.ALSModel``: ``userFactors`` and
    ``itemFactors`` have columns ``id`` (the id column's type) and ``features``
    (array<float>); recommendations are ``array<struct<itemCol, rating: float>>``, best
    first. Unlike fastals' ``recommend``, items the user interacted with are not filtered
    out (MLlib's behaviour).
    """

    _broadcasts: dict[tuple[int, bool], Any]  # (side, scoring) -> a pyspark Broadcast

    def __init__(self, spark: SparkSession, solver: ImplicitSolver | ExplicitSolver,
                 params: dict[str, Any], userCol: str, itemCol: str, predictionCol: str,
                 coldStartStrategy: str, user_field: StructField, item_field: StructField,
                 user_ids: np.ndarray, item_ids: np.ndarray, user_state: tuple[np.ndarray, ...],
                 item_state: tuple[np.ndarray, ...], counts: tuple[np.ndarray, np.ndarray],
                 summary: FitSummary) -> None:
        self._spark = spark
        self._solver = solver
        self._params = params
        self.userCol, self.itemCol, self.predictionCol = userCol, itemCol, predictionCol
        self.coldStartStrategy = coldStartStrategy
        self._fields = (user_field, item_field)
        self.user_ids, self.item_ids = user_ids, item_ids
        self._state = (user_state, item_state)
        self._counts = counts
        self.summary = summary
        self._broadcasts = {}

    # --- attributes --------------------------------------------------------------------------
    @property
    def rank(self) -> int:
        return int(self._params["factors"])

    @property
    def implicitPrefs(self) -> bool:
        return self._params["implicit"]

    @property
    def user_factors(self) -> np.ndarray:
        return self._solver.factors(self._state[USER])

    @property
    def item_factors(self) -> np.ndarray:
        return self._solver.factors(self._state[ITEM])

    @property
    def user_bias(self) -> np.ndarray | None:
        """Explicit ratings: the user biases (None for implicit feedback)."""
        return self._state[USER][1] if len(self._state[USER]) > 1 else None

    @property
    def item_bias(self) -> np.ndarray | None:
        """Explicit ratings: the item biases (None for implicit feedback)."""
        return self._state[ITEM][1] if len(self._state[ITEM]) > 1 else None

    def __repr__(self):
        return (f"ALSModel(rank={self.rank}, users={len(self.user_ids)}, "
                f"items={len(self.item_ids)}, userCol={self.userCol!r}, "
                f"itemCol={self.itemCol!r})")

    def to_local(self) -> LocalModel:
        """The model on the driver as a fastals model plus the id arrays.

        :class:`fastals.ImplicitALS` (or :class:`fastals.ExplicitALS` for explicit ratings,
        with its biases, counts and mean). ``local.model.recommend(k, ...)`` works on dense
        index k = the position of the user in ``local.user_ids``; map results back with
        ``local.item_ids[ids]``. A model fitted with weighted regularization keeps its
        factors, but an ImplicitALS fold-in (``recalculate_user``) uses the plain lambda.
        """
        model = self._solver.local_model(
            self._state[USER], self._state[ITEM], self._counts,
            iterations=self._params["iterations"],
            num_threads=self._params["num_threads"],
            random_state=self._params["random_state"]
            if isinstance(self._params["random_state"], (int, type(None))) else None)
        return LocalModel(model, self.user_ids.copy(), self.item_ids.copy())

    # --- factor DataFrames -------------------------------------------------------------------
    @property
    def userFactors(self) -> DataFrame:
        """DataFrame (id, features): one row per user."""
        return self._factor_frame(USER)

    @property
    def itemFactors(self) -> DataFrame:
        """DataFrame (id, features): one row per item."""
        return self._factor_frame(ITEM)

    def _factor_frame(self, side, scoring=False):
        """(id, features) of one side: the factors, or with `scoring` the vectors whose dot
        products are the model's predictions (explicit ratings: biases appended)."""
        from pyspark.sql.types import ArrayType, StructField, StructType

        schema = StructType([StructField("id", self._fields[side].dataType, False),
                             StructField("features", ArrayType(self._value_type(), False),
                                         False)])
        bounds = self._output_bounds(side)
        return _frames.block_seed(self._spark, len(bounds) - 1).mapInArrow(
            partial(factor_batches, broadcast=self._broadcast(side, scoring), bounds=bounds,
                    schema=_frames.arrow_schema(schema)), schema)

    def _value_type(self):
        from pyspark.sql.types import DoubleType, FloatType

        return DoubleType() if self._solver.dtype == np.float64 else FloatType()

    # --- predictions -------------------------------------------------------------------------
    def transform(self, dataset: DataFrame) -> DataFrame:
        """`dataset` with `predictionCol` added: the score x_u . y_i of each row's pair
        (explicit ratings: the predicted rating mu + b_u + b_i + x_u . y_i, not clipped).

        Unknown users or items get NaN (coldStartStrategy="nan") or are dropped ("drop").
        """
        from pyspark.sql import functions as F

        _frames.spark_context(dataset, "dataset")
        for param, name in (("userCol", self.userCol), ("itemCol", self.itemCol)):
            _frames.check_column(dataset, param, name, "id")
        users = self._factor_frame(USER, scoring=True).select(
            F.col("id").alias("__fastals_uid"), F.col("features").alias("__fastals_uf"))
        items = self._factor_frame(ITEM, scoring=True).select(
            F.col("id").alias("__fastals_iid"), F.col("features").alias("__fastals_if"))
        joined = dataset.join(users, dataset[self.userCol] == users["__fastals_uid"], "left") \
            .join(items, dataset[self.itemCol] == items["__fastals_iid"], "left")
        dot = F.aggregate(F.zip_with("__fastals_uf", "__fastals_if", lambda x, y: x * y),
                          F.lit(0.0).cast("double"), lambda total, v: total + v)
        prediction = F.when(F.col("__fastals_uf").isNull() | F.col("__fastals_if").isNull(),
                            F.lit(float("nan"))).otherwise(dot).cast("float")
        out = joined.withColumn(self.predictionCol, prediction) \
            .drop("__fastals_uid", "__fastals_uf", "__fastals_iid", "__fastals_if")
        if self.coldStartStrategy == "drop":
            out = out.filter(~F.isnan(self.predictionCol))
        return out

    # --- recommendations ---------------------------------------------------------------------
    def recommendForAllUsers(self, numItems: int) -> DataFrame:
        """DataFrame (userCol, recommendations): the `numItems` best items of every user."""
        return self._recommend_all(USER, numItems, "numItems")

    def recommendForAllItems(self, numUsers: int) -> DataFrame:
        """DataFrame (itemCol, recommendations): the `numUsers` best users of every item."""
        return self._recommend_all(ITEM, numUsers, "numUsers")

    def recommendForUserSubset(self, dataset: DataFrame, numItems: int) -> DataFrame:
        """Recommendations for the distinct users in ``dataset[userCol]``; unknown users are
        left out."""
        return self._recommend_subset(USER, dataset, numItems, "numItems")

    def recommendForItemSubset(self, dataset: DataFrame, numUsers: int) -> DataFrame:
        """The best users for the distinct items in ``dataset[itemCol]``."""
        return self._recommend_subset(ITEM, dataset, numUsers, "numUsers")

    def _recommend_all(self, side, n, name):
        n = check_int(name, n, minimum=1)
        bounds = self._output_bounds(side)
        schema = self._recommendation_schema(side)
        return _frames.block_seed(self._spark, len(bounds) - 1).mapInArrow(
            partial(recommendation_batches, queries_bc=self._broadcast(side, True),
                    targets_bc=self._broadcast(1 - side, True), bounds=bounds, n=n,
                    num_threads=self._params["num_threads"],
                    schema=_frames.arrow_schema(schema)), schema)

    def _recommend_subset(self, side, dataset, n, name):
        n = check_int(name, n, minimum=1)
        _frames.spark_context(dataset, "dataset")
        column = (self.userCol, self.itemCol)[side]
        _frames.check_column(dataset, ("userCol", "itemCol")[side], column, "id")
        schema = self._recommendation_schema(side)
        queries = dataset.select(_frames.col(column)).distinct()
        return queries.mapInArrow(
            partial(subset_recommendation_batches, queries_bc=self._broadcast(side, True),
                    targets_bc=self._broadcast(1 - side, True), n=n,
                    num_threads=self._params["num_threads"],
                    schema=_frames.arrow_schema(schema)), schema)

    def _recommendation_schema(self, side):
        from pyspark.sql.types import ArrayType, FloatType, StructField, StructType

        names = (self.userCol, self.itemCol)
        entry = StructType([StructField(names[1 - side], self._fields[1 - side].dataType, False),
                            StructField("rating", FloatType(), False)])
        return StructType([StructField(names[side], self._fields[side].dataType, False),
                           StructField("recommendations", ArrayType(entry, False), False)])

    # --- plumbing ------------------------------------------------------------------------------
    def _output_bounds(self, side):
        n = len((self.user_ids, self.item_ids)[side])
        blocks = 2 * self._spark.sparkContext.defaultParallelism
        return balanced_bounds(np.ones(n), blocks) if n else np.zeros(1, dtype=np.int64)

    def _broadcast(self, side, scoring=False):
        """(ids, factors) -- or (ids, scoring vectors) -- of one side on every executor,
        made once per model."""
        vectors = self._solver.scoring(self._state[side], side) if scoring \
            else self._solver.factors(self._state[side])
        key = (side, scoring and vectors is not self._solver.factors(self._state[side]))
        if key not in self._broadcasts:
            ids = (self.user_ids, self.item_ids)[side]
            self._broadcasts[key] = self._spark.sparkContext.broadcast((ids, vectors))
        return self._broadcasts[key]

    def unpersist(self) -> None:
        """Free the broadcast copies of the factors (made again if the model is used;
        DataFrames obtained before then can no longer be evaluated)."""
        for broadcast in self._broadcasts.values():
            broadcast.destroy()
        self._broadcasts.clear()
