"""Structure from motion of a long shot in overlapping chunks, merged into one world and scale.

:func:`plan_chunks` cuts a shot longer than ``ChunkPolicy.above_frames`` into spans of
``keyframes`` keyframe candidates (of the online
:class:`~steadydepth.cameras.keyframes.KeyframeSelector`), consecutive spans sharing
``overlap`` candidates and every frame between them. :func:`reconstruct_chunked` maps and
registers each span on its own (the same steps as a short clip, in
``sfm_dir/chunks/NNN``), so the work and memory of one chunk do not depend on the clip
length, and merges them:

* the first chunk fixes the world and the camera (its intrinsics, radial term included,
  are held fixed in the later chunks: one camera for the clip);
* chunk ``k`` is moved onto the merged trajectory by the similarity (Sim(3),
  :func:`overlap_sim3`: rotation from the camera orientations, scale and translation least
  squares on the camera centres) that best maps its poses of the shared frames onto those
  already merged. The chunks form a chain (each
  overlap links two consecutive chunks), so this chained solution is also the least-squares
  optimum of the joint pose graph over all overlaps (each overlap's residual depends on the
  one free similarity of the newer chunk); the residual at each boundary is reported;
* on the shared frames the two estimates are blended (centres linearly, rotations by slerp,
  the weight moving from the older chunk to the newer one), so no pose jumps at a boundary;
* the whole clip is scaled once so that the median of the chunks' scene-depth scales is 1
  (each chunk's own model has median keyframe depth 1): one scale for the clip.

A chunk whose mapping fails, or an overlap with fewer than 3 frames posed in both chunks,
falls back to reconstructing the shot at once, with a warning.

Conventions as in :mod:`steadydepth.cameras.sfm` (camera-to-world, OpenCV axes).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from ..errors import InputError, OutputError
from ..geometry import Sim3, nearest_rotation
from ..types import Cameras
from .keyframes import KeyframePolicy, select_keyframes
from .sfm_mapping import _image_name
from .sfm_settings import ChunkPolicy

__all__ = ["plan_chunks", "reconstruct_chunked", "overlap_sim3", "link_span", "add_timings"]

log = logging.getLogger(__name__)

#: pose sources measured by the chunk itself (the others are filled in)
_MEASURED = ("mapped", "tracked")


def link_span(images_dir: Path, folder: Path, lo: int, hi: int) -> Path:
    """``folder/images`` holding frames ``lo .. hi-1`` of ``images_dir`` renumbered from 0 (hard
    links where the file system allows, else copies); returns that images folder."""
    dst = folder / "images"
    try:
        dst.mkdir(parents=True, exist_ok=True)
        for p in range(lo, hi):
            target = dst / _image_name(p - lo)
            if target.exists():
                target.unlink()
            try:
                os.link(images_dir / _image_name(p), target)
            except OSError:
                shutil.copyfile(images_dir / _image_name(p), target)
    except OSError as exc:
        raise OutputError(f"cannot prepare the SfM work folder {dst}: {exc}") from exc
    return dst


def add_timings(total: dict, part: dict) -> None:
    """Add the numbers of one reconstruction's ``timings`` into ``total`` (seconds and counts add up)."""
    for key, value in part.items():
        if isinstance(value, (int, float)):
            total[key] = total.get(key, 0) + value


def plan_chunks(candidates: list[int], num_frames: int, policy: KeyframePolicy,
                chunks: ChunkPolicy) -> list[tuple[int, int]]:
    """Frame spans ``(start, stop)`` (stop excluded) of the chunks of a shot of ``num_frames``
    frames with keyframe candidates ``candidates``; one span ``(0, num_frames)`` when the shot
    is not chunked. Consecutive spans overlap by ``chunks.overlap`` candidates."""
    n = num_frames
    if chunks.above_frames == 0 or n <= chunks.above_frames:
        return [(0, n)]
    size = chunks.keyframes or policy.max_keyframes
    if size < 2 * chunks.overlap:
        raise InputError(f"chunked SfM: {size} keyframes per chunk is less than twice the overlap {chunks.overlap}")
    cands = sorted({c for c in candidates if 0 <= c < n} | {0, n - 1})
    if len(cands) <= size + size // 2:
        return [(0, n)]
    step = size - chunks.overlap
    spans: list[tuple[int, int]] = []
    s = 0
    while True:
        e = s + size - 1  # the chunk's last candidate
        if e >= len(cands) - 1 - size // 2:  # what would remain is short: this chunk runs to the end
            spans.append((cands[s], n))
            return spans
        spans.append((cands[s], cands[e] + 1))
        s += step


