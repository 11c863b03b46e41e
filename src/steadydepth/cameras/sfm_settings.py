"""Presets of structure from motion and the progress callback type.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from .keyframes import KEYFRAME_PRESETS, KeyframePolicy

__all__ = ["SfmPreset", "SFM_PRESETS", "ProgressFn"]

log = logging.getLogger(__name__)


ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SfmPreset:
    """Speed/accuracy knobs of one preset.

    ``max_features``: SIFT features per keyframe; ``first_octave``: SIFT's first octave
    (-1 doubles the image first: about 3x the features, about 3-4x slower); ``overlap``:
    sequential matching window (keyframes); ``min_inliers``: 2D-3D inliers needed to accept
    a registered frame.
    """

    keyframes: KeyframePolicy
    max_features: int
    overlap: int
    first_octave: int = -1
    min_inliers: int = 20


SFM_PRESETS: dict[str, SfmPreset] = {
    "fast": SfmPreset(KEYFRAME_PRESETS["fast"], max_features=2048, overlap=6, first_octave=0),
    "balanced": SfmPreset(KEYFRAME_PRESETS["balanced"], max_features=4096, overlap=8, first_octave=0),
    "best": SfmPreset(KEYFRAME_PRESETS["best"], max_features=8192, overlap=12),
}


def _report(progress: ProgressFn | None, stage: str, done: int, total: int) -> None:
    """Call ``progress`` if given; otherwise log the end of each stage at INFO."""
    if progress is not None:
        progress(stage, done, total)
    elif total > 0 and done == total:
        log.info("SfM %s: %d/%d done", stage, done, total)
