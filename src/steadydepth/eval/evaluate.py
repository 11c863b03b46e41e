"""``steadydepth eval OUTDIR --gt GT``: score a run's output folder against ground truth.

Predictions are read from ``OUTDIR/depth/NNNNNN.npy`` (matched to ground-truth frames
through ``run.json``'s ``frame_indices``); ground truth is anything
:func:`~steadydepth.eval.datasets.load_ground_truth` reads. Rows report the field's
protocol (one scale and shift per sequence in disparity), the per-frame-aligned
variant, and — when the output has cameras and the ground truth has poses — the
trajectory error after a similarity alignment.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InputError
from .datasets import load_ground_truth
from .metrics import evaluate_depth
from .trajectory import trajectory_error

__all__ = ["evaluate_output", "read_output_depth"]

COLUMNS = ["sequence", "align", "frames", "abs_rel", "delta1", "rmse", "tae", "flicker", "coverage"]


def read_output_depth(folder: Path) -> tuple[list[Path], list[int]]:
    """Per-frame depth files of an output folder and the source frame index of each."""
    files = sorted((folder / "depth").glob("*.npy"))
    if not files:
        raise InputError(f"{folder}: no depth/*.npy files (not a steadydepth output folder?)")
    indices = list(range(len(files)))
    run = folder / "run.json"
    if run.is_file():
        info = json.loads(run.read_text())
        if info.get("frame_indices") and len(info["frame_indices"]) == len(files):
            indices = [int(i) for i in info["frame_indices"]]
    return files, indices


def _output_poses(folder: Path, count: int) -> list[np.ndarray | None] | None:
    path = folder / "cameras.json"
    if not path.is_file():
        return None
    frames = json.loads(path.read_text()).get("frames", [])
    poses = [None if f.get("pose_c2w") is None else np.asarray(f["pose_c2w"], dtype=np.float64) for f in frames]
    return poses[:count] if any(p is not None for p in poses) else None


def evaluate_output(output: Path, gt_path: Path, *, max_depth: float | None = None) -> dict:
    """Metrics of one output folder against one ground-truth sequence, as table rows + details."""
    files, indices = read_output_depth(output)
    gt = load_ground_truth(gt_path)
    if max(indices) >= len(gt.depth):
        raise InputError(f"{gt_path}: ground truth has {len(gt.depth)} frames, the output refers to frame {max(indices)}")
    gt_depth = [gt.depth[i] for i in indices]
    poses = None if gt.poses is None else np.asarray(gt.poses)[indices]
    md = max_depth if max_depth is not None else gt.max_depth

    def pred():
        return (np.load(f) for f in files)

    rows, details = [], {}
    for align in ("sequence", "frame"):
        m = evaluate_depth(pred, gt_depth, align=align, max_depth=md, intrinsics=gt.intrinsics if poses is not None else None,
                           poses=poses)
        d = m.to_dict()
        details[align] = d
        rows.append({"sequence": gt.name, "align": align, "frames": m.num_frames, "abs_rel": m.abs_rel,
                     "delta1": m.delta1, "rmse": m.rmse, "tae": m.tae, "flicker": m.flicker,
                     "coverage": getattr(m, "coverage", None)})
    result = {"columns": COLUMNS, "rows": rows, "details": details}
    pred_poses = _output_poses(output, len(files))
    if pred_poses is not None and poses is not None:
        result["trajectory"] = trajectory_error(pred_poses, list(poses))
    return result
