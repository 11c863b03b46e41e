"""Read and write camera models in COLMAP's text format (cameras.txt, images.txt, points3D.txt).

COLMAP conventions at this boundary, converted once here:

* ``images.txt`` stores **world-to-camera** poses as a unit quaternion ``QW QX QY QZ``
  (Hamilton, scalar first) and a translation ``TX TY TZ``; steadydepth keeps
  camera-to-world 4x4 matrices. Both use the same camera axes (x right, y down, z forward).
* COLMAP puts the first pixel centre at ``(0.5, 0.5)``; steadydepth (OpenCV) at ``(0, 0)``:
  ``cx_colmap = cx_opencv + 0.5``.

:func:`write_colmap_text` writes one shared camera (the model
:class:`~steadydepth.types.Cameras` describes): ``PINHOLE``, or with a radial distortion
``Intrinsics.k1`` ``SIMPLE_RADIAL`` (``OPENCV`` with only ``k1`` when ``fx != fy``); frames
without a pose are not written. :func:`read_colmap_text` reads a text model (or a binary one
through pycolmap) with a single camera; ``SIMPLE_RADIAL``, ``RADIAL`` and ``OPENCV`` whose only
distortion is the first radial term give ``Intrinsics.k1``; other distortion is not applied but
reported in ``Cameras.warnings`` as a string starting with ``"distortion:"``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from ..errors import InputError, OutputError
from ..types import Cameras, Intrinsics

__all__ = ["write_colmap_text", "read_colmap_text", "cameras_from_reconstruction", "default_image_name"]

log = logging.getLogger(__name__)

#: model name -> names of its parameters, in COLMAP order
_MODELS: dict[str, tuple[str, ...]] = {
    "SIMPLE_PINHOLE": ("f", "cx", "cy"),
    "PINHOLE": ("fx", "fy", "cx", "cy"),
    "SIMPLE_RADIAL": ("f", "cx", "cy", "k"),
    "RADIAL": ("f", "cx", "cy", "k1", "k2"),
    "OPENCV": ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2"),
    "FULL_OPENCV": ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6"),
    "SIMPLE_RADIAL_FISHEYE": ("f", "cx", "cy", "k"),
    "RADIAL_FISHEYE": ("f", "cx", "cy", "k1", "k2"),
    "OPENCV_FISHEYE": ("fx", "fy", "cx", "cy", "k1", "k2", "k3", "k4"),
}


def default_image_name(frame_index: int) -> str:
    """The image name used for a frame when none is given: ``"000042.jpg"``."""
    return f"{int(frame_index):06d}.jpg"


def _fmt(x: float) -> str:
    return repr(float(x))


def write_colmap_text(cameras: Cameras, folder: str | Path, image_names: list[str] | None = None) -> Path:
    """Write ``cameras`` as a COLMAP text model into ``folder`` (created if needed).

    ``image_names[i]`` names the i-th frame (default :func:`default_image_name` of its
    frame index). Frames whose pose is ``None`` are skipped (COLMAP has no unposed
    images); the image id of frame ``i`` is ``i + 1`` either way. Points are written
    without tracks (error ``-1``). Returns the folder.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create COLMAP model folder {folder}: {exc}") from exc
    n = len(cameras.poses)
    indices = list(cameras.frame_indices) if len(cameras.frame_indices) == n else list(range(n))
    if image_names is None:
        image_names = [default_image_name(i) for i in indices]
    if len(image_names) != n:
        raise ValueError(f"image_names has {len(image_names)} entries for {n} frames")
    bad = [name for name in image_names if not name or any(c.isspace() for c in name)]
    if bad:
        raise OutputError(f"COLMAP image names cannot be empty or contain spaces: {bad[:3]}")
    K = cameras.intrinsics
    try:
        with open(folder / "cameras.txt", "w") as fh:
            fh.write("# Camera list with one line of data per camera:\n")
            fh.write("#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n")
            fh.write("# Number of cameras: 1\n")
            if K.k1 != 0.0:
                fh.write("# Radial distortion k1: the images (and steadydepth's depth maps) are the distorted "
                         "input pixels\n")
            fh.write(f"1 {_camera_params(K)}\n")
        posed = [i for i, p in enumerate(cameras.poses) if p is not None]
        with open(folder / "images.txt", "w") as fh:
            fh.write("# Image list with two lines of data per image:\n")
            fh.write("#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n")
            fh.write("#   POINTS2D[] as (X, Y, POINT3D_ID)\n")
            fh.write(f"# Number of images: {len(posed)}\n")
            for i in posed:
                c2w = np.asarray(cameras.poses[i], dtype=np.float64)
                R_wc = c2w[:3, :3].T
                t_wc = -R_wc @ c2w[:3, 3]
                qx, qy, qz, qw = Rotation.from_matrix(R_wc).as_quat()
                if qw < 0:
                    qw, qx, qy, qz = -qw, -qx, -qy, -qz
                vals = " ".join(_fmt(v) for v in (qw, qx, qy, qz, *t_wc))
                fh.write(f"{i + 1} {vals} 1 {image_names[i]}\n\n")
        pts = cameras.points if cameras.points is not None else np.zeros((0, 3))
        cols = cameras.colors if cameras.colors is not None else np.full((len(pts), 3), 128, np.uint8)
        with open(folder / "points3D.txt", "w") as fh:
            fh.write("# 3D point list with one line of data per point:\n")
            fh.write("#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n")
            fh.write(f"# Number of points: {len(pts)}\n")
            for j, (p, c) in enumerate(zip(np.asarray(pts, dtype=np.float64), np.asarray(cols))):
                fh.write(f"{j + 1} {_fmt(p[0])} {_fmt(p[1])} {_fmt(p[2])} {int(c[0])} {int(c[1])} {int(c[2])} -1\n")
    except OSError as exc:
        raise OutputError(f"cannot write COLMAP model into {folder}: {exc}") from exc
    skipped = n - len(posed)
    if skipped:
        log.info("COLMAP export: %d frame(s) without a pose were not written", skipped)
    return folder


