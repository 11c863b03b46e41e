"""Textures of the synthetic scenes: procedural patterns, optional photos, mip chains and the
atlas that samples them with trilinear filtering.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np

__all__ = ["TextureAtlas"]

log = logging.getLogger(__name__)


_TEX_SIZE = 512          # textures are resampled to _TEX_SIZE x _TEX_SIZE (power of two for the mip chain)


def _procedural_texture(rng: np.random.Generator, size: int = _TEX_SIZE) -> np.ndarray:
    """Multi-octave value noise in colour, float32 (size, size, 3) in [0, 1]."""
    import cv2

    acc = np.zeros((size, size, 3), dtype=np.float32)
    amp, total = 1.0, 0.0
    for cells in (4, 8, 16, 32, 64, 128):
        noise = rng.random((cells, cells, 3)).astype(np.float32)
        acc += amp * cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.7
    acc /= total
    acc = (acc - acc.min()) / max(float(acc.max() - acc.min()), 1e-6)
    return np.clip(0.1 + 0.8 * acc, 0.0, 1.0)


#: (skimage.data name, RGB tint applied to grey images)
_PHOTOS: tuple[tuple[str, tuple[float, float, float]], ...] = (
    ("astronaut", (1, 1, 1)),
    ("coffee", (1, 1, 1)),
    ("rocket", (1, 1, 1)),
    ("chelsea", (1, 1, 1)),
    ("immunohistochemistry", (1, 1, 1)),
    ("stereo_motorcycle", (1, 1, 1)),
    ("gravel", (0.95, 0.85, 0.7)),
    ("brick", (1.0, 0.7, 0.55)),
    ("grass", (0.6, 0.95, 0.5)),
    ("camera", (0.85, 0.9, 1.0)),
)


def _load_photo(name: str, tint: tuple[float, float, float]) -> np.ndarray | None:
    """A scikit-image sample photograph as float32 RGB (TEX, TEX, 3), or None when unavailable."""
    import cv2

    try:
        import skimage.data as skdata

        img = getattr(skdata, name)()
    except Exception as exc:  # noqa: BLE001 - any failure (missing package, pooch) -> fallback
        log.debug("texture %s unavailable (%s); using procedural noise", name, exc)
        return None
    if isinstance(img, tuple):
        img = img[0]
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2).astype(np.float32) * np.asarray(tint, dtype=np.float32)
    img = img[:, :, :3].astype(np.float32) / 255.0
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    img = cv2.resize(img, (_TEX_SIZE, _TEX_SIZE), interpolation=cv2.INTER_AREA)
    # keep away from black/white so shading never clips; stretch contrast a little
    return np.clip(0.06 + 0.88 * img, 0.0, 1.0).astype(np.float32)


def _mip_chain(img: np.ndarray) -> list[np.ndarray]:
    """Box-filtered pyramid down to 8 x 8 (exact halving; texel centres stay consistent)."""
    levels = [np.ascontiguousarray(img, dtype=np.float32)]
    while levels[-1].shape[0] > 8:
        a = levels[-1]
        levels.append(0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]))
    return levels


@lru_cache(maxsize=1)
def _texture_bank() -> TextureAtlas:
    rng = np.random.default_rng(12345)
    bank = []
    for name, tint in _PHOTOS:
        img = _load_photo(name, tint)
        if img is None:
            img = _procedural_texture(rng)
        bank.append(_mip_chain(img))
    return TextureAtlas(bank)


class TextureAtlas:
    """All mip levels of all textures packed in one float32 image, sampled with ``cv2.remap``.

    Textures are ``_TEX_SIZE`` squared and mirror-repeated (seamless tiling): a coordinate
    is folded into one period, and every level carries a one-texel mirrored border so
    OpenCV's bilinear lookup inside the block equals bilinear lookup on the infinite
    mirrored tiling. Levels are blended linearly (trilinear filtering).
    """

    _PAD = 1

    def __init__(self, chains: list[list[np.ndarray]]) -> None:
        import cv2

        self.levels = len(chains[0])
        self.sizes = np.array([lev.shape[0] for lev in chains[0]], dtype=np.int64)
        pad = self._PAD
        col_w = max(int(self.sizes[0]) + 2 * pad, int(sum(self.sizes[1:] + 2 * pad)))
        col_h = int(self.sizes[0]) + 2 * pad + (int(self.sizes[1]) + 2 * pad if self.levels > 1 else 0)
        self.origin = np.zeros((len(chains), self.levels, 2), dtype=np.float64)   # (x, y) of texel (0, 0)
        self.data = np.zeros((col_h, col_w * len(chains), 3), dtype=np.float32)
        for ti, chain in enumerate(chains):
            x0 = ti * col_w
            for li, lev in enumerate(chain):
                if li == 0:
                    ox, oy = x0, 0
                else:
                    ox = x0 + int(sum(self.sizes[1:li] + 2 * pad))
                    oy = int(self.sizes[0]) + 2 * pad
                block = cv2.copyMakeBorder(lev, pad, pad, pad, pad, cv2.BORDER_REFLECT)
                self.data[oy:oy + block.shape[0], ox:ox + block.shape[1]] = block
                self.origin[ti, li] = (ox + pad, oy + pad)

    def __len__(self) -> int:
        return self.origin.shape[0]

    def _bilinear(self, tex: np.ndarray, level: np.ndarray, x0: np.ndarray, y0: np.ndarray) -> np.ndarray:
        import cv2

        s = np.exp2(level)
        n = self.sizes[level]
        org = self.origin[tex, level]

        def fold(c: np.ndarray) -> np.ndarray:
            # level-l texel j covers level-0 texels [j s, (j + 1) s); fold into one mirror period
            c = np.mod((c + 0.5) / s, 2 * n) - 0.5
            return np.where(c > n - 0.5, 2 * n - 1 - c, c)

        mx = (fold(x0) + org[:, 0]).astype(np.float32)
        my = (fold(y0) + org[:, 1]).astype(np.float32)
        m = mx.size
        cols = 1024
        rows = -(-m // cols)
        bx = np.zeros(rows * cols, dtype=np.float32)
        by = np.zeros(rows * cols, dtype=np.float32)
        bx[:m], by[:m] = mx, my
        out = cv2.remap(self.data, bx.reshape(rows, cols), by.reshape(rows, cols), cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)
        return out.reshape(-1, 3)[:m]

    def sample(self, tex: np.ndarray, xy0: np.ndarray, lod: np.ndarray) -> np.ndarray:
        """RGB (N, 3) of textures ``tex`` (N,) at level-0 texel coordinates ``xy0`` (N, 2)
        (texel centres at integers) and fractional mip level ``lod`` (N,)."""
        top = self.levels - 1
        if xy0.shape[0] == 0:
            return np.zeros((0, 3), dtype=np.float32)
        lod = np.clip(lod, 0.0, float(top))
        l0 = np.minimum(np.floor(lod).astype(np.int64), top)
        l1 = np.minimum(l0 + 1, top)
        f = (lod - l0).astype(np.float32)[:, None]
        c0 = self._bilinear(tex, l0, xy0[:, 0], xy0[:, 1])
        c1 = self._bilinear(tex, l1, xy0[:, 0], xy0[:, 1])
        return c0 * (1 - f) + c1 * f
