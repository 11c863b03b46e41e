"""Depth map files: one frame per file (npy, 16-bit PNG, EXR, PFM) and streamed ``.npz`` stacks.

Conventions: depth is z-depth (see :mod:`steadydepth.types`), ``0`` marks invalid
pixels. Formats:

* ``npy``: float32 ``(H, W)``, values as given (NaN kept).
* ``png16``: single-channel ``uint16`` holding ``round(depth * png_scale)``
  (``png_scale=1000`` -> millimetres when depth is in metres, the TUM/ScanNet convention).
  Invalid (0, NaN, inf, negative) -> 0. Valid depths are clipped to ``[1, 65535]`` so
  a valid pixel never becomes invalid and vice versa; the number of clipped pixels is
  returned. With the default scale the range is 1 mm .. 65.535 m.
* ``exr``: one float32 channel ``Y`` (ZIP compression). ``Y`` is the single-channel name
  the common readers understand: OpenCV (``cv2.imread(path, cv2.IMREAD_UNCHANGED)`` with
  ``OPENCV_IO_ENABLE_OPENEXR=1`` set before ``import cv2``) returns the ``(H, W)`` float32
  map, FFmpeg/PyAV and imageio's pyav plugin decode it as ``grayf32le``, OpenEXR by name;
  a ``Z`` channel (what depth renderers and DepthCrafter write) reads as zeros in OpenCV
  and not at all in FFmpeg. Float32 rather than half: half has an 11-bit mantissa (about
  0.05 % relative error) and overflows at 65504, which matters for scene-unit depth and
  for far points; float32 files are twice as big.
* ``pfm`` and ``tif`` (read only): formats other depth tools write (via OpenCV).
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from ..errors import InputError, OutputError
from .atomic import atomic_path

__all__ = ["write_depth", "read_depth", "write_npz_stream", "DEPTH_FORMATS", "DEPTH_SUFFIXES"]

log = logging.getLogger(__name__)

DepthFormat = Literal["npy", "png16", "exr"]
#: the per-frame depth formats, the one list: name -> (output folder, file suffix); options,
#: outputs and the CLI all read it
DEPTH_FORMATS: dict[str, tuple[str, str]] = {
    "npy": ("depth", ".npy"),
    "png16": ("depth_png16", ".png"),
    "exr": ("depth_exr", ".exr"),
}
#: file suffix written for each format
DEPTH_SUFFIXES: dict[str, str] = {name: suffix for name, (_, suffix) in DEPTH_FORMATS.items()}


def _as_depth_map(depth: np.ndarray, path: Path) -> np.ndarray:
    d = np.asarray(depth)
    if d.ndim == 3 and d.shape[2] == 1:
        d = d[:, :, 0]
    if d.ndim != 2 or d.shape[0] == 0 or d.shape[1] == 0:
        raise OutputError(f"{path}: depth must be an (H, W) array, got shape {d.shape}")
    if not (np.issubdtype(d.dtype, np.floating) or np.issubdtype(d.dtype, np.integer)):
        raise OutputError(f"{path}: depth must be numeric, got {d.dtype}")
    return d.astype(np.float32, copy=False)


def write_depth(path: str | Path, depth: np.ndarray, fmt: DepthFormat, *, png_scale: float = 1000.0) -> int:
    """Write one depth map atomically; returns the number of clipped pixels (``png16`` only, else 0).

    See the module docstring for each format. Raises :class:`OutputError` naming the path
    when the folder is not writable or ``depth`` is not an ``(H, W)`` numeric array.
    """
    path = Path(path)
    d = _as_depth_map(depth, path)
    if fmt == "npy":
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, d)
        return 0
    if fmt == "png16":
        if not (np.isfinite(png_scale) and png_scale > 0):
            raise OutputError(f"{path}: png_scale must be positive, got {png_scale}")
        valid = np.isfinite(d) & (d > 0)
        scaled = np.where(valid, np.rint(d.astype(np.float64) * png_scale), 0.0)
        clipped = int(np.count_nonzero(valid & ((scaled < 1) | (scaled > 65535))))
        out = np.where(valid, np.clip(scaled, 1, 65535), 0).astype(np.uint16)
        if clipped:
            log.debug("%s: %d depth values outside the 16-bit range were clipped", path, clipped)
        ok, buf = cv2.imencode(".png", out)
        if not ok:  # pragma: no cover - OpenCV failure
            raise OutputError(f"{path}: OpenCV could not encode a 16-bit PNG")
        with atomic_path(path) as tmp:
            tmp.write_bytes(buf.tobytes())
        return clipped
    if fmt == "exr":
        import OpenEXR

        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        with atomic_path(path) as tmp:
            try:
                with OpenEXR.File(header, {"Y": np.ascontiguousarray(d)}) as fh:
                    fh.write(str(tmp))
            except (RuntimeError, ValueError, TypeError) as exc:
                raise OutputError(f"{path}: cannot write OpenEXR ({exc})") from exc
        return 0
    raise OutputError(f"{path}: unknown depth format {fmt!r} (choose one of {', '.join(DEPTH_FORMATS)})")


def _check_map(arr: np.ndarray, path: Path, what: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise InputError(f"{path}: expected a single (H, W) depth map in {what}, got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
        raise InputError(f"{path}: depth must be numeric, got {a.dtype}")
    return a.astype(np.float32, copy=False)


def read_depth(path: str | Path, *, png_scale: float = 1000.0) -> np.ndarray:
    """Read one depth map as float32 ``(H, W)``.

    ``.npy``; ``.npz`` (member ``depth``, else the first array); ``.png`` 16-bit
    single channel divided by ``png_scale``; ``.exr`` (channel ``Z``, else ``Y``/``R``/the
    only channel); ``.pfm``; ``.tif``/``.tiff`` (float as is, 16-bit divided by
    ``png_scale``). Values are returned as stored (NaN kept). Raises :class:`InputError` naming the file when it is
    missing, unreadable, an 8-bit or colour PNG, or not a single 2-D map.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such depth file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return _check_map(np.load(path, allow_pickle=False), path, "the .npy file")
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if not z.files:
                    raise InputError(f"{path}: the .npz file holds no array")
                key = "depth" if "depth" in z.files else z.files[0]
                return _check_map(z[key], path, f"member '{key}'")
        if suffix == ".png":
            img = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
            if img is None:
                raise InputError(f"{path}: cannot decode PNG")
            if img.dtype != np.uint16:
                raise InputError(f"{path}: depth PNG must be 16-bit, got {img.dtype} (an 8-bit PNG holds no usable depth)")
            if img.ndim != 2:
                raise InputError(f"{path}: depth PNG must have one channel, got {img.shape[2]}")
            return img.astype(np.float32) / np.float32(png_scale)
        if suffix == ".exr":
            import OpenEXR

            with OpenEXR.File(str(path), separate_channels=True) as fh:
                channels = {name: ch.pixels for name, ch in fh.channels().items()}
            for key in ("Z", "depth", "Y", "R"):
                if key in channels:
                    return _check_map(channels[key], path, f"channel '{key}'")
            if len(channels) == 1:
                return _check_map(next(iter(channels.values())), path, "the EXR file")
            raise InputError(f"{path}: EXR has no Z/Y/R channel and several channels ({sorted(channels)})")
        if suffix in (".tif", ".tiff"):
            img = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
            if img is None:
                raise InputError(f"{path}: cannot decode TIFF")
            if img.ndim != 2:
                raise InputError(f"{path}: depth TIFF must have one channel, got shape {img.shape}")
            if img.dtype == np.uint16:
                return img.astype(np.float32) / np.float32(png_scale)
            if not np.issubdtype(img.dtype, np.floating):
                raise InputError(f"{path}: depth TIFF must be float or 16-bit, got {img.dtype}")
            return _check_map(img, path, "the TIFF file")
        if suffix == ".pfm":
            img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if img is None:
                raise InputError(f"{path}: cannot decode PFM")
            if img.ndim == 3:
                raise InputError(f"{path}: PFM must have one channel ('Pf'), got a colour PFM ('PF')")
            return _check_map(img, path, "the PFM file")
    except InputError:
        raise
    except (OSError, ValueError, RuntimeError, zipfile.BadZipFile, KeyError) as exc:
        raise InputError(f"{path}: cannot read depth ({exc})") from exc
    raise InputError(f"{path}: unknown depth file type '{suffix}' (use .npy .npz .png .exr .pfm .tif)")


