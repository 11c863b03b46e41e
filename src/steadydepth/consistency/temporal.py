"""Temporal multi-view fusion: every frame's depth agrees with its neighbours' through the cameras.

Per-frame depth (from multi-view stereo or a learned prior brought to the cameras' scale)
still wobbles from frame to frame: each frame is matched, filled and snapped on its own.
This stage makes the static scene consistent *by construction*: the depth of each
neighbour ``j`` in ``r - radius .. r + radius`` is back-projected to world points with its
camera and splatted into frame ``r`` with a z-buffer (nearest pixel, nearest surface wins,
so occluded surfaces do not leak through), and each pixel takes the median of the
candidates (its own depth and every neighbour's that lands on it). A median keeps what
most views agree on: a moving object, or one view's mismatch, is outvoted and does not
smear. The output confidence is the input confidence times the share of the candidates
that agree with the fused value within ``agree_tol``.

Near the ends of the clip (or of a shot) the window slides inwards rather than shrinking:
frame 0 is fused with frames ``1 .. 2 radius``, the last frame with the ``2 radius`` before
it, so the first and last frames get as many views as the middle ones.

It streams: frames are pushed in order and come out ``radius`` frames later (the first ones
``2 radius`` later), with at most ``2 radius + 1`` frames held, so memory is flat in clip length.

Conventions (:mod:`steadydepth.types`): depth is z-depth (0 = invalid), float32 ``(H, W)``;
``K`` the 3x3 intrinsics of these images (OpenCV pixel centres); poses camera-to-world with
OpenCV axes; depth and pose translations in the same units.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["TemporalSettings", "TemporalFusion", "backproject_world", "splat_depth", "median_of_valid"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TemporalSettings:
    """``radius``: neighbours on each side (0 turns the stage off); ``agree_tol``: relative
    depth difference within which a candidate counts as agreeing with the fused value."""

    radius: int = 3
    agree_tol: float = 0.05

    def __post_init__(self) -> None:
        if self.radius < 0:
            raise ValueError(f"temporal radius must be >= 0, got {self.radius}")
        if not self.agree_tol > 0:
            raise ValueError(f"agree_tol must be > 0, got {self.agree_tol}")


def backproject_world(depth: np.ndarray, K: np.ndarray, pose_c2w: np.ndarray) -> np.ndarray:
    """World points ``(N, 3)`` float64 of the valid pixels (``depth > 0``) of one frame, row-major order."""
    v, u = np.nonzero(np.isfinite(depth) & (depth > 0))
    z = depth[v, u].astype(np.float64)
    K = np.asarray(K, np.float64)
    x = (u - K[0, 2]) / K[0, 0] * z
    y = (v - K[1, 2]) / K[1, 1] * z
    cam = np.stack([x, y, z], axis=1)
    pose = np.asarray(pose_c2w, np.float64)
    return cam @ pose[:3, :3].T + pose[:3, 3]


def splat_depth(points_world: np.ndarray, K: np.ndarray, pose_c2w: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Z-buffered depth of ``points_world`` ``(N, 3)`` seen by a camera (``pose_c2w``, ``K``).

    Each point lands on its nearest pixel centre of a ``size = (width, height)`` image; the
    nearest point wins. Returns float32 ``(height, width)`` z-depth, 0 where nothing lands.
    """
    return _splat_columns(np.ascontiguousarray(np.asarray(points_world, np.float32).T), K, pose_c2w, size)


def _splat_columns(columns: np.ndarray, K: np.ndarray, pose_c2w: np.ndarray, size: tuple[int, int],
                   out: np.ndarray | None = None) -> np.ndarray:
    """:func:`splat_depth` of world points given as float32 ``(3, N)`` columns (the layout that
    :class:`TemporalFusion` keeps: one matrix product per splat, no copies). ``out``: a contiguous
    float32 ``(height, width)`` buffer to fill instead, with ``np.inf`` where nothing lands (the
    fusion's candidate stack); without it a new array with 0 there."""
    w, h = size
    pose = np.asarray(pose_c2w, np.float64)
    A = np.asarray(K, np.float64) @ pose[:3, :3].T  # world -> (u z, v z, z)
    q = A.astype(np.float32) @ columns
    q += (-A @ pose[:3, 3]).astype(np.float32)[:, None]
    z = q[2]
    front = z > 1e-9
    inv = np.divide(np.float32(1.0), z, out=np.zeros_like(z), where=front)
    x, y = q[0], q[1]  # pixel coordinates, rounded in place
    x *= inv
    np.rint(x, out=x)
    y *= inv
    np.rint(y, out=y)
    ok = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1) & front
    with np.errstate(invalid="ignore", over="ignore"):  # off-image points may cast to nonsense: masked below
        if w * h < 2 ** 24:  # float32 holds the flat pixel index exactly
            y *= w
            y += x
            flat = y.astype(np.intp)
        else:
            flat = y.astype(np.intp) * w + x.astype(np.intp)
    flat[~ok] = w * h  # one slot past the image takes every point that lands outside it
    zbuf = np.full(w * h + 1, np.inf, np.float32)
    np.minimum.at(zbuf, flat, z)
    zbuf = zbuf[:-1]
    if out is not None:
        out.reshape(-1)[:] = zbuf  # out is contiguous: reshape is a view
        return out
    zbuf[zbuf == np.inf] = 0.0
    return zbuf.reshape(h, w)


