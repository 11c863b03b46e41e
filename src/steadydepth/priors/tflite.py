"""``tflite:FILE.tflite``: a per-frame depth network in TensorFlow Lite format (LiteRT runtime).

Runs with the ``ai-edge-litert`` interpreter (``pip install 'steadydepth[tflite]'``). Tested on
the real pretrained FastDepth int8 model (MobileNet-NNConv5, 224x224, NYU Depth v2), but any
graph with this layout works:

* input ``(1, H, W, 3)`` RGB, ``uint8``/``int8`` (quantised) or ``float32``/``float16``. The
  whole frame is stretched to ``H x W`` (area interpolation when shrinking, bicubic when
  enlarging), read as RGB in ``[0, 1]`` and quantised with the input's own scale and zero
  point (FastDepth: scale 1/255, zero point 0, i.e. the raw pixel values);
* output ``(1, H', W')`` or ``(1, H', W', 1)`` z-depth (bigger = farther), dequantised with the
  output's own scale and zero point (FastDepth: metres = value * 0.0717) and resized back to
  the frame with bilinear interpolation on pixel centres (OpenCV, ``align_corners=False``).
  Non-positive depth is invalid (0).

Shapes, dtypes and quantisation are read from the interpreter, never assumed.

**Relative by default.** A small network's "metres" are not a scale to trust (FastDepth is a
weak model trained on one indoor dataset, at 224x224, whatever the camera), so the prior reports ``kind="disparity"``, ``metric=False``: ``1 / depth``, treated as affine-invariant.
Alone, the clip alignment then fits one scale and shift per frame jointly over the clip
(the output is steady, in scene units); with ``+mvs`` the fusion takes the scale from the
video's geometry. ``?metric`` reports the model's depth as metric z-depth instead
(``kind="depth"``, ``metric=True``, written in metres without alignment).

Options after ``?``: ``metric`` (trust the model's metres) and ``threads`` (interpreter
threads, default ``min(4, CPU count)``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ..errors import InputError, ModelError, require
from ..geometry import invert_valid
from ..types import Frame, PriorOutput
from ._torch_utils import image_batches, model_outputs
from .base import DepthPrior, PriorContext, register_prior
from .spec import option_bool, parse_spec_options

__all__ = ["TFLiteDepthPrior"]

log = logging.getLogger(__name__)

_OPTIONS = {
    "metric": "the model's depth is metric (metres); default: relative",
    "threads": "interpreter threads (int, default min(4, CPU count))",
}

_INPUT_DTYPES = (np.uint8, np.int8, np.float32, np.float16)


@contextlib.contextmanager
def _native_stderr_to_log() -> Iterator[None]:
    """Send fd 2 to a temporary file while the runtime starts: its ``INFO: ...`` lines (the
    XNNPACK delegate notice, written by C++) go to this module's logger at DEBUG, anything
    else is passed on to the real stderr."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no fd 2: nothing reaches a terminal anyway
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            for line in tmp.read().decode("utf-8", "replace").splitlines(keepends=True):
                if line.startswith("INFO: "):
                    log.debug("litert: %s", line.strip())
                else:
                    sys.stderr.write(line)


def _layout_error(path: Path, what: str, detail: dict, expected: str) -> ModelError:
    return ModelError(f"{path}: unsupported tensor layout for --prior tflite: {what} '{detail['name']}' is "
                      f"{np.dtype(detail['dtype']).name} {[int(v) for v in detail['shape']]}; expected {expected}")


