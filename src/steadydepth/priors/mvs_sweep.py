"""Plane-sweep stereo of the ``mvs`` prior: source-view selection, the NCC cost volume with
best-k view aggregation, shiftable windows and guided filtering, and the coarse-to-fine winner.

Conventions: grayscale float32 images in ``[0, 1]``; ``K`` the 3x3 intrinsics of those images
(OpenCV pixel centres); poses camera-to-world 4x4 (OpenCV axes); hypotheses are inverse depths
``rho = 1 / z`` of fronto-parallel planes in the reference camera.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..consistency.completion import guided_filter
from ..geometry import relative_pose, scale_K
from .mvs_settings import NO_PARALLAX_RATIO, MVSSettings

__all__ = ["select_sources", "plane_sweep", "box_mean"]

#: matching confidence is ``clip((NCC - NCC_CONFIDENCE_LOW) / NCC_CONFIDENCE_SPAN, 0, 1)`` of the winner
NCC_CONFIDENCE_LOW = 0.2
NCC_CONFIDENCE_SPAN = 0.6
#: uniqueness is ``clip((c2 - c1) / UNIQUENESS_MARGIN, 0, 1)``: c1 the best cost, c2 the next local minimum
UNIQUENESS_MARGIN = 0.1


# --------------------------------------------------------------------------- geometry


def select_sources(
    ref: int,
    poses: dict[int, np.ndarray],
    scene_depth: float | None,
    settings: MVSSettings,
) -> list[int]:
    """Pick source views for frame ``ref`` among ``poses`` (index -> c2w), see step 1 of the module doc.

    ``scene_depth`` is a typical depth of the reference view; with ``None`` the views with
    the widest baselines are chosen (bootstrap). Returns at most ``num_views`` indices
    (possibly empty when no candidate moved at all).
    """
    pr = poses[ref]
    c_ref, z_ref = pr[:3, 3], pr[:3, 2]
    cands: list[tuple[float, int, float]] = []
    cos_max = math.cos(math.radians(settings.max_view_angle_deg))
    for j, pj in poses.items():
        if j == ref:
            continue
        base = float(np.linalg.norm(pj[:3, 3] - c_ref))
        if float(np.dot(pj[:3, 2], z_ref)) < cos_max:
            continue
        if scene_depth is None:
            if base <= 0:
                continue
            score = -base
        else:
            ratio = base / max(scene_depth, 1e-12)
            if ratio < NO_PARALLAX_RATIO:
                continue
            score = abs(math.log(ratio / settings.target_baseline_ratio))
            if ratio < settings.min_baseline_ratio:
                score += 10.0  # only if nothing better is available
        cands.append((score, j, base))
    cands.sort()
    past = [c for c in cands if c[1] < ref]
    future = [c for c in cands if c[1] > ref]
    chosen: list[int] = []
    while len(chosen) < settings.num_views and (past or future):
        for side in (past, future) if (len(chosen) % 2 == 0) else (future, past):
            if side:
                chosen.append(side.pop(0)[1])
                break
    return chosen


# --------------------------------------------------------------------------- matching


def box_mean(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over ``(2 r + 1)^2`` boxes (reflected borders), any channel count."""
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)


