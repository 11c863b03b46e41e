"""Online keyframe selection for structure from motion on video.

Frames arrive one at a time (the clip is never held in memory). For each frame the
selector tracks corners of the last keyframe into it with pyramidal Lucas-Kanade
optical flow (OpenCV) on a small grayscale copy, and makes it a keyframe candidate
when the **median image motion since the last keyframe** reaches
``min_motion * width`` pixels, when too few corners survive (the view changed), or
when ``max_gap`` frames have passed. It also tracks the first frame's corners to
decide whether the camera is static.

Motion is measured in pixels of the frames given to :meth:`KeyframeSelector.add`
(the processing resolution). :meth:`KeyframeSelector.select` caps the number of
keyframes per preset (uniform subsampling of the candidates, first and last frame
kept) and guarantees a minimum (evenly spaced frames are added).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["KeyframePolicy", "KEYFRAME_PRESETS", "KeyframeSelector", "select_keyframes", "to_gray"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeyframePolicy:
    """How keyframes are chosen.

    ``min_motion``: median flow since the last keyframe, as a fraction of the image width,
    that makes a new keyframe. ``max_keyframes`` / ``min_keyframes``: caps on the final
    selection. ``max_gap``: at most this many frames between keyframes.
    ``static_px``: below this median motion from the first frame (pixels) for the whole
    clip, the camera counts as static. ``track_side``: long side in pixels of the
    grayscale copy used for tracking.
    """

    min_motion: float = 0.03
    max_keyframes: int = 80
    min_keyframes: int = 10
    max_gap: int = 30
    static_px: float = 0.75
    track_side: int = 320


KEYFRAME_PRESETS: dict[str, KeyframePolicy] = {
    "fast": KeyframePolicy(min_motion=0.05, max_keyframes=40, min_keyframes=8, max_gap=45),
    "balanced": KeyframePolicy(min_motion=0.03, max_keyframes=80, min_keyframes=10, max_gap=30),
}  # ``fine`` solves its cameras as ``balanced`` (cameras/sfm_settings.py)

_LK = dict(winSize=(21, 21), maxLevel=3, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 RGB ``(H, W, 3)`` (or already gray ``(H, W)``) -> uint8 gray ``(H, W)``."""
    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def _corners(gray: np.ndarray, max_corners: int = 250) -> np.ndarray | None:
    pts = cv2.goodFeaturesToTrack(gray, maxCorners=max_corners, qualityLevel=0.01, minDistance=7, blockSize=7)
    return None if pts is None else pts.astype(np.float32)


