"""A layered depth image (LDI) of one view: the image layer cut at depth discontinuities and a
background layer that extends each background surface behind its foreground.

Conventions: z-depth, 0 = invalid; pixel centres at integer coordinates; the layers live in the
source camera (``pose_c2w``). Both layers are padded by ``pad`` pixels on every side (colour
mirrored, depth repeated) so that a camera that moves a little sees no empty border.

* Discontinuities: two 4-neighbours whose depths differ by more than the ratio ``1 + edge``.
  Triangles touching such a pair are cut from the image layer (no rubber sheets).
* Background band ``F``: pixels on the near side of a discontinuity, within ``band`` pixels of
  it, that are nearer than ``1/(1 + edge)`` of the farthest depth within ``band`` pixels (square window).
* Its colour is inpainted with OpenCV (Telea) with a wider band (``3 * band``) of the foreground
  masked, so that the fill of ``F`` comes from the background side of the edge and not from the
  foreground object; its depth grows in from the background side only
  (:func:`fill_depth_from_background`: each pass takes the largest neighbouring depth), and is
  kept behind the foreground (``>= (1 + edge / 2)`` times it). ``fill_band`` can replace the inpainting (see
  :mod:`~steadydepth.animate.clip_fill`).
* Soft edges: image-layer vertices on the near side of a cut have alpha ``edge_alpha``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from .raster import MeshLayer

__all__ = ["LayeredImage", "build_layers", "discontinuities", "fill_depth_from_background", "grid_triangles",
           "camera_points", "diagonal_ok",
           "ATTRS"]

log = logging.getLogger(__name__)

#: attribute channels of every layer vertex: colour (3, in [0, 1]), alpha, confidence
ATTRS = ("r", "g", "b", "alpha", "confidence")
#: confidence of the rendered pixels by origin: seen in the source, background layer, final fill
CONF_SEEN, CONF_BACKGROUND, CONF_FILLED = 1.0, 0.5, 0.1


@dataclass
class LayeredImage:
    """The LDI of one source view (see module docstring).

    ``image`` ``(H, W, 3)`` uint8 and ``depth`` ``(H, W)`` of the source (depth filled, > 0);
    ``K`` its 3x3 intrinsics; ``pose_c2w`` its camera; ``pad`` the padding in pixels;
    ``band_mask`` ``(H + 2 pad, W + 2 pad)`` the background band ``F``; ``layers`` the meshes
    (image layer first); ``edge_mask`` the near-side discontinuity pixels (padded grid).
    """

    image: np.ndarray
    depth: np.ndarray
    K: np.ndarray
    pose_c2w: np.ndarray
    pad: int
    band_mask: np.ndarray
    edge_mask: np.ndarray
    layers: list[MeshLayer]
    bg_colour: np.ndarray
    bg_depth: np.ndarray
    #: the padded colour grids the layers' vertices come from (uint8 ``(H + 2 pad, W + 2 pad, 3)``)
    grids: list[np.ndarray]


def fill_depth_from_background(depth: np.ndarray, hole: np.ndarray, *, max_iter: int = 64) -> np.ndarray:
    """Fill ``hole`` pixels (and depth <= 0) of ``depth`` ``(H, W)`` from the background side: a hole
    pixel takes the largest valid depth within ``r`` pixels (a square window), for the smallest
    ``r`` in 1, 2, 4, ... that has one (holes at depth edges are disocclusions, and what appears
    there is the farther surface). Beyond ``max_iter`` pixels the rest takes the nearest valid
    pixel. Returns a new float32 map with no zeros (unless the map has no valid pixel at all)."""
    valid = ~hole & (depth > 0) & np.isfinite(depth)
    src = np.where(valid, depth, 0.0).astype(np.float32)
    d = src.copy()
    if not valid.any():
        return d
    filled = valid.copy()
    r = 1
    while not filled.all() and r <= max_iter:
        grown = cv2.dilate(src, cv2.getStructuringElement(cv2.MORPH_RECT, (2 * r + 1, 2 * r + 1)))
        new = ~filled & (grown > 0)
        d[new] = grown[new]
        filled |= new
        r *= 2
    empty = ~filled
    if empty.any():
        _, labels = cv2.distanceTransformWithLabels(empty.astype(np.uint8), cv2.DIST_L2, 5,
                                                    labelType=cv2.DIST_LABEL_PIXEL)
        ys, xs = np.nonzero(filled)
        lut = np.zeros(labels.max() + 1, np.float32)
        lut[labels[ys, xs]] = d[ys, xs]
        d = np.where(empty, lut[labels], d)
    return d


def _jumps(disp: np.ndarray, axis: int, edge: float) -> np.ndarray:
    """Neighbour pairs along ``axis`` whose disparity jump is a discontinuity (see :func:`discontinuities`)."""
    g = np.abs(np.diff(disp, axis=axis))
    big = g > edge * np.maximum(np.delete(disp, 0, axis), np.delete(disp, -1, axis))
    pad = [(0, 0), (0, 0)]
    pad[axis] = (1, 1)
    gp = np.pad(g, pad, mode="edge")
    sl = [slice(None), slice(None)]
    sl[axis] = slice(0, -2)
    prev = gp[tuple(sl)]
    sl[axis] = slice(2, None)
    nxt = gp[tuple(sl)]
    return big & (g > 2.0 * np.minimum(prev, nxt))


def discontinuities(depth: np.ndarray, edge: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depth edges of ``depth`` ``(H, W)`` (> 0): ``(cut_x, cut_y, near)`` where ``cut_x`` ``(H, W-1)``
    marks horizontal neighbour pairs across a discontinuity, ``cut_y`` ``(H-1, W)`` the vertical
    ones, ``near`` ``(H, W)`` the pixels on the near side of a cut.

    A pair is cut when its disparity (``1/depth``) differs by more than ``edge`` times the larger
    one (a depth ratio above ``1 + edge``) AND by more than twice the smaller of the jumps of the
    pairs just before and after it along the same line: a slanted plane has a linear disparity,
    so equal jumps in a row are a surface seen at a grazing angle, not an edge."""
    d = depth.astype(np.float32)
    disp = 1.0 / d
    cut_x = _jumps(disp, 1, edge)
    cut_y = _jumps(disp, 0, edge)
    near = np.zeros(d.shape, bool)
    near[:, :-1] |= cut_x & (d[:, :-1] < d[:, 1:])
    near[:, 1:] |= cut_x & (d[:, 1:] < d[:, :-1])
    near[:-1] |= cut_y & (d[:-1] < d[1:])
    near[1:] |= cut_y & (d[1:] < d[:-1])
    return cut_x, cut_y, near


