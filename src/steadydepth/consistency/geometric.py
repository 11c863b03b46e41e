"""Multi-view geometric consistency of depth maps (forward-backward reprojection check).

Conventions (see :mod:`steadydepth.types`): depth is z-depth with ``0`` (or NaN) marking
invalid pixels; poses are camera-to-world 4x4 matrices with OpenCV axes; pixel centres
follow OpenCV (first pixel centre at ``(0, 0)``); ``K`` is the 3x3 calibration matrix at
the resolution of the depth maps.

The check, for a reference pixel ``p`` with depth ``d`` and a neighbour view ``n``
(as in COLMAP's fusion and MVSNet's filtering):

1. back-project ``p`` with ``d`` to 3D, project it into ``n`` at pixel ``q`` (depth ``d_n``);
2. read the neighbour's own depth ``D_n(q)`` (bilinear, only where all four taps are valid
   and within 10 % of each other, so depth edges are not blended into a made-up depth);
3. back-project ``q`` with ``D_n(q)`` and project it back into the reference: pixel
   ``p'`` with depth ``d'``;
4. the view *agrees* when ``|p - p'| < pix_tol`` and ``|d' - d| / d < rel_tol``.

Pixels that agree with few views are unreliable: occlusions, mismatches, and moving
objects (whose depth cannot be consistent across views taken at different times).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..geometry import project_camera_points

__all__ = ["ConsistencyResult", "reproject_check", "geometric_consistency", "confirmed"]

log = logging.getLogger(__name__)


@dataclass
class ConsistencyResult:
    """Outcome of :func:`geometric_consistency` for one reference depth map.

    ``num_agree`` (H, W) int: how many neighbour views agree with each pixel;
    ``num_seen`` (H, W) int: how many neighbour views could test the pixel (it projects
    inside the neighbour onto a valid depth); ``fused_depth`` (H, W) float32: mean of the
    reference depth and the agreeing reprojected depths (0 where the reference is invalid).
    """

    num_agree: np.ndarray
    num_seen: np.ndarray
    fused_depth: np.ndarray


def _pixel_grid(height: int, width: int) -> np.ndarray:
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    return np.stack([u.ravel(), v.ravel(), np.ones(u.size)], axis=0)


def reproject_check(
    depth_ref: np.ndarray,
    depth_src: np.ndarray,
    K: np.ndarray,
    pose_ref: np.ndarray,
    pose_src: np.ndarray,
    K_src: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Forward-backward reprojection of ``depth_ref`` through ``depth_src``.

    Returns ``(pix_err, rel_err, depth_back, seen)``, each ``(H, W)``: the pixel distance
    ``|p - p'|``, the relative depth difference ``|d' - d| / d``, the depth ``d'`` of the
    round-tripped point in the reference camera, and a bool mask of pixels the source could
    test. Errors are ``inf`` where ``seen`` is False.
    """
    depth_ref = np.asarray(depth_ref, dtype=np.float64)
    depth_src = np.asarray(depth_src, dtype=np.float32)
    h, w = depth_ref.shape
    hs, ws = depth_src.shape
    K = np.asarray(K, dtype=np.float64)
    K_src = K if K_src is None else np.asarray(K_src, dtype=np.float64)
    rel = np.linalg.inv(np.asarray(pose_src, dtype=np.float64)) @ np.asarray(pose_ref, dtype=np.float64)
    R, t = rel[:3, :3], rel[:3, 3:]

    pix = _pixel_grid(h, w)
    d = depth_ref.ravel()
    valid = np.isfinite(d) & (d > 0)
    d_safe = np.where(valid, d, 1.0)
    X_ref = (np.linalg.inv(K) @ pix) * d_safe
    X_src = R @ X_ref + t
    qu, qv, in_front = project_camera_points(K_src, X_src)
    valid &= in_front
    valid &= (qu >= 0) & (qu <= ws - 1) & (qv >= 0) & (qv <= hs - 1)
    qu = np.where(valid, qu, -1.0).astype(np.float32)
    qv = np.where(valid, qv, -1.0).astype(np.float32)

    # Bilinear read of the source depth, only where the 4 taps are valid and within 10 %
    # of each other (at depth edges a blend of foreground and background is no depth).
    ds = np.nan_to_num(depth_src, nan=0.0)
    x0 = np.clip(np.floor(qu).astype(np.int64), 0, ws - 2 if ws > 1 else 0)
    y0 = np.clip(np.floor(qv).astype(np.int64), 0, hs - 2 if hs > 1 else 0)
    x1 = np.minimum(x0 + 1, ws - 1)
    y1 = np.minimum(y0 + 1, hs - 1)
    taps = np.stack([ds[y0, x0], ds[y0, x1], ds[y1, x0], ds[y1, x1]], axis=0).astype(np.float64)
    fx = np.clip(qu - x0, 0.0, 1.0)
    fy = np.clip(qv - y0, 0.0, 1.0)
    sampled = (taps[0] * (1 - fx) * (1 - fy) + taps[1] * fx * (1 - fy)
               + taps[2] * (1 - fx) * fy + taps[3] * fx * fy)
    tmin, tmax = taps.min(axis=0), taps.max(axis=0)
    valid &= (tmin > 0) & (tmax <= tmin * 1.1)

    # back-project from the source and return to the reference
    qh = np.stack([qu.astype(np.float64), qv.astype(np.float64), np.ones(qu.size)], axis=0)
    s_safe = np.where(valid, sampled, 1.0)
    Y_src = (np.linalg.inv(K_src) @ qh) * s_safe
    Y_ref = R.T @ (Y_src - t)
    z_back = Y_ref[2]
    pu, pv, in_front = project_camera_points(K, Y_ref)
    valid &= in_front
    with np.errstate(divide="ignore", invalid="ignore"):
        pix_err = np.hypot(pu - pix[0], pv - pix[1])
        rel_err = np.abs(z_back - d_safe) / d_safe
    pix_err = np.where(valid, pix_err, np.inf)
    rel_err = np.where(valid, rel_err, np.inf)
    depth_back = np.where(valid, z_back, 0.0)
    return (
        pix_err.reshape(h, w).astype(np.float32),
        rel_err.reshape(h, w).astype(np.float32),
        depth_back.reshape(h, w).astype(np.float32),
        valid.reshape(h, w),
    )


