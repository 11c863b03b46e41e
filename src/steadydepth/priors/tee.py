"""Split one in-order stream into several branches without unbounded memory.

Priors that run several consumers over the same frames (combinations, refinement) tee the
frame stream. Branches can be pulled at different paces; what one branch has not read yet
is kept in memory up to a bound and spilled to a temporary folder beyond it, so memory
stays flat however far one branch runs ahead (for example a two-pass prior that reads the
whole clip before its first output).
"""

from __future__ import annotations

import pickle
import shutil
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["SpillingTee"]


class SpillingTee:
    """Split one iterator into ``n`` in-order branches; each branch keeps at most ``in_memory``
    pending items in memory and spills the rest (pickled) to a temporary folder.

    Every branch yields every item once, in order, whatever the order in which the branches
    are pulled. ``memory_high_water`` is the most items any branch held in memory at once
    (never more than ``in_memory``); ``spilled`` counts items written to disk. Call
    :meth:`close` (or use as a context manager) to delete the folder.
    """

    def __init__(self, source: Iterable, n: int, *, in_memory: int = 8) -> None:
        if n < 1 or in_memory < 1:
            raise ValueError("SpillingTee needs n >= 1 branches and in_memory >= 1")
        self._it = iter(source)
        self._queues: list[deque] = [deque() for _ in range(n)]
        self._mem = [0] * n
        self.in_memory = int(in_memory)
        self.memory_high_water = 0
        self.spilled = 0
        self._done = False
        self._dir: Path | None = None
        self._count = 0
        self._readers: dict[Path, int] = {}  # spilled file -> branches that have not read it yet

    def _push(self, item) -> None:
        path: Path | None = None
        for k, q in enumerate(self._queues):
            if self._mem[k] < self.in_memory:
                q.append((False, item))
                self._mem[k] += 1
            else:
                if path is None:
                    if self._dir is None:
                        self._dir = Path(tempfile.mkdtemp(prefix="steadydepth-tee-"))
                    path = self._dir / f"{self._count:07d}.pkl"
                    with open(path, "wb") as fh:
                        pickle.dump(item, fh, protocol=pickle.HIGHEST_PROTOCOL)
                    self.spilled += 1
                    self._readers[path] = 0
                self._readers[path] += 1
                q.append((True, path))
        self._count += 1
        self.memory_high_water = max(self.memory_high_water, max(self._mem))

    def _branch(self, k: int) -> Iterator:
        q = self._queues[k]
        while True:
            if not q:
                if self._done:
                    return
                try:
                    item = next(self._it)
                except StopIteration:
                    self._done = True
                    return
                self._push(item)
            on_disk, entry = q.popleft()
            if on_disk:
                with open(entry, "rb") as fh:
                    item = pickle.load(fh)
                self._readers[entry] -= 1
                if self._readers[entry] == 0:  # every branch has read it
                    del self._readers[entry]
                    entry.unlink(missing_ok=True)
                yield item
            else:
                self._mem[k] -= 1
                yield entry

    def branches(self) -> list[Iterator]:
        return [self._branch(k) for k in range(len(self._queues))]

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> SpillingTee:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