def _camera_params(K: Intrinsics) -> str:
    """``MODEL WIDTH HEIGHT PARAMS...`` of ``K`` in COLMAP's pixel convention."""
    cx, cy = _fmt(K.cx + 0.5), _fmt(K.cy + 0.5)
    if K.k1 == 0.0:
        return f"PINHOLE {K.width} {K.height} {_fmt(K.fx)} {_fmt(K.fy)} {cx} {cy}"
    if K.fx == K.fy:
        return f"SIMPLE_RADIAL {K.width} {K.height} {_fmt(K.fx)} {cx} {cy} {_fmt(K.k1)}"
    return f"OPENCV {K.width} {K.height} {_fmt(K.fx)} {_fmt(K.fy)} {cx} {cy} {_fmt(K.k1)} 0.0 0.0 0.0"


def _data_lines(path: Path) -> list[str]:
    with open(path) as fh:
        return [line.rstrip("\n") for line in fh if not line.startswith("#")]


def _intrinsics_from_model(model: str, width: int, height: int, params: list[float], where: str):
    names = _MODELS.get(model)
    if names is None:
        raise InputError(f"{where}: unsupported COLMAP camera model '{model}' (supported: {', '.join(_MODELS)})")
    if len(params) != len(names):
        raise InputError(f"{where}: camera model {model} needs {len(names)} parameters, got {len(params)}")
    p = dict(zip(names, params))
    fx = p.get("fx", p.get("f"))
    fy = p.get("fy", p.get("f"))
    extra = {k: v for k, v in p.items() if k not in ("f", "fx", "fy", "cx", "cy")}
    k1 = extra.get("k", extra.get("k1", 0.0))
    rest = [v for k, v in extra.items() if k not in ("k", "k1")]
    applied = "FISHEYE" not in model and not any(abs(v) > 0 for v in rest)
    K = Intrinsics(float(fx), float(fy), float(p["cx"]) - 0.5, float(p["cy"]) - 0.5, int(width), int(height),
                   k1=float(k1) if applied else 0.0)
    warnings = []
    if not applied:
        desc = " ".join(f"{k}={v:.6g}" for k, v in extra.items())
        warnings.append(f"distortion: COLMAP model {model} {desc} (poses and intrinsics here are pinhole; "
                        "images are not undistorted)")
    return K, warnings


def _frame_index_from_name(name: str) -> int | None:
    m = re.findall(r"\d+", Path(name).stem)
    return int(m[-1]) if m else None


