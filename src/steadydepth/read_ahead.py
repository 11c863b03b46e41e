"""Run an iterator in a worker thread, a few items ahead of the code that consumes it.

The depth stage is a producer (the prior: matching, completion) feeding a consumer (temporal
fusion, file writes). Both spend most of their time in NumPy and OpenCV calls that release the
GIL, so on a machine with two or more cores the next frame's matching overlaps this frame's
fusion. The order of the items, and so every result, is the same as iterating in the caller's
thread: the worker runs the iterator sequentially, the caller reads a FIFO queue.

Memory stays bounded: at most ``ahead`` items wait in the queue.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from threadpoolctl import ThreadpoolController

__all__ = ["read_ahead", "useful_ahead", "one_blas_thread"]

T = TypeVar("T")

_DONE = object()
#: seconds between checks of the stop flag / of a dead worker while waiting on the queue
_POLL_S = 0.2


def useful_ahead(items: int = 2) -> int:
    """``items`` where this process may use two or more CPU cores, else 0 (a worker thread would only
    take turns with the caller)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    return items if cores >= 2 else 0


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Inside, OpenBLAS (NumPy's and SciPy's) uses one thread.

    Its idle worker threads spin while they wait, taking the core that a read-ahead worker
    needs; the depth stage's matrix products are ``(3, 3) x (3, N)`` and gain nothing from them.
    Other libraries' thread pools (OpenCV, torch) are left as they are.
    """
    with ThreadpoolController().select(internal_api="openblas").limit(limits=1):
        yield


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def read_ahead(items: Iterable[T], ahead: int = 2, name: str = "steadydepth-read-ahead") -> Iterator[T]:
    """Yield the items of ``items`` in order, computed by a daemon worker thread up to ``ahead`` items early.

    An exception raised by ``items`` is raised again here, in the caller's thread, when its turn
    comes (after the items before it). When the caller stops early (``break``, an exception of
    its own, ``close()``, Ctrl-C), the worker stops at its next item, closes ``items`` (running
    its ``finally`` blocks) and is joined before this generator returns. ``ahead <= 0`` iterates
    in the caller's thread (no worker).
    """
    if ahead <= 0:
        yield from items
        return
    q: queue.Queue = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        it = iter(items)
        try:
            for item in it:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as error:  # handed to the caller's thread, raised there
            put(_Failure(error))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # the caller already has the first error, or stopped on purpose
                    pass

    worker = threading.Thread(target=work, name=name, daemon=True)
    worker.start()
    try:
        while True:
            try:
                item = q.get(timeout=_POLL_S)
            except queue.Empty:
                if not worker.is_alive() and q.empty():
                    raise RuntimeError(f"{name}: the worker thread ended without a result") from None
                continue
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join()
