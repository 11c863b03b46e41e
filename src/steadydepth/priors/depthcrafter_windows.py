"""Window arithmetic of the DepthCrafter prior: the overlapping window schedule over a clip,
the blend weights of an overlap and the noise indices shared by consecutive windows.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["window_schedule", "overlap_weights", "noise_indices"]


def window_schedule(num_frames: int, window: int = 110, overlap: int = 25) -> list[tuple[int, int]]:
    """The ``(start, stop)`` frame ranges DepthCrafter denoises, in order (stop exclusive).

    As in the published recipe: a clip of at most ``window`` frames is one window; otherwise
    windows start every ``window - overlap`` frames while ``start < num_frames - overlap``
    and the last one is cut at ``num_frames``.
    """
    if window < 1 or not 0 <= overlap < window:
        raise InputError(f"depthcrafter: need window >= 1 and 0 <= overlap < window, got {window}/{overlap}")
    if num_frames <= 0:
        return []
    if num_frames <= window:
        return [(0, int(num_frames))]
    stride = window - overlap
    out = []
    start = 0
    while start < num_frames - overlap:
        out.append((start, min(start + window, num_frames)))
        start += stride
    return out


def overlap_weights(overlap: int) -> np.ndarray:
    """Blend weights of the *new* window over the overlap: ``linspace(0, 1, overlap)`` (float32).

    Blended latent at overlap position ``j`` = ``w[j] * new[j] + (1 - w[j]) * previous[j]``.
    """
    if overlap < 0:
        raise InputError(f"depthcrafter: overlap must be >= 0, got {overlap}")
    return np.linspace(0.0, 1.0, overlap, dtype=np.float32) if overlap else np.zeros(0, np.float32)


def noise_indices(window_index: int, window: int, overlap: int) -> np.ndarray:
    """Which of the ``window`` base noise tensors each position of window ``k`` starts from.

    The recipe rotates its window-sized noise: ``idx_{k+1} = idx_k[-overlap:] ++ idx_k[:stride]``,
    so that the first ``overlap`` positions of window ``k+1`` reuse exactly the noise of the
    last ``overlap`` positions of window ``k`` (the frames they share).
    """
    if window < 1 or not 0 <= overlap < window or window_index < 0:
        raise InputError(f"depthcrafter: bad window {window} / overlap {overlap} / index {window_index}")
    idx = np.arange(window)
    stride = window - overlap
    for _ in range(window_index):
        idx = np.concatenate([idx[window - overlap:], idx[:stride]]) if overlap else idx
    return idx
