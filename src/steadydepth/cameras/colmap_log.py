"""COLMAP's own log lines kept out of the user's terminal.

pycolmap logs through glog, from C++, straight to file descriptor 2. Its level controls
(``pycolmap.logging.minloglevel``) are not enough: ``pycolmap.bundle_adjustment`` resets
them to INFO (pycolmap 4.2), so ``=== Global bundle adjustment ===`` lines would reach the
terminal on every run, even with ``--quiet`` or through the Python API.

:func:`quiet_colmap` therefore does both: it raises glog's threshold to FATAL (unless the
``steadydepth.colmap`` logger is at DEBUG) and, while the outermost one is active, sends fd 2
into a temporary file that a small thread reads back every few tens of milliseconds: glog lines
(``I20261201 20:53:06.954411 1406... file.cc:46] text``) go to the ``steadydepth.colmap``
logger (DEBUG; FATAL as ERROR), everything else (our own log lines, tqdm bars) is passed on to
the real stderr unchanged. A file, not a pipe, so C++ code writing while it holds the GIL can
never block on a full pipe.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator

__all__ = ["quiet_colmap"]

log = logging.getLogger("steadydepth.colmap")

#: a glog line: optional colour escape, severity letter, date, time, thread id, source location
_GLOG = re.compile(rb"^(?:\x1b\[[0-9;]*m)?([IWEF])\d{8} \d\d:\d\d:\d\d\.\d+ +\d+ [^\]]*\] ?(.*?)(?:\x1b\[m)?\r?\n?$")
#: the start of a line that may still become a glog line once the rest is written
_GLOG_START = re.compile(rb"^(?:\x1b(?:\[[0-9;]*m?)?)?(?:[IWEF][0-9 :.]*)?$")

_depth = 0
_depth_lock = threading.Lock()


class _Fd2Filter:
    """fd 2 -> a temporary file, read back by a thread: glog lines to the logger, the rest passed on."""

    def __init__(self, poll_s: float = 0.03) -> None:
        self.poll_s = poll_s
        self.buffer = b""
        self.stop_event = threading.Event()

    def start(self) -> bool:
        try:
            sys.stderr.flush()
        except (AttributeError, ValueError, OSError):
            pass
        try:
            self.saved = os.dup(2)
        except OSError:  # no fd 2 (a detached process): nothing reaches a terminal anyway
            return False
        fd_w, path = tempfile.mkstemp(prefix="steadydepth-colmap-", suffix=".log")
        self.reader = os.open(path, os.O_RDONLY)
        try:
            os.unlink(path)
            self.path = None
        except OSError:  # pragma: no cover - Windows keeps open files
            self.path = path
        os.dup2(fd_w, 2)
        os.close(fd_w)
        self.thread = threading.Thread(target=self._pump, name="steadydepth-colmap-log", daemon=True)
        self.thread.start()
        return True

    def stop(self) -> None:
        try:
            sys.stderr.flush()
        except (AttributeError, ValueError, OSError):
            pass
        os.dup2(self.saved, 2)
        self.stop_event.set()
        self.thread.join()
        self._drain(final=True)
        os.close(self.saved)
        os.close(self.reader)
        if self.path is not None:  # pragma: no cover
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def _pump(self) -> None:
        while not self.stop_event.wait(self.poll_s):
            self._drain(final=False)

    def _drain(self, final: bool) -> None:
        while True:
            chunk = os.read(self.reader, 1 << 16)
            if not chunk:
                break
            self.buffer += chunk
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            self._line(line + b"\n")
        if self.buffer and (final or not _GLOG_START.match(self.buffer)):
            self._line(self.buffer)  # a partial line that cannot be glog (a tqdm bar's "\r...")
            self.buffer = b""

    def _line(self, data: bytes) -> None:
        m = _GLOG.match(data)
        if m is None:
            os.write(self.saved, data)
            return
        level = logging.ERROR if m.group(1) == b"F" else logging.DEBUG
        log.log(level, "colmap: %s", m.group(2).decode("utf-8", "replace"))


@contextlib.contextmanager
def quiet_colmap() -> Iterator[None]:
    """Keep COLMAP's glog output off the terminal for the duration (re-entrant; see the module
    docstring). At DEBUG on ``steadydepth.colmap`` its lines are logged there instead."""
    global _depth
    import pycolmap

    with _depth_lock:
        _depth += 1
        outer = _depth == 1
    old = pycolmap.logging.minloglevel
    if not log.isEnabledFor(logging.DEBUG):
        pycolmap.logging.minloglevel = 3
    fd_filter = _Fd2Filter() if outer else None
    started = fd_filter.start() if fd_filter is not None else False
    try:
        yield
    finally:
        if started:
            fd_filter.stop()
        pycolmap.logging.minloglevel = old
        with _depth_lock:
            _depth -= 1
