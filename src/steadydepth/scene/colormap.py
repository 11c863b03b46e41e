"""Colour depth maps for viewing (OpenCV colour maps, RGB output).

By default colours follow *disparity* (``1 / depth``) so near is bright and far is dark,
as in the visualisations of the field (Depth Anything, DepthCrafter, Video Depth
Anything). ``vmin``/``vmax`` are always *depths* (the same units as the map); a fixed
range for the whole clip (from :func:`robust_range`) keeps colours stable over time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import cv2
import numpy as np

__all__ = ["colorize_depth", "robust_range", "COLORMAPS"]

log = logging.getLogger(__name__)

#: colour map names accepted by :func:`colorize_depth` (OpenCV ``COLORMAP_*`` in lower case)
COLORMAPS: tuple[str, ...] = tuple(
    sorted(name[len("COLORMAP_"):].lower() for name in dir(cv2) if name.startswith("COLORMAP_"))
)


def colorize_depth(
    depth: np.ndarray,
    vmin: float,
    vmax: float,
    *,
    cmap: str = "inferno",
    invalid_color: tuple[int, int, int] = (0, 0, 0),
    inverse: bool = True,
) -> np.ndarray:
    """Colour a depth map ``(H, W)`` into ``uint8`` RGB ``(H, W, 3)``.

    With ``inverse=True`` the colour coordinate is disparity, ``t = (1/d - 1/vmax) /
    (1/vmin - 1/vmax)``: depth ``vmin`` gets the bright end of the map, ``vmax`` the dark
    end. With ``inverse=False`` it is ``t = (d - vmin) / (vmax - vmin)`` (far is bright).
    ``t`` is clipped to ``[0, 1]`` and quantised to 256 levels. Invalid pixels (0, NaN,
    inf, negative) get ``invalid_color`` (RGB). ``cmap`` is an OpenCV colour map name
    (``inferno``, ``turbo``, ``viridis``, ``magma``, ``plasma``, ``jet`` ...; see
    :data:`COLORMAPS`). Requires ``0 < vmin < vmax``.
    """
    d = np.asarray(depth, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"depth must be (H, W), got {d.shape}")
    vmin, vmax = float(vmin), float(vmax)
    if not (np.isfinite(vmin) and np.isfinite(vmax) and 0 < vmin < vmax):
        raise ValueError(f"colour range needs 0 < vmin < vmax, got vmin={vmin}, vmax={vmax}")
    code = getattr(cv2, f"COLORMAP_{cmap.upper()}", None)
    if code is None:
        raise ValueError(f"unknown colour map {cmap!r}; choose one of {', '.join(COLORMAPS)}")
    valid = np.isfinite(d) & (d > 0)
    safe = np.where(valid, d, vmax)
    if inverse:
        t = (1.0 / safe - 1.0 / vmax) / (1.0 / vmin - 1.0 / vmax)
    else:
        t = (safe - vmin) / (vmax - vmin)
    levels = np.rint(np.clip(t, 0.0, 1.0) * 255.0).astype(np.uint8)
    rgb = cv2.cvtColor(cv2.applyColorMap(levels, code), cv2.COLOR_BGR2RGB)
    rgb[~valid] = np.asarray(invalid_color, dtype=np.uint8)
    return rgb


def robust_range(
    samples: Iterable[np.ndarray],
    low: float = 2,
    high: float = 98,
    *,
    per_frame: int = 4096,
    max_samples: int = 200_000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentiles ``(low, high)`` of the valid depths (``> 0``, finite) over many frames.

    Memory is bounded: at most ``per_frame`` pixels are drawn at random from each frame
    and kept in a reservoir of ``max_samples`` values (uniform over all drawn values,
    algorithm R), so the clip length does not matter. Deterministic for a given ``seed``.
    Returns ``(vmin, vmax)`` with ``vmin < vmax`` (widened by 0.1 % when equal). Raises
    ``ValueError`` when no frame holds a valid pixel.
    """
    if not 0 <= low < high <= 100:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {low}, {high}")
    rng = np.random.default_rng(seed)
    reservoir = np.empty(int(max_samples), dtype=np.float64)
    filled = 0
    seen = 0
    for frame in samples:
        f = np.asarray(frame)
        flat = f.reshape(-1)
        if flat.size > 4 * per_frame:
            # draw candidates first so big frames never produce a full-size validity mask copy in float64
            cand = flat[rng.integers(0, flat.size, size=4 * per_frame)]
        else:
            cand = flat
        cand = cand.astype(np.float64)
        cand = cand[np.isfinite(cand) & (cand > 0)]
        if cand.size > per_frame:
            cand = cand[rng.choice(cand.size, size=per_frame, replace=False)]
        if cand.size == 0:
            continue
        # fill the reservoir first
        take = min(cand.size, reservoir.size - filled)
        reservoir[filled:filled + take] = cand[:take]
        filled += take
        seen += take
        rest = cand[take:]
        if rest.size:
            positions = seen + np.arange(rest.size)  # 0-based global index of each value
            slots = (rng.random(rest.size) * (positions + 1)).astype(np.int64)
            keep = slots < reservoir.size
            reservoir[slots[keep]] = rest[keep]  # later values overwrite earlier ones, as in the sequential algorithm
            seen += rest.size
    if filled == 0:
        raise ValueError("no valid depth (finite, > 0) in any frame: cannot choose a colour range")
    vmin, vmax = np.percentile(reservoir[:filled], [low, high])
    vmin, vmax = float(vmin), float(vmax)
    if not vmax > vmin:
        vmin, vmax = vmin * 0.999, vmax * 1.001
    return vmin, vmax
