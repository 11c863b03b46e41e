"""Starting an animation from a frame of a processed steadydepth run, and filling the hidden
parts of its layers from the other frames of the clip instead of inventing them.

A run folder (see :mod:`steadydepth.outputs`) holds per-frame depth (``depth/NNNNNN.npy`` or
``depth.npz``), the cameras (``cameras.json``) and, in ``run.json``, the input it was made from;
its images are read again from that input (same range and stride).

Filling (:func:`clip_band_filler`): each neighbouring frame's image is meshed (cut at its depth
discontinuities, :mod:`~steadydepth.animate.layers`) and rasterised into the start frame's
camera keeping only the surfaces *behind* the start frame's own depth (depth peeling): what the
neighbour sees there is what the start frame's foreground hides. Over all neighbours the nearest
such surface wins. Each neighbour's colours are first matched to the start frame by one gain per
channel (the median ratio on the pixels both see at the same depth), since exposure drifts.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..exports import frame_poses
from ..types import Intrinsics
from .layers import discontinuities, fill_depth_from_background, grid_triangles, camera_points, diagonal_ok
from .raster import MeshLayer, rasterize_layers

__all__ = ["RunFrame", "read_run", "clip_band_filler", "pick_neighbours"]

log = logging.getLogger(__name__)


@dataclass
class RunFrame:
    """One frame of a run: ``image`` uint8 ``(H, W, 3)``, ``depth`` ``(H, W)``, ``pose_c2w`` 4x4."""

    position: int
    image: np.ndarray
    depth: np.ndarray
    pose_c2w: np.ndarray


def _run_poses(run: Path) -> tuple[Intrinsics, list[np.ndarray | None]]:
    path = run / "cameras.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: the run folder has no cameras.json (was it made by 'steadydepth run'?)") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from exc
    d = data.get("intrinsics")
    if not isinstance(d, dict):
        raise InputError(f"{path}: the run has no intrinsics; --from-run needs a run with cameras")
    intr = Intrinsics.from_dict(d)
    poses = frame_poses(data["frames"])
    return intr, poses


def _run_depth(run: Path, position: int) -> np.ndarray:
    f = run / "depth" / f"{position:06d}.npy"
    if f.is_file():
        return np.load(f).astype(np.float32)
    npz = run / "depth.npz"
    if npz.is_file():
        with np.load(npz) as z:
            return np.asarray(z["depth"][position], np.float32)
    raise InputError(f"{run}: no depth for frame {position} (neither depth/{position:06d}.npy nor depth.npz)")


def pick_neighbours(position: int, count: int, poses: list[np.ndarray | None], *, radius: int = 16,
                    limit: int = 6) -> list[int]:
    """Up to ``limit`` posed frames within ``radius`` of ``position``, spread evenly on both sides."""
    cands = [p for p in range(max(0, position - radius), min(count, position + radius + 1))
             if p != position and poses[p] is not None]
    if len(cands) <= limit:
        return cands
    pick = np.linspace(0, len(cands) - 1, limit).round().astype(int)
    return [cands[i] for i in sorted(set(pick.tolist()))]


def read_run(run_dir: str | Path, position: int, *, radius: int = 16, limit: int = 6
             ) -> tuple[RunFrame, list[RunFrame], Intrinsics]:
    """The start frame ``position`` of the run in ``run_dir`` and up to ``limit`` neighbours within
    ``radius`` frames (images decoded again from the run's input), with the run's intrinsics."""
    from ..io.frames import open_source

    run = Path(run_dir)
    info_path = run / "run.json"
    if not info_path.is_file():
        raise InputError(f"{run}: not a steadydepth run folder (no run.json)")
    try:
        info = json.loads(info_path.read_text())
        src = info["input"]
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{info_path}: cannot read the run's input ({exc})") from exc
    intr, poses = _run_poses(run)
    count = len(poses)
    if not 0 <= position < count:
        raise InputError(f"--frame {position}: the run has frames 0..{count - 1}")
    if poses[position] is None:
        raise InputError(f"--frame {position}: that frame of the run has no camera pose")
    wanted = [position] + pick_neighbours(position, count, poses, radius=radius, limit=limit)
    source = open_source(src["path"], start=src.get("start") or 0, stop=src.get("stop"), stride=src.get("stride") or 1)
    images: dict[int, np.ndarray] = {}
    for i, frame in enumerate(source):
        if i in wanted:
            images[i] = frame.image
        if len(images) == len(wanted) or i > max(wanted):
            break
    if position not in images:
        raise InputError(f"{src['path']}: cannot read frame {position} of the run's input again")
    frames = []
    for p in wanted:
        if p not in images:
            continue
        depth = _run_depth(run, p)
        img = images[p]
        if img.shape[:2] != depth.shape:
            img = cv2.resize(img, (depth.shape[1], depth.shape[0]), interpolation=cv2.INTER_AREA)
        frames.append(RunFrame(p, img, depth, poses[p]))
    if intr.width != frames[0].depth.shape[1]:
        intr = intr.scaled(frames[0].depth.shape[1], frames[0].depth.shape[0])
    if intr.k1 != 0.0:
        log.warning("%s: the run's camera has radial distortion k1=%.3g; animate treats it as a pinhole camera",
                    run, intr.k1)
    return frames[0], frames[1:], intr


def _mesh(frame: RunFrame, K: np.ndarray, edge: float) -> MeshLayer:
    d = fill_depth_from_background(frame.depth, np.zeros(frame.depth.shape, bool))
    cut_x, cut_y, _ = discontinuities(d, edge)
    h, w = d.shape
    tris = grid_triangles(frame.depth > 0, cut_x, cut_y, diagonal_ok(d, cut_x, cut_y, edge))
    attrs = frame.image.reshape(-1, 3).astype(np.float32) / 255.0
    return MeshLayer(camera_points(d, K, 0), attrs, tris, frame.pose_c2w, "neighbour")


def clip_band_filler(start: RunFrame, neighbours: list[RunFrame], K: np.ndarray, *, edge: float = 0.04,
                     tol: float = 0.02):
    """A ``fill_band`` for :func:`~steadydepth.animate.layers.build_layers`: the start frame's hidden
    background band from the neighbouring frames (see module docstring)."""

    def fill(cimg: np.ndarray, dpad: np.ndarray, F: np.ndarray, near: np.ndarray):
        h, w = dpad.shape
        pad = (w - start.image.shape[1]) // 2
        Kp = np.asarray(K, np.float64).copy()
        Kp[0, 2] += pad
        Kp[1, 2] += pad
        best_d = np.full((h, w), np.inf, np.float32)
        best_c = np.zeros((h, w, 3), np.float32)
        for nb in neighbours:
            mesh = _mesh(nb, K, edge)
            seen = rasterize_layers([mesh], Kp, start.pose_c2w, w, h, alpha_channel=None)
            same = seen.covered & (np.abs(seen.depth - dpad) < tol * dpad)
            ref = cimg.astype(np.float32) / 255.0
            gain = np.ones(3, np.float32)
            if same.sum() > 100:
                gain = np.median(ref[same] / np.maximum(seen.attrs[same], 1e-3), axis=0).astype(np.float32)
            peel = rasterize_layers([mesh], Kp, start.pose_c2w, w, h, alpha_channel=None, behind=dpad * (1.0 + edge))
            take = peel.covered & F & (peel.depth < best_d)
            best_d[take] = peel.depth[take]
            best_c[take] = peel.attrs[take] * gain
        known = np.isfinite(best_d) & F
        colour = np.clip(np.rint(best_c * 255.0), 0, 255).astype(np.uint8)
        log.info("background band: %.1f %% of its pixels seen in %d other frames of the clip", 100.0 * known.sum()
                 / max(1, F.sum()), len(neighbours))
        return colour, np.where(known, best_d, 0.0).astype(np.float32), known

    return fill