def _blend(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    """Pose between camera-to-world ``a`` (w = 0) and ``b`` (w = 1): lerp of centres, slerp of rotations."""
    rots = Rotation.from_matrix(np.stack([a[:3, :3], b[:3, :3]]))
    out = np.eye(4)
    out[:3, :3] = Slerp([0.0, 1.0], rots)([w]).as_matrix()[0]
    out[:3, 3] = (1 - w) * a[:3, 3] + w * b[:3, 3]
    return out


class ChunkFailure(Exception):
    """A chunk could not be reconstructed or aligned (the caller falls back to one reconstruction)."""


Reconstruct = Callable[[Path, Path, list[int], list[int], Any], Cameras]


def reconstruct_chunked(images_dir: Path, sfm_dir: Path, indices: list[int], candidates: list[int],
                        plan: list[tuple[int, int]], job: Any, reconstruct: Reconstruct) -> Cameras:
    """Cameras of a shot (frames ``0 .. len(indices)-1`` of ``images_dir``) from the chunks ``plan``.

    ``job`` is the clip's reconstruction settings (``sfm._Job``) and ``reconstruct(images,
    sfm_dir, indices, keyframes, job)`` reconstructs one span. Returns one
    :class:`~steadydepth.types.Cameras` in one world and scale, with ``shots`` holding one
    entry whose ``chunks`` lists each boundary (shared frames, similarity scale, centre
    residual in scene units and relative to the overlap's path length, rotation residual).
    """
    try:
        return _merge_chunks(images_dir, sfm_dir, indices, candidates, plan, job, reconstruct)
    except ChunkFailure as exc:
        note = (f"sfm: chunked reconstruction failed ({exc}); the shot of {len(indices)} frames was "
                "reconstructed at once")
        log.warning(note)
        part = replace(job, timings={})
        cams = reconstruct(images_dir, sfm_dir, indices, select_keyframes(candidates, len(indices), job.cfg.keyframes),
                           part)
        add_timings(job.timings, part.timings)
        cams.warnings.insert(0, note)
        return cams


def _merge_chunks(images_dir: Path, sfm_dir: Path, indices: list[int], candidates: list[int],
                  plan: list[tuple[int, int]], job: Any, reconstruct: Reconstruct) -> Cameras:
    n = len(indices)
    poses: list[np.ndarray | None] = [None] * n
    sources: list[str | None] = [None] * n
    points, colors, warnings, boundaries, scales = [], [], [], [], []
    first: Cameras | None = None
    prev_stop = 0
    log.info("SfM: %d frames in %d overlapping chunks", n, len(plan))
    for k, (lo, hi) in enumerate(plan):
        folder = sfm_dir / "chunks" / f"{k:03d}"
        chunk_images = link_span(images_dir, folder, lo, hi)
        kf = select_keyframes([c - lo for c in candidates if lo <= c < hi], hi - lo, job.cfg.keyframes)
        part = (replace(job, timings={}) if first is None else
                replace(job, timings={}, K=first.intrinsics, k1_known=True))
        log.info("SfM: chunk %d/%d, frames %d-%d, %d keyframes", k + 1, len(plan), indices[lo], indices[hi - 1],
                 len(kf))
        cams = reconstruct(chunk_images, folder / "sfm", indices[lo:hi], kf, part)
        add_timings(job.timings, part.timings)
        if cams.no_parallax:
            raise ChunkFailure(f"chunk {k + 1} (frames {indices[lo]}-{indices[hi - 1]}): {cams.no_parallax}")
        src = [cams.pose_source(p) for p in range(hi - lo)]
        if first is None:
            first, sim_s, sim = cams, 1.0, None
            moved = list(cams.poses)
        else:
            shared = range(lo, prev_stop)
            pred = [cams.poses[p - lo] if src[p - lo] in _MEASURED else None for p in shared]
            ref = [poses[p] if sources[p] in _MEASURED else None for p in shared]
            pairs = sum(a is not None and b is not None for a, b in zip(pred, ref))
            if pairs < 3:
                raise ChunkFailure(f"chunks {k} and {k + 1} share only {pairs} frames posed in both")
            sim = overlap_sim3(pred, ref)
            sim_s = sim.s
            moved = [None if P is None else sim.apply_to_pose(P) for P in cams.poses]
            boundaries.append(_boundary(k, indices, shared, [moved[p - lo] for p in shared], ref, sim))
        scales.append(sim_s)
        for p in range(lo, hi):
            new, new_src = moved[p - lo], src[p - lo]
            if p < prev_stop:  # shared with the previous chunk: blend where both measured it
                w = (p - lo + 1) / (prev_stop - lo + 1)
                if sources[p] in _MEASURED and new_src in _MEASURED:
                    poses[p] = _blend(poses[p], new, w)
                    sources[p] = "mapped" if "mapped" in (sources[p], new_src) else "tracked"
                elif new_src in _MEASURED or poses[p] is None:
                    poses[p], sources[p] = new, new_src
                continue
            poses[p], sources[p] = new, new_src
        if cams.points is not None and len(cams.points):
            pts = cams.points if sim is None else sim.s * cams.points @ sim.R.T + sim.t
            points.append(pts)
            colors.append(cams.colors)
        warnings.extend(w for w in cams.warnings if w not in warnings)
        prev_stop = hi
    assert first is not None
    # one scale for the clip: each chunk's model had median keyframe depth 1, here it is
    # scales[k] (the first chunk's gauge); make the median over the chunks 1
    unit = 1.0 / float(np.median(scales))
    for P in poses:
        if P is not None:
            P[:3, 3] *= unit
    for b in boundaries:
        b["residual"] = round(b["residual"] * unit, 6)
    pts = np.concatenate(points) * unit if points else np.zeros((0, 3))
    cols = np.concatenate(colors) if colors else np.zeros((0, 3), np.uint8)
    worst = max((b["residual_rel"] or 0.0 for b in boundaries), default=0.0)
    log.info("SfM: %d chunks merged; chunk scales %s; largest boundary residual %.3g of the overlap's path",
             len(plan), [round(s * unit, 3) for s in scales], worst)
    shot = {"start": 0, "stop": n, "units": "scene (median keyframe depth of the chunks 1)",
            "chunks": [{"start": lo, "stop": hi} for lo, hi in plan], "boundaries": boundaries}
    job.timings["num_chunks"] = len(plan)
    return Cameras(intrinsics=first.intrinsics, poses=poses, frame_indices=list(indices), points=pts, colors=cols,
                   units="scene", source="pycolmap", warnings=warnings, pose_sources=sources, shots=[shot])


def overlap_sim3(pred: list[np.ndarray | None], ref: list[np.ndarray | None]) -> Sim3:
    """The similarity moving the newer chunk's camera-to-world poses ``pred`` onto the merged
    ``ref`` (frames where either is ``None`` left out, 3 at least).

    The rotation is the chordal mean of ``R_ref R_pred^T`` over the shared frames: camera
    orientations fix it well even when the shared centres lie almost on a line (a short
    overlap of a smooth path), where centre-based Umeyama leaves the rotation about that line
    loose. Scale and translation are then least squares on the centres."""
    pairs = [(np.asarray(a, np.float64), np.asarray(b, np.float64)) for a, b in zip(pred, ref)
             if a is not None and b is not None]
    R = nearest_rotation(sum(b[:3, :3] @ a[:3, :3].T for a, b in pairs))
    cp = np.array([a[:3, 3] for a, _ in pairs]) @ R.T
    cr = np.array([b[:3, 3] for _, b in pairs])
    xs, xd = cp - cp.mean(0), cr - cr.mean(0)
    den = float(np.sum(xs**2))
    s = float(np.sum(xs * xd) / den) if den > 1e-300 else 1.0
    if not s > 0:
        raise ChunkFailure("the shared frames give no positive scale between the chunks")
    return Sim3(s=s, R=R, t=cr.mean(0) - s * cp.mean(0), method="orientation")


def _boundary(k: int, indices: list[int], shared: range, moved: list, ref: list, sim) -> dict:
    """Residual of the similarity at the boundary before chunk ``k`` (0-based), in the first chunk's units."""
    pairs = [(a, b) for a, b in zip(moved, ref) if a is not None and b is not None]
    err = np.array([np.linalg.norm(a[:3, 3] - b[:3, 3]) for a, b in pairs])
    rot = [np.degrees(np.linalg.norm(Rotation.from_matrix(a[:3, :3].T @ b[:3, :3]).as_rotvec())) for a, b in pairs]
    centres = np.array([b[:3, 3] for _, b in pairs])
    path = float(np.linalg.norm(np.diff(centres, axis=0), axis=1).sum()) if len(centres) > 1 else 0.0
    rms = float(np.sqrt(np.mean(err**2)))
    return {"chunk": k, "frames": [indices[shared.start], indices[shared.stop - 1]], "shared": len(pairs),
            "scale": round(float(sim.s), 6), "residual": rms,
            "residual_rel": round(rms / path, 6) if path > 0 else None,
            "rot_deg": round(float(np.median(rot)), 4)}
