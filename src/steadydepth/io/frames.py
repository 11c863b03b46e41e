"""Lazy, re-iterable frame sources: videos (PyAV), image sequences and in-memory arrays.

Every source yields :class:`~steadydepth.types.Frame` objects holding ``uint8`` RGB
images ``(H, W, 3)``. Iterating a source decodes from the start each time and holds
one frame at a time (never the whole clip), so a source can be walked several times
(e.g. once for structure from motion, once for depth).

Frame selection: ``start`` (first source frame, inclusive), ``stop`` (exclusive, in
source frame indices) and ``stride`` pick the *processed* frames;
``Frame.index`` is always the index in the source (before stride).

Conversions to ``uint8`` RGB:

* 16-bit integer images: ``value >> 8``.
* float images other than EXR (e.g. float TIFF) and float arrays: taken as display
  values in ``[0, 1]``, ``round(255 * clip(v, 0, 1))``. In-memory float arrays outside
  ``[0, 1]`` are refused (an :class:`InputError`) rather than silently clipped.
* OpenEXR images hold *linear* light: values are clipped to ``[0, 1]`` and encoded
  with the sRGB transfer curve (no exposure change, no highlight roll-off).
* grayscale -> RGB by repetition; an alpha channel is dropped.
* JPEG EXIF orientation is applied (OpenCV's default); a video's display matrix
  (rotation in multiples of 90 degrees and flips) is applied like ``ffmpeg``'s
  autorotate, so ``width``/``height`` are those of the upright picture.
"""

from __future__ import annotations

import glob as _glob
import logging
import math
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import InputError
from ..types import Frame
from .display import _frame_display_matrix, apply_display_transform, display_transform
from .video_decode import PacketDecoder, format_frame_list
from .images import IMAGE_EXTENSIONS, _image_header_size, natural_sort_key, read_image, to_rgb_uint8

__all__ = ["FrameSource", "VideoSource", "ImageSequenceSource", "ArraySource", "open_source", "resize_frame", "processing_size"]

log = logging.getLogger(__name__)


_GLOB_CHARS = re.compile(r"[*?\[]")


def processing_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """Working size ``(w, h)``: longest side at most ``max_side``, aspect kept, each side a multiple of 8.

    Never upscales: each side is ``<=`` the input side. Sides are rounded to the nearest
    multiple of 8 (down when rounding up would exceed the input); a side shorter than 8
    pixels is kept as is. ``max_side=None`` only rounds to multiples of 8.
    """
    width, height = int(width), int(height)
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if max_side is not None and max_side < 8:
        raise ValueError(f"max_side must be at least 8, got {max_side}")
    scale = 1.0 if max_side is None else min(1.0, max_side / max(width, height))

    def side(n: int) -> int:
        if n < 8:
            return n
        target = n * scale
        m = max(8, int(round(target / 8.0)) * 8)
        if m > n or (max_side is not None and m > max_side):
            m = max(8, int(math.floor(min(n, target) / 8.0)) * 8)
        return m

    return side(width), side(height)


def resize_frame(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """Resize ``image`` to :func:`processing_size` (``cv2.INTER_AREA``); returned unchanged when already that size."""
    h, w = image.shape[:2]
    tw, th = processing_size(w, h, max_side)
    if (tw, th) == (w, h):
        return image
    return cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)


def _check_range(start: int, stop: int | None, stride: int, source: str) -> tuple[int, int | None, int]:
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
        raise InputError(f"{source}: start must be an integer >= 0, got {start!r}")
    if stop is not None and (isinstance(stop, bool) or not isinstance(stop, (int, np.integer)) or stop <= start):
        raise InputError(f"{source}: stop must be an integer > start ({start}), got {stop!r}")
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
        raise InputError(f"{source}: stride must be an integer >= 1, got {stride!r}")
    return int(start), (None if stop is None else int(stop)), int(stride)


