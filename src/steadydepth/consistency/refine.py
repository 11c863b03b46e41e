"""Multi-view refinement of a depth prior by differentiable warping (torch, CPU).

The idea of refining monocular depth by multi-view differentiable rendering, in our own
small implementation: with known cameras, each frame's depth is adjusted so that its
neighbour views, warped into it *through that depth*, look like it.

Parametrisation: a coarse grid of log-scale control points (default 8 x 6), bilinearly
upsampled (``align_corners=True``: the control points sit on the image corners and edges)
and multiplying the prior depth: ``D = D_prior * exp(up(g))``. The prior's fine detail and
edges are kept by construction; the grid corrects its low-frequency shape and scale.

Loss (at a reduced working resolution):

* **photometric**: for each neighbour, ref pixels are back-projected with ``D``, moved by
  the relative pose, projected and the neighbour is sampled there (``grid_sample``); the
  error is ``0.85 * (1 - SSIM) / 2 + 0.15 * |I - I_warped|`` (3x3 SSIM), and per pixel the
  *minimum* over neighbours is taken (a pixel occluded in one view is usually seen in
  another); pixels that leave every neighbour are ignored;
* **gradient preservation**: the refined log-depth gradients must match the prior's, i.e.
  the gradients of ``up(g)`` are penalised, with edge-aware weights ``exp(-|grad I| / 0.1)``
  (changes are cheaper across image edges);
* **sparse points** (optional): Huber on ``log D - log z`` at the projections of SfM points;
* **multi-view depth agreement** (optional, when neighbours come with their depth): the
  refined depth moved into each neighbour must agree with that neighbour's depth there,
  truncated L1 on the log ratio (truncation 0.1, so occlusions cost a constant); this ties
  the refined frame to its neighbours and keeps the clip temporally consistent;
* **trust** (optional, ``anchor_weight > 0``): the squared log-scale correction weighted by
  the prior's ``confidence``, so pixels the prior is sure of (e.g. confirmed by multi-view
  stereo) move little.

Adam over ``iters`` steps. Conventions: pixel centres at integer coordinates (OpenCV),
poses camera-to-world 4x4 with OpenCV axes, depth = z-depth in the poses' units (0 =
invalid). The prior's scale must roughly match the poses (within some tens of percent; the
grid can correct a global scale error of that size, not more).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..types import Intrinsics

__all__ = ["refine_depth", "photometric_error"]

log = logging.getLogger(__name__)


def _to_tensor_image(image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3:
        raise InputError(f"refine_depth: images must be (H, W, 3) RGB, got {img.shape}")
    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return torch.from_numpy(img).permute(2, 0, 1)[None].contiguous()


def _ssim_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pixel ``(1 - SSIM) / 2`` with 3x3 mean pooling, mean over channels ``(N, 1, H, W)``."""
    c1, c2 = 0.01**2, 0.03**2
    pad = lambda x: F.pad(x, (1, 1, 1, 1), mode="reflect")  # noqa: E731
    mu_a = F.avg_pool2d(pad(a), 3, 1)
    mu_b = F.avg_pool2d(pad(b), 3, 1)
    sa = F.avg_pool2d(pad(a * a), 3, 1) - mu_a**2
    sb = F.avg_pool2d(pad(b * b), 3, 1) - mu_b**2
    sab = F.avg_pool2d(pad(a * b), 3, 1) - mu_a * mu_b
    ssim = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (sa + sb + c2))
    return torch.clamp((1 - ssim) / 2, 0, 1).mean(1, keepdim=True)


