"""Robust least-squares pieces of the clip alignment: Huber weights, robust location and affine
fits, the frame-graph normal equations and their solve with fixed (gauge) unknowns.
"""

from __future__ import annotations

import cv2
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

__all__ = []


def _smooth_mask(values: np.ndarray, valid: np.ndarray, ratio: float = 1.1) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood is valid and varies by less than ``ratio`` (max / min)."""
    big = np.where(valid, values, np.float32(np.inf)).astype(np.float32)
    lo = cv2.erode(big, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    hi = cv2.dilate(np.where(valid, values, 0).astype(np.float32), np.ones((3, 3), np.uint8),
                    borderType=cv2.BORDER_REPLICATE)
    return np.isfinite(lo) & (lo > 0) & (hi <= ratio * lo)


def _huber_weights(r: np.ndarray, k: float, *, floor: float = 1e-3) -> np.ndarray:
    """Huber IRLS weights with a robust scale (1.4826 MAD, at least ``floor``)."""
    if r.size == 0:
        return np.ones(0)
    sigma = max(1.4826 * float(np.median(np.abs(r))), floor)
    a = np.abs(r) / sigma
    return np.where(a <= k, 1.0, k / np.maximum(a, 1e-12))


def _robust_location(r: np.ndarray, w: np.ndarray | None = None, iters: int = 6) -> tuple[float, float, np.ndarray]:
    """Huber location of ``r`` (weights ``w``): ``(value, median absolute residual, weights)``."""
    w0 = np.ones_like(r) if w is None else np.asarray(w, np.float64)
    m = float(np.median(r))
    hw = np.ones_like(r)
    for _ in range(iters):
        hw = _huber_weights(r - m, 1.5, floor=1e-3)
        ww = w0 * hw
        m = float(np.sum(ww * r) / max(np.sum(ww), 1e-12))
    return m, float(np.median(np.abs(r - m))), hw


def _robust_affine(
    x: np.ndarray, y: np.ndarray, k: float, w: np.ndarray | None = None, iters: int = 8
) -> tuple[float | None, float, float]:
    """Robust ``y ~ a x + b`` on relative residuals: ``(a, b, median |relative residual|)``.

    The slope is the geometric mean of the y-on-x and x-on-y weighted regressions (unbiased
    when both sides are noisy, unlike ordinary least squares); Huber IRLS on the relative
    residual ``(a x + b - y) / y`` makes it robust. Returns ``a = None`` when degenerate.
    """
    w0 = np.ones_like(x) if w is None else np.asarray(w, np.float64)
    hw = np.ones_like(x)
    a, b = 1.0, 0.0
    res = float("inf")
    for _ in range(iters):
        ww = w0 * hw / np.maximum(y, 1e-12) ** 2
        sw = ww.sum()
        if sw <= 0:
            return None, 0.0, float("inf")
        mx, my = (ww * x).sum() / sw, (ww * y).sum() / sw
        cxx = (ww * (x - mx) ** 2).sum()
        cyy = (ww * (y - my) ** 2).sum()
        cxy = (ww * (x - mx) * (y - my)).sum()
        if cxx <= 0 or cyy <= 0 or cxy <= 0:
            return None, 0.0, float("inf")
        a = float(np.sqrt(cyy / cxx))  # geometric mean of cxy/cxx and cyy/cxy
        b = float(my - a * mx)
        r = (a * x + b - y) / np.maximum(np.abs(y), 1e-12)
        hw = _huber_weights(r, k, floor=1e-3)
        res = float(np.median(np.abs(r)))
    return a, b, res


def _graph_system(
    T: int, ri: np.ndarray, rj: np.ndarray, val: np.ndarray, wsq: np.ndarray,
    ai: np.ndarray, aval: np.ndarray, awsq: np.ndarray,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Rows ``w (u_i - u_j) = w val`` for pairs and ``w u_i = w aval`` for anchors."""
    n, m = ri.size, ai.size
    rows = np.concatenate([np.arange(n), np.arange(n), n + np.arange(m)])
    cols = np.concatenate([ri, rj, ai])
    data = np.concatenate([wsq, -wsq, awsq])
    A = sp.csr_matrix((data, (rows, cols)), shape=(n + m, T))
    return A, np.concatenate([wsq * val, awsq * aval])


def _solve_fixed(
    A: sp.csr_matrix, b: np.ndarray, T: int, fixed: int | None, fixed_value: float, reg_target: np.ndarray
) -> np.ndarray:
    """``min |A x - b|^2`` with ``x[fixed] = fixed_value``; a tiny Tikhonov term towards
    ``reg_target`` keeps frames without any constraint solvable (they keep that value)."""
    x0 = np.asarray(reg_target, np.float64).copy()
    if fixed is not None:
        x0[fixed] = fixed_value
        free = np.setdiff1d(np.arange(T), [fixed])
        b = b - A[:, [fixed]] @ x0[[fixed]]
        A = A[:, free]
    else:
        free = np.arange(T)
    if free.size == 0:
        return x0
    AtA = (A.T @ A).tocsc()
    Atb = A.T @ b
    diag = AtA.diagonal()
    lam = 1e-6 * max(float(diag.mean()) if diag.size else 1.0, 1e-12)
    AtA = AtA + lam * sp.identity(free.size, format="csc")
    x = x0.copy()
    x[free] = spla.spsolve(AtA, Atb + lam * x0[free])
    return x
