"""Automatic masks of the regions ``--animate sky|water`` sets in motion (simple, documented heuristics).

* ``sky``: pixels that are bright (luminance above the image's 40th percentile and above 90 of
  255), smooth (local gradient below 10 grey levels per pixel after a 2-pixel blur), far (depth at
  or above the 70th percentile, or invalid depth), and connected to the top row of the image.
* ``water``: smooth pixels (gradient below 14) in the lower half of the image, connected to its
  bottom row, whose colour stays within 2.5 standard deviations of the region's seed (the
  bottom row's smooth pixels).

Both masks are cleaned by a morphological opening and closing, small holes are filled, and a
mask under 1 % of the image is dropped (nothing moves; a warning says so).
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

__all__ = ["detect_region", "REGIONS"]

log = logging.getLogger(__name__)

REGIONS = ("sky", "water")


def _gradient(gray: np.ndarray) -> np.ndarray:
    g = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 2.0)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    return cv2.GaussianBlur(np.hypot(gx, gy), (0, 0), 2.0)


def _connected_to(cand: np.ndarray, row: int) -> np.ndarray:
    n, labels = cv2.connectedComponents(cand.astype(np.uint8), connectivity=4)
    keep = np.unique(labels[row][cand[row]])
    return np.isin(labels, keep[keep > 0])


def _clean(mask: np.ndarray) -> np.ndarray:
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    m = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, k)
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, k)
    return m > 0


def detect_region(image: np.ndarray, depth: np.ndarray, kind: str) -> np.ndarray:
    """Boolean mask ``(H, W)`` of the ``kind`` region (``sky`` or ``water``) of ``image`` ``(H, W, 3)``
    uint8 with z-depth ``depth`` ``(H, W)`` (0 = invalid); empty when none is found."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    grad = _gradient(gray)
    h, w = gray.shape
    if kind == "sky":
        valid = depth > 0
        far = ~valid
        if valid.any():
            far |= depth >= np.percentile(depth[valid], 70)
        bright = (gray >= max(90.0, float(np.percentile(gray, 40))))
        cand = bright & (grad < 10.0) & far
        mask = _connected_to(_clean(cand), 0)
    elif kind == "water":
        lower = np.zeros((h, w), bool)
        lower[h // 2:] = True
        cand = (grad < 14.0) & lower
        seed = cand[-1]
        mask = np.zeros((h, w), bool)
        if seed.any():
            lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
            ref = lab[-1][seed]
            mu, sd = ref.mean(0), ref.std(0) + 4.0
            close = (np.abs(lab - mu) <= 2.5 * sd).all(-1)
            mask = _connected_to(_clean(cand & close), h - 1)
    else:
        raise ValueError(f"unknown region {kind}")
    if mask.any():  # fill small holes (not the ones open to the border)
        inv = (~mask).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
        for i in range(1, n):
            x, y, bw, bh, area = stats[i]
            if area < 0.002 * h * w and x > 0 and y > 0 and x + bw < w and y + bh < h:
                mask[labels == i] = True
    if mask.mean() < 0.01:
        log.warning("--animate %s: no %s region found (%.2f %% of the image); nothing will move", kind, kind,
                    100.0 * mask.mean())
        return np.zeros((h, w), bool)
    log.info("--animate %s: %.1f %% of the image moves", kind, 100.0 * mask.mean())
    return mask
