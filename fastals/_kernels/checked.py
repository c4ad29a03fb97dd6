"""The kernels that trust arrays a wrong caller could make them write out of bounds with,
behind the checks of those arrays.

Each function takes the arguments of the compiled kernel of the same name (the SGD sweep and
orders of ``_sgd``, the column counts of ``_similarity``), checks what that kernel trusts
(lengths, block offsets, the block schedule, group labels, index ranges), raises ValueError
naming the argument and the value, and calls the kernel, which only does arithmetic. These
arrays are built by the models themselves (user input is validated before, by
fastals._validation): the checks catch a caller's bug before it corrupts memory. They cost
O(blocks) numpy per sweep, and one nogil pass (a check kernel) over the group labels.

Part of the kernel room (its Python side); imports numpy and the kernel room only.
"""
from __future__ import annotations

import numpy as np

from fastals._kernels import _similarity
from fastals._kernels.dispatch import kernels
from fastals._kernels.status import Status, raise_for_status


def sgd_epoch(users, items, ratings, P, Q, user_bias, item_bias, mu, learning_rate,
              bias_learning_rate, regularization, bias_regularization, biases, num_threads,
              block_start=None, schedule=None):
    """The ``_sgd`` kernel's epoch, after checking its ratings, blocks and schedule."""
    if (block_start is None) != (schedule is None):
        raise ValueError("give both block_start and schedule, or neither")
    _check_lengths(users, items, ratings)
    if block_start is not None and len(users):
        _check_schedule(np.asarray(block_start), np.asarray(schedule), len(users))
    return kernels("_sgd").sgd_epoch(
        users, items, ratings, P, Q, user_bias, item_bias, mu, learning_rate,
        bias_learning_rate, regularization, bias_regularization, biases, num_threads,
        block_start, schedule)


def order_ratings(users, items, ratings, out_users, out_items, out_ratings, seed, num_threads,
                  user_group=None, item_group=None, strata=0):
    """The ``_sgd`` kernel's rating order, after checking that the inputs and outputs hold
    one length and that every user and item has a group in [0, strata)."""
    if (user_group is None) != (item_group is None):
        raise ValueError("give both user_group and item_group, or neither")
    _check_lengths(users, items, ratings)
    if not len(out_users) == len(out_items) == len(out_ratings) == len(users):
        raise ValueError(f"out_users, out_items and out_ratings must hold the {len(users)} "
                         f"ratings, got {len(out_users)}, {len(out_items)} and "
                         f"{len(out_ratings)}")
    sgd = kernels("_sgd")
    if user_group is not None:
        if strata < 1:
            raise ValueError(f"strata must be >= 1 with groups, got {strata}")
        # every id in range, every group in [0, strata): the scatter writes where they say
        for side, ids, group in (("user", users, user_group), ("item", items, item_group)):
            status = sgd.check_groups(ids, group, strata)
            if status != Status.OK:
                raise_for_status(status, "check_groups",
                                 message=_no_group(side, np.asarray(ids), np.asarray(group),
                                                   strata))
    return sgd.order_ratings(users, items, ratings, out_users, out_items, out_ratings, seed,
                             num_threads, user_group, item_group, strata)


def shuffle_blocks(users, items, ratings, block_start, seed, num_threads):
    """The ``_sgd`` kernel's in-block shuffle, after checking the block offsets."""
    _check_lengths(users, items, ratings)
    _check_offsets(np.asarray(block_start), len(users))
    return kernels("_sgd").shuffle_blocks(users, items, ratings, block_start, seed, num_threads)


def column_counts(indices, out):
    """The ``_similarity`` kernel's column counts; an index outside [0, len(out)) is named."""
    status = _similarity.column_counts(indices, out)
    if status != Status.OK:
        indices = np.asarray(indices)
        bad = indices[(indices < 0) | (indices >= len(out))][0]
        raise_for_status(status, "column_counts",
                         message=f"column index {bad} is outside [0, {len(out)})")


def _check_lengths(users, items, ratings):
    if not len(users) == len(items) == len(ratings):
        raise ValueError("users, items and ratings differ in length")


def _check_offsets(block_start, n):
    """Block offsets from 0 to n, never decreasing."""
    if len(block_start) < 1 or block_start[0] != 0 or block_start[-1] != n:
        raise ValueError("block_start does not cover the ratings")
    if (np.diff(block_start) < 0).any():
        raise ValueError("block_start must be non-decreasing")


def _check_schedule(block_start, schedule, n):
    """G * G blocks covering the n ratings, and a schedule listing each block once."""
    blocks = len(block_start) - 1
    G = int(max(blocks, 0) ** 0.5 + 0.5)
    if G < 1 or G * G != blocks:
        raise ValueError(f"block_start must hold G * G + 1 offsets, got {blocks + 1}")
    _check_offsets(block_start, n)
    if len(schedule) != blocks:
        raise ValueError(f"schedule must hold the {blocks} blocks, got {len(schedule)}")
    if schedule.min() < 0 or schedule.max() >= blocks \
            or (np.bincount(schedule, minlength=blocks) != 1).any():
        raise ValueError("schedule must hold every block exactly once")


