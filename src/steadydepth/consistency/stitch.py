"""Seamless stitching of overlapping windows of a windowed video-depth model.

Windowed models (DepthCrafter: window 110, overlap 25) give affine-invariant disparity
that is consistent *inside* a window but has its own scale and shift per window, so a
naive concatenation jumps at every window border. :func:`stitch_windows` aligns each
window to the already stitched previous one on their overlapping frames (one scale and
shift, least squares in disparity over the valid pixels of the overlap) and blends the two
linearly in disparity across the overlap (weight of the new window rising from
``1/(n+1)`` to ``n/(n+1)``). :func:`seam_jump` measures what is left of the seams.

Both work on *disparity* (``0`` = invalid); the first window fixes the gauge.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from ..errors import InputError

__all__ = ["stitch_windows", "seam_jump", "fit_scale_shift"]

log = logging.getLogger(__name__)


def fit_scale_shift(src: np.ndarray, dst: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float]:
    """Least-squares ``(s, t)`` with ``s * src + t ~ dst`` over pixels valid in both (and ``mask``).

    Falls back to a pure scale (ratio of medians) when the system is degenerate or gives a
    non-positive scale.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    ok = np.isfinite(src) & np.isfinite(dst) & (src > 0) & (dst > 0)
    if mask is not None:
        ok &= np.asarray(mask, bool)
    x, y = src[ok], dst[ok]
    if x.size < 2:
        raise InputError("fit_scale_shift: fewer than two pixels are valid in both maps")
    A = np.stack([x, np.ones_like(x)], axis=1)
    (s, t), *_ = np.linalg.lstsq(A, y, rcond=None)
    if not (np.isfinite(s) and s > 0):
        s, t = float(np.median(y) / np.median(x)), 0.0
    return float(s), float(t)


def _affine(values: np.ndarray, s: float, t: float) -> np.ndarray:
    ok = np.isfinite(values) & (values > 0)
    out = np.where(ok, s * values + t, 0.0)
    return np.where(out > 0, out, 0.0).astype(np.float32)


def stitch_windows(
    windows: Iterable[tuple[int, np.ndarray]], overlap: int | None = None
) -> Iterator[np.ndarray]:
    """Stitch overlapping windows of disparity into one consistent stream of frames.

    ``windows`` yields ``(start, values)`` in order, ``values`` ``(n, H, W)`` disparity of
    frames ``start .. start + n - 1``; each window must start inside or right after the
    previous one. ``overlap`` is only checked against the starts (the actual overlap of each
    pair is ``prev_start + prev_n - start``). Yields one ``(H, W)`` float32 disparity per
    frame, in order, as soon as it is final: memory holds one window.
    """
    prev: np.ndarray | None = None  # aligned frames of the previous window not yet yielded
    prev_start = 0
    next_frame = 0
    for start, values in windows:
        values = np.asarray(values, np.float32)
        if values.ndim != 3:
            raise InputError(f"stitch_windows: window at {start} must be (n, H, W), got {values.shape}")
        if prev is None:
            if start != 0:
                log.warning("stitch_windows: first window starts at frame %d", start)
            next_frame = start
            prev, prev_start = values.copy(), start
            continue
        n_ov = prev_start + len(prev) - start
        if n_ov < 0 or start < next_frame:
            raise InputError(
                f"stitch_windows: window at {start} leaves a gap or starts before frame {next_frame} "
                f"(previous window {prev_start}..{prev_start + len(prev) - 1})"
            )
        if overlap is not None and n_ov != overlap:
            log.warning("stitch_windows: window at %d overlaps %d frames, not %d", start, n_ov, overlap)
        # yield the previous window's frames before the overlap
        cut = start - prev_start
        for k in range(cut):
            yield prev[k]
        next_frame = start
        old = prev[cut:]
        if n_ov > 0:
            s, t = fit_scale_shift(values[:n_ov], old)
            aligned = _affine(values, s, t)
            for k in range(n_ov):
                w = (k + 1) / (n_ov + 1)
                a, b = old[k], aligned[k]
                both = (a > 0) & (b > 0)
                blend = np.where(both, (1 - w) * a + w * b, np.where(a > 0, a, b))
                aligned[k] = blend.astype(np.float32)
            log.debug("stitch_windows: window at %d aligned with s=%.4g t=%.4g over %d frames", start, s, t, n_ov)
        else:
            log.warning("stitch_windows: window at %d does not overlap the previous one; its scale is unknown", start)
            aligned = values.copy()
        prev, prev_start = aligned, start
    if prev is not None:
        for frame in prev:
            yield frame


def _frame_change(a: np.ndarray, b: np.ndarray) -> float:
    ok = (a > 0) & (b > 0) & np.isfinite(a) & np.isfinite(b)
    if not ok.any():
        return float("nan")
    return float(np.median(np.abs(a[ok] - b[ok]) / (0.5 * (a[ok] + b[ok]))))


def seam_jump(depths: Sequence[np.ndarray] | np.ndarray, boundaries: Iterable[int]) -> float:
    """How much bigger the frame-to-frame change is at window borders than inside windows.

    ``depths`` is a sequence of per-frame maps (depth or disparity; ``0`` = invalid);
    ``boundaries`` are frame indices ``b`` where the jump between frames ``b - 1`` and ``b``
    is a window border. The change between two frames is the median relative absolute
    difference over pixels valid in both; the result is the mean change at the borders
    divided by the median change elsewhere (about 1 when there is no seam, larger with seams).
    """
    n = len(depths)
    changes = np.array([_frame_change(np.asarray(depths[k - 1]), np.asarray(depths[k])) for k in range(1, n)])
    b = sorted({int(x) for x in boundaries if 0 < int(x) < n})
    if not b:
        raise InputError("seam_jump: no boundary lies inside the clip")
    at = changes[[x - 1 for x in b]]
    inside = np.delete(changes, [x - 1 for x in b])
    inside = inside[np.isfinite(inside)]
    if inside.size == 0:
        raise InputError("seam_jump: no frame pair inside the windows to compare with")
    return float(np.nanmean(at) / max(float(np.median(inside)), 1e-12))
