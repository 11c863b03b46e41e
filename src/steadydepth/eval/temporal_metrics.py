"""Temporal metrics: TAE (temporal alignment error through ground-truth poses, Video Depth
Anything's protocol, step 5 of :mod:`steadydepth.eval.metrics`), flicker against ground truth,
and a flicker measure for clips without any ground truth (through optical flow).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError
from ..types import Intrinsics
from .metric_inputs import FrameSource, _END, _as_frame, _opener, _pairs, _prepare

__all__ = ["temporal_alignment_error", "flicker", "flow_flicker"]


def _pose_or_none(poses: Any, k: int) -> np.ndarray | None:
    if k >= len(poses):
        raise InputError(f"poses: frame {k} has no pose (only {len(poses)} poses were given)")
    p = poses[k]
    if p is None:
        return None
    p = np.asarray(p, dtype=np.float64)
    if p.shape != (4, 4) or not np.all(np.isfinite(p)):
        raise InputError(f"poses: pose {k} must be a finite 4x4 camera-to-world matrix, got shape {p.shape}")
    return p


def _project_abs_rel(d_src: np.ndarray, v_src: np.ndarray, d_dst: np.ndarray, v_dst: np.ndarray,
                     T_dst_src: np.ndarray, K: np.ndarray) -> float | None:
    """AbsRel of ``d_src`` moved into the destination camera against ``d_dst`` (None: no overlap)."""
    h, w = d_dst.shape
    vs, us = np.nonzero(v_src)
    z = d_src[vs, us]
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    pts = np.stack([(us - cx) / fx * z, (vs - cy) / fy * z, z], axis=0)
    q = T_dst_src[:3, :3] @ pts + T_dst_src[:3, 3:4]
    zq = q[2]
    front = zq > 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        u2 = np.rint(fx * q[0] / zq + cx)
        v2 = np.rint(fy * q[1] / zq + cy)
    inb = front & (u2 >= 0) & (u2 < w) & (v2 >= 0) & (v2 < h)
    if not np.any(inb):
        return None
    lin = v2[inb].astype(np.int64) * w + u2[inb].astype(np.int64)
    zz = zq[inb]
    order = np.lexsort((zz, lin))  # by target pixel, nearest first
    lin_s, z_s = lin[order], zz[order]
    first = np.ones(lin_s.size, dtype=bool)
    first[1:] = lin_s[1:] != lin_s[:-1]
    proj = np.zeros(h * w, dtype=np.float64)
    proj[lin_s[first]] = z_s[first]
    proj = proj.reshape(h, w)
    both = (proj > 0) & v_dst
    if not np.any(both):
        return None
    t = d_dst[both]
    return float(np.mean(np.abs(t - proj[both]) / t))


class _TAEAccumulator:
    def __init__(self, intrinsics: Intrinsics, poses: Any) -> None:
        self.intrinsics = intrinsics
        self.poses = poses
        self.prev: tuple[int, np.ndarray, np.ndarray, np.ndarray | None] | None = None
        self.terms: list[float] = []
        self.pairs = 0
        self.frames = 0

    def add(self, k: int, depth: np.ndarray, valid: np.ndarray) -> None:
        self.frames += 1
        pose = _pose_or_none(self.poses, k)
        h, w = depth.shape
        intr = self.intrinsics
        if (intr.width, intr.height) != (w, h):
            intr = intr.scaled(w, h)
        if self.prev is not None and pose is not None and self.prev[3] is not None:
            _, d0, m0, p0 = self.prev
            if d0.shape != depth.shape:
                raise InputError(f"TAE: frame {k} has shape {depth.shape} but frame {k - 1} has {d0.shape}")
            T_1_0 = np.linalg.inv(pose) @ p0
            self.pairs += 1
            for term in (_project_abs_rel(d0, m0, depth, valid, T_1_0, intr.K),
                         _project_abs_rel(depth, valid, d0, m0, np.linalg.inv(T_1_0), intr.K)):
                if term is not None:
                    self.terms.append(term)
        self.prev = (k, depth, valid, pose)

    def result(self) -> float | None:
        if len(self.poses) != self.frames:
            raise InputError(f"poses: {len(self.poses)} poses for {self.frames} frames")
        if not self.terms:
            return None
        return 100.0 * float(np.mean(self.terms))


class _FlickerAccumulator:
    def __init__(self) -> None:
        self.prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.terms: list[float] = []

    def add(self, k: int, pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> None:
        if self.prev is not None:
            p0, g0, m0 = self.prev
            if p0.shape != pred.shape:
                raise InputError(f"flicker: frame {k} has shape {pred.shape} but frame {k - 1} has {p0.shape}")
            both = m0 & valid
            if np.any(both):
                e = np.abs(np.log(pred[both] / p0[both]) - np.log(gt[both] / g0[both]))
                self.terms.append(float(np.mean(e)))
        self.prev = (pred, gt, valid)

    def result(self) -> float | None:
        return 100.0 * float(np.mean(self.terms)) if self.terms else None


def temporal_alignment_error(
    depths: FrameSource,
    intrinsics: Intrinsics,
    poses: Sequence[np.ndarray | None] | np.ndarray,
    *,
    masks: FrameSource | None = None,
) -> float:
    """TAE (Video Depth Anything) of already aligned z-depth frames, times 100.

    ``depths`` are the aligned predicted depths (0 / NaN = invalid) of consecutive frames;
    ``intrinsics`` the ground-truth camera (rescaled when the frames have another size);
    ``poses[k]`` the ground-truth camera-to-world pose of frame ``k`` (``None`` skips the
    pairs touching it). For each consecutive pair, frame ``k``'s pixels are back-projected,
    moved by ``inv(T_{k+1}) @ T_k``, projected to the nearest pixel (nearest surface wins),
    and ``mean |d_{k+1} - d_proj| / d_{k+1}`` is taken over pixels valid in both; likewise
    from ``k + 1`` into ``k``. The result is the mean over both directions and all pairs,
    x100. Optional ``masks`` (bool frames) restrict the valid pixels (e.g. static regions).
    Streams the frames (keeps two). Raises :class:`InputError` for fewer than two frames,
    a pose count that differs from the frame count, or no overlapping pixel at all.
    """
    acc = _TAEAccumulator(intrinsics, poses)
    d_open = _opener(depths, "depths", 1)
    m_iter = _opener(masks, "masks", 1)() if masks is not None else None
    n = 0
    for k, d in enumerate(d_open()):
        d = _as_frame(d, "depths", k)
        with np.errstate(invalid="ignore"):
            v = np.isfinite(d) & (d > 0)
        if m_iter is not None:
            m = next(m_iter, _END)
            if m is _END:
                raise InputError(f"length mismatch: masks has {k} frames but depths has more")
            m = np.asarray(m, dtype=bool)
            if m.shape != d.shape:
                raise InputError(f"masks frame {k}: shape {m.shape} differs from the depth {d.shape}")
            v &= m
        acc.add(k, np.where(v, d, 0.0), v)
        n += 1
    if n < 2:
        raise InputError(f"TAE needs at least two frames, got {n}")
    res = acc.result()
    if res is None:
        raise InputError("TAE: no pair of frames shares a valid pixel (check the poses and intrinsics)")
    return res


def flicker(pred_depths: FrameSource, gt_depths: FrameSource, *, min_depth: float = 1e-3,
            max_depth: float = math.inf) -> float:
    """Pose-free temporal consistency: error of the frame-to-frame depth change, x100.

    For consecutive frames ``k, k+1`` and every pixel valid in both (ground truth in
    ``(min_depth, max_depth)`` and prediction ``> 0`` in both frames), the predicted change
    ``ln(p_{k+1} / p_k)`` is compared with the ground-truth change ``ln(g_{k+1} / g_k)`` at the
    same pixel: ``e = |ln(p_{k+1}/p_k) - ln(g_{k+1}/g_k)|``. The value is
    ``100 * mean over pairs (mean over pixels e)`` — about the percentage by which the depth
    of a pixel jumps between frames beyond what the ground truth does. It is 0 for a
    prediction equal to the ground truth times one constant (so invariant to a global scale,
    not to a shift), and for a static camera it is pure flicker. A frame whose depth is
    scaled by ``a`` adds ``|ln a|`` to the two pairs touching it. Camera motion is handled
    only through the ground-truth change, so depth edges that move across a pixel count too;
    use :func:`temporal_alignment_error` when poses are known. Streams (keeps two frames);
    predictions are resized to the ground truth's size as in :func:`evaluate_depth`.
    """
    acc = _FlickerAccumulator()
    n = 0
    for k, p_raw, g_raw in _pairs(_opener(pred_depths, "prediction", 1), _opener(gt_depths, "ground truth", 1)):
        p, pvalid, g, gvalid = _prepare(p_raw, g_raw, k, min_depth, max_depth)
        acc.add(k, p, np.where(gvalid, g, 1.0), pvalid & gvalid)
        n += 1
    if n < 2:
        raise InputError(f"flicker needs at least two frames, got {n}")
    res = acc.result()
    if res is None:
        raise InputError("flicker: no pair of consecutive frames shares a valid pixel")
    return res


def flow_flicker(images: Sequence[np.ndarray], depths: Sequence[np.ndarray], *, max_side: int = 480) -> float:
    """Flicker of a clip without ground truth or poses: depth change along optical flow, x100.

    ``images`` are the clip's frames (uint8 RGB ``(H, W, 3)``), ``depths`` its z-depth maps
    (any size, ``0`` = invalid; resized to the images). Both are brought to ``max_side`` pixels
    on the long side. For consecutive frames ``k, k+1`` the forward flow ``k -> k+1`` that
    passes the forward-backward and photometric checks of
    :func:`~steadydepth.consistency.align.consistent_flow` pairs pixel ``x`` of frame ``k``
    with ``x + f(x)`` of frame ``k+1`` (sampled at the nearest pixel); the value is
    ``100 * mean over pairs (median over pixels |ln(d_{k+1}(x + f) / d_k(x))|)``: about the
    percentage by which a surface's depth jumps between frames. Invariant to one global scale;
    real camera motion towards a surface adds its true change (a few tenths of a percent per
    frame at walking speed and 30 fps), so the measure compares runs on the same clip.
    """
    import cv2

    from ..consistency.align import consistent_flow

    if len(images) != len(depths) or len(images) < 2:
        raise InputError(f"flow flicker needs two or more frames with depth, got {len(images)} images "
                         f"and {len(depths)} depth maps")
    h0, w0 = np.asarray(images[0]).shape[:2]
    f = min(1.0, max_side / float(max(h0, w0)))
    size = (max(2, round(w0 * f)), max(2, round(h0 * f)))
    prev = None
    per_pair = []
    for img, dep in zip(images, depths):
        gray = cv2.cvtColor(cv2.resize(np.asarray(img), size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
        d = cv2.resize(np.asarray(dep, np.float32), size, interpolation=cv2.INTER_NEAREST)
        if prev is not None:
            g0, d0 = prev
            flow, ok = consistent_flow(g0, gray)
            ys, xs = np.nonzero(ok & (d0 > 0))
            tx = np.clip(np.rint(xs + flow[ys, xs, 0]).astype(int), 0, size[0] - 1)
            ty = np.clip(np.rint(ys + flow[ys, xs, 1]).astype(int), 0, size[1] - 1)
            d1 = d[ty, tx]
            keep = d1 > 0
            if keep.any():
                per_pair.append(float(np.median(np.abs(np.log(d1[keep] / d0[ys[keep], xs[keep]])))))
        prev = (gray, d)
    if not per_pair:
        raise InputError("flow flicker: no pair of consecutive frames has a reliable flow on valid depth")
    return 100.0 * float(np.mean(per_pair))