def median_of_valid(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel (lower) median over axis 0 of the valid (``> 0``) entries of ``values`` ``(V, H, W)``.

    Returns ``(median, count)``, both ``(H, W)``: the median is 0 where no entry is valid.
    """
    return _median_sorting(np.where(values > 0, values, np.inf).astype(np.float32))


def _median_sorting(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`median_of_valid` of a float32 ``(V, H, W)`` stack whose invalid entries are ``np.inf``;
    sorts ``stack`` in place along axis 0 (no copy)."""
    stack.sort(axis=0)
    count = (stack < np.inf).sum(axis=0)
    med = np.take_along_axis(stack, (np.maximum(count - 1, 0) // 2)[None], axis=0)[0]
    return np.where(count > 0, med, 0.0).astype(np.float32), count


class TemporalFusion:
    """Streaming fusion of each frame's depth with its neighbours' (see the module docstring).

    ``K``: intrinsics of the depth maps that will be pushed; ``poses_c2w``: one pose per
    frame of the stream (``None`` where unknown: such a frame is passed through and lends
    nothing to its neighbours). :meth:`push` takes frames in stream order and returns the
    frames that became final; :meth:`flush` returns the rest at the end. ``first``: the position
    of the first frame pushed (a resumed run starts mid-clip; frames within ``radius`` of it lack
    their earlier neighbours, so a resumed run starts ``radius`` frames before what it writes).
    The clip ends at the last frame of ``poses_c2w`` (or the last pushed, if earlier).
    """

    def __init__(self, K: np.ndarray, poses_c2w: Sequence[np.ndarray | None], settings: TemporalSettings,
                 first: int = 0, shot_of: Sequence[int] | None = None) -> None:
        self.K = np.asarray(K, np.float64)
        self.poses = list(poses_c2w)
        #: shot index per frame (scene cuts): frames of different shots are never fused
        self.shot_of = list(shot_of) if shot_of is not None else None
        self.settings = settings
        self._frames: deque[tuple[int, np.ndarray, np.ndarray, np.ndarray | None]] = deque()
        self._first = first
        self._next = first  # position of the next frame to push
        self._done = first  # position of the next frame to emit
        #: most frames held at once (memory bound check)
        self.max_held = 0

    def _pose(self, i: int) -> np.ndarray | None:
        return self.poses[i] if 0 <= i < len(self.poses) else None

    def _same_shot(self, i: int, j: int) -> bool:
        if self.shot_of is None:
            return True
        n = len(self.shot_of)
        return 0 <= i < n and 0 <= j < n and self.shot_of[i] == self.shot_of[j]

    def push(self, depth: np.ndarray, confidence: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Add the next frame (z-depth and confidence ``(H, W)``); returns the frames now final, in order."""
        i = self._next
        self._next += 1
        depth = np.asarray(depth, np.float32)
        pose = self._pose(i)
        points = None
        if pose is not None and self.settings.radius > 0:
            points = np.ascontiguousarray(backproject_world(depth, self.K, pose).T, np.float32)
        self._frames.append((i, depth, np.asarray(confidence, np.float32), points))
        self.max_held = max(self.max_held, len(self._frames))
        ready = []
        while self._done < self._next and self._window(self._done)[1] <= self._next - 1:
            ready.append(self._emit())
        return ready

    def _window(self, r: int) -> tuple[int, int]:
        """First and last position fused into frame ``r``: ``r -/+ radius``, slid inwards at the ends
        of the clip or of ``r``'s shot so that it keeps ``2 radius`` neighbours where it can."""
        rad = self.settings.radius
        lo = max(self._first, r - 2 * rad)
        hi = min(len(self.poses) - 1, r + 2 * rad) if self.poses else r + rad
        while lo < r and not self._same_shot(lo, r):
            lo += 1
        while hi > r and not self._same_shot(hi, r):
            hi -= 1
        start = max(lo, min(r - rad, hi - 2 * rad))
        return start, min(start + 2 * rad, hi)

    def flush(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The frames still held (call once, after the last :meth:`push`)."""
        ready = []
        while self._done < self._next:
            ready.append(self._emit())
        return ready

    def _emit(self) -> tuple[np.ndarray, np.ndarray]:
        r = self._done
        self._done += 1
        s = self.settings
        held = {f[0]: f for f in self._frames}
        _, depth, conf, _ = held[r]
        pose = self._pose(r)
        out = (depth, conf)
        lo, hi = self._window(r)
        if pose is not None and s.radius > 0 and (depth > 0).any():
            # the window lies inside r's shot: frames of other shots are never fused
            out = self._fuse(depth, conf, pose, [held[j][3] for j in held
                                                 if j != r and lo <= j <= hi and held[j][3] is not None])
        keep_from = self._window(self._done)[0]
        while self._frames and self._frames[0][0] < keep_from:
            self._frames.popleft()
        return out

    def _fuse(self, depth: np.ndarray, conf: np.ndarray, pose: np.ndarray,
              neighbours: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        if not neighbours:
            return depth, conf
        h, w = depth.shape
        s = self.settings
        # candidates: the frame's own depth and each neighbour's splat, np.inf where invalid
        values = np.empty((len(neighbours) + 1, h, w), np.float32)
        values[0] = np.where(depth > 0, depth, np.inf)
        for k, points in enumerate(neighbours, 1):
            _splat_columns(points, self.K, pose, (w, h), out=values[k])
        fused, count = _median_sorting(values)  # values now sorted per pixel; the agreement count does not care
        # candidates within agree_tol of the fused value, as two bounds (np.inf is above both, and
        # where fused is 0 nothing lies at or below 0); 6x faster than |values - fused| on the stack
        within = (values <= fused * np.float32(1 + s.agree_tol)).sum(axis=0, dtype=np.int32)
        agree = within - (values < fused * np.float32(1 - s.agree_tol)).sum(axis=0, dtype=np.int32)
        share = agree / np.maximum(count, 1)
        keep = fused > 0
        fused = np.where(keep, fused, depth).astype(np.float32)
        conf_out = np.where(keep, conf * share, conf).astype(np.float32)
        return fused, np.clip(conf_out, 0.0, 1.0)
