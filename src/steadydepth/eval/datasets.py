"""Readers for ground-truth depth: steadydepth's own ``gt/`` layout and a few public RGB-D formats.

Everything returned follows :mod:`steadydepth.types`: images uint8 RGB ``(H, W, 3)``,
depth float32 z-depth in **metres** ``(H, W)`` with ``0`` = invalid, OpenCV pixel
centres, camera-to-world 4x4 poses with OpenCV axes (x right, y down, z forward).

Formats
-------
* ``gt/`` layout (written by :func:`steadydepth.synthetic.save_clip`, same shape as a
  run's output): ``depth/000000.npy`` float32 metres (or ``depth/000000.png`` uint16 with
  ``"depth_png_scale"`` units per metre in ``cameras.json``, default 1000) and
  ``cameras.json`` = ``{"intrinsics": {fx, fy, cx, cy, width, height}, "frames":
  [{"index", "pose_c2w"}], "units": "metres"}``; images are read from a sibling
  ``images/`` folder when it holds one image per frame.
* Open3D RGB-D test data (``color/*.jpg``, ``depth/*.png`` uint16 millimetres,
  ``trajectory.log`` camera-to-world poses, ``camera_primesense.json`` column-major
  intrinsics); see :func:`load_open3d_rgbd`.
* Microsoft 7-Scenes frames (``frame-NNNNNN.color.png|jpg``, ``frame-NNNNNN.depth.png``
  uint16 millimetres, ``frame-NNNNNN.pose.txt`` camera-to-world metres,
  ``camera-intrinsics.txt`` of the *depth* camera); see :func:`~steadydepth.eval.real_sequences.load_sevenscenes`.
* A RealSense recording folder (``rgb/rgbNNNNN.png``, ``depth/depthNNNNN.png`` uint16
  millimetres aligned to colour, no poses, no intrinsics); see :func:`~steadydepth.eval.real_sequences.load_realsense_folder`.
* Single frames (:func:`load_rgbd_pair`): TUM RGB-D (uint16, 5000 per metre), NYU Depth v2
  raw Kinect ``.pgm`` (little-endian 11-bit disparity-like values, converted with the NYU
  toolbox's ``351.3 / (1092.5 - raw)`` and registered to the colour camera) and SUN RGB-D
  (uint16 millimetres, bits rotated by 3).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import InputError
from ..types import Intrinsics

__all__ = [
    "GroundTruthSequence",
    "RGBDDataset",
    "load_ground_truth",
    "load_gt_folder",
    "load_open3d_rgbd",
    "read_open3d_log",
    "load_rgbd_pair",
    "rgbd_intrinsics",
    "nyu_raw_to_metres",
    "sun_depth_to_metres",
    "register_depth",
]

log = logging.getLogger(__name__)

RGBDDataset = Literal["tum", "nyu", "sun"]

_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".tif", ".tiff")


@dataclass
class GroundTruthSequence:
    """Ground truth of one sequence.

    ``depth[i]`` float32 ``(H, W)`` z-depth in metres, ``0`` = invalid; ``images[i]`` uint8
    RGB or ``images is None``; ``intrinsics`` at the depth resolution (OpenCV pixel
    centres), ``None`` when the dataset publishes none; ``poses`` ``(T, 4, 4)`` float64 camera-to-world (OpenCV axes; NaN rows where a
    frame has no pose) or ``None``; ``max_depth`` is the evaluation cap (valid ground truth:
    ``1e-3 < depth < max_depth``).
    """

    images: list[np.ndarray] | None
    depth: list[np.ndarray]
    intrinsics: Intrinsics | None
    poses: np.ndarray | None
    name: str
    max_depth: float = 10.0

    def __len__(self) -> int:
        return len(self.depth)

    def valid(self, i: int) -> np.ndarray:
        """Boolean mask of evaluable pixels of frame ``i`` (``1e-3 < depth < max_depth``)."""
        d = self.depth[i]
        return np.isfinite(d) & (d > 1e-3) & (d < self.max_depth)


# ----------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------
def _read_image(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"{path}: cannot read image (missing or not an image)")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.dtype == np.uint16:
        img = (img / 257.0 + 0.5).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise InputError(f"{path}: unsupported image type {img.dtype}")
    if img.shape[2] == 4:
        img = img[:, :, :3]
    return np.ascontiguousarray(img[:, :, ::-1])


def _read_u16(path: Path) -> np.ndarray:
    import cv2

    d = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if d is None:
        raise InputError(f"{path}: cannot read depth image (missing or not an image)")
    if d.dtype != np.uint16 or d.ndim != 2:
        raise InputError(f"{path}: expected a single-channel 16-bit depth image, got {d.dtype} {d.shape}")
    return d


def _numbered(folder: Path, exts: tuple[str, ...]) -> list[Path]:
    """Files of ``folder`` with one of ``exts``, in natural (numeric-aware) order."""

    def key(p: Path):
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]

    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in exts), key=key)


# ----------------------------------------------------------------------------------------
# steadydepth gt/ layout
# ----------------------------------------------------------------------------------------
def load_gt_folder(folder: str | Path, *, max_depth: float = 10.0, load_images: bool = True) -> GroundTruthSequence:
    """Read a ``gt/`` folder (``depth/`` + ``cameras.json``; see module docstring).

    Accepts the ``gt`` folder itself or a folder holding ``gt/``. Poses that are ``null``
    in ``cameras.json`` become NaN matrices; ``poses`` is ``None`` when none is known.
    """
    root = Path(folder).expanduser()
    if (root / "gt" / "cameras.json").is_file() and not (root / "cameras.json").is_file():
        root = root / "gt"
    meta_path = root / "cameras.json"
    if not meta_path.is_file():
        raise InputError(f"{root}: not a ground-truth folder (no cameras.json)")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{meta_path}: unreadable cameras.json ({exc})") from exc
    units = meta.get("units", "metres")
    if units not in ("metres", "meters", "m"):
        raise InputError(f"{meta_path}: ground truth must be in metres, got units={units!r}")
    intr_d = meta.get("intrinsics")
    try:
        intr = Intrinsics.from_dict(intr_d)
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise InputError(f"{meta_path}: missing or bad 'intrinsics' (need fx, fy, cx, cy, width, height)") from exc
    depth_dir = root / "depth"
    if not depth_dir.is_dir():
        raise InputError(f"{root}: ground-truth folder has no depth/ subfolder")
    files = _numbered(depth_dir, (".npy", ".png"))
    if not files:
        raise InputError(f"{depth_dir}: no depth files (*.npy or 16-bit *.png)")
    scale = float(meta.get("depth_png_scale", 1000.0))
    depth = []
    for p in files:
        if p.suffix == ".npy":
            try:
                d = np.load(p).astype(np.float32)
            except (OSError, ValueError) as exc:
                raise InputError(f"{p}: unreadable depth array ({exc})") from exc
        else:
            d = _read_u16(p).astype(np.float32) / scale
        if d.shape != (intr.height, intr.width):
            raise InputError(f"{p}: depth is {d.shape[1]}x{d.shape[0]}, cameras.json says "
                             f"{intr.width}x{intr.height}")
        d[~np.isfinite(d) | (d < 0)] = 0.0
        depth.append(d)
    frames = meta.get("frames") or []
    poses = None
    if frames:
        if len(frames) != len(depth):
            raise InputError(f"{meta_path}: {len(frames)} frames listed but {len(depth)} depth files in {depth_dir}")
        P = np.full((len(frames), 4, 4), np.nan)
        for k, fr in enumerate(frames):
            if fr.get("pose_c2w") is not None:
                m = np.asarray(fr["pose_c2w"], dtype=np.float64)
                if m.shape != (4, 4):
                    raise InputError(f"{meta_path}: frame {k} pose_c2w is not 4x4")
                P[k] = m
        poses = P if np.isfinite(P).any() else None
    images = None
    img_dir = root.parent / "images" if root.name == "gt" else root / "images"
    if load_images and img_dir.is_dir():
        img_files = _numbered(img_dir, _IMAGE_EXTS)
        if len(img_files) == len(depth):
            images = [_read_image(p) for p in img_files]
        else:
            log.warning("%s: %d images for %d depth frames; images not loaded", img_dir, len(img_files), len(depth))
    name = root.parent.name if root.name == "gt" else root.name
    return GroundTruthSequence(images=images, depth=depth, intrinsics=intr, poses=poses, name=name,
                               max_depth=max_depth)


# ----------------------------------------------------------------------------------------
# Open3D RGB-D test data
# ----------------------------------------------------------------------------------------
def read_open3d_log(path: str | Path) -> np.ndarray:
    """Poses ``(T, 4, 4)`` from an Open3D/Redwood ``.log`` trajectory (a line ``i j n``, then 4 rows).

    The matrices are camera-to-world (Open3D's ``PinholeCameraTrajectory`` stores the
    extrinsic as their inverse); the camera axes are OpenCV's.
    """
    path = Path(path)
    try:
        lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise InputError(f"{path}: cannot read trajectory ({exc.strerror or exc})") from exc
    if len(lines) % 5:
        raise InputError(f"{path}: not an Open3D .log trajectory ({len(lines)} lines is not a multiple of 5)")
    poses = []
    try:
        for k in range(0, len(lines), 5):
            if len(lines[k]) != 3:
                raise ValueError(f"line {k + 1} should be 'i j n'")
            m = np.array([[float(x) for x in lines[k + r]] for r in range(1, 5)])
            if m.shape != (4, 4):
                raise ValueError(f"matrix after line {k + 1} is not 4x4")
            poses.append(m)
    except ValueError as exc:
        raise InputError(f"{path}: bad Open3D .log trajectory ({exc})") from exc
    return np.stack(poses)


def _open3d_intrinsics(path: Path) -> Intrinsics:
    try:
        meta = json.loads(path.read_text())
        K = np.asarray(meta["intrinsic_matrix"], dtype=np.float64).reshape(3, 3).T  # stored column-major
        return Intrinsics.from_K(K, int(meta["width"]), int(meta["height"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: bad Open3D camera intrinsics ({exc})") from exc


def load_open3d_rgbd(folder: str | Path, *, max_depth: float = 10.0, depth_scale: float = 1000.0) -> GroundTruthSequence:
    """Read Open3D's RGB-D test data (``color/``, ``depth/``, ``trajectory.log``, ``camera_*.json``).

    Depth PNGs hold uint16 millimetres (``depth_scale`` units per metre); ``rgbd.match``
    (``depth/x.png color/y.jpg`` per line) pairs the files when present, else sorted order.
    """
    root = Path(folder).expanduser()
    cams = sorted(root.glob("camera*.json"))
    if not cams:
        raise InputError(f"{root}: no camera_*.json intrinsics (not Open3D RGB-D data)")
    intr = _open3d_intrinsics(cams[0])
    match = root / "rgbd.match"
    if match.is_file():
        pairs = []
        for ln in match.read_text().splitlines():
            parts = ln.split()
            if len(parts) == 2:
                dp, cp = (root / parts[0], root / parts[1])
                if "depth" in parts[1] and "depth" not in parts[0]:
                    dp, cp = cp, dp
                pairs.append((dp, cp))
    else:
        dfiles = _numbered(root / "depth", (".png",)) if (root / "depth").is_dir() else []
        cfiles = _numbered(root / "color", _IMAGE_EXTS) if (root / "color").is_dir() else []
        if len(dfiles) != len(cfiles):
            raise InputError(f"{root}: {len(dfiles)} depth and {len(cfiles)} colour images; add rgbd.match")
        pairs = list(zip(dfiles, cfiles))
    if not pairs:
        raise InputError(f"{root}: no RGB-D frames found")
    depth = [_read_u16(dp).astype(np.float32) / depth_scale for dp, _ in pairs]
    images = [_read_image(cp) for _, cp in pairs]
    for (dp, _), d in zip(pairs, depth):
        if d.shape != (intr.height, intr.width):
            raise InputError(f"{dp}: depth is {d.shape[1]}x{d.shape[0]}, intrinsics say {intr.width}x{intr.height}")
    poses = None
    traj = root / "trajectory.log"
    if traj.is_file():
        poses = read_open3d_log(traj)
        if len(poses) != len(depth):
            raise InputError(f"{traj}: {len(poses)} poses for {len(depth)} frames")
    return GroundTruthSequence(images=images, depth=depth, intrinsics=intr, poses=poses, name=root.name,
                               max_depth=max_depth)


# ----------------------------------------------------------------------------------------
# single RGB-D frames of public datasets
# ----------------------------------------------------------------------------------------
# NYU Depth v2 toolbox (camera_params.m): RGB and depth (IR) cameras, and depth -> RGB extrinsics
_NYU_RGB = (5.1885790117450188e02, 5.1946961112127485e02, 3.2558244941119034e02, 2.5373616633400465e02)
_NYU_DEPTH = (5.8262448167737955e02, 5.8269103270988637e02, 3.1304475870804731e02, 2.3844389626620386e02)
_NYU_R = np.array([[9.9997798940829263e-01, 5.0518419386157446e-03, 4.3011152014118693e-03],
                   [-5.0359919480810989e-03, 9.9998051861143999e-01, -3.6879781309514218e-03],
                   [-4.3196624923060242e-03, 3.6662365748484798e-03, 9.9998394948385538e-01]])
_NYU_T = np.array([2.5031875059141302e-02, 6.6238747008330102e-04, -2.9342312935846411e-04])


def rgbd_intrinsics(dataset: str, width: int = 640, height: int = 480) -> Intrinsics | None:
    """Standard colour-camera intrinsics of a dataset's 640x480 frames (scaled to ``width x height``).

    * ``"tum"``: the ROS default TUM recommends for its registered depth (525, 525, 319.5, 239.5);
      the per-sensor calibrations differ by ~1.5 % (freiburg1: 517.3, 516.5, 318.6, 255.3).
    * ``"nyu"``: NYU Depth v2 colour camera (518.86, 519.47, 325.58, 253.74), the frame
      :func:`load_rgbd_pair` registers raw depth into; ``"nyu_depth"``: its depth (IR) camera.
    * ``"sun"``: ``None`` (SUN RGB-D mixes four sensors; each frame ships its own intrinsics.txt).
    """
    table = {
        "tum": (525.0, 525.0, 319.5, 239.5),
        "nyu": _NYU_RGB,
        "nyu_depth": _NYU_DEPTH,
    }
    key = dataset.lower()
    if key == "sun":
        return None
    if key not in table:
        raise InputError(f"unknown RGB-D dataset '{dataset}': choose tum, nyu, nyu_depth or sun")
    fx, fy, cx, cy = table[key]
    intr = Intrinsics(fx, fy, cx, cy, 640, 480)
    return intr if (width, height) == (640, 480) else intr.scaled(width, height)


def nyu_raw_to_metres(raw: np.ndarray) -> np.ndarray:
    """NYU Depth v2 raw Kinect values (11-bit, native byte order) to metres, ``0`` = invalid.

    ``depth = 351.3 / (1092.5 - raw)`` (NYU toolbox ``depth_rel2depth_abs``); ``raw >= 2047``
    (no return) and results outside ``(0, 10]`` m are invalid.
    """
    r = np.asarray(raw).astype(np.float64)
    with np.errstate(divide="ignore"):
        d = 351.3 / (1092.5 - r)
    bad = (r >= 2047) | ~np.isfinite(d) | (d <= 0) | (d > 10.0)
    return np.where(bad, 0.0, d).astype(np.float32)


def sun_depth_to_metres(v: np.ndarray) -> np.ndarray:
    """SUN RGB-D depth PNG values to metres: ``mm = (v >> 3) | (v << 13)`` (16-bit rotate), ``/ 1000``."""
    u = np.asarray(v).astype(np.uint32)
    mm = ((u >> 3) | (u << 13)) & 0xFFFF
    return (mm.astype(np.float32) / 1000.0)


def register_depth(depth: np.ndarray, src: Intrinsics, dst: Intrinsics, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Re-project a depth map into another camera: ``X_dst = R @ X_src + t`` (metres).

    Each valid source pixel lands on the nearest destination pixel centre; the nearest
    surface wins (z-buffer). Unfilled pixels are ``0``. No lens distortion is modelled.
    """
    h, w = depth.shape
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    z = depth.astype(np.float64).ravel()
    m = z > 0
    X = np.stack([(u.ravel() - src.cx) / src.fx * z, (v.ravel() - src.cy) / src.fy * z, z], axis=1)[m]
    Y = X @ np.asarray(R, dtype=np.float64).T + np.asarray(t, dtype=np.float64)
    zz = Y[:, 2]
    front = zz > 1e-6
    Y, zz = Y[front], zz[front]
    uu = np.rint(dst.fx * Y[:, 0] / zz + dst.cx).astype(np.int64)
    vv = np.rint(dst.fy * Y[:, 1] / zz + dst.cy).astype(np.int64)
    ok = (uu >= 0) & (uu < dst.width) & (vv >= 0) & (vv < dst.height)
    out = np.full(dst.width * dst.height, np.inf)
    np.minimum.at(out, vv[ok] * dst.width + uu[ok], zz[ok])
    out[~np.isfinite(out)] = 0.0
    return out.reshape(dst.height, dst.width).astype(np.float32)


