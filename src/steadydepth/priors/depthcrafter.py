"""``depthcrafter``: DepthCrafter (Hu et al., 2025) video depth through ``diffusers``, streamed.

DepthCrafter fine-tunes Stable Video Diffusion's spatio-temporal UNet to turn a video
into a video of relative disparity. This module re-implements the published inference
recipe (Tencent/DepthCrafter ``depthcrafter/depth_crafter_ppl.py`` + ``run.py``) with the
stock diffusers components, so that the frames can *stream* through a bounded buffer:

* components: ``UNetSpatioTemporalConditionModel`` (DepthCrafter weights,
  ``tencent/DepthCrafter``), ``AutoencoderKLTemporalDecoder``,
  ``CLIPVisionModelWithProjection`` + its image processor and ``EulerDiscreteScheduler``
  (from ``stabilityai/stable-video-diffusion-img2vid-xt``);
* conditioning per frame: the CLIP image embedding of *each* frame (the UNet's cross
  attention sees one token per frame, DepthCrafter's modified forward) and the VAE latent
  of the frame after noise augmentation (strength 0.02), concatenated to the noisy latent;
* added time ids ``[fps=7, motion_bucket=127, noise_aug_strength]``;
* windows of ``window`` frames (110) overlapping by ``overlap`` (25), see
  :func:`window_schedule`; the SAME initial noise is used on overlapping frames (the
  window-sized noise tensor is rotated as in the recipe, :func:`noise_indices`); at the
  first step the overlap frames of window ``k+1`` start from window ``k``'s final latents
  re-noised to the first sigma; after denoising, the overlap latents are blended linearly,
  :func:`overlap_weights` (weight of the new window rising 0 -> 1);
* 5 Euler denoising steps by default, guidance scale 1.0 (no classifier-free guidance;
  ``guidance > 1`` runs the unconditional pass of the recipe);
* the temporal VAE decodes final latents in chunks of ``decode_chunk`` (8) frames, aligned
  to the clip start as in the recipe; output = mean over the three decoded channels of
  ``clamp((x + 1) / 2, 0, 1)``.

**Output.** ``PriorOutput(kind="disparity")``: affine-invariant disparity in DepthCrafter's
clip-normalised ``[0, 1]`` range (the model is trained to produce per-clip normalised
disparity). ``run.py`` additionally min-max normalises the whole clip at the end; that is
one affine map for all frames, which streaming cannot apply before the clip ends and which
every affine-invariant consumer absorbs, so it is skipped. Pixels that decode to exactly 0
(farthest, e.g. sky) are 0 = invalid by the steadydepth convention.

**Streaming.** At most one window of frames (plus its conditioning) is held. Frames of
window ``k`` are yielded once final: all but its last ``overlap`` frames after window
``k``'s blend; those last ones after window ``k+1`` has blended them (or when the stream
ends). Frames are resized to a multiple of 64 (8 for the VAE x 8 for the UNet; ``max_res``
caps the long side, 1024 by default) and the disparity is resized back, bilinear.

Spec: ``depthcrafter`` (Hub ids, needs the weights in the local cache) or
``depthcrafter:UNET_DIR?svd=SVD_DIR&steps=5&window=110&overlap=25&guidance=1.0&offload=model``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ..errors import InputError, ModelError, require
from ..types import Frame, PriorOutput
from ._torch_utils import hub_offline, looks_like_hub_id, require_hub_models, resize_maps, resolve_device
from .base import DepthPrior, PriorContext, register_prior
from .depthcrafter_loading import DEPTHCRAFTER_UNET, SVD_BASE, _check_local, _depthcrafter_unet_class, _download_hint, _variant_for
from .depthcrafter_windows import noise_indices, overlap_weights, window_schedule
from .spec import option_bool, parse_spec_options

__all__ = ["DepthCrafterPrior"]

log = logging.getLogger(__name__)


_OPTIONS = {
    "svd": "Stable Video Diffusion folder or Hub id (vae, image_encoder, feature_extractor, scheduler)",
    "steps": "denoising steps (default 5)",
    "guidance": "guidance scale (default 1.0 = no classifier-free guidance)",
    "window": "frames per window (default 110)",
    "overlap": "overlapping frames between windows (default 25)",
    "noise_aug": "noise augmentation of the conditioning frames (default 0.02)",
    "decode_chunk": "frames per VAE decode/encode chunk (default 8)",
    "seed": "random seed (default 42)",
    "max_res": "cap on the long side of the model input (default 1024)",
    "offload": "none, model or sequential (CPU offload on the GPU; default model)",
    "device": "cpu, cuda, cuda:N, mps or auto",
    "fp16": "half precision on the GPU (1/0)",
}


class DepthCrafterPrior(DepthPrior):
    """Windowed video-diffusion depth (see the module docstring); yields relative disparity."""

    name = "depthcrafter"

    def __init__(
        self,
        unet: str = DEPTHCRAFTER_UNET,
        svd: str = SVD_BASE,
        *,
        steps: int = 5,
        guidance: float = 1.0,
        window: int = 110,
        overlap: int = 25,
        noise_aug: float = 0.02,
        decode_chunk: int = 8,
        seed: int = 42,
        max_res: int = 1024,
        offload: str = "model",
        device: str | None = None,
        fp16: bool | None = None,
        record_noise: bool = False,
    ) -> None:
        window_schedule(window + 1, window, overlap)  # validates window/overlap
        if steps < 1 or decode_chunk < 1 or max_res < 64 or not 1.0 <= guidance < math.inf \
                or not 0.0 <= noise_aug < math.inf:
            raise InputError(
                f"depthcrafter: need steps >= 1, decode_chunk >= 1, max_res >= 64, finite guidance >= 1 and "
                f"finite noise_aug >= 0 (got {steps}, {decode_chunk}, {max_res}, {guidance}, {noise_aug})"
            )
        if offload not in ("none", "model", "sequential"):
            raise InputError(f"depthcrafter: offload must be none, model or sequential, got '{offload}'")
        self.unet_source, self.svd_source = str(unet), str(svd)
        self.steps, self.guidance = int(steps), float(guidance)
        self.window, self.overlap = int(window), int(overlap)
        self.noise_aug, self.decode_chunk, self.seed = float(noise_aug), int(decode_chunk), int(seed)
        self.max_res, self.offload = int(max_res), offload
        self.device_request, self.fp16_request = device, fp16
        #: when True, ``noise_log`` keeps ``(start, stop, unit_noise)`` of every window (tests, debugging)
        self.record_noise = record_noise
        self.noise_log: list[tuple[int, int, object]] = []
        self._device = None
        self._dtype = None
        self._on_device = None
        self._offload_mode = "none"
        self._load()

    def _load(self) -> None:
        offline = hub_offline()

        def locate(src: str, what: str, needed: list[str]) -> tuple[str, dict, Path | None]:
            path = Path(src).expanduser()
            if path.exists() or not looks_like_hub_id(src):
                _check_local(path, what, needed)
                return str(path), {"local_files_only": True}, path
            return src, ({"local_files_only": True} if offline else {}), None

        unet_t, unet_kw, unet_dir = locate(self.unet_source, "DepthCrafter UNet", ["config.json"])
        svd_t, svd_kw, svd_dir = locate(
            self.svd_source, "Stable Video Diffusion",
            ["vae/config.json", "image_encoder/config.json", "feature_extractor", "scheduler"],
        )
        hub = [(t, f) for t, d, f in ((unet_t, unet_dir, "config.json"), (svd_t, svd_dir, "vae/config.json"))
               if d is None]  # before any download: fail at once when the Hub cannot be used
        if hub:
            require_hub_models(hub, "--prior depthcrafter", _download_hint())
        torch = require("torch", "depthcrafter", "--prior depthcrafter")
        diffusers = require("diffusers", "depthcrafter", "--prior depthcrafter")
        transformers = require("transformers", "depthcrafter", "--prior depthcrafter")
        unet_cls = _depthcrafter_unet_class()
        gpu_likely = torch.cuda.is_available() and (self.device_request or "auto") != "cpu"
        load_dtype = torch.float16 if (self.fp16_request if self.fp16_request is not None else gpu_likely) else torch.float32

        def load(cls, target, kw, local: Path | None, subfolder: str | None, **extra):
            variants = [_variant_for(local, subfolder)] if local is not None else [None, "fp16"]
            last = None
            for variant in variants:
                try:
                    args = dict(kw, **extra)
                    if subfolder:
                        args["subfolder"] = subfolder
                    if variant:
                        args["variant"] = variant
                    return cls.from_pretrained(target, **args)
                except (OSError, ValueError, KeyError, RuntimeError, EnvironmentError) as exc:
                    last = exc
            where = f"{target}" + (f"/{subfolder}" if subfolder else "")
            why = "" if local is not None else (" (HF_HUB_OFFLINE is set and it is not in the cache)" if offline
                                                 else " (not in the Hugging Face cache and the Hub could not be reached)")
            raise ModelError(f"{where}: cannot load {cls.__name__}{why} ({type(last).__name__}: {last}); "
                             f"{_download_hint()}") from last

        self.unet = load(unet_cls, unet_t, unet_kw, unet_dir, None, torch_dtype=load_dtype)
        self.vae = load(diffusers.AutoencoderKLTemporalDecoder, svd_t, svd_kw, svd_dir, "vae", torch_dtype=load_dtype)
        self.image_encoder = load(transformers.CLIPVisionModelWithProjection, svd_t, svd_kw, svd_dir, "image_encoder",
                                  dtype=load_dtype)
        self.feature_extractor = load(transformers.CLIPImageProcessor, svd_t, svd_kw, svd_dir, "feature_extractor")
        self.scheduler = load(diffusers.EulerDiscreteScheduler, svd_t, svd_kw, svd_dir, "scheduler")
        for m in (self.unet, self.vae, self.image_encoder):
            m.eval().requires_grad_(False)
        add_dim = self.unet.config.addition_time_embed_dim * 3
        if self.unet.add_embedding.linear_1.in_features != add_dim:
            raise ModelError(f"{self.unet_source}: the UNet expects {self.unet.add_embedding.linear_1.in_features} "
                             f"added-time features, not 3 x {self.unet.config.addition_time_embed_dim}; not an SVD UNet")
        if self.unet.config.in_channels != 2 * self.vae.config.latent_channels:
            raise ModelError(f"{self.unet_source}: UNet in_channels {self.unet.config.in_channels} != 2 x VAE latent "
                             f"channels {self.vae.config.latent_channels}")
        self.vae_scale = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.multiple = self.vae_scale * 2 ** (len(self.unet.config.block_out_channels) - 1)
        log.info("depthcrafter: UNet %s, SVD %s, input multiple %d", self.unet_source, self.svd_source, self.multiple)

    # ------------------------------------------------------------------ devices
    def _setup(self, context: PriorContext) -> None:
        import torch

        device = resolve_device(self.device_request or context.device, "depthcrafter", "--prior depthcrafter")
        fp16 = option_bool(self.fp16_request, "fp16", default=device.startswith("cuda"))
        if device == "cpu" and fp16:
            log.warning("depthcrafter: fp16 is not used on the CPU; running in float32")
            fp16 = False
        dtype = torch.float16 if fp16 else torch.float32
        offload = self.offload if torch.device(device).type == "cuda" else "none"
        key = (device, dtype, offload)
        if getattr(self, "_setup_key", None) == key:
            return
        if getattr(self, "_setup_key", None) is not None and self._offload_mode == "sequential":
            raise ModelError("depthcrafter: a prior set up with offload=sequential cannot change device or precision")
        self._setup_key = key
        self._dtype = dtype
        self._device = torch.device(device)
        self._offload_mode = offload
        # The SVD VAE asks to run in float32 (force_upcast): the recipe encodes in float32 and
        # decodes in the working precision; with sequential offload it simply stays float32.
        upcast = dtype == torch.float16 and bool(getattr(self.vae.config, "force_upcast", False))
        self._vae_encode_dtype = torch.float32 if upcast else dtype
        self._vae_decode_dtype = torch.float32 if upcast and offload == "sequential" else dtype
        modules = (self.unet, self.vae, self.image_encoder)
        for m in modules:
            want = self._vae_decode_dtype if m is self.vae else dtype
            if m.dtype != want:
                m.to(dtype=want)
        if offload == "none":
            for m in modules:
                m.to(self._device)
        elif offload == "sequential":
            accelerate = require("accelerate", "depthcrafter", "--prior depthcrafter offload=sequential")
            for m in modules:
                accelerate.cpu_offload(m, execution_device=self._device)
        # "model": components move to the GPU one at a time in _use()
        self._on_device = None

    def _use(self, module):
        """Model CPU offload: keep only ``module`` on the GPU (no-op otherwise)."""
        if self._offload_mode != "model" or self._on_device is module:
            return module
        import torch

        if self._on_device is not None:
            self._on_device.to("cpu")
            if self._device.type == "cuda":
                torch.cuda.empty_cache()
        module.to(self._device)
        self._on_device = module
        return module

    # ------------------------------------------------------------------ model steps
    def _model_size(self, height: int, width: int) -> tuple[int, int]:
        m = self.multiple
        scale = min(1.0, self.max_res / max(height, width))
        return max(m, int(round(height * scale / m)) * m), max(m, int(round(width * scale / m)) * m)

    def _encode(self, images: list[np.ndarray], generator) -> tuple[object, object]:
        """uint8 frames -> (CLIP embeddings (n, D), VAE latents (n, c, h, w)) as in the recipe."""
        import cv2
        import torch

        try:
            from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import (
                _resize_with_antialiasing,
            )
        except ImportError:  # pragma: no cover - private helper of diffusers
            def _resize_with_antialiasing(x, size):
                return torch.nn.functional.interpolate(x, size=size, mode="bicubic", antialias=True)

        h, w = self._model_size(*images[0].shape[:2])
        arr = np.stack([cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR) if im.shape[:2] != (h, w) else im
                        for im in images])
        video = torch.from_numpy(arr).permute(0, 3, 1, 2).float().div(255.0).mul(2.0).sub(1.0)  # [-1, 1]
        dev, dt = self._device, self._dtype
        s = int(self.image_encoder.config.image_size)
        mean = torch.tensor(self.feature_extractor.image_mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.feature_extractor.image_std, dtype=torch.float32).view(1, 3, 1, 1)
        embeds, latents = [], []
        enc = self._use(self.image_encoder)
        for i in range(0, len(video), self.decode_chunk):
            v = _resize_with_antialiasing(video[i: i + self.decode_chunk].to(dev), (s, s))
            v = ((v + 1.0) / 2.0 - mean.to(dev)) / std.to(dev)
            with torch.inference_mode():
                embeds.append(enc(pixel_values=v.to(dt)).image_embeds.float().cpu())
        noise = torch.randn(video.shape, generator=generator, dtype=torch.float32)
        video = video + self.noise_aug * noise
        vae = self._use(self.vae)
        vae_dtype, work_dtype = self._vae_encode_dtype, self._vae_decode_dtype
        if vae_dtype != work_dtype:
            vae.to(dtype=vae_dtype)
        with torch.inference_mode():
            for i in range(0, len(video), self.decode_chunk):
                chunk = video[i: i + self.decode_chunk].to(dev, vae_dtype)
                latents.append(vae.encode(chunk).latent_dist.mode().float().cpu())
        if vae_dtype != work_dtype:
            vae.to(dtype=work_dtype)
        return torch.cat(embeds), torch.cat(latents)

    def _denoise(self, embeds, cond_latents, noise, prev_tail):
        """One window: unit ``noise`` (1, n, c, h, w) -> final latents (1, n, c, h, w) (blend included)."""
        import torch

        dev, dt = self._device, self._dtype
        sched = self.scheduler
        sched.set_timesteps(self.steps, device=dev)
        timesteps = sched.timesteps
        sigma0 = float(sched.sigmas[0])
        init_sigma = float(sched.init_noise_sigma)
        o = self.overlap
        latents = (noise * init_sigma).to(dev, torch.float32)
        cond = cond_latents[None].to(dev, dt)
        emb = embeds[None].to(dev, dt)
        time_ids = torch.tensor([[7.0, 127.0, self.noise_aug]], device=dev, dtype=dt)
        unet = self._use(self.unet)
        with torch.inference_mode():
            for i, t in enumerate(timesteps):
                if prev_tail is not None and i == 0:
                    k = prev_tail.shape[1]
                    latents[:, :k] = prev_tail.to(dev) + latents[:, :k] / init_sigma * sigma0
                x = sched.scale_model_input(latents, t).to(dt)
                pred = unet(torch.cat([x, cond], dim=2), t, encoder_hidden_states=emb, added_time_ids=time_ids)[0]
                if self.guidance > 1.0:
                    pred_u = unet(torch.cat([x, torch.zeros_like(cond)], dim=2), t,
                                  encoder_hidden_states=torch.zeros_like(emb), added_time_ids=time_ids)[0]
                    pred = pred_u + self.guidance * (pred - pred_u)
                latents = sched.step(pred.float(), t, latents).prev_sample
            if prev_tail is not None:
                k = prev_tail.shape[1]
                w = torch.from_numpy(overlap_weights(o)[:k]).view(1, k, 1, 1, 1).to(dev)
                latents[:, :k] = latents[:, :k] * w + prev_tail.to(dev) * (1 - w)
        return latents.float().cpu()

    def _decode(self, latents) -> np.ndarray:
        """Final latents (n, c, h, w) -> disparity (n, H, W) in [0, 1] (one temporal-decoder chunk)."""
        import torch

        vae = self._use(self.vae)
        z = (latents / self.vae.config.scaling_factor).to(self._device, self._vae_decode_dtype)
        with torch.inference_mode():
            x = vae.decode(z, num_frames=z.shape[0]).sample.float()
        return ((x + 1.0) / 2.0).clamp(0.0, 1.0).mean(dim=1).cpu().numpy()

    # ------------------------------------------------------------------ streaming
    # Long on purpose: one streaming loop over overlapping windows (buffer, run, blend, release in order).
    def process(self, frames: Iterable[Frame], context: PriorContext) -> Iterator[PriorOutput]:
        """Yield one disparity map per frame, in order (see the module docstring for the buffering)."""
        import torch

        self._setup(context)
        self.noise_log = []
        gen = torch.Generator().manual_seed(self.seed)
        W, O = self.window, self.overlap
        images: list[np.ndarray] = []  # raw frames of the current window (global index start ...)
        embeds = latents = None  # conditioning of the frames in `images`
        sizes: list[tuple[int, int]] = []
        base_noise = None
        window_index = 0
        start = 0
        prev_tail = None  # final latents of the last O frames of the previous window
        pending: list = []  # final latents waiting for decoding, in order
        pending_sizes: list[tuple[int, int]] = []
        next_index = 0

        def emit(final: bool) -> Iterator[PriorOutput]:
            nonlocal pending, pending_sizes, next_index
            while len(pending) >= self.decode_chunk or (final and pending):
                k = min(self.decode_chunk, len(pending))
                disp = self._decode(torch.stack(pending[:k]))
                for j in range(k):
                    h, w = pending_sizes[j]
                    values = resize_maps(disp[j: j + 1], h, w)[0]
                    values[~np.isfinite(values)] = 0.0
                    yield PriorOutput(index=next_index, values=values, kind="disparity", metric=False)
                    next_index += 1
                pending, pending_sizes = pending[k:], pending_sizes[k:]

        def run_window(last: bool) -> Iterator[PriorOutput]:
            nonlocal embeds, latents, base_noise, window_index, prev_tail, images, sizes, start
            n = len(images)
            new = n - (0 if embeds is None else embeds.shape[0])
            e, z = self._encode(images[n - new:], gen)
            embeds = e if embeds is None else torch.cat([embeds, e])
            latents = z if latents is None else torch.cat([latents, z])
            if base_noise is None:
                base_noise = torch.randn((1, W, *latents.shape[1:]), generator=gen, dtype=torch.float32)
            idx = noise_indices(window_index, W, O)[:n]
            noise = base_noise[:, torch.from_numpy(idx)]
            if self.record_noise:
                self.noise_log.append((start, start + n, noise.clone()))
            final = self._denoise(embeds, latents, noise, prev_tail)[0]  # (n, c, h, w)
            keep = 0 if last else min(O, n)
            for j in range(n - keep):
                pending.append(final[j])
                pending_sizes.append(sizes[j])
            log.debug("depthcrafter: window %d frames %d-%d done", window_index, start, start + n)
            window_index += 1
            if keep:
                prev_tail = final[n - keep:][None].clone()
                images, sizes = images[n - keep:], sizes[n - keep:]
                embeds, latents = embeds[n - keep:], latents[n - keep:]
                start += n - keep
            else:
                prev_tail = None
                images, sizes, embeds, latents = [], [], None, None
                start += n
            yield from emit(final=last)

        for frame in frames:
            img = np.asarray(frame.image)
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise InputError(f"--prior depthcrafter: frame {frame.index} must be uint8 RGB (H, W, 3), "
                                 f"got {img.dtype} {img.shape}")
            if sizes and img.shape[:2] != sizes[0]:
                raise InputError(f"--prior depthcrafter: frame {frame.index} is {img.shape[1]}x{img.shape[0]}, "
                                 f"the clip is {sizes[0][1]}x{sizes[0][0]} (all frames must share one size)")
            images.append(img)
            sizes.append(img.shape[:2])
            if len(images) == W:
                yield from run_window(last=False)
        # Stream ended: a partial window is the last one; a buffer of only overlap frames is final already.
        if prev_tail is not None and len(images) == prev_tail.shape[1]:
            pending.extend(prev_tail[0])
            pending_sizes.extend(sizes)
            yield from emit(final=True)
        elif images:
            yield from run_window(last=True)
        else:
            yield from emit(final=True)
        if self._offload_mode == "model" and self._on_device is not None:
            self._on_device.to("cpu")
            self._on_device = None

    def describe(self) -> dict:
        return {
            "name": self.name,
            "unet": self.unet_source,
            "svd": self.svd_source,
            "kind": "disparity",
            "metric": False,
            "steps": self.steps,
            "guidance": self.guidance,
            "window": self.window,
            "overlap": self.overlap,
            "noise_aug": self.noise_aug,
            "seed": self.seed,
            "offload": self.offload,
            "device": None if self._device is None else str(self._device),
            "dtype": None if self._dtype is None else str(self._dtype).replace("torch.", ""),
            "note": "values: DepthCrafter's clip-normalised disparity in [0, 1] (final per-clip min-max skipped)",
        }


@register_prior("depthcrafter")
def _factory(arg: str | None) -> DepthCrafterPrior:
    target, opts = parse_spec_options(arg or "", _OPTIONS, "depthcrafter")
    kwargs: dict = {}
    try:
        for key in ("steps", "window", "overlap", "decode_chunk", "seed", "max_res"):
            if key in opts:
                kwargs[key] = int(opts[key])
        for key in ("guidance", "noise_aug"):
            if key in opts:
                kwargs[key] = float(opts[key])
    except ValueError as exc:
        raise InputError(f"--prior depthcrafter:{arg}: bad number ({exc})") from exc
    if "offload" in opts:
        kwargs["offload"] = opts["offload"].lower()
    if "fp16" in opts:
        kwargs["fp16"] = option_bool(opts["fp16"], "fp16", True)
    return DepthCrafterPrior(
        target or DEPTHCRAFTER_UNET,
        opts.get("svd") or SVD_BASE,
        device=opts.get("device") or None,
        **kwargs,
    )
