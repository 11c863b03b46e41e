"""``vda``: Video Depth Anything (Chen et al., CVPR 2025), windowed video depth, streamed.

Spec: ``vda`` (the Small checkpoint from ``--model-dir`` / ``$STEADYDEPTH_MODELS`` / the Hugging
Face cache, see :mod:`steadydepth.priors.catalog`) or ``vda:PATH`` where ``PATH`` is a
published checkpoint (``video_depth_anything_vits.pth``, ``metric_video_depth_anything_vits.pth``,
the ``vitb``/``vitl`` ones) or a folder holding one. Options after ``?``:
``vda:FILE?window=32&overlap=8&context=2&input_size=518&metric=0&device=cuda&fp16=1&micro_batch=4``.

**Network.** :class:`~steadydepth.priors._vda_model.VideoDepthAnything`, the published layout:
the checkpoint loads with ``strict=True`` (the encoder size is read from the state dict).

**Windows.** As in the published inference: windows of ``window`` (32) frames; every window
after the first starts with ``context`` (2) *key frames* of the previous window's input (its
positions ``0, (window - overlap) / context, ...``: the first frame of the clip and one from the
middle of the previous window, which keep the temporal attention anchored to the past), then the
last ``overlap`` (8) frames of the previous window, then ``window - context - overlap`` (22) new
frames. The last window is padded with copies of the last frame. The outputs of the
contiguous frames of each window (``window - context`` of them) go to
:func:`~steadydepth.consistency.stitch.stitch_windows`, which aligns each window to the previous
one by a least-squares scale and shift over the ``overlap`` shared frames and blends them
linearly across the overlap (the published recipe fits on the two key frames instead; the
key frames' own outputs are not used here). Memory holds two windows of input frames.

**Preprocessing.** RGB / 255, resized (bicubic) so that the short side is at least
``input_size`` (518) with both sides multiples of 14 (for aspect ratios above 16:9 the
size is reduced as published), ImageNet mean/std. The output is resized back to the
frame size, bilinear on pixel centres.

**Output.** Relative checkpoints: ``PriorOutput(kind="disparity")``, affine-invariant, one
gauge for the whole clip (the first window's). Metric checkpoints (file name starting with
``metric_``, or ``metric=1``): ``kind="depth"``, ``metric=True``, metres; the windows are
stitched in inverse depth, so later windows are aligned to the first one's metric scale.

**Device.** ``device`` (default: the run's ``--device``), fp16 autocast on CUDA (as published;
the last convolutions stay float32), never on the CPU; ``micro_batch`` frames at a time through
the full-resolution layers of the head.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from ..consistency.stitch import stitch_windows
from ..errors import InputError, ModelError, require
from ..geometry import invert_valid
from ..types import Frame, PriorOutput
from ._torch_utils import resize_maps, resolve_device
from .base import DepthPrior, PriorContext, register_prior
from .spec import option_bool, parse_spec_options

__all__ = ["VDAPrior", "window_plan", "model_input_size"]

log = logging.getLogger(__name__)

_OPTIONS = {
    "window": "frames per window (default 32, at most the checkpoint's 32)",
    "overlap": "frames shared by consecutive windows, used to stitch them (default 8)",
    "context": "key frames of the previous window put at the start of each window (default 2)",
    "input_size": "short side of the network input in pixels, a multiple of 14 (default 518)",
    "metric": "force metric depth (1) or relative disparity (0); default from the file name",
    "device": "cpu, cuda, cuda:N, mps or auto",
    "fp16": "half precision (autocast) on the GPU (1/0)",
    "micro_batch": "frames at a time through the full-resolution head layers (default 4)",
}

_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)
_PATCH = 14


def window_plan(window: int, overlap: int, context: int) -> tuple[list[int], int]:
    """``(key frame positions in the previous window, new frames per later window)``; checks the
    three numbers (``InputError``)."""
    if window < 2 or overlap < 1 or context < 0 or context + overlap >= window:
        raise InputError(f"--prior vda: need window >= 2, overlap >= 1, context >= 0 and context + overlap < window "
                         f"(got window={window}, overlap={overlap}, context={context})")
    keys = [i * (window - overlap) // context for i in range(context)] if context else []
    return keys, window - context - overlap


def model_input_size(width: int, height: int, input_size: int = 518) -> tuple[int, int]:
    """``(w, h)`` of the network input for a ``width x height`` frame (see the module docstring)."""
    ratio = max(width, height) / min(width, height)
    if ratio > 1.78:
        input_size = round(int(input_size * 1.777 / ratio) / _PATCH) * _PATCH
    scale = max(input_size / height, input_size / width)

    def fit(x: float) -> int:
        y = int(np.round(x / _PATCH) * _PATCH)
        return y if y >= input_size else int(np.ceil(x / _PATCH) * _PATCH)

    return max(_PATCH, fit(scale * width)), max(_PATCH, fit(scale * height))


def _find_checkpoint(path: Path) -> Path:
    if path.is_file():
        return path
    if path.is_dir():
        found = sorted(path.glob("*video_depth_anything_vit*.pth")) + sorted(path.glob("*/*video_depth_anything_vit*.pth"))
        if len(found) == 1:
            return found[0]
        if not found:
            raise ModelError(f"{path}: no Video Depth Anything checkpoint (video_depth_anything_vits.pth ...) in this "
                             f"folder; get one with `steadydepth priors` (it prints the download command)")
        raise ModelError(f"{path}: several checkpoints ({', '.join(f.name for f in found)}); name the file: "
                         f"--prior vda:{found[0]}")
    raise ModelError(f"{path}: --prior vda: no such checkpoint file or folder")


def load_vda(path: str | Path, num_frames: int = 32):
    """Load a published checkpoint into :class:`VideoDepthAnything` with ``strict=True``.

    Returns ``(model, file, encoder)``; raises :class:`ModelError` naming the file on anything
    that is not a Video Depth Anything state dict."""
    torch = require("torch", "hf", "--prior vda")
    from ._vda_model import VideoDepthAnything, encoder_from_state_dict

    file = _find_checkpoint(Path(path).expanduser())
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle, zip and format errors differ between torch versions
        raise ModelError(f"{file}: not a readable torch checkpoint ({type(exc).__name__}: {exc})") from exc
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ModelError(f"{file}: expected a state dict, got {type(state).__name__}")
    encoder = encoder_from_state_dict(state)
    if encoder is None:
        raise ModelError(f"{file}: not a Video Depth Anything checkpoint (no pretrained.cls_token of width "
                         f"384/768/1024)")
    pe = state.get("head.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.pos_encoder.pe")
    frames = int(pe.shape[1]) if pe is not None and pe.ndim == 3 else num_frames
    model = VideoDepthAnything(encoder, num_frames=frames)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()
        raise ModelError(f"{file}: does not match the Video Depth Anything {encoder} layout "
                         f"({' '.join(first[:3])[:300]})") from exc
    model.eval()
    return model, file, encoder


class VDAPrior(DepthPrior):
    """Video Depth Anything over overlapping windows, stitched (see the module docstring)."""

    name = "vda"

    def __init__(self, checkpoint: str | Path, *, window: int = 32, overlap: int = 8, context: int = 2,
                 input_size: int = 518, metric: bool | None = None, device: str | None = None,
                 fp16: bool | None = None, micro_batch: int = 4) -> None:
        self.keys, self.new_per_window = window_plan(int(window), int(overlap), int(context))
        if input_size < _PATCH or micro_batch < 1:
            raise InputError(f"--prior vda: input_size must be >= 14 and micro_batch >= 1 "
                             f"(got {input_size}, {micro_batch})")
        self.window, self.overlap, self.context = int(window), int(overlap), int(context)
        self.input_size, self.micro_batch = int(input_size), int(micro_batch)
        self.device_request, self.fp16_request = device, fp16
        self._model, self.file, self.encoder = load_vda(checkpoint)
        if self.window > self._model.max_frames:
            raise InputError(f"--prior vda: window={self.window} is more than the {self._model.max_frames} frames "
                             f"{self.file.name} was trained with")
        self.metric = self.file.name.startswith("metric_") if metric is None else bool(metric)
        self._device: str | None = None
        self._fp16 = False
        self.windows_run = 0
        log.info("vda prior: %s (%s, %s)", self.file, self.encoder, "metric depth" if self.metric else "relative disparity")

    # ------------------------------------------------------------------ running
    def _prepare(self, context: PriorContext):
        import torch

        device = resolve_device(self.device_request or context.device, "hf", "--prior vda")
        fp16 = option_bool(self.fp16_request if self.fp16_request is not None else context.options.get("fp16"),
                           "fp16", default=device.startswith("cuda"))
        if fp16 and not device.startswith("cuda"):
            log.warning("vda prior: fp16 is only used on CUDA; running in float32")
            fp16 = False
        self._model.to(device=device, dtype=torch.float32)
        self._device, self._fp16 = device, fp16
        return torch, device

    def _preprocess(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        img = cv2.resize(image.astype(np.float32) / 255.0, size, interpolation=cv2.INTER_CUBIC)
        return ((img - _MEAN) / _STD).transpose(2, 0, 1).astype(np.float32)

    def _run_window(self, torch, device: str, inputs: list[np.ndarray], out_hw: tuple[int, int]) -> np.ndarray:
        x = torch.from_numpy(np.stack(inputs))[None].to(device)
        try:
            with torch.inference_mode(), torch.autocast(device_type=x.device.type, dtype=torch.float16,
                                                         enabled=self._fp16):
                depth = self._model(x, micro_batch=self.micro_batch)[0]
        except (RuntimeError, ValueError) as exc:  # out of memory, bad size
            raise ModelError(f"--prior vda:{self.file}: the model failed on a window of {len(inputs)} frames of "
                             f"{x.shape[-1]}x{x.shape[-2]} ({type(exc).__name__}: {exc}); try a smaller input_size "
                             f"or --device cpu") from exc
        self.windows_run += 1
        maps = resize_maps(depth.float(), *out_hw)
        maps[~np.isfinite(maps)] = 0.0
        return invert_valid(maps) if self.metric else maps

    def _windows(self, frames: Iterable[Frame], torch, device: str) -> Iterator[tuple[int, np.ndarray]]:
        """``(start, (n, H, W) disparity)`` of each window's contiguous frames, in order."""
        it = iter(frames)
        size = hw = None
        prev: list[np.ndarray] | None = None  # the previous window's network input
        end = 0  # one past the last frame given to the model so far
        while True:
            need = self.window if prev is None else self.new_per_window
            new = []
            for frame in it:
                img = np.asarray(frame.image)
                if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                    raise InputError(f"--prior vda: frame {frame.index} must be uint8 RGB (H, W, 3), "
                                     f"got {img.dtype} {img.shape}")
                if hw is None:
                    hw = img.shape[:2]
                    size = model_input_size(hw[1], hw[0], self.input_size)
                elif img.shape[:2] != hw:
                    raise InputError(f"--prior vda: frame {frame.index} is {img.shape[1]}x{img.shape[0]}, the clip "
                                     f"started at {hw[1]}x{hw[0]} (a video model needs one frame size)")
                new.append(self._preprocess(img, size))
                if len(new) == need:
                    break
            if not new:
                return
            real = len(new)
            new += [new[-1]] * (need - real)  # pad the last window with its last frame, as published
            if prev is None:
                inputs, skip, start = new, 0, 0
            else:
                inputs = [prev[k] for k in self.keys] + prev[-self.overlap:] + new
                skip, start = self.context, end - self.overlap
            maps = self._run_window(torch, device, inputs, hw)
            end += real
            yield start, maps[skip: skip + end - start]
            if real < need:
                return
            prev = inputs

    def process(self, frames: Iterable[Frame], context: PriorContext) -> Iterator[PriorOutput]:
        """Yield one output per frame, in order (float32 at the frame's size)."""
        torch, device = self._prepare(context)
        self.windows_run = 0
        for i, disp in enumerate(stitch_windows(self._windows(frames, torch, device), overlap=self.overlap)):
            values = invert_valid(disp) if self.metric else disp
            yield PriorOutput(index=i, values=values, kind="depth" if self.metric else "disparity", metric=self.metric)

    def describe(self) -> dict:
        return {
            "name": self.name, "checkpoint": str(self.file), "encoder": self.encoder,
            "kind": "depth" if self.metric else "disparity", "metric": self.metric,
            "window": self.window, "overlap": self.overlap, "context": self.context, "input_size": self.input_size,
            "device": self._device, "dtype": "float16 (autocast)" if self._fp16 else "float32",
            "windows_run": self.windows_run,
        }


def _default_checkpoint() -> str:
    from .catalog import entry, find_local

    m = entry("vda-small")
    found = find_local(m)
    if found is None:
        raise ModelError(f"--prior vda: {m.filename} is not in $STEADYDEPTH_MODELS or the Hugging Face cache; "
                         f"get it with: {m.command()} (then --prior vda, or --prior vda:FILE)")
    return found[0]


@register_prior("vda")
def _factory(arg: str | None) -> VDAPrior:
    target, opts = parse_spec_options(arg or "", _OPTIONS, "vda")
    ints = {}
    for key in ("window", "overlap", "context", "input_size", "micro_batch"):
        if key in opts:
            try:
                ints[key] = int(opts[key])
            except ValueError as exc:
                raise InputError(f"--prior vda:{arg}: {key} must be an integer, got '{opts[key]}'") from exc
    return VDAPrior(
        target or _default_checkpoint(), **ints,
        metric=option_bool(opts["metric"], "metric", True) if "metric" in opts else None,
        device=opts.get("device") or None,
        fp16=option_bool(opts["fp16"], "fp16", True) if "fp16" in opts else None,
    )