def _warp_errors(
    ref: torch.Tensor, srcs: torch.Tensor, depth: torch.Tensor, rays: torch.Tensor,
    rels: torch.Tensor, K: torch.Tensor, size: tuple[int, int], src_logdepth: torch.Tensor | None = None,
):
    """Photometric errors ``(N, 1, H, W)`` of each source warped into ref, and in-view masks;
    with ``src_logdepth`` ``(N, 1, H, W)`` also the truncated log-depth disagreement."""
    w, h = size
    X = rays * depth.reshape(1, -1)  # (3, HW) ref camera
    Y = rels[:, :3, :3] @ X[None] + rels[:, :3, 3:]  # (N, 3, HW)
    z = Y[:, 2]
    zc = torch.clamp(z, min=1e-6)
    u = K[0, 0] * Y[:, 0] / zc + K[0, 2]
    v = K[1, 1] * Y[:, 1] / zc + K[1, 2]
    gx = 2 * u / (w - 1) - 1
    gy = 2 * v / (h - 1) - 1
    grid = torch.stack([gx, gy], -1).reshape(-1, h, w, 2)
    warped = F.grid_sample(srcs, grid, mode="bilinear", padding_mode="border", align_corners=True)
    inview = ((gx.abs() <= 1) & (gy.abs() <= 1) & (z > 1e-6)).reshape(-1, 1, h, w)
    refs = ref.expand_as(warped)
    err = 0.85 * _ssim_error(refs, warped) + 0.15 * (refs - warped).abs().mean(1, keepdim=True)
    if src_logdepth is None:
        return err, inview
    sampled = F.grid_sample(src_logdepth, grid, mode="nearest", padding_mode="border", align_corners=True)
    dis = torch.clamp((torch.log(zc).reshape(-1, 1, h, w) - sampled).abs(), max=0.1)
    dis = torch.where(torch.isfinite(sampled), dis, torch.full_like(dis, 0.1))
    return err, inview, dis


def photometric_error(
    ref_image: np.ndarray, depth: np.ndarray, neighbours: Sequence[tuple[np.ndarray, np.ndarray]],
    ref_pose: np.ndarray, intrinsics: Intrinsics, *, work_width: int = 160,
) -> float:
    """Mean per-pixel minimum (over neighbours) of the SSIM+L1 error of neighbours warped into
    the reference through ``depth`` (same loss as :func:`refine_depth`, for measuring)."""
    ref, srcs, d0, valid, rays, rels, K, size = _prepare(ref_image, depth, neighbours, ref_pose, intrinsics, work_width)
    with torch.no_grad():
        err, inview = _warp_errors(ref, srcs, d0, rays, rels, K, size)
        err = torch.where(inview, err, torch.full_like(err, 10.0)).min(0).values[0]
        m = valid & inview.any(0)[0]
        return float(err[m].mean()) if bool(m.any()) else float("nan")


def _prepare(ref_image, depth, neighbours, ref_pose, intrinsics, work_width):
    H, W = np.asarray(ref_image).shape[:2]
    depth = np.asarray(depth, np.float32)
    if depth.ndim != 2:
        raise InputError(f"refine_depth: depth must be (H, W), got {depth.shape}")
    if not neighbours:
        raise InputError("refine_depth: needs at least one neighbour view (image, pose)")
    ww = min(int(work_width), W)
    wh = max(8, int(round(H * ww / W)))
    size = (ww, wh)
    intr = intrinsics.scaled(ww, wh) if (intrinsics.width, intrinsics.height) != (ww, wh) else intrinsics
    if (intrinsics.width, intrinsics.height) != (W, H):
        raise InputError(
            f"refine_depth: intrinsics are for {intrinsics.width}x{intrinsics.height} but the image is {W}x{H}")
    ref = _to_tensor_image(ref_image, size)
    srcs = torch.cat([_to_tensor_image(nb[0], size) for nb in neighbours])
    ok = np.isfinite(depth) & (depth > 0)
    d = cv2.resize(np.where(ok, depth, 0.0).astype(np.float32), size, interpolation=cv2.INTER_NEAREST)
    valid = torch.from_numpy(d > 0)
    d0 = torch.from_numpy(np.where(d > 0, d, 1.0).astype(np.float32))
    K = torch.tensor(intr.K, dtype=torch.float32)
    us, vs = np.meshgrid(np.arange(ww, dtype=np.float32), np.arange(wh, dtype=np.float32))
    pix = np.stack([us.ravel(), vs.ravel(), np.ones(ww * wh, np.float32)])
    rays = torch.from_numpy((np.linalg.inv(intr.K) @ pix).astype(np.float32))
    ref_pose = np.asarray(ref_pose, np.float64)
    rels = torch.from_numpy(
        np.stack([np.linalg.inv(np.asarray(nb[1], np.float64)) @ ref_pose for nb in neighbours]).astype(np.float32))
    return ref, srcs, d0, valid, rays, rels, K, size


