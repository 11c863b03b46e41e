"""Depth metrics (AbsRel, delta1, RMSE, TAE), computed the way the video-depth field does.

The protocol (DepthCrafter ``benchmark/eval/eval.py``, Video Depth Anything
``benchmark/eval/eval.py`` and ``eval_tae.py``) for one sequence:

1. Valid pixels: ``min_depth < gt < max_depth`` (``min_depth`` = 1e-3 there).
2. One scale ``s`` and shift ``t`` for the whole sequence, fitted by least squares in
   *disparity* space over all valid pixels of all frames: minimise
   ``sum (s * pred_disp + t - 1 / gt)^2``.
3. ``aligned_disp = max(s * pred_disp + t, 1e-3)``; ``depth = 1 / aligned_disp``, clipped
   to ``[min_depth, max_depth]``.
4. Per frame, over its valid pixels: ``AbsRel = mean |d - gt| / gt``,
   ``delta1 = mean(max(d / gt, gt / d) < 1.25)``, ``RMSE = sqrt(mean (d - gt)^2)``; frames
   without a valid pixel are skipped; the sequence value is the mean over frames (and a
   dataset value the mean over sequences, :func:`mean_over_sequences`).
5. TAE (Video Depth Anything): with ground-truth intrinsics and camera-to-world poses,
   the aligned depth of frame ``k`` is back-projected, moved into frame ``k + 1``
   (``T = inv(T_{k+1}) @ T_k``), projected to the nearest pixel, and compared with frame
   ``k + 1``'s aligned depth: ``mean |d_{k+1} - d_proj| / d_{k+1}``; the same from
   ``k + 1`` into ``k``; the mean over both directions and all pairs, times 100.

Conventions: depth is z-depth (distance along the optical axis), 0 or NaN = invalid;
disparity = 1 / depth; poses are camera-to-world 4x4 with OpenCV axes; pixel ``(u, v)``
has its centre at ``(x, y) = (u, v)`` (OpenCV). Ground truth is always *depth*; a
prediction is depth unless ``pred_is_disparity`` (then it is affine-invariant disparity).

Where this module deviates from the reference code (all deliberate, all small):

* Streaming: predictions and ground truth are read frame by frame, twice (fit, then
  score); the normal equations of step 2 are accumulated, which is the same least-squares
  solution as the reference's ``np.linalg.lstsq`` on the stacked pixels.
* A prediction pixel that is invalid (``<= 0``, NaN or inf) is excluded from the fit and
  from the scores (the reference clips the prediction to ``>= 1e-3`` and keeps it).
  :attr:`DepthMetrics.coverage` reports the fraction of ground-truth-valid pixels that had a
  valid prediction, so a method cannot hide hard pixels unnoticed.
* The ground-truth disparity is ``1 / gt`` exactly (the reference adds 1e-8 to ``gt``).
* A prediction at another resolution is resized to the ground truth's size like the
  reference (``cv2.resize``, bilinear, OpenCV pixel centres), but *normalised* over valid
  pixels: values are ``lin(v * m) / lin(m)`` so invalid pixels never bleed into valid
  ones, and validity is resized with exact nearest neighbour (``INTER_NEAREST_EXACT``).
* TAE: when several source pixels land on one target pixel the nearest one wins (a
  z-buffer; the reference keeps an arbitrary one); points behind the target camera are
  dropped; a direction with no overlapping pixel is left out of the mean (the reference
  counts it as 0); frames without a pose are skipped.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import InputError
from ..io.atomic import to_jsonable
from ..types import Intrinsics
from .metric_inputs import FrameSource, _disp_to_clipped_depth, _opener, _pairs, _prepare, _to_depth, _to_disparity
from .temporal_metrics import _FlickerAccumulator, _TAEAccumulator

__all__ = ["DepthMetrics", "Align", "HEAD_FRAMES", "head_ratio", "depth_metrics", "fit_scale_shift_disparity",
           "evaluate_depth", "mean_over_sequences"]

log = logging.getLogger(__name__)


Align = Literal["sequence", "frame", "scale", "none"]


_DELTA1 = 1.25

#: frames at the start of a clip whose AbsRel :attr:`DepthMetrics.head_ratio` compares with the median
HEAD_FRAMES = 3


def head_ratio(per_frame_abs_rel: Sequence[float]) -> float | None:
    """Worst AbsRel of the first :data:`HEAD_FRAMES` frames over the median of all (``None`` when undefined)."""
    values = [float(v) for v in per_frame_abs_rel]
    if len(values) < 2 * HEAD_FRAMES:
        return None
    median = float(np.median(values))
    return max(values[:HEAD_FRAMES]) / median if median > 0 else None


@dataclass
class DepthMetrics:
    """Metrics of one sequence.

    ``abs_rel``, ``delta1``, ``rmse`` are means over scored frames of the per-frame values
    (``rmse`` in ground-truth units). ``tae`` (x100, see module docstring) is ``None`` without
    intrinsics and poses; ``flicker`` (x100, see :func:`flicker`) is ``None`` for a single
    frame. ``scale``/``shift`` are the fitted alignment (disparity space for ``"sequence"``;
    the mean of the per-frame values for ``"frame"``; the depth ratio and 0 for ``"scale"``;
    1 and 0 for ``"none"``). ``per_frame`` holds one dict per input frame: ``index``,
    ``abs_rel``, ``delta1``, ``rmse`` (``None`` when the frame had no valid pixel),
    ``valid_pixels`` (and ``scale``/``shift`` for ``"frame"``). ``coverage`` is the fraction of
    ground-truth-valid pixels with a valid prediction; ``num_pixels`` the scored pixels.
    ``head_ratio`` is the worst AbsRel of the first :data:`HEAD_FRAMES` scored frames over the
    median per-frame AbsRel (1 = the clip's start is as good as its middle; ``None`` for clips
    shorter than ``2 * HEAD_FRAMES`` frames or a zero median).
    """

    abs_rel: float
    delta1: float
    rmse: float
    tae: float | None
    flicker: float | None
    num_frames: int
    scale: float
    shift: float
    align: str
    per_frame: list[dict] = field(default_factory=list)
    coverage: float = 1.0
    num_pixels: int = 0
    head_ratio: float | None = None

    def to_dict(self) -> dict:
        """A JSON-able dict (plain floats/ints/None, ``per_frame`` included)."""
        return to_jsonable(asdict(self))


def depth_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """AbsRel, delta1 (< 1.25) and RMSE of z-depth ``pred`` against ``gt`` over ``mask``.

    ``pred`` and ``gt`` are same-shape depth arrays (already aligned and clipped); ``mask``
    defaults to ``gt > 0`` and finite. Returns ``{"abs_rel", "delta1", "rmse", "valid_pixels"}``;
    raises :class:`InputError` when no pixel is valid or ``pred`` is not positive there.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise InputError(f"depth_metrics: prediction shape {pred.shape} differs from ground truth {gt.shape}")
    if mask is None:
        with np.errstate(invalid="ignore"):
            mask = np.isfinite(gt) & (gt > 0)
    mask = np.asarray(mask, dtype=bool)
    p, g = pred[mask], gt[mask]
    if p.size == 0:
        raise InputError("depth_metrics: no valid pixel")
    if not (np.all(np.isfinite(p)) and np.all(p > 0) and np.all(g > 0)):
        raise InputError("depth_metrics: prediction and ground truth must be positive and finite on the mask")
    ratio = np.maximum(p / g, g / p)
    return {
        "abs_rel": float(np.mean(np.abs(p - g) / g)),
        "delta1": float(np.mean(ratio < _DELTA1)),
        "rmse": float(np.sqrt(np.mean((p - g) ** 2))),
        "valid_pixels": int(p.size),
    }


