"""Local fit of a learned disparity to confident geometry: a smooth scale and shift *field*.

Learned depth models are wrong in smooth, low-frequency ways (a tilted floor, a compressed
far wall) and their error changes from frame to frame; one scale and shift per frame (or per
clip) cannot undo that. :func:`fit_local_field` fits, per frame,

    ``geometric disparity  ~  s(u, v) * learned disparity + t(u, v)``

where ``s`` and ``t`` are bilinear interpolations of values on a coarse grid of nodes
(``grid = (rows, cols)``, nodes on the image corners and evenly between). The fit is a small
linear least-squares problem on the *relative* residual ``(s x + t - y) / y`` over (a sample
of) the confident geometric pixels, weighted by the geometric confidence, made robust by
Huber IRLS, and regularised by

* first differences between neighbouring nodes (``smooth``): the field is smooth, and nodes
  without data take their neighbours' values (the fit extrapolates smoothly into regions where
  the geometry is weak or empty);
* a weak pull (``ridge``) towards the frame's global robust fit, which fixes the nodes of a
  frame whose confident geometry covers little of the image.

Values are normalised by their medians before the fit (the regularisation weights do not
depend on units). Pixels are at integer coordinates; all maps of a frame have the same
``(H, W)`` shape; disparity and depth ``0`` = invalid.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .robust import _huber_weights, _robust_affine

__all__ = ["LocalFieldSettings", "LocalField", "fit_local_field", "weak_geometry_weight"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalFieldSettings:
    """Settings of :func:`fit_local_field`.

    ``grid``: nodes (rows, cols) of the scale/shift field; ``smooth``: weight of the squared
    first differences of neighbouring nodes (relative to the mean data term); ``ridge``: weight
    of the pull of every node towards the frame's global fit; ``min_confidence``: geometric
    pixels used; ``min_pixels``: fewer such pixels and no field is fitted; ``samples``: pixels
    sampled for the fit; ``iters``: Huber IRLS rounds.
    """

    grid: tuple[int, int] = (6, 8)
    smooth: float = 1e-3
    ridge: float = 1e-5
    min_confidence: float = 0.5
    min_pixels: int = 200
    samples: int = 6000
    iters: int = 5
    huber_k: float = 1.5
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.grid) != 2 or min(self.grid) < 2:
            raise InputError(f"local fit: grid must be two node counts >= 2, got {self.grid}")
        if self.smooth < 0 or self.ridge <= 0:
            raise InputError(f"local fit: smooth must be >= 0 and ridge > 0, got {self.smooth}, {self.ridge}")


def _hat(n_pix: int, n_nodes: int) -> np.ndarray:
    """``(n_pix, n_nodes)`` linear interpolation weights of nodes at ``k (n_pix - 1) / (n_nodes - 1)``."""
    pos = np.arange(n_pix, dtype=np.float64) * (n_nodes - 1) / max(n_pix - 1, 1)
    i0 = np.clip(np.floor(pos).astype(int), 0, n_nodes - 2)
    f = pos - i0
    m = np.zeros((n_pix, n_nodes))
    rows = np.arange(n_pix)
    m[rows, i0] = 1.0 - f
    m[rows, i0 + 1] = f
    return m


def _differences(gy: int, gx: int) -> np.ndarray:
    """First differences between horizontally and vertically neighbouring nodes, ``(E, gy * gx)``."""
    idx = np.arange(gy * gx).reshape(gy, gx)
    pairs = [(a, b) for a, b in zip(idx[:, :-1].ravel(), idx[:, 1:].ravel())]
    pairs += [(a, b) for a, b in zip(idx[:-1, :].ravel(), idx[1:, :].ravel())]
    D = np.zeros((len(pairs), gy * gx))
    for e, (a, b) in enumerate(pairs):
        D[e, a], D[e, b] = 1.0, -1.0
    return D


@dataclass
class LocalField:
    """A fitted field: ``scale`` and ``shift`` node values ``(rows, cols)`` in normalised units
    (learned / ``x_norm`` -> geometric disparity / ``y_norm``); ``pixels`` used; ``residual``:
    median relative residual of the field, ``global_residual`` that of the frame's global fit."""

    scale: np.ndarray
    shift: np.ndarray
    x_norm: float
    y_norm: float
    pixels: int
    residual: float
    global_residual: float

    def maps(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel ``(s, t)`` ``(H, W)`` in the caller's units: ``disparity = s * learned + t``."""
        gy, gx = self.scale.shape
        wy, wx = _hat(height, gy), _hat(width, gx)
        s = wy @ self.scale @ wx.T * (self.y_norm / self.x_norm)
        t = wy @ self.shift @ wx.T * self.y_norm
        return s, t

    def apply(self, learned: np.ndarray) -> np.ndarray:
        """Fitted disparity ``(H, W)`` float32 from learned disparity (0 where invalid or not positive)."""
        x = np.asarray(learned, np.float64)
        ok = np.isfinite(x) & (x > 0)
        s, t = self.maps(*x.shape)
        out = np.where(ok, s * np.where(ok, x, 0.0) + t, 0.0)
        return np.where(out > 0, out, 0.0).astype(np.float32)


def fit_local_field(
    learned: np.ndarray,
    geometric: np.ndarray,
    confidence: np.ndarray | None = None,
    settings: LocalFieldSettings | None = None,
) -> LocalField | None:
    """Fit the smooth scale/shift field of the module docstring for one frame.

    ``learned``: disparity (relative or aligned) ``(H, W)``; ``geometric``: z-depth;
    ``confidence``: of the geometry in ``[0, 1]``. Returns ``None`` when fewer than
    ``settings.min_pixels`` pixels are valid in both with enough confidence, or the frame's
    global fit is degenerate.
    """
    st = settings or LocalFieldSettings()
    x = np.asarray(learned, np.float64)
    g = np.asarray(geometric, np.float64)
    if x.ndim != 2 or x.shape != g.shape or (confidence is not None and np.shape(confidence) != x.shape):
        raise InputError(f"local fit: maps must be (H, W) of one shape, got {x.shape}, {g.shape}, "
                         f"{None if confidence is None else np.shape(confidence)}")
    c = np.ones_like(g) if confidence is None else np.clip(np.asarray(confidence, np.float64), 0.0, 1.0)
    ok = np.isfinite(x) & (x > 0) & np.isfinite(g) & (g > 0) & (c >= st.min_confidence)
    sel = np.flatnonzero(ok.ravel())
    if sel.size < st.min_pixels:
        return None
    if sel.size > st.samples:
        sel = np.random.default_rng(st.seed).choice(sel, st.samples, replace=False)
    h, w = x.shape
    v, u = np.divmod(sel, w)
    xs, ys, ws = x.ravel()[sel], 1.0 / g.ravel()[sel], c.ravel()[sel]
    xn, yn = float(np.median(xs)), float(np.median(ys))
    xs, ys = xs / xn, ys / yn
    if np.ptp(xs) < 1e-6:  # a constant map: the field is a smooth interpolation of the geometry
        a0, b0, res0 = 1.0, 0.0, float(np.median(np.abs(1.0 / ys - 1.0)))
    else:
        a0, b0, res0 = _robust_affine(xs, ys, st.huber_k, ws)
    if a0 is None or a0 <= 0:
        return None
    gy, gx = st.grid
    n = gy * gx
    basis = (_hat(h, gy)[v][:, :, None] * _hat(w, gx)[u][:, None, :]).reshape(sel.size, n)
    A = np.concatenate([basis * (xs / ys)[:, None], basis / ys[:, None]], axis=1)  # relative residual rows
    D = _differences(gy, gx)
    R = st.smooth * np.kron(np.eye(2), D.T @ D) + st.ridge * np.eye(2 * n)
    prior = np.concatenate([np.full(n, a0), np.full(n, b0)])
    hw = np.ones(sel.size)
    p = prior.copy()
    for _ in range(st.iters):
        ww = ws * hw
        ww = ww / ww.sum()
        AtW = A.T * ww
        lhs = AtW @ A + R
        rhs = AtW @ np.ones(sel.size) + st.ridge * prior
        p = np.linalg.solve(lhs, rhs)
        r = A @ p - 1.0
        hw = _huber_weights(r, st.huber_k, floor=1e-3)
    r = A @ p - 1.0
    return LocalField(p[:n].reshape(gy, gx), p[n:].reshape(gy, gx), xn, yn, int(ok.sum()),
                      float(np.median(np.abs(r))), float(res0))


def weak_geometry_weight(
    learned: np.ndarray,
    geometric: np.ndarray,
    confidence: np.ndarray | None = None,
    settings: LocalFieldSettings | None = None,
    *,
    blocks: tuple[int, int] = (4, 4),
) -> float | None:
    """How much to trust the geometry where it is *weak*, against the locally fitted learned
    disparity: an inverse-variance weight in ``[0, 1]`` estimated by spatial cross-validation.

    The confident pixels are split into two folds by a checkerboard of ``blocks`` image
    blocks. For each fold, two fields are fitted on the other fold: the learned disparity's
    (:func:`fit_local_field`) and the geometry's own smooth interpolation (the same fit with a
    constant learned map: what the geometry alone can say away from its confident pixels).
    Their median relative errors on the held-out fold, ``e_l`` and ``e_g``, give
    ``e_l**2 / (e_l**2 + e_g**2)``: near 1 when the learned shape extrapolates no better than
    smoothing the geometry, near 0 when it extrapolates much better; 1 when the learned map
    cannot be fitted at all (e.g. a negative slope). ``None`` when a fold has too few
    confident pixels.
    """
    st = settings or LocalFieldSettings()
    x = np.asarray(learned, np.float64)
    g = np.asarray(geometric, np.float64)
    c = np.ones_like(g) if confidence is None else np.clip(np.asarray(confidence, np.float64), 0.0, 1.0)
    h, w = x.shape
    by, bx = blocks
    v, u = np.mgrid[0:h, 0:w]
    fold = ((v * by // h) + (u * bx // w)) % 2
    ok = np.isfinite(x) & (x > 0) & np.isfinite(g) & (g > 0) & (c >= st.min_confidence)
    const = np.ones_like(x)
    errs = {"l": [], "g": []}
    for k in (0, 1):
        train = np.where(fold != k, c, 0.0)
        test = ok & (fold == k)
        if test.sum() < st.min_pixels:
            return None
        for key, values in (("l", x), ("g", const)):
            field = fit_local_field(values, g, train, st)
            if field is None:  # enough pixels (checked above): the learned map does not fit at all
                return 1.0 if key == "l" else None
            pred = field.apply(values)
            t = test & (pred > 0)
            errs[key].append(np.abs(pred[t] * g[t] - 1.0))
    e_l = float(np.median(np.concatenate(errs["l"])))
    e_g = float(np.median(np.concatenate(errs["g"])))
    return e_l**2 / max(e_l**2 + e_g**2, 1e-12)
