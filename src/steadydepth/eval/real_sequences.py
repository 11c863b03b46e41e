"""Readers for the real RGB-D video sequences: the 7-Scenes layout and RealSense ``rgb/`` + ``depth/`` folders.

Both return :class:`~steadydepth.eval.datasets.GroundTruthSequence` with the conventions of
:mod:`steadydepth.eval.datasets` (depth float32 metres, 0 = invalid; poses camera-to-world,
OpenCV axes). :func:`steadydepth.eval.datasets.load_ground_truth` recognises both layouts.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..types import Intrinsics
from .datasets import GroundTruthSequence, _read_image, _read_u16, register_depth

__all__ = ["load_sevenscenes", "load_realsense_folder", "SEVENSCENES_COLOUR_FOCAL", "sevenscenes_colour_depth"]

log = logging.getLogger(__name__)


_SEVENSCENES_COLOR = re.compile(r"^frame-(\d+)\.color\.(png|jpg|jpeg)$", re.IGNORECASE)
_SEVENSCENES_K = (585.0, 585.0, 320.0, 240.0)  # nominal depth-camera intrinsics of 7-Scenes

#: focal (px at 640x480) assumed for the Kinect v1 *colour* camera of 7-Scenes, which the dataset
#: does not calibrate (its README: usually near 520-530 px; SfM finds 524 px on the shared clip)
SEVENSCENES_COLOUR_FOCAL = 525.0


def _read_matrix(path: Path, shape: tuple[int, int], what: str) -> np.ndarray:
    """A whitespace-separated float matrix of ``shape`` from a text file (``InputError`` naming it)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what} ({exc.strerror or exc})") from exc
    try:
        vals = [float(x) for x in text.split()]
    except ValueError as exc:
        raise InputError(f"{path}: bad {what} ({exc})") from exc
    if len(vals) != shape[0] * shape[1]:
        raise InputError(f"{path}: bad {what}: expected {shape[0]}x{shape[1]} numbers, found {len(vals)}")
    m = np.asarray(vals, dtype=np.float64).reshape(shape)
    if not np.all(np.isfinite(m)):
        raise InputError(f"{path}: bad {what}: non-finite values")
    return m


