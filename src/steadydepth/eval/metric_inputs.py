"""Frame streams for the metrics: re-openable sources of ``(H, W)`` frames, pairing of
prediction and ground truth, validity, resizing to the ground truth's size and the
depth/disparity conversions (conventions of :mod:`steadydepth.eval.metrics`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Union

import numpy as np

from ..errors import InputError
from ..geometry import resize_valid_normalised

__all__ = ["FrameSource", "FrameSource"]


#: Frames of a clip: a sequence of ``(H, W)`` arrays (a list, or a ``(T, H, W)`` array), or a
#: callable returning a *fresh* iterator each call (needed for streaming, two-pass scoring).
FrameSource = Union[Callable[[], Iterable[np.ndarray]], Sequence[np.ndarray], np.ndarray]


_DISP_FLOOR = 1e-3  # the reference clips aligned disparity to >= 1e-3 before inverting


_END = object()


def _opener(src: FrameSource, name: str, passes: int) -> Callable[[], Iterator[Any]]:
    """Turn a frame source into a function returning a fresh iterator."""
    if isinstance(src, np.ndarray):
        arr = src[None] if src.ndim == 2 else src
        if arr.ndim != 3 and not (arr.ndim == 4 and arr.shape[-1] == 1):
            raise InputError(f"{name}: expected frames of shape (T, H, W), got an array of shape {src.shape}")
        return lambda: iter(arr)
    if callable(src):
        def _call() -> Iterator[Any]:
            it = src()
            if it is None:
                raise InputError(f"{name}: the frame factory returned None instead of an iterable")
            return iter(it)
        return _call
    if isinstance(src, Sequence) and not isinstance(src, (str, bytes)):
        return lambda: iter(src)
    if isinstance(src, Iterable):
        if passes > 1:
            raise InputError(
                f"{name}: a one-shot iterator cannot be read twice (this alignment needs a fitting pass "
                "and a scoring pass); pass a list or a callable that returns a fresh iterator"
            )
        used = [False]

        def _once() -> Iterator[Any]:
            if used[0]:
                raise InputError(f"{name}: the one-shot iterator was already consumed")
            used[0] = True
            return iter(src)
        return _once
    raise InputError(f"{name}: expected a sequence of (H, W) arrays or a callable returning an iterator, "
                     f"got {type(src).__name__}")


def _pairs(pred: Callable[[], Iterator[Any]], gt: Callable[[], Iterator[Any]]) -> Iterator[tuple[int, Any, Any]]:
    """Zip two frame streams, raising :class:`InputError` (naming which) on a length mismatch."""
    it_p, it_g = pred(), gt()
    k = 0
    while True:
        p = next(it_p, _END)
        g = next(it_g, _END)
        if p is _END and g is _END:
            return
        if p is _END:
            raise InputError(f"length mismatch: the prediction has {k} frames but the ground truth has more")
        if g is _END:
            raise InputError(f"length mismatch: the ground truth has {k} frames but the prediction has more")
        yield k, p, g
        k += 1


def _as_frame(a: Any, name: str, k: int) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2 or arr.size == 0:
        raise InputError(f"{name} frame {k}: expected an (H, W) array, got shape {np.shape(a)}")
    return arr


def _prepare(p_raw: Any, g_raw: Any, k: int, min_depth: float, max_depth: float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(pred at gt size, pred valid, gt, gt valid)`` for frame ``k``; invalid pred set to 0."""
    gt = _as_frame(g_raw, "ground truth", k)
    p = _as_frame(p_raw, "prediction", k)
    with np.errstate(invalid="ignore"):
        pvalid = np.isfinite(p) & (p > 0)
        gvalid = np.isfinite(gt) & (gt > min_depth) & (gt < max_depth)
    if p.shape != gt.shape:
        p, pvalid = resize_valid_normalised(p, pvalid, gt.shape)
    else:
        p = np.where(pvalid, p, 0.0)
    return p, pvalid, gt, gvalid


def _to_disparity(p: np.ndarray, pvalid: np.ndarray, pred_is_disparity: bool) -> np.ndarray:
    if pred_is_disparity:
        return p
    out = np.zeros_like(p)
    np.divide(1.0, p, out=out, where=pvalid)
    return out


def _to_depth(p: np.ndarray, pvalid: np.ndarray, pred_is_disparity: bool) -> np.ndarray:
    # 1 / x is its own inverse: depth from disparity is the same operation as disparity from depth
    return _to_disparity(p, pvalid, not pred_is_disparity)


def _disp_to_clipped_depth(disp: np.ndarray, pvalid: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray:
    d = 1.0 / np.maximum(disp, _DISP_FLOOR)
    d = np.clip(d, min_depth, max_depth)
    return np.where(pvalid, d, 0.0)
