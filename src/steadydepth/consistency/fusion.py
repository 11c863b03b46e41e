"""Fusion of a learned depth prior with geometric (multi-view) depth.

Where the geometric depth is confident it is trusted; elsewhere the learned shape is kept,
scaled to the geometry:

1. :func:`fit_to_geometry` fits, per frame, the learned values to the geometric disparity
   on confident pixels: scale and shift in disparity for affine-invariant disparity
   (``kind="disparity"``), scale only for depth (``kind="depth"``), by Huber IRLS on the
   relative residual, weighted by the geometric confidence.
2. :func:`blend_with_geometry` blends the aligned learned disparity with the geometric
   disparity, per pixel, with weight ``w = confidence ** gamma`` for the geometry (0 where the
   geometry is invalid), in disparity.

:func:`fuse_with_geometry` does both; the result is z-depth in the geometry's units (metres
when the geometric source is metric). :class:`GeometryFuser` keeps the last good fit for
frames whose geometry has too few confident pixels.

Conventions: ``learned`` is disparity (affine-invariant) or z-depth, ``geometric`` is z-depth
(``0`` = invalid), confidences are in ``[0, 1]``; all maps of a frame have the same shape.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import InputError

__all__ = ["FusionFit", "fit_to_geometry", "blend_with_geometry", "fuse_with_geometry", "GeometryFuser"]

log = logging.getLogger(__name__)


@dataclass
class FusionFit:
    """Result of :func:`fit_to_geometry`: ``aligned = scale * learned + shift`` (disparity) or
    ``scale * learned`` (depth); ``pixels`` used, ``residual`` median relative residual."""

    scale: float
    shift: float
    pixels: int
    residual: float
    kind: str = "disparity"

    def apply_disparity(self, learned: np.ndarray) -> np.ndarray:
        """Aligned *disparity* (``0`` = invalid) from the learned values."""
        learned = np.asarray(learned, np.float64)
        ok = np.isfinite(learned) & (learned > 0)
        if self.kind == "disparity":
            out = np.where(ok, self.scale * learned + self.shift, 0.0)
        else:
            out = np.where(ok, 1.0 / np.where(ok, self.scale * learned, 1.0), 0.0)
        return np.where(out > 0, out, 0.0).astype(np.float32)


def _check(*arrays: np.ndarray) -> None:
    shapes = {np.asarray(a).shape for a in arrays if a is not None}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise InputError(f"fusion: all maps of a frame must be (H, W) with the same shape, got {sorted(shapes)}")


def fit_to_geometry(
    learned: np.ndarray,
    geometric: np.ndarray,
    confidence: np.ndarray | None = None,
    *,
    kind: Literal["disparity", "depth"] = "disparity",
    min_confidence: float = 0.5,
    min_pixels: int = 200,
    iters: int = 10,
) -> FusionFit | None:
    """Robust per-frame fit of the learned values to the geometric depth (see module docstring).

    Uses pixels where both are valid and ``confidence >= min_confidence``; returns ``None``
    when fewer than ``min_pixels`` such pixels exist or the fit is degenerate.
    """
    _check(learned, geometric, confidence)
    x = np.asarray(learned, np.float64)
    g = np.asarray(geometric, np.float64)
    c = np.ones_like(g) if confidence is None else np.asarray(confidence, np.float64)
    ok = np.isfinite(x) & (x > 0) & np.isfinite(g) & (g > 0) & (c >= min_confidence)
    n = int(ok.sum())
    if n < min_pixels:
        return None
    x, y, w0 = x[ok], 1.0 / g[ok], c[ok]
    hw = np.ones_like(x)
    if kind == "depth":
        r = np.log(1.0 / y) - np.log(x)  # log(geometric depth / learned depth)
        m = float(np.median(r))
        for _ in range(iters):
            e = r - m
            sigma = max(1.4826 * float(np.median(np.abs(e))), 1e-3)
            hw = np.where(np.abs(e) <= 1.5 * sigma, 1.0, 1.5 * sigma / np.maximum(np.abs(e), 1e-12))
            ww = w0 * hw
            m = float(np.sum(ww * r) / np.sum(ww))
        return FusionFit(float(np.exp(m)), 0.0, n, float(np.median(np.abs(r - m))), "depth")
    s, t = float(np.median(y) / np.median(x)), 0.0
    for _ in range(iters):
        ww = w0 * hw / y**2  # relative residuals
        A = np.stack([x, np.ones_like(x)], 1) * np.sqrt(ww)[:, None]
        sol, *_ = np.linalg.lstsq(A, y * np.sqrt(ww), rcond=None)
        if not np.all(np.isfinite(sol)) or sol[0] <= 0:
            break
        s, t = float(sol[0]), float(sol[1])
        e = (s * x + t - y) / y
        sigma = max(1.4826 * float(np.median(np.abs(e))), 1e-3)
        hw = np.where(np.abs(e) <= 1.5 * sigma, 1.0, 1.5 * sigma / np.maximum(np.abs(e), 1e-12))
    res = float(np.median(np.abs((s * x + t - y) / y)))
    return FusionFit(s, t, n, res, "disparity")


def blend_with_geometry(
    aligned_disparity: np.ndarray,
    geometric: np.ndarray,
    confidence: np.ndarray | None = None,
    *,
    gamma: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Blend aligned learned disparity with geometric depth: ``(depth, confidence)``.

    ``disp = w * 1/geometric + (1 - w) * aligned_disparity`` with ``w = confidence ** gamma``
    where the geometry is valid (else 0); pixels valid in neither are 0. The output
    confidence is ``max(w, 0.5)`` where the learned disparity is valid (it is a scaled
    estimate), ``w`` elsewhere.
    """
    _check(aligned_disparity, geometric, confidence)
    a = np.asarray(aligned_disparity, np.float64)
    g = np.asarray(geometric, np.float64)
    c = np.ones_like(g) if confidence is None else np.clip(np.asarray(confidence, np.float64), 0.0, 1.0)
    a_ok = np.isfinite(a) & (a > 0)
    g_ok = np.isfinite(g) & (g > 0)
    w = np.where(g_ok, c**gamma, 0.0)
    w = np.where(a_ok, w, np.where(g_ok, 1.0, 0.0))
    gd = np.where(g_ok, 1.0 / np.where(g_ok, g, 1.0), 0.0)
    disp = w * gd + (1.0 - w) * np.where(a_ok, a, 0.0)
    ok = disp > 0
    depth = np.where(ok, 1.0 / np.where(ok, disp, 1.0), 0.0).astype(np.float32)
    conf = np.where(a_ok, np.maximum(w, 0.5), w)
    return depth, np.where(ok, conf, 0.0).astype(np.float32)