def geometric_consistency(
    depth_ref: np.ndarray,
    K: np.ndarray,
    pose_ref: np.ndarray,
    neighbours: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    pix_tol: float = 1.0,
    rel_tol: float = 0.01,
) -> ConsistencyResult:
    """Count, per pixel, the neighbour views whose depth agrees with ``depth_ref``.

    ``neighbours`` is a sequence of ``(depth, pose_c2w)`` at the same resolution and
    intrinsics ``K`` as the reference. Tolerances: ``pix_tol`` pixels of round-trip
    distance and ``rel_tol`` relative z-depth difference (see the module docstring).
    """
    depth_ref = np.asarray(depth_ref, dtype=np.float32)
    h, w = depth_ref.shape
    num_agree = np.zeros((h, w), np.int32)
    num_seen = np.zeros((h, w), np.int32)
    acc = np.where(depth_ref > 0, depth_ref, 0).astype(np.float64)
    cnt = (depth_ref > 0).astype(np.float64)
    for depth_n, pose_n in neighbours:
        pix_err, rel_err, depth_back, seen = reproject_check(depth_ref, depth_n, K, pose_ref, pose_n)
        agree = seen & (pix_err < pix_tol) & (rel_err < rel_tol)
        num_agree += agree
        num_seen += seen
        acc += np.where(agree, depth_back, 0.0)
        cnt += agree
    fused = np.where(cnt > 0, acc / np.maximum(cnt, 1), 0.0).astype(np.float32)
    return ConsistencyResult(num_agree=num_agree, num_seen=num_seen, fused_depth=fused)


def confirmed(num_agree: np.ndarray, min_agree: int, relax_below: float = 0.0) -> np.ndarray:
    """Pixels (bool, the shape of ``num_agree``) that at least ``min_agree`` views agree with.

    Where that leaves fewer than ``relax_below`` of the frame's pixels, one agreeing view is
    enough: on a slow pan before a far background the neighbours' own depth is too uncertain
    to confirm most of a frame, and a fill seeded by a few percent of the pixels does worse
    than the pixels one view confirms.
    """
    keep = num_agree >= min_agree
    if min_agree > 1 and keep.mean() < relax_below:
        keep = num_agree >= 1
    return keep