class _NormalEquations:
    """Accumulates ``A^T A`` and ``A^T b`` of ``min sum (s * x + t - y)^2``."""

    def __init__(self) -> None:
        self.sxx = self.sx = self.sxy = self.sy = 0.0
        self.n = 0

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        self.sxx += float(np.dot(x, x))
        self.sx += float(np.sum(x))
        self.sxy += float(np.dot(x, y))
        self.sy += float(np.sum(y))
        self.n += int(x.size)

    def solve(self, what: str) -> tuple[float, float]:
        if self.n == 0:
            raise InputError(f"{what}: no valid pixel to fit the scale and shift")
        ata = np.array([[self.sxx, self.sx], [self.sx, float(self.n)]])
        atb = np.array([self.sxy, self.sy])
        sol, _, rank, _ = np.linalg.lstsq(ata, atb, rcond=1e-12)
        if rank < 2:
            log.warning("%s: the prediction is constant over the valid pixels; scale/shift is the "
                        "minimum-norm least-squares solution", what)
        return float(sol[0]), float(sol[1])


def fit_scale_shift_disparity(pairs: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[float, float]:
    """Least-squares ``(s, t)`` minimising ``sum (s * pred + t - gt)^2`` over masked pixels.

    ``pairs`` yields ``(pred_disparity, gt_disparity, mask)`` per frame (same shapes; the
    mask selects the pixels to use). Normal equations are accumulated, so the frames are
    streamed. A constant prediction gives the minimum-norm solution (with a warning);
    no pixel at all raises :class:`InputError`.
    """
    acc = _NormalEquations()
    for k, (p, g, m) in enumerate(pairs):
        p = np.asarray(p, dtype=np.float64)
        g = np.asarray(g, dtype=np.float64)
        m = np.asarray(m, dtype=bool)
        if not (p.shape == g.shape == m.shape):
            raise InputError(f"fit_scale_shift_disparity: frame {k} has shapes pred {p.shape}, gt {g.shape}, "
                             f"mask {m.shape}; they must be equal")
        x, y = p[m], g[m]
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise InputError(f"fit_scale_shift_disparity: frame {k} has non-finite values under the mask")
        acc.add(x, y)
    return acc.solve("fit_scale_shift_disparity")


class _LogHistogram:
    """Streaming median of positive values: a histogram of ``ln(value)`` with 1e-4 wide bins.

    The median is exact to a relative 1e-4 (linear interpolation inside the bin); values
    outside ``[1e-8, 1e8]`` are counted in the edge bins.
    """

    LO, HI, WIDTH = math.log(1e-8), math.log(1e8), 1e-4

    def __init__(self) -> None:
        self.nbins = int(math.ceil((self.HI - self.LO) / self.WIDTH))
        self.counts = np.zeros(self.nbins, dtype=np.int64)
        self.n = 0

    def add(self, values: np.ndarray) -> None:
        idx = np.floor((np.log(values) - self.LO) / self.WIDTH).astype(np.int64)
        np.clip(idx, 0, self.nbins - 1, out=idx)
        self.counts += np.bincount(idx, minlength=self.nbins)
        self.n += int(values.size)

    def median(self) -> float:
        half = 0.5 * self.n
        cum = np.cumsum(self.counts)
        b = int(np.searchsorted(cum, half))
        before = float(cum[b - 1]) if b > 0 else 0.0
        frac = (half - before) / max(float(self.counts[b]), 1.0)
        return float(math.exp(self.LO + (b + frac) * self.WIDTH))


def _fit_clip_alignment(p_open: Callable[[], Iterator[Any]], g_open: Callable[[], Iterator[Any]], align: str,
                        min_depth: float, max_depth: float, pred_is_disparity: bool) -> tuple[float, float]:
    """Pass 1 of :func:`evaluate_depth`: the clip's ``(scale, shift)`` for ``align`` ``"sequence"``
    (least squares in disparity) or ``"scale"`` (ratio of log-histogram medians); else ``(1, 0)``."""
    scale, shift = 1.0, 0.0
    if align == "sequence":
        acc = _NormalEquations()
        for k, p_raw, g_raw in _pairs(p_open, g_open):
            p, pvalid, g, gvalid = _prepare(p_raw, g_raw, k, min_depth, max_depth)
            m = pvalid & gvalid
            acc.add(_to_disparity(p, pvalid, pred_is_disparity)[m], 1.0 / g[m])
        scale, shift = acc.solve("evaluate_depth")
    elif align == "scale":
        hp, hg = _LogHistogram(), _LogHistogram()
        for k, p_raw, g_raw in _pairs(p_open, g_open):
            p, pvalid, g, gvalid = _prepare(p_raw, g_raw, k, min_depth, max_depth)
            m = pvalid & gvalid
            hp.add(_to_depth(p, pvalid, pred_is_disparity)[m])
            hg.add(g[m])
        if hp.n == 0:
            raise InputError("evaluate_depth: no valid pixel in the whole clip (check max_depth and the inputs)")
        scale = hg.median() / hp.median()
    return scale, shift


def _aligned_depth(p: np.ndarray, pvalid: np.ndarray, g: np.ndarray, m: np.ndarray, k: int, align: str,
                   scale: float, shift: float, min_depth: float, max_depth: float, pred_is_disparity: bool,
                   entry: dict[str, Any], frame_fits: list[tuple[float, float]]) -> np.ndarray:
    """Pass 2 of :func:`evaluate_depth` for frame ``k``: the aligned, clipped depth. With
    ``align="frame"`` the frame's own fit goes into ``entry`` and ``frame_fits``."""
    if align in ("sequence", "frame"):
        disp = _to_disparity(p, pvalid, pred_is_disparity)
        s, t = scale, shift
        if align == "frame":
            if np.any(m):
                fe = _NormalEquations()
                fe.add(disp[m], 1.0 / g[m])
                s, t = fe.solve(f"evaluate_depth frame {k}")
                frame_fits.append((s, t))
            else:
                s, t = math.nan, math.nan
            entry["scale"], entry["shift"] = s, t
        return _disp_to_clipped_depth(s * disp + t, pvalid, min_depth, max_depth) if np.isfinite(s) \
            else np.zeros_like(p)
    depth = _to_depth(p, pvalid, pred_is_disparity)
    return np.where(pvalid, np.clip(scale * depth, min_depth, max_depth), 0.0)


# Long on purpose: the protocol of the module docstring, pass 1 (_fit_clip_alignment) and pass 2
# (_aligned_depth per frame, then the scores); most of the length is the argument checks and docstring.
def evaluate_depth(
    pred: FrameSource,
    gt: FrameSource,
    *,
    pred_is_disparity: bool = False,
    align: Align = "sequence",
    max_depth: float = 10.0,
    min_depth: float = 1e-3,
    intrinsics: Intrinsics | None = None,
    poses: np.ndarray | Sequence[np.ndarray | None] | None = None,
) -> DepthMetrics:
    """Score a predicted depth (or disparity) video against ground-truth depth.

    ``pred`` and ``gt`` are frame sources (:data:`FrameSource`): lists / ``(T, H, W)``
    arrays, or callables returning a fresh iterator (the clip is streamed: at most two
    frames are held). ``gt`` is z-depth (0 / NaN = invalid); ``pred`` is z-depth, or
    affine-invariant disparity when ``pred_is_disparity``. A prediction at another
    resolution is resized to the ground truth's (see module docstring).

    Valid pixels: ``min_depth < gt < max_depth`` and the prediction ``> 0`` and finite.
    ``align``:

    * ``"sequence"`` (the field's protocol): one least-squares scale and shift in disparity
      over all valid pixels of all frames (two passes);
    * ``"frame"``: the same fit per frame (the per-frame-aligned variant; one pass);
    * ``"scale"``: one scale for the sequence, ``median(gt) / median(pred depth)`` over all
      valid pixels of all frames (medians exact to a relative 1e-4; two passes);
    * ``"none"``: the prediction as it is (depth = 1 / disparity for disparity inputs).

    Then ``depth = 1 / max(aligned disparity, 1e-3)`` (for ``sequence``/``frame``), clipped to
    ``[min_depth, max_depth]``, scored per frame (:func:`depth_metrics`) and averaged over
    frames with a valid pixel. With ``intrinsics`` (of the ground truth) and camera-to-world
    ``poses`` the TAE of the aligned depth is computed too (:func:`temporal_alignment_error`;
    as in the reference it uses every pixel with a valid prediction, ground truth or not).
    ``flicker`` (:func:`flicker`) on the aligned depth needs no poses.

    Raises :class:`InputError` on a length mismatch (naming which stream is shorter), a bad
    frame shape, no valid pixel in the whole clip, or only one of ``intrinsics``/``poses``.
    """
    if align not in ("sequence", "frame", "scale", "none"):
        raise InputError(f"align must be one of sequence, frame, scale, none; got {align!r}")
    if not (0.0 <= min_depth < max_depth):
        raise InputError(f"need 0 <= min_depth < max_depth, got min_depth={min_depth}, max_depth={max_depth}")
    if (intrinsics is None) != (poses is None):
        raise InputError("TAE needs both intrinsics and poses; got only "
                         + ("intrinsics" if intrinsics is not None else "poses"))
    passes = 2 if align in ("sequence", "scale") else 1
    p_open = _opener(pred, "prediction", passes)
    g_open = _opener(gt, "ground truth", passes)

    # ---- pass 1: fit the sequence alignment
    scale, shift = _fit_clip_alignment(p_open, g_open, align, min_depth, max_depth, pred_is_disparity)
    log.debug("evaluate_depth: align=%s scale=%.6g shift=%.6g", align, scale, shift)

    # ---- pass 2: align and score
    tae_acc = _TAEAccumulator(intrinsics, poses) if intrinsics is not None else None
    fl_acc = _FlickerAccumulator()
    per_frame: list[dict] = []
    n_gt_valid = n_scored = n_frames = 0
    frame_fits: list[tuple[float, float]] = []
    for k, p_raw, g_raw in _pairs(p_open, g_open):
        n_frames += 1
        p, pvalid, g, gvalid = _prepare(p_raw, g_raw, k, min_depth, max_depth)
        m = pvalid & gvalid
        entry: dict[str, Any] = {"index": k}
        d = _aligned_depth(p, pvalid, g, m, k, align, scale, shift, min_depth, max_depth, pred_is_disparity,
                           entry, frame_fits)
        n_gt_valid += int(gvalid.sum())
        if np.any(m):
            fm = depth_metrics(d, g, m)
            n_scored += fm["valid_pixels"]
            entry.update(fm)
        else:
            entry.update({"abs_rel": None, "delta1": None, "rmse": None, "valid_pixels": 0})
        per_frame.append(entry)
        fl_acc.add(k, d, np.where(gvalid, g, 1.0), m)
        if tae_acc is not None:
            tae_acc.add(k, d, d > 0)
    if n_frames == 0:
        raise InputError("evaluate_depth: the clip has no frame")
    scored = [e for e in per_frame if e["valid_pixels"] > 0]
    if not scored:
        raise InputError("evaluate_depth: no valid pixel in the whole clip (check max_depth and the inputs)")
    if align == "frame":
        scale = float(np.mean([f[0] for f in frame_fits]))
        shift = float(np.mean([f[1] for f in frame_fits]))
    tae = tae_acc.result() if tae_acc is not None else None
    return DepthMetrics(
        abs_rel=float(np.mean([e["abs_rel"] for e in scored])),
        delta1=float(np.mean([e["delta1"] for e in scored])),
        rmse=float(np.mean([e["rmse"] for e in scored])),
        tae=tae,
        flicker=fl_acc.result(),
        num_frames=len(scored),
        scale=float(scale),
        shift=float(shift),
        align=align,
        per_frame=per_frame,
        coverage=n_scored / n_gt_valid if n_gt_valid else 0.0,
        num_pixels=n_scored,
        head_ratio=head_ratio([e["abs_rel"] for e in scored]),
    )


def mean_over_sequences(results: Sequence[DepthMetrics]) -> dict[str, Any]:
    """Dataset-level numbers: the plain mean over sequences (as the reference code does).

    ``tae`` / ``flicker`` are averaged over the sequences that have them (``None`` if none);
    ``num_sequences`` and ``num_frames`` (total) are included.
    """
    if not results:
        raise InputError("mean_over_sequences: no sequence")
    out: dict[str, Any] = {"num_sequences": len(results), "num_frames": int(sum(r.num_frames for r in results))}
    for key in ("abs_rel", "delta1", "rmse", "tae", "flicker"):
        vals = [getattr(r, key) for r in results if getattr(r, key) is not None]
        out[key] = float(np.mean(vals)) if vals else None
    return out
