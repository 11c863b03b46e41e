"""Loading the DepthCrafter weights from local folders or the Hugging Face cache (no
download): the UNet class, variant detection and the checks with their hints.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError, require

__all__ = ["DEPTHCRAFTER_UNET", "SVD_BASE"]


DEPTHCRAFTER_UNET = "tencent/DepthCrafter"


SVD_BASE = "stabilityai/stable-video-diffusion-img2vid-xt"


_UNET_CLASS = None


def _depthcrafter_unet_class():
    """``UNetSpatioTemporalConditionModel`` whose cross-attention gets one CLIP token per frame.

    Stock SVD repeats one image embedding over all frames; DepthCrafter passes
    ``encoder_hidden_states`` of shape ``(batch, frames, dim)`` and feeds frame ``t`` its own
    embedding. Everything else is the stock forward of diffusers.
    """
    global _UNET_CLASS
    if _UNET_CLASS is not None:
        return _UNET_CLASS
    torch = require("torch", "depthcrafter", "--prior depthcrafter")
    diffusers = require("diffusers", "depthcrafter", "--prior depthcrafter")

    class DepthCrafterUNet(diffusers.UNetSpatioTemporalConditionModel):
        def forward(self, sample, timestep, encoder_hidden_states, added_time_ids, return_dict: bool = False):
            up_factor = 2 ** self.num_upsamplers
            forward_upsample_size = any(s % up_factor != 0 for s in sample.shape[-2:])
            upsample_size = None
            timesteps = timestep
            if not torch.is_tensor(timesteps):
                dtype = torch.float32 if sample.device.type == "mps" else torch.float64
                timesteps = torch.tensor([timesteps], dtype=dtype, device=sample.device)
            elif timesteps.ndim == 0:
                timesteps = timesteps[None].to(sample.device)
            batch_size, num_frames = sample.shape[:2]
            timesteps = timesteps.expand(batch_size)
            t_emb = self.time_proj(timesteps).to(dtype=self.conv_in.weight.dtype)
            emb = self.time_embedding(t_emb)
            time_embeds = self.add_time_proj(added_time_ids.flatten()).reshape((batch_size, -1)).to(emb.dtype)
            emb = emb + self.add_embedding(time_embeds)

            sample = sample.flatten(0, 1)
            emb = emb.repeat_interleave(num_frames, dim=0)
            # (batch, frames, dim) -> (batch * frames, 1, dim): one conditioning token per frame
            encoder_hidden_states = encoder_hidden_states.flatten(0, 1).unsqueeze(1)
            sample = self.conv_in(sample.to(dtype=self.conv_in.weight.dtype))
            image_only_indicator = torch.zeros(batch_size, num_frames, dtype=sample.dtype, device=sample.device)

            down_res = (sample,)
            for block in self.down_blocks:
                kwargs = dict(hidden_states=sample, temb=emb, image_only_indicator=image_only_indicator)
                if getattr(block, "has_cross_attention", False):
                    kwargs["encoder_hidden_states"] = encoder_hidden_states
                sample, res = block(**kwargs)
                down_res += res
            sample = self.mid_block(hidden_states=sample, temb=emb, encoder_hidden_states=encoder_hidden_states,
                                    image_only_indicator=image_only_indicator)
            for i, block in enumerate(self.up_blocks):
                res = down_res[-len(block.resnets):]
                down_res = down_res[: -len(block.resnets)]
                if i < len(self.up_blocks) - 1 and forward_upsample_size:
                    upsample_size = down_res[-1].shape[2:]
                kwargs = dict(hidden_states=sample, temb=emb, res_hidden_states_tuple=res,
                              upsample_size=upsample_size, image_only_indicator=image_only_indicator)
                if getattr(block, "has_cross_attention", False):
                    kwargs["encoder_hidden_states"] = encoder_hidden_states
                sample = block(**kwargs)
            sample = self.conv_out(self.conv_act(self.conv_norm_out(sample)))
            sample = sample.reshape(batch_size, num_frames, *sample.shape[1:])
            return (sample,)

    _UNET_CLASS = DepthCrafterUNet
    return DepthCrafterUNet


def _download_hint() -> str:
    return (
        "download the weights on a machine with internet: "
        f"`hf download {DEPTHCRAFTER_UNET} --local-dir DEPTHCRAFTER` and "
        f"`hf download {SVD_BASE} --local-dir SVD` (accept its licence on the Hub first), copy both folders "
        "here, then use --prior 'depthcrafter:DEPTHCRAFTER?svd=SVD'"
    )


def _variant_for(folder: Path, subfolder: str | None) -> str | None:
    d = folder / subfolder if subfolder else folder
    names = {p.name for p in d.iterdir()} if d.is_dir() else set()
    for stem in ("diffusion_pytorch_model", "model"):
        if f"{stem}.safetensors" in names or f"{stem}.bin" in names:
            return None
    if any(".fp16." in n for n in names):
        return "fp16"
    return None


def _check_local(folder: Path, what: str, needed: list[str]) -> None:
    if not folder.is_dir():
        raise ModelError(f"{folder}: {what} folder for --prior depthcrafter does not exist; {_download_hint()}")
    missing = [n for n in needed if not (folder / n).exists()]
    if missing:
        raise ModelError(f"{folder}: not a {what} folder (missing {', '.join(missing)}); {_download_hint()}")