def fuse_with_geometry(
    learned: np.ndarray,
    geometric: np.ndarray,
    confidence: np.ndarray | None = None,
    *,
    kind: Literal["disparity", "depth"] = "disparity",
    min_confidence: float = 0.5,
    gamma: float = 2.0,
    fallback: FusionFit | None = None,
) -> tuple[np.ndarray, np.ndarray, FusionFit | None]:
    """Fit then blend one frame: ``(depth, confidence, fit)``; depth in the geometry's units.

    When the geometry has too few confident pixels, ``fallback`` (e.g. the previous frame's
    fit) is used; without one, the geometry alone is returned where valid and ``fit`` is None.
    """
    fit = fit_to_geometry(learned, geometric, confidence, kind=kind, min_confidence=min_confidence)
    if fit is None:
        fit = fallback
        if fit is None:
            log.warning("fusion: too few confident geometric pixels and no earlier fit; keeping the geometry alone")
            g = np.asarray(geometric, np.float32)
            ok = np.isfinite(g) & (g > 0)
            c = np.ones_like(g) if confidence is None else np.asarray(confidence, np.float32)
            return np.where(ok, g, 0.0).astype(np.float32), np.where(ok, c, 0.0).astype(np.float32), None
    depth, conf = blend_with_geometry(fit.apply_disparity(learned), geometric, confidence, gamma=gamma)
    return depth, conf, fit


class GeometryFuser:
    """Frame-by-frame fusion that reuses the last good fit when a frame's geometry is weak."""

    def __init__(self, *, kind: Literal["disparity", "depth"] = "disparity", min_confidence: float = 0.5,
                 gamma: float = 2.0) -> None:
        self.kind = kind
        self.min_confidence = min_confidence
        self.gamma = gamma
        self.last_fit: FusionFit | None = None
        self.fits: list[FusionFit | None] = []

    def __call__(self, learned: np.ndarray, geometric: np.ndarray,
                 confidence: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        depth, conf, fit = fuse_with_geometry(
            learned, geometric, confidence, kind=self.kind, min_confidence=self.min_confidence,
            gamma=self.gamma, fallback=self.last_fit,
        )
        if fit is not None:
            self.last_fit = fit
        self.fits.append(fit)
        return depth, conf