# ----------------------------------------------------------------------------- streamed npz
_ZIP64_THRESHOLD = int(zipfile.ZIP64_LIMIT * 0.9)


def _write_stack(zf: zipfile.ZipFile, name: str, frames: Iterable[np.ndarray], shape: tuple[int, ...],
                 dtype: np.dtype, path: Path) -> None:
    shape = tuple(int(s) for s in shape)
    if len(shape) < 1:
        raise OutputError(f"{path}: stacked member '{name}' needs a shape (T, ...), got {shape}")
    dtype = np.dtype(dtype)
    frame_shape = shape[1:]
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    with zf.open(f"{name}.npy", "w", force_zip64=nbytes > _ZIP64_THRESHOLD) as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        count = 0
        for frame in islice(iter(frames), shape[0] + 1):
            if count == shape[0]:
                raise OutputError(f"{path}: member '{name}' received more than the {shape[0]} frames announced")
            a = np.asarray(frame)
            if a.shape != frame_shape:
                raise OutputError(f"{path}: frame {count} of member '{name}' has shape {a.shape}, expected {frame_shape}")
            a = np.ascontiguousarray(a, dtype=dtype)
            fh.write(memoryview(a).cast("B"))
            count += 1
        if count != shape[0]:
            raise OutputError(f"{path}: member '{name}' received {count} frames, {shape[0]} were announced")