def _view_costs(
    ref: np.ndarray,
    ref_mean: np.ndarray,
    ref_std: np.ndarray,
    src: np.ndarray,
    Ap: np.ndarray,
    b: np.ndarray,
    rho: np.ndarray,
    ncc_radius: int,
    texture_floor: float,
) -> np.ndarray:
    """``1 - NCC`` of one source view for every hypothesis: ``(H, W, P)`` float32 (1 where unseen)."""
    h, w = ref.shape
    P = rho.shape[0]
    rho_f = rho.reshape(P, -1).astype(np.float32)  # (P, 1) for planes, (P, H*W) per pixel
    qz = Ap[2][None] + rho_f * np.float32(b[2])
    front = qz > 1e-6
    inv = 1.0 / np.where(front, qz, np.float32(1.0))
    mx = (Ap[0][None] + rho_f * np.float32(b[0])) * inv
    my = (Ap[1][None] + rho_f * np.float32(b[1])) * inv
    mx[~front] = -10.0
    seen = front & (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    planes = np.empty((P, h, w), np.float32)
    for k in range(P):
        planes[k] = cv2.remap(src, mx[k].reshape(h, w), my[k].reshape(h, w), cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    warped = np.ascontiguousarray(planes.transpose(1, 2, 0))
    del planes
    mu = box_mean(warped, ncc_radius)
    cross = box_mean(warped * ref[:, :, None], ncc_radius)
    np.multiply(warped, warped, out=warped)
    den = box_mean(warped, ncc_radius)
    del warped
    den -= mu * mu  # variance of the warped patch
    np.maximum(den, np.float32(texture_floor**2), out=den)
    np.sqrt(den, out=den)
    den *= ref_std[:, :, None]
    mu *= ref_mean[:, :, None]
    cross -= mu  # covariance
    del mu
    cross /= den
    np.clip(cross, -1.0, 1.0, out=cross)
    cost = np.subtract(np.float32(1.0), cross, out=cross)
    cost[~seen.reshape(P, h, w).transpose(1, 2, 0)] = 1.0
    return cost


def _aggregated_costs(
    ref: np.ndarray,
    sources: list[np.ndarray],
    K: np.ndarray,
    pose_ref: np.ndarray,
    source_poses: list[np.ndarray],
    rho: np.ndarray,
    settings: MVSSettings,
    ncc_radius: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Filtered best-k cost volume ``(H, W, P)`` and the texture mask ``(H, W)`` of ``ref``.

    ``rho`` is ``(P, 1)`` (one inverse depth per plane) or ``(P, H*W)`` (per-pixel hypotheses).
    """
    h, w = ref.shape
    r = ncc_radius
    ref_mean = box_mean(ref, r)
    ref_var = box_mean(ref * ref, r) - ref_mean * ref_mean
    textured = ref_var > settings.texture_floor**2
    ref_std = np.sqrt(np.maximum(ref_var, settings.texture_floor**2))
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    pix = np.stack([u.ravel(), v.ravel(), np.ones(h * w)])
    Kinv = np.linalg.inv(K)
    # running mean of the best_k smallest view costs, kept as k sorted arrays (no V x volume)
    k = max(1, min(settings.best_k, len(sources)))
    best: list[np.ndarray] = []
    for src, ps in zip(sources, source_poses):
        R, t = relative_pose(pose_ref, ps)
        Ap = ((K @ R @ Kinv) @ pix).astype(np.float32)
        b = K @ t
        c = _view_costs(ref, ref_mean, ref_std, src, Ap, b, rho, r, settings.texture_floor)
        for slot in range(k):
            if slot == len(best):
                best.append(c)
                break
            lo = np.minimum(best[slot], c)
            c = np.maximum(best[slot], c)
            best[slot] = lo
    agg = best[0] if len(best) == 1 else sum(best[1:], best[0].copy()) / float(len(best))
    del best
    if settings.shiftable_windows:
        # shiftable windows: each pixel takes the best window that contains it (less foreground fattening)
        agg = cv2.erode(agg, np.ones((2 * r + 1, 2 * r + 1), np.uint8), borderType=cv2.BORDER_REPLICATE)
    if settings.agg_radius > 0:
        agg = guided_filter(ref, agg, settings.agg_radius, settings.agg_eps)
    return agg, textured


def _winner(agg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Winner index, parabola offset in ``[-0.5, 0.5]``, best cost, second-best distinct cost, inner mask."""
    h, w, P = agg.shape
    best = np.argmin(agg, axis=2)
    ii, jj = np.indices((h, w))
    c0 = agg[ii, jj, best]
    cm = agg[ii, jj, np.maximum(best - 1, 0)]
    cp = agg[ii, jj, np.minimum(best + 1, P - 1)]
    denom = cm - 2 * c0 + cp
    inner = (best > 0) & (best < P - 1) & (denom > 1e-9)
    offset = np.where(inner, 0.5 * (cm - cp) / np.where(inner, denom, 1.0), 0.0)
    offset = np.clip(offset, -0.5, 0.5)
    # second-best *distinct* minimum: the lowest other local minimum of the cost curve
    if P > 3:
        is_min = np.zeros(agg.shape, bool)
        is_min[:, :, 1:-1] = (agg[:, :, 1:-1] < agg[:, :, :-2]) & (agg[:, :, 1:-1] <= agg[:, :, 2:])
        near = np.abs(np.arange(P)[None, None, :] - best[:, :, None]) <= 1
        second = np.where(is_min & ~near, agg, np.inf).min(axis=2)
    else:
        second = np.full((h, w), np.inf, np.float32)
    return best, offset, c0, second, inner


def _half(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    return cv2.resize(img, (max(8, w // 2), max(8, h // 2)), interpolation=cv2.INTER_AREA)


# Long on purpose: the coarse sweep and its fine refinement share every intermediate map.
def plane_sweep(
    ref: np.ndarray,
    sources: list[np.ndarray],
    K: np.ndarray,
    pose_ref: np.ndarray,
    source_poses: list[np.ndarray],
    rho_planes: np.ndarray,
    settings: MVSSettings,
) -> tuple[np.ndarray, np.ndarray]:
    """Coarse-to-fine plane-sweep stereo of grayscale ``ref`` (float32 ``[0, 1]``) against ``sources``.

    ``rho_planes`` are inverse depths (ascending, uniform) of fronto-parallel planes in the
    reference camera, swept at half the image resolution when ``settings.coarse_to_fine``
    (else at full resolution); the winner is then refined at full resolution with
    ``refine_hypotheses`` per-pixel inverse depths spaced half a plane apart around the
    upsampled coarse winner, with a final parabola fit. ``K`` are the intrinsics of these
    images (OpenCV pixel centres); poses camera-to-world. Returns ``(depth, confidence)``
    float32 ``(H, W)``, depth 0 where nothing could be matched.
    """
    h, w = ref.shape
    rho = np.asarray(rho_planes, np.float64).reshape(-1, 1)
    P = rho.shape[0]
    step = float(rho[1, 0] - rho[0, 0]) if P > 1 else 0.0
    if settings.coarse_to_fine:
        ref_c = _half(ref)
        hc, wc = ref_c.shape
        Kc = scale_K(K, (w, h), (wc, hc))
        agg, textured_c = _aggregated_costs(ref_c, [_half(x) for x in sources], Kc, pose_ref, source_poses,
                                            rho, settings, settings.ncc_radius_coarse)
    else:
        agg, textured_c = _aggregated_costs(ref, sources, K, pose_ref, source_poses, rho, settings,
                                            settings.ncc_radius)
    best, offset, c0, second, inner = _winner(agg)
    rho_c = rho[best, 0] + offset * step
    uniq = np.clip((second - c0) / UNIQUENESS_MARGIN, 0.0, 1.0)
    conf_c = np.where(inner & textured_c, uniq, 0.0).astype(np.float32)
    del agg

    if settings.coarse_to_fine and settings.refine_hypotheses > 1:
        rho0 = cv2.resize(rho_c.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        conf_up = cv2.resize(conf_c, (w, h), interpolation=cv2.INTER_LINEAR)
        fine_step = 0.5 * step
        # hypothesis groups: the upsampled coarse winner, and the nearest / farthest coarse
        # winner of the 3x3 coarse neighbourhood (so pixels next to a depth edge can take the
        # other side's depth instead of inheriting the coarse window's foreground fattening)
        kern = np.ones((2 * settings.alt_radius + 1, 2 * settings.alt_radius + 1), np.uint8)
        rc = rho_c.astype(np.float32)
        groups = [(rho0, settings.refine_hypotheses)]
        for alt in (cv2.erode(rc, kern), cv2.dilate(rc, kern)):
            groups.append((cv2.resize(alt, (w, h), interpolation=cv2.INTER_NEAREST), 3))
        hyps, offs_all = [], []
        for base, n in groups:
            offs = (np.arange(n, dtype=np.float64) - (n - 1) / 2.0) * fine_step
            hyps.append(base.reshape(1, -1).astype(np.float64) + offs.reshape(-1, 1))
            offs_all.append(offs)
        hyp = np.concatenate(hyps, axis=0)
        agg_f, textured = _aggregated_costs(ref, sources, K, pose_ref, source_poses, hyp, settings,
                                            settings.ncc_radius)
        best_c = np.full((h, w), np.inf, np.float32)
        rho_best = np.zeros((h, w), np.float64)
        inner_f = np.zeros((h, w), bool)
        start = 0
        for gi, ((base, n), offs) in enumerate(zip(groups, offs_all)):
            bg, og, cg, _, ig = _winner(agg_f[:, :, start : start + n])
            if gi > 0:  # a neighbour's depth: its winner may sit on the group's border
                ig = np.ones_like(ig)
            take = cg < best_c
            best_c = np.where(take, cg, best_c)
            rho_best = np.where(take, base + offs[bg] + og * fine_step, rho_best)
            inner_f = np.where(take, ig, inner_f)
            start += n
        ncc_best = 1.0 - best_c
        conf = np.clip((ncc_best - NCC_CONFIDENCE_LOW) / NCC_CONFIDENCE_SPAN, 0.0, 1.0) * conf_up
        conf = np.where(textured & inner_f & (rho_best > 0), conf, 0.0)
    else:
        rho_best = rho_c
        ncc_best = 1.0 - c0
        conf = np.clip((ncc_best - NCC_CONFIDENCE_LOW) / NCC_CONFIDENCE_SPAN, 0.0, 1.0) * conf_c
        conf = np.where(rho_best > 0, conf, 0.0)
        if settings.coarse_to_fine:  # coarse only: bring it to full size
            rho_best = cv2.resize(rho_best.astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
            conf = cv2.resize(conf.astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
    depth = np.where((rho_best > 0) & (conf > 0), 1.0 / np.maximum(rho_best, 1e-12), 0.0)
    return depth.astype(np.float32), conf.astype(np.float32)
