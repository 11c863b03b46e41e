"""A finished (or partly finished) run folder, read back for viewing.

:class:`RunData` checks that a folder holds a run (``run.json``, ``cameras.json`` and
``depth/000000.npy``), reads its cameras, and gives per frame what a viewer shows:

* :meth:`RunData.points` -- the frame's coloured point cloud in **world** coordinates
  (camera-to-world poses of ``cameras.json``, OpenCV axes), unprojected from
  ``depth/NNNNNN.npy`` through the run's intrinsics (``k1`` included) by
  :func:`~steadydepth.io.ply.depth_to_points`, every ``stride``-th pixel;
* :meth:`RunData.image` -- the input frame (re-read from the input named in ``run.json``)
  on that same subsampled pixel grid;
* :meth:`RunData.depth_rgb` -- the depth on that grid, colour-mapped with one range for the
  whole clip (:mod:`steadydepth.scene.colormap`).

Memory stays bounded in clip length: only the subsampled input images of at most
``max_frames`` frames are kept (a longer clip is shown every k-th frame); depth is read
from its file when a frame is shown.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..exports import frame_poses
from ..types import Intrinsics

__all__ = ["RunData", "SCENE_FILES", "grid_stride"]

log = logging.getLogger(__name__)

#: the fused scene's files, in the order a viewer prefers them (written by the scene stage when it ran)
SCENE_FILES = ("scene.glb", "scene.ply", "scene_points.ply")


def grid_stride(width: int, height: int, max_points: int) -> int:
    """The smallest pixel stride ``s`` with ``ceil(W/s) * ceil(H/s) <= max_points``."""
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    s = max(1, int(math.floor(math.sqrt(width * height / max_points))))
    while math.ceil(width / s) * math.ceil(height / s) > max_points:
        s += 1
    return s


@dataclass
class FramePoints:
    """One frame's points: ``points`` (N, 3) float32 world coordinates, ``colors`` (N, 3) uint8."""

    points: np.ndarray
    colors: np.ndarray


