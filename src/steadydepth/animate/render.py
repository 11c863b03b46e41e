"""Rendering a view of a layered depth image and filling what no layer covers.

The output of :func:`render_view` for a camera: uint8 RGB, z-depth (> 0 everywhere once filled),
a confidence map (1 seen in the source view, 0.5 from the background layer, 0.1 filled here) and
the mask of pixels that no layer covered (filled by OpenCV Telea inpainting for colour and from
the background side for depth, see :func:`~steadydepth.animate.layers.fill_depth_from_background`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .layers import CONF_FILLED, LayeredImage, fill_depth_from_background
from .raster import rasterize_layers

__all__ = ["RenderedView", "render_view"]


@dataclass
class RenderedView:
    """``image`` ``(H, W, 3)`` uint8, ``depth`` ``(H, W)`` float32 z-depth, ``confidence`` ``(H, W)``
    float32, ``uncovered`` ``(H, W)`` bool: pixels no layer covered (filled afterwards)."""

    image: np.ndarray
    depth: np.ndarray
    confidence: np.ndarray
    uncovered: np.ndarray


def render_view(ldi: LayeredImage, K: np.ndarray, pose_c2w: np.ndarray, width: int, height: int, *,
                colours: list[np.ndarray] | None = None) -> RenderedView:
    """Render ``ldi`` into the camera ``K`` (3x3) at ``pose_c2w`` (``width x height``).

    ``colours``: per-layer replacement colours ``(N_i, 3)`` in [0, 1] for the layers' vertices
    (animated frames); None keeps the layers' own colours.
    """
    layers = ldi.layers
    if colours is not None:
        from dataclasses import replace

        layers = [replace(layer, attrs=np.concatenate([c, layer.attrs[:, 3:]], 1)) for layer, c in zip(layers, colours)]
    res = rasterize_layers(layers, K, pose_c2w, width, height, alpha_channel=3)
    rgb = np.clip(np.rint(res.attrs[:, :, :3] * 255.0), 0, 255).astype(np.uint8)
    conf = res.attrs[:, :, 4].astype(np.float32)
    uncovered = ~res.covered
    depth = res.depth.astype(np.float32)
    if uncovered.any():
        rgb = cv2.inpaint(rgb, uncovered.astype(np.uint8), 3, cv2.INPAINT_TELEA)
        depth = fill_depth_from_background(depth, uncovered)
        conf = np.where(uncovered, CONF_FILLED, conf).astype(np.float32)
    return RenderedView(image=rgb, depth=depth, confidence=np.clip(conf, 0, 1), uncovered=uncovered)
