"""Free space: checked before the heavy stages, and named in plain words when a write fails.

A full disk shows up in many shapes: ``OSError`` with ``ENOSPC`` (or ``EDQUOT``, a quota),
numpy's ``"76800 requested and 54240 written"`` (a short write, no errno), OpenCV's
``imwrite`` returning False, SQLite's ``database or disk is full`` inside COLMAP (which
aborts the process, so it has to be prevented by a check beforehand). :func:`write_failure`
turns the first three into "no space left on device"; :func:`check_free_space` refuses a
stage whose estimated needs exceed the free space before it starts.
"""

from __future__ import annotations

import errno
import logging
import shutil
from pathlib import Path

from ..errors import OutputError

__all__ = ["free_bytes", "check_free_space", "write_failure", "format_bytes", "depth_output_bytes", "sfm_scratch_bytes"]

log = logging.getLogger(__name__)

#: a failed write with less free space than this is taken to be a full disk
_NEARLY_FULL = 64 * 2**20


def free_bytes(path: str | Path) -> int | None:
    """Bytes free for this user on the file system holding ``path`` (its nearest existing parent);
    None when that cannot be told."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return int(shutil.disk_usage(p).free)
    except OSError:
        return None


def format_bytes(n: float) -> str:
    """``1536 * 2**20`` -> ``"1.5 GB"`` (binary units, one decimal for GB)."""
    if n >= 2**30:
        return f"{n / 2**30:.1f} GB"
    return f"{max(n, 0) / 2**20:.0f} MB"


def write_failure(path: str | Path, exc: BaseException | None = None) -> str:
    """Why writing ``path`` failed, in words: ``"no space left on device, 12 MB free"`` when the
    disk is full, else the error's own text (``"Permission denied"``)."""
    code = getattr(exc, "errno", None)
    free = free_bytes(Path(path).parent)
    if code in (errno.ENOSPC, errno.EDQUOT) or (code is None and free is not None and free < _NEARLY_FULL):
        return "no space left on device" + (f", {format_bytes(free)} free" if free is not None else "")
    if exc is None:
        return "the write failed"
    return getattr(exc, "strerror", None) or str(exc)


def check_free_space(folder: str | Path, needed: int, what: str, advice: str = "") -> None:
    """Raise :class:`OutputError` when the file system of ``folder`` has less than ``needed`` bytes
    free (``what`` names the stage, ``advice`` what the user can change). Does nothing when the free
    space cannot be told."""
    free = free_bytes(folder)
    if free is None:
        return
    log.debug("%s: %s needs about %s, %s free", folder, what, format_bytes(needed), format_bytes(free))
    if free < needed:
        raise OutputError(
            f"{folder}: no space left on device for {what}: it needs about {format_bytes(needed)}, "
            f"{format_bytes(free)} are free" + (f"; {advice}" if advice else "")
        )


#: bytes per pixel of each per-frame depth format (png16 and exr are compressed: at most this)
_FORMAT_BYTES = {"npy": 4, "png16": 2, "exr": 4}


def depth_output_bytes(frames: int, size: tuple[int, int], *, formats: tuple[str, ...] = ("npy",),
                       npz: bool = True, points_stride: int | None = None) -> int:
    """About how many bytes a run's depth files take: per frame at ``size = (width, height)``, the
    formats (``npy`` always), float16 confidence, ``depth.npz`` (depth, confidence, valid: 7 bytes a
    pixel) and with ``points_stride`` the PLY points (15 bytes a point)."""
    pixels = size[0] * size[1]
    per_pixel = 2 + sum(_FORMAT_BYTES.get(f, 4) for f in {"npy", *formats}) + (7 if npz else 0)
    points = 15 * pixels // points_stride ** 2 if points_stride else 0
    return frames * (pixels * per_pixel + points)


def sfm_scratch_bytes(frames: int, size: tuple[int, int]) -> int:
    """About how many bytes structure from motion keeps in ``.work/`` for ``frames`` frames at the
    processing ``size``: the JPEG frames (~0.5 bytes a pixel) and COLMAP's database and models
    (~0.5 a pixel of each frame, counting every frame as a keyframe)."""
    return frames * size[0] * size[1]
