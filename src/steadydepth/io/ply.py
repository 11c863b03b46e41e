"""Point clouds: PLY files (via ``plyfile``) and unprojection of depth maps.

Unprojection uses the OpenCV pixel-centre convention of :mod:`steadydepth.types`: the
pixel in row ``v``, column ``u`` has its centre at ``(u, v)`` and
``X_cam = depth * ((u - cx) / fx, (v - cy) / fy, 1)``; with a camera-to-world pose
``X_world = R @ X_cam + t``. With a radial distortion (``Intrinsics.k1 != 0``) the depth is on
the distorted pixels and ``(x, y)`` is the undistorted ray of each pixel
(:meth:`steadydepth.cameras.lens.RadialLens.normalised_rays`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import InputError, OutputError
from ..types import Intrinsics
from .atomic import atomic_path

__all__ = ["write_ply", "read_ply", "write_mesh_ply", "read_mesh_ply", "depth_to_points"]

log = logging.getLogger(__name__)


def write_ply(
    path: str | Path,
    points: np.ndarray,
    colors: np.ndarray | None = None,
    normals: np.ndarray | None = None,
    *,
    binary: bool = True,
) -> Path:
    """Write a vertex-only PLY atomically: ``x y z`` float32, optional ``red green blue`` uchar, ``nx ny nz`` float32.

    ``points`` ``(N, 3)`` (N may be 0), ``colors`` ``(N, 3)`` uint8 (floats in ``[0, 1]``
    are scaled by 255), ``normals`` ``(N, 3)``. ``binary=True`` writes little-endian binary,
    else ASCII. Raises :class:`OutputError` naming the path on bad shapes or write failure.
    """
    from plyfile import PlyData, PlyElement

    path = Path(path)
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise OutputError(f"{path}: points must be (N, 3), got {pts.shape}")
    n = pts.shape[0]
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    cols = None
    if colors is not None:
        cols = np.asarray(colors)
        if cols.shape != (n, 3):
            raise OutputError(f"{path}: colors must be ({n}, 3) like the points, got {cols.shape}")
        if np.issubdtype(cols.dtype, np.floating):
            cols = np.rint(np.clip(cols, 0.0, 1.0) * 255.0)
        cols = cols.astype(np.uint8)
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    nrm = None
    if normals is not None:
        nrm = np.asarray(normals)
        if nrm.shape != (n, 3):
            raise OutputError(f"{path}: normals must be ({n}, 3) like the points, got {nrm.shape}")
        fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    vertex = np.empty(n, dtype=fields)
    vertex["x"], vertex["y"], vertex["z"] = pts[:, 0], pts[:, 1], pts[:, 2]
    if cols is not None:
        vertex["red"], vertex["green"], vertex["blue"] = cols[:, 0], cols[:, 1], cols[:, 2]
    if nrm is not None:
        vertex["nx"], vertex["ny"], vertex["nz"] = nrm[:, 0], nrm[:, 1], nrm[:, 2]
    data = PlyData([PlyElement.describe(vertex, "vertex")], text=not binary, byte_order="<")
    with atomic_path(path) as tmp:
        data.write(str(tmp))
    return path


def write_mesh_ply(
    path: str | Path,
    vertices: np.ndarray,
    faces: np.ndarray,
    colors: np.ndarray | None = None,
    normals: np.ndarray | None = None,
) -> Path:
    """Write a triangle mesh as a little-endian binary PLY, atomically.

    ``vertices`` ``(N, 3)`` (``x y z`` float32), ``faces`` ``(M, 3)`` vertex indices (a
    ``vertex_indices`` list of 3 ``int``, count ``uchar``), optional ``colors`` ``(N, 3)`` uint8
    (``red green blue``) and ``normals`` ``(N, 3)`` (``nx ny nz`` float32). Written with numpy
    directly: plyfile's list properties cost seconds per 100k faces. Raises
    :class:`OutputError` naming the path on bad shapes, out-of-range indices or write failure.
    """
    path = Path(path)
    v = np.asarray(vertices)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3:
        raise OutputError(f"{path}: vertices must be (N, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise OutputError(f"{path}: faces must be (M, 3), got {f.shape}")
    n = v.shape[0]
    if f.size and (f.min() < 0 or f.max() >= n):
        raise OutputError(f"{path}: face indices must be in [0, {n}), got [{f.min()}, {f.max()}]")
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if normals is not None:
        if np.asarray(normals).shape != (n, 3):
            raise OutputError(f"{path}: normals must be ({n}, 3) like the vertices, got {np.asarray(normals).shape}")
        fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    if colors is not None:
        if np.asarray(colors).shape != (n, 3):
            raise OutputError(f"{path}: colors must be ({n}, 3) like the vertices, got {np.asarray(colors).shape}")
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vert = np.empty(n, dtype=fields)
    vert["x"], vert["y"], vert["z"] = v[:, 0], v[:, 1], v[:, 2]
    if normals is not None:
        nrm = np.asarray(normals)
        vert["nx"], vert["ny"], vert["nz"] = nrm[:, 0], nrm[:, 1], nrm[:, 2]
    if colors is not None:
        col = np.asarray(colors)
        vert["red"], vert["green"], vert["blue"] = col[:, 0], col[:, 1], col[:, 2]
    face = np.empty(f.shape[0], dtype=[("n", "u1"), ("i", "<i4", (3,))])
    face["n"] = 3
    face["i"] = f
    names = {"<f4": "float", "u1": "uchar"}
    header = ["ply", "format binary_little_endian 1.0", "comment steadydepth mesh", f"element vertex {n}"]
    header += [f"property {names[t]} {name}" for name, t in fields]
    header += [f"element face {f.shape[0]}", "property list uchar int vertex_indices", "end_header"]
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        fh.write(vert.tobytes())
        fh.write(face.tobytes())
    return path


def read_mesh_ply(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Read a triangle mesh PLY: ``vertices`` ``(N, 3)`` float32, ``faces`` ``(M, 3)`` int64 and
    ``colors`` ``(N, 3)`` uint8 or None. Raises :class:`InputError` naming the file when it is
    not a PLY, has no ``face`` element, or a face is not a triangle."""
    from plyfile import PlyData

    points, colors = read_ply(path)
    try:
        ply = PlyData.read(str(path), known_list_len={"face": {"vertex_indices": 3}})
        data = ply["face"].data
    except KeyError as exc:
        raise InputError(f"{path}: the PLY file has no 'face' element") from exc
    except Exception as exc:  # noqa: BLE001 - plyfile raises several kinds; a non-triangle face among them
        raise InputError(f"{path}: the PLY faces are not readable triangles ({exc})") from exc
    name = "vertex_indices" if "vertex_indices" in (data.dtype.names or ()) else (data.dtype.names or ("",))[0]
    faces = np.stack([np.asarray(x) for x in data[name]]) if data.dtype[name] == object else np.asarray(data[name])
    return points, faces.reshape(-1, 3).astype(np.int64), colors


