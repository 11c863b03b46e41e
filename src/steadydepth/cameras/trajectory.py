"""Trajectory helpers: camera centres, Sim(3) (Umeyama) alignment, pose interpolation.

Conventions: every pose is a camera-to-world 4x4 matrix with OpenCV camera axes
(x right, y down, z forward), ``X_world = T_c2w @ X_cam``. A camera centre is the
translation column ``T_c2w[:3, 3]``.

Sim(3) alignment maps a *predicted* trajectory onto a reference: with ``(s, R, t)``
from :func:`umeyama_alignment` a world point becomes ``s * R @ X + t``; an aligned
camera-to-world pose is ``[[R @ R_pred, s * R @ c_pred + t], [0, 1]]``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from ..errors import ReconstructionError

from ..eval.metrics import umeyama as umeyama_alignment  # one implementation (Umeyama 1991)

__all__ = [
    "camera_centers",
    "umeyama_alignment",
    "align_trajectory",
    "rotation_error_deg",
    "interpolate_poses",
]

log = logging.getLogger(__name__)


def camera_centers(poses: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Camera centres ``(N, 3)`` of camera-to-world poses ``(N, 4, 4)`` (the translation columns)."""
    arr = np.asarray([np.asarray(p, dtype=np.float64) for p in poses], dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1:] != (4, 4):
        raise ValueError(f"poses must be camera-to-world 4x4 matrices, got shape {arr.shape}")
    return arr[:, :3, 3].copy()


def rotation_error_deg(R_a: np.ndarray, R_b: np.ndarray) -> float:
    """Angle in degrees of the rotation ``R_a^T R_b`` (geodesic distance on SO(3))."""
    M = np.asarray(R_a, dtype=np.float64).T @ np.asarray(R_b, dtype=np.float64)
    # via the rotation vector: accurate for small angles (arccos of the trace is not)
    return float(np.degrees(Rotation.from_matrix(_project_so3(M)).magnitude()))


def _project_so3(M: np.ndarray) -> np.ndarray:
    U, _, Vt = np.linalg.svd(M)
    R = U @ Vt
    if np.linalg.det(R) < 0:
        U[:, -1] *= -1
        R = U @ Vt
    return R


