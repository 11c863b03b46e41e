"""Online shot-boundary (scene cut) detection for a video stream.

Each frame is reduced to a small colour thumbnail (``THUMB`` pixels wide) and a joint
colour histogram. A frame is a **cut candidate** when its change from the previous frame
(mean absolute thumbnail difference, grey levels, and the L1 histogram distance) is
both large in absolute terms and many times the robust running level of the recent
changes (median over the last ``window`` frames: a fast pan raises the level and needs
a larger jump). A candidate is confirmed when corners of the previous thumbnail cannot
be followed into it by forward-backward checked Lucas-Kanade flow (a cut breaks every
track; a flash or fast motion keeps some). Cuts closer than ``min_shot`` frames to the
previous one are ignored (each shot needs frames of its own to be reconstructed).

Only the previous thumbnail and a short window of scalars are kept: memory is flat in
the clip length.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["ShotPolicy", "ShotDetector"]

log = logging.getLogger(__name__)

#: width in pixels of the thumbnails compared frame to frame
THUMB = 64


@dataclass(frozen=True)
class ShotPolicy:
    """When a frame starts a new shot (see the module docstring).

    ``min_diff``: thumbnail change (mean absolute difference, grey levels) a cut needs at
    least; ``min_hist``: L1 distance of the normalised colour histograms (0-2) a cut needs
    at least (either suffices); ``ratio``: times the running median change (of either), a
    low bar: textured scenes in motion change a lot; the tracking check decides;
    ``window``:
    frames of that median; ``min_shot``: frames a shot has at least; ``max_tracked``: the
    fraction of corners that may still be tracked across a cut.
    """

    min_diff: float = 20.0
    min_hist: float = 0.2
    ratio: float = 2.5
    window: int = 30
    min_shot: int = 8
    max_tracked: float = 0.35
    enabled: bool = True


_LK = dict(winSize=(9, 9), maxLevel=2, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))


def _histogram(thumb: np.ndarray) -> np.ndarray:
    """Joint 4x4x4 RGB histogram of a uint8 thumbnail, normalised to sum 1 (64,)."""
    q = (thumb // 64).reshape(-1, 3).astype(np.int32)
    h = np.bincount(q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2], minlength=64).astype(np.float64)
    return h / max(h.sum(), 1.0)


def _tracked_fraction(prev: np.ndarray, cur: np.ndarray) -> float:
    """Fraction of the previous gray thumbnail's corners followed into ``cur`` (1.0 when it has none)."""
    pts = cv2.goodFeaturesToTrack(prev, maxCorners=60, qualityLevel=0.01, minDistance=3)
    if pts is None or len(pts) < 6:
        return 1.0  # nothing to follow: no evidence of a cut
    nxt, st, _ = cv2.calcOpticalFlowPyrLK(prev, cur, pts, None, **_LK)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(cur, prev, nxt, None, **_LK)
    fb = np.linalg.norm((back - pts).reshape(-1, 2), axis=1)
    return float(((st.ravel() == 1) & (st2.ravel() == 1) & (fb < 0.5)).mean())


class ShotDetector:
    """Call :meth:`add` once per frame (uint8 RGB ``(H, W, 3)``), in order; ``cuts`` holds the
    stream positions that start a new shot (never 0).

    A cut at frame ``p`` is decided when frame ``p + 1`` arrives: it is confirmed only if
    the frame before the cut cannot be tracked into frame ``p + 1`` either, so one odd frame
    (blank, flash, heavy blur) inside a shot is no cut.
    """

    def __init__(self, policy: ShotPolicy | None = None) -> None:
        self.policy = policy or ShotPolicy()
        self.count = 0
        self.cuts: list[int] = []
        self._prev: np.ndarray | None = None
        self._prev_hist: np.ndarray | None = None
        self._pending: tuple[int, np.ndarray] | None = None  # (candidate position, gray thumbnail before it)
        self._diffs: deque[float] = deque(maxlen=self.policy.window)
        self._hists: deque[float] = deque(maxlen=self.policy.window)

    def add(self, image: np.ndarray) -> int | None:
        """Feed the next frame; returns the position of a cut confirmed now (this frame's or the
        previous one's), else None."""
        pos = self.count
        self.count += 1
        h, w = image.shape[:2]
        tw = min(THUMB, w)
        thumb = cv2.resize(image, (tw, max(1, round(h * tw / w))), interpolation=cv2.INTER_AREA)
        gray = cv2.cvtColor(thumb, cv2.COLOR_RGB2GRAY)
        hist = _histogram(thumb)
        prev, prev_hist = self._prev, self._prev_hist
        self._prev, self._prev_hist = thumb, hist
        p = self.policy
        if prev is None or not p.enabled:
            return None
        confirmed = None
        if self._pending is not None:
            cand, before = self._pending
            self._pending = None
            frac = _tracked_fraction(before, gray)
            log.debug("shots: frame %d tracked %.2f from the frame before candidate %d", pos, frac, cand)
            if frac <= p.max_tracked:
                self.cuts.append(cand)
                self._diffs.clear()
                self._hists.clear()
                confirmed = cand
        d = float(np.abs(thumb.astype(np.int16) - prev.astype(np.int16)).mean())
        dh = float(np.abs(hist - prev_hist).sum())
        level_d = float(np.median(self._diffs)) if self._diffs else 0.0
        level_h = float(np.median(self._hists)) if self._hists else 0.0
        jump = (d >= p.min_diff and d >= p.ratio * level_d) or (dh >= p.min_hist and dh >= p.ratio * level_h)
        last = self.cuts[-1] if self.cuts else 0
        if confirmed is None and jump and pos - last >= p.min_shot:
            before = cv2.cvtColor(prev, cv2.COLOR_RGB2GRAY)
            frac = _tracked_fraction(before, gray)
            log.debug("shots: frame %d change %.1f (level %.1f), histogram %.2f (level %.2f), tracked %.2f",
                      pos, d, level_d, dh, level_h, frac)
            if frac <= p.max_tracked:
                self._pending = (pos, before)  # decided by the next frame
                return None
        if confirmed is None:
            self._diffs.append(d)
            self._hists.append(dh)
        return confirmed