def _neighbour_logdepth(neighbours, size) -> torch.Tensor | None:
    """``(N, 1, h, w)`` log depth of the neighbours (NaN where invalid), or None if any lacks depth."""
    if not all(len(nb) >= 3 and nb[2] is not None for nb in neighbours):
        return None
    out = []
    for nb in neighbours:
        d = np.asarray(nb[2], np.float32)
        ok = np.isfinite(d) & (d > 0)
        d = cv2.resize(np.where(ok, d, 0.0).astype(np.float32), size, interpolation=cv2.INTER_NEAREST)
        out.append(np.where(d > 0, np.log(np.where(d > 0, d, 1.0)), np.nan).astype(np.float32))
    return torch.from_numpy(np.stack(out))[:, None]


def refine_depth(
    ref_image: np.ndarray,
    ref_depth: np.ndarray,
    neighbours: Sequence[tuple],
    ref_pose: np.ndarray,
    intrinsics: Intrinsics,
    *,
    points: np.ndarray | None = None,
    depth_weight: float = 0.5,
    iters: int = 40,
    grid: tuple[int, int] = (8, 6),
    work_width: int = 160,
    lr: float = 0.03,
    grad_weight: float = 0.5,
    points_weight: float = 0.1,
    confidence: np.ndarray | None = None,
    anchor_weight: float = 0.0,
    lr_decay: bool = True,
    return_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict]:
    """Refine one frame's depth against its neighbours (see the module docstring).

    ``ref_image`` uint8 RGB ``(H, W, 3)``; ``ref_depth`` z-depth ``(H, W)`` in the poses'
    units (0 = invalid); ``neighbours`` a list of ``(image, pose_c2w)`` or
    ``(image, pose_c2w, depth)`` (with depth for every neighbour the multi-view depth
    agreement term is used, weight ``depth_weight``); ``ref_pose`` the
    reference camera-to-world pose; ``intrinsics`` for the ``W x H`` images; ``points`` an
    optional ``(N, 3)`` world point cloud (SfM). ``grid`` is ``(columns, rows)`` of log-scale
    control points. ``confidence`` ``(H, W)`` in ``[0, 1]`` (the prior's; ``None`` = 1) weights
    the trust term of weight ``anchor_weight`` (0 = off). ``lr_decay`` anneals the Adam step
    size from ``lr`` to 0 over the iterations (cosine), so the result settles instead of
    keeping Adam's step-size jitter (about ``lr`` in log-scale, i.e. a few percent). Returns the refined depth ``(H, W)`` float32 (0 where the prior was
    invalid); with ``return_info`` also a dict (``seconds``, ``loss_start``, ``loss_end``,
    ``photo_start``, ``photo_end``, ``scale_range``).
    """
    t0 = time.perf_counter()
    ref_depth = np.asarray(ref_depth, np.float32)
    H, W = np.asarray(ref_image).shape[:2]
    if ref_depth.shape != (H, W):
        raise InputError(f"refine_depth: depth {ref_depth.shape} and image {(H, W)} must have the same size")
    ref, srcs, d0, valid, rays, rels, K, size = _prepare(ref_image, ref_depth, neighbours, ref_pose, intrinsics, work_width)
    ww, wh = size
    gx_, gy_ = int(grid[0]), int(grid[1])
    g = torch.zeros((1, 1, gy_, gx_), dtype=torch.float32, requires_grad=True)
    opt = torch.optim.Adam([g], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(int(iters), 1)) if lr_decay else None

    gray = ref.mean(1, keepdim=True)
    edge_x = torch.exp(-(gray[..., :, 1:] - gray[..., :, :-1]).abs() / 0.1)
    edge_y = torch.exp(-(gray[..., 1:, :] - gray[..., :-1, :]).abs() / 0.1)

    pts_uv = pts_logz = None
    if points is not None and len(points):
        P = np.asarray(points, np.float64).reshape(-1, 3)
        w2c = np.linalg.inv(np.asarray(ref_pose, np.float64))
        Xc = (w2c[:3, :3] @ P.T).T + w2c[:3, 3]
        Kn = K.numpy().astype(np.float64)
        front = Xc[:, 2] > 1e-6
        u = Kn[0, 0] * Xc[:, 0] / np.where(front, Xc[:, 2], 1) + Kn[0, 2]
        v = Kn[1, 1] * Xc[:, 1] / np.where(front, Xc[:, 2], 1) + Kn[1, 2]
        inside = front & (u >= 0) & (u <= ww - 1) & (v >= 0) & (v <= wh - 1)
        if inside.sum() >= 3:
            pts_uv = torch.tensor(np.stack([2 * u[inside] / (ww - 1) - 1, 2 * v[inside] / (wh - 1) - 1], -1),
                                  dtype=torch.float32).reshape(1, 1, -1, 2)
            pts_logz = torch.tensor(np.log(Xc[inside, 2]), dtype=torch.float32)

    logd0 = torch.log(d0)[None, None]
    trust = None
    if anchor_weight > 0:
        if confidence is None:
            cw = np.ones((wh, ww), np.float32)
        else:
            c = np.clip(np.nan_to_num(np.asarray(confidence, np.float32)), 0.0, 1.0)
            if c.shape != (H, W):
                raise InputError(f"refine_depth: confidence {c.shape} and image {(H, W)} must have the same size")
            cw = cv2.resize(c, size, interpolation=cv2.INTER_AREA)
        trust = torch.from_numpy(cw) * valid
    src_logdepth = _neighbour_logdepth(neighbours, size) if depth_weight > 0 else None

    def losses() -> tuple[torch.Tensor, torch.Tensor]:
        up = F.interpolate(g, size=(wh, ww), mode="bilinear", align_corners=True)
        depth = d0 * torch.exp(up[0, 0])
        res = _warp_errors(ref, srcs, depth, rays, rels, K, size, src_logdepth)
        err, inview = res[0], res[1]
        err = torch.where(inview, err, torch.full_like(err, 10.0)).min(0).values[0]
        m = valid & inview.any(0)[0]
        photo = err[m].mean() if bool(m.any()) else err.sum() * 0
        dx = up[..., :, 1:] - up[..., :, :-1]
        dy = up[..., 1:, :] - up[..., :-1, :]
        smooth = (edge_x * dx**2).mean() + (edge_y * dy**2).mean()
        total = photo + grad_weight * smooth * (ww * wh) ** 0.5
        if src_logdepth is not None:
            dis = res[2]
            mv = inview & valid[None, None]
            if bool(mv.any()):
                total = total + depth_weight * dis[mv].mean()
        if trust is not None:
            total = total + anchor_weight * (trust * up[0, 0] ** 2).mean()
        if pts_uv is not None:
            logd = F.grid_sample(logd0 + up, pts_uv, mode="bilinear", align_corners=True).reshape(-1)
            total = total + points_weight * F.huber_loss(logd, pts_logz, delta=0.05)
        return total, photo

    with torch.no_grad():
        loss_start, photo_start = (float(x) for x in losses())
    for _ in range(int(iters)):
        opt.zero_grad()
        total, _photo = losses()
        total.backward()
        opt.step()
        if sched is not None:
            sched.step()
    with torch.no_grad():
        loss_end, photo_end = (float(x) for x in losses())
        up_full = F.interpolate(g, size=(H, W), mode="bilinear", align_corners=True)[0, 0].numpy()
    ok = np.isfinite(ref_depth) & (ref_depth > 0)
    out = np.where(ok, ref_depth * np.exp(up_full), 0.0).astype(np.float32)
    seconds = time.perf_counter() - t0
    info = {
        "seconds": seconds, "loss_start": loss_start, "loss_end": loss_end,
        "photo_start": photo_start, "photo_end": photo_end,
        "scale_range": (float(np.exp(up_full.min())), float(np.exp(up_full.max()))),
    }
    log.debug("refine_depth: %s", info)
    return (out, info) if return_info else out
