"""Scoring rendered novel views against true ones (synthetic clips with exact depth and poses).

* :func:`seen_mask`: the pixels of a target view whose surface the source view sees (the true
  target depth unprojected, projected into the source, and found there within 2 % in depth).
* :func:`score_view`: PSNR on the seen pixels and on all pixels, and SSIM (scikit-image) on all
  pixels, after one gain that matches the rendering's brightness to the truth on the seen pixels
  (synthetic clips may drift in exposure from frame to frame).
"""

from __future__ import annotations

import numpy as np

__all__ = ["seen_mask", "score_view", "psnr"]


def seen_mask(K: np.ndarray, src_depth: np.ndarray, src_pose: np.ndarray, tgt_depth: np.ndarray,
              tgt_pose: np.ndarray, *, tol: float = 0.02, hidden: bool = False) -> np.ndarray:
    """Boolean ``(H, W)``: target pixels whose surface is visible in the source view (see module
    docstring); with ``hidden``, instead the disoccluded ones: inside the source's image but
    behind a nearer surface there (more than ``3 tol`` farther than the source's depth)."""
    h, w = tgt_depth.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    z = tgt_depth.astype(np.float64)
    X = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z, np.ones_like(z)], 0).reshape(4, -1)
    Xs = (np.linalg.inv(src_pose) @ tgt_pose @ X)[:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        us = K[0, 0] * Xs[0] / Xs[2] + K[0, 2]
        vs = K[1, 1] * Xs[1] / Xs[2] + K[1, 2]
    sh, sw = src_depth.shape
    inside = (Xs[2] > 0) & (us >= -0.5) & (us <= sw - 0.5) & (vs >= -0.5) & (vs <= sh - 0.5) & (z.ravel() > 0)
    ui = np.clip(np.rint(np.nan_to_num(us)), 0, sw - 1).astype(int)
    vi = np.clip(np.rint(np.nan_to_num(vs)), 0, sh - 1).astype(int)
    ds = src_depth[vi, ui]
    if hidden:
        return (inside & (Xs[2] > ds * (1.0 + 3.0 * tol))).reshape(h, w)
    ok = inside & (np.abs(ds - Xs[2]) < tol * Xs[2])
    return ok.reshape(h, w)


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB of two uint8-range images on ``mask`` (all pixels when None)."""
    d = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    if mask is not None:
        d = d[mask]
    mse = float(d.mean()) if d.size else float("nan")
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)


def score_view(pred: np.ndarray, truth: np.ndarray, seen: np.ndarray) -> dict[str, float]:
    """``psnr_seen``, ``psnr_all``, ``ssim_all`` and the ``gain`` applied (see module docstring)."""
    from skimage.metrics import structural_similarity

    p = pred.astype(np.float64)
    t = truth.astype(np.float64)
    gain = float(np.sum(p[seen] * t[seen]) / max(np.sum(p[seen] ** 2), 1e-9)) if seen.any() else 1.0
    g = np.clip(p * gain, 0, 255)
    return {
        "psnr_seen": psnr(g, t, seen),
        "psnr_all": psnr(g, t),
        "ssim_all": float(structural_similarity(g, t, channel_axis=2, data_range=255.0)),
        "gain": gain,
        "seen": float(seen.mean()),
    }
