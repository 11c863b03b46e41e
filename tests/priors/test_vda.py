"""Video Depth Anything: the published checkpoint layout loads with strict=True, the window
schedule feeds every frame once with the right key frames, and a clip runs through the pipeline.

The network is randomly initialised here (no weights can be downloaded); it has the exact
layout of ``video_depth_anything_vits.pth`` (ViT-S encoder, DPT head with motion modules).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from steadydepth.cli import main  # noqa: E402
from steadydepth.errors import InputError, ModelError  # noqa: E402
from steadydepth.priors.base import PriorContext, create_prior  # noqa: E402
from steadydepth.priors.vda import VDAPrior, model_input_size, window_plan  # noqa: E402
from steadydepth.synthetic import render_clip, save_clip  # noqa: E402
from steadydepth.types import Frame  # noqa: E402

#: a few parameters of the published ViT-S checkpoint, as the reference implementation names and shapes them
_PUBLISHED = {
    "pretrained.cls_token": (1, 1, 384),
    "pretrained.pos_embed": (1, 1370, 384),
    "pretrained.mask_token": (1, 384),
    "pretrained.patch_embed.proj.weight": (384, 3, 14, 14),
    "pretrained.blocks.11.attn.qkv.weight": (1152, 384),
    "pretrained.blocks.11.ls2.gamma": (384,),
    "head.projects.3.weight": (384, 384, 1, 1),
    "head.resize_layers.0.weight": (48, 48, 4, 4),
    "head.resize_layers.3.weight": (384, 384, 3, 3),
    "head.scratch.layer1_rn.weight": (64, 48, 3, 3),
    "head.scratch.refinenet4.resConfUnit2.conv1.weight": (64, 64, 3, 3),
    "head.scratch.output_conv1.weight": (32, 64, 3, 3),
    "head.scratch.output_conv2.2.weight": (1, 32, 1, 1),
    "head.motion_modules.0.temporal_transformer.norm.weight": (192,),
    "head.motion_modules.1.temporal_transformer.proj_in.weight": (384, 384),
    "head.motion_modules.2.temporal_transformer.transformer_blocks.0.attention_blocks.1.to_q.weight": (64, 64),
    "head.motion_modules.3.temporal_transformer.transformer_blocks.0.attention_blocks.0.pos_encoder.pe": (1, 32, 64),
    "head.motion_modules.0.temporal_transformer.transformer_blocks.0.ff.net.0.proj.weight": (1536, 192),
    "head.motion_modules.0.temporal_transformer.transformer_blocks.0.ff.net.2.weight": (192, 768),
    "head.motion_modules.3.temporal_transformer.proj_out.bias": (64,),
}


def test_layout_has_the_published_names_and_shapes():
    from steadydepth.priors._vda_model import VideoDepthAnything

    state = VideoDepthAnything("vits").state_dict()
    for key, shape in _PUBLISHED.items():
        assert tuple(state[key].shape) == shape, key
    assert not any("readout" in k or "stem_transpose" in k or k.startswith("pretrained.head") for k in state)
    assert len(state) == 351  # 12 ViT blocks x 12 + 5; DPT head 62; 4 motion modules x 36


def test_checkpoint_loads_strictly_and_bad_files_fail_clearly(vda_checkpoint, tmp_path):
    prior = create_prior(f"vda:{vda_checkpoint}")  # a folder holding the file
    assert isinstance(prior, VDAPrior) and prior.encoder == "vits" and not prior.metric
    state = torch.load(vda_checkpoint / "video_depth_anything_vits.pth", weights_only=True)
    del state["head.scratch.output_conv2.2.bias"]
    broken = tmp_path / "video_depth_anything_vits.pth"
    torch.save(state, broken)
    with pytest.raises(ModelError, match="does not match the Video Depth Anything vits layout"):
        create_prior(f"vda:{broken}")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="junk.pth: not a readable torch checkpoint"):
        create_prior(f"vda:{tmp_path / 'junk.pth'}")
    with pytest.raises(ModelError, match="no such checkpoint"):
        create_prior(f"vda:{tmp_path / 'missing.pth'}")
    with pytest.raises(InputError, match="context \\+ overlap < window"):
        create_prior(f"vda:{vda_checkpoint}?window=8&overlap=6&context=2")
    with pytest.raises(InputError, match="more than the 32 frames"):
        create_prior(f"vda:{vda_checkpoint}?window=40")


def test_window_plan_and_input_size():
    assert window_plan(32, 8, 2) == ([0, 12], 22)  # the published key frames 0, 12 (+ the last 8) and 22 new
    assert model_input_size(640, 480) == (686, 518)  # short side >= 518, long side rounded to a multiple of 14
    w, h = model_input_size(1920, 800)  # wider than 16:9: the size is reduced
    assert h < 518 and w % 14 == 0 and h % 14 == 0


def test_windows_feed_each_frame_once_with_its_key_frames(vda_checkpoint, monkeypatch):
    """The schedule, checked with the network replaced by 'the frame's own grey level': every output
    frame must come back with its own value (the stitch's fit is then exact: scale 1, shift 0)."""
    prior = create_prior(f"vda:{vda_checkpoint}?window=6&overlap=2&context=1&input_size=14")
    seen = []

    def by_frame(torch_, device, inputs, out_hw):
        seen.append([round(float(x.mean()), 4) for x in inputs])
        prior.windows_run += 1
        return np.stack([np.full(out_hw, float(x.mean()) + 5.0, np.float32) for x in inputs])

    monkeypatch.setattr(prior, "_run_window", by_frame)
    n = 15
    frames = [Frame(i, np.full((20, 30, 3), 10 + 12 * i, np.uint8)) for i in range(n)]
    outs = list(prior.process(iter(frames), PriorContext()))
    assert [o.index for o in outs] == list(range(n))
    ref = [prior._preprocess(f.image, model_input_size(30, 20, 14)).mean() + 5.0 for f in frames]
    np.testing.assert_allclose([o.values.mean() for o in outs], ref, rtol=1e-5)
    level = [round(float(r - 5.0), 4) for r in ref]
    # window 0: frames 0-5; then key frame (position 0 of the previous input) + its last 2 + 3 new
    assert seen[0] == level[0:6]
    assert seen[1] == [level[0]] + level[4:6] + level[6:9]
    assert seen[2] == [level[0]] + level[7:9] + level[9:12]
    assert seen[3] == [level[0]] + level[10:12] + level[12:15]
    assert len(seen) == 4


@pytest.mark.slow
def test_vda_through_the_pipeline_alone_and_fused(vda_checkpoint, tmp_path):
    clip_dir = save_clip(render_clip(num_frames=12, width=240, height=180, seed=0), tmp_path / "clip")
    opts = "?window=8&overlap=3&context=1&input_size=28"  # 2 windows of the 12 frames
    for spec, name in ((f"vda:{vda_checkpoint}{opts}", "alone"), (f"vda:{vda_checkpoint}{opts}+mvs", "fused")):
        out = tmp_path / name
        rc = main(["run", str(clip_dir / "clip.mp4"), "-o", str(out), "--prior", spec, "--quiet", "--no-vis"])
        assert rc == 0, spec
        info = json.loads((out / "run.json").read_text())
        assert info["status"] == "complete" and info["frames"] == 12
        shape = info["prior"] if name == "alone" else info["prior"]["shape"]
        assert shape["name"] == "vda" and shape["windows_run"] == 2 and shape["encoder"] == "vits"
        with np.load(out / "depth.npz") as z:
            depth = z["depth"]
        assert depth.shape == (12, 180, 240)
        assert np.isfinite(depth).all() and (depth > 0).mean() > 0.5


def test_metric_checkpoint_gives_metric_depth(vda_checkpoint, tmp_path):
    """A ``metric_`` file is read as metric depth (metres): windows stitched in inverse depth."""
    import shutil

    metric = tmp_path / "metric_video_depth_anything_vits.pth"
    shutil.copy(vda_checkpoint / "video_depth_anything_vits.pth", metric)
    prior = create_prior(f"vda:{metric}?window=6&overlap=2&context=1&input_size=14")
    assert prior.metric and prior.describe()["kind"] == "depth"
    rng = np.random.default_rng(0)
    frames = [Frame(i, rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)) for i in range(9)]
    outs = list(prior.process(iter(frames), PriorContext()))
    assert len(outs) == 9 and prior.windows_run == 2
    assert all(o.kind == "depth" and o.metric and o.values.shape == (20, 30) for o in outs)
    values = np.stack([o.values for o in outs])
    assert np.isfinite(values).all() and (values > 0).mean() > 0.9
    # the same network output read as relative is disparity; the first window fixes the gauge in both
    # readings, so its frames keep the network's numbers (metres there, disparity here)
    rel = create_prior(f"vda:{metric}?window=6&overlap=2&context=1&input_size=14&metric=0")
    assert not rel.metric
    first = next(iter(rel.process(iter(frames), PriorContext())))
    assert first.kind == "disparity"
    np.testing.assert_allclose(values[0], first.values, rtol=1e-4)
