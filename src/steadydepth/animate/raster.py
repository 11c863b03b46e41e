"""Rasterising layered triangle meshes into a camera with a two-deep soft z-buffer (torch, CPU).

A layer is a pixel grid whose vertices are the pixel centres of a source view: every quad of
four neighbouring pixels is split into two triangles, and triangles a layer marks as cut (they
cross a depth discontinuity) are never drawn, so no "rubber sheet" joins a foreground object to
the background behind it. Each drawn triangle is scan-converted at the target pixel centres
(OpenCV convention, integer coordinates) with barycentric weights; depth is interpolated as
``1/z`` and attributes perspective-correctly.

Compositing keeps the front surface of every pixel (all fragments within ``tol`` of the nearest
depth, averaged) and the next surface behind it; the front surface's interpolated alpha blends
the two (soft silhouettes). Pixels no triangle covers are reported in the ``covered`` mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["MeshLayer", "RenderResult", "rasterize_layers", "MAX_TRIANGLE_SIDE"]

#: triangles whose screen bounding box is wider or taller than this many pixels are dropped
#: (they only occur when the camera comes very close to a surface; the hole is filled later)
MAX_TRIANGLE_SIDE = 24
_CLASSES = (1, 2, 3, 4, 6, 8, 12, 16, MAX_TRIANGLE_SIDE)


@dataclass
class MeshLayer:
    """One layer of a layered depth image, in its source camera.

    ``points`` ``(N, 3)`` float32 camera-frame points of the used vertices; ``attrs`` ``(N, C)``
    float32 per-vertex attributes (colour first, then alpha, then anything else);
    ``triangles`` ``(M, 3)`` int64 indices into ``points``; ``pose_c2w`` the source camera;
    ``pixels`` ``(N,)`` where each vertex sits in the source's pixel grid.
    """

    points: np.ndarray
    attrs: np.ndarray
    triangles: np.ndarray
    pose_c2w: np.ndarray
    name: str = "layer"
    #: flat index of each vertex in the source's (padded) pixel grid (None: not from a grid)
    pixels: np.ndarray | None = None


@dataclass
class RenderResult:
    """A rendered view: ``attrs`` ``(H, W, C)`` composited attributes, ``depth`` ``(H, W)`` z-depth of
    the front surface (0 where uncovered), ``covered`` ``(H, W)`` bool."""

    attrs: np.ndarray
    depth: np.ndarray
    covered: np.ndarray


def _fragments(uv: torch.Tensor, inv_z: torch.Tensor, attrs: torch.Tensor, tris: torch.Tensor,
               width: int, height: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scan-convert triangles; returns ``(pixel index, z, attributes)`` of every fragment."""
    t0, t1, t2 = tris[:, 0], tris[:, 1], tris[:, 2]
    uu, vv = uv[:, 0], uv[:, 1]
    u0, u1, u2 = uu[t0], uu[t1], uu[t2]
    v0, v1, v2 = vv[t0], vv[t1], vv[t2]
    xmin = torch.ceil(torch.minimum(torch.minimum(u0, u1), u2)).clamp_(min=0)
    xmax = torch.floor(torch.maximum(torch.maximum(u0, u1), u2)).clamp_(max=width - 1)
    ymin = torch.ceil(torch.minimum(torch.minimum(v0, v1), v2)).clamp_(min=0)
    ymax = torch.floor(torch.maximum(torch.maximum(v0, v1), v2)).clamp_(max=height - 1)
    nx = xmax - xmin + 1
    ny = ymax - ymin + 1
    side = torch.maximum(nx, ny)
    area = (u1 - u0) * (v2 - v0) - (u2 - u0) * (v1 - v0)
    keep = (nx >= 1) & (ny >= 1) & (area.abs() > 1e-9)
    kept = torch.nonzero(keep).squeeze(1)
    side_k = side[kept]
    u = torch.stack([u0[kept], u1[kept], u2[kept]], 1)
    v = torch.stack([v0[kept], v1[kept], v2[kept]], 1)
    xmin, xmax, ymin, ymax, area, tris = xmin[kept], xmax[kept], ymin[kept], ymax[kept], area[kept], tris[kept]
    pix_all, z_all, a_all = [], [], []
    cls = torch.bucketize(side_k, torch.tensor(_CLASSES, dtype=side_k.dtype))
    for ci, s in enumerate(_CLASSES):
        idx = torch.nonzero(cls == ci).squeeze(1)
        if idx.numel() == 0:
            continue
        oy, ox = torch.meshgrid(torch.arange(s, dtype=uv.dtype), torch.arange(s, dtype=uv.dtype), indexing="ij")
        px = xmin[idx, None] + ox.reshape(1, -1)
        py = ymin[idx, None] + oy.reshape(1, -1)
        ok = (px <= xmax[idx, None]) & (py <= ymax[idx, None])
        tu, tv, ar = u[idx], v[idx], area[idx, None]
        w0 = ((tu[:, 1:2] - px) * (tv[:, 2:3] - py) - (tu[:, 2:3] - px) * (tv[:, 1:2] - py)) / ar
        w1 = ((tu[:, 2:3] - px) * (tv[:, 0:1] - py) - (tu[:, 0:1] - px) * (tv[:, 2:3] - py)) / ar
        w2 = 1.0 - w0 - w1
        eps = -1e-5
        ok &= (w0 >= eps) & (w1 >= eps) & (w2 >= eps)
        r, c = torch.nonzero(ok, as_tuple=True)
        if r.numel() == 0:
            continue
        vi = tris[idx[r]]  # (F, 3)
        b = torch.stack([w0[r, c], w1[r, c], w2[r, c]], dim=1).clamp(min=0)
        b = b / b.sum(1, keepdim=True)
        iz = inv_z[vi]  # (F, 3)
        inv = (b * iz).sum(1)
        pw = b * iz / inv[:, None]  # perspective-correct weights
        at = (pw[:, :, None] * attrs[vi]).sum(1)
        pix_all.append((py[r, c] * width + px[r, c]).long())
        z_all.append(1.0 / inv)
        a_all.append(at)
    if not pix_all:
        return (torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=uv.dtype),
                torch.zeros((0, attrs.shape[1]), dtype=uv.dtype))
    return torch.cat(pix_all), torch.cat(z_all), torch.cat(a_all)


