"""Display orientation of video frames: rotation metadata and display matrices turned into
one of eight transforms (rotations and flips) applied to uint8 images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["apply_display_rotation", "apply_display_transform", "display_transform"]


def apply_display_rotation(image: np.ndarray, rotation: float) -> np.ndarray:
    """Rotate a decoded video frame for display.

    ``rotation`` is the display-matrix angle as PyAV's ``VideoFrame.rotation`` reports it
    (degrees the frame must be rotated *counter-clockwise* to display upright, in
    ``[-180, 180]``); it is rounded to a multiple of 90. ``90`` turns a ``H x W`` frame
    into ``W x H`` with the top row moving to the left column.
    """
    k = int(round(float(rotation) / 90.0)) % 4
    if k == 0:
        return image
    return np.ascontiguousarray(np.rot90(image, k=k))


#: display transforms: name -> function of an (H, W, ...) array
_TRANSFORMS = {
    "identity": lambda a: a,
    "clock": lambda a: np.rot90(a, k=-1),  # 90 degrees clockwise
    "cclock": lambda a: np.rot90(a, k=1),  # 90 degrees counter-clockwise
    "rot180": lambda a: a[::-1, ::-1],
    "hflip": lambda a: a[:, ::-1],
    "vflip": lambda a: a[::-1],
    "transpose": lambda a: np.swapaxes(a, 0, 1),  # ffmpeg transpose=cclock_flip
    "antitranspose": lambda a: np.swapaxes(a[::-1, ::-1], 0, 1),  # ffmpeg transpose=clock_flip
}


def display_transform(matrix: Sequence[int] | np.ndarray | None) -> str:
    """Name of the transform that shows a frame upright, from an FFmpeg display matrix.

    ``matrix`` holds the 9 int32 values of ``AV_FRAME_DATA_DISPLAYMATRIX`` (16.16 fixed
    point). Follows the ``ffmpeg`` command line's autorotate: the angle is
    ``-av_display_rotation_get(matrix)`` and flips are read from the matrix signs.
    Returns a key of the transforms :func:`apply_display_transform` knows; angles that
    are not multiples of 90 degrees are rounded to the nearest one.
    """
    if matrix is None:
        return "identity"
    m = np.asarray(matrix, dtype=np.float64).reshape(-1)
    if m.size != 9:
        return "identity"
    a, b, c, d = m[0] / 65536.0, m[1] / 65536.0, m[3] / 65536.0, m[4] / 65536.0
    s0, s1 = math.hypot(a, c), math.hypot(b, d)
    if s0 == 0.0 or s1 == 0.0:
        return "identity"
    theta = -round(-math.degrees(math.atan2(b / s1, a / s0)))  # ffmpeg get_rotation()
    theta -= 360.0 * math.floor(theta / 360.0 + 0.9 / 360.0)
    theta = (round(theta / 90.0) * 90) % 360
    if theta == 90:
        return "transpose" if m[3] > 0 else "clock"
    if theta == 180:
        if m[0] < 0 and m[4] < 0:
            return "rot180"
        return "hflip" if m[0] < 0 else ("vflip" if m[4] < 0 else "identity")
    if theta == 270:
        return "antitranspose" if m[3] < 0 else "cclock"
    return "vflip" if m[4] < 0 else "identity"


def apply_display_transform(image: np.ndarray, transform: str) -> np.ndarray:
    """Apply a transform named by :func:`display_transform` (returns a contiguous array)."""
    if transform == "identity":
        return image
    return np.ascontiguousarray(_TRANSFORMS[transform](image))


def _frame_display_matrix(frame: Any) -> np.ndarray | None:
    """The 9 int32 values of a decoded PyAV frame's display matrix, or None when it has none.

    PyAV's ``frame.side_data`` is a mapping from side-data type to item (iterating it gives the
    types, not the items, from 18.1.1 on), so the matrix is looked up by its type.
    """
    from av.sidedata.sidedata import Type

    item = frame.side_data.get(Type.DISPLAYMATRIX)
    return None if item is None else np.frombuffer(bytes(item), dtype=np.int32)[:9]
