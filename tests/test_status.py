"""Kernel failure: one status type, and every kernel family's failure reaches the user as its
named exception (never as empty or partial results)."""
from contextlib import contextmanager

import numpy as np
import pytest

import fastals
from fastals._kernels import _similarity, _status, checked
from fastals._kernels.dispatch import kernels
from fastals._kernels.status import Status, raise_for_status
from fastals.evaluation import metrics_from_recommendations
from fastals.exceptions import ModelFitError
from conftest import random_interactions


@contextmanager
def out_of_memory():
    """Every scratch allocation of every kernel fails while inside (the test hook)."""
    _status.simulate_out_of_memory(True)
    try:
        yield
    finally:
        _status.simulate_out_of_memory(False)


def test_the_codes_are_exported_once():
    assert [(s.name, int(s)) for s in Status] == [
        ("OK", 0), ("NOT_POSITIVE_DEFINITE", 1), ("OUT_OF_MEMORY", 2), ("OVERFLOW", 3),
        ("INDEX_OUT_OF_RANGE", 4)]
    assert Status is _status.Status


# --- raise_for_status ------------------------------------------------------------------------
def test_ok_statuses_return_quietly():
    raise_for_status(Status.OK, "the top-N kernel")
    raise_for_status(0, "the top-N kernel")
    raise_for_status(np.zeros(5, np.int8), "the ALS kernel", "user")


def test_a_status_of_a_whole_call():
    with pytest.raises(MemoryError, match=r"^the top-N kernel could not allocate scratch memory$"):
        raise_for_status(Status.OUT_OF_MEMORY, "the top-N kernel")
    with pytest.raises(ValueError, match=r"^the column kernel met an index out of range: 7$"):
        raise_for_status(Status.INDEX_OUT_OF_RANGE, "the column kernel", hint=": 7")
    with pytest.raises(ValueError, match=r"^column 7 is outside \[0, 5\)$"):
        raise_for_status(4, "the column kernel", message="column 7 is outside [0, 5)")


def test_per_row_statuses_name_the_first_failing_row_and_count_them():
    status = np.array([0, 1, 0, 1, 1], np.int8)
    with pytest.raises(ModelFitError, match=r"^the normal equations of 3 item\(s\) are not "
                                            r"positive definite \(first: item 11\); raise$") as info:
        raise_for_status(status, "the ALS kernel", "item", 10, "; raise")
    assert info.value.row == 11
    status[4] = Status.OVERFLOW  # overflow is reported before the failed factorisations
    with pytest.raises(ModelFitError, match=r"^the normal equations of 1 row\(s\) overflow "
                                            r"float32 \(first: row 4\)!$") as info:
        raise_for_status(status, "the ALS kernel", hint={Status.OVERFLOW: "!"},
                         dtype=np.float32)
    assert info.value.row == 4
    status[2] = Status.OUT_OF_MEMORY  # and running out of memory before both
    with pytest.raises(MemoryError, match=r"^the ALS kernel could not allocate scratch memory "
                                          r"\(user 2\)$"):
        raise_for_status(status, "the ALS kernel", "user")


def test_an_unknown_status_is_a_bug_not_a_success():
    with pytest.raises(RuntimeError, match="unknown status 9"):
        raise_for_status(np.array([0, 9], np.int8), "the ALS kernel")


# --- every kernel family, through the public API ---------------------------------------------
@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_implicit_als_out_of_memory_is_a_memory_error(solver):
    R = random_interactions(30, 20, 0.2, 0)
    model = fastals.ImplicitALS(factors=4, iterations=1, solver=solver, random_state=0)
    # the first kernel of a half-iteration to allocate is the Gram matrix's
    with out_of_memory(), pytest.raises(MemoryError, match="the (ALS|Gram-matrix) kernel "
                                                           "could not allocate"):
        model.fit(R, show_progress=False)
    model.fit(R, show_progress=False)  # and nothing is left behind
    with out_of_memory(), pytest.raises(MemoryError, match="the (ALS|Gram-matrix) kernel "
                                                           "could not allocate"):
        model.recalculate_user(0, R[0])


