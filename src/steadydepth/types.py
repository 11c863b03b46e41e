"""Core value types and the conventions every module keeps.

Conventions (written once, here):

* **Images** are ``uint8`` RGB arrays of shape ``(H, W, 3)`` (16-bit or float inputs
  are converted on read; see :mod:`steadydepth.io.frames`).
* **Pixel coordinates** follow OpenCV: the centre of the pixel in row ``v``, column
  ``u`` is at ``(x, y) = (u, v)``; the image spans ``[-0.5, W - 0.5]``. COLMAP puts
  the first pixel centre at ``(0.5, 0.5)``: we convert once at the pycolmap boundary
  (``cx_opencv = cx_colmap - 0.5``).
* **Depth** is the distance along the optical axis (z in camera coordinates), not the
  ray length. Units are metres when the scale is known, otherwise "scene" units (one
  consistent but unknown scale for the whole clip). ``0`` (or NaN) marks invalid
  pixels; a made-up value is never stored.
* **Disparity** is ``1 / depth``. Relative learned models give *affine-invariant*
  disparity (unknown scale and shift); functions say which one they take.
* **Poses** are camera-to-world 4x4 matrices with OpenCV camera axes
  (x right, y down, z forward): ``X_world = T_c2w @ X_cam``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = [
    "Intrinsics",
    "Frame",
    "Cameras",
    "PriorOutput",
    "DepthFrame",
    "Units",
    "POSE_SOURCES",
]

Units = Literal["metres", "scene"]

#: how a pose in :class:`Cameras` was obtained (``Cameras.pose_sources``; ``cameras.json``
#: ``pose_source``; ``depth.npz`` ``pose_source``): measured by structure from motion
#: (``mapped``: in the keyframe model; ``tracked``: registered to it by tracked 2D-3D
#: matches), filled in (``interpolated`` between two measured poses; ``copied`` from the
#: nearest measured pose before the first / after the last one), from a fallback that
#: cannot measure translation (``rotation-only``: rotation from homographies, zero
#: translation; ``static``: identity, the image did not move), or ``given`` (read from a
#: model or ground truth). ``unknown``: a pose whose origin nobody recorded.
POSE_SOURCES = ("mapped", "tracked", "interpolated", "copied", "rotation-only", "static", "given", "unknown")


@dataclass(frozen=True)
class Intrinsics:
    """Intrinsics in pixels, OpenCV pixel-centre convention, for a ``width x height`` image.

    ``k1`` is the radial distortion of COLMAP's ``SIMPLE_RADIAL`` model (OpenCV's ``k1``):
    a camera point with normalised coordinates ``(x, y)``, ``r^2 = x^2 + y^2``, is seen at
    pixel ``(fx * x * (1 + k1 r^2) + cx, fy * y * (1 + k1 r^2) + cy)``. It is defined on
    normalised coordinates, so :meth:`scaled` keeps it. ``0`` is a pinhole camera; ``K`` is
    the pinhole part either way (:mod:`steadydepth.cameras.lens` handles the distortion).
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    k1: float = 0.0

    @property
    def K(self) -> np.ndarray:
        """The 3x3 calibration matrix (float64)."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def scaled(self, width: int, height: int) -> Intrinsics:
        """The same camera for an image resized to ``width x height`` (pixel centres kept exact)."""
        sx, sy = width / self.width, height / self.height
        return Intrinsics(
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
            width=int(width),
            height=int(height),
            k1=self.k1,
        )

    @classmethod
    def from_fov(cls, hfov_deg: float, width: int, height: int) -> Intrinsics:
        """Square pixels, principal point at the image centre, horizontal field of view in degrees."""
        if not 1.0 < hfov_deg < 179.0:
            raise ValueError(f"horizontal field of view must be in (1, 179) degrees, got {hfov_deg}")
        f = 0.5 * width / np.tan(np.radians(hfov_deg) / 2.0)
        return cls(f, f, (width - 1) / 2.0, (height - 1) / 2.0, int(width), int(height))

    @classmethod
    def from_K(cls, K: np.ndarray, width: int, height: int) -> Intrinsics:
        K = np.asarray(K, dtype=np.float64)
        if K.shape != (3, 3):
            raise ValueError(f"K must be 3x3, got {K.shape}")
        return cls(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), int(width), int(height))

    @classmethod
    def from_dict(cls, d: dict) -> Intrinsics:
        """Read back :meth:`to_dict`'s form (``k1`` absent or null: 0). KeyError, TypeError or
        ValueError on a missing or malformed field (callers name the file)."""
        return cls(float(d["fx"]), float(d["fy"]), float(d["cx"]), float(d["cy"]), int(d["width"]), int(d["height"]),
                   k1=float(d.get("k1") or 0.0))

    def to_dict(self) -> dict:
        """JSON form: the fields, the pixel-centre convention and the lens model."""
        return {
            "fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy,
            "width": self.width, "height": self.height, "k1": self.k1,
            "model": "SIMPLE_RADIAL" if self.k1 != 0.0 else "PINHOLE",
            "pixel_centre": "opencv (first pixel centre at 0,0)",
        }


@dataclass
class Frame:
    """One decoded frame.

    ``index`` is the frame's position in the source (before stride); ``image`` is
    uint8 RGB ``(H, W, 3)``; ``time`` is the presentation time in seconds when known;
    ``name`` is the file name for image sequences.
    """

    index: int
    image: np.ndarray
    time: float | None = None
    name: str | None = None

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass
class Cameras:
    """Cameras of a clip: shared intrinsics and one camera-to-world pose per processed frame.

    ``poses[i]`` belongs to the i-th processed frame (after range and stride) and is
    ``None`` where that frame has no pose. ``pose_sources[i]`` says how ``poses[i]`` was
    obtained (one of :data:`POSE_SOURCES`, ``None`` where there is no pose; an empty list
    means ``"unknown"`` for every pose, see :meth:`pose_source`). ``points`` is an optional
    sparse cloud ``(N, 3)`` in world coordinates with ``colors`` ``(N, 3)`` uint8. ``units``
    says whether translations are metres or scene units. ``no_parallax`` is set (to what
    stopped the geometry and what to do, one sentence) when the cameras cannot give depth:
    a static camera, pure rotation, or structure from motion that built no model.
    """

    intrinsics: Intrinsics
    poses: list[np.ndarray | None]
    frame_indices: list[int] = field(default_factory=list)
    points: np.ndarray | None = None
    colors: np.ndarray | None = None
    units: Units = "scene"
    source: str = "unknown"
    warnings: list[str] = field(default_factory=list)
    pose_sources: list[str | None] = field(default_factory=list)
    no_parallax: str | None = None
    #: shots of the clip when it has scene cuts or was reconstructed in chunks: dicts with
    #: ``start``/``stop`` (positions, stop excluded), ``units`` and, when chunked, ``chunks``
    #: (the boundary residuals); empty = one shot. Poses of different shots share no world
    #: or scale.
    shots: list[dict] = field(default_factory=list)

    def shot_of(self, i: int) -> int:
        """Index of the shot holding frame position ``i`` (0 when the clip is one shot)."""
        for k, shot in enumerate(self.shots):
            if shot["start"] <= i < shot["stop"]:
                return k
        return 0

    def points_of_shot(self, i: int) -> np.ndarray | None:
        """The sparse points in the world of frame position ``i``'s shot (all of them for one shot)."""
        if self.points is None or not self.shots or "points" not in self.shots[self.shot_of(i)]:
            return self.points
        a, b = self.shots[self.shot_of(i)]["points"]
        return self.points[a:b]

    def __post_init__(self) -> None:
        for i, p in enumerate(self.poses):
            if p is not None and np.asarray(p).shape != (4, 4):
                raise ValueError(f"pose {i} must be a 4x4 camera-to-world matrix, got {np.asarray(p).shape}")
        if self.pose_sources and len(self.pose_sources) != len(self.poses):
            raise ValueError(f"pose_sources has {len(self.pose_sources)} entries for {len(self.poses)} poses")
        bad = {s for s in self.pose_sources if s is not None and s not in POSE_SOURCES}
        if bad:
            raise ValueError(f"unknown pose sources {sorted(bad)}: expected {', '.join(POSE_SOURCES)}")

    def pose_source(self, i: int) -> str | None:
        """How pose ``i`` was obtained (:data:`POSE_SOURCES`); None where frame ``i`` has no pose."""
        if i >= len(self.poses) or self.poses[i] is None:
            return None
        return (self.pose_sources[i] if self.pose_sources else None) or "unknown"

    @property
    def num_posed(self) -> int:
        return sum(p is not None for p in self.poses)


@dataclass
class PriorOutput:
    """What a depth prior yields for one frame, at the prior's working resolution.

    ``kind`` says what ``values`` holds: ``"depth"`` (z-depth, 0 = invalid) or
    ``"disparity"`` (affine-invariant ``1/depth`` up to scale and shift, 0 = invalid).
    ``metric`` is True when depth is in metres. ``confidence`` is in ``[0, 1]``
    (``None`` means: 1 where values are valid).
    """

    index: int
    values: np.ndarray
    kind: Literal["depth", "disparity"] = "depth"
    metric: bool = False
    confidence: np.ndarray | None = None


@dataclass
class DepthFrame:
    """Final depth of one frame: z-depth ``(H, W)`` float32 (0 = invalid), confidence in ``[0, 1]``."""

    index: int
    depth: np.ndarray
    confidence: np.ndarray
    units: Units = "scene"
    pose: np.ndarray | None = None

    @property
    def valid(self) -> np.ndarray:
        return np.isfinite(self.depth) & (self.depth > 0)
