"""Reading still images (png, jpg, 16-bit png, exr, ...) as uint8 RGB ``(H, W, 3)``, and the
conversion of other dtypes and channel layouts to it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from ..errors import InputError

__all__ = ["read_image", "to_rgb_uint8", "natural_sort_key", "IMAGE_EXTENSIONS"]


#: file name suffixes read as images (lower case)
IMAGE_EXTENSIONS: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".exr", ".webp"})


def natural_sort_key(name: str) -> list:
    """Sort key that orders embedded numbers by value: ``frame2 < frame10``.

    Text parts compare case-insensitively; the key alternates text and integers so any
    two keys compare without type errors.
    """
    parts = re.split(r"(\d+)", name)
    return [int(p) if i % 2 else p.lower() for i, p in enumerate(parts)]


def _srgb_encode(linear: np.ndarray) -> np.ndarray:
    """sRGB transfer curve (IEC 61966-2-1) of linear values already clipped to ``[0, 1]``."""
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1.0 / 2.4) - 0.055)


def to_rgb_uint8(
    image: np.ndarray,
    *,
    source: str = "image",
    float_mode: Literal["check", "clip", "linear"] = "clip",
) -> np.ndarray:
    """Convert an image (already in RGB channel order) to contiguous ``uint8`` RGB ``(H, W, 3)``.

    ``float_mode`` says how float images are read: ``"clip"`` display values in
    ``[0, 1]`` clipped; ``"check"`` the same but values outside ``[0, 1]`` (beyond a
    1e-3 tolerance) raise :class:`InputError`; ``"linear"`` linear light, clipped and
    sRGB-encoded. ``uint16`` is shifted right by 8. ``source`` names the input in errors.
    """
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise InputError(f"{source}: expected an H x W (gray), H x W x 3 (RGB) or H x W x 4 (RGBA) image, got shape {img.shape}")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise InputError(f"{source}: empty image of shape {img.shape}")
    if img.dtype == np.uint8:
        out = img
    elif img.dtype == np.uint16:
        out = (img >> 8).astype(np.uint8)
    elif img.dtype == np.bool_:
        out = img.astype(np.uint8) * 255
    elif np.issubdtype(img.dtype, np.floating):
        f = img.astype(np.float32, copy=False)
        if not np.all(np.isfinite(f)):
            if float_mode == "check":
                raise InputError(f"{source}: float image holds NaN or infinite values")
            f = np.nan_to_num(f, nan=0.0, posinf=1.0, neginf=0.0)
        if float_mode == "check":
            lo, hi = float(f.min()), float(f.max())
            if lo < -1e-3 or hi > 1.0 + 1e-3:
                raise InputError(
                    f"{source}: float images must hold values in [0, 1], got [{lo:.4g}, {hi:.4g}] "
                    "(pass uint8 images, or divide by 255)"
                )
        f = np.clip(f, 0.0, 1.0)
        if float_mode == "linear":
            f = _srgb_encode(f)
        out = np.rint(f * 255.0).astype(np.uint8)
    else:
        raise InputError(f"{source}: unsupported image type {img.dtype} (use uint8, uint16 or float in [0, 1])")
    if out.ndim == 2:
        out = np.repeat(out[:, :, None], 3, axis=2)
    return np.ascontiguousarray(out)


def _read_exr_rgb(path: Path) -> np.ndarray:
    import OpenEXR

    try:
        with OpenEXR.File(str(path)) as fh:
            channels = {name: ch.pixels for name, ch in fh.channels().items()}
    except Exception as exc:  # OpenEXR raises RuntimeError / ValueError on bad files
        raise InputError(f"{path}: cannot read as OpenEXR ({exc})") from exc
    for key in ("RGBA", "RGB"):
        if key in channels:
            return np.asarray(channels[key])[:, :, :3]
    if all(c in channels for c in "RGB"):
        return np.stack([channels["R"], channels["G"], channels["B"]], axis=2)
    for key in ("Y", "Z", "L"):
        if key in channels:
            return np.asarray(channels[key])
    if len(channels) == 1:
        return np.asarray(next(iter(channels.values())))
    raise InputError(f"{path}: OpenEXR image has no RGB, Y or single channel (channels: {sorted(channels)})")


def read_image(path: str | Path) -> np.ndarray:
    """Read one image file as ``uint8`` RGB ``(H, W, 3)`` (conversions: see module docstring).

    Raises :class:`InputError` naming the file when it is missing or cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such image file")
    if path.suffix.lower() == ".exr":
        return to_rgb_uint8(_read_exr_rgb(path), source=str(path), float_mode="linear")
    # ANYDEPTH keeps 16-bit, ANYCOLOR keeps gray as gray and drops alpha; EXIF orientation is applied.
    data = np.fromfile(path, dtype=np.uint8)  # works with non-ASCII paths, unlike cv2.imread
    img = cv2.imdecode(data, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR) if data.size else None
    if img is None:
        raise InputError(f"{path}: cannot decode image (unreadable, truncated or unsupported format)")
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return to_rgb_uint8(img, source=str(path), float_mode="clip")


def _image_header_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` as decoded (EXIF orientation applied) from the header only; None if unknown."""
    try:
        if path.suffix.lower() == ".exr":
            import OpenEXR

            with OpenEXR.File(str(path), header_only=True) as fh:
                lo, hi = fh.header()["dataWindow"]
            return int(hi[0] - lo[0] + 1), int(hi[1] - lo[1] + 1)
        from PIL import Image

        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1) if path.suffix.lower() in (".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".png") else 1
        return (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    except Exception:  # header probing is best effort; decoding later checks again
        return None