def align_trajectory(
    pred_c2w: Sequence[np.ndarray | None], gt_c2w: Sequence[np.ndarray], *, with_scale: bool = True
) -> tuple[list[np.ndarray | None], dict]:
    """Align a predicted trajectory to a reference by Sim(3) on camera centres.

    ``pred_c2w[i]`` may be ``None`` (frame without a pose): it is left out of the fit
    and stays ``None``. With 3+ posed frames whose centres are not all on one point,
    Umeyama alignment of the centres is used; otherwise (static camera, 1-2 poses) the
    rotation is the mean relative orientation, the scale 1 and the translation aligns
    the centroids. Returns ``(aligned, stats)`` with ``stats`` holding ``ate_rmse``
    (RMS centre error after alignment, reference units), ``rot_err_deg`` (median
    orientation error), ``rot_err_deg_max``, ``rpe_rot_deg`` (median rotation
    error of consecutive relative poses, independent of the alignment), ``scale`` (``s``), ``num_frames`` used and
    the transform ``R``, ``t``.
    """
    if len(pred_c2w) != len(gt_c2w):
        raise ValueError(f"pred has {len(pred_c2w)} poses but gt has {len(gt_c2w)}")
    idx = [i for i, p in enumerate(pred_c2w) if p is not None]
    if not idx:
        raise ValueError("no predicted pose to align")
    P = np.asarray([pred_c2w[i] for i in idx], dtype=np.float64)
    G = np.asarray([gt_c2w[i] for i in idx], dtype=np.float64)
    cp, cg = P[:, :3, 3], G[:, :3, 3]
    spread_p = np.linalg.norm(cp - cp.mean(0), axis=1).max()
    spread_g = np.linalg.norm(cg - cg.mean(0), axis=1).max()
    # Umeyama needs centres spanning more than a line for a unique rotation; for (nearly)
    # collinear or static centres the rotation comes from the mean relative orientation and
    # scale/translation from least squares on the centres given that rotation.
    sv = np.linalg.svd(cp - cp.mean(0), compute_uv=False) if len(idx) >= 3 else np.zeros(3)
    if len(idx) >= 3 and spread_p > 1e-9 and sv[1] > 0.05 * sv[0]:
        s, R, t = umeyama_alignment(cp, cg, with_scale=with_scale)
    else:
        R = _project_so3(sum(g[:3, :3] @ p[:3, :3].T for p, g in zip(P, G)))
        xp, xg = cp - cp.mean(0), cg - cg.mean(0)
        den = float((xp**2).sum())
        s = float(np.sum(xg * (xp @ R.T)) / den) if (with_scale and den > 1e-18 and spread_g > 0) else 1.0
        t = cg.mean(0) - s * R @ cp.mean(0)
    aligned: list[np.ndarray | None] = []
    for p in pred_c2w:
        if p is None:
            aligned.append(None)
            continue
        p = np.asarray(p, dtype=np.float64)
        q = np.eye(4)
        q[:3, :3] = R @ p[:3, :3]
        q[:3, 3] = s * R @ p[:3, 3] + t
        aligned.append(q)
    A = np.asarray([aligned[i] for i in idx])
    err = np.linalg.norm(A[:, :3, 3] - cg, axis=1)
    rot = np.array([rotation_error_deg(a[:3, :3], g[:3, :3]) for a, g in zip(A, G)])
    # alignment-free relative rotation error between consecutive posed frames
    rpe = [
        rotation_error_deg(P[k][:3, :3].T @ P[k + 1][:3, :3], G[k][:3, :3].T @ G[k + 1][:3, :3])
        for k in range(len(idx) - 1)
    ]
    stats = {
        "rpe_rot_deg": float(np.median(rpe)) if rpe else 0.0,
        "ate_rmse": float(np.sqrt(np.mean(err**2))),
        "rot_err_deg": float(np.median(rot)),
        "rot_err_deg_max": float(rot.max()),
        "scale": float(s),
        "num_frames": len(idx),
        "R": R,
        "t": t,
    }
    return aligned, stats


def interpolate_poses(
    poses: Sequence[np.ndarray | None], times: Sequence[float] | None = None
) -> list[np.ndarray]:
    """Fill ``None`` entries of a camera-to-world pose list.

    Between two posed neighbours the rotation is spherically interpolated (slerp) and the
    centre linearly interpolated, by ``times`` (default: list positions). Before the first
    and after the last posed frame the nearest pose is copied (no extrapolation).
    Raises :class:`~steadydepth.errors.ReconstructionError` when no frame has a pose.
    """
    n = len(poses)
    t_all = np.arange(n, dtype=np.float64) if times is None else np.asarray(times, dtype=np.float64)
    if t_all.shape != (n,):
        raise ValueError(f"times must have one entry per pose ({n}), got {t_all.shape}")
    known = [i for i, p in enumerate(poses) if p is not None]
    if not known:
        raise ReconstructionError("cannot interpolate camera poses: no frame has a pose")
    K = np.asarray([poses[i] for i in known], dtype=np.float64)
    out: list[np.ndarray] = [None] * n  # type: ignore[list-item]
    for i in known:
        out[i] = np.asarray(poses[i], dtype=np.float64).copy()
    if len(known) == 1:
        for i in range(n):
            if out[i] is None:
                out[i] = K[0].copy()
        return out
    tk = t_all[known]
    if np.any(np.diff(tk) <= 0):
        raise ValueError("times of posed frames must be strictly increasing")
    slerp = Slerp(tk, Rotation.from_matrix(K[:, :3, :3]))
    for i in range(n):
        if out[i] is not None:
            continue
        ti = t_all[i]
        q = np.eye(4)
        if ti <= tk[0]:
            q = K[0].copy()
        elif ti >= tk[-1]:
            q = K[-1].copy()
        else:
            q[:3, :3] = slerp([ti]).as_matrix()[0]
            for d in range(3):
                q[d, 3] = np.interp(ti, tk, K[:, d, 3])
        out[i] = q
    return out
