"""``mvs``: weight-free dense multi-view stereo depth for every frame of a posed video (CPU).

Conventions (see :mod:`steadydepth.types`): frames are uint8 RGB at the processing
resolution; ``context.cameras`` holds the intrinsics at that resolution (OpenCV pixel
centres) and one camera-to-world pose per frame (OpenCV axes), in stream order. Output
values are z-depth in the cameras' units (scene units after SfM, ``metric=False``), float32,
with a confidence in ``[0, 1]``.

Algorithm, per reference frame ``r`` (all at a reduced *work* resolution, see presets):

1. **Source views**: among frames ``r-N .. r+N`` (``search_radius``) with a pose, drop
   near-duplicates (baseline / scene depth below ``min_baseline_ratio``) and views whose
   optical axis turns more than ``max_view_angle_deg``; rank the rest by how close their
   baseline ratio is to ``target_baseline_ratio`` and take ``num_views``, alternating past and
   future frames (occlusions on one side are seen on the other).
2. **Depth hypotheses**: ``num_planes`` fronto-parallel planes uniform in *inverse* depth over
   a range from the sparse SfM points seen by the frame (``Cameras.points``), else from the
   previous frame's depth, else from a bootstrap sweep whose nearest plane gives a disparity of
   a quarter of the image width on the widest baseline.
3. **Matching cost**, coarse to fine: the source image is warped onto each hypothesis with the
   plane-induced homography ``H = K_s (R + rho t n^T) K_r^-1`` (``n = (0, 0, 1)``,
   ``rho = 1 / depth``, ``X_s = R X_r + t``) using ``cv2.remap``; cost = ``1 - NCC`` over a
   ``(2 r + 1)^2`` box window on grayscale (robust to exposure changes; variances are floored
   so textureless patches score NCC 0, not noise). Per pixel and hypothesis the ``best_k``
   smallest view costs are averaged (occlusion robust), a min filter over the window
   ("shiftable windows") limits foreground fattening, and the volume is filtered with a
   guided filter (reference image as guide, edge-aware aggregation). The full plane sweep
   runs at half the work resolution; at the work resolution each pixel then tests
   ``refine_hypotheses`` inverse depths half a plane apart around the upsampled coarse
   winner, plus three around the nearest and three around the farthest coarse winner within
   ``alt_radius`` coarse pixels (so pixels next to a depth edge can take the other side's
   depth). The winner is refined by a parabola fit through its neighbouring hypotheses.
4. **Matching confidence**: ``clip((NCC - 0.2) / 0.6, 0, 1)`` of the winner times a
   uniqueness term from the coarse sweep, ``clip((c2 - c1) / 0.1, 0, 1)`` with ``c1`` the
   best cost and ``c2`` the lowest *other* local minimum of the pixel's cost curve (1 when
   there is none); zero on textureless patches and where the winner sits on the range's end.
5. **Geometric consistency** (:mod:`steadydepth.consistency.geometric`): each frame's depth is
   checked forward-backward against the raw depths of frames ``r-M .. r+M``
   (``consistency_radius``, kept in a small cache); pixels agreeing with fewer than
   ``min_agree`` views are dropped (occlusions, mismatches, moving objects).
6. **Completion** (:mod:`steadydepth.consistency.completion`): dropped and unmatched pixels are
   filled by an edge-aware least-squares solve in inverse depth (confidence 0.2; link weights
   never below ``fill_edge_floor``, so the texture edges inside an unmatched textured patch,
   e.g. a strip that only this frame sees, do not cut it off from its matched surroundings and
   leave it to the weak pull towards the far end: 1e-3 -> 1e-2 measured with GT cameras, 40
   frames: handheld walk delta1 0.9889 -> 0.9900 and TAE 0.82 -> 0.81, blank wall 0.9056 ->
   0.9119 and TAE 1.07 -> 0.98, orbit and open3d unchanged; the guide colours are first
   median filtered over ``fill_guide_median`` (odd) pixels, which removes thin texture lines such as
   mortar: walk 0.0148 / 0.9900 / 0.81 -> 0.0143 / 0.9915 / 0.78, orbit 0.9915 -> 0.9917,
   mover 0.9915 -> 0.9917, blank wall 0.9119 -> 0.9128, open3d 0.0939 / 0.9299 -> 0.0941 /
   0.9295); depth edges
   are then snapped onto colour edges by a colour-weighted median in inverse depth over
   ``(2 snap_radius + 1)^2`` windows, only where the window spans more than ``snap_ratio`` in
   disparity (:func:`~steadydepth.consistency.completion.snap_depth_edges`; removes part of the NCC
   window's foreground fattening), and depth is upsampled to the processing resolution
   bilinearly in inverse depth *without blending across depth edges*: where the four taps
   disagree by more than 10 % only the near or the far taps are used, whichever holds the
   colour closest to the output pixel's (a blend of foreground and background is no surface
   and fails delta1). Pixels the snapping moves get the fill confidence. Optionally
   (``occlusion_radius > 0``, off by default) holes larger than ``occlusion_min_area`` (a
   fraction of the work-resolution pixels) are filled from their far boundary (occluded
   background, links to nearer boundary pixels weighted by ``occlusion_weight``); measured on 30-frame clips: blank
   wall AbsRel 0.097 -> 0.083 (``occlusion_weight`` 0.1) / 0.072 (0.01), but textured orbit
   0.0139 -> 0.0138 (delta1 0.9882 -> 0.9871) / 0.0227, and TAE worse on both, so it stays off.
7. **Temporal blend**: filled pixels (confidence at most ``fill_confidence``) are averaged with
   the previous frame's final depth reprojected through the current depth, where the two
   agree within 1.5 px and 15 % (``temporal_blend`` = weight of the previous frame); matched
   pixels are never changed. Measured with ground-truth cameras (40 frames, 480x270): TAE
   0.69 -> 0.60 (static orbit), 1.34 -> 0.97 (blank far wall), accuracy unchanged.
8. **Edge test** (:func:`edge_test`, at the processing resolution, after upsampling): pixels
   on the near side of a depth edge (disparity span above ``edge_test_ratio`` within
   ``edge_test_radius`` *work* pixels) compare the photometric cost of their depth with that
   of the farthest depth around them, over small ``(2 edge_test_window + 1)^2`` zero-mean
   windows against frames ``r-2 .. r+2``, and take the far depth when it is clearly cheaper
   (``edge_test_margin``); ``edge_test_iterations`` passes. It removes much of the
   foreground fattening that the 7x7 NCC windows leave and the geometric check cannot see
   (fattened neighbours agree with each other). Measured with GT cameras (balanced, 40 frames
   480x270), AbsRel / delta1 / TAE: orbit 0.0142 / 0.9891 / 0.60 -> 0.0128 / 0.9910 / 0.63,
   with a mover 0.0142 / 0.9888 -> 0.0129 / 0.9909, blank wall 0.0972 / 0.9053 -> 0.0972 /
   0.9052, open3d_rgbd 0.0939 / 0.9300 / 0.457 -> 0.0939 / 0.9302 / 0.460; about +0.03 s per
   frame. Moved pixels get the fill confidence.

Streaming: frames are consumed ``N + M`` ahead of the output; the prior holds at most
``2 N + 1`` frames (``max_buffered`` records the high-water mark) and ``2 M + 1`` raw depths,
so memory is flat in clip length.

No parallax: if ``cameras.warnings`` holds a ``"no-parallax:"`` entry or no two cameras within
the search window are farther apart than ``1e-4`` of the scene depth (median depth of the
sparse points, else 1 scene unit), depth cannot be recovered from the video; every frame then gets a
constant depth of 1.0 scene unit with confidence 0, and one warning says that a learned prior
(``--prior hf:...``) is needed.

Frames without a pose get a pose interpolated between the nearest posed frames (linear in
position, spherical in rotation) or copied from the nearest one; a warning says how many.

Presets (``context.preset``): ``fast`` (work long side 192, 32 planes, 3 views), ``balanced``
(240, 48, 4), ``best`` (320, 64, 4). ``context.options["mvs"]`` (a dict) overrides any field
of :class:`MVSSettings`. Short clips (``context.num_frames`` at most ``short_clip_frames``,
12) are matched at a work long side of at least ``short_clip_long_side`` (640, capped at the
processing resolution): a few frames give little baseline, so the disparities in pixels must
come from resolution; the clip is short, so the per-frame cost (about 2.3 s at 640x480 on
one core) stays small in total. Measured on open3d_rgbd (5 frames 640x480, GT cameras):
AbsRel 0.122 -> 0.098, delta1 0.884 -> 0.924.

Measured (balanced, GT cameras, 2 shared cores, ``OMP_NUM_THREADS=1``, ``evaluate_depth``
with ``align="sequence"``), AbsRel / delta1 / TAE, before -> after edge snapping (radius 3,
two passes), edge-aware upsampling and the short-clip resolution: synthetic orbit (60 frames,
480x270) 0.0159 / 0.9876 / 0.63 -> 0.0142 / 0.9901 / 0.58 at about 0.25 s/frame; with a
moving object (static pixels) 0.0162 / 0.9872 -> 0.0145 / 0.9897; blank far wall 0.091 /
0.921 -> 0.090 / 0.923 (the wall is never matched; see ``occlusion_radius``); open3d_rgbd
0.122 / 0.884 / 0.79 -> 0.098 / 0.924 / 0.55. Most of the remaining error is the sliding door's
metal frame (about 6 % of the pixels, 1.37 m in front of a 2.5 m background): it is a saturated,
uniform vertical bar and the camera moves only vertically (2.4 cm per frame), so its epipolar
lines run along it and no view constrains its depth; the fill takes the background's depth. A diagnostic oracle
(ground truth everywhere, the background's depth on the frame) scores 0.092 / 0.931 under the
same protocol, so this sequence's error is bounded below by that frame for stereo.

Later measured on the same data (GT cameras, balanced, search radius 4): ``texture_floor``
0.01 -> 0.005 matches the faintly textured plaster walls (matched pixels 39 % -> 50 %) and gives
0.098 / 0.924 / 0.56 -> 0.094 / 0.930 / 0.46; ``snap_iterations`` 2 -> 3 adds a little on the
synthetic orbit. ``agg_eps`` 1e-4 helped the orbit's delta1 by about 0.0005 but raised
open3d's TAE to 0.66, so it stays 1e-3. An edge-aware second-order (planar) fill energy was
tried and made the orbit and blank-wall clips worse (it extrapolates noisy boundaries).
With the edge test (step 8), ``snap_radius`` 3 -> 4 with ``snap_ratio`` 1.1 -> 1.2 (fewer
windows count as edges, so the larger radius costs little): orbit 0.0128 / 0.9910 -> 0.0127 /
0.9915, mover 0.0129 / 0.9909 -> 0.0127 / 0.9914, blank wall 0.0972 / 0.9052 -> 0.0970 / 0.9056,
open3d 0.0939 / 0.9302 -> 0.0939 / 0.9299 (ratio 1.1 gives about +0.0003 more delta1 at +0.04 s
per frame; 1.3 loses open3d delta1 0.9291).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields, replace

import cv2
import numpy as np

from ..consistency.completion import complete_depth, guided_filter, snap_depth_edges, upsample_depth
from ..consistency.geometric import geometric_consistency
from ..errors import InputError, ReconstructionError
from ..geometry import interpolate_poses, project_points, relative_pose, scale_K
from ..types import Cameras, Frame, Intrinsics, PriorOutput
from .base import DepthPrior, PriorContext, register_prior

__all__ = ["MVSSettings", "MVS_PRESETS", "MVSPrior", "plane_sweep", "select_sources", "edge_test"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MVSSettings:
    """Parameters of :class:`MVSPrior` (see the module docstring for their role)."""

    work_long_side: int = 240
    num_planes: int = 48
    num_views: int = 4
    best_k: int = 2
    search_radius: int = 8
    ncc_radius: int = 3
    ncc_radius_coarse: int = 2
    coarse_to_fine: bool = True
    shiftable_windows: bool = True
    alt_radius: int = 2
    refine_hypotheses: int = 7
    agg_radius: int = 3
    agg_eps: float = 1e-3
    consistency_radius: int = 2
    min_agree: int = 2
    pix_tol: float = 1.0
    rel_tol: float = 0.02
    min_baseline_ratio: float = 0.01
    target_baseline_ratio: float = 0.08
    max_view_angle_deg: float = 40.0
    raw_min_confidence: float = 0.1
    fill_confidence: float = 0.2
    fill_edge_floor: float = 1e-2
    fill_guide_median: int = 3
    texture_floor: float = 0.005
    temporal_blend: float = 0.5
    snap_radius: int = 4
    snap_ratio: float = 1.2
    snap_sigma: float = 0.05
    snap_iterations: int = 3
    occlusion_radius: int = 0
    occlusion_weight: float = 1.0
    occlusion_min_area: float = 0.0
    edge_test_radius: float = 2.5
    edge_test_window: int = 2
    edge_test_margin: float = 0.005
    edge_test_ratio: float = 1.2
    edge_test_iterations: int = 2
    short_clip_frames: int = 12
    short_clip_long_side: int = 640


MVS_PRESETS: dict[str, MVSSettings] = {
    "fast": MVSSettings(work_long_side=192, num_planes=32, num_views=3, search_radius=6),
    "balanced": MVSSettings(),
    "best": MVSSettings(work_long_side=320, num_planes=64, num_views=4, search_radius=10),
}

#: below this baseline / depth ratio the camera is taken as not translating at all
NO_PARALLAX_RATIO = 1e-4


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


def _box(x: np.ndarray, r: int) -> np.ndarray:
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
    mu = _box(warped, ncc_radius)
    cross = _box(warped * ref[:, :, None], ncc_radius)
    np.multiply(warped, warped, out=warped)
    den = _box(warped, ncc_radius)
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
    ref_mean = _box(ref, r)
    ref_var = _box(ref * ref, r) - ref_mean * ref_mean
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
    uniq = np.clip((second - c0) / 0.1, 0.0, 1.0)
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
        conf = np.clip((ncc_best - 0.2) / 0.6, 0.0, 1.0) * conf_up
        conf = np.where(textured & inner_f & (rho_best > 0), conf, 0.0)
    else:
        rho_best = rho_c
        ncc_best = 1.0 - c0
        conf = np.clip((ncc_best - 0.2) / 0.6, 0.0, 1.0) * conf_c
        conf = np.where(rho_best > 0, conf, 0.0)
        if settings.coarse_to_fine:  # coarse only: bring it to full size
            rho_best = cv2.resize(rho_best.astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
            conf = cv2.resize(conf.astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
    depth = np.where((rho_best > 0) & (conf > 0), 1.0 / np.maximum(rho_best, 1e-12), 0.0)
    return depth.astype(np.float32), conf.astype(np.float32)


def _zmad(diff: np.ndarray, window: int) -> np.ndarray:
    """Zero-mean absolute difference over ``(2 window + 1)^2`` boxes (robust to an exposure offset)."""
    return _box(np.abs(diff - _box(diff, window)), window)


def edge_test(
    depth: np.ndarray,
    ref: np.ndarray,
    sources: list[np.ndarray],
    K: np.ndarray,
    pose_ref: np.ndarray,
    source_poses: list[np.ndarray],
    *,
    radius: int = 5,
    window: int = 2,
    margin: float = 0.005,
    best_k: int = 2,
    edge_ratio: float = 1.2,
) -> tuple[np.ndarray, np.ndarray]:
    """Give pixels beside a depth edge the far side's depth where the images say so.

    Window matching fattens foreground objects: background pixels beside an edge take the
    foreground's depth, and the geometric check cannot see it (the neighbours are fattened
    alike). Here every pixel whose ``(2 radius + 1)^2`` neighbourhood spans more than
    ``edge_ratio`` in disparity is tested with small windows: the photometric cost (zero-mean
    absolute difference of grayscale ``[0, 1]`` images over ``(2 window + 1)^2`` boxes, mean of
    the ``best_k`` lowest over the source views, so a view where the background is occluded
    is outvoted) of its own depth against that of the farthest depth of its neighbourhood; it
    takes the far depth when that costs ``margin`` less. ``depth`` is z-depth (0 = invalid,
    never changed), ``K`` the intrinsics of these images (OpenCV pixel centres), poses
    camera-to-world. Returns ``(depth, moved)``.
    """
    depth = np.asarray(depth, np.float32)
    h, w = depth.shape
    valid = depth > 0
    disp = np.where(valid, 1.0 / np.where(valid, depth, 1.0), 0.0).astype(np.float32)
    kern = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    near = cv2.dilate(disp, kern, borderType=cv2.BORDER_REPLICATE)
    far = cv2.erode(np.where(valid, disp, np.float32(np.inf)), kern, borderType=cv2.BORDER_REPLICATE)
    band = valid & np.isfinite(far) & (near > far * np.float32(edge_ratio)) & (disp > far * np.float32(edge_ratio))
    moved = np.zeros((h, w), bool)
    if not band.any() or not sources:
        return depth, moved
    # costs are needed on the band; the zero-mean box filters read 2 * window pixels around it
    support = cv2.dilate(band.astype(np.uint8), np.ones((4 * window + 1, 4 * window + 1), np.uint8)) > 0
    ys, xs = np.nonzero(support)
    rays = np.linalg.inv(K) @ np.stack([xs, ys, np.ones(xs.size)]).astype(np.float64)
    k = max(1, min(best_k, len(sources)))
    costs = []
    for hyp in (disp, np.where(band, far, disp)):
        pts = rays / hyp[ys, xs].astype(np.float64)[None]
        per_view = []
        for src, ps in zip(sources, source_poses):
            R, t = relative_pose(pose_ref, ps)
            q = K @ (R @ pts + t[:, None])
            ok = q[2] > 1e-9
            z = np.where(ok, q[2], 1.0)
            mx = np.where(ok, q[0] / z, -10.0).astype(np.float32)
            my = np.where(ok, q[1] / z, -10.0).astype(np.float32)
            seen = ok & (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
            warped = cv2.remap(src, mx[None], my[None], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[0]
            diff = np.zeros((h, w), np.float32)
            diff[ys, xs] = ref[ys, xs] - warped
            unseen = np.zeros((h, w), np.float32)
            unseen[ys, xs] = ~seen
            c = _zmad(diff, window)[band]
            c[_box(unseen, window)[band] > 0] = np.inf  # any unseen pixel in the window: no vote
            per_view.append(c)
        pv = np.sort(np.stack(per_view), axis=0)[:k]
        costs.append(np.where(np.isfinite(pv), pv, 1.0).mean(axis=0))
    take = costs[1] < costs[0] - margin
    moved[band] = take
    out = depth.copy()
    out[moved] = 1.0 / far[moved]
    return out, moved


# --------------------------------------------------------------------------- the prior


def _to_gray(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    img = image
    if img.shape[1] != size[0] or img.shape[0] != size[1]:
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


def _work_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    s = min(1.0, long_side / float(max(width, height)))
    return max(16, int(round(width * s))), max(16, int(round(height * s)))


class MVSPrior(DepthPrior):
    """Dense multi-view stereo on a posed video (see the module docstring)."""

    name = "mvs"
    needs_cameras = True

    def __init__(self, settings: MVSSettings | None = None) -> None:
        self._fixed = settings
        self.settings = settings or MVS_PRESETS["balanced"]
        #: most frames held at once during the last :meth:`process` (memory bound check)
        self.max_buffered = 0
        #: most raw depth maps held at once during the last :meth:`process`
        self.max_cached_depths = 0
        self.no_parallax = False
        #: ``(width, height)`` of the work resolution of the last :meth:`process` (None before)
        self.work_size: tuple[int, int] | None = None

    def describe(self) -> dict:
        out = {"name": self.name, "settings": asdict(self.settings)}
        if self._fixed is None:
            out["preset"] = "the run's preset (settings shown are those of the last run, else balanced)"
        return out

    # ---------------------------------------------------------------- setup
    def _resolve_settings(self, context: PriorContext) -> MVSSettings:
        if self._fixed is not None:
            s = self._fixed
        else:
            s = MVS_PRESETS.get(context.preset, MVS_PRESETS["balanced"])
        overrides = dict(context.options.get("mvs", {}) or {})
        if overrides:
            names = {f.name for f in fields(MVSSettings)}
            bad = sorted(set(overrides) - names)
            if bad:
                raise InputError(f"unknown mvs option(s) {bad}: choose from {sorted(names)}")
            s = replace(s, **overrides)
        return s

    @staticmethod
    def _scene_depth_from_points(cameras: Cameras, pose: np.ndarray, intr: Intrinsics) -> tuple[float, float, float] | None:
        """Median depth and 1/99 % inverse-depth percentiles of sparse points seen by ``pose``."""
        pts = cameras.points
        if pts is None or len(pts) < 20:
            return None
        u, v, z = project_points(pts, pose, intr, min_depth=1e-9)
        if z.size < 20:
            return None
        inside = (u >= -0.5) & (u <= intr.width - 0.5) & (v >= -0.5) & (v <= intr.height - 0.5)
        if inside.sum() < 20:
            return None
        zz = z[inside]
        rho = 1.0 / zz
        return float(np.median(zz)), float(np.percentile(rho, 1)), float(np.percentile(rho, 99))

    def _check_parallax(self, cameras: Cameras, poses: list[np.ndarray | None], scene_depth: float) -> bool:
        if any(str(wn).startswith("no-parallax:") for wn in cameras.warnings):
            return False
        centres = [p[:3, 3] for p in poses if p is not None]
        if len(centres) < 2:
            return False
        C = np.asarray(centres)
        R = self.settings.search_radius
        best = 0.0
        for i in range(len(C)):
            d = np.linalg.norm(C[i + 1 : i + 1 + R] - C[i], axis=1)
            if d.size:
                best = max(best, float(d.max()))
        return best / max(scene_depth, 1e-12) >= NO_PARALLAX_RATIO

    # ---------------------------------------------------------------- main loop
    def process(self, frames: Iterable[Frame], context: PriorContext) -> Iterator[PriorOutput]:
        cameras = context.cameras
        if cameras is None:
            raise ReconstructionError("the mvs prior needs camera poses (structure from motion did not run)")
        self.settings = s = self._resolve_settings(context)
        self.max_buffered = 0
        self.max_cached_depths = 0
        poses = list(cameras.poses)
        filled = sum(p is None for p in poses)
        if filled == len(poses):
            filled = 0  # nothing to interpolate from
        else:
            poses = interpolate_poses(poses)
        if filled:
            log.warning("mvs: %d of %d frames have no camera pose; using poses interpolated from the "
                        "nearest posed frames", filled, len(poses))
        all_unposed = all(p is None for p in poses)

        first_pose = next((p for p in poses if p is not None), None)
        pts_info = self._scene_depth_from_points(cameras, first_pose, cameras.intrinsics) if first_pose is not None else None
        scene_depth0 = pts_info[0] if pts_info else 1.0
        self.no_parallax = (not all_unposed) and not self._check_parallax(cameras, poses, scene_depth0)
        if all_unposed:
            log.warning("mvs: no frame has a camera pose; depth cannot be computed (every frame gets "
                        "depth 0 with confidence 0)")
        if self.no_parallax and sum(p is not None for p in poses) < 2:
            log.warning("mvs: fewer than two frames, so depth cannot be recovered by multi-view stereo; "
                        "every frame gets a constant depth of 1.0 scene unit with confidence 0. Use a "
                        "learned prior (--prior hf:...) for single images.")
        elif self.no_parallax:
            log.warning(
                "mvs: the camera does not translate (no parallax), so depth cannot be recovered from "
                "this video by multi-view stereo; every frame gets a constant depth of 1.0 scene unit "
                "with confidence 0. Use a learned prior (--prior hf:...) for such clips."
            )
        if all_unposed or self.no_parallax:
            for i, frame in enumerate(frames):
                self.max_buffered = max(self.max_buffered, 1)
                h, w = frame.image.shape[:2]
                val = 0.0 if all_unposed else 1.0
                yield PriorOutput(index=i, values=np.full((h, w), val, np.float32), kind="depth",
                                  metric=False, confidence=np.zeros((h, w), np.float32))
            return

        N, M = s.search_radius, min(s.consistency_radius, s.search_radius)
        buf: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # i -> (rgb processing res, gray work res)
        raw: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # i -> (raw depth, match confidence) at work res
        state = {"scene_depth": pts_info[0] if pts_info else None, "rho_range": None, "K": None, "intr": None,
                 "wsize": None, "psize": None, "num_frames": context.num_frames}
        next_raw = next_out = 0
        last = -1

        for i, frame in enumerate(frames):
            img = np.asarray(frame.image)
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise InputError(f"mvs: frame {i} must be uint8 RGB (H, W, 3), got {img.dtype} {img.shape}")
            if i >= len(poses):
                raise ReconstructionError(
                    f"mvs: frame {i} has no camera (the cameras cover {len(poses)} frames)")
            if state["intr"] is None:
                self._setup_sizes(state, cameras.intrinsics, img.shape[1], img.shape[0])
            buf[i] = (img, _to_gray(img, state["wsize"]))
            last = i
            self.max_buffered = max(self.max_buffered, len(buf))
            while next_raw <= i - N:
                raw[next_raw] = self._raw_depth(next_raw, buf, poses, last, state, cameras)
                next_raw += 1
                self.max_cached_depths = max(self.max_cached_depths, len(raw))
            while next_out <= next_raw - 1 - M:
                yield self._finish(next_out, buf, raw, poses, state, last)
                next_out += 1
                self._prune(buf, raw, next_raw, next_out, N, M)
        while next_raw <= last:
            raw[next_raw] = self._raw_depth(next_raw, buf, poses, last, state, cameras)
            next_raw += 1
            self.max_cached_depths = max(self.max_cached_depths, len(raw))
            while next_out <= next_raw - 1 - M:
                yield self._finish(next_out, buf, raw, poses, state, last)
                next_out += 1
                self._prune(buf, raw, next_raw, next_out, N, M)
        while next_out <= last:
            yield self._finish(next_out, buf, raw, poses, state, last)
            next_out += 1
            self._prune(buf, raw, next_raw, next_out, N, M)

    @staticmethod
    def _prune(buf: dict, raw: dict, next_raw: int, next_out: int, N: int, M: int) -> None:
        keep_frames_from = min(next_raw - N, next_out)
        for j in [j for j in buf if j < keep_frames_from]:
            del buf[j]
        for j in [j for j in raw if j < next_out - M]:
            del raw[j]

    @staticmethod
    def _warn_once(state: dict, message: str) -> None:
        """Log the first such problem as a warning, later ones at debug level (long static spans)."""
        if state.get("warned"):
            log.debug(message)
        else:
            state["warned"] = True
            log.warning("%s (further such messages at debug level)", message)

    def _setup_sizes(self, state: dict, intr: Intrinsics, width: int, height: int) -> None:
        if (intr.width, intr.height) != (width, height):
            log.debug("mvs: frames are %dx%d, intrinsics %dx%d; rescaling intrinsics",
                      width, height, intr.width, intr.height)
            intr = intr.scaled(width, height)
        long_side = self.settings.work_long_side
        nf = state.get("num_frames")
        if nf is not None and nf <= self.settings.short_clip_frames:
            long_side = max(long_side, self.settings.short_clip_long_side)
            log.debug("mvs: short clip (%d frames): work long side %d", nf, long_side)
        wsize = _work_size(width, height, long_side)
        state["psize"] = (width, height)
        state["wsize"] = wsize
        self.work_size = wsize
        state["intr"] = intr.scaled(*wsize)
        state["K"] = state["intr"].K
        state["K_proc"] = intr.K

    def _raw_depth(self, r: int, buf: dict, poses: list, last: int, state: dict,
                   cameras: Cameras) -> tuple[np.ndarray, np.ndarray]:
        """Plane-sweep depth of frame ``r`` at work resolution (no consistency, no completion)."""
        s = self.settings
        K, intr = state["K"], state["intr"]
        wsize = state["wsize"]
        pose_r = poses[r]
        cand = {j: poses[j] for j in range(max(0, r - s.search_radius), min(last, r + s.search_radius) + 1)
                if j in buf and poses[j] is not None}
        pts = self._scene_depth_from_points(cameras, pose_r, intr)
        scene_depth = pts[0] if pts else state["scene_depth"]
        srcs = select_sources(r, cand, scene_depth, s)
        if not srcs:
            self._warn_once(state, f"mvs: frame {r} has no source view with a different camera position")
            z = np.zeros((wsize[1], wsize[0]), np.float32)
            return z, z.copy()
        ref = buf[r][1]
        src_imgs = [buf[j][1] for j in srcs]
        src_poses = [poses[j] for j in srcs]

        if pts:
            lo, hi = 0.6 * pts[1], 1.5 * pts[2]
        elif state["rho_range"] is not None:
            lo, hi = state["rho_range"]
        else:
            # bootstrap: nearest plane = a quarter image width of disparity on the widest baseline
            base = max(float(np.linalg.norm(poses[j][:3, 3] - pose_r[:3, 3])) for j in srcs)
            hi = 0.25 * wsize[0] / (intr.fx * max(base, 1e-12))
            lo = hi / 200.0
            d0, c0 = plane_sweep(ref, src_imgs, K, pose_r, src_poses, np.linspace(lo, hi, s.num_planes), s)
            ok = c0 > 0.3
            if ok.sum() > 50:
                rr = 1.0 / d0[ok]
                lo, hi = 0.6 * float(np.percentile(rr, 1)), 1.5 * float(np.percentile(rr, 99))
                scene_depth = float(np.median(d0[ok]))
                srcs = select_sources(r, cand, scene_depth, s)
                src_imgs = [buf[j][1] for j in srcs]
                src_poses = [poses[j] for j in srcs]
            log.debug("mvs: bootstrap inverse-depth range for frame %d: %.4g .. %.4g", r, lo, hi)
        depth, conf = plane_sweep(ref, src_imgs, K, pose_r, src_poses, np.linspace(lo, hi, s.num_planes), s)
        ok = conf > 0.3
        if ok.sum() > 50:
            rr = 1.0 / depth[ok]
            state["rho_range"] = (0.6 * float(np.percentile(rr, 1)), 1.5 * float(np.percentile(rr, 99)))
            state["scene_depth"] = float(np.median(depth[ok]))
        depth = np.where(conf >= s.raw_min_confidence, depth, 0.0).astype(np.float32)
        return depth, conf

    def _finish(self, o: int, buf: dict, raw: dict, poses: list, state: dict, last: int) -> PriorOutput:
        """Consistency check, completion and upsampling of frame ``o``."""
        s = self.settings
        depth, conf = raw[o]
        rgb = buf[o][0]
        wsize = state["wsize"]
        neigh = [(raw[j][0], poses[j]) for j in range(o - s.consistency_radius, o + s.consistency_radius + 1)
                 if j != o and j in raw]
        if neigh and (depth > 0).any():
            res = geometric_consistency(depth, state["K"], poses[o], neigh, pix_tol=s.pix_tol, rel_tol=s.rel_tol)
            need = min(s.min_agree, len(neigh))
            keep = res.num_agree >= need
            geo = np.clip(res.num_agree / float(max(need, 1)), 0.0, 1.0)
            depth = np.where(keep, res.fused_depth, 0.0).astype(np.float32)
            conf = np.where(keep, conf * geo, 0.0).astype(np.float32)
        small = cv2.resize(rgb, wsize, interpolation=cv2.INTER_AREA) if rgb.shape[:2] != wsize[::-1] else rgb
        if (depth > 0).any():
            guide = cv2.medianBlur(small, s.fill_guide_median) if s.fill_guide_median > 1 else small
            depth, conf = complete_depth(depth, conf, guide, fill_confidence=s.fill_confidence,
                                         edge_floor=s.fill_edge_floor,
                                         occlusion_radius=s.occlusion_radius,
                                         occlusion_weight=s.occlusion_weight,
                                         occlusion_min_area=int(s.occlusion_min_area * depth.size))
            if s.snap_radius > 0:
                snapped = snap_depth_edges(depth, small, radius=s.snap_radius, sigma_color=s.snap_sigma,
                                           iterations=s.snap_iterations, edge_ratio=s.snap_ratio)
                moved = np.abs(snapped - depth) > 0.01 * depth  # took the other side's depth
                conf = np.where(moved, np.minimum(conf, s.fill_confidence), conf).astype(np.float32)
                depth = snapped
            prev = state.get("prev_final")
            if s.temporal_blend > 0 and prev is not None and prev[0] == o - 1:
                depth = self._temporal_blend(depth, conf, prev[1], state["K"], poses[o], poses[o - 1])
            state["prev_final"] = (o, depth)
            depth, conf = upsample_depth(depth, conf, rgb)
            if s.edge_test_radius > 0:
                depth, conf = self._edge_test(o, depth, conf, buf, poses, state)
        elif state.get("prev_final") is not None:
            # nothing matched (e.g. the camera stopped for longer than the search window):
            # repeat the last good depth with confidence 0 rather than inventing geometry
            self._warn_once(state, f"mvs: frame {o}: no pixel could be matched; repeating the depth of "
                                   f"frame {state['prev_final'][0]} with confidence 0")
            depth, _ = upsample_depth(state["prev_final"][1], np.zeros(wsize[::-1], np.float32), rgb)
            conf = np.zeros(depth.shape, np.float32)
        else:
            self._warn_once(state, f"mvs: frame {o}: no pixel could be matched; depth 0 with confidence 0")
            h, w = rgb.shape[:2]
            depth, conf = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
        return PriorOutput(index=o, values=depth.astype(np.float32), kind="depth", metric=False,
                           confidence=np.clip(conf, 0, 1).astype(np.float32))


    def _edge_test(self, o: int, depth: np.ndarray, conf: np.ndarray, buf: dict, poses: list,
                   state: dict) -> tuple[np.ndarray, np.ndarray]:
        """:func:`edge_test` at the processing resolution against the frames ``o - 2 .. o + 2`` still held."""
        s = self.settings
        srcs = [j for j in (o - 2, o - 1, o + 1, o + 2) if j in buf and poses[j] is not None]
        if not srcs:
            return depth, conf
        gray = [_to_gray(buf[j][0], state["psize"]) for j in [o, *srcs]]
        radius = max(1, round(s.edge_test_radius * state["psize"][0] / state["wsize"][0]))
        for _ in range(s.edge_test_iterations):
            depth, moved = edge_test(depth, gray[0], gray[1:], state["K_proc"], poses[o], [poses[j] for j in srcs],
                                     radius=radius, window=s.edge_test_window, margin=s.edge_test_margin,
                                     best_k=s.best_k, edge_ratio=s.edge_test_ratio)
            conf = np.where(moved, np.minimum(conf, s.fill_confidence), conf).astype(np.float32)
        return depth, conf

    def _temporal_blend(self, depth: np.ndarray, conf: np.ndarray, prev: np.ndarray, K: np.ndarray,
                        pose: np.ndarray, pose_prev: np.ndarray) -> np.ndarray:
        """Blend *filled* pixels with the previous frame's final depth seen through the current depth.

        Only pixels with confidence at most ``fill_confidence`` change: where the previous
        frame's depth, reprojected into this frame, lands within 1.5 px and 15 % of the fill,
        the fill becomes ``(1 - a) * fill + a * previous`` with ``a = temporal_blend``. Matched
        pixels never change, so errors cannot accumulate on them; fills become a running
        average over frames (less flicker where the video itself says nothing).
        """
        from ..consistency.geometric import reproject_check

        s = self.settings
        pix_err, rel_err, back, seen = reproject_check(depth, prev, K, pose, pose_prev)
        use = seen & (conf <= s.fill_confidence + 1e-6) & (pix_err < 1.5) & (rel_err < 0.15)
        a = np.float32(s.temporal_blend)
        out = depth.copy()
        out[use] = (1 - a) * depth[use] + a * back[use]
        return out


@register_prior("mvs")
def _factory(arg: str | None) -> MVSPrior:
    """``--prior mvs`` or ``--prior mvs:PRESET`` (``fast`` / ``balanced`` / ``best``)."""
    if not arg:
        return MVSPrior()
    if arg not in MVS_PRESETS:
        raise InputError(f"--prior mvs:{arg}: unknown preset; choose one of {', '.join(MVS_PRESETS)}")
    return MVSPrior(MVS_PRESETS[arg])
