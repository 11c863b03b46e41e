"""``hf:MODEL``: a Hugging Face ``transformers`` depth-estimation model, frame by frame.

``MODEL`` is a local folder written by ``save_pretrained`` / ``hf download --local-dir``
(holding ``config.json``, the weights and ``preprocessor_config.json``) or a Hub id
such as ``depth-anything/Depth-Anything-V2-Small-hf``. A Hub id is only used when it
is in the local cache or the Hub can be reached; offline (``HF_HUB_OFFLINE=1`` or no
network) a :class:`~steadydepth.errors.ModelError` explains how to fetch the weights.

Options go after ``?``: ``hf:DIR?batch_size=4&fp16=0&device=cuda&metric=1``.

* ``batch_size`` (default 4, or ``context.options["batch_size"]``): frames per forward pass.
* ``device``: ``cpu``, ``cuda[:N]``, ``mps`` or ``auto`` (default: ``context.device``).
* ``fp16``: half precision, default on for CUDA, never on the CPU.
* ``metric``: force metric (``1``) or relative (``0``) interpretation of the output.

**Relative vs metric.** Relative models (Depth Anything default, DPT/MiDaS) predict
affine-invariant *disparity*: the outputs are ``kind="disparity"``. Metric models
(``depth_estimation_type == "metric"`` in the config, ZoeDepth, GLPN, Depth Pro, or a
model id containing ``metric``) predict z-depth in metres: ``kind="depth"``,
``metric=True``. The decision and its reason are recorded in :meth:`HFDepthPrior.describe`.

**Resolution.** The model's own image processor prepares each frame (resize to its
working size, normalise); the predicted map is resized back to the frame size with
bilinear interpolation on pixel centres (ZoeDepth's reflection padding is removed first,
as its processor documents).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ..errors import InputError, ModelError, require
from ..types import Frame, PriorOutput
from ._torch_utils import (
    hub_offline, image_batches, looks_like_hub_id, model_outputs, require_hub_models, resize_maps,
    resolve_device,
)
from .spec import option_bool, parse_spec_options
from .base import DepthPrior, PriorContext, register_prior

__all__ = ["HFDepthPrior", "DEFAULT_HF_MODEL", "is_metric_config"]

log = logging.getLogger(__name__)

#: the model suggested in messages (small, relative, Apache-2.0)
DEFAULT_HF_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"

_OPTIONS = {
    "batch_size": "frames per forward pass (int)",
    "device": "cpu, cuda, cuda:N, mps or auto",
    "fp16": "half precision on the GPU (1/0)",
    "metric": "force metric depth (1) or relative disparity (0)",
}

#: model types whose depth head is metric by construction
_METRIC_MODEL_TYPES = {"zoedepth", "glpn", "depth_pro"}


def is_metric_config(config, model_name: str = "") -> tuple[bool, str]:
    """Decide whether a transformers depth model predicts metric depth; returns ``(metric, reason)``."""
    est = getattr(config, "depth_estimation_type", None)
    if est is not None:
        return est == "metric", f"config.depth_estimation_type = {est!r}"
    model_type = getattr(config, "model_type", "")
    if model_type in _METRIC_MODEL_TYPES:
        return True, f"model type {model_type!r} predicts metric depth"
    if "metric" in model_name.lower():
        return True, "model name contains 'metric'"
    return False, f"model type {model_type!r} predicts relative inverse depth"


def _download_hint(model: str, local: bool = False) -> str:
    """Where to put the weights; a local folder (``local``) is never offered as a Hub id."""
    name = model if looks_like_hub_id(model) and not local else DEFAULT_HF_MODEL
    return (
        f"download it on a machine with internet: `hf download {name} --local-dir DIR` "
        f"(or `huggingface-cli download {name} --local-dir DIR`), copy DIR here, then use --prior hf:DIR"
    )


class HFDepthPrior(DepthPrior):
    """Per-frame depth from ``AutoModelForDepthEstimation`` (see the module docstring).

    Yields ``PriorOutput(kind="disparity")`` for relative models and
    ``PriorOutput(kind="depth", metric=True)`` for metric ones, float32 at the frame size.
    """

    name = "hf"

    def __init__(
        self,
        model: str,
        *,
        batch_size: int | None = None,
        device: str | None = None,
        fp16: bool | None = None,
        metric: bool | None = None,
    ) -> None:
        if batch_size is not None and int(batch_size) < 1:
            raise InputError(f"--prior hf: batch_size must be >= 1, got {batch_size}")
        self.model_name = str(model)
        self.batch_size = None if batch_size is None else int(batch_size)
        self.device_request = device
        self.fp16_request = fp16
        self._model, self._processor, self.source = self._load(self.model_name)
        config = self._model.config
        auto_metric, reason = is_metric_config(config, self.model_name)
        if metric is not None:
            reason = f"forced by option metric={int(metric)}"
            auto_metric = bool(metric)
        self.metric = auto_metric
        self.metric_reason = reason
        self.model_type = getattr(config, "model_type", "?")
        self._device: str | None = None
        self._dtype_name = "float32"
        log.info("hf prior: %s (%s, %s: %s)", self.model_name, self.model_type,
                 "metric depth" if self.metric else "relative disparity", reason)

    # ------------------------------------------------------------------ loading
    @staticmethod
    def _load(model: str):
        path = Path(model).expanduser()
        if not path.exists() and looks_like_hub_id(model):
            require_hub_models([(model, "config.json")], f"--prior hf:{model}", _download_hint(model))
        transformers = require("transformers", "hf", "--prior hf")
        require("torch", "hf", "--prior hf")
        if path.exists():
            if not path.is_dir():
                raise ModelError(f"{path}: --prior hf: expects a model folder (config.json + weights), got a file")
            if not (path / "config.json").is_file():
                raise ModelError(
                    f"{path}: not a transformers model folder (no config.json); {_download_hint(model, local=True)}"
                )
            if not (path / "preprocessor_config.json").is_file():
                raise ModelError(
                    f"{path}: no preprocessor_config.json (the image processor); save it with "
                    f"processor.save_pretrained(DIR) or download the full model folder; "
                    f"{_download_hint(model, local=True)}"
                )
            kwargs = {"local_files_only": True}
            source = str(path.resolve())
            target = str(path)
        elif looks_like_hub_id(model):
            offline = hub_offline()
            kwargs = {"local_files_only": True} if offline else {}
            source = f"hub:{model}" + (" (offline cache)" if offline else "")
            target = model
        else:
            raise ModelError(f"{path}: model folder for --prior hf: does not exist; {_download_hint(model)}")
        try:
            processor = transformers.AutoImageProcessor.from_pretrained(target, **kwargs)
            net = transformers.AutoModelForDepthEstimation.from_pretrained(target, **kwargs)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            where = (
                f"'{model}' is not a local folder and is not in the Hugging Face cache"
                + (" (HF_HUB_OFFLINE is set)" if kwargs else " and the Hub could not be reached")
                if not path.exists()
                else f"{path}: the folder could not be loaded as a depth-estimation model"
            )
            raise ModelError(f"--prior hf:{model}: {where} ({type(exc).__name__}: {exc}); "
                             f"{_download_hint(model, local=path.exists())}") from exc
        net.eval()
        return net, processor, source

    # ------------------------------------------------------------------ running
    def _prepare(self, context: PriorContext) -> tuple[int, object, object]:
        import torch

        device = resolve_device(self.device_request or context.device, "hf", "--prior hf")
        fp16 = option_bool(self.fp16_request if self.fp16_request is not None else context.options.get("fp16"),
                           "fp16", default=device.startswith("cuda"))
        if fp16 and device == "cpu":
            log.warning("hf prior: fp16 is not used on the CPU; running in float32")
            fp16 = False
        dtype = torch.float16 if fp16 else torch.float32
        self._model.to(device=device, dtype=dtype)
        self._device = device
        self._dtype_name = str(dtype).replace("torch.", "")
        bs = self.batch_size if self.batch_size is not None else int(context.options.get("batch_size", 4))
        if bs < 1:
            raise InputError(f"--prior hf: batch_size must be >= 1, got {bs}")
        self._effective_batch = bs
        return bs, device, dtype

    def _run_batch(self, images: list[np.ndarray], device, dtype) -> np.ndarray:
        import torch

        h, w = images[0].shape[:2]
        inputs = self._processor(images=images, return_tensors="pt")
        inputs = {k: (v.to(device=device, dtype=dtype) if v.is_floating_point() else v.to(device))
                  for k, v in inputs.items() if isinstance(v, torch.Tensor)}
        try:
            with torch.inference_mode():
                out = self._model(**inputs)
        except (RuntimeError, ValueError) as exc:  # e.g. out of GPU memory, bad input size for the config
            raise ModelError(
                f"--prior hf:{self.model_name}: the model failed on a batch of {len(images)} frames of {w}x{h} "
                f"({type(exc).__name__}: {exc}); try a smaller batch_size or --device cpu"
            ) from exc
        pred = out.predicted_depth
        if pred.ndim == 4:  # (B, 1, h, w)
            pred = pred[:, 0]
        pred = pred.float()
        if self.model_type == "zoedepth" and getattr(self._processor, "do_pad", False):
            # ZoeDepth pads by reflection before the network; remove it (as its post-processor does).
            ph, pw = int(np.sqrt(h / 2) * 3), int(np.sqrt(w / 2) * 3)
            pred = torch.from_numpy(resize_maps(pred, h + 2 * ph, w + 2 * pw))[:, ph: ph + h, pw: pw + w]
        return resize_maps(pred, h, w)

    def process(self, frames: Iterable[Frame], context: PriorContext) -> Iterator[PriorOutput]:
        """Yield one output per frame, in order (float32 at the frame's size)."""
        bs, device, dtype = self._prepare(context)
        for first, batch in image_batches(frames, bs, "hf"):
            yield from model_outputs(first, self._run_batch(batch, device, dtype), self.metric)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "model": self.model_name,
            "source": self.source,
            "model_type": self.model_type,
            "kind": "depth" if self.metric else "disparity",
            "metric": self.metric,
            "metric_reason": self.metric_reason,
            "device": self._device,
            "dtype": self._dtype_name,
            "batch_size": getattr(self, "_effective_batch", self.batch_size),
        }


@register_prior("hf")
def _factory(arg: str | None) -> HFDepthPrior:
    if not arg:
        raise InputError(f"--prior hf: needs a model folder or Hub id, e.g. --prior hf:{DEFAULT_HF_MODEL}")
    target, opts = parse_spec_options(arg, _OPTIONS, "hf")
    try:
        batch_size = int(opts["batch_size"]) if "batch_size" in opts else None
    except ValueError as exc:
        raise InputError(f"--prior hf:{arg}: batch_size must be an integer") from exc
    return HFDepthPrior(
        target,
        batch_size=batch_size,
        device=opts.get("device") or None,
        fp16=option_bool(opts["fp16"], "fp16", True) if "fp16" in opts else None,
        metric=option_bool(opts["metric"], "metric", True) if "metric" in opts else None,
    )
