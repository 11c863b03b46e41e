"""Planar completion: the weak pixels of a one-coloured image region take the plane that the
region's confident depth lies on.

Real rooms are mostly walls, floors, cabinet fronts and table tops: surfaces without texture,
where multi-view matching finds depth only along edges and on the odd mark. An edge-aware
harmonic fill (:func:`~steadydepth.consistency.completion.complete_depth`) reproduces a plane
only when the hole is closed on every side by pixels on that plane; a wall cut by the image
border or by another surface bends towards whatever it touches. Here the guide image is cut
into regions of one colour (Felzenszwalb's graph segmentation, :mod:`skimage.segmentation`);
in each region a plane is fitted to the confident pixels, and when they support it (most of
them within ``tol`` of it, spread over the region rather than along a line) the region's weak
pixels take the plane's depth.

A plane is affine in *disparity* over pixel coordinates whatever the intrinsics:
``1 / z = a u + b v + c`` (pixel centres at integer coordinates). Depth is z-depth, ``0`` =
invalid; confidence in ``[0, 1]``; weak pixels are those with confidence at most
``weak_confidence`` (the fill's own confidence); their confidence is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import invert_valid

__all__ = ["PlanarSettings", "planar_fill"]


@dataclass(frozen=True)
class PlanarSettings:
    """Settings of :func:`planar_fill`.

    ``scale``, ``sigma``, ``min_size``: Felzenszwalb segmentation (larger scale: larger
    regions; ``min_size`` in pixels); ``min_support``: confident pixels a region needs;
    ``tol``: relative disparity residual of an inlier; ``min_inliers``: inlier share of the
    confident pixels; ``min_spread``: the inliers' spread across their narrowest direction,
    relative to the region's own (a plane seen along a line only is not extrapolated);
    ``max_change``: a weak pixel takes the plane only where the plane's disparity is within
    this relative change of its own (a larger one is taken for another surface of the same
    colour); ``iters``: reweighted least-squares rounds.
    """

    scale: float = 200.0
    sigma: float = 0.8
    min_size: int = 40
    min_support: int = 30
    tol: float = 0.02
    min_inliers: float = 0.7
    min_spread: float = 0.3
    max_change: float = 0.2
    iters: int = 4


def _fit_plane(u: np.ndarray, v: np.ndarray, y: np.ndarray, w: np.ndarray, st: PlanarSettings
               ) -> tuple[np.ndarray, np.ndarray] | None:
    """Robust weighted fit of ``y ~ a u + b v + c`` on the relative residual: ``(abc, inliers)``."""
    A = np.stack([u, v, np.ones_like(u)], axis=1) / y[:, None]
    ww = w.copy()
    p = None
    for _ in range(st.iters):
        sw = np.sqrt(ww)
        p, *_ = np.linalg.lstsq(A * sw[:, None], sw, rcond=None)
        r = np.abs(A @ p - 1.0)
        ww = w * np.clip(1.0 - (r / (3.0 * st.tol)) ** 2, 0.0, None) ** 2  # Tukey biweight
        if ww.sum() <= 0:
            return None
    return p, np.abs(A @ p - 1.0) < st.tol


def _spread(u: np.ndarray, v: np.ndarray) -> float:
    """Standard deviation of the points along their narrowest direction."""
    if u.size < 3:
        return 0.0
    cov = np.cov(np.stack([u, v]))
    return float(np.sqrt(max(np.linalg.eigvalsh(cov)[0], 0.0)))


def planar_fill(depth: np.ndarray, confidence: np.ndarray, guide: np.ndarray, *,
                weak_confidence: float, settings: PlanarSettings | None = None
                ) -> tuple[np.ndarray, dict]:
    """Depth ``(H, W)`` float32 with the weak pixels of supported planar regions replaced by
    their plane (see the module docstring), and stats ``{"regions", "planar", "pixels"}``.

    ``guide``: RGB uint8 ``(H, W, 3)`` (or grayscale) at the depth's resolution. Weak pixels
    without depth (``0``) and those whose plane disparity differs from their own by more than
    ``settings.max_change`` keep their depth.
    """
    from skimage.segmentation import felzenszwalb

    st = settings or PlanarSettings()
    d = np.asarray(depth, np.float32)
    c = np.asarray(confidence, np.float32)
    h, w = d.shape
    labels = felzenszwalb(np.asarray(guide), scale=st.scale, sigma=st.sigma, min_size=st.min_size)
    flat = labels.ravel()
    order = np.argsort(flat, kind="stable")
    bounds = np.flatnonzero(np.diff(flat[order])) + 1
    vv, uu = np.divmod(np.arange(h * w), w)
    dflat, cflat = d.ravel(), c.ravel()
    out = dflat.copy()
    strong = (cflat > weak_confidence) & (dflat > 0)
    planar = filled = 0
    groups = np.split(order, bounds)
    for idx in groups:
        sup = idx[strong[idx]]
        if sup.size < st.min_support or sup.size == idx.size:
            continue
        u, v, y = uu[sup].astype(np.float64), vv[sup].astype(np.float64), 1.0 / dflat[sup].astype(np.float64)
        fit = _fit_plane(u, v, y, cflat[sup].astype(np.float64), st)
        if fit is None:
            continue
        p, inl = fit
        if inl.mean() < st.min_inliers:
            continue
        if _spread(u[inl], v[inl]) < st.min_spread * _spread(uu[idx].astype(np.float64), vv[idx].astype(np.float64)):
            continue
        weak = idx[~strong[idx]]
        disp = p[0] * uu[weak] + p[1] * vv[weak] + p[2]
        own = invert_valid(dflat[weak])
        ok = (own > 0) & (np.abs(disp - own) < st.max_change * own)
        out[weak[ok]] = (1.0 / disp[ok]).astype(np.float32)
        planar += 1
        filled += int(ok.sum())
    return out.reshape(h, w), {"regions": len(groups), "planar": planar, "pixels": filled}
