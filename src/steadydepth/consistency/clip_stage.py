"""The clip-level consistency stage: one alignment for the whole clip.

A per-frame prior gives each frame its own scale (and, for disparity, shift). The stage
observes every frame in stream order with :class:`~steadydepth.consistency.align.ClipAligner`
(optionally with the camera pose and a confident geometric *anchor*), keeps the frame's maps
on disk (memory stays flat in clip length), solves once for the clip, and then gives the
aligned frames back in order. The pipeline uses it for relative priors; the combined prior
(``a+b``) uses it before fusing the aligned shape with the geometry.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np

from ..types import Intrinsics
from .align import ClipAligner

__all__ = ["ClipAlignmentStage"]


class ClipAlignmentStage:
    """Observe, spill, solve once, read back aligned: see the module docstring.

    ``folder`` receives one ``NNNNNN_values.npy`` per frame (plus one file per entry of
    ``extras`` given to :meth:`add`); the caller owns (and removes) it. ``kind`` is the kind
    of the values (``"disparity"``, or ``"depth"`` for a depth-valued shape).
    """

    def __init__(self, folder: str | Path, kind: Literal["disparity", "depth"] = "disparity", *,
                 intrinsics: Intrinsics | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.aligner = ClipAligner(kind=kind, intrinsics=intrinsics)
        self.count = 0
        self._extras: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return self.aligner.kind

    @property
    def stats(self) -> dict:
        return self.aligner.stats

    def _path(self, position: int, name: str) -> Path:
        return self.folder / f"{position:06d}_{name}.npy"

    def add(self, image: np.ndarray, values: np.ndarray, *, pose: np.ndarray | None = None,
            anchor: np.ndarray | None = None, anchor_confidence: np.ndarray | None = None,
            extras: dict[str, np.ndarray] | None = None) -> None:
        """Observe the next frame (uint8 RGB ``image``, ``values`` ``(h, w)``, 0 = invalid) and
        store ``values`` and ``extras`` (maps the caller wants back with the aligned frame)."""
        position = self.count
        self.aligner.observe(position, image, values, pose=pose, anchor=anchor, anchor_confidence=anchor_confidence)
        np.save(self._path(position, "values"), values)
        extras = extras or {}
        self._extras = tuple(extras)
        for name, arr in extras.items():
            np.save(self._path(position, name), arr)
        self.count += 1

    def solve(self) -> np.ndarray:
        """Solve the clip's alignment: per-frame ``(scale, shift)`` ``(T, 2)`` (see :meth:`ClipAligner.solve`)."""
        return self.aligner.solve()

    def aligned(self, *, as_depth: bool = False) -> Iterator[tuple[int, np.ndarray, dict[str, np.ndarray]]]:
        """``(position, aligned values, extras)`` for every frame, in order, after :meth:`solve`.

        The values are in the kind's units (:meth:`ClipAligner.apply`), or z-depth with
        ``as_depth`` (:meth:`ClipAligner.apply_depth`).
        """
        apply = self.aligner.apply_depth if as_depth else self.aligner.apply
        for position in range(self.count):
            values = np.load(self._path(position, "values"))
            extras = {name: np.load(self._path(position, name)) for name in self._extras}
            yield position, apply(position, values), extras
