"""Looping Eulerian motion of fluid regions (sky, water), after Holynski et al. 2021.

A static velocity field ``v(x)`` (pixels per frame, zero outside the region, tapering to zero at
its border so nothing from outside is dragged in) moves the texture. A loop of ``N`` frames is
made of two streams integrated in opposite directions and blended:

* forwards from frame 0: ``I_f(t, x) = I_0(A_t(x))``, ``A_t`` the point that flowed to ``x`` in
  ``t`` steps (Euler steps back along the flow);
* backwards from frame ``N`` (which is frame 0 again): ``I_b(t, x) = I_0(B_t(x))``, ``B_t`` where
  the texture at ``x`` will be after ``N - t`` Euler steps forwards (``B_N`` is the identity);
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

    Positions are integrated by Euler steps of the field, ``A <- A - v(A)`` backwards and
    ``P <- P + v(P)`` forwards. :meth:`frame` must be called with ``t = 0, 1, 2, ...`` in order; the
    backward stream ``A_t`` is kept incrementally, the forward positions ``F^(N-t)`` are rebuilt
    from checkpoints stored every ``c = ceil(sqrt(N))`` steps (``c`` maps in memory, ``c / 2``
    steps per frame on average). ``t = num_frames`` gives exactly frame 0.
    """

    def __init__(self, images: list[np.ndarray], flow: np.ndarray, num_frames: int) -> None:
        self.images = [np.ascontiguousarray(im, np.float32) for im in images]
        self.flow = np.ascontiguousarray(flow, np.float32)
        self.n = max(1, int(num_frames))
        h, w = flow.shape[:2]
        gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
        self._grid = np.stack([gx, gy], -1)
        self._c = int(np.ceil(np.sqrt(self.n)))
        self._checkpoints = []
        pos = self._grid.copy()
        for k in range(self.n + 1):
            if k % self._c == 0:
                self._checkpoints.append(pos.copy())
            pos = pos + self._sample(self.flow, pos)
        self._A = self._grid.copy()
        self._t = 0
        self.moving = np.abs(flow).sum(-1) > 0

    @staticmethod
    def _sample(img: np.ndarray, pos: np.ndarray) -> np.ndarray:
        return cv2.remap(img, pos[:, :, 0], pos[:, :, 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def _forward(self, k: int) -> np.ndarray:
        """``F^k``: where the texture at each pixel is after ``k`` forward steps."""
        pos = self._checkpoints[k // self._c]
        for _ in range(k % self._c):
            pos = pos + self._sample(self.flow, pos)
        return pos

    def frame(self, t: int) -> list[np.ndarray]:
        """The images at loop time ``t`` (``0 <= t <= num_frames``, called in increasing order)."""
        if t < self._t or t > self.n:
            raise ValueError(f"LoopingMotion.frame: t must not decrease and be <= {self.n}")
        while self._t < t:
            self._A = self._A - self._sample(self.flow, self._A)
            self._t += 1
        a = self._t / self.n
        B = self._forward(self.n - self._t)
        out = []
        for im in self.images:
            f = self._sample(im, self._A)
            b = self._sample(im, B)
            mixed = ((1.0 - a) * f + a * b).reshape(im.shape)
            keep = self.moving if im.ndim == 2 else self.moving[:, :, None]
            out.append(np.where(keep, mixed, im))
        return out
