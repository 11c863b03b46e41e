"""The Video Depth Anything network (Chen et al., 2025) in plain torch, with the parameter
names and shapes of the published checkpoints (``video_depth_anything_vits.pth`` ...), so that
``load_state_dict(torch.load(...), strict=True)`` loads them.

Layout (``VideoDepthAnything``):

* ``pretrained``: a DINOv2 ViT with patch 14 and a 37 x 37 (518 px) learned position grid
  (``cls_token``, ``pos_embed``, ``mask_token``, ``patch_embed.proj``, ``blocks.N.{norm1, attn.qkv,
  attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2, ls2.gamma}``, ``norm``); features are taken
  after blocks ``(2, 5, 8, 11)`` (ViT-S/B) or ``(4, 11, 17, 23)`` (ViT-L), layer-normed, class
  token dropped;
* ``head``: a DPT head (``projects``, ``resize_layers``, ``scratch.layerK_rn``,
  ``scratch.refinenetK``, ``scratch.output_conv1/2``) with four temporal motion modules
  (``motion_modules.0..3``: group norm, ``proj_in``, one transformer block of two temporal
  self-attentions with sinusoidal frame embeddings (the ``pe`` buffer, 32 frames) and a GEGLU
  feed-forward, ``proj_out``) on the two coarsest reassembled features and after
  ``refinenet4`` / ``refinenet3``. Attention runs along the frame axis, per pixel.

Input ``(B, T, 3, H, W)`` normalised RGB with ``H, W`` multiples of 14 and ``T <= 32``;
output ``(B, T, H, W)``: relative disparity (or metric depth for the metric checkpoints), >= 0.

This module imports torch at import time: import it only from code that needs the network.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["VideoDepthAnything", "ENCODERS", "encoder_from_state_dict"]

#: published configurations: embed dim, depth, heads, DPT features, DPT out channels, feature layers
ENCODERS: dict[str, dict] = {
    "vits": dict(embed_dim=384, depth=12, heads=6, features=64, out_channels=(48, 96, 192, 384),
                 layers=(2, 5, 8, 11)),
    "vitb": dict(embed_dim=768, depth=12, heads=12, features=128, out_channels=(96, 192, 384, 768),
                 layers=(2, 5, 8, 11)),
    "vitl": dict(embed_dim=1024, depth=24, heads=16, features=256, out_channels=(256, 512, 1024, 1024),
                 layers=(4, 11, 17, 23)),
}

PATCH = 14
_GRID = 37  # 518 / 14: the position grid the checkpoints were trained with


def encoder_from_state_dict(state: dict) -> str | None:
    """``vits`` / ``vitb`` / ``vitl`` from the width of ``pretrained.cls_token`` (None if unknown)."""
    tok = state.get("pretrained.cls_token")
    if tok is None or tok.ndim != 3:
        return None
    width = int(tok.shape[-1])
    for name, cfg in ENCODERS.items():
        if cfg["embed_dim"] == width:
            return name
    return None


# ---------------------------------------------------------------------------- DINOv2 encoder
class _PatchEmbed(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=PATCH, stride=PATCH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, N, C)


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, heads)
        self.ls1 = _LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, 4 * dim)
        self.ls2 = _LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class _DinoV2(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int) -> None:
        super().__init__()
        self.patch_embed = _PatchEmbed(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, _GRID * _GRID + 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.blocks = nn.ModuleList([_Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def _pos(self, rows: int, cols: int, dtype: torch.dtype) -> torch.Tensor:
        """The position embedding for a ``rows x cols`` patch grid: the 37 x 37 grid resampled
        bicubically with DINOv2's ``+0.1`` scale offset (as the checkpoints were trained)."""
        if rows == cols == _GRID:
            return self.pos_embed.to(dtype)
        pe = self.pos_embed.float()
        grid = pe[:, 1:].reshape(1, _GRID, _GRID, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, scale_factor=((rows + 0.1) / _GRID, (cols + 0.1) / _GRID), mode="bicubic",
                             antialias=False)
        grid = grid.permute(0, 2, 3, 1).reshape(1, rows * cols, -1)
        return torch.cat([pe[:, :1], grid], dim=1).to(dtype)

    def features(self, x: torch.Tensor, layers: tuple[int, ...]) -> list[torch.Tensor]:
        """Layer-normed patch tokens ``(B, N, C)`` after each block in ``layers``."""
        rows, cols = x.shape[-2] // PATCH, x.shape[-1] // PATCH
        t = self.patch_embed(x)
        t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1).to(t.dtype), t], dim=1)
        t = t + self._pos(rows, cols, t.dtype)
        out = []
        for i, blk in enumerate(self.blocks):
            t = blk(t)
            if i in layers:
                out.append(self.norm(t)[:, 1:])
        return out


