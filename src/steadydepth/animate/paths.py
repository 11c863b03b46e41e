"""Camera paths of ``steadydepth animate``: camera-to-world 4x4 poses relative to the input view.

The input view is the identity (OpenCV axes: x right, y down, z forward); path sizes scale with
the scene: ``near`` is the 10th percentile of the input's depth, ``mid`` its median, and
``speed`` multiplies every travel. ``t`` runs over ``[0, 1]`` across the frames; the looping
paths (``orbit``, ``swing``, ``auto``) end where they start, so the video loops.

* ``dolly-in`` / ``dolly-out``: along the optical axis by ``0.2 near`` (eased in and out).
* ``zoom``: towards the centre of the picture (the point at ``mid`` on the optical axis) by
  ``0.3 near`` with a slight rise, looking at that point.
* ``orbit``: a circle of radius ``0.08 near`` in the image plane (rising and falling a little in
  depth), looking at the centre point.
* ``swing``: side to side by ``0.12 near`` on an arc, looking at the centre point.
* ``auto``: a gentle loop (sideways ``0.06 near``, up ``0.02 near``, forwards at most ``0.1``
  times the 1st-percentile depth, so it never flies into near geometry), looking at the centre
  point with no roll (the horizon stays level).

``--path FILE.json`` reads a run's ``cameras.json`` layout (``intrinsics`` and
``frames[].pose_c2w``); when its first pose is not the identity every pose is taken relative to
it, so a replayed real path starts at the input view.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..synthetic.paths import _look_at
from ..types import Intrinsics

__all__ = ["PATHS", "make_path", "load_path_file", "scene_depths"]

log = logging.getLogger(__name__)

#: the named camera paths
PATHS = ("dolly-in", "dolly-out", "orbit", "swing", "zoom", "auto")


def scene_depths(depth: np.ndarray) -> tuple[float, float, float]:
    """``(p1, near, mid)``: the 1st and 10th percentiles and the median of the valid depth."""
    d = depth[(depth > 0) & np.isfinite(depth)]
    if d.size == 0:
        raise InputError("the depth map has no valid pixel")
    p1, p10, p50 = np.percentile(d, [1, 10, 50])
    return float(p1), float(p10), float(p50)


def _translation(offset: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, 3] = offset
    return T


def make_path(kind: str, num_frames: int, depth: np.ndarray, *, speed: float = 1.0) -> np.ndarray:
    """Poses ``(num_frames, 4, 4)`` of the named path ``kind`` (see module docstring) for a view
    whose z-depth is ``depth`` ``(H, W)``; frame 0 is the input view (identity)."""
    if kind not in PATHS:
        raise InputError(f"unknown camera path '{kind}': choose one of {', '.join(PATHS)} or a .json file")
    p1, near, mid = scene_depths(depth)
    n = int(num_frames)
    t = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    ease = 0.5 - 0.5 * np.cos(np.pi * t)  # 0 -> 1, zero speed at both ends
    theta = 2.0 * np.pi * t
    target = np.array([0.0, 0.0, mid])
    poses = np.empty((n, 4, 4))
    for k in range(n):
        if kind in ("dolly-in", "dolly-out"):
            sign = 1.0 if kind == "dolly-in" else -1.0
            poses[k] = _translation(np.array([0.0, 0.0, sign * 0.2 * near * speed * ease[k]]))
            continue
        if kind == "zoom":
            pos = speed * ease[k] * np.array([0.0, -0.03 * near, 0.3 * near])
        elif kind == "orbit":
            r = 0.08 * near * speed
            pos = np.array([r * np.sin(theta[k]), -r * (1.0 - np.cos(theta[k])), 0.25 * r * (1.0 - np.cos(theta[k]))])
        elif kind == "swing":
            r = 0.12 * near * speed
            pos = np.array([r * np.sin(theta[k]), 0.0, 0.15 * r * (1.0 - np.cos(2.0 * theta[k]))])
        else:  # auto
            fwd = min(0.1 * p1, 0.1 * near) * speed
            pos = np.array([0.06 * near * speed * np.sin(theta[k]), -0.02 * near * speed * (1.0 - np.cos(theta[k])),
                            fwd * 0.5 * (1.0 - np.cos(theta[k]))])
        poses[k] = _look_at(pos, target)
    # the look-at of frame 0 is the identity up to rounding; make the input view exact
    poses[0] = np.eye(4) if np.allclose(poses[0], np.eye(4), atol=1e-9) else poses[0]
    return poses


def load_path_file(path: str | Path) -> tuple[np.ndarray, Intrinsics | None]:
    """Poses ``(T, 4, 4)`` and intrinsics (None when the file has none) of a ``cameras.json``-style
    file; frames without a pose are skipped. See the module docstring for the relative rule."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such camera path file") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the camera path ({exc})") from exc
    frames = data.get("frames") if isinstance(data, dict) else None
    if not isinstance(frames, list):
        raise InputError(f"{path}: a camera path needs a 'frames' list with 'pose_c2w' 4x4 matrices "
                         f"(the layout of a run's cameras.json)")
    poses = []
    for i, fr in enumerate(frames):
        p = fr.get("pose_c2w") if isinstance(fr, dict) else None
        if p is None:
            continue
        m = np.asarray(p, np.float64)
        if m.shape != (4, 4) or not np.isfinite(m).all():
            raise InputError(f"{path}: frames[{i}].pose_c2w is not a finite 4x4 matrix")
        poses.append(m)
    if len(poses) < 1:
        raise InputError(f"{path}: no frame has a pose")
    P = np.stack(poses)
    if not np.allclose(P[0], np.eye(4), atol=1e-6):
        log.info("%s: poses taken relative to its first frame (the input view)", path)
        P = np.linalg.inv(P[0])[None] @ P
    intr = None
    d = data.get("intrinsics")
    if isinstance(d, dict):
        try:
            intr = Intrinsics(float(d["fx"]), float(d["fy"]), float(d["cx"]), float(d["cy"]), int(d["width"]),
                              int(d["height"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{path}: bad 'intrinsics' ({exc})") from exc
    return P, intr
