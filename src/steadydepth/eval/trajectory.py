"""Trajectory metrics: ATE, orientation and relative pose errors after a Sim(3) alignment.

The one ATE of the project: both benchmarks (``bench_sfm.py``, ``bench_pipeline.py``) and
``steadydepth eval`` call :func:`trajectory_error`. The alignment itself is
:func:`steadydepth.geometry.align_sim3`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError
from ..geometry import align_sim3, rotation_angle_deg

__all__ = ["trajectory_error"]


def trajectory_error(pred_c2w: Sequence[np.ndarray | None] | np.ndarray,
                     gt_c2w: Sequence[np.ndarray | None] | np.ndarray, *, with_scale: bool = True) -> dict[str, Any]:
    """Trajectory accuracy of camera-to-world poses after a Sim(3) alignment (evo-style).

    Frames where either pose is ``None`` are ignored. The predicted poses are aligned to the
    ground truth with :func:`~steadydepth.geometry.align_sim3` (scale included unless
    ``with_scale`` is False; ``alignment`` says whether the centres (``"umeyama"``) or, for
    degenerate centres, the orientations (``"orientation"``) fixed the rotation).

    Returns a dict: ``ate_rmse`` / ``ate_mean`` / ``ate_max`` (centre error after alignment,
    ground-truth units), ``rot_err_deg`` / ``rot_err_deg_mean`` / ``rot_err_deg_max``
    (median / mean / max orientation error after alignment), ``rpe_trans_rmse``,
    ``rpe_rot_deg`` (median) and ``rpe_rot_deg_mean`` (relative pose error between consecutive
    frames both posed, translation in ground-truth units after scaling; ``None`` when no such
    pair), ``scale``, ``alignment``, ``num_frames`` (used), ``num_missing`` (frames without a
    predicted pose), ``num_total``.
    """
    if len(pred_c2w) != len(gt_c2w):
        raise InputError(f"trajectory_error: {len(pred_c2w)} predicted poses but {len(gt_c2w)} ground-truth poses")
    sim = align_sim3(list(pred_c2w), list(gt_c2w), with_scale=with_scale)
    idx = [i for i, (p, g) in enumerate(zip(pred_c2w, gt_c2w)) if p is not None and g is not None]
    missing = sum(p is None for p in pred_c2w)
    A = np.asarray([sim.aligned[i] for i in idx])
    G = np.asarray([gt_c2w[i] for i in idx], dtype=np.float64)
    err = np.linalg.norm(A[:, :3, 3] - G[:, :3, 3], axis=1)
    rot = np.array([rotation_angle_deg(a[:3, :3].T @ g[:3, :3]) for a, g in zip(A, G)])
    rpe_t, rpe_r = [], []
    for j in range(len(idx) - 1):
        if idx[j + 1] != idx[j] + 1:
            continue
        rel_g = np.linalg.inv(G[j]) @ G[j + 1]
        rel_a = np.linalg.inv(A[j]) @ A[j + 1]
        E = np.linalg.inv(rel_g) @ rel_a
        rpe_t.append(float(np.linalg.norm(E[:3, 3])))
        rpe_r.append(rotation_angle_deg(E[:3, :3]))
    return {
        "ate_rmse": float(np.sqrt(np.mean(err**2))),
        "ate_mean": float(np.mean(err)),
        "ate_max": float(np.max(err)),
        "rot_err_deg": float(np.median(rot)),
        "rot_err_deg_mean": float(np.mean(rot)),
        "rot_err_deg_max": float(np.max(rot)),
        "rpe_trans_rmse": float(np.sqrt(np.mean(np.square(rpe_t)))) if rpe_t else None,
        "rpe_rot_deg": float(np.median(rpe_r)) if rpe_r else None,
        "rpe_rot_deg_mean": float(np.mean(rpe_r)) if rpe_r else None,
        "scale": float(sim.s),
        "alignment": sim.method,
        "num_frames": len(idx),
        "num_missing": missing,
        "num_total": len(pred_c2w),
    }
