"""Mesh files: binary glTF (``.glb``) written with numpy and the standard library, and the mesh PLY.

The GLB holds one triangle primitive: ``POSITION`` and ``NORMAL`` (float32), ``COLOR_0``
(RGBA uint8, normalised) and uint32 indices, with an unlit-looking material (white base
colour times the vertex colour, no metal, full roughness, double sided). The vertex data are
the world coordinates of the run (OpenCV axes: y down, z forward), exactly those of
``scene.ply``; the one node turns them 180 degrees about x (quaternion ``[1, 0, 0, 0]``) so that
glTF viewers, which are y-up, show the scene upright. A loader that applies the node
transform (trimesh's ``Scene.dump``, Blender, three.js) gets y-up coordinates; one that reads
the primitive's data directly gets the run's world coordinates.

GLB is a small format (a header, a JSON chunk, a binary chunk); writing it here avoids a
runtime dependency for about a hundred lines.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from ..errors import OutputError
from ..io.atomic import atomic_path
from .tsdf import Mesh

__all__ = ["write_glb", "write_mesh", "GLB_NODE_ROTATION"]

#: the node rotation (x, y, z, w) from the run's OpenCV world (y down) to glTF's y-up view
GLB_NODE_ROTATION = [1.0, 0.0, 0.0, 0.0]

_FLOAT, _UBYTE, _UINT = 5126, 5121, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


def _pad(data: bytes, fill: bytes) -> bytes:
    return data + fill * (-len(data) % 4)


def write_glb(path: str | Path, mesh: Mesh, *, extras: dict | None = None) -> Path:
    """Write ``mesh`` as a binary glTF 2.0 file, atomically (layout: module docstring).

    ``extras`` (JSON values) go to ``asset.extras`` (units, voxel size). An empty mesh gives
    a valid file with an empty scene. Raises :class:`OutputError` naming the path on bad
    shapes or a write failure.
    """
    path = Path(path)
    v = np.ascontiguousarray(mesh.vertices, dtype="<f4")
    f = np.ascontiguousarray(mesh.faces, dtype="<u4")
    n = v.shape[0]
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
        raise OutputError(f"{path}: a mesh needs (N, 3) vertices and (M, 3) faces, got {v.shape} and {f.shape}")
    if f.size and int(f.max()) >= n:
        raise OutputError(f"{path}: face index {int(f.max())} out of range for {n} vertices")
    doc: dict = {
        "asset": {"version": "2.0", "generator": "steadydepth", "extras": dict(extras or {})},
        "scene": 0,
        "scenes": [{"nodes": []}],
        "nodes": [],
    }
    chunks: list[bytes] = []
    if n and len(f):
        nrm = np.asarray(mesh.normals, dtype=np.float32).reshape(n, 3)
        length = np.linalg.norm(nrm, axis=1)
        nrm = np.where((length > 1e-6)[:, None], nrm / np.maximum(length, 1e-6)[:, None], [0.0, 0.0, -1.0])
        rgba = np.empty((n, 4), dtype=np.uint8)
        rgba[:, :3] = np.asarray(mesh.colors, dtype=np.uint8).reshape(n, 3)
        rgba[:, 3] = 255
        arrays = [(v, _FLOAT, "VEC3", _ARRAY_BUFFER), (np.ascontiguousarray(nrm, "<f4"), _FLOAT, "VEC3", _ARRAY_BUFFER),
                  (rgba, _UBYTE, "VEC4", _ARRAY_BUFFER), (f.reshape(-1), _UINT, "SCALAR", _ELEMENT_ARRAY_BUFFER)]
        views, accessors, offset = [], [], 0
        for k, (arr, ctype, kind, target) in enumerate(arrays):
            data = arr.tobytes()
            views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(data), "target": target})
            acc = {"bufferView": k, "componentType": ctype, "count": int(arr.shape[0]), "type": kind}
            if ctype == _UBYTE:
                acc["normalized"] = True
            if k == 0:
                acc["min"] = v.min(axis=0).astype(float).tolist()
                acc["max"] = v.max(axis=0).astype(float).tolist()
            accessors.append(acc)
            chunks.append(_pad(data, b"\0"))
            offset += len(chunks[-1])
        doc.update({
            "scenes": [{"nodes": [0]}],
            "nodes": [{"mesh": 0, "rotation": GLB_NODE_ROTATION, "name": "scene"}],
            "meshes": [{"name": "scene", "primitives": [{"attributes": {"POSITION": 0, "NORMAL": 1, "COLOR_0": 2},
                                                          "indices": 3, "material": 0, "mode": 4}]}],
            "materials": [{"name": "vertex colour", "doubleSided": True,
                           "pbrMetallicRoughness": {"baseColorFactor": [1.0, 1.0, 1.0, 1.0],
                                                    "metallicFactor": 0.0, "roughnessFactor": 1.0}}],
            "buffers": [{"byteLength": offset}],
            "bufferViews": views,
            "accessors": accessors,
        })
    text = _pad(json.dumps(doc, separators=(",", ":")).encode("utf-8"), b" ")
    binary = b"".join(chunks)
    total = 12 + 8 + len(text) + (8 + len(binary) if binary else 0)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(struct.pack("<4sII", b"glTF", 2, total))
        fh.write(struct.pack("<I4s", len(text), b"JSON"))
        fh.write(text)
        if binary:
            fh.write(struct.pack("<I4s", len(binary), b"BIN\0"))
            fh.write(binary)
    return path


def write_mesh(path: str | Path, mesh: Mesh) -> Path:
    """``mesh`` as a binary PLY with colours and normals (:func:`steadydepth.io.ply.write_mesh_ply`)."""
    from ..io.ply import write_mesh_ply

    return write_mesh_ply(path, mesh.vertices, mesh.faces, colors=mesh.colors, normals=mesh.normals)
