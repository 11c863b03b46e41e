"""Radial lens distortion (COLMAP ``SIMPLE_RADIAL``): resampling between the input pixels and a pinhole grid.

Model (one coefficient ``k1`` on normalised coordinates, so unchanged by resizing): a camera
point ``(X, Y, Z)`` has normalised coordinates ``x = X / Z``, ``y = Y / Z``, ``r^2 = x^2 + y^2``
and lands at the input (distorted) pixel ``u = fx * x * (1 + k1 r^2) + cx``,
``v = fy * y * (1 + k1 r^2) + cy`` (OpenCV pixel centres; COLMAP's ``cx`` is ours + 0.5).
This is OpenCV's model with distortion coefficients ``(k1, 0, 0, 0)``.

The *pinhole grid* of a camera is the image of the same size and the same ``K`` without the
distortion: pinhole pixel ``(u', v') = (fx * x + cx, fy * y + cy)``. :class:`RadialLens` moves
images and depth maps between the two grids with OpenCV remap grids built once per image size:

* :meth:`RadialLens.undistort_image`: input image -> pinhole image (bilinear; pinhole pixels
  whose ray falls outside the input image, :meth:`RadialLens.unseen`, repeat its edge);
* :meth:`RadialLens.distort_depth`: pinhole-grid depth -> input pixels;
  :meth:`RadialLens.undistort_depth`: the inverse. Depth resampling is invalid-aware: bilinear
  in disparity (exact on planes) where the four neighbours are valid and agree within
  ``edge_ratio``, else the nearest neighbour; ``0`` stays invalid and is never blended in, and
  pixels whose source lies outside the other grid are invalid (never invented).

For ``k1 < 0`` the model folds over beyond ``r^2 = 1 / (3 |k1|)``; pinhole pixels past the fold
and input pixels without a preimage are invalid.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import cv2
import numpy as np

from ..types import Intrinsics

__all__ = ["RadialLens", "lens_for", "pixel_rays", "MIN_CORNER_SHIFT_PX"]

log = logging.getLogger(__name__)

#: distortion below this many pixels at the image corner is left alone (smaller than resampling blur)
MIN_CORNER_SHIFT_PX = 0.5

_OUTSIDE = -1.0e6  # a remap coordinate that is outside every image
_ITER = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)


class RadialLens:
    """A ``SIMPLE_RADIAL`` camera (``intrinsics.k1``) and its remap grids, built once per ``(width, height)``.

    Methods take maps of any size and use ``intrinsics.scaled`` to that size.
    ``edge_ratio``: largest max/min depth ratio of four neighbours that is still interpolated.
    """

    def __init__(self, intrinsics: Intrinsics, *, edge_ratio: float = 1.05) -> None:
        self.intrinsics = intrinsics
        self.k1 = float(intrinsics.k1)
        self.edge_ratio = float(edge_ratio)
        self._to_input: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._to_pinhole: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._samplers: dict[tuple[str, int, int], _DepthSampler] = {}
        self._outside: dict[tuple[int, int], np.ndarray] = {}

    # ------------------------------------------------------------------ geometry
    def _camera(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        intr = self.intrinsics.scaled(width, height) if (width, height) != (self.intrinsics.width,
                                                                           self.intrinsics.height) else self.intrinsics
        return intr.K, np.array([self.k1, 0.0, 0.0, 0.0])

    def _fold_r2(self) -> float:
        """Largest normalised ``r^2`` where the model is one-to-one (inf for ``k1 >= 0``)."""
        return np.inf if self.k1 >= 0 else 1.0 / (3.0 * -self.k1)

    def distort_normalised(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised pinhole coordinates -> normalised distorted coordinates (the model, closed form)."""
        s = 1.0 + self.k1 * (x * x + y * y)
        return x * s, y * s

    def corner_shift_px(self, width: int | None = None, height: int | None = None) -> float:
        """How far (pixels, at ``width x height``, default the camera's size) the distortion moves the
        pinhole image's corner pixel centres; the largest of the four."""
        w = int(width or self.intrinsics.width)
        h = int(height or self.intrinsics.height)
        K, _ = self._camera(w, h)
        u = np.array([0.0, w - 1.0, 0.0, w - 1.0])
        v = np.array([0.0, 0.0, h - 1.0, h - 1.0])
        x, y = (u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1]
        xd, yd = self.distort_normalised(x, y)
        return float(np.max(np.hypot((xd - x) * K[0, 0], (yd - y) * K[1, 1])))

    def describe(self, width: int | None = None, height: int | None = None) -> str:
        """One line naming the model, ``k1`` and its size at the corner (the message the pipeline logs)."""
        w = int(width or self.intrinsics.width)
        h = int(height or self.intrinsics.height)
        return f"SIMPLE_RADIAL k1={self.k1:.6g} ({self.corner_shift_px(w, h):.2f} px at the corner of {w}x{h})"

    # ------------------------------------------------------------------ remap grids
    def input_positions(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """For every pinhole pixel ``(H, W)``: where its ray lands in the input image (float32
        pixel coordinates, far outside the image past the fold of ``k1 < 0``)."""
        key = (int(width), int(height))
        if key not in self._to_input:
            K, D = self._camera(*key)
            mx, my = cv2.initUndistortRectifyMap(K, D, None, K, key, cv2.CV_32FC1)
            if np.isfinite(self._fold_r2()):
                vv, uu = np.mgrid[0:key[1], 0:key[0]].astype(np.float64)
                r2 = ((uu - K[0, 2]) / K[0, 0]) ** 2 + ((vv - K[1, 2]) / K[1, 1]) ** 2
                fold = r2 >= self._fold_r2()
                mx[fold] = _OUTSIDE
                my[fold] = _OUTSIDE
            self._to_input[key] = (mx, my)
        return self._to_input[key]

    def undistort_pixels(self, u: np.ndarray, v: np.ndarray, width: int, height: int
                         ) -> tuple[np.ndarray, np.ndarray]:
        """Input pixel positions ``(u, v)`` (any shape, at ``width x height``) -> normalised pinhole
        coordinates ``(x, y)`` of their rays (float64; NaN where a position has no preimage).
        Iterative (OpenCV), kept only where it reproduces the position to 1e-3 px."""
        K, D = self._camera(int(width), int(height))
        u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
        pts = np.stack([u.ravel(), v.ravel()], axis=1).reshape(-1, 1, 2)
        und = cv2.undistortPoints(pts, K, D, criteria=_ITER).reshape(-1, 2)
        x, y = und[:, 0].reshape(u.shape), und[:, 1].reshape(u.shape)
        xd, yd = self.distort_normalised(x, y)
        err = np.hypot((xd - (u - K[0, 2]) / K[0, 0]) * K[0, 0], (yd - (v - K[1, 2]) / K[1, 1]) * K[1, 1])
        bad = ~(err < 1e-3) | (x * x + y * y >= self._fold_r2())  # no convergence past the fold of k1 < 0
        return np.where(bad, np.nan, x), np.where(bad, np.nan, y)

    def pinhole_positions(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """For every input pixel ``(H, W)``: its position in the pinhole grid (float64 pixel
        coordinates; far outside where the pixel has no preimage)."""
        key = (int(width), int(height))
        if key not in self._to_pinhole:
            K, _ = self._camera(*key)
            vv, uu = np.mgrid[0:key[1], 0:key[0]].astype(np.float64)
            x, y = self.undistort_pixels(uu, vv, *key)
            bad = np.isnan(x)
            px = np.where(bad, _OUTSIDE, x * K[0, 0] + K[0, 2])
            py = np.where(bad, _OUTSIDE, y * K[1, 1] + K[1, 2])
            self._to_pinhole[key] = (px, py)
        return self._to_pinhole[key]

    def normalised_rays(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """Normalised pinhole coordinates ``(x, y)`` ``(H, W)`` of the ray of every input pixel
        (``X_cam = z * (x, y, 1)``); NaN where a pixel has no preimage."""
        vv, uu = np.mgrid[0:int(height), 0:int(width)].astype(np.float64)
        return self.undistort_pixels(uu, vv, width, height)

    # ------------------------------------------------------------------ resampling
    def undistort_image(self, image: np.ndarray) -> np.ndarray:
        """Input image ``(H, W[, C])`` -> the pinhole image of the same size and ``K`` (bilinear).

        Pinhole pixels whose ray falls outside the input (:meth:`unseen`) repeat the nearest edge
        pixel: a working image for matching (black there gave matching windows a false edge and
        more gross errors along the image border); depth found there is dropped with
        :meth:`drop_unseen`, and :meth:`distort_depth` never reads it back.
        """
        h, w = image.shape[:2]
        mx, my = self.input_positions(w, h)
        return cv2.remap(image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def unseen(self, width: int, height: int) -> np.ndarray:
        """Pinhole pixels ``(H, W)`` bool whose ray falls outside the input image (nothing was seen there)."""
        key = (int(width), int(height))
        if key not in self._outside:
            mx, my = self.input_positions(*key)
            self._outside[key] = (mx < -0.5) | (mx > key[0] - 0.5) | (my < -0.5) | (my > key[1] - 0.5)
        return self._outside[key]

    def drop_unseen(self, depth: np.ndarray, confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pinhole-grid depth and confidence with the :meth:`unseen` pixels set invalid (0)."""
        mask = self.unseen(depth.shape[1], depth.shape[0])
        return np.where(mask, 0.0, depth).astype(np.float32), np.where(mask, 0.0, confidence).astype(np.float32)

    def distort_depth(self, depth: np.ndarray, confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pinhole-grid z-depth ``(H, W)`` and confidence -> the same maps on the input pixels (float32)."""
        h, w = depth.shape
        key = ("distort", w, h)
        if key not in self._samplers:
            self._samplers[key] = _DepthSampler(*self.pinhole_positions(w, h), w, h, self.edge_ratio)
        return self._samplers[key](depth, confidence)

    def undistort_depth(self, depth: np.ndarray, confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Input-pixel z-depth ``(H, W)`` and confidence -> the same maps on the pinhole grid (float32)."""
        h, w = depth.shape
        key = ("undistort", w, h)
        if key not in self._samplers:
            self._samplers[key] = _DepthSampler(*self.input_positions(w, h), w, h, self.edge_ratio)
        return self._samplers[key](depth, confidence)


def lens_for(intrinsics: Intrinsics | None, width: int, height: int,
             min_shift_px: float = MIN_CORNER_SHIFT_PX) -> RadialLens | None:
    """The lens of ``intrinsics`` when its distortion moves a corner by more than ``min_shift_px``
    pixels at ``width x height``; else None (treat the camera as a pinhole). Logs the decision
    (INFO) when there is a distortion: this is the one place the run reports it."""
    if intrinsics is None or intrinsics.k1 == 0.0:
        return None
    lens = RadialLens(intrinsics)
    if lens.corner_shift_px(width, height) <= min_shift_px:
        log.info("lens: %s is under %.1f px; frames are used as they are", lens.describe(width, height), min_shift_px)
        return None
    log.info("lens: %s; depth is estimated on undistorted frames and written in the input pixels",
             lens.describe(width, height))
    return lens


@lru_cache(maxsize=4)
def pixel_rays(intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`RadialLens.normalised_rays` of ``intrinsics`` at its own size, cached per camera
    (read only: the arrays are shared)."""
    x, y = RadialLens(intrinsics).normalised_rays(intrinsics.width, intrinsics.height)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


class _DepthSampler:
    """Invalid-aware resampling of ``(h, w)`` maps at fixed pixel positions ``(x, y)`` (each ``(H', W')``).

    Positions outside ``[-0.5, w - 0.5] x [-0.5, h - 0.5]`` are invalid. Inside: bilinear in
    disparity when the four neighbours are valid and within ``edge_ratio`` of each other, else
    the nearest neighbour (invalid if it is). The gather indices and weights are computed once.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, w: int, h: int, edge_ratio: float) -> None:
        self.shape, self.src_shape, self.edge_ratio = x.shape, (h, w), np.float32(edge_ratio)
        x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
        self.inside = (x >= -0.5) & (x <= w - 0.5) & (y >= -0.5) & (y <= h - 0.5)
        xc = np.clip(np.where(self.inside, x, 0.0), 0.0, w - 1.0)
        yc = np.clip(np.where(self.inside, y, 0.0), 0.0, h - 1.0)
        x0 = np.minimum(np.floor(xc).astype(np.intp), max(w - 2, 0))
        y0 = np.minimum(np.floor(yc).astype(np.intp), max(h - 2, 0))
        x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
        ax, ay = xc - x0, yc - y0
        self.index = np.stack([y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1])
        self.weight = np.stack([(1 - ax) * (1 - ay), ax * (1 - ay), (1 - ax) * ay, ax * ay]).astype(np.float32)
        self.nearest = np.take_along_axis(self.index, np.argmax(self.weight, axis=0)[None], 0)[0]

    def __call__(self, depth: np.ndarray, confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if depth.shape != self.src_shape or confidence.shape != self.src_shape:
            raise ValueError(f"depth {depth.shape} / confidence {confidence.shape} are not {self.src_shape}")
        d = np.asarray(depth, np.float32).ravel()
        d = np.where(np.isfinite(d) & (d > 0), d, np.float32(0.0))
        c = np.asarray(confidence, np.float32).ravel()
        dv = d[self.index]
        valid4 = (dv > 0).all(0)
        smooth = valid4 & (dv.max(0) <= self.edge_ratio * dv.min(0))
        with np.errstate(divide="ignore"):
            disp = (self.weight / np.where(valid4, dv, np.float32(1.0))).sum(0)
        out_d = np.where(smooth, 1.0 / np.where(smooth, disp, np.float32(1.0)), d[self.nearest])
        out_c = np.where(smooth, (self.weight * c[self.index]).sum(0), c[self.nearest])
        keep = self.inside & (out_d > 0)
        return (np.where(keep, out_d, 0.0).astype(np.float32).reshape(self.shape),
                np.clip(np.where(keep, out_c, 0.0), 0.0, 1.0).astype(np.float32).reshape(self.shape))