def grid_triangles(valid: np.ndarray, cut_x: np.ndarray | None = None, cut_y: np.ndarray | None = None,
                   diag_ok: np.ndarray | None = None) -> np.ndarray:
    """Triangles ``(M, 3)`` of flat pixel indices of a ``(H, W)`` grid: each quad ``(i, j)`` gives
    ``(i,j) (i,j+1) (i+1,j)`` and ``(i+1,j+1) (i+1,j) (i,j+1)``, kept when its three vertices are
    ``valid`` and none of its edges is cut (``cut_x``/``cut_y`` as from :func:`discontinuities`;
    ``diag_ok`` ``(H-1, W-1)``: the quad's diagonal ``(i,j+1)-(i+1,j)`` is not cut)."""
    h, w = valid.shape
    idx = np.arange(h * w, dtype=np.int64).reshape(h, w)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    va, vb, vc, vd = valid[:-1, :-1], valid[:-1, 1:], valid[1:, :-1], valid[1:, 1:]
    ok1 = va & vb & vc
    ok2 = vd & vc & vb
    if cut_x is not None and cut_y is not None:
        top, bottom = cut_x[:-1], cut_x[1:]
        left, right = cut_y[:, :-1], cut_y[:, 1:]
        ok1 &= ~top & ~left
        ok2 &= ~bottom & ~right
    if diag_ok is not None:
        ok1 &= diag_ok
        ok2 &= diag_ok
    t1 = np.stack([a[ok1], b[ok1], c[ok1]], 1)
    t2 = np.stack([d[ok2], c[ok2], b[ok2]], 1)
    return np.concatenate([t1, t2], 0)


def diagonal_ok(depth: np.ndarray, cut_x: np.ndarray, cut_y: np.ndarray, edge: float) -> np.ndarray:
    """A quad's diagonal ``(i, j+1)-(i+1, j)`` is cut when one of the quad's sides is cut and the
    diagonal's two depths differ by more than the ratio ``1 + edge`` (a corner of an edge)."""
    b, c = depth[:-1, 1:], depth[1:, :-1]
    side = cut_x[:-1] | cut_x[1:] | cut_y[:, :-1] | cut_y[:, 1:]
    return ~(side & (np.maximum(b, c) > (1.0 + edge) * np.minimum(b, c)))


def camera_points(depth: np.ndarray, K: np.ndarray, pad: int) -> np.ndarray:
    """Camera-frame points ``(H*W, 3)`` of a padded depth grid whose pixel (0, 0) is source pixel (-pad, -pad)."""
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    u -= pad
    v -= pad
    fx, fy, cx, cy, s = K[0, 0], K[1, 1], K[0, 2], K[1, 2], K[0, 1]
    y = (v - cy) / fy
    x = (u - cx - s * y) / fx
    return np.stack([x * depth, y * depth, depth], -1).reshape(-1, 3).astype(np.float32)


def _square(radius: int) -> np.ndarray:
    r = max(1, int(radius))
    return cv2.getStructuringElement(cv2.MORPH_RECT, (2 * r + 1, 2 * r + 1))


def _within(mask: np.ndarray, radius: float) -> np.ndarray:
    """Pixels within ``radius`` (Euclidean) of a ``mask`` pixel."""
    if not mask.any():
        return np.zeros_like(mask)
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5) <= radius


def background_band(depth: np.ndarray, near: np.ndarray, band: int, edge: float) -> np.ndarray:
    """The band ``F`` (see module docstring) of a filled ``depth`` ``(H, W)`` for band width ``band``."""
    far = cv2.dilate(depth, _square(band))
    grown = _within(near, band)
    return grown & (depth * (1.0 + edge) < far)