def read_ply(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read the vertices of a PLY: ``points`` ``(N, 3)`` float32 and ``colors`` ``(N, 3)`` uint8 or None.

    Colours are read from ``red green blue`` (or ``r g b``); float colours in ``[0, 1]``
    are scaled to uint8. Raises :class:`InputError` naming the file when it is missing,
    not a PLY or has no ``vertex`` element with ``x y z``.
    """
    from plyfile import PlyData

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such PLY file")
    try:
        ply = PlyData.read(str(path))
    except Exception as exc:  # plyfile raises PlyParseError, ValueError, ...
        raise InputError(f"{path}: not a readable PLY file ({exc})") from exc
    try:
        v = ply["vertex"].data
    except KeyError as exc:
        raise InputError(f"{path}: the PLY file has no 'vertex' element") from exc
    names = v.dtype.names or ()
    if not all(k in names for k in ("x", "y", "z")):
        raise InputError(f"{path}: the PLY vertices have no x, y, z properties (found {names})")
    points = np.stack([v["x"], v["y"], v["z"]], axis=1).astype(np.float32)
    colors = None
    for keys in (("red", "green", "blue"), ("r", "g", "b"), ("diffuse_red", "diffuse_green", "diffuse_blue")):
        if all(k in names for k in keys):
            c = np.stack([v[k] for k in keys], axis=1)
            if np.issubdtype(c.dtype, np.floating):
                c = np.rint(np.clip(c, 0.0, 1.0) * 255.0)
            colors = c.astype(np.uint8)
            break
    return points, colors


def depth_to_points(
    depth: np.ndarray,
    intrinsics: Intrinsics,
    pose_c2w: np.ndarray | None = None,
    image: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    stride: int = 1,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Unproject a z-depth map ``(H, W)`` to 3D points (conventions: module docstring).

    ``intrinsics`` must be for a ``W x H`` image (use :meth:`Intrinsics.scaled` first
    otherwise). Pixels with depth 0, NaN, inf or negative, or ``False`` in ``mask``
    ``(H, W)``, are skipped; ``stride`` keeps every stride-th row and column. Returns
    ``points`` ``(N, 3)`` float32 in camera coordinates, or world coordinates when the
    camera-to-world ``pose_c2w`` (4x4) is given, and ``colors`` ``(N, 3)`` uint8 from
    ``image`` ``(H, W, 3)`` (None without an image). Points are in row-major pixel order.
    """
    d = np.asarray(depth)
    if d.ndim != 2:
        raise ValueError(f"depth must be (H, W), got {d.shape}")
    h, w = d.shape
    if (intrinsics.width, intrinsics.height) != (w, h):
        raise ValueError(
            f"intrinsics are for {intrinsics.width}x{intrinsics.height} but depth is {w}x{h}; "
            "use intrinsics.scaled(width, height)"
        )
    stride = int(stride)
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if image is not None and np.asarray(image).shape[:2] != (h, w):
        raise ValueError(f"image is {np.asarray(image).shape[:2]} but depth is {(h, w)}")
    if mask is not None and np.asarray(mask).shape != (h, w):
        raise ValueError(f"mask is {np.asarray(mask).shape} but depth is {(h, w)}")
    vs = np.arange(0, h, stride)
    us = np.arange(0, w, stride)
    z = d[::stride, ::stride].astype(np.float64)
    valid = np.isfinite(z) & (z > 0)
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool)[::stride, ::stride]
    rows, cols = np.nonzero(valid)
    zv = z[rows, cols]
    if intrinsics.k1 != 0.0:
        from ..cameras.lens import pixel_rays

        rx, ry = pixel_rays(intrinsics)
        x, y = rx[::stride, ::stride][rows, cols], ry[::stride, ::stride][rows, cols]
        keep = np.isfinite(x)
        rows, cols, zv, x, y = rows[keep], cols[keep], zv[keep], x[keep], y[keep]
    else:
        x = (us[cols].astype(np.float64) - intrinsics.cx) / intrinsics.fx
        y = (vs[rows].astype(np.float64) - intrinsics.cy) / intrinsics.fy
    pts = np.stack([x * zv, y * zv, zv], axis=1)
    if pose_c2w is not None:
        T = np.asarray(pose_c2w, dtype=np.float64)
        if T.shape != (4, 4):
            raise ValueError(f"pose_c2w must be a 4x4 camera-to-world matrix, got {T.shape}")
        pts = pts @ T[:3, :3].T + T[:3, 3]
    colors = None
    if image is not None:
        img = np.asarray(image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"image must be uint8 RGB (H, W, 3), got {img.dtype} {img.shape}")
        colors = img[::stride, ::stride][rows, cols].copy()
    return pts.astype(np.float32), colors
