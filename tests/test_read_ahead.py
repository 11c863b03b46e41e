"""read_ahead: same items in the same order, errors raised in the caller, the worker stopped and its
iterator closed when the caller stops early; one_blas_thread limits OpenBLAS and restores it."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController

from steadydepth.read_ahead import one_blas_thread, read_ahead


def _numbers(n: int, log: list[str], fail_at: int | None = None):
    try:
        for i in range(n):
            if i == fail_at:
                raise ValueError(f"item {i} is bad")
            log.append(threading.current_thread().name)
            yield i
    finally:
        log.append("closed")


@pytest.mark.parametrize("ahead", [0, 1, 3])
def test_items_come_in_order_from_a_worker_thread(ahead: int) -> None:
    log: list[str] = []
    assert list(read_ahead(_numbers(20, log), ahead=ahead, name="worker-x")) == list(range(20))
    assert log[-1] == "closed"
    expected = "worker-x" if ahead > 0 else threading.current_thread().name
    assert set(log[:-1]) == {expected}


def test_the_worker_runs_at_most_ahead_items_early() -> None:
    log: list[str] = []
    it = read_ahead(_numbers(100, log), ahead=2)
    assert next(it) == 0
    time.sleep(0.3)  # let the worker run as far as the queue allows
    # item 0 taken, items 1 and 2 queued, item 3 computed and waiting for room
    assert len(log) <= 4
    it.close()


def test_an_error_of_the_items_is_raised_in_the_caller_after_the_items_before_it() -> None:
    log: list[str] = []
    got = []
    with pytest.raises(ValueError, match="item 5 is bad"):
        for i in read_ahead(_numbers(10, log, fail_at=5), ahead=2):
            got.append(i)
    assert got == [0, 1, 2, 3, 4]
    assert log[-1] == "closed"


def test_stopping_early_stops_the_worker_and_closes_the_items() -> None:
    log: list[str] = []
    before = threading.active_count()
    for i in read_ahead(_numbers(10_000, log), ahead=2, name="worker-y"):
        if i == 3:
            break
    # the generator is closed when the loop's reference goes: the worker is joined by then
    assert log[-1] == "closed" and len(log) < 20
    assert threading.active_count() == before
    assert not any(t.name == "worker-y" for t in threading.enumerate())


def test_an_error_of_the_caller_stops_the_worker() -> None:
    log: list[str] = []
    with pytest.raises(KeyError):
        for i in read_ahead(_numbers(10_000, log), ahead=2):
            if i == 2:
                raise KeyError("caller")
    assert log[-1] == "closed"


def test_one_blas_thread_limits_openblas_inside_and_restores_it() -> None:
    np.ones((4, 4)) @ np.ones((4, 4))  # OpenBLAS loaded
    blas = ThreadpoolController().select(internal_api="openblas")
    if not blas.lib_controllers:
        pytest.skip("NumPy is not linked against OpenBLAS here")
    before = [c.num_threads for c in blas.lib_controllers]
    with one_blas_thread():
        assert all(c.num_threads == 1 for c in ThreadpoolController().select(internal_api="openblas").lib_controllers)
    assert [c.num_threads for c in ThreadpoolController().select(internal_api="openblas").lib_controllers] == before
