"""Images a prior has read but not yet answered for, and the stream that records them.

Used by :func:`steadydepth.pipeline.estimate`: the prior reads frames ahead of its outputs;
each image waits here until its output arrives (to be written with it). Memory stays bounded:
past ``in_memory`` images the stash spills to ``.npy`` files.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .types import Frame

__all__ = ["ImageStash", "Recorder"]


class ImageStash:
    """Images the prior has read ahead of its outputs, kept until their output arrives.

    Priors that read the whole clip before answering (two-pass combinations) would make
    this grow with the clip, so past ``in_memory`` images it spills to ``folder``. Safe to fill
    from one thread (the prior's, see :mod:`steadydepth.read_ahead`) and empty from another.
    """

    def __init__(self, folder: Path, in_memory: int = 32) -> None:
        self.folder, self.in_memory = folder, in_memory
        self.memory: dict[int, np.ndarray] = {}
        self.spilled: set[int] = set()
        self._lock = threading.Lock()

    def put(self, position: int, image: np.ndarray) -> None:
        with self._lock:
            if len(self.memory) < self.in_memory:
                self.memory[position] = image
                return
        self.folder.mkdir(parents=True, exist_ok=True)
        np.save(self.folder / f"{position:06d}.npy", image)
        with self._lock:
            self.spilled.add(position)

    def pop(self, position: int) -> np.ndarray | None:
        with self._lock:
            if position in self.memory:
                return self.memory.pop(position)
            if position not in self.spilled:
                return None
            self.spilled.discard(position)
        path = self.folder / f"{position:06d}.npy"
        image = np.load(path)
        path.unlink()
        return image


class Recorder:
    """Passes frames to the prior, recording their source indices and stashing each image
    until the prior has answered for it."""

    def __init__(self, frames: Iterator[Frame], record: list[int], images: ImageStash) -> None:
        self.frames, self.record, self.images = frames, record, images

    def __iter__(self) -> Iterator[Frame]:
        for frame in self.frames:
            self.images.put(len(self.record), frame.image)
            self.record.append(frame.index)
            yield frame