def inpaint_background(image: np.ndarray, depth: np.ndarray, near: np.ndarray, band: int, edge: float
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colour ``(H, W, 3)`` uint8 and depth ``(H, W)`` of the background behind the band ``F``,
    inpainted (Telea) with the wide band masked; returns ``(colour, depth, F)``."""
    F = background_band(depth, near, band, edge)
    wide = background_band(depth, near, 3 * band, edge) | F
    mask = wide.astype(np.uint8)
    colour = cv2.inpaint(image, mask, 5, cv2.INPAINT_TELEA)
    bg_depth = fill_depth_from_background(depth, F, max_iter=2 * band + 2)
    bg_depth = np.maximum(bg_depth, depth * (1.0 + 0.5 * edge))
    return colour, bg_depth, F


def build_layers(image: np.ndarray, depth: np.ndarray, K: np.ndarray, pose_c2w: np.ndarray | None = None, *,
                 band: int = 24, edge: float = 0.04, pad: int = 16, edge_alpha: float = 1.0,
                 fill_band: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                                     tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None) -> LayeredImage:
    """Build the LDI of ``image`` ``(H, W, 3)`` uint8 with z-depth ``depth`` ``(H, W)`` (0 = invalid,
    filled from the background side) seen by ``K`` at ``pose_c2w`` (default identity).

    ``fill_band(colour_padded, depth_padded, F, near)`` may return ``(colour, depth, known)`` for
    the background band from another source (``known`` marks the pixels it could fill); the rest of
    ``F`` is inpainted.
    """
    pose = np.eye(4) if pose_c2w is None else np.asarray(pose_c2w, np.float64)
    d0 = fill_depth_from_background(np.asarray(depth, np.float32), np.zeros(depth.shape, bool))
    if not (d0 > 0).any():
        from ..errors import InputError

        raise InputError("the depth map has no valid pixel")
    img = np.ascontiguousarray(image[:, :, :3]).astype(np.uint8)
    cimg = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    dpad = cv2.copyMakeBorder(d0, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    cut_x, cut_y, near = discontinuities(dpad, edge)
    bg_colour, bg_depth, F = inpaint_background(cimg, dpad, near, band, edge)
    if fill_band is not None:
        c2, d2, known = fill_band(cimg, dpad, F, near)
        known = known & F
        bg_colour = np.where(known[:, :, None], c2, bg_colour)
        bg_depth = np.where(known, np.maximum(d2, dpad * (1.0 + 0.5 * edge)), bg_depth)
    else:
        known = np.zeros_like(F)
    h, w = dpad.shape
    pts0 = camera_points(dpad, K, pad)
    alpha0 = np.where(near, edge_alpha, 1.0).astype(np.float32)
    attrs0 = np.concatenate([cimg.reshape(-1, 3).astype(np.float32) / 255.0, alpha0.reshape(-1, 1),
                             np.full((h * w, 1), CONF_SEEN, np.float32)], 1)
    tris0 = grid_triangles(np.ones((h, w), bool), cut_x, cut_y, diagonal_ok(dpad, cut_x, cut_y, edge))
    layers = [MeshLayer(pts0, attrs0, tris0, pose, "image", np.arange(h * w, dtype=np.int64))]
    grids = [cimg]
    if F.any():
        # the band and a 2-pixel rim around it (the original background pixels, so the band joins them)
        rim = _within(F, 2.0) & ~F
        dl = np.where(F, bg_depth, dpad).astype(np.float32)
        cl = np.where(F[:, :, None], bg_colour, cimg)
        used = F | rim
        cx1, cy1, _ = discontinuities(dl, edge)
        tris1 = grid_triangles(used, cx1, cy1, diagonal_ok(dl, cx1, cy1, edge))
        # drop triangles made only of rim pixels (they duplicate the image layer)
        tris1 = tris1[F.ravel()[tris1].any(1)]
        conf = np.where(F, CONF_BACKGROUND, CONF_SEEN).astype(np.float32)
        attrs1 = np.concatenate([cl.reshape(-1, 3).astype(np.float32) / 255.0, np.ones((h * w, 1), np.float32),
                                 conf.reshape(-1, 1)], 1)
        pts1 = camera_points(dl, K, pad)
        ids = np.unique(tris1)
        remap = np.full(h * w, -1, np.int64)
        remap[ids] = np.arange(ids.size)
        layers.append(MeshLayer(pts1[ids], attrs1[ids], remap[tris1], pose, "background", ids))
        grids.append(cl)
    log.debug("LDI: %d image triangles, background band %.1f %% of the pixels (%.1f %% from other frames)",
              len(tris0), 100.0 * F.mean(), 100.0 * known.mean())
    return LayeredImage(image=img, depth=d0, K=np.asarray(K, np.float64), pose_c2w=pose, pad=pad, band_mask=F,
                        edge_mask=near, layers=layers, bg_colour=bg_colour, bg_depth=bg_depth, grids=grids)