class FrameSource(ABC):
    """A lazy, re-iterable sequence of frames (see module docstring).

    Attributes: ``path`` (file, folder, pattern or ``"<array>"``), ``width``/``height``
    of decoded frames after display rotation, ``fps`` (None when unknown),
    ``num_frames`` (processed frames after range and stride; an estimate from the
    container for videos, None when unknown), ``warnings`` (filled while iterating;
    reset at the start of each pass).
    """

    path: str
    width: int
    height: int
    fps: float | None
    num_frames: int | None
    warnings: list[str]

    def __init__(self, start: int, stop: int | None, stride: int) -> None:
        self.start, self.stop, self.stride = start, stop, stride
        self.warnings = []

    @abstractmethod
    def __iter__(self) -> Iterator[Frame]:
        """Decode from the start and yield the processed frames in order."""

    def _selected(self, index: int) -> bool:
        return index >= self.start and (self.stop is None or index < self.stop) and (index - self.start) % self.stride == 0

    _MAX_WARNINGS = 50

    def _warn(self, message: str) -> None:
        if len(self.warnings) < self._MAX_WARNINGS:
            self.warnings.append(message)
            log.warning("%s: %s", self.path, message)
        elif len(self.warnings) == self._MAX_WARNINGS:
            self.warnings.append("further warnings suppressed")
        else:
            log.debug("%s: %s", self.path, message)

    def describe(self) -> dict:
        """A JSON-able description for ``run.json``."""
        return {
            "kind": self.kind,
            "path": self.path,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "num_frames": self.num_frames,
            "start": self.start,
            "stop": self.stop,
            "stride": self.stride,
            "warnings": list(self.warnings),
        }

    kind: str = "?"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r}, {self.width}x{self.height}, num_frames={self.num_frames})"


class VideoSource(FrameSource):
    """Frames of a video file decoded with PyAV (threaded, seek-free, rotation applied).

    Frames before ``start`` are decoded and dropped; decoding stops after ``stop``. A
    packet the decoder refuses (damaged data) is skipped and decoding goes on; one warning
    per pass names the lost frames (see :mod:`~steadydepth.io.video_decode`), and only a
    video where no frame decodes is refused. A pass that ends before the frame count the
    container announces adds a warning too.
    """

    kind = "video"

    def __init__(self, path: str | Path, *, start: int = 0, stop: int | None = None, stride: int = 1) -> None:
        super().__init__(*_check_range(start, stop, stride, str(path)))
        import av

        self._av = av
        p = Path(path)
        self.path = str(p)
        if not p.exists():
            raise InputError(f"{p}: no such file")
        if not p.is_file():
            raise InputError(f"{p}: not a file")
        if p.stat().st_size == 0:
            raise InputError(f"{p}: empty file")
        try:
            container = av.open(self.path, mode="r")
        except av.FFmpegError as exc:
            raise InputError(f"{p}: not a readable video ({exc})") from exc
        try:
            if not container.streams.video:
                raise InputError(f"{p}: the file holds no video stream")
            stream = container.streams.video[0]
            cc = stream.codec_context
            self.codec = cc.name
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            self.fps = float(rate) if rate else None
            total = int(stream.frames or 0)
            if total <= 0 and self.fps:
                seconds = None
                if stream.duration and stream.time_base:
                    seconds = float(stream.duration * stream.time_base)
                elif container.duration:
                    seconds = container.duration / 1_000_000.0
                if seconds:
                    total = int(round(seconds * self.fps))
            self.source_frames: int | None = total if total > 0 else None
            self._announced = int(stream.frames or 0)
            first = None
            stream.thread_type = "AUTO"  # as in __iter__, so that both find the same first frame
            probe = PacketDecoder(container, stream)
            for _, frame in probe:
                first = frame
                break
            if first is None:
                reason = f" ({probe.failed_packets} packets refused: {probe.last_error})" if probe.last_error else ""
                raise InputError(f"{p}: no decodable video frame{reason}")
            self.pix_fmt = first.format.name
            self.rotation = int(round(first.rotation or 0))
            # PyAV's frame.rotation is read from the same matrix: without one both say "upright"
            self.transform = display_transform(_frame_display_matrix(first))
            w, h = first.width, first.height
            if self.transform in ("clock", "cclock", "transpose", "antitranspose"):
                w, h = h, w
            self.width, self.height = int(w), int(h)
        finally:
            container.close()
        if self.rotation % 90:
            log.warning("%s: display rotation %s degrees rounded to a multiple of 90", self.path, self.rotation)
        if self.source_frames is None:
            self.num_frames = None
        else:
            end = self.source_frames if self.stop is None else min(self.stop, self.source_frames)
            self.num_frames = len(range(self.start, end, self.stride))

    def _convert(self, frame: Any, index: int) -> Frame:
        if frame.is_corrupt:
            self._warn(f"frame {index}: the decoder flagged corrupt data")
        image = apply_display_transform(frame.to_ndarray(format="rgb24"), self.transform)
        if image.shape[:2] != (self.height, self.width):
            raise InputError(
                f"{self.path}: frame {index} is {image.shape[1]}x{image.shape[0]}, the video started at "
                f"{self.width}x{self.height} (resolution changes are not supported)"
            )
        return Frame(index=index, image=np.ascontiguousarray(image), time=None if frame.time is None else float(frame.time))

    def __iter__(self) -> Iterator[Frame]:
        av = self._av
        self.warnings = []
        try:
            container = av.open(self.path, mode="r")
        except av.FFmpegError as exc:
            raise InputError(f"{self.path}: not a readable video ({exc})") from exc
        index = 0  # frames of the stream seen so far (decoded or lost)
        yielded = 0
        reached_stop = False
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            decoder = PacketDecoder(container, stream)
            for position, frame in decoder:
                if self.stop is not None and position >= self.stop:
                    reached_stop = True
                    break
                if self._selected(position):
                    yield self._convert(frame, position)
                    yielded += 1
                if self.stop is not None and position + 1 >= self.stop:
                    reached_stop = True  # stop decoding right after the last wanted frame
                    break
            index, lost = decoder.frames_seen, list(decoder.lost)
            ended = decoder.finished and not reached_stop  # read to the end of the stream
            expected = self._announced or (self.source_frames or 0)
            slack = 0 if self._announced else max(2, 0.02 * expected)
            short = ended and expected > 0 and index < expected - slack
            while short and lost and lost[-1] == index - 1:  # frames lost at a cut belong to the truncation
                lost.pop()
                index -= 1
            lost = [i for i in lost if i >= self.start and (self.stop is None or i < self.stop)]
            if lost:
                why = f"damaged data: {decoder.last_error}" if decoder.last_error else "damaged data"
                self._warn(f"{'frame' if len(lost) == 1 else 'frames'} {format_frame_list(lost)} could not be "
                           f"decoded ({why}) and {'was' if len(lost) == 1 else 'were'} skipped")
            if short:
                what = (f"of the {self._announced} frames the container announces" if self._announced else
                        f"frames, the container's duration suggests about {self.source_frames}")
                self._warn(f"frame {index}: stream ended after {index} {what} (truncated or damaged file?)")
        finally:
            container.close()
        if index == 0:
            self._warn("no frame could be decoded in this pass")
        elif yielded == 0:
            self._warn(f"the range start={self.start}, stop={self.stop} selects none of the {index} decoded frames")

    def describe(self) -> dict:
        d = super().describe()
        d.update(codec=self.codec, pix_fmt=self.pix_fmt, rotation=self.rotation, display_transform=self.transform,
                 source_frames=self.source_frames)
        return d


