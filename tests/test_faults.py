"""Faults: interrupts during fit, concurrent queries on one model."""
import _thread
import signal
import threading
import time

import numpy as np
import pytest

import fastals
from fastals.datasets import synthetic_interactions
from conftest import assert_interrupt_keeps_the_last_completed_step, random_interactions


def test_concurrent_queries_equal_serial_ones():
    R = random_interactions(400, 300, 0.05, 3)
    model = fastals.ImplicitALS(factors=16, iterations=5, random_state=0).fit(R, show_progress=False)
    users = np.arange(400)
    expected_rec = model.recommend(users, R, N=10)
    expected_sim = model.similar_items(np.arange(300), N=10)
    failures = []

    def worker(seed):
        rng = np.random.default_rng(seed)
        for _ in range(20):
            picked = rng.choice(400, 25, replace=False)
            ids, scores = model.recommend(picked, R[picked], N=10)
            if not (np.array_equal(ids, expected_rec[0][picked])
                    and np.array_equal(scores, expected_rec[1][picked])):
                failures.append(("recommend", seed))
            items = rng.choice(300, 25, replace=False)
            ids, _ = model.similar_items(items, N=10)
            if not np.array_equal(ids, expected_sim[0][items]):
                failures.append(("similar_items", seed))

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_interrupt_from_callback_keeps_the_last_completed_iteration():
    assert_interrupt_keeps_the_last_completed_step(
        lambda iterations: fastals.ImplicitALS(factors=8, iterations=iterations, random_state=0),
        random_interactions(200, 150, 0.05, 8), ("user_factors", "item_factors"))


def test_ctrl_c_during_fit_returns_control_quickly():
    """A SIGINT in the middle of a long fit surfaces as KeyboardInterrupt between row
    blocks, long before the fit would end, and leaves finite factors behind."""
    R = synthetic_interactions(20_000, 10_000, 400_000, random_state=1)
    model = fastals.ImplicitALS(factors=32, iterations=100_000, random_state=0)

    def give_up(iteration, elapsed, loss):  # fail instead of running for hours
        if elapsed > 60:
            raise RuntimeError("the interrupt was not delivered")

    # a process started in the background inherits an ignored SIGINT, and then
    # interrupt_main() does nothing: install Python's own handler for the test
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(1.0, _thread.interrupt_main)
    start = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            model.fit(R, show_progress=False, callback=give_up)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    waited = time.perf_counter() - start - 1.0
    # 100,000 iterations take hours; the interrupt must not wait for them (a generous bound
    # for a loaded 2-core machine: a block of rows takes a fraction of a second)
    assert waited < 15
    assert np.isfinite(model.user_factors).all() and np.isfinite(model.item_factors).all()
