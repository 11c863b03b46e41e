"""The output folder of one run, written as frames finish.

Layout (a public contract; other tools read it)::

    OUTDIR/depth/000000.npy        float32 (H, W) z-depth at the output resolution, 0 = invalid
    OUTDIR/confidence/000000.npy   float16 (H, W) in [0, 1]
    OUTDIR/depth_png16/000000.png  optional: uint16 = round(depth * png_scale), 0 = invalid
    OUTDIR/depth_exr/000000.exr    optional: float32 depth, one channel 'Y' (see io.depth_files)
    OUTDIR/points/000000.ply       optional: coloured points of the frame (world coordinates when posed)
    OUTDIR/depth.npz               depth (T, H, W) float32, confidence (T, H, W) float16,
                                   valid (T, H, W) bool, units, frame_indices, K, poses (T, 4, 4; NaN = none)
    OUTDIR/depth_vis.mp4           colour-mapped depth, one value range for the whole clip, <= 1920 px long side
    OUTDIR/cameras.json            intrinsics + camera-to-world pose per frame (null where unknown)
    OUTDIR/colmap/                 cameras.txt, images.txt, points3D.txt (when SfM ran)
    OUTDIR/sparse.ply              SfM points (when SfM ran)
    OUTDIR/scene.ply               fused scene: coloured triangle mesh, world coordinates (when poses exist)
    OUTDIR/scene.glb               the same mesh as binary glTF (node turned 180 deg about x: y up)
    OUTDIR/scene_points.ply        the fused scene as points, one per surface voxel
    OUTDIR/run.json                versions, options, timings per stage, frame count, warnings, status
    OUTDIR/.resume/                until the run completes: what resuming it needs (see steadydepth.resume)
    OUTDIR/.previous/              with --overwrite: the run being replaced, until this run writes its
                                   first frame (put back if this run fails before that)

Frames are numbered by their position in the processed stream (after range and stride);
``frame_indices`` maps them to source frames. Every file is written under a temporary
name and renamed, so an interrupted run leaves only complete files, and ``run.json``
says ``"status": "running"`` until the run has finished.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import OutputError
from .io.atomic import atomic_path, atomic_write_json
from .io.depth_files import DEPTH_FORMATS, write_depth, write_npz_stream
from .options import option_text
from .previous_run import settle_previous_run
from .types import Cameras, Intrinsics

__all__ = ["OutputFolder", "RUN_MARKERS"]

log = logging.getLogger(__name__)

#: entries whose presence means "this folder already holds a run"
RUN_MARKERS = ("run.json", "depth.npz", *(folder for folder, _ in DEPTH_FORMATS.values()), "confidence",
               "points", "depth_vis.mp4", "cameras.json", "colmap", "sparse.ply", "scene.ply", "scene.glb",
               "scene_points.ply", ".work", ".resume")
#: where :meth:`OutputFolder.prepare` keeps the run being replaced until the new one writes a frame
PREVIOUS = ".previous"


class OutputFolder:
    """Creates, checks and fills ``OUTDIR`` (see module docstring)."""

    def __init__(self, root: str | Path, *, overwrite: bool = False, resume: bool = False) -> None:
        self.root = Path(root).expanduser()
        self.overwrite = overwrite
        #: continue the interrupted run in the folder (:mod:`steadydepth.resume`): nothing is refused or set aside
        self.resume = resume

    # -- set-up -----------------------------------------------------------------------
    def prepare(self) -> None:
        """Create the folder; refuse one that holds another run unless ``overwrite``, which sets
        that run aside in ``.previous/`` (see :meth:`discard_previous`, :meth:`restore_previous`)."""
        root = self.root
        make_output_folder(root)
        settle_previous_run(root, self.overwrite, resume=self.resume)  # a live run refuses; stale files go
        if (root / PREVIOUS).is_dir() and not _has_frames(root):
            self.restore_previous()  # a replacing run that stopped before its first frame: the old run is back
        probe = root / ".steadydepth-write-test"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise OutputError(f"{root}: output folder is not writable ({exc.strerror or exc})") from exc
        found = [name for name in RUN_MARKERS if (root / name).exists()]
        if found and not self.resume:
            if not self.overwrite:
                raise OutputError(
                    f"{root}: folder already holds a run ({', '.join(found)}); "
                    f"pass {option_text('overwrite', True)} to replace it, or choose another folder"
                )
            self._set_aside(found)

    def _set_aside(self, found: list[str]) -> None:
        """Move the run being replaced into ``.previous/``. When ``.previous/`` is already there
        (a replacing run stopped before its first frame), it stays and that attempt is dropped."""
        backup = self.root / PREVIOUS
        if backup.is_dir() and not _has_frames(self.root):
            for name in found:
                _remove(self.root / name)
            return
        if backup.exists():
            _remove(backup)
        backup.mkdir()
        for name in found:
            (self.root / name).rename(backup / name)

    def discard_previous(self) -> None:
        """Delete the replaced run (called once this run has written its first frame)."""
        if (self.root / PREVIOUS).exists():
            _remove(self.root / PREVIOUS)

    def restore_previous(self) -> bool:
        """Put back the run that :meth:`prepare` set aside, removing this run's files; False when
        there is none (no run was replaced, or this run has already written frames)."""
        backup = self.root / PREVIOUS
        if not backup.is_dir():
            return False
        for name in RUN_MARKERS:
            if (self.root / name).exists():
                _remove(self.root / name)
        for entry in backup.iterdir():
            entry.rename(self.root / entry.name)
        backup.rmdir()
        return True

    @property
    def work_dir(self) -> Path:
        """Scratch space for intermediate files (SfM database, images); removed at the end."""
        path = self.root / ".work"
        path.mkdir(exist_ok=True)
        return path

    def cleanup(self) -> None:
        shutil.rmtree(self.root / ".work", ignore_errors=True)

    # -- per frame --------------------------------------------------------------------
    def depth_path(self, position: int, fmt: str = "npy") -> Path:
        folder, suffix = DEPTH_FORMATS[fmt]
        return self.root / folder / f"{position:06d}{suffix}"

    def confidence_path(self, position: int) -> Path:
        return self.root / "confidence" / f"{position:06d}.npy"

    def write_frame(self, position: int, depth: np.ndarray, confidence: np.ndarray, *,
                    formats: tuple[str, ...] = ("npy",), png_scale: float = 1000.0) -> int:
        """Write one frame's depth in every requested format; return the number of PNG-clipped pixels.
        The first frame replaces the run set aside by :meth:`prepare` (it is deleted)."""
        if position == 0:
            self.discard_previous()
        clipped = 0
        for fmt in formats:
            path = self.depth_path(position, fmt)
            path.parent.mkdir(exist_ok=True)
            n = write_depth(path, depth, fmt, png_scale=png_scale)
            clipped += int(n or 0)
        conf_path = self.confidence_path(position)
        conf_path.parent.mkdir(exist_ok=True)
        write_depth_like(conf_path, confidence.astype(np.float16))
        return clipped

    def read_frame(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        depth = np.load(self.depth_path(position))
        confidence = np.load(self.confidence_path(position)).astype(np.float32)
        return depth, confidence

    def iter_depth(self, count: int) -> Iterator[np.ndarray]:
        for i in range(count):
            yield np.load(self.depth_path(i))

    # -- end of run ---------------------------------------------------------------------
    def write_npz(self, count: int, shape: tuple[int, int], *, units: str, frame_indices: list[int],
                  cameras: Cameras | None, intrinsics: Intrinsics | None) -> Path:
        """Assemble ``depth.npz`` from the per-frame files, one frame in memory at a time."""
        h, w = shape
        poses = np.full((count, 4, 4), np.nan, dtype=np.float64)
        pose_source = np.full(count, "", dtype="<U16")  # "" where there is no pose
        if cameras is not None:
            for i, pose in enumerate(cameras.poses[:count]):
                if pose is not None:
                    poses[i] = pose
                    pose_source[i] = cameras.pose_source(i)
        K = intrinsics.K if intrinsics is not None else np.full((3, 3), np.nan)
        path = self.root / "depth.npz"
        write_npz_stream(
            path,
            {
                "depth": ((np.load(self.depth_path(i)) for i in range(count)), (count, h, w), np.float32),
                "confidence": ((np.load(self.confidence_path(i)) for i in range(count)), (count, h, w), np.float16),
                "valid": ((np.load(self.depth_path(i)) > 0 for i in range(count)), (count, h, w), np.bool_),
            },
            {
                "units": np.array(units),
                "frame_indices": np.asarray(frame_indices, dtype=np.int64),
                "K": K,
                "k1": np.float64(intrinsics.k1 if intrinsics is not None else np.nan),
                "poses": poses,
                "pose_source": pose_source,
            },
        )
        return path

    def write_json(self, name: str, obj: dict) -> Path:
        path = self.root / name
        atomic_write_json(path, obj)
        return path


def make_output_folder(root: Path) -> None:
    """Create the output folder ``root`` (and its parents); :class:`OutputError` naming it when the
    path is a file or cannot be created."""
    if root.exists() and not root.is_dir():
        raise OutputError(f"{root}: output path exists and is not a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{root}: cannot create output folder ({exc.strerror or exc})") from exc


def _remove(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def _has_frames(root: Path) -> bool:
    depth = root / "depth"
    return depth.is_dir() and any(depth.iterdir())


def write_depth_like(path: Path, array: np.ndarray) -> None:
    """Atomic ``np.save`` of a small per-frame array."""
    with atomic_path(path) as tmp:
        np.save(tmp, array)
