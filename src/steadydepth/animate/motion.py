"""Looping Eulerian motion of fluid regions (sky, water), after Holynski et al. 2021.

A static velocity field ``v(x)`` (pixels per frame, zero outside the region, tapering to zero at
its border so nothing from outside is dragged in) moves the texture. A loop of ``N`` frames is
made of two streams integrated in opposite directions and blended:

* forwards from frame 0: ``I_f(t, x) = I_0(A_t(x))``, ``A_t`` the point that flowed to ``x`` in
  ``t`` steps (``A_t = A_{t-1}(x - v(x))``, Euler steps back along the flow);
* backwards from frame ``N`` (which is frame 0 again): ``I_b(t, x) = I_0(B_t(x))``, ``B_t`` where
  the texture at ``x`` will be after ``N - t`` steps (``B_0`` is ``N`` forward steps, then the same
  recurrence as ``A``);
* ``I(t) = (1 - t/N) I_f + (t/N) I_b``, so ``I(0) = I(N) = I_0``: the loop has no seam.

The moving colours are given to the layers of the layered depth image before each view is
rendered, so moving pixels are drawn in 3D with the camera.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["flow_field", "LoopingMotion"]

#: default flow speed in pixels per frame (``--speed`` of the motion scales it)
DEFAULT_SPEED = {"sky": 0.5, "water": 0.35}


def flow_field(mask: np.ndarray, kind: str = "sky", *, speed: float | None = None, seed: int = 0,
               taper: float = 6.0) -> np.ndarray:
    """A smooth velocity field ``(H, W, 2)`` float32 (pixels per frame, ``(dx, dy)``) on ``mask``.

    ``sky``: a drift to the right whose direction and speed vary smoothly (clouds);
    ``water``: a drift towards the camera (down the image) with slow lateral meanders.
    The magnitude goes to zero over ``taper`` pixels inside the region's border."""
    h, w = mask.shape
    rng = np.random.default_rng(seed)
    base_speed = DEFAULT_SPEED.get(kind, 0.5) if speed is None else float(speed)
    small = (max(2, w // 32), max(2, h // 32))
    noise = rng.standard_normal((small[1], small[0], 2)).astype(np.float32)
    noise = cv2.resize(cv2.GaussianBlur(noise, (0, 0), 1.0), (w, h), interpolation=cv2.INTER_CUBIC)
    if kind == "water":
        angle = np.pi / 2 + 0.35 * noise[:, :, 0]
    else:
        angle = 0.25 * noise[:, :, 0]
    mag = base_speed * (1.0 + 0.3 * np.tanh(noise[:, :, 1]))
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    mag = mag * np.clip(dist / max(taper, 1e-6), 0.0, 1.0)
    flow = np.stack([mag * np.cos(angle), mag * np.sin(angle)], -1).astype(np.float32)
    flow[~mask] = 0.0
    return flow


class LoopingMotion:
    """The looping animation of ``images`` (a list of ``(H, W, C)`` float32 arrays sharing one
    grid, e.g. a layered image's layers) under ``flow`` ``(H, W, 2)`` over ``num_frames`` frames.

    :meth:`frame` must be called with ``t = 0, 1, 2, ...`` in order (the integration is
    incremental: memory does not grow with the loop length); ``t = num_frames`` gives frame 0.
    """

    def __init__(self, images: list[np.ndarray], flow: np.ndarray, num_frames: int) -> None:
        self.images = [np.ascontiguousarray(im, np.float32) for im in images]
        self.flow = np.ascontiguousarray(flow, np.float32)
        self.n = max(1, int(num_frames))
        h, w = flow.shape[:2]
        gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
        self._grid = np.stack([gx, gy], -1)
        self._back = self._grid - self.flow  # x - v(x): one Euler step back
        fwd = self._grid.copy()
        for _ in range(self.n):  # B_0: where the texture at x is after N forward steps
            step = fwd + self._sample(self.flow, fwd)
            fwd = step
        self._A = self._grid.copy()
        self._B = fwd
        self._t = 0
        self.moving = np.abs(flow).sum(-1) > 0

    @staticmethod
    def _sample(img: np.ndarray, pos: np.ndarray) -> np.ndarray:
        return cv2.remap(img, pos[:, :, 0], pos[:, :, 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def _step(self) -> None:
        self._A = self._sample(self._A, self._back)
        self._B = self._sample(self._B, self._back)
        self._t += 1

    def frame(self, t: int) -> list[np.ndarray]:
        """The images at loop time ``t`` (``0 <= t <= num_frames``, called in increasing order)."""
        if t < self._t:
            raise ValueError("LoopingMotion.frame: times must not decrease")
        while self._t < t:
            self._step()
        a = min(1.0, self._t / self.n)
        out = []
        for im in self.images:
            f = self._sample(im, self._A)
            b = self._sample(im, self._B)
            mixed = (1.0 - a) * f + a * b
            if mixed.ndim == 2:
                mixed = mixed[:, :, None]
            keep = im if im.ndim == 3 else im[:, :, None]
            out.append(np.where(self.moving[:, :, None], mixed, keep).reshape(im.shape))
        return out