class TFLiteDepthPrior(DepthPrior):
    """Per-frame depth from a TFLite graph (see the module docstring)."""

    name = "tflite"

    def __init__(self, path: str | Path, *, metric: bool = False, threads: int | None = None) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise ModelError(f"{self.path}: TFLite model file for --prior tflite: does not exist")
        if threads is not None and threads < 1:
            raise InputError(f"--prior tflite: threads must be at least 1, got {threads}")
        self.metric = bool(metric)
        self.threads = int(threads) if threads is not None else max(1, min(4, os.cpu_count() or 1))
        litert = require("ai_edge_litert.interpreter", "tflite", "--prior tflite")
        try:
            with _native_stderr_to_log():
                interp = litert.Interpreter(model_path=str(self.path), num_threads=self.threads)
                interp.allocate_tensors()
        except ValueError as exc:  # "The model is not a valid Flatbuffer buffer" and the like
            raise ModelError(f"{self.path}: not a TFLite model ({exc})") from exc
        except RuntimeError as exc:
            raise ModelError(f"{self.path}: the TFLite runtime cannot load this model ({exc})") from exc
        self._interp = interp
        self._check_layout(interp.get_input_details(), interp.get_output_details())

    def _check_layout(self, inputs: list[dict], outputs: list[dict]) -> None:
        if len(inputs) != 1 or len(outputs) < 1:
            raise ModelError(f"{self.path}: unsupported tensor layout for --prior tflite: the graph has "
                             f"{len(inputs)} inputs and {len(outputs)} outputs; expected one image input")
        inp, out = inputs[0], outputs[0]
        shape = [int(v) for v in inp["shape"]]
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3 or min(shape) < 1 or inp["dtype"] not in _INPUT_DTYPES:
            raise _layout_error(self.path, "input", inp, "(1, H, W, 3) RGB, uint8/int8/float32/float16")
        oshape = [int(v) for v in out["shape"]]
        if not (len(oshape) == 3 or (len(oshape) == 4 and oshape[3] == 1)) or oshape[0] != 1 or \
                out["dtype"] not in _INPUT_DTYPES:
            raise _layout_error(self.path, "output", out, "(1, H, W) or (1, H, W, 1) depth")
        self.input_hw = (shape[1], shape[2])
        self.output_hw = (oshape[1], oshape[2])
        self._inp, self._out = inp, out
        self.in_scale, self.in_zero = (float(v) for v in inp["quantization"])
        self.out_scale, self.out_zero = (float(v) for v in out["quantization"])
        for which, dtype, scale in (("input", inp["dtype"], self.in_scale), ("output", out["dtype"], self.out_scale)):
            if np.issubdtype(dtype, np.integer) and scale <= 0:
                raise ModelError(f"{self.path}: unsupported tensor layout for --prior tflite: the {which} is "
                                 f"{np.dtype(dtype).name} without quantisation parameters")

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """uint8 RGB ``(H, W, 3)`` -> the network input ``(1, h, w, 3)`` in the input's dtype."""
        import cv2

        h, w = self.input_hw
        if image.shape[:2] != (h, w):
            shrink = image.shape[0] >= h and image.shape[1] >= w
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
        dtype = self._inp["dtype"]
        x = image.astype(np.float32) / 255.0
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            x = np.clip(np.rint(x / self.in_scale + self.in_zero), info.min, info.max)
        return np.ascontiguousarray(x[None].astype(dtype))

    def depth(self, image: np.ndarray) -> np.ndarray:
        """The model's dequantised z-depth of one uint8 RGB frame, at the frame's size (float32)."""
        import cv2

        self._interp.set_tensor(self._inp["index"], self.preprocess(image))
        try:
            self._interp.invoke()
        except RuntimeError as exc:
            raise ModelError(f"{self.path}: the TFLite runtime failed ({exc})") from exc
        y = np.asarray(self._interp.get_tensor(self._out["index"]))
        y = y.reshape(self.output_hw).astype(np.float32)
        if np.issubdtype(self._out["dtype"], np.integer):
            y = (y - self.out_zero) * self.out_scale
        h0, w0 = image.shape[:2]
        if y.shape != (h0, w0):
            y = cv2.resize(y, (w0, h0), interpolation=cv2.INTER_LINEAR)
        return np.where(np.isfinite(y) & (y > 0), y, 0.0).astype(np.float32)

    def process(self, frames: Iterable[Frame], context: PriorContext) -> Iterator[PriorOutput]:
        """Yield one output per frame, in order (float32 at the frame's size)."""
        for first, (image,) in image_batches(frames, 1, "tflite"):
            d = self.depth(image)
            values = d if self.metric else invert_valid(d)
            yield from model_outputs(first, [values], self.metric)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "file": str(self.path),
            "kind": "depth" if self.metric else "disparity",
            "metric": self.metric,
            "why": "?metric: the model's metres are used as they are" if self.metric else
                   "relative: 1/depth of the model, scale and shift fitted by the clip alignment or the fusion",
            "input": {"shape": [1, *self.input_hw, 3], "dtype": np.dtype(self._inp["dtype"]).name,
                      "scale": self.in_scale, "zero_point": self.in_zero},
            "output": {"shape": list(self.output_hw), "dtype": np.dtype(self._out["dtype"]).name,
                       "scale": self.out_scale, "zero_point": self.out_zero},
            "threads": self.threads,
        }


@register_prior("tflite")
def _factory(arg: str | None) -> TFLiteDepthPrior:
    if not arg:
        raise InputError("--prior tflite: needs a model file, e.g. --prior tflite:fast_depth_224.tflite")
    target, opts = parse_spec_options(arg, _OPTIONS, "tflite")
    metric = option_bool(opts["metric"], "metric", True) if "metric" in opts else False
    threads = None
    if opts.get("threads"):
        try:
            threads = int(opts["threads"])
        except ValueError as exc:
            raise InputError(f"--prior tflite:{arg}: threads must be an integer, got '{opts['threads']}'") from exc
    return TFLiteDepthPrior(target, metric=metric, threads=threads)
