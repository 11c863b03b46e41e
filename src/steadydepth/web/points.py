"""The point cloud the web page's 3D view draws, as one small binary file.

Layout of ``points.bin`` (little-endian): the 4 bytes ``SDP1``, ``uint32 N``, then ``N x 3``
``float32`` world coordinates (the run's frame: camera-to-world OpenCV axes, y down), then
``N x 3`` ``uint8`` RGB colours.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

__all__ = ["view_points", "parse_view_points", "MAGIC"]

MAGIC = b"SDP1"
#: frames whose points make the view when the run has no fused scene
VIEW_FRAMES = 12


def view_points(run_folder: str | Path, *, max_points: int = 150_000, seed: int = 0) -> bytes:
    """At most ``max_points`` coloured world points of a run: the fused ``scene_points.ply``
    when the run has it, else the points of up to :data:`VIEW_FRAMES` frames spread over the clip."""
    from ..io.ply import read_ply
    from ..viewer.run_data import RunData

    folder = Path(run_folder)
    rng = np.random.default_rng(seed)
    if (folder / "scene_points.ply").is_file():
        pts, colors = read_ply(folder / "scene_points.ply")
        if colors is None:
            colors = np.full((len(pts), 3), 180, np.uint8)
    else:
        run = RunData(folder, max_points=max(1000, max_points // VIEW_FRAMES), max_frames=VIEW_FRAMES)
        parts = [run.points(p) for p in run.shown]
        parts = [f for f in parts if f is not None and len(f.points)]
        pts = np.concatenate([f.points for f in parts]) if parts else np.zeros((0, 3), np.float32)
        colors = np.concatenate([f.colors for f in parts]) if parts else np.zeros((0, 3), np.uint8)
    if len(pts) > max_points:
        keep = np.sort(rng.choice(len(pts), size=max_points, replace=False))
        pts, colors = pts[keep], colors[keep]
    pts = np.ascontiguousarray(pts, dtype="<f4")
    colors = np.ascontiguousarray(colors, dtype=np.uint8)
    return MAGIC + struct.pack("<I", len(pts)) + pts.tobytes() + colors.tobytes()


def parse_view_points(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """``(points (N, 3) float32, colors (N, 3) uint8)`` of a ``points.bin``; ValueError when malformed."""
    if len(data) < 8 or data[:4] != MAGIC:
        raise ValueError("not a points.bin file (no SDP1 header)")
    (n,) = struct.unpack("<I", data[4:8])
    if len(data) != 8 + 15 * n:
        raise ValueError(f"points.bin holds {len(data)} bytes, expected {8 + 15 * n} for {n} points")
    pts = np.frombuffer(data, dtype="<f4", count=3 * n, offset=8).reshape(n, 3)
    colors = np.frombuffer(data, dtype=np.uint8, count=3 * n, offset=8 + 12 * n).reshape(n, 3)
    return pts, colors
