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

Set-up (once per fit, all on the cluster)
-----------------------------------------
Integral ids (the usual case) take a fast path: one pass over the interactions counts the
rows of each distinct id per partition (``np.unique``), the driver merges the counts and
sorts the ids, and each blocking task maps its rows to dense indices itself
(``searchsorted`` on the broadcast sorted ids): no sort, shuffle or join of the
interactions. Ids that are already 0..n-1 are used as they are (nothing to map). Other ids
(strings, dates, ...) are counted, sorted and numbered by Spark and joined to their
numbers. Then the interactions are cut into contiguous row blocks of about equal work
(interactions plus the per-row cost of a solve) for each side, turned into the CSR arrays
the kernels read, one block per partition, and persisted. A user-block partition holds the
rows of its users; an item-block partition the rows of its items (so the interactions are
stored twice, once per side, as in MLlib).

Two ways to exchange the factors (``exchange``)
------------------------------------------------
Each half-iteration (solving the users, say) every user block needs the item factors its
interactions read, and the Gram matrix Y^T Y of all of them.

*Broadcast* (``exchange="broadcast"``): the driver holds both factor matrices, computes
Y^T Y + lambda I (float64, once) and broadcasts it with the whole Y; each task zips its
block with its persisted factors (the CG warm start), solves it with the single-machine
block solver (:class:`fastals.models.blocksolve.ImplicitBlockSolver` -> ``_als.solve_cg`` /
``solve_cholesky``, ``spark.task.cpus`` OpenMP threads), and the new factors are persisted
and collected, since the driver needs all of X to broadcast it next.

*Block-to-block shuffle* (``exchange="shuffle"``, MLlib's in-block / out-block design): at
set-up each block's CSR columns are renumbered into the sorted list of the other side's
rows it reads (``columns``), and for every (source block j, destination block b) pair the
rows of j that b reads are recorded at j (the routes). Each half-iteration every item
block sends each user block exactly those rows, in one shuffle keyed by the destination
block; the shuffled rows, the block and its state are a partition-wise union, so the rows
arrive straight in the solving task, which concatenates them in column order and calls the
same kernels on the renumbered CSR (the kernels do not change). The Gram matrix is a
``treeAggregate`` of the per-block K x K sums, computed in the same job that materializes
the new state, and only that K x K matrix is broadcast. No factor matrix is collected or
broadcast; the driver collects the final factors once, one block at a time. Initial
factors are drawn on the driver (the single-machine model's draws, so the factors equal
:class:`fastals.ImplicitALS`'s) while both matrices together are at most 256 MiB, else
per block on the executors from the seed.

``exchange="auto"`` (the default) broadcasts while the larger factor matrix is at most
min(256 MiB, spark.driver.memory / 8), where the broadcast is the faster (one collect and
one broadcast against a shuffle of about as many bytes with its scheduling), and shuffles
beyond; the log says which and why, and ``model.summary.exchange`` records it.

Lineage is truncated after every half-iteration on both paths (a local checkpoint; a
reliable one every ``checkpointInterval`` iterations when the SparkContext has a checkpoint
directory, its files deleted when the next state replaces it, as MLlib does), so the plan
never grows with the number of iterations. A half-iteration whose job fails (a task that
raised, an executor lost) is retried once: on the broadcast path from the driver's copy of
the factors, on the shuffle path from the persisted states of the previous
half-iteration (a lost local checkpoint cannot be recomputed: set a checkpoint directory
to survive losing executors).

Memory
------
With n_u users, n_i items, K factors, b bytes per value (4 for float32), nnz interactions:

*Broadcast.* The driver holds both factor matrices, (n_u + n_i) K b, plus transient copies
of one side while it is assembled and pickled for its broadcast (up to another
2 max(n_u, n_i) K b). Every executor holds the broadcast fixed side, up to
max(n_u, n_i) K b (plus its K^2 x 8-byte Gram matrix), once serialized in the JVM's block
manager and once unpickled in each Python worker running a task. Example: 10M users,
K = 128, float32: 5.1 GB on the driver and (at least twice) on every executor.

*Shuffle.* A block b of side S with n_b rows and nnz_b interactions, solved against side F,
holds during its solve its CSR, its state n_b K b, and the rows of F it reads:

    c_b K b bytes,   c_b = |columns_b| <= min(nnz_b, n_F)

(``model.summary.received_rows`` lists every c_b; a test checks them against the matrix).
So what an executor holds is bounded by its blocks' needs, not by the size of the other
side; the driver holds K x K matrices during the fit, and the final factors only at the
end (collected one block at a time, never a whole matrix in the JVM). The shuffle moves
sum_b c_b K b <= min(nnz, n_F x blocks of S) K b bytes per half-iteration (a row needed by
many rows of one block is sent to it once), and the routes hold sum_b c_b indices.

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