# ---------------------------------------------------------------------------- temporal modules
class _FramePositions(nn.Module):
    """Sinusoidal frame embedding; ``pe`` (1, max_len, dim) is a buffer saved in the checkpoint."""

    def __init__(self, dim: int, max_len: int = 32) -> None:
        super().__init__()
        pos = torch.arange(max_len).unsqueeze(1)
        div = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
        pe = torch.zeros(1, max_len, dim)
        pe[0, :, 0::2] = torch.sin(pos * div)
        pe[0, :, 1::2] = torch.cos(pos * div)
        self.register_buffer("pe", pe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.pe.shape[1]:
            raise ValueError(f"Video Depth Anything takes at most {self.pe.shape[1]} frames per window, got {x.shape[1]}")
        return x + self.pe[:, : x.shape[1]].to(x.dtype)


class _TemporalAttention(nn.Module):
    def __init__(self, dim: int, heads: int, max_len: int) -> None:
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(0.0)])
        self.pos_encoder = _FramePositions(dim, max_len)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (S, T, C) sequences along the frame axis."""
        x = self.pos_encoder(x)
        s, t, c = x.shape

        def heads(y: torch.Tensor) -> torch.Tensor:
            return y.reshape(s, t, self.heads, c // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(self.to_q(x)), heads(self.to_k(x)), heads(self.to_v(x)))
        return self.to_out[0](out.transpose(1, 2).reshape(s, t, c))


class _GEGLU(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, hidden * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, gate = self.proj(x).chunk(2, dim=-1)
        return a * F.gelu(gate)


class _FeedForward(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.ModuleList([_GEGLU(dim, 4 * dim), nn.Dropout(0.0), nn.Linear(4 * dim, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class _TemporalBlock(nn.Module):
    def __init__(self, dim: int, heads: int, max_len: int) -> None:
        super().__init__()
        self.attention_blocks = nn.ModuleList([_TemporalAttention(dim, heads, max_len) for _ in range(2)])
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(2)])
        self.ff = _FeedForward(dim)
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attn, norm in zip(self.attention_blocks, self.norms):
            x = attn(norm(x)) + x
        return self.ff(self.ff_norm(x)) + x


class _TemporalTransformer(nn.Module):
    def __init__(self, channels: int, heads: int = 8, max_len: int = 32) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(32, channels, eps=1e-6, affine=True)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList([_TemporalBlock(channels, heads, max_len)])
        self.proj_out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """``x``: (B*T, C, h, w) with the frames of each clip consecutive; same shape out."""
        bt, c, h, w = x.shape
        b = bt // frames
        y = self.norm(x).permute(0, 2, 3, 1).reshape(b, frames, h * w, c)
        y = y.transpose(1, 2).reshape(b * h * w, frames, c)  # one sequence per pixel, along time
        y = self.proj_in(y)
        for blk in self.transformer_blocks:
            y = blk(y)
        y = self.proj_out(y)
        y = y.reshape(b, h * w, frames, c).transpose(1, 2).reshape(bt, h, w, c).permute(0, 3, 1, 2)
        return y + x


class _TemporalModule(nn.Module):
    def __init__(self, channels: int, max_len: int = 32) -> None:
        super().__init__()
        self.temporal_transformer = _TemporalTransformer(channels, 8, max_len)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        return self.temporal_transformer(x, frames)


# ---------------------------------------------------------------------------- DPT head
class _ResidualConvUnit(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(F.relu(x)))) + x


class _FusionBlock(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1)
        self.resConfUnit1 = _ResidualConvUnit(features)
        self.resConfUnit2 = _ResidualConvUnit(features)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None, size=None) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class _DPTHeadTemporal(nn.Module):
    def __init__(self, in_dim: int, features: int, out_channels: tuple[int, ...], max_len: int = 32) -> None:
        super().__init__()
        c1, c2, c3, c4 = out_channels
        self.projects = nn.ModuleList([nn.Conv2d(in_dim, c, 1) for c in out_channels])
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(c1, c1, kernel_size=4, stride=4),
            nn.ConvTranspose2d(c2, c2, kernel_size=2, stride=2),
            nn.Identity(),
            nn.Conv2d(c4, c4, kernel_size=3, stride=2, padding=1),
        ])
        scratch = nn.Module()
        for k, c in enumerate(out_channels, start=1):
            setattr(scratch, f"layer{k}_rn", nn.Conv2d(c, features, 3, padding=1, bias=False))
        for k in range(1, 5):
            setattr(scratch, f"refinenet{k}", _FusionBlock(features))
        scratch.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
        scratch.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, 32, 3, padding=1), nn.ReLU(True), nn.Conv2d(32, 1, 1), nn.ReLU(True), nn.Identity(),
        )
        self.scratch = scratch
        self.motion_modules = nn.ModuleList([_TemporalModule(c, max_len) for c in (c3, c4, features, features)])

    def forward(self, feats: list[torch.Tensor], rows: int, cols: int, frames: int,
                micro_batch: int = 4) -> torch.Tensor:
        """``feats``: four (B*T, N, C) token maps -> (B*T, 1, 14*rows, 14*cols)."""
        layers = []
        for i, x in enumerate(feats):
            x = x.permute(0, 2, 1).reshape(x.shape[0], x.shape[-1], rows, cols)
            layers.append(self.resize_layers[i](self.projects[i](x)))
        l1, l2, l3, l4 = layers
        mm = self.motion_modules
        l3, l4 = mm[0](l3, frames), mm[1](l4, frames)
        s = self.scratch
        r1, r2, r3, r4 = s.layer1_rn(l1), s.layer2_rn(l2), s.layer3_rn(l3), s.layer4_rn(l4)
        p4 = mm[2](s.refinenet4(r4, size=r3.shape[2:]), frames)
        p3 = mm[3](s.refinenet3(p4, r3, size=r2.shape[2:]), frames)
        out = []
        for i in range(0, p3.shape[0], micro_batch):  # the full-resolution layers, a few frames at a time
            p2 = s.refinenet2(p3[i:i + micro_batch], r2[i:i + micro_batch], size=r1.shape[2:])
            p1 = s.refinenet1(p2, r1[i:i + micro_batch])
            o = F.interpolate(s.output_conv1(p1), (rows * PATCH, cols * PATCH), mode="bilinear", align_corners=True)
            with torch.autocast(device_type=o.device.type, enabled=False):
                o = s.output_conv2(o.float())  # the last convolutions in float32, as published
            out.append(o)
        return torch.cat(out, dim=0)


class VideoDepthAnything(nn.Module):
    """The whole network (see the module docstring). ``encoder``: ``vits``, ``vitb`` or ``vitl``."""

    def __init__(self, encoder: str = "vits", num_frames: int = 32) -> None:
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"unknown Video Depth Anything encoder {encoder!r}: one of {', '.join(ENCODERS)}")
        cfg = ENCODERS[encoder]
        self.encoder = encoder
        self.layers = tuple(cfg["layers"])
        self.pretrained = _DinoV2(cfg["embed_dim"], cfg["depth"], cfg["heads"])
        self.head = _DPTHeadTemporal(cfg["embed_dim"], cfg["features"], tuple(cfg["out_channels"]), num_frames)

    @property
    def max_frames(self) -> int:
        return int(self.head.motion_modules[0].temporal_transformer.transformer_blocks[0]
                   .attention_blocks[0].pos_encoder.pe.shape[1])

    def forward(self, x: torch.Tensor, micro_batch: int = 4) -> torch.Tensor:
        b, t, _, h, w = x.shape
        if h % PATCH or w % PATCH:
            raise ValueError(f"Video Depth Anything input must be a multiple of {PATCH} pixels, got {w}x{h}")
        feats = self.pretrained.features(x.flatten(0, 1), self.layers)
        depth = self.head(feats, h // PATCH, w // PATCH, t, micro_batch)
        depth = F.relu(F.interpolate(depth, size=(h, w), mode="bilinear", align_corners=True))
        return depth[:, 0].unflatten(0, (b, t))