def _track(prev: np.ndarray, cur: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward-backward checked LK: returns (tracked points (N,1,2), ok mask (N,))."""
    nxt, st, _ = cv2.calcOpticalFlowPyrLK(prev, cur, pts, None, **_LK)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(cur, prev, nxt, None, **_LK)
    fb = np.linalg.norm((back - pts).reshape(-1, 2), axis=1)
    ok = (st.ravel() == 1) & (st2.ravel() == 1) & (fb < 1.0)
    return nxt, ok


class KeyframeSelector:
    """Online keyframe chooser (see module docstring). Call :meth:`add` once per frame, in order."""

    def __init__(self, width: int, height: int, policy: KeyframePolicy | None = None) -> None:
        self.policy = policy or KeyframePolicy()
        self.width, self.height = int(width), int(height)
        self.scale = min(1.0, self.policy.track_side / max(self.width, self.height))
        self.count = 0
        self.candidates: list[int] = []
        #: median motion (processing pixels) of each frame since the last keyframe
        self.motion: list[float] = []
        self.max_motion_from_first = 0.0
        self.low_texture_frames = 0
        self._kf_gray: np.ndarray | None = None
        self._kf_pts: np.ndarray | None = None
        self._first_gray: np.ndarray | None = None
        self._first_pts: np.ndarray | None = None

    def _small(self, image: np.ndarray) -> np.ndarray:
        g = to_gray(image)
        if g.shape != (self.height, self.width):
            raise ValueError(f"frame of size {g.shape[1]}x{g.shape[0]} in a {self.width}x{self.height} clip")
        if self.scale < 1.0:
            g = cv2.resize(g, (round(self.width * self.scale), round(self.height * self.scale)),
                           interpolation=cv2.INTER_AREA)
        return g

    def _make_keyframe(self, pos: int, g: np.ndarray) -> None:
        self.candidates.append(pos)
        self._kf_gray = g
        self._kf_pts = _corners(g)

    def add(self, image: np.ndarray) -> bool:
        """Feed the next frame (uint8 RGB or gray); returns True when it became a keyframe candidate."""
        pos = self.count
        self.count += 1
        g = self._small(image)
        if pos == 0:
            self._make_keyframe(0, g)
            self._first_gray, self._first_pts = g, self._kf_pts
            self.motion.append(0.0)
            if self._kf_pts is None or len(self._kf_pts) < 20:
                self.low_texture_frames += 1
            return True
        # static check: motion of the first frame's corners (stop once clearly moving)
        if self._first_pts is not None and self.max_motion_from_first <= 10 * self.policy.static_px:
            nxt, ok = _track(self._first_gray, g, self._first_pts)
            if ok.sum() >= max(8, 0.3 * len(ok)):
                d = np.linalg.norm((nxt - self._first_pts).reshape(-1, 2)[ok], axis=1)
                m = float(np.median(d)) / self.scale
            else:
                m = np.inf
            self.max_motion_from_first = max(self.max_motion_from_first, m)
        elif self._first_pts is None:
            self.max_motion_from_first = np.inf
        # motion since the last keyframe
        is_kf = False
        if self._kf_pts is None or len(self._kf_pts) < 20:
            # the last keyframe had nothing to track: the next frame with texture replaces it
            self.low_texture_frames += 1
            motion = np.inf
            pts = _corners(g)
            is_kf = (pts is not None and len(pts) >= 20) or pos - self.candidates[-1] >= self.policy.max_gap
        else:
            nxt, ok = _track(self._kf_gray, g, self._kf_pts)
            frac = ok.mean()
            motion = float(np.median(np.linalg.norm((nxt - self._kf_pts).reshape(-1, 2)[ok], axis=1))) / self.scale \
                if ok.any() else np.inf
            is_kf = (
                motion >= self.policy.min_motion * self.width
                or frac < 0.5
                or pos - self.candidates[-1] >= self.policy.max_gap
            )
        self.motion.append(motion)
        if is_kf:
            self._make_keyframe(pos, g)
        return is_kf

    @property
    def is_static(self) -> bool:
        """True when no frame moved more than ``static_px`` (median, from the first frame)."""
        return self.count >= 1 and self._first_pts is not None and self.max_motion_from_first < self.policy.static_px

    def select(self) -> list[int]:
        """Final keyframe positions (sorted), within ``[min_keyframes, max_keyframes]`` where the clip allows."""
        sel = select_keyframes(self.candidates, self.count, self.policy)
        log.debug("keyframes: %d candidates -> %d selected of %d frames", len(self.candidates), len(sel), self.count)
        return sel


def select_keyframes(candidates: list[int], num_frames: int, policy: KeyframePolicy) -> list[int]:
    """Keyframe positions (sorted) among ``candidates`` (positions in ``[0, num_frames)``) plus the
    last frame: evenly spaced frames added up to ``min_keyframes``, uniform subsampling down to
    ``max_keyframes`` (first and last kept)."""
    n = num_frames
    if n <= 0:
        return []
    p = policy
    sel = sorted({c for c in candidates if 0 <= c < n} | {n - 1})
    if len(sel) < min(n, p.min_keyframes):
        extra = np.round(np.linspace(0, n - 1, min(n, p.min_keyframes))).astype(int).tolist()
        sel = sorted(set(sel) | set(extra))
    if len(sel) > p.max_keyframes:
        keep = np.round(np.linspace(0, len(sel) - 1, p.max_keyframes)).astype(int)
        sel = [sel[k] for k in sorted(set(keep.tolist()))]
    return sel
