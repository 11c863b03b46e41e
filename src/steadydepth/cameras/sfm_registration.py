"""Registration of the non-keyframes: triangulated keypoints of the nearest posed keyframe are
tracked by forward-backward checked Lucas-Kanade flow and the 2D-3D matches give the pose
(``pycolmap.estimate_and_refine_absolute_pose``).

Conventions as in :mod:`steadydepth.cameras.sfm`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from ..errors import OutputError
from .sfm_mapping import _image_name
from .sfm_settings import ProgressFn, SfmPreset, _report

__all__ = []

log = logging.getLogger(__name__)


#: triangulated keypoints per keyframe tracked into the other frames (spread over the image)
_MAX_TRACKED = 600


_LK = dict(winSize=(15, 15), maxLevel=3, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))


def _read_gray(images_dir: Path, pos: int) -> np.ndarray:
    g = cv2.imread(str(images_dir / _image_name(pos)), cv2.IMREAD_GRAYSCALE)
    if g is None:
        raise OutputError(f"cannot read back frame image {images_dir / _image_name(pos)}")
    return g


def _keyframe_observations(rec, image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An image's triangulated keypoints: ``(xy, xyz, xyz_all)`` with ``xy`` (N,2) OpenCV pixel
    positions and ``xyz`` (N,3) world points of at most ``_MAX_TRACKED`` of them (spread over
    the image), and ``xyz_all`` the world points of all of them."""
    xy, xyz = [], []
    for p in image.points2D:
        if p.has_point3D():
            xy.append(p.xy)
            xyz.append(rec.points3D[p.point3D_id].xyz)
    if not xy:
        return np.zeros((0, 2), np.float32), np.zeros((0, 3)), np.zeros((0, 3))
    xy_cv = (np.asarray(xy) - 0.5).astype(np.float32)
    xyz_a = np.asarray(xyz, dtype=np.float64)
    keep = _spread_subset(xy_cv, image.camera.width, image.camera.height, _MAX_TRACKED)
    return xy_cv[keep], xyz_a[keep], xyz_a


def _spread_subset(xy: np.ndarray, width: int, height: int, limit: int) -> np.ndarray:
    """Indices of at most ``limit`` points spread over an 8x6 grid (round robin over cells)."""
    if len(xy) <= limit:
        return np.arange(len(xy))
    cell = (np.clip(xy[:, 0] * 8 // max(width, 1), 0, 7) * 6 + np.clip(xy[:, 1] * 6 // max(height, 1), 0, 5))
    order = np.random.default_rng(0).permutation(len(xy))
    cell = cell[order].astype(int)
    rank = np.zeros(len(xy), int)  # position of each point within its cell
    counts: dict[int, int] = {}
    for k, c in enumerate(cell):
        rank[k] = counts.get(c, 0)
        counts[c] = rank[k] + 1
    return np.sort(order[np.argsort(rank, kind="stable")[:limit]])


def _chain_tracks(
    images_dir: Path, start: int, stop: int, step: int, pts: np.ndarray, xyz: np.ndarray, size: tuple[int, int]
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Track ``pts`` (in frame ``start``) frame by frame to ``start+step, ...`` up to (excluding) ``stop``."""
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if len(pts) < 8:
        return out
    w, h = size
    prev = _read_gray(images_dir, start)
    cur_pts = pts.reshape(-1, 1, 2).astype(np.float32)
    cur_xyz = xyz
    for pos in range(start + step, stop, step):
        g = _read_gray(images_dir, pos)
        nxt, st, _ = cv2.calcOpticalFlowPyrLK(prev, g, cur_pts, None, **_LK)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(g, prev, nxt, None, **_LK)
        fb = np.linalg.norm((back - cur_pts).reshape(-1, 2), axis=1)
        q = nxt.reshape(-1, 2)
        ok = (st.ravel() == 1) & (st2.ravel() == 1) & (fb < 0.7)
        ok &= (q[:, 0] >= 0) & (q[:, 0] <= w - 1) & (q[:, 1] >= 0) & (q[:, 1] <= h - 1)
        cur_pts, cur_xyz = nxt[ok], cur_xyz[ok]
        out[pos] = (cur_pts.reshape(-1, 2).copy(), cur_xyz)
        prev = g
        if len(cur_pts) < 8:
            break
    return out


def _short(chain: dict, lo: int, hi: int, enough: int) -> bool:
    """True when some frame in ``[lo, hi)`` has fewer than ``enough`` tracked points in ``chain``."""
    return any(p not in chain or len(chain[p][0]) < enough for p in range(lo, hi))


def _register_frames(
    camera, images_dir: Path, num_frames: int, posed_w2c: dict[int, np.ndarray], kf_obs: dict,
    size: tuple[int, int], preset: SfmPreset, progress: ProgressFn | None,
) -> dict[int, np.ndarray]:
    """Absolute poses (3x4 world-to-camera, COLMAP world) of frames without one."""
    import pycolmap

    anchors = sorted(posed_w2c)
    todo = [p for p in range(num_frames) if p not in posed_w2c]
    result: dict[int, np.ndarray] = {}
    est = pycolmap.AbsolutePoseEstimationOptions()
    est.ransac.max_error = 4.0
    est.ransac.random_seed = 0
    ref = pycolmap.AbsolutePoseRefinementOptions()
    done = 0
    # segments between consecutive anchors (plus the head and tail of the clip)
    bounds = [-1, *anchors, num_frames]
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b - a <= 1:
            continue
        # each frame is tracked from its nearer anchor; a chain that breaks is taken over
        # by the other anchor's chain over the whole segment
        corr: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {p: [] for p in range(a + 1, b)}
        both = a >= 0 and b < num_frames
        mid = (a + b) // 2
        fwd = _chain_tracks(images_dir, a, mid + 1 if both else b, 1, *kf_obs[a], size) if a >= 0 else {}
        bwd = _chain_tracks(images_dir, b, mid if both else a, -1, *kf_obs[b], size) if b < num_frames else {}
        enough = 2 * preset.min_inliers
        if both and _short(bwd, mid + 1, b, enough):
            fwd = _chain_tracks(images_dir, a, b, 1, *kf_obs[a], size)
        if both and _short(fwd, a + 1, mid + 1, enough):
            bwd = _chain_tracks(images_dir, b, a, -1, *kf_obs[b], size)
        for chain in (fwd, bwd):
            for p, c in chain.items():
                corr[p].append(c)
        for p in range(a + 1, b):
            done += 1
            _report(progress, "registration", done, len(todo))
            if not corr[p]:
                continue
            x2 = np.concatenate([c[0] for c in corr[p]]).astype(np.float64) + 0.5  # COLMAP pixel convention
            x3 = np.concatenate([c[1] for c in corr[p]])
            if len(x2) < preset.min_inliers:
                continue
            try:
                r = pycolmap.estimate_and_refine_absolute_pose(x2, x3, camera, est, ref)
            except Exception as exc:  # pragma: no cover - pycolmap raises on degenerate input
                log.debug("absolute pose of frame %d failed: %s", p, exc)
                r = None
            if r is None or r["num_inliers"] < max(preset.min_inliers, 0.3 * len(x2)):
                continue
            result[p] = r["cam_from_world"].matrix()
    return result