def load_sevenscenes(folder: str | Path, *, max_depth: float = 10.0, load_images: bool = True,
                     depth_scale: float = 1000.0) -> GroundTruthSequence:
    """Read a Microsoft 7-Scenes sequence folder (the layout tsdf-fusion ships).

    Files per frame ``NNNNNN`` (frames in numeric order): ``frame-NNNNNN.color.png`` or
    ``.jpg`` (640x480 RGB), ``frame-NNNNNN.depth.png`` (uint16 millimetres, ``depth_scale``
    units per metre; ``0`` and ``65535`` = no measurement -> ``0``) and
    ``frame-NNNNNN.pose.txt`` (4x4 camera-to-world, metres, OpenCV axes: KinectFusion's
    tracking). ``camera-intrinsics.txt`` (3x3) is optional; without it the nominal
    585 / 585 / 320 / 240 is used.

    **Intrinsics carried:** those of the *depth* camera (``camera-intrinsics.txt``, nominally
    fx = fy = 585, cx = 320, cy = 240), the camera the depth maps and poses belong to. The
    depth is **not registered** to the colour images: the Kinect v1 colour camera's focal is
    near 520-530 px, so depth pixel (u, v) is near, not at, colour pixel (u, v) (a ~1.11x zoom
    and a small shift; centimetre-level misalignment at object boundaries). Use these
    intrinsics to score TAE with the ground-truth depth/poses, not as the colour camera's.

    Raises :class:`~steadydepth.errors.InputError` naming the file for a missing or
    unreadable depth image, pose file or colour image, or a depth of another size.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise InputError(f"{root}: 7-Scenes folder not found")
    colors: list[tuple[int, Path]] = []
    for p in root.iterdir():
        m = _SEVENSCENES_COLOR.match(p.name)
        if m and p.is_file():
            colors.append((int(m.group(1)), p))
    colors.sort()
    if not colors:
        raise InputError(f"{root}: no frame-NNNNNN.color.png/.jpg files (not a 7-Scenes folder)")
    intr_path = root / "camera-intrinsics.txt"
    if intr_path.is_file():
        K = _read_matrix(intr_path, (3, 3), "camera intrinsics")
    else:
        fx, fy, cx, cy = _SEVENSCENES_K
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        log.info("%s: no camera-intrinsics.txt; using the nominal 7-Scenes depth intrinsics %s", root, _SEVENSCENES_K)
    depth: list[np.ndarray] = []
    poses = np.empty((len(colors), 4, 4))
    images: list[np.ndarray] | None = [] if load_images else None
    size: tuple[int, int] | None = None
    for k, (_, cp) in enumerate(colors):
        stem = cp.name[: cp.name.lower().index(".color.")]
        dp, pp = root / f"{stem}.depth.png", root / f"{stem}.pose.txt"
        if not dp.is_file():
            raise InputError(f"{dp}: depth image missing (colour frame {cp.name} has no depth)")
        if not pp.is_file():
            raise InputError(f"{pp}: pose file missing (colour frame {cp.name} has no pose)")
        raw = _read_u16(dp)
        if size is None:
            size = raw.shape
        elif raw.shape != size:
            raise InputError(f"{dp}: depth is {raw.shape[1]}x{raw.shape[0]}, earlier frames are {size[1]}x{size[0]}")
        d = raw.astype(np.float32) / float(depth_scale)
        d[raw == 65535] = 0.0
        depth.append(d)
        poses[k] = _read_matrix(pp, (4, 4), "camera-to-world pose")
        if images is not None:
            images.append(_read_image(cp))
    assert size is not None
    intr = Intrinsics.from_K(K, size[1], size[0])
    return GroundTruthSequence(images=images, depth=depth, intrinsics=intr, poses=poses, name=root.name,
                               max_depth=max_depth)


def _sevenscenes_like(root: Path) -> bool:
    return (root / "camera-intrinsics.txt").is_file() or any(root.glob("frame-*.pose.txt"))


# ----------------------------------------------------------------------------------------
# RealSense recording folder (rgb/rgbNNNNN.png, depth/depthNNNNN.png)
# ----------------------------------------------------------------------------------------
_REALSENSE_NAME = re.compile(r"^(rgb|depth)(\d+)\.png$", re.IGNORECASE)


def load_realsense_folder(folder: str | Path, *, max_depth: float = 10.0, load_images: bool = True,
                          depth_scale: float = 1000.0, invalid_above: float = 10.0) -> GroundTruthSequence:
    """Read a RealSense RGB-D recording folder: ``rgb/rgbNNNNN.png`` + ``depth/depthNNNNN.png``.

    Frames are paired by their number ``NNNNN`` and kept in numeric order (the file order;
    such recordings' timestamps are not used). Depth is uint16 raw device units,
    ``depth_scale`` per metre (millimetres, the D4xx default), already aligned to the colour
    camera by the recorder; ``0`` = no measurement and values above ``invalid_above`` metres
    (including 65535) are sensor noise, both set to ``0`` (invalid).

    No poses and no intrinsics come with such a folder: ``poses`` and ``intrinsics`` are
    ``None`` (so AbsRel / delta1 can be scored, TAE cannot).

    Raises :class:`~steadydepth.errors.InputError` naming the file for a colour frame without
    its depth (or the reverse), an unreadable image, or frames of different sizes.
    """
    root = Path(folder).expanduser()
    rgb_dir, depth_dir = root / "rgb", root / "depth"
    if not rgb_dir.is_dir() or not depth_dir.is_dir():
        raise InputError(f"{root}: a RealSense folder needs rgb/ and depth/ subfolders")

    def numbered(d: Path, kind: str) -> dict[int, Path]:
        out: dict[int, Path] = {}
        for p in d.iterdir():
            m = _REALSENSE_NAME.match(p.name)
            if m and m.group(1).lower() == kind and p.is_file():
                out[int(m.group(2))] = p
        return out

    rgb, dep = numbered(rgb_dir, "rgb"), numbered(depth_dir, "depth")
    if not rgb:
        raise InputError(f"{rgb_dir}: no rgbNNNNN.png files")
    for n, p in sorted(rgb.items()):
        if n not in dep:
            raise InputError(f"{depth_dir}: depth missing for {p.name} (expected depth{p.name[3:]})")
    for n, p in sorted(dep.items()):
        if n not in rgb:
            raise InputError(f"{rgb_dir}: colour image missing for {p.name} (expected rgb{p.name[5:]})")
    depth: list[np.ndarray] = []
    images: list[np.ndarray] | None = [] if load_images else None
    size: tuple[int, int] | None = None
    for n in sorted(rgb):
        raw = _read_u16(dep[n])
        if size is None:
            size = raw.shape
        elif raw.shape != size:
            raise InputError(f"{dep[n]}: depth is {raw.shape[1]}x{raw.shape[0]}, earlier frames are {size[1]}x{size[0]}")
        d = raw.astype(np.float32) / float(depth_scale)
        d[d > invalid_above] = 0.0
        depth.append(d)
        if images is not None:
            img = _read_image(rgb[n])
            if img.shape[:2] != raw.shape:
                raise InputError(f"{rgb[n]}: colour is {img.shape[1]}x{img.shape[0]} but its depth "
                                 f"{dep[n].name} is {raw.shape[1]}x{raw.shape[0]}")
            images.append(img)
    return GroundTruthSequence(images=images, depth=depth, intrinsics=None, poses=None, name=root.name,
                               max_depth=max_depth)


# ----------------------------------------------------------------------------------------
# 7-Scenes ground truth in the colour camera
# ----------------------------------------------------------------------------------------
def sevenscenes_colour_depth(gt: GroundTruthSequence, colour_focal: float = SEVENSCENES_COLOUR_FOCAL) -> list[np.ndarray]:
    """The depth maps of a 7-Scenes sequence re-projected into an assumed colour camera.

    7-Scenes depth belongs to the depth camera (``gt.intrinsics``, nominally 585 px) and is not
    registered to the colour images. This moves every depth pixel into a pinhole camera with
    focal ``colour_focal`` and the same principal point, with identity extrinsics (the two
    sensors' few-centimetre offset is not modelled, nor is lens distortion): a better, not an
    exact, match to the colour pixels. Each map is float32 ``(H, W)`` z-depth in metres, 0 where
    no depth pixel lands (nearest surface wins, :func:`~steadydepth.eval.datasets.register_depth`).
    """
    src = gt.intrinsics
    dst = Intrinsics(colour_focal, colour_focal, src.cx, src.cy, src.width, src.height)
    return [register_depth(np.asarray(d, np.float32), src, dst, np.eye(3), np.zeros(3)) for d in gt.depth]
