"""The fused scene as points: one coloured point per surface voxel (``scene_points.py``).

The mesh vertices of the fused volume lie on voxel edges; grouping them by the voxel
``floor(x / voxel_size)`` they fall in and averaging position, colour and normal gives one
de-duplicated point per voxel that the surface crosses.
"""

from __future__ import annotations

import numpy as np

from .tsdf import Mesh

__all__ = ["surface_points"]


def surface_points(mesh: Mesh, voxel_size: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``points`` ``(P, 3)`` float32, ``colors`` ``(P, 3)`` uint8 and unit ``normals`` ``(P, 3)``
    float32: the means of ``mesh``'s vertices per voxel of side ``voxel_size`` (world units)."""
    v = np.asarray(mesh.vertices, np.float64)
    if v.shape[0] == 0:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8), np.zeros((0, 3), np.float32)
    cell = np.floor(v / float(voxel_size)).astype(np.int64)
    _, inverse, counts = np.unique(cell, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    p = len(counts)

    def mean(values: np.ndarray) -> np.ndarray:
        out = np.stack([np.bincount(inverse, weights=values[:, k], minlength=p) for k in range(3)], axis=1)
        return out / counts[:, None]

    points = mean(v).astype(np.float32)
    colors = np.clip(np.rint(mean(np.asarray(mesh.colors, np.float64))), 0, 255).astype(np.uint8)
    normals = mean(np.asarray(mesh.normals, np.float64))
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.where(length > 1e-9, normals / np.maximum(length, 1e-9), 0.0).astype(np.float32)
    return points, colors, normals
