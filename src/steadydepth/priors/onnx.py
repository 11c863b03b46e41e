"""``onnx:FILE.onnx``: any depth network exported to ONNX, run with onnxruntime.

The model takes one image tensor ``(N, 3, H, W)`` (float32 or float16, RGB) and returns
``(N, H', W')`` or ``(N, 1, H', W')`` (the first output is used). By default the output
is read as affine-invariant *disparity* (what Depth Anything / MiDaS exports give);
``?metric`` (or a trailing ``:metric``) reads it as metric z-depth in metres.

Options after ``?`` (``onnx:model.onnx?metric&size=518&mean=0.5,0.5,0.5&std=0.5,0.5,0.5``):

* ``metric``: the output is metric depth (default: relative disparity).
* ``size``: for inputs with dynamic height/width, the *shorter* image side is resized to
  ``size`` (default 518) and both sides are rounded to a multiple of ``multiple``
  (default 14, the ViT patch size of Depth Anything exports). Fixed input sizes in the
  graph are always obeyed (the frame is resized to exactly that size).
* ``mean`` / ``std``: three comma-separated values applied to RGB in ``[0, 1]``
  (default ImageNet: mean 0.485,0.456,0.406, std 0.229,0.224,0.225).
* ``batch_size``: frames per run when the batch axis is dynamic (default 1).
* ``device``: ``cpu``, ``cuda`` or ``auto`` (default ``context.device``); CUDA uses
  onnxruntime's ``CUDAExecutionProvider`` when it is available, otherwise the CPU.

Conventions: input resize is bicubic, the output is resized back to the frame size with
bilinear interpolation on pixel centres (OpenCV, ``align_corners=False`` semantics).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ..errors import InputError, ModelError, require
from ..types import Frame, PriorOutput
from ._torch_utils import image_batches, model_outputs
from .spec import option_bool, parse_spec_options
from .base import DepthPrior, PriorContext, register_prior

__all__ = ["ONNXDepthPrior", "IMAGENET_MEAN", "IMAGENET_STD"]

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_OPTIONS = {
    "metric": "the output is metric depth in metres",
    "size": "shorter side for dynamic-size inputs (int, default 518)",
    "multiple": "round dynamic sizes to this multiple (default 14)",
    "mean": "three comma-separated values (default ImageNet)",
    "std": "three comma-separated values (default ImageNet)",
    "batch_size": "frames per run when the batch axis is dynamic",
    "device": "cpu, cuda or auto",
}


def _round_multiple(x: float, m: int) -> int:
    return max(m, int(round(x / m)) * m)


class ONNXDepthPrior(DepthPrior):
    """Per-frame depth/disparity from an ONNX graph (see the module docstring)."""

    name = "onnx"

    def __init__(
        self,
        path: str | Path,
        *,
        metric: bool = False,
        size: int = 518,
        multiple: int = 14,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        batch_size: int = 1,
        device: str | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise ModelError(
                f"{self.path}: ONNX model file for --prior onnx: does not exist (export one, e.g. the "
                f"Depth Anything ONNX releases, on a machine with internet and copy it here)"
            )
        if size < 14 or multiple < 1 or batch_size < 1:
            raise InputError(f"--prior onnx: bad size={size} / multiple={multiple} / batch_size={batch_size}")
        if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
            raise InputError(f"--prior onnx: mean and std need three values each (std > 0), got {mean} / {std}")
        self.metric = bool(metric)
        self.size = int(size)
        self.multiple = int(multiple)
        self.mean = np.asarray(mean, dtype=np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(1, 3, 1, 1)
        self.batch_size = int(batch_size)
        self.device_request = device
        self._session = None
        self._providers: list[str] = []
        self._ort = require("onnxruntime", "onnx", "--prior onnx")
        # Build a CPU session now so that a bad file fails at creation, with its name.
        self._open(["CPUExecutionProvider"])

    # ------------------------------------------------------------------ session
    def _open(self, providers: list[str]) -> None:
        ort = self._ort
        try:
            sess = ort.InferenceSession(str(self.path), providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/InvalidProtobuf types
            raise ModelError(f"{self.path}: not a loadable ONNX model ({type(exc).__name__}: {exc})") from exc
        inputs, outputs = sess.get_inputs(), sess.get_outputs()
        if len(inputs) < 1 or len(outputs) < 1:
            raise ModelError(f"{self.path}: the ONNX graph needs one image input and one output")
        inp = inputs[0]
        if len(inp.shape) != 4:
            raise ModelError(f"{self.path}: input '{inp.name}' has shape {inp.shape}; expected (N, 3, H, W)")
        if isinstance(inp.shape[1], int) and inp.shape[1] != 3:
            raise ModelError(f"{self.path}: input '{inp.name}' has {inp.shape[1]} channels; expected 3 (RGB)")
        if inp.type not in ("tensor(float)", "tensor(float16)"):
            raise ModelError(f"{self.path}: input '{inp.name}' has type {inp.type}; expected float32 or float16")
        self._session = sess
        self._providers = list(sess.get_providers())
        self.input_name = inp.name
        self.input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        b, _, h, w = inp.shape
        self.fixed_batch = b if isinstance(b, int) else None
        self.fixed_hw = (h, w) if isinstance(h, int) and isinstance(w, int) else None
        self.output_name = outputs[0].name

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """The network input ``(h, w)`` used for a ``height x width`` frame."""
        if self.fixed_hw is not None:
            return self.fixed_hw
        scale = self.size / min(height, width)
        return _round_multiple(height * scale, self.multiple), _round_multiple(width * scale, self.multiple)

    def preprocess(self, images: list[np.ndarray]) -> np.ndarray:
        """uint8 RGB frames -> normalised ``(N, 3, h, w)`` network input (bicubic resize)."""
        import cv2

        h0, w0 = images[0].shape[:2]
        h, w = self.input_size(h0, w0)
        batch = []
        for img in images:
            if (img.shape[0], img.shape[1]) != (h, w):
                img = cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
            batch.append(img)
        x = np.stack(batch).astype(np.float32).transpose(0, 3, 1, 2) / 255.0
        x = (x - self.mean) / self.std
        return np.ascontiguousarray(x.astype(self.input_dtype))

    def _run(self, images: list[np.ndarray]) -> np.ndarray:
        import cv2

        h0, w0 = images[0].shape[:2]
        x = self.preprocess(images)
        try:
            (y,) = self._session.run([self.output_name], {self.input_name: x})
        except Exception as exc:
            raise ModelError(f"{self.path}: onnxruntime failed on input {x.shape} ({type(exc).__name__}: {exc})") from exc
        y = np.asarray(y, dtype=np.float32)
        if y.ndim == 4 and y.shape[1] == 1:
            y = y[:, 0]
        elif y.ndim == 2 and len(images) == 1:
            y = y[None]
        if y.ndim != 3 or y.shape[0] != len(images):
            raise ModelError(
                f"{self.path}: output '{self.output_name}' has shape {y.shape}; expected (N, H, W) or (N, 1, H, W)"
            )
        out = np.empty((len(images), h0, w0), np.float32)
        for k in range(len(images)):
            out[k] = y[k] if y.shape[1:] == (h0, w0) else cv2.resize(y[k], (w0, h0), interpolation=cv2.INTER_LINEAR)
        return out

    def process(self, frames: Iterable[Frame], context: PriorContext) -> Iterator[PriorOutput]:
        """Yield one output per frame, in order (float32 at the frame's size)."""
        device = (self.device_request or context.device or "cpu").lower()
        want_cuda = device.startswith("cuda") or device == "auto"
        if want_cuda and "CUDAExecutionProvider" in self._ort.get_available_providers():
            if "CUDAExecutionProvider" not in self._providers:
                self._open(["CUDAExecutionProvider", "CPUExecutionProvider"])
        elif device.startswith("cuda"):
            log.warning("onnx prior: onnxruntime has no CUDAExecutionProvider here; running on the CPU")
        bs = 1 if self.fixed_batch == 1 else self.batch_size
        if self.fixed_batch not in (None, 1):
            bs = self.fixed_batch  # a graph with a fixed batch > 1 gets exactly that many frames (padded below)
        for first, batch in image_batches(frames, bs, "onnx"):
            n = len(batch)
            if self.fixed_batch not in (None, 1):  # pad to the graph's fixed batch size
                batch = batch + [batch[-1]] * (bs - n)
            yield from model_outputs(first, self._run(batch)[:n], self.metric)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "file": str(self.path),
            "kind": "depth" if self.metric else "disparity",
            "metric": self.metric,
            "input": self.input_name,
            "input_size": list(self.fixed_hw) if self.fixed_hw else f"dynamic (short side {self.size}, x{self.multiple})",
            "mean": self.mean.ravel().tolist(),
            "std": self.std.ravel().tolist(),
            "providers": self._providers,
        }