def load_rgbd_pair(color_path: str | Path, depth_path: str | Path,
                   dataset: RGBDDataset, *, register: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One RGB-D frame of a public dataset: ``(image uint8 RGB (H, W, 3), depth float32 metres (H, W))``.

    * ``"tum"``: uint16 PNG, 5000 units per metre, already registered to the colour camera.
    * ``"nyu"``: raw Kinect ``.pgm`` (16-bit little-endian despite the PGM header; values up to
      2047), converted by :func:`nyu_raw_to_metres`. The raw map is in the depth (IR) camera;
      with ``register`` (default) it is re-projected into the colour camera
      (:func:`rgbd_intrinsics` ``"nyu"``) with the toolbox's extrinsics, else returned as is
      (intrinsics ``"nyu_depth"``). Lens distortion is ignored (a pixel or two at the corners).
    * ``"sun"``: uint16 PNG of bit-rotated millimetres (:func:`sun_depth_to_metres`).

    ``0`` marks invalid depth. Intrinsics: :func:`rgbd_intrinsics`.
    """
    color_path, depth_path = Path(color_path), Path(depth_path)
    key = str(dataset).lower()
    image = _read_image(color_path)
    if key == "tum":
        depth = _read_u16(depth_path).astype(np.float32) / 5000.0
    elif key == "nyu":
        raw = _read_u16(depth_path)
        if raw.max() > 2047:
            # OpenCV reads PGM as big-endian (the format's rule); NYU wrote little-endian samples
            raw = raw.byteswap()
        if raw.max() > 2047:
            raise InputError(f"{depth_path}: values above 2047 in either byte order; not NYU raw Kinect depth")
        depth = nyu_raw_to_metres(raw)
        if register:
            src = Intrinsics(*_NYU_DEPTH, raw.shape[1], raw.shape[0])
            dst = Intrinsics(*_NYU_RGB, image.shape[1], image.shape[0])
            # measured on other_formats/NYU_*: median distance of depth discontinuities to
            # colour edges 3.0 px unregistered, 1.4 px with X_rgb = R^T X_d - t (R X_d - t: 1.4,
            # R X_d + t: 2.8); the colour camera sits ~2.5 cm to the depth camera's right
            depth = register_depth(depth, src, dst, _NYU_R.T, -_NYU_T)
    elif key == "sun":
        depth = sun_depth_to_metres(_read_u16(depth_path))
    else:
        raise InputError(f"unknown RGB-D dataset '{dataset}': choose tum, nyu or sun")
    if depth.shape != image.shape[:2]:
        raise InputError(f"{depth_path}: depth {depth.shape[1]}x{depth.shape[0]} does not match colour "
                         f"{image.shape[1]}x{image.shape[0]} ({color_path})")
    return image, depth


# ----------------------------------------------------------------------------------------
# Microsoft 7-Scenes (as shipped by tsdf-fusion: frame-NNNNNN.{color.png|jpg,depth.png,pose.txt})
# ----------------------------------------------------------------------------------------
def load_ground_truth(path: str | Path, *, max_depth: float | None = None) -> GroundTruthSequence:
    """Read ground truth from ``path``, recognising the layout from what the folder holds.

    * ``cameras.json`` + ``depth/`` (or a folder holding ``gt/`` with them): :func:`load_gt_folder`;
    * ``trajectory.log`` or ``camera_*.json`` with ``color/`` and ``depth/``: :func:`load_open3d_rgbd`;
    * ``frame-NNNNNN.color.*`` with ``camera-intrinsics.txt`` or ``frame-*.pose.txt``: :func:`~steadydepth.eval.real_sequences.load_sevenscenes`;
    * ``rgb/`` and ``depth/`` (no ``cameras.json``): :func:`~steadydepth.eval.real_sequences.load_realsense_folder`.

    Raises :class:`~steadydepth.errors.InputError` naming ``path`` otherwise.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise InputError(f"{root}: ground truth not found")
    if not root.is_dir():
        raise InputError(f"{root}: ground truth must be a folder (gt/ layout or an RGB-D dataset folder)")
    kw = {} if max_depth is None else {"max_depth": float(max_depth)}
    if ((root / "cameras.json").is_file() and (root / "depth").is_dir()) or (root / "gt" / "cameras.json").is_file():
        return load_gt_folder(root, **kw)
    if (root / "color").is_dir() and (root / "depth").is_dir() and any(root.glob("camera*.json")):
        return load_open3d_rgbd(root, **kw)
    from .real_sequences import _sevenscenes_like, load_realsense_folder, load_sevenscenes

    if _sevenscenes_like(root):
        return load_sevenscenes(root, **kw)
    if (root / "rgb").is_dir() and (root / "depth").is_dir():
        return load_realsense_folder(root, **kw)
    raise InputError(
        f"{root}: unrecognised ground truth; expected a gt/ folder (depth/ + cameras.json), "
        "Open3D RGB-D data (color/, depth/, camera_*.json, trajectory.log), a 7-Scenes folder "
        "(frame-NNNNNN.color/depth/pose files) or a RealSense folder (rgb/, depth/)"
    )
