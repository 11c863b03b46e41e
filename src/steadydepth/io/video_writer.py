"""Encode RGB frames to a video file with PyAV (no system ffmpeg needed).

The file is written under a hidden temporary name in the target folder and renamed onto
the target by :meth:`VideoWriter.close` only when encoding finished; on an exception
inside a ``with`` block the partial file is removed.

Odd sizes: chroma-subsampled pixel formats (``yuv420p`` and friends) need even sides
(H.264 cannot even crop a single pixel off in 4:2:0). A frame with an odd width or height
is therefore encoded in ``yuv444p`` when the encoder has it (libx264, libx265, VP9): the
video has exactly the frames' size (H.264 High 4:4:4 plays in FFmpeg-based players, VLC,
mpv and Chromium; QuickTime/Safari need even sizes). Only an encoder without 4:4:4 gets
the frame **padded** by repeating its last column/row.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import numpy as np

from ..errors import OutputError
from .atomic import sibling_temp_path

__all__ = ["VideoWriter"]

log = logging.getLogger(__name__)


def _subsampling(pix_fmt: str) -> tuple[int, int]:
    """(horizontal, vertical) chroma subsampling factors of a pixel format."""
    import av

    try:
        fmt = av.VideoFormat(pix_fmt)
    except (ValueError, av.FFmpegError) as exc:
        raise OutputError(f"unknown pixel format {pix_fmt!r} ({exc})") from exc
    return max(1, 64 // fmt.chroma_width(64)), max(1, 64 // fmt.chroma_height(64))


def _encoder_formats(codec: str) -> set[str]:
    """Names of the pixel formats the encoder ``codec`` accepts (empty when PyAV does not say)."""
    import av

    try:
        return {f.name for f in (av.codec.Codec(codec, "w").video_formats or [])}
    except (ValueError, av.FFmpegError):  # pragma: no cover - unknown encoder, checked in VideoWriter
        return set()


def _frame_rate(fps: float) -> Fraction:
    """``fps`` as a fraction; the NTSC rates (23.976, 29.97, 59.94, 119.88) become ``N*1000/1001``."""
    for base in (24, 30, 48, 60, 120):
        if abs(fps - base * 1000 / 1001) < 5e-3:
            return Fraction(base * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)


class VideoWriter:
    """Write ``uint8`` RGB ``(H, W, 3)`` frames to ``path`` (a context manager).

    ``fps`` may be fractional (29.97 is stored as 30000/1001); ``codec`` any encoder
    PyAV has (``libx264``, ``libx265``, ``libvpx-vp9`` ...); ``crf`` is passed to encoders
    that take it; ``pix_fmt`` the encoded pixel format. The first frame fixes the size;
    later frames must match it. See the module docstring for odd sizes.
    """

    def __init__(self, path: str | Path, fps: float, *, codec: str = "libx264", crf: int = 18,
                 pix_fmt: str = "yuv420p") -> None:
        import av

        self._av = av
        self.path = Path(path)
        if not (fps and np.isfinite(fps) and fps > 0):
            raise OutputError(f"{self.path}: fps must be positive, got {fps}")
        if not self.path.parent.is_dir():
            raise OutputError(f"{self.path}: cannot write, folder {self.path.parent} does not exist")
        if codec not in av.codecs_available:
            raise OutputError(f"{self.path}: the video encoder {codec!r} is not available in this PyAV build")
        self.fps = float(fps)
        self.rate = _frame_rate(self.fps)
        self.codec, self.crf, self.pix_fmt = codec, int(crf), pix_fmt
        self._sub = _subsampling(pix_fmt)
        self._tmp = sibling_temp_path(self.path)
        self._container = None
        self._stream = None
        self.size: tuple[int, int] | None = None  # (width, height) of the input frames
        self.encoded_size: tuple[int, int] | None = None
        self.frames_written = 0
        self._closed = False

    def _open(self, width: int, height: int) -> None:
        av = self._av
        sw, sh = self._sub
        ew, eh = -(-width // sw) * sw, -(-height // sh) * sh
        if (ew, eh) != (width, height) and "yuv444p" in _encoder_formats(self.codec):
            log.debug("%s: %dx%d frames: %s instead of %s (odd size)", self.path, width, height, "yuv444p",
                      self.pix_fmt)
            self.pix_fmt, self._sub, (ew, eh) = "yuv444p", (1, 1), (width, height)
        if (ew, eh) != (width, height):
            log.info("%s: %dx%d frames padded to %dx%d for %s", self.path, width, height, ew, eh, self.pix_fmt)
        try:
            self._container = av.open(str(self._tmp), mode="w")
            stream = self._container.add_stream(self.codec, rate=self.rate)
            stream.width, stream.height, stream.pix_fmt = ew, eh, self.pix_fmt
            if self.codec in ("libx264", "libx265", "libvpx-vp9", "libvpx", "libaom-av1", "libsvtav1"):
                opts = {"crf": str(self.crf)}
                if self.codec == "libx264":
                    # x264 keeps rc-lookahead frames in flight (default 40, several MB each at 1080p, ~25 MB
                    # at 4K); 10, the value of its veryfast preset, bounds that memory at a small cost in size
                    opts["rc-lookahead"] = "10"
                if self.codec == "libx265":
                    opts["x265-params"] = "log-level=error"
                if self.codec.startswith("libvpx"):
                    opts["b"] = "0"  # constant quality mode
                stream.options = opts
            self._stream = stream
        except (av.FFmpegError, ValueError, OSError) as exc:
            self._abort()
            raise OutputError(f"{self.path}: cannot start the video encoder {self.codec} ({exc})") from exc
        self.size, self.encoded_size = (width, height), (ew, eh)

    def write(self, rgb: np.ndarray) -> None:
        """Encode one ``uint8`` RGB frame ``(H, W, 3)``."""
        if self._closed:
            raise OutputError(f"{self.path}: write() after close()")
        img = np.asarray(rgb)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise OutputError(f"{self.path}: frames must be uint8 RGB (H, W, 3), got {img.dtype} {img.shape}")
        h, w = img.shape[:2]
        if self._container is None:
            self._open(w, h)
        elif (w, h) != self.size:
            raise OutputError(f"{self.path}: frame {self.frames_written} is {w}x{h}, the video is {self.size[0]}x{self.size[1]}")
        ew, eh = self.encoded_size
        if (ew, eh) != (w, h):
            img = np.pad(img, ((0, eh - h), (0, ew - w), (0, 0)), mode="edge")
        av = self._av
        try:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = self.frames_written
            frame.time_base = 1 / self.rate
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except (av.FFmpegError, OSError) as exc:
            self._abort()
            raise OutputError(f"{self.path}: encoding frame {self.frames_written} failed ({exc})") from exc
        self.frames_written += 1

    def _abort(self) -> None:
        self._closed = True
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # pragma: no cover - closing after a failure
                pass
        self._container = None
        try:
            self._tmp.unlink()
        except FileNotFoundError:
            pass

    def close(self) -> None:
        """Flush the encoder and move the file onto ``path``. Raises :class:`OutputError` when no frame was written."""
        if self._closed:
            return
        if self._container is None:
            self._abort()
            raise OutputError(f"{self.path}: no frame was written")
        av = self._av
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
            self._container = None
            os.replace(self._tmp, self.path)
        except (av.FFmpegError, OSError) as exc:
            self._abort()
            raise OutputError(f"{self.path}: cannot finish the video ({exc})") from exc
        self._closed = True
        log.debug("%s: wrote %d frames", self.path, self.frames_written)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()

    def __del__(self) -> None:  # an abandoned writer leaves no temporary file behind
        if not getattr(self, "_closed", True):
            try:
                self._abort()
            except Exception:
                pass
