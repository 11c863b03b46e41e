"""Small helpers shared by the learned priors (torch is imported lazily, inside functions).

Conventions: images are uint8 RGB ``(H, W, 3)``; model outputs are resized back to the
frame size with *bilinear* interpolation on pixel centres (``align_corners=False``, the
OpenCV convention used everywhere in steadydepth).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator

import numpy as np

from ..errors import InputError, require
from ..types import Frame, PriorOutput

__all__ = [
    "image_batches",
    "model_outputs",
    "resolve_device",
    "resize_maps",
    "hub_offline",
    "looks_like_hub_id",
    "require_hub_models",
]

log = logging.getLogger(__name__)



def resolve_device(device: str | None, extra: str = "hf", purpose: str = "a learned depth prior") -> str:
    """Map ``"auto"``/``None``/``"cpu"``/``"cuda[:N]"``/``"mps"`` to a torch device string.

    ``auto`` picks CUDA, then Apple MPS, then the CPU. Asking for an accelerator that
    torch cannot see raises :class:`~steadydepth.errors.InputError`.
    """
    torch = require("torch", extra, purpose)
    dev = (device or "auto").strip().lower()
    if dev == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if dev == "cpu":
        return "cpu"
    if dev.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"device '{device}' was requested but torch sees no CUDA GPU (use --device cpu or auto)")
        return dev
    if dev == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise InputError("device 'mps' was requested but torch's MPS backend is not available")
        return dev
    raise InputError(f"unknown device '{device}': use cpu, cuda, cuda:N, mps or auto")


def resize_maps(maps, height: int, width: int) -> np.ndarray:
    """Resize a batch of maps ``(B, h, w)`` (torch tensor or numpy) to ``(B, height, width)`` float32.

    Bilinear on pixel centres (``align_corners=False``); computed in float32 whatever the
    input dtype, returned as a numpy array on the CPU.
    """
    import torch

    t = maps if isinstance(maps, torch.Tensor) else torch.from_numpy(np.asarray(maps))
    if t.ndim != 3:
        raise ValueError(f"resize_maps expects (B, h, w) maps, got shape {tuple(t.shape)}")
    t = t.detach().float()
    if tuple(t.shape[-2:]) != (height, width):
        t = torch.nn.functional.interpolate(t[:, None], size=(height, width), mode="bilinear", align_corners=False)[:, 0]
    return t.cpu().numpy().astype(np.float32, copy=False)


def hub_offline() -> bool:
    """True when the Hugging Face Hub must not be contacted (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}:
            return True
    try:
        import huggingface_hub.constants as c

        return bool(getattr(c, "HF_HUB_OFFLINE", False))
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers/diffusers
        return False


def _hub_unreachable(timeout_s: float = 3.0) -> str | None:
    """None when the Hub endpoint (``HF_ENDPOINT``, default huggingface.co) accepts a TCP
    connection within ``timeout_s``; else why not, in a few words."""
    import socket
    from urllib.parse import urlparse

    try:
        import huggingface_hub.constants as c

        endpoint = os.environ.get("HF_ENDPOINT") or c.ENDPOINT
    except ImportError:  # pragma: no cover
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urlparse(endpoint)
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"


def require_hub_models(models: list[tuple[str, str]], flag: str, hint: str) -> None:
    """Fail at once, before any download is tried, when a Hub model is needed that is neither
    in the local Hugging Face cache nor reachable (``HF_HUB_OFFLINE`` set, or no connection to
    the Hub within 3 s). ``models``: ``(repo id, a file of it, e.g. "config.json")``; ``flag``
    names the user's option; ``hint`` says where to put the weights. Raises :class:`ModelError`
    (one line), so the Hub client never starts its minute of retries."""
    from ..errors import ModelError

    try:
        import huggingface_hub.constants as c
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - comes with transformers/diffusers
        return
    cache = os.environ.get("HF_HUB_CACHE") or c.HF_HUB_CACHE
    missing = [repo for repo, filename in models
               if not isinstance(try_to_load_from_cache(repo, filename, cache_dir=cache), str)]
    if not missing:
        return
    why = "HF_HUB_OFFLINE is set" if hub_offline() else _hub_unreachable()
    if why is None:
        return  # the Hub is reachable: the download may go ahead
    raise ModelError(f"{flag}: {' and '.join(missing)} not in the Hugging Face cache ({cache}) and the Hub "
                     f"cannot be used ({why}); {hint}")


def looks_like_hub_id(text: str) -> bool:
    """``org/name`` or ``name`` (no drive, no leading ``.``/``/``/``~``, at most one ``/``)."""
    if not text or text.startswith((".", "/", "~", "\\")) or "\\" in text or ":" in text:
        return False
    return text.count("/") <= 1 and all(part for part in text.split("/"))


def image_batches(frames: Iterable[Frame], batch_size: int, prior: str) -> Iterator[tuple[int, list[np.ndarray]]]:
    """Group a frame stream into batches of same-size uint8 RGB images.

    Yields ``(position of the batch's first frame, images)``; a batch ends early when the
    frame size changes. Raises :class:`InputError` naming the frame for anything but uint8 RGB.
    """
    batch: list[np.ndarray] = []
    first = 0
    for i, frame in enumerate(frames):
        img = np.asarray(frame.image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise InputError(f"--prior {prior}: frame {frame.index} must be uint8 RGB (H, W, 3), got {img.dtype} {img.shape}")
        if batch and img.shape != batch[0].shape:
            yield first, batch
            batch = []
        if not batch:
            first = i
        batch.append(img)
        if len(batch) >= batch_size:
            yield first, batch
            batch = []
    if batch:
        yield first, batch


def model_outputs(first: int, maps: Iterable[np.ndarray], metric: bool) -> Iterator[PriorOutput]:
    """PriorOutputs of one batch: metric depth (non-positive -> invalid 0) or relative disparity
    (non-finite -> 0)."""
    for k, values in enumerate(maps):
        bad = ~np.isfinite(values) | (values <= 0) if metric else ~np.isfinite(values)
        if bad.any():
            values = values.copy()
            values[bad] = 0.0
        yield PriorOutput(index=first + k, values=values, kind="depth" if metric else "disparity", metric=metric)
