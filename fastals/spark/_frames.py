"""Driver-side DataFrame plumbing of fastals.spark: checks, dense ids, collecting arrays.

pyspark is imported inside the functions, so importing this module never needs it.
Imports numpy and fastals.spark._blocks.
"""
from __future__ import annotations

import pickle
from functools import partial

import numpy as np

from fastals.spark._blocks import (
    balanced_bounds,
    collect_columns,
    count_ids,
    factor_batches,
    merge_id_counts,
)

_INTEGRAL = ("ByteType", "ShortType", "IntegerType", "LongType")
_NOT_IDS = ("MapType", "ArrayType", "StructType", "NullType", "VariantType", "CalendarIntervalType")


def require_pyspark():
    """Import the optional dependencies, or say how to install them."""
    missing = []
    for name in ("pyspark", "pyarrow", "pandas"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ImportError(f"fastals.spark needs {', '.join(missing)}: "
                          "pip install 'fastals[spark]'")


def spark_context(df, name="df"):
    """The SparkContext behind a classic (non-Connect) DataFrame, or a clear error."""
    require_pyspark()
    from pyspark.sql import DataFrame

    if not isinstance(df, DataFrame):
        raise TypeError(f"{name} must be a pyspark.sql.DataFrame, got {type(df).__name__}")
    try:
        return df.sparkSession.sparkContext
    except Exception:
        raise TypeError("fastals.spark needs a classic SparkSession (it runs its kernels in "
                        "RDD tasks, which Spark Connect does not offer)") from None


def driver_memory(sc):
    """spark.driver.memory in bytes (Spark's default, 1g, when unset)."""
    value = sc.getConf().get("spark.driver.memory", "1g")
    return int(sc._jvm.org.apache.spark.network.util.JavaUtils.byteStringAsBytes(value))


def col(name):
    """A column reference that takes `name` literally (dots, spaces, backticks)."""
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def check_column(df, param, name, role):
    """The StructField of column `name` (the value of parameter `param`), checked for `role`
    ('id' or 'rating')."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"{param} must be a column name (a non-empty str), got {name!r}")
    if name not in df.columns:
        raise ValueError(f"{param}={name!r} is not a column of the DataFrame; its columns "
                         f"are {', '.join(map(repr, df.columns)) or '(none)'}")
    field = next(f for f in df.schema.fields if f.name == name)
    kind = type(field.dataType).__name__
    if role == "rating":
        from pyspark.sql.types import BooleanType, NumericType

        if not isinstance(field.dataType, (NumericType, BooleanType)):
            raise TypeError(f"{param}={name!r} must be a numeric column, got "
                            f"{field.dataType.simpleString()}")
    elif kind in _NOT_IDS:
        raise TypeError(f"{param}={name!r} must hold atomic ids (numbers, strings, dates, ...), "
                        f"got {field.dataType.simpleString()}")
    return field


def collect_arrays(df):
    """The columns of `df` on the driver as Arrow arrays (through Arrow, not Row objects)."""
    import pyarrow as pa

    rows = df.mapInArrow(collect_columns, "payload binary").collect()
    parts = [pickle.loads(row[0]) for row in rows]
    if not parts:
        return [pa.array([], type=pa.null()) for _ in df.columns]
    return [pa.concat_arrays([p[k] for p in parts]) for k in range(len(df.columns))]


def to_numpy_ids(array, field):
    """Ids collected from Spark as numpy: int64 for integral columns, else Python objects."""
    if type(field.dataType).__name__ in _INTEGRAL:
        return array.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    ids = np.empty(len(array), dtype=object)
    ids[:] = array.to_pylist()
    return ids


def sorted_ids(df, name, param, invalid=None):
    """The distinct values of column `name` in sorted order, and their row counts.

    Counted and sorted on the cluster; the driver collects the sorted ids (through Arrow),
    so that position k in them is the dense index of an id. Returns (ids, rows per id, how
    many rows the boolean column expression `invalid` flags, when given).
    """
    from pyspark.sql import functions as F

    flagged = F.sum(invalid.cast("long")) if invalid is not None else F.lit(0).cast("long")
    counts = df.groupBy(col(name).alias("id")).agg(F.count(F.lit(1)).alias("n"),
                                                  flagged.alias("bad"))
    ids, n, bad = collect_arrays(counts.orderBy("id"))  # partitions come back in order
    n = n.to_numpy(zero_copy_only=False).astype(np.int64)
    if ids.null_count:
        nulls = int(n[np.asarray(ids.is_null())].sum())
        raise ValueError(f"{param}={name!r} has {nulls} row(s) with a null id; drop or fill "
                         "them before fitting")
    field = next(f for f in df.schema.fields if f.name == name)
    ids = to_numpy_ids(ids, field)
    if ids.dtype != object and np.any(ids[1:] <= ids[:-1]):
        raise RuntimeError(f"the ids of {name!r} did not arrive sorted (a fastals bug)")
    return ids, n, int(bad.to_numpy(zero_copy_only=False).sum()) if len(bad) else 0


def is_integral(field):
    return type(field.dataType).__name__ in _INTEGRAL


def counted_integer_ids(rows, names, params):
    """The fast path of :func:`sorted_ids` for integral ids: ([user ids, item ids], [their
    row counts], rows with an unusable rating), from one pass over the (user, item,
    rating double) DataFrame `rows` (:func:`fastals.spark._blocks.count_ids`), with no
    sort or shuffle of the interactions."""
    parts = [pickle.loads(row[0]) for row in
             rows.mapInArrow(count_ids, "payload binary").collect()]
    ids, counts = [], []
    for side in (0, 1):
        side_ids, side_counts, nulls = merge_id_counts(parts, side)
        if nulls:
            raise ValueError(f"{params[side]}={names[side]!r} has {nulls} row(s) with a null "
                             "id; drop or fill them before fitting")
        ids.append(side_ids)
        counts.append(side_counts)
    return ids, counts, sum(p[6] for p in parts)


def id_frame(spark, broadcast, n_ids, field, blocks):
    """DataFrame (id, idx) numbering the broadcast ids 0..n-1, built on the executors."""
    from pyspark.sql.types import LongType, StructField, StructType

    schema = StructType([StructField("id", field.dataType, False),
                         StructField("idx", LongType(), False)])
    bounds = balanced_bounds(np.ones(n_ids), blocks)
    return block_seed(spark, len(bounds) - 1).mapInArrow(
        partial(factor_batches, broadcast=broadcast, bounds=bounds,
                schema=arrow_schema(schema)), schema)


def block_seed(spark, n_blocks):
    """A DataFrame with one row per block number, one row per partition."""
    return spark.range(0, n_blocks, 1, n_blocks).withColumn("id", col("id").cast("int"))


def arrow_schema(schema):
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(schema)
