"""The edge test of the ``mvs`` prior: near-side pixels of a depth edge take the far depth
when it explains the neighbour views clearly better (removes foreground fattening).

Conventions as in :mod:`steadydepth.priors.mvs_sweep`.
"""

from __future__ import annotations


import cv2
import numpy as np

from ..geometry import relative_pose, sample_at
from .mvs_sweep import box_mean

__all__ = ["edge_test"]


def _zmad(diff: np.ndarray, window: int) -> np.ndarray:
    """Zero-mean absolute difference over ``(2 window + 1)^2`` boxes (robust to an exposure offset)."""
    return box_mean(np.abs(diff - box_mean(diff, window)), window)


def edge_test(
    depth: np.ndarray,
    ref: np.ndarray,
    sources: list[np.ndarray],
    K: np.ndarray,
    pose_ref: np.ndarray,
    source_poses: list[np.ndarray],
    *,
    radius: int = 5,
    window: int = 2,
    margin: float = 0.005,
    best_k: int = 2,
    edge_ratio: float = 1.2,
) -> tuple[np.ndarray, np.ndarray]:
    """Give pixels beside a depth edge the far side's depth where the images say so.

    Window matching fattens foreground objects: background pixels beside an edge take the
    foreground's depth, and the geometric check cannot see it (the neighbours are fattened
    alike). Here every pixel whose ``(2 radius + 1)^2`` neighbourhood spans more than
    ``edge_ratio`` in disparity is tested with small windows: the photometric cost (zero-mean
    absolute difference of grayscale ``[0, 1]`` images over ``(2 window + 1)^2`` boxes, mean of
    the ``best_k`` lowest over the source views, so a view where the background is occluded
    is outvoted) of its own depth against that of the farthest depth of its neighbourhood; it
    takes the far depth when that costs ``margin`` less. ``depth`` is z-depth (0 = invalid,
    never changed), ``K`` the intrinsics of these images (OpenCV pixel centres), poses
    camera-to-world. Returns ``(depth, moved)``.
    """
    depth = np.asarray(depth, np.float32)
    h, w = depth.shape
    valid = depth > 0
    disp = np.where(valid, 1.0 / np.where(valid, depth, 1.0), 0.0).astype(np.float32)
    kern = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    near = cv2.dilate(disp, kern, borderType=cv2.BORDER_REPLICATE)
    far = cv2.erode(np.where(valid, disp, np.float32(np.inf)), kern, borderType=cv2.BORDER_REPLICATE)
    band = valid & np.isfinite(far) & (near > far * np.float32(edge_ratio)) & (disp > far * np.float32(edge_ratio))
    moved = np.zeros((h, w), bool)
    if not band.any() or not sources:
        return depth, moved
    # costs are needed on the band; the zero-mean box filters read 2 * window pixels around it
    support = cv2.dilate(band.astype(np.uint8), np.ones((4 * window + 1, 4 * window + 1), np.uint8)) > 0
    ys, xs = np.nonzero(support)
    rays = np.linalg.inv(K) @ np.stack([xs, ys, np.ones(xs.size)]).astype(np.float64)
    k = max(1, min(best_k, len(sources)))
    costs = []
    for hyp in (disp, np.where(band, far, disp)):
        pts = rays / hyp[ys, xs].astype(np.float64)[None]
        per_view = []
        for src, ps in zip(sources, source_poses):
            R, t = relative_pose(pose_ref, ps)
            q = K @ (R @ pts + t[:, None])
            ok = q[2] > 1e-9
            z = np.where(ok, q[2], 1.0)
            mx = np.where(ok, q[0] / z, -10.0).astype(np.float32)
            my = np.where(ok, q[1] / z, -10.0).astype(np.float32)
            seen = ok & (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
            warped = sample_at(src, mx, my)
            diff = np.zeros((h, w), np.float32)
            diff[ys, xs] = ref[ys, xs] - warped
            unseen = np.zeros((h, w), np.float32)
            unseen[ys, xs] = ~seen
            c = _zmad(diff, window)[band]
            c[box_mean(unseen, window)[band] > 0] = np.inf  # any unseen pixel in the window: no vote
            per_view.append(c)
        pv = np.sort(np.stack(per_view), axis=0)[:k]
        costs.append(np.where(np.isfinite(pv), pv, 1.0).mean(axis=0))
    take = costs[1] < costs[0] - margin
    moved[band] = take
    out = depth.copy()
    out[moved] = 1.0 / far[moved]
    return out, moved
