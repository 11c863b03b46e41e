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
import logging
import math
from pathlib import Path

import numpy as np

from ..exports import frame_poses
from ..errors import InputError
from ..options import option_text
from .datasets import GroundTruthSequence, load_ground_truth
from .metrics import evaluate_depth
from .trajectory import trajectory_error

__all__ = ["evaluate_output", "read_output_depth"]

log = logging.getLogger(__name__)

COLUMNS = ["sequence", "align", "frames", "abs_rel", "delta1", "rmse", "tae", "flicker", "coverage", "head_ratio"]


def read_output_depth(folder: Path) -> tuple[list[Path], list[int]]:
    """Per-frame depth files of an output folder and the source frame index of each.

    A finished run lists its frames' source indices in ``run.json``; a run that stopped
    early (``status`` other than ``complete``) has not written them yet, so they follow from
    its ``start``/``stride`` options (frames are numbered by position in the processed
    stream). Without ``run.json`` file ``k`` is source frame ``k``.
    """
    files = sorted((folder / "depth").glob("*.npy"))
    if not files:
        raise InputError(f"{folder}: no depth/*.npy files (not a steadydepth output folder?)")
    indices = list(range(len(files)))
    info = run_info(folder)
    if info.get("frame_indices") and len(info["frame_indices"]) == len(files):
        indices = [int(i) for i in info["frame_indices"]]
    elif info.get("options"):
        start, stride = int(info["options"].get("start") or 0), int(info["options"].get("stride") or 1)
        indices = [start + k * stride for k in range(len(files))]
    return files, indices


def run_info(folder: Path) -> dict:
    """``run.json`` of an output folder (empty when there is none); InputError when it is unreadable."""
    path = folder / "run.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable run.json ({exc})") from exc


def _output_poses(folder: Path, count: int) -> list[np.ndarray | None] | None:
    path = folder / "cameras.json"
    if not path.is_file():
        return None
    frames = json.loads(path.read_text()).get("frames", [])
    poses = frame_poses(frames)
    return poses[:count] if any(p is not None for p in poses) else None


def evaluate_output(output: Path, gt_path: Path | GroundTruthSequence, *, max_depth: float | None = None) -> dict:
    """Metrics of one output folder against one ground-truth sequence, as table rows + details.

    ``gt_path`` is a ground-truth folder (read with
    :func:`~steadydepth.eval.datasets.load_ground_truth`) or a sequence already loaded.

    A run that did not finish (``run.json`` status ``running``, ``interrupted`` or ``failed``)
    is scored on the frames it wrote, with a warning; the result's ``status`` and ``partial``
    say so.
    """
    if max_depth is not None and (not math.isfinite(max_depth) or max_depth <= 0):
        raise InputError(f"{option_text('max_depth', max_depth)}: must be a positive finite depth")
    files, indices = read_output_depth(output)
    status = run_info(output).get("status", "unknown")
    partial = status not in ("complete", "unknown")
    if partial:
        log.warning("%s: run.json says the run is '%s' (it did not finish): scoring only the %d frames it wrote",
                    output, status, len(files))
    gt = gt_path if isinstance(gt_path, GroundTruthSequence) else load_ground_truth(gt_path)
    if max(indices) >= len(gt.depth):
        where = gt.name if isinstance(gt_path, GroundTruthSequence) else gt_path
        raise InputError(f"{where}: ground truth has {len(gt.depth)} frames, the output refers to frame {max(indices)}")
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
                     "coverage": m.coverage, "head_ratio": m.head_ratio})
    result = {"columns": COLUMNS, "rows": rows, "details": details, "status": status, "partial": partial}
    pred_poses = _output_poses(output, len(files))
    if pred_poses is not None and poses is not None:
        result["trajectory"] = trajectory_error(pred_poses, list(poses))
    return result