class RunData:
    """A run folder opened for viewing (see module docstring).

    ``max_points`` bounds the points drawn per frame (the pixel stride follows from it);
    ``max_frames`` bounds the frames kept for playback (every k-th frame of a longer run).
    Raises :class:`InputError` naming the folder when it is not a run.
    """

    def __init__(self, folder: str | Path, *, max_points: int = 40_000, max_frames: int = 600) -> None:
        self.folder = Path(folder).expanduser()
        root = self.folder
        if not root.is_dir():
            raise InputError(f"{root}: no such run folder")
        missing = [name for name in ("run.json", "cameras.json") if not (root / name).is_file()]
        if missing or not (root / "depth" / "000000.npy").is_file():
            what = ", ".join(missing + ([] if (root / "depth" / "000000.npy").is_file() else ["depth/000000.npy"]))
            raise InputError(f"{root}: not a steadydepth run folder (missing {what}); "
                             "pass the folder given to 'steadydepth run -o'")
        try:
            self.run = json.loads((root / "run.json").read_text())
            cams = json.loads((root / "cameras.json").read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{root}: run.json or cameras.json cannot be read ({exc})") from exc
        if not cams.get("intrinsics"):
            raise InputError(f"{root}/cameras.json: the run has no intrinsics, so its depth cannot be placed in 3D")
        i = cams["intrinsics"]
        self.units = str(cams.get("units") or self.run.get("units") or "scene")
        first = np.load(root / "depth" / "000000.npy", mmap_mode="r")
        h, w = first.shape
        self.size = (w, h)
        self.intrinsics = Intrinsics.from_dict(i)
        if (self.intrinsics.width, self.intrinsics.height) != (w, h):
            self.intrinsics = self.intrinsics.scaled(w, h)
        frames = cams.get("frames") or []
        count = 0
        while (root / "depth" / f"{count:06d}.npy").is_file():
            count += 1
        count = min(count, len(frames)) if frames else count
        self.poses: list[np.ndarray | None] = frame_poses(frames[:count]) + [None] * max(0, count - len(frames))
        self.num_frames = count
        self.step = max(1, math.ceil(count / max_frames))
        self.shown = list(range(0, count, self.step))  # positions that playback visits
        if self.step > 1:
            log.info("%s: %d frames; showing every %d-th (%d frames)", root, count, self.step, len(self.shown))
        self.stride = grid_stride(w, h, max_points)
        self.fps = float((self.run.get("input") or {}).get("fps") or 10.0)
        from ..scene.colormap import robust_range

        depth_files = (np.load(self.depth_path(p)) for p in self.shown)
        try:
            self.depth_range = robust_range(depth_files)
        except ValueError:
            self.depth_range = (1.0, 2.0)
            log.warning("%s: no frame has valid depth; nothing will be drawn", root)
        self._images: dict[int, np.ndarray] = {}
        self._read_images()

    # -- files ------------------------------------------------------------------------
    def depth_path(self, position: int) -> Path:
        return self.folder / "depth" / f"{position:06d}.npy"

    def scene_files(self) -> dict[str, Path]:
        """The fused scene's files present in the run (name -> path), see :data:`SCENE_FILES`."""
        return {name: self.folder / name for name in SCENE_FILES if (self.folder / name).is_file()}

    @property
    def grid_size(self) -> tuple[int, int]:
        """``(w, h)`` of the subsampled pixel grid (every ``stride``-th pixel)."""
        w, h = self.size
        return math.ceil(w / self.stride), math.ceil(h / self.stride)

    def _read_images(self) -> None:
        """Decode the input once, keeping each shown frame's image on the subsampled grid."""
        from ..errors import SteadyDepthError
        from ..io.frames import open_source

        info = self.run.get("input") or {}
        path = info.get("path")
        if not path or info.get("kind") == "array":
            log.warning("%s: the run's input is not a file (%s); points are coloured by depth", self.folder, path)
            return
        try:
            source = open_source(path, start=int(info.get("start") or 0), stop=info.get("stop"),
                                 stride=int(info.get("stride") or 1))
            wanted = set(self.shown)
            for position, frame in enumerate(source):
                if position >= self.num_frames:
                    break
                if position in wanted:
                    self._images[position] = self._to_grid(frame.image)
        except (SteadyDepthError, OSError) as exc:
            log.warning("%s: cannot read the run's input %s (%s); points are coloured by depth", self.folder, path, exc)
            self._images.clear()

    def _to_grid(self, image: np.ndarray) -> np.ndarray:
        import cv2

        w, h = self.size
        if image.shape[:2] != (h, w):
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(image[::self.stride, ::self.stride])

    @property
    def has_images(self) -> bool:
        return bool(self._images)

    # -- per frame --------------------------------------------------------------------
    def depth(self, position: int) -> np.ndarray:
        """The frame's full-resolution depth ``(H, W)`` float32 (0 = invalid)."""
        return np.load(self.depth_path(position))

    def image(self, position: int) -> np.ndarray | None:
        """The input frame on the subsampled grid ``(h, w, 3)`` uint8, None when the input is unavailable."""
        return self._images.get(position)

    def depth_rgb(self, position: int, depth: np.ndarray | None = None) -> np.ndarray:
        """The frame's depth on the subsampled grid, colour-mapped (inferno on disparity, one range for the clip)."""
        from ..scene.colormap import colorize_depth

        d = self.depth(position) if depth is None else depth
        return colorize_depth(d[::self.stride, ::self.stride], *self.depth_range)

    def points(self, position: int, color_by: str = "image") -> FramePoints | None:
        """The frame's points in world coordinates, coloured by ``"image"`` or ``"depth"``;
        None when the frame has no pose (its points cannot be placed in the world)."""
        from ..io.ply import depth_to_points

        if color_by not in ("image", "depth"):
            raise ValueError(f"color_by must be 'image' or 'depth', got {color_by!r}")
        pose = self.poses[position]
        if pose is None or not np.all(np.isfinite(pose)):
            return None
        depth = self.depth(position)
        grid = self.image(position) if color_by == "image" else None
        if grid is None:
            grid = self.depth_rgb(position, depth)
        h, w = depth.shape
        s = self.stride
        full = np.repeat(np.repeat(grid, s, axis=0), s, axis=1)[:h, :w]  # full[::s, ::s] == grid
        pts, colors = depth_to_points(depth, self.intrinsics, pose, image=full, stride=s)
        return FramePoints(pts, colors if colors is not None else np.zeros((len(pts), 3), np.uint8))

    def camera_centres(self) -> np.ndarray:
        """``(N, 3)`` centres of the posed frames, in frame order."""
        return np.array([p[:3, 3] for p in self.poses if p is not None], dtype=np.float64).reshape(-1, 3)

    def scene_scale(self) -> float:
        """A typical viewing distance: the median valid depth of the first frame (1 when none)."""
        d = self.depth(0)
        valid = d[np.isfinite(d) & (d > 0)]
        return float(np.median(valid)) if valid.size else 1.0