# Long on purpose: one parser of the three COLMAP text files, each section short and in file order.
def read_colmap_text(folder: str | Path) -> Cameras:
    """Read a COLMAP model folder (``cameras.txt``/``images.txt``/``points3D.txt``, or the
    ``.bin`` files through pycolmap) into :class:`~steadydepth.types.Cameras`.

    Images are ordered by image id; ``frame_indices`` come from the last number in each
    image name (or the position when a name has none). All images must share one camera
    (same model and parameters). Intrinsics are converted to the OpenCV pixel-centre
    convention, poses to camera-to-world.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"COLMAP model folder {folder} does not exist")
    if not (folder / "cameras.txt").exists():
        if (folder / "cameras.bin").exists():
            return _read_binary(folder)
        raise InputError(f"{folder}: no cameras.txt (or cameras.bin) found; not a COLMAP model folder")
    for req in ("images.txt",):
        if not (folder / req).exists():
            raise InputError(f"{folder}: {req} is missing")
    cams: dict[int, tuple[str, int, int, tuple[float, ...]]] = {}
    try:
        for line in _data_lines(folder / "cameras.txt"):
            if not line.strip():
                continue
            tok = line.split()
            cams[int(tok[0])] = (tok[1], int(tok[2]), int(tok[3]), tuple(float(v) for v in tok[4:]))
        lines = _data_lines(folder / "images.txt")
        images = []
        k = 0
        while k < len(lines):
            line = lines[k]
            if not line.strip():
                k += 1
                continue
            tok = line.split()
            image_id = int(tok[0])
            qw, qx, qy, qz, tx, ty, tz = (float(v) for v in tok[1:8])
            camera_id = int(tok[8])
            name = " ".join(tok[9:])
            images.append((image_id, np.array([qx, qy, qz, qw]), np.array([tx, ty, tz]), camera_id, name))
            k += 2  # the POINTS2D line follows (possibly empty)
        pts, cols = [], []
        if (folder / "points3D.txt").exists():
            for line in _data_lines(folder / "points3D.txt"):
                tok = line.split()
                if len(tok) < 7:
                    continue
                pts.append([float(v) for v in tok[1:4]])
                cols.append([int(v) for v in tok[4:7]])
    except (ValueError, IndexError) as exc:
        raise InputError(f"{folder}: malformed COLMAP text model ({exc})") from exc
    if not cams:
        raise InputError(f"{folder}/cameras.txt holds no camera")
    used = sorted({im[3] for im in images}) or sorted(cams)
    missing = [c for c in used if c not in cams]
    if missing:
        raise InputError(f"{folder}/images.txt refers to camera id(s) {missing} not in cameras.txt")
    if len({cams[c] for c in used}) > 1:
        raise InputError(
            f"{folder}: images use {len(used)} different cameras; steadydepth needs one shared camera"
        )
    model, w, h, params = cams[used[0]]
    intr, warnings = _intrinsics_from_model(model, w, h, list(params), f"{folder}/cameras.txt")
    images.sort(key=lambda im: im[0])
    poses = []
    for _, q, t, _, _ in images:
        if not np.isclose(np.linalg.norm(q), 1.0, atol=1e-3):
            raise InputError(f"{folder}/images.txt: quaternion {q} is not a unit quaternion")
        R_wc = Rotation.from_quat(q).as_matrix()
        c2w = np.eye(4)
        c2w[:3, :3] = R_wc.T
        c2w[:3, 3] = -R_wc.T @ t
        poses.append(c2w)
    names = [im[4] for im in images]
    idx = [_frame_index_from_name(nm) for nm in names]
    if any(i is None for i in idx) or len(set(idx)) != len(idx):
        idx = list(range(len(names)))
    return Cameras(
        intrinsics=intr,
        poses=poses,
        frame_indices=idx,
        points=np.asarray(pts, dtype=np.float64).reshape(-1, 3),
        colors=np.asarray(cols, dtype=np.uint8).reshape(-1, 3),
        units="scene",
        source=f"colmap:{folder}",
        warnings=warnings,
    )


def _read_binary(folder: Path) -> Cameras:
    import pycolmap

    try:
        rec = pycolmap.Reconstruction(str(folder))
    except Exception as exc:  # pycolmap raises plain RuntimeError/ValueError
        raise InputError(f"{folder}: cannot read binary COLMAP model ({exc})") from exc
    return cameras_from_reconstruction(rec, source=f"colmap:{folder}")


def cameras_from_reconstruction(rec, source: str = "pycolmap") -> Cameras:
    """Convert a ``pycolmap.Reconstruction`` with one shared camera (registered images only,
    ordered by image id) into :class:`~steadydepth.types.Cameras`."""
    cam_ids = {rec.images[i].camera_id for i in rec.reg_image_ids()} or set(rec.cameras.keys())
    if len(cam_ids) != 1:
        raise InputError(f"{source}: model has {len(cam_ids)} cameras; steadydepth needs one shared camera")
    cam = rec.cameras[next(iter(cam_ids))]
    intr, warnings = _intrinsics_from_model(
        cam.model.name, cam.width, cam.height, [float(v) for v in cam.params], source
    )
    poses, names = [], []
    for iid in sorted(rec.reg_image_ids()):
        im = rec.images[iid]
        M = im.cam_from_world().matrix()
        c2w = np.eye(4)
        c2w[:3, :3] = M[:3, :3].T
        c2w[:3, 3] = -M[:3, :3].T @ M[:3, 3]
        poses.append(c2w)
        names.append(im.name)
    idx = [_frame_index_from_name(nm) for nm in names]
    if any(i is None for i in idx) or len(set(idx)) != len(idx):
        idx = list(range(len(names)))
    pts = np.array([p.xyz for p in rec.points3D.values()], dtype=np.float64).reshape(-1, 3)
    cols = np.array([p.color for p in rec.points3D.values()], dtype=np.uint8).reshape(-1, 3)
    return Cameras(intrinsics=intr, poses=poses, frame_indices=idx, points=pts, colors=cols,
                   units="scene", source=source, warnings=warnings)
