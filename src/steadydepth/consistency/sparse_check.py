"""Does the dense depth agree with the run's own sparse reconstruction?

Structure from motion triangulates a sparse cloud from the same cameras that the dense
depth is computed with. On a sound reconstruction the depth maps agree with it: the sparse
points a frame sees land on its depth within a few per cent (points hidden behind a surface
land in front of it, so the agreement is never total). When the two disagree wholesale — the
dense depth a factor of two or more nearer or farther than the points, frame after frame —
the geometry of the run is not to be trusted: typically a camera that barely translates
(a rotation-dominant pan), motion blur, or a focal/distortion solution that SfM could not
pin down. :class:`SparseAgreement` measures this per frame while the depth is written and
says so in one warning at the end; it never changes the depth.

Conventions: depth maps are z-depth on the pinhole grid of ``intrinsics`` (scaled to the
map's size), 0 = invalid; poses camera-to-world; points ``(N, 3)`` world coordinates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ..geometry import project_points
from ..types import Cameras

__all__ = ["SparseAgreement", "FrameAgreement"]

log = logging.getLogger(__name__)

MIN_POINTS = 10  # a frame seeing fewer sparse points is not judged
RATIO_FACTOR = 2.0  # a frame disagrees when its median depth/point ratio is beyond this factor
AGREE_TOLERANCE = 0.25  # a point agrees when depth/z is within 1 +- this (in log terms)
IMPLAUSIBLE_SHARE = 0.5  # the run is implausible when more than this share of judged frames disagree,
MIN_AGREEMENT = 0.4  # or when the median frame has fewer than this share of its points agreeing


@dataclass(frozen=True)
class FrameAgreement:
    """One frame's comparison: ``points`` judged, ``median_ratio`` of dense depth over the
    points' z-depth, ``agree`` the share of points within ``AGREE_TOLERANCE``."""

    position: int
    points: int
    median_ratio: float
    agree: float

    @property
    def disagrees(self) -> bool:
        return not (1.0 / RATIO_FACTOR <= self.median_ratio <= RATIO_FACTOR)


@dataclass
class SparseAgreement:
    """Accumulates :class:`FrameAgreement` per written frame (a few numbers each: memory is
    flat in clip length). ``frames`` holds the judged frames in order."""

    cameras: Cameras
    frames: list[FrameAgreement] = field(default_factory=list)

    @classmethod
    def for_cameras(cls, cameras: Cameras | None) -> SparseAgreement | None:
        """A checker when the cameras carry at least ``MIN_POINTS`` sparse points, else None."""
        if cameras is None or cameras.points is None or len(cameras.points) < MIN_POINTS:
            return None
        return cls(cameras)

    def add(self, position: int, depth: np.ndarray) -> FrameAgreement | None:
        """Compare frame ``position``'s depth ``(H, W)`` with the sparse points it sees."""
        cams = self.cameras
        if position >= len(cams.poses) or cams.poses[position] is None:
            return None
        if cams.pose_source(position) in ("copied", "static", "rotation-only"):
            return None  # no measured translation: nothing triangulated belongs to this view
        h, w = depth.shape
        intr = cams.intrinsics.scaled(w, h)
        u, v, z = project_points(cams.points, cams.poses[position], intr, min_depth=1e-12)
        ui, vi = np.rint(u).astype(np.int64), np.rint(v).astype(np.int64)
        inside = (ui >= 0) & (ui < w) & (vi >= 0) & (vi < h)
        d = depth[vi[inside], ui[inside]]
        ok = d > 0
        if ok.sum() < MIN_POINTS:
            return None
        log_ratio = np.log(d[ok] / z[inside][ok])
        result = FrameAgreement(position=position, points=int(ok.sum()),
                                median_ratio=float(np.exp(np.median(log_ratio))),
                                agree=float(np.mean(np.abs(log_ratio) <= np.log1p(AGREE_TOLERANCE))))
        self.frames.append(result)
        return result

    def summary(self) -> dict:
        """For ``run.json``: frames judged, the share that disagree, the clip's median ratio and
        agreement, and ``plausible`` (None when no frame could be judged)."""
        if not self.frames:
            return {"frames_judged": 0, "plausible": None}
        ratios = np.array([f.median_ratio for f in self.frames])
        share = float(np.mean([f.disagrees for f in self.frames]))
        return {
            "frames_judged": len(self.frames),
            "frames_disagreeing": int(sum(f.disagrees for f in self.frames)),
            "median_ratio": round(float(np.median(ratios)), 4),
            "median_agreement": round(float(np.median([f.agree for f in self.frames])), 4),
            "plausible": share <= IMPLAUSIBLE_SHARE and float(np.median([f.agree for f in self.frames])) >= MIN_AGREEMENT,
        }

    def warning(self) -> str | None:
        """One sentence when the depth and the sparse cloud disagree in most frames, else None."""
        s = self.summary()
        if s["plausible"] is not False:
            return None
        return (f"geometry: the depth disagrees with the run's own sparse reconstruction in "
                f"{s['frames_disagreeing']} of {s['frames_judged']} frames (median depth / sparse-point ratio "
                f"{s['median_ratio']:.3g}, {100 * s['median_agreement']:.0f} % of points within "
                f"{100 * AGREE_TOLERANCE:.0f} %): the cameras or the depth are not to be trusted on this clip "
                "(often a camera that barely translates, motion blur, or an undetermined focal); try --fov or "
                "--intrinsics, or a learned prior (--prior hf:MODEL+mvs)")
