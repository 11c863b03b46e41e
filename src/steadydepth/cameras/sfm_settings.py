"""Presets of structure from motion and the progress callback type.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from .keyframes import KEYFRAME_PRESETS, KeyframePolicy

__all__ = ["SfmPreset", "SFM_PRESETS", "SFM_MAX_SIDE", "ProgressFn", "rescue_preset", "ChunkPolicy", "DEFAULT_CHUNKS"]

log = logging.getLogger(__name__)


ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SfmPreset:
    """Speed/accuracy knobs of one preset.

    ``max_features``: SIFT features per keyframe; ``first_octave``: SIFT's first octave
    (-1 doubles the image first: about 3x the features, about 3-4x slower); ``overlap``:
    sequential matching window (keyframes); ``min_inliers``: 2D-3D inliers needed to accept
    a registered frame; ``peak_threshold``: SIFT's contrast threshold (COLMAP's default
    0.0066 finds 150-300 features per downscaled keyframe of a blurred hand-held office clip;
    0.002 several times more, on every clip); ``min_tri_angle``: the smallest triangulation
    angle (degrees) of a point that is created or kept (COLMAP's default 1.5 drops every point
    further than about 40 baselines: on a hand-held pan moving 1-3 cm that is the whole
    background, which is what pins the rotation apart from the translation; when under
    ``sfm_mapping.SMALL_ANGLE_SHARE`` of the points need it, the keyframes are mapped again at
    1.5, as their small-angle points then only add noise); ``fixed_distortion``:
    map with the radial term held at 0 from the start.
    """

    keyframes: KeyframePolicy
    max_features: int
    overlap: int
    first_octave: int = -1
    min_inliers: int = 20
    peak_threshold: float = 0.002
    min_tri_angle: float = 0.2
    fixed_distortion: bool = False


#: ``fine`` solves the cameras as ``balanced`` does (and the pipeline hands SfM frames of at most
#: ``SFM_MAX_SIDE`` pixels): with its own denser keyframes, 8192 features and doubled images at 640
#: px, its cameras were no better on the real clips and on the RealSense desk worse (measured in
#: benchmarks/NOTES.md), so ``fine`` spends its time on the depth, with the same cameras.
SFM_PRESETS: dict[str, SfmPreset] = {
    "fast": SfmPreset(KEYFRAME_PRESETS["fast"], max_features=2048, overlap=6, first_octave=0),
    "balanced": SfmPreset(KEYFRAME_PRESETS["balanced"], max_features=4096, overlap=8, first_octave=0),
}
SFM_PRESETS["fine"] = SFM_PRESETS["balanced"]

#: the long side (pixels) of the frames structure from motion sees, whatever the processing size
SFM_MAX_SIDE = 480


def rescue_preset(preset: SfmPreset) -> SfmPreset:
    """The settings of the second mapping attempt, after the first built no usable model.

    Blurred or faintly textured clips (a hand-held office, white walls) give a few hundred
    SIFT features per keyframe and too few matches to link the keyframes: doubling the
    image (first octave -1) gives several times more (the contrast threshold is at most
    :data:`RESCUE_PEAK_THRESHOLD`), and the radial term is held at 0 (with little geometry a
    free one runs away).
    """
    return replace(preset, first_octave=-1, peak_threshold=min(preset.peak_threshold, RESCUE_PEAK_THRESHOLD),
                   max_features=max(preset.max_features, 8192), fixed_distortion=True)


#: the highest SIFT contrast threshold of the second mapping attempt (COLMAP's default is 0.0066)
RESCUE_PEAK_THRESHOLD = 0.002


def _report(progress: ProgressFn | None, stage: str, done: int, total: int) -> None:
    """Call ``progress`` if given; otherwise log the end of each stage at INFO."""
    if progress is not None:
        progress(stage, done, total)
    elif total > 0 and done == total:
        log.info("SfM %s: %d/%d done", stage, done, total)


@dataclass(frozen=True)
class ChunkPolicy:
    """When and how a long shot is reconstructed in overlapping chunks
    (:mod:`steadydepth.cameras.sfm_chunks`).

    Shots longer than ``above_frames`` frames are cut into chunks of ``keyframes`` keyframe
    candidates (0: the preset's ``max_keyframes``), consecutive chunks sharing ``overlap``
    candidates and every frame between them. ``above_frames`` 0 never chunks.
    """

    above_frames: int = 1200
    keyframes: int = 0
    overlap: int = 8

    def __post_init__(self) -> None:
        if self.above_frames < 0 or self.keyframes < 0 or self.overlap < 2:
            raise ValueError(f"bad chunk policy {self}: above_frames, keyframes >= 0 and overlap >= 2")
        if self.keyframes and self.keyframes < 2 * self.overlap:
            raise ValueError(f"bad chunk policy {self}: keyframes must be at least twice the overlap")


#: the default: clips over 1200 frames (40 s at 30 fps) in chunks of the preset's keyframe budget
DEFAULT_CHUNKS = ChunkPolicy()