def _front(pix: torch.Tensor, z: torch.Tensor, n: int, tol: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel nearest depth ``(n,)`` (inf where none) and the mask of fragments within ``tol`` of it."""
    zmin = torch.full((n,), float("inf"), dtype=z.dtype)
    if z.numel():
        zmin = zmin.scatter_reduce(0, pix, z, reduce="amin")
    return zmin, z <= zmin[pix] * (1.0 + tol)


def _mean(pix: torch.Tensor, vals: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    acc = torch.zeros((n, vals.shape[1]), dtype=vals.dtype).index_add_(0, pix, vals)
    cnt = torch.zeros(n, dtype=vals.dtype).index_add_(0, pix, torch.ones_like(pix, dtype=vals.dtype))
    return acc / cnt.clamp(min=1)[:, None], cnt


def rasterize_layers(layers: list[MeshLayer], K: np.ndarray, pose_c2w: np.ndarray, width: int, height: int, *,
                     alpha_channel: int | None = 3, tol: float = 0.01, near: float = 1e-3,
                     behind: np.ndarray | None = None) -> RenderResult:
    """Render ``layers`` into the pinhole camera ``K`` at ``pose_c2w`` (``width x height``).

    ``alpha_channel``: the attribute that blends the front surface over the one behind it (None:
    no blending). ``tol``: relative depth within which fragments belong to the same surface.
    ``behind`` ``(H, W)``: when given, only fragments farther than ``behind * (1 + tol)`` are kept
    (depth peeling: what lies behind a known surface). Returns a :class:`RenderResult`.
    """
    n = width * height
    w2c = np.linalg.inv(np.asarray(pose_c2w, np.float64))
    pix_l, z_l, a_l = [], [], []
    for layer in layers:
        if len(layer.triangles) == 0:
            continue
        T = w2c @ np.asarray(layer.pose_c2w, np.float64)
        P = torch.from_numpy(np.ascontiguousarray(layer.points, np.float32))
        R = torch.from_numpy(T[:3, :3].astype(np.float32))
        t = torch.from_numpy(T[:3, 3].astype(np.float32))
        X = P @ R.T + t
        z = X[:, 2]
        front = z > near
        zs = torch.where(front, z, torch.ones_like(z))
        uv = torch.stack([K[0, 0] * X[:, 0] / zs + K[0, 1] * X[:, 1] / zs + K[0, 2], K[1, 1] * X[:, 1] / zs + K[1, 2]], 1)
        tris = torch.from_numpy(layer.triangles)
        tris = tris[front[tris].all(1)]
        pix, zf, af = _fragments(uv, 1.0 / zs, torch.from_numpy(np.ascontiguousarray(layer.attrs, np.float32)),
                                 tris, width, height)
        pix_l.append(pix)
        z_l.append(zf)
        a_l.append(af)
    C = layers[0].attrs.shape[1] if layers else 1
    if pix_l:
        pix, z, at = torch.cat(pix_l), torch.cat(z_l), torch.cat(a_l)
    else:
        pix, z, at = torch.zeros(0, dtype=torch.long), torch.zeros(0), torch.zeros((0, C))
    if behind is not None:
        bound = torch.from_numpy(np.asarray(behind, np.float32).ravel())
        keep = z > bound[pix] * (1.0 + tol)
        pix, z, at = pix[keep], z[keep], at[keep]
    zmin, isfront = _front(pix, z, n, tol)
    cf, cnt = _mean(pix[isfront], at[isfront], n)
    covered = cnt > 0
    out = cf
    if alpha_channel is not None and pix.numel():
        rest = ~isfront
        zb, isback = _front(pix[rest], z[rest], n, tol)
        cb, cntb = _mean(pix[rest][isback], at[rest][isback], n)
        alpha = cf[:, alpha_channel].clamp(0, 1)
        has_b = (cntb > 0) & covered
        blend = alpha[:, None] * cf + (1 - alpha[:, None]) * cb
        out = torch.where(has_b[:, None], blend, cf)
    depth = torch.where(covered, zmin, torch.zeros_like(zmin))
    return RenderResult(attrs=out.reshape(height, width, C).numpy(), depth=depth.reshape(height, width).numpy(),
                        covered=covered.reshape(height, width).numpy())