def test_implicit_als_loss_out_of_memory_is_a_status_not_nan():
    """row_losses wrote NaN for the rows it had no scratch for; it reports OUT_OF_MEMORY
    (ImplicitALS raises it as MemoryError instead of logging a NaN loss)."""
    R = random_interactions(30, 20, 0.2, 5)
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((30, 4)), rng.standard_normal((20, 4))
    out = np.zeros(30)
    args = (R.indptr, R.indices, R.data, X, Y, Y.T @ Y, 2.0, 2, out)
    with out_of_memory():
        assert kernels("_als").row_losses(*args) == Status.OUT_OF_MEMORY
    assert kernels("_als").row_losses(*args) == Status.OK and np.isfinite(out).all()


def test_explicit_als_out_of_memory_is_a_memory_error():
    R = random_interactions(30, 20, 0.3, 1)
    model = fastals.ExplicitALS(factors=4, iterations=1, random_state=0)
    with out_of_memory(), pytest.raises(MemoryError, match="the ALS kernel could not allocate"):
        model.fit(R, show_progress=False)


def test_top_n_by_factors_out_of_memory_is_a_memory_error_not_empty_rows():
    R = random_interactions(30, 20, 0.2, 2)
    model = fastals.ImplicitALS(factors=4, iterations=2, random_state=0).fit(R, show_progress=False)
    with out_of_memory():
        with pytest.raises(MemoryError, match="the top-N kernel could not allocate"):
            model.recommend(np.arange(30), R, N=5)
        with pytest.raises(MemoryError, match="the top-N kernel could not allocate"):
            model.similar_items(np.arange(20), N=5)
    assert (model.recommend(np.arange(30), R, N=5)[0] >= 0).all()


def test_top_n_by_scores_out_of_memory_is_a_memory_error_not_empty_rows():
    """select_topn (models that score densely, e.g. ItemKNN) skipped a row whose scratch it
    could not allocate, and the user silently got an empty recommendation list."""
    R = random_interactions(30, 20, 0.3, 4)
    model = fastals.ItemKNN(K=5).fit(R, show_progress=False)
    expected = model.recommend(np.arange(30), R, N=5)
    with out_of_memory():
        with pytest.raises(MemoryError, match="the top-N kernel could not allocate"):
            model.recommend(np.arange(30), R, N=5)
        with pytest.raises(MemoryError, match="the top-N kernel could not allocate"):
            model.recommend(3, R[3], N=5)
        with pytest.raises(MemoryError, match="the top-N kernel could not allocate"):
            model.similar_items(np.arange(20), N=5)
    got = model.recommend(np.arange(30), R, N=5)
    np.testing.assert_array_equal(got[0], expected[0])


def test_metrics_out_of_memory_is_a_memory_error():
    R = random_interactions(40, 30, 0.2, 3)
    lists = np.tile(np.arange(5), (40, 1))
    with out_of_memory(), pytest.raises(MemoryError, match="the metrics kernel could not allocate"):
        metrics_from_recommendations(lists, R)
    assert metrics_from_recommendations(lists, R)["users"] > 0


def test_sgd_group_labels_out_of_range_are_a_status_then_a_value_error():
    """The SGD kernels do not validate: a check kernel reports the status, the checked entry
    point names the id."""
    users, items = np.array([0, 1, 2], np.int32), np.array([0, 4, 1], np.int32)
    ratings = np.ones(3)
    sgd = kernels("_sgd")
    assert sgd.check_groups(users, np.zeros(3, np.int32), 2) == Status.OK
    assert sgd.check_groups(items, np.zeros(3, np.int32), 2) == Status.INDEX_OUT_OF_RANGE
    assert sgd.check_groups(users, np.array([0, 2, 1], np.int32), 2) == Status.INDEX_OUT_OF_RANGE
    out = tuple(np.empty_like(a) for a in (users, items, ratings))
    with pytest.raises(ValueError, match=r"^item 4 has no group in \[0, 2\) \(item_group has 3 "
                                         r"entries\)$"):
        checked.order_ratings(users, items, ratings, *out, 1, 1, np.zeros(3, np.int32),
                              np.zeros(3, np.int32), 2)


def test_column_counts_out_of_range_is_a_status_then_a_value_error():
    counts = np.zeros(5, np.int64)
    assert _similarity.column_counts(np.array([1, 9, 2], np.int32), counts) \
        == Status.INDEX_OUT_OF_RANGE
    with pytest.raises(ValueError, match=r"^column index -1 is outside \[0, 5\)$"):
        checked.column_counts(np.array([1, -1], np.int64), np.zeros(5, np.int64))