def _floats3(text: str, name: str) -> tuple[float, float, float]:
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError as exc:
        raise InputError(f"--prior onnx: option {name} must be three comma-separated numbers, got '{text}'") from exc
    if len(vals) != 3 or not all(math.isfinite(v) for v in vals):
        raise InputError(f"--prior onnx: option {name} must be three comma-separated finite numbers, got '{text}'")
    return vals  # type: ignore[return-value]


@register_prior("onnx")
def _factory(arg: str | None) -> ONNXDepthPrior:
    if not arg:
        raise InputError("--prior onnx: needs a model file, e.g. --prior onnx:depth_anything_v2_vits.onnx")
    suffix_metric = arg.lower().endswith(":metric")
    if suffix_metric:
        arg = arg[: -len(":metric")]
    target, opts = parse_spec_options(arg, _OPTIONS, "onnx")
    metric = option_bool(opts["metric"], "metric", True) if "metric" in opts else False
    if target.lower().endswith(":metric"):
        target, suffix_metric = target[: -len(":metric")], True
    metric = metric or suffix_metric
    try:
        size = int(opts.get("size", 518))
        multiple = int(opts.get("multiple", 14))
        batch_size = int(opts.get("batch_size", 1))
    except ValueError as exc:
        raise InputError(f"--prior onnx:{arg}: size, multiple and batch_size must be integers") from exc
    return ONNXDepthPrior(
        target,
        metric=metric,
        size=size,
        multiple=multiple,
        mean=_floats3(opts["mean"], "mean") if "mean" in opts else IMAGENET_MEAN,
        std=_floats3(opts["std"], "std") if "std" in opts else IMAGENET_STD,
        batch_size=batch_size,
        device=opts.get("device") or None,
    )
