r"""fastals ALS on Apache Spark: the fastals kernels, distributed over a Spark DataFrame.

    pip install 'fastals[spark]'      # pyspark, pyarrow and pandas; Java 17 for Spark

>>> from fastals.spark import ALS                                       # doctest: +SKIP
>>> model = ALS(rank=64, maxIter=10, regParam=0.05, userCol="user",     # doctest: +SKIP
...             itemCol="item", ratingCol="plays").fit(plays_df)
>>> model.recommendForAllUsers(10)                                      # doctest: +SKIP
>>> local = model.to_local()    # fastals.ImplicitALS, user_ids, item_ids   # doctest: +SKIP

fastals' names and MLlib's are both accepted (``factors``/``rank``, ``iterations``/``maxIter``,
``regularization``/``regParam``, ``random_state``/``seed``; ``alpha``, ``implicitPrefs``,
``nonnegative``, ``userCol``, ``itemCol``, ``ratingCol`` as in MLlib); ``regParam`` keeps
MLlib's meaning (lambda times each row's interaction count, ALS-WR).

The objective, the update and the arithmetic are those of :class:`fastals.ImplicitALS`
(implicit feedback, the default) or :class:`fastals.ExplicitALS` (``implicitPrefs=False``);
their module docstrings state them. fastals must be installed on every executor (the
tasks call its compiled kernels); pyspark is imported only when a DataFrame is used, so
``import fastals`` never needs it.

Design: broadcast the fixed side, keep the solved side partitioned
--------------------------------------------------------------------
Set-up (once per fit, all on the cluster): the distinct ids of each column are counted,
sorted and numbered 0..n-1; the interactions are joined to those numbers, cut into
contiguous row blocks of about equal work (interactions plus the per-row cost of a solve)
for each side, turned into the CSR arrays the kernels read, one block per partition, and
persisted. A user-block partition holds the rows of its users; an item-block partition the
rows of its items (so the interactions are stored twice, once per side, as in MLlib).

Each half-iteration (solving the users, say):

1. the driver computes the item Gram matrix Y^T Y + lambda I (in float64, once) and
   broadcasts it with the item factors Y;
2. each task zips its user block with that block's current factors (persisted by the
   previous half-iteration: CG warm-starts from them) and solves it with the same block
   solver (:class:`fastals.models.blocksolve.ImplicitBlockSolver` -> ``_als.solve_cg`` /
   ``solve_cholesky``) the single-machine model runs, with ``spark.task.cpus`` OpenMP
   threads;
3. the new factors are persisted and collected to the driver, which needs all of X to
   broadcast it for the item half-iteration.

Lineage is truncated after every half-iteration (a local checkpoint; a reliable one every
``checkpointInterval`` iterations when the SparkContext has a checkpoint directory, its
files deleted when the next state replaces it, as MLlib does), so the
plan never grows with the number of iterations, and the broadcasts of a finished
half-iteration are destroyed. Because the driver always holds both factor matrices, a
failed half-iteration (an executor lost with cached factors) is retried once from that
copy.

Memory limit of the broadcast design
------------------------------------
With n_u users, n_i items, K factors and b bytes per value (4 for float32):

* the driver holds both factor matrices, (n_u + n_i) K b, plus transient copies of one
  side while it is assembled from the collected blocks and pickled for its broadcast (up
  to another 2 max(n_u, n_i) K b);
* every executor holds the broadcast fixed side, max(n_u, n_i) K b at the largest (plus its
  Gram matrix, K^2 x 8 bytes): once serialized in the JVM's block manager and once
  unpickled in each Python worker running a task, besides its blocks of interactions and
  factors. The kernels are OpenMP-parallel, so one task per executor
  (``spark.task.cpus`` = ``spark.executor.cores``) uses every core with a single
  Python-side copy; with one-core tasks there is a copy per core.

Example: 10M users, K = 128, float32: 5.1 GB on the driver and (at least twice) on every
executor for the user factors alone. That is the ceiling of this design: past a few GB per
matrix the broadcast (and the collect that feeds it) dominates the iteration and the
executors run out of room.

How a block-to-block exchange would lift it
-------------------------------------------
MLlib's ALS never gathers a whole factor matrix. At set-up it computes, for every pair
(item block j, user block b), which item factors of block j the users of block b rate
(the "out-blocks" / "in-blocks" link tables). Each half-iteration, every item block sends
to each user block only the factors that block needs (a shuffle keyed by destination
block), and each user block solves against the factors it received; the Gram matrix
Y^T Y is an aggregate of per-block K x K partial sums. Memory per executor is
then proportional to its blocks and the factors their rows touch, and no factor passes
through the driver. fastals can adopt it without touching the kernels:
the per-block solve (``solve_block`` of :mod:`fastals.models.blocksolve`) already takes
the CSR of the block with column indices into "the fixed factors" -- with an exchange,
those indices would be renumbered into the compact array of received factors (local
column ids) instead of the full Y, and the Gram matrix would be the sum of
``gram_matrix`` over the item blocks (``treeAggregate``). The cost is a
shuffle of at most min(nnz, n_i x user blocks) K b bytes per half-iteration (a factor
needed by many users of one block is sent to it once), against a collect to the driver
and a broadcast here; while the factors fit, the broadcast design is the simpler and
faster one.

Explicit ratings
----------------
The distributed loop (:mod:`fastals.spark._train`) is model-agnostic: it asks a solver
object for the initial state, what to broadcast of the fixed side, and how to solve a
block. :class:`fastals.spark._blocks.ImplicitSolver` is implicit ALS (state: the factor;
broadcast: Y and its Gram matrix); :class:`fastals.spark._blocks.ExplicitSolver`, chosen by
``implicitPrefs=False``, is :class:`fastals.ExplicitALS` (state: factor and bias; broadcast:
Y and the item biases, with the mean rating mu fixed from the blocks at set-up; block solve:
the explicit model's per-row kernel, non-negative with ``nonnegative=True``). The memory
limit above is the same for both (plus n x b bytes of biases).
"""
# The package imports only its own modules; they import fastals' models through their
# public names and fastals.models.blocksolve, and pyspark only inside functions.
from fastals.spark._estimator import ALS
from fastals.spark._model import ALSModel, FitSummary, LocalModel

__all__ = ["ALS", "ALSModel", "FitSummary", "LocalModel"]