def _is_stack_spec(value: Any) -> bool:
    return (isinstance(value, tuple) and len(value) == 3 and not isinstance(value[0], (np.ndarray, str, bytes))
            and isinstance(value[1], (tuple, list)))


def write_npz_stream(
    path: str | Path,
    frames: Iterable[np.ndarray] | Mapping[str, tuple[Iterable[np.ndarray], tuple[int, ...], Any]],
    shape: tuple[int, int, int] | Mapping[str, Any] | None = None,
    dtype: Any = np.float32,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write an uncompressed ``.npz`` whose stacked members are streamed frame by frame.

    Memory stays flat in the number of frames: for each stacked member the ``.npy``
    header for the full shape is written first (``numpy.lib.format``), then each frame's
    bytes are appended to the zip member (zip64 when large). ``np.load`` reads the
    result as ordinary arrays. The file appears atomically.

    Two calling forms:

    * ``write_npz_stream(path, frames, (T, H, W), np.float32, extra)``: member
      ``depth`` from ``frames``;
    * ``write_npz_stream(path, {"depth": (frames, (T, H, W), np.float32), ...}, extra)``:
      several stacked members (the mapping form; ``extra`` may also be passed by keyword).

    ``extra`` maps names to small arrays (``units`` as a 0-d string array,
    ``frame_indices``, ``K`` ...), stored as they are, or to more stacked members given
    as ``(iterable, shape, dtype)`` or as an iterator of per-frame arrays (shape
    ``(T, *first_frame.shape)`` with ``T`` from the first stacked member and the first
    frame's dtype). Raises :class:`OutputError` naming the path when a member gets
    more or fewer frames than announced or a frame of the wrong shape.
    """
    path = Path(path)
    if isinstance(frames, Mapping):
        if isinstance(shape, Mapping):
            if extra is not None:
                raise OutputError(f"{path}: extra given twice")
            extra = shape
        elif shape is not None:
            raise OutputError(f"{path}: with a mapping of stacked members, the third argument must be the extras")
        stacks = dict(frames)
    else:
        if shape is None:
            raise OutputError(f"{path}: shape (T, H, W) is required")
        stacks = {"depth": (frames, tuple(shape), dtype)}
    extra = dict(extra or {})
    if not stacks:
        raise OutputError(f"{path}: nothing to write")
    first_t = int(tuple(next(iter(stacks.values()))[1])[0])
    small: dict[str, np.ndarray] = {}
    for key, value in extra.items():
        if _is_stack_spec(value):
            stacks[key] = (value[0], tuple(value[1]), value[2])
        elif isinstance(value, Iterator):
            it = iter(value)
            first = next(it, None)
            if first is None:
                raise OutputError(f"{path}: member '{key}' is an empty iterator")
            first = np.asarray(first)

            def chain(first: np.ndarray = first, it: Iterator = it) -> Iterator[np.ndarray]:
                yield first
                yield from it

            stacks[key] = (chain(), (first_t, *first.shape), first.dtype)
        else:
            small[key] = np.asarray(value)
    for key in small:
        if key in stacks:
            raise OutputError(f"{path}: member '{key}' given twice")
    for key, value in small.items():
        if value.dtype == object:
            raise OutputError(f"{path}: member '{key}' is not a plain array (object dtype)")
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for key, (it, shp, dt) in stacks.items():
                _write_stack(zf, key, it, shp, dt, path)
            for key, value in small.items():
                with zf.open(f"{key}.npy", "w", force_zip64=value.nbytes > _ZIP64_THRESHOLD) as fh:
                    np.lib.format.write_array(fh, value, allow_pickle=False)
    return path