def _no_group(side, ids, group, G):
    """The message for the first id without a group in [0, G) (check_groups found one)."""
    known = (ids >= 0) & (ids < len(group))
    labels = np.full(len(ids), -1, dtype=np.int64)
    labels[known] = group[ids[known]]
    t = int(np.argmax(~known | (labels < 0) | (labels >= G)))
    return f"{side} {ids[t]} has no group in [0, {G}) ({side}_group has {len(group)} entries)"


def ranking_epoch(loss, users, items, weights, indptr, indices, group_items, group_start, P, Q,
                  user_bias, item_bias, AP, AQ, Abu, Abi, user_reg, item_reg, learning_rate,
                  adagrad, negatives, verify, popularity, update_items, n_items, block_start,
                  schedule, seed, num_threads, scratch, liked_table, block_stats):
    """The ``_sgd`` kernel's ranking epoch (``_ranking.pxi``), after checking what it trusts:
    the pairs, blocks and schedule, every index in range, the item groups covering the
    items, the rows of the factors, biases, weights and accumulators, and the liked-pairs
    tables (a power of 2 at least twice the largest block, or no columns)."""
    _check_lengths(users, items, weights)
    if len(users):
        _check_schedule(np.asarray(block_start), np.asarray(schedule), len(users))
    n_users, n_rows = P.shape[0], Q.shape[0]
    _check_range("users", users, n_users)
    _check_range("items", items, n_rows)
    _check_range("group_items", group_items, n_rows)
    if len(indptr) != n_users + 1 or indptr[0] != 0 or indptr[-1] != len(indices) \
            or (np.diff(indptr) < 0).any():
        raise ValueError(f"indptr must hold {n_users + 1} non-decreasing offsets into indices")
    _check_range("indices", indices, n_rows)
    G = max(1, int(len(schedule) ** 0.5 + 0.5))
    if len(group_start) != G + 1 or group_start[0] != 0 \
            or group_start[-1] != len(group_items) or (np.diff(group_start) < 0).any():
        raise ValueError(f"group_start must hold {G + 1} offsets into group_items")
    if P.shape[1] != Q.shape[1]:
        raise ValueError(f"P and Q differ in factors: {P.shape[1]} and {Q.shape[1]}")
    for name, array, n in (("user_bias", user_bias, n_users), ("item_bias", item_bias, n_rows),
                           ("user_reg", user_reg, n_users), ("item_reg", item_reg, n_rows)):
        if len(array) != n:
            raise ValueError(f"{name} must hold {n} values, got {len(array)}")
    if adagrad and not (AP.shape == P.shape and AQ.shape == Q.shape
                        and len(Abu) == n_users and len(Abi) == n_rows):
        raise ValueError("the adagrad accumulators must have the shapes of P, Q and the biases")
    if min(AP.size, AQ.size, len(Abu), len(Abi)) < 1:
        raise ValueError("the accumulators must hold at least one value (unused without "
                         "adagrad)")
    if np.asarray(scratch).shape != (max(num_threads, 1), P.shape[1]):
        raise ValueError(f"scratch must be (num_threads, factors) = ({num_threads}, "
                         f"{P.shape[1]}), got {np.asarray(scratch).shape}")
    if np.asarray(block_stats).shape != (len(schedule), 3):
        raise ValueError(f"block_stats must be ({len(schedule)}, 3)")
    if negatives < 0:
        raise ValueError(f"negatives must be >= 0, got {negatives}")
    _check_liked_table(np.asarray(liked_table), num_threads, block_start, n_users, n_rows)
    return kernels("_sgd").ranking_epoch(
        loss, users, items, weights, indptr, indices, group_items, group_start, P, Q,
        user_bias, item_bias, AP, AQ, Abu, Abi, user_reg, item_reg, learning_rate, adagrad,
        negatives, verify, popularity, update_items, n_items, block_start, schedule, seed,
        num_threads, scratch, liked_table, block_stats)


def _check_liked_table(table, num_threads, block_start, n_users, n_rows):
    if table.ndim != 2 or table.dtype != np.uint64 or table.shape[0] < max(num_threads, 1):
        raise ValueError(f"liked_table must be a uint64 array of {max(num_threads, 1)} rows, "
                         f"got {table.dtype} {table.shape}")
    size = table.shape[1]
    if not size:
        return
    largest = int(np.diff(np.asarray(block_start)).max()) if len(block_start) > 1 else 0
    if size & (size - 1) or size < 2 * largest:
        raise ValueError(f"liked_table rows must be a power of 2 of at least twice the "
                         f"largest block ({largest} pairs), got {size}")
    if max(n_users, n_rows) >= 2**32 - 1:
        raise ValueError("liked_table needs user and item ids below 2^32 - 1")


def _check_range(name, ids, n):
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        bad = ids[(ids < 0) | (ids >= n)][0]
        raise ValueError(f"{name} holds {bad}, outside [0, {n})")
