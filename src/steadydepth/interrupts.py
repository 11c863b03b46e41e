"""SIGTERM handled like Ctrl-C, and which process a run folder belongs to.

``timeout``, schedulers and ``docker stop`` end a process with SIGTERM. Inside
:func:`sigterm_as_interrupt` that signal raises :class:`Terminated` (a
``KeyboardInterrupt``) in the main thread, so a run stops the way Ctrl-C stops it: the
run is marked ``interrupted``, finished frames stay, the command line prints one line.
pycolmap installs glog's failure handler when it is imported, which answers SIGTERM with
a native stack trace and no clean-up: code that imports pycolmap calls :func:`reclaim_sigterm`
right after (importing it up front would cost every run its ~50 MB).

A run records :func:`process_info` in ``run.json``; :func:`process_alive` tells a later
run whether a folder marked ``running`` still has its process.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Terminated", "sigterm_as_interrupt", "reclaim_sigterm", "process_info", "process_alive"]

log = logging.getLogger(__name__)

_active = False


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM; handled everywhere as an interruption (Ctrl-C)."""


def _raise_terminated(signum: int, frame) -> None:
    # one-shot: a second SIGTERM while the run records its state is ignored, so that state is written
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated(f"received {signal.Signals(signum).name}")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While active, SIGTERM raises :class:`Terminated` in the main thread (see module docstring).

    Does nothing outside the main thread (Python delivers signals there only) or when already
    active; the previous handler is restored on exit.
    """
    global _active
    if _active or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    _active = True
    try:
        yield
    finally:
        _active = False
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def reclaim_sigterm() -> None:
    """Put the handler of an active :func:`sigterm_as_interrupt` back in place (after an import,
    pycolmap's, that replaced it at the C level; Python's own record of the handler is unchanged)."""
    if _active and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


def process_info() -> dict:
    """``{"pid": ..., "host": ...}`` of this process, as recorded in ``run.json``."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


def process_alive(info: object) -> bool | None:
    """Whether the process ``info`` (from :func:`process_info`) still exists: True, False, or
    None when that cannot be told (no record, or another host)."""
    if not isinstance(info, dict) or not isinstance(info.get("pid"), int):
        return None
    if info.get("host") != socket.gethostname():
        return None
    pid = info["pid"]
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:  # pragma: no cover - unusual platforms
        return None
    return True