class ImageSequenceSource(FrameSource):
    """Frames read from image files (a folder sorted naturally, a glob pattern or an explicit list).

    ``Frame.index`` is the position in the full sorted list; ``Frame.name`` the file name.
    All processed images must have the same size: the header sizes are checked when the
    source opens (when Pillow/OpenEXR can read the header), decoded sizes while iterating.
    """

    kind = "images"

    def __init__(
        self,
        files: Sequence[str | Path],
        *,
        label: str,
        start: int = 0,
        stop: int | None = None,
        stride: int = 1,
    ) -> None:
        super().__init__(*_check_range(start, stop, stride, label))
        self.path = label
        self.files = [Path(f) for f in files]
        if not self.files:
            raise InputError(f"{label}: no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        self.fps = None
        end = len(self.files) if self.stop is None else min(self.stop, len(self.files))
        self._indices = range(self.start, end, self.stride)
        if len(self._indices) == 0:
            raise InputError(
                f"{label}: the range start={self.start}, stop={self.stop} selects none of its {len(self.files)} images"
            )
        self.num_frames = len(self._indices)
        first = read_image(self.files[self._indices[0]])
        self.height, self.width = int(first.shape[0]), int(first.shape[1])
        for i in self._indices[1:]:
            size = _image_header_size(self.files[i])
            if size is not None and size != (self.width, self.height):
                raise InputError(self._size_message(i, size))

    def _size_message(self, i: int, size: tuple[int, int]) -> str:
        return (
            f"{self.files[i]}: image is {size[0]}x{size[1]}, but the sequence started with "
            f"{self.files[self._indices[0]].name} at {self.width}x{self.height} (all images must have the same size)"
        )

    def __iter__(self) -> Iterator[Frame]:
        self.warnings = []
        for i in self._indices:
            image = read_image(self.files[i])
            if image.shape[:2] != (self.height, self.width):
                raise InputError(self._size_message(i, (image.shape[1], image.shape[0])))
            yield Frame(index=i, image=image, time=None, name=self.files[i].name)

    def describe(self) -> dict:
        d = super().describe()
        d.update(
            num_files=len(self.files),
            first_file=self.files[self._indices[0]].name,
            last_file=self.files[self._indices[-1]].name,
        )
        return d


class ArraySource(FrameSource):
    """Frames from memory: a ``(T, H, W, 3)`` array, a single ``(H, W, 3)`` image or a list of images.

    ``uint8``, ``uint16`` and float images in ``[0, 1]`` are accepted (gray and RGBA too).
    The source keeps a reference to the caller's data; frames are converted one at a time.
    """

    kind = "array"

    def __init__(self, frames: np.ndarray | Sequence[np.ndarray], *, start: int = 0, stop: int | None = None,
                 stride: int = 1, fps: float | None = None) -> None:
        super().__init__(*_check_range(start, stop, stride, "<array>"))
        self.path = "<array>"
        if isinstance(frames, np.ndarray):
            if frames.ndim == 4:
                data: Sequence[np.ndarray] | np.ndarray = frames
            elif frames.ndim == 3 and frames.shape[2] in (1, 3, 4):
                data = frames[None]
            elif frames.ndim == 2:
                data = frames[None]
            else:
                raise InputError(f"<array>: expected frames of shape (T, H, W, 3) or one (H, W, 3) image, got {frames.shape}")
        else:
            data = list(frames)
        if len(data) == 0:
            raise InputError("<array>: no frames")
        self._data = data
        self.fps = fps
        end = len(data) if self.stop is None else min(self.stop, len(data))
        self._indices = range(self.start, end, self.stride)
        if len(self._indices) == 0:
            raise InputError(f"<array>: the range start={self.start}, stop={self.stop} selects none of its {len(data)} frames")
        self.num_frames = len(self._indices)
        first = to_rgb_uint8(data[self._indices[0]], source=f"<array> frame {self._indices[0]}", float_mode="check")
        self.height, self.width = int(first.shape[0]), int(first.shape[1])

    def __iter__(self) -> Iterator[Frame]:
        self.warnings = []
        for i in self._indices:
            image = to_rgb_uint8(self._data[i], source=f"<array> frame {i}", float_mode="check")
            if image.shape[:2] != (self.height, self.width):
                raise InputError(
                    f"<array> frame {i}: size {image.shape[1]}x{image.shape[0]} differs from the first frame's "
                    f"{self.width}x{self.height}"
                )
            time = None if not self.fps else i / self.fps
            yield Frame(index=i, image=image, time=time)


def _image_files_in(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
             and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: natural_sort_key(p.name))


def open_source(
    src: str | Path | Sequence[np.ndarray] | np.ndarray,
    *,
    start: int = 0,
    stop: int | None = None,
    stride: int = 1,
) -> FrameSource:
    """Open a video file, an image folder, a glob pattern, an image file or in-memory frames.

    * a video file (anything that is not an image suffix): :class:`VideoSource`;
    * a folder: its image files (``png jpg jpeg bmp tif tiff exr webp``, hidden files
      skipped) in natural order (``frame2`` before ``frame10``);
    * a pattern with ``* ? [`` (``"dir/*.png"``): the matching image files, natural order;
    * a single image file: a one-frame sequence;
    * a list of paths: those image files in the given order;
    * a ``(T, H, W, 3)`` array or a list of ``(H, W, 3)`` arrays: :class:`ArraySource`.

    ``start``/``stop``/``stride`` select processed frames by source index (``stop``
    exclusive). Raises :class:`InputError` naming the input when it is missing, holds no
    image, is not a video or has no decodable frame.
    """
    if isinstance(src, np.ndarray):
        return ArraySource(src, start=start, stop=stop, stride=stride)
    if not isinstance(src, (str, Path, os.PathLike)):
        items = list(src)
        if items and all(isinstance(x, (str, Path, os.PathLike)) for x in items):
            return ImageSequenceSource(items, label=f"{items[0]} (+{len(items) - 1} files)",
                                       start=start, stop=stop, stride=stride)
        return ArraySource(items, start=start, stop=stop, stride=stride)
    text = os.fspath(src)
    path = Path(text).expanduser()
    if path.is_dir():
        return ImageSequenceSource(_image_files_in(path), label=str(path), start=start, stop=stop, stride=stride)
    if path.is_file():
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            return ImageSequenceSource([path], label=str(path), start=start, stop=stop, stride=stride)
        return VideoSource(path, start=start, stop=stop, stride=stride)
    if _GLOB_CHARS.search(text):
        matches = [Path(m) for m in _glob.glob(os.path.expanduser(text))]
        files = [m for m in matches if m.is_file() and m.suffix.lower() in IMAGE_EXTENSIONS]
        if not files:
            raise InputError(f"{text}: the pattern matches no image file ({len(matches)} matches in all)")
        files.sort(key=lambda p: natural_sort_key(str(p)))
        return ImageSequenceSource(files, label=text, start=start, stop=stop, stride=stride)
    raise InputError(f"{path}: no such file or folder")
