"""Progress reporting: a tqdm bar on a terminal, plain log lines otherwise.

Library code never prints: without a terminal (or with ``enabled=False``) progress goes
to the ``steadydepth.progress`` logger every few seconds as
``"depth: 120/300 frames, 4.1 frames/s, 44 s left"``.
"""

from __future__ import annotations

import logging
import sys
import time

__all__ = ["Progress", "format_rate", "peak_memory_mb"]

log = logging.getLogger(__name__)


def format_rate(done: int, total: int | None, elapsed: float) -> str:
    """``"120/300 frames, 4.1 frames/s, 44 s left"`` (total may be unknown)."""
    rate = done / elapsed if elapsed > 0 else 0.0
    text = f"{done}/{total if total else '?'} frames, {rate:.2f} frames/s"
    if total and rate > 0 and done < total:
        text += f", {(total - done) / rate:.0f} s left"
    return text


class Progress:
    """Counts finished items of one stage.

    ``bar=True`` draws a tqdm bar on stderr when it is a terminal; otherwise a log line is
    written at most every ``interval`` seconds and once at the end.
    """

    def __init__(self, stage: str, total: int | None, *, bar: bool = True, interval: float = 5.0) -> None:
        self.stage = stage
        self.total = total
        self.done = 0
        self.start = time.perf_counter()
        self._last = self.start
        self._interval = interval
        self._bar = None
        if bar and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=stage, unit="frame", dynamic_ncols=True, leave=False)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.perf_counter()
        if now - self._last >= self._interval:
            self._last = now
            log.info("%s: %s", self.stage, format_rate(self.done, self.total, now - self.start))

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        log.info("%s: done, %s", self.stage, format_rate(self.done, self.done, self.elapsed))

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def peak_memory_mb() -> float | None:
    """This process's peak resident memory in MiB (Linux ``VmHWM``; None where unavailable).

    ``VmHWM`` belongs to the process's own address space; ``ru_maxrss`` would also count the
    parent's memory at the time of ``fork``.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None
