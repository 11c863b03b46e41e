"""Accuracy of a fused scene mesh against the true surfaces.

* **accuracy**: median distance of the mesh vertices to the true surface, as a percentage of the
  scene's diagonal (the diagonal of the bounding box of the true surface points that were seen);
* **completeness**: percentage of true surface points with a mesh vertex within ``1 %`` of the
  diagonal (vertex spacing is about one voxel, far below that radius).

The run's mesh is first moved into the ground truth's frame by the Sim(3) that aligns the run's
cameras to the true ones, whole poses (:func:`align_cameras`): the camera centres alone leave the
rotation about the path poorly fixed on an orbit (1 degree there moves a wall 5 m away by 9 cm).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from ..geometry import align_sim3, umeyama
from ..types import Intrinsics

__all__ = ["align_cameras", "align_mesh_to", "surface_samples", "scene_accuracy"]


def align_cameras(pred_c2w: Sequence[np.ndarray | None], ref_c2w: Sequence[np.ndarray | None], *,
                  reach: float | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity ``(s, R, t)`` (``ref ~ s R pred + t``) aligning whole camera poses: Umeyama on
    each camera's centre and the three points ``reach`` along its axes (``reach`` in the predicted
    units, default the spread of the predicted centres, at least 1e-3 of their distance to the origin),
    started from the centres-only fit of :func:`steadydepth.geometry.align_sim3`."""
    pairs = [(np.asarray(p, np.float64), np.asarray(g, np.float64)) for p, g in zip(pred_c2w, ref_c2w)
             if p is not None and g is not None]
    sim = align_sim3([p for p, _ in pairs], [g for _, g in pairs])
    cp = np.array([p[:3, 3] for p, _ in pairs])
    if reach is None:
        reach = max(float(np.linalg.norm(cp.std(0))), 1e-3 * float(np.linalg.norm(cp.mean(0))), 1e-9)
    s = sim.s
    R, t = sim.R, sim.t
    for _ in range(3):  # the reference reach follows the scale found
        src = np.concatenate([cp] + [cp + reach * np.array([p[:3, k] for p, _ in pairs]) for k in range(3)])
        dst_c = np.array([g[:3, 3] for _, g in pairs])
        dst = np.concatenate([dst_c] + [dst_c + s * reach * np.array([g[:3, k] for _, g in pairs]) for k in range(3)])
        s, R, t = umeyama(src, dst)
    return float(s), R, t


def align_mesh_to(vertices: np.ndarray, pred_c2w: Sequence[np.ndarray | None],
                  ref_c2w: Sequence[np.ndarray | None], *, reach: float | None = None) -> tuple[np.ndarray, float]:
    """``vertices`` ``(N, 3)`` of a mesh in the predicted cameras' world, moved by the Sim(3) of
    :func:`align_cameras` onto ``ref_c2w``; also returns its scale."""
    s, R, t = align_cameras(pred_c2w, ref_c2w, reach=reach)
    v = np.asarray(vertices, np.float64)
    return s * v @ R.T + t, s


def surface_samples(frames: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray | None]], intrinsics: Intrinsics, *,
                    stride: int = 4, max_depth: float = np.inf) -> np.ndarray:
    """World points ``(P, 3)`` on the true surface: ``(depth, pose_c2w, mask)`` frames (ground-truth
    z-depth, camera-to-world pose, pixels to leave out or None), every ``stride``-th pixel."""
    from ..io.ply import depth_to_points

    pts = []
    for depth, pose, mask in frames:
        d = np.where(np.isfinite(depth) & (depth < max_depth), depth, 0.0).astype(np.float32)
        keep = None if mask is None else ~np.asarray(mask, bool)
        p, _ = depth_to_points(d, intrinsics, pose, mask=keep, stride=stride)
        pts.append(p)
    return np.concatenate(pts) if pts else np.zeros((0, 3), np.float32)


def scene_accuracy(vertices: np.ndarray, truth: np.ndarray, *,
                   distance_to_truth: Callable[[np.ndarray], np.ndarray] | None = None,
                   within: float = 0.01) -> dict:
    """Scores of mesh ``vertices`` ``(N, 3)`` (already in the truth's frame) against ``truth`` ``(P, 3)``
    points on the true surface. ``distance_to_truth`` gives the exact distance of points to the true
    surface (synthetic scenes); without it the distance to the nearest ``truth`` point is used.
    Returns ``diag``, ``median_pct`` (median vertex distance, % of diag), ``complete_pct`` (% of
    truth within ``within * diag`` of a vertex), ``accurate_pct`` (% of vertices within it)."""
    from scipy.spatial import cKDTree

    v = np.asarray(vertices, np.float64)
    t = np.asarray(truth, np.float64)
    diag = float(np.linalg.norm(t.max(0) - t.min(0))) if len(t) else float("nan")
    if len(v) == 0:
        return {"diag": diag, "median_pct": float("nan"), "complete_pct": 0.0, "accurate_pct": float("nan"),
                "vertices": 0}
    dist = np.abs(distance_to_truth(v)) if distance_to_truth is not None else cKDTree(t).query(v)[0]
    back, _ = cKDTree(v).query(t, distance_upper_bound=within * diag)
    return {
        "diag": diag,
        "median_pct": 100.0 * float(np.median(dist)) / diag,
        "complete_pct": 100.0 * float(np.mean(np.isfinite(back))),
        "accurate_pct": 100.0 * float(np.mean(dist <= within * diag)),
        "vertices": int(len(v)),
    }
