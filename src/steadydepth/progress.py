"""Progress reporting: a tqdm bar on a terminal, plain log lines otherwise.

Library code never prints: without a terminal (or with ``enabled=False``) progress goes
to the ``steadydepth.progress`` logger every few seconds as
``"depth: 120/300 frames, 4.1 frames/s, 44 s left"``. While a bar is on screen, the console
handlers of the root logger write through ``tqdm.write`` (a log line never lands in the
middle of a bar). A stage that ends by an exception logs ``"stopped"`` (``"interrupted"``
for Ctrl-C), never ``"done"``. :class:`LoggedWarnings` records the warnings already shown,
so a summary can repeat only the others.
"""

from __future__ import annotations

import logging
import sys
import time

__all__ = ["Progress", "LoggedWarnings", "format_rate", "peak_memory_mb"]

log = logging.getLogger(__name__)

_open_bars = 0  # bars on screen; the first one routes console logging through tqdm.write
_redirect = None


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
            _bar_opened()

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

    def close(self, error: BaseException | None = None) -> None:
        """Remove the bar and log how the stage ended: ``done``, or ``stopped`` / ``interrupted``
        when ``error`` (default: the exception propagating right now, if any) ended it."""
        if error is None:
            error = sys.exc_info()[1]
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            _bar_closed()
        if error is None:
            log.info("%s: done, %s", self.stage, format_rate(self.done, self.done, self.elapsed))
        else:
            how = "interrupted" if isinstance(error, KeyboardInterrupt) else "stopped"
            log.info("%s: %s after %d/%s frames", self.stage, how, self.done, self.total or "?")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(exc)


def _bar_opened() -> None:
    global _open_bars, _redirect
    if _open_bars == 0:
        from tqdm.contrib.logging import logging_redirect_tqdm

        _redirect = logging_redirect_tqdm()
        _redirect.__enter__()
    _open_bars += 1


def _bar_closed() -> None:
    global _open_bars, _redirect
    _open_bars -= 1
    if _open_bars == 0 and _redirect is not None:
        _redirect.__exit__(None, None, None)
        _redirect = None


class LoggedWarnings(logging.Handler):
    """While active (a context manager), records the text of every WARNING or worse that the
    ``steadydepth`` loggers emit, in ``messages``."""

    def __init__(self, logger: str = "steadydepth") -> None:
        super().__init__(level=logging.WARNING)
        self.logger = logging.getLogger(logger)
        self.messages: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.add(record.getMessage())
        # this handler must not hide the record where nothing else would show it (Python's
        # last-resort stderr handler only runs when no handler at all is configured)
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None:
            if any(h is not self for h in logger.handlers):
                return
            logger = logger.parent if logger.propagate else None
        if logging.lastResort is not None and record.levelno >= logging.lastResort.level:
            logging.lastResort.handle(record)

    def __enter__(self) -> LoggedWarnings:
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        self.logger.removeHandler(self)


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
