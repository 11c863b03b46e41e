"""Learned priors (hf, onnx, depthcrafter) with TINY randomly initialised models built here.

No weights are downloaded: every model is built from a small config, saved to a
temporary folder and loaded back through the prior's real loading path.
"""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from steadydepth.errors import InputError, ModelError
from steadydepth.priors import PriorContext, available_priors, create_prior
from steadydepth.types import Frame

torch = pytest.importorskip("torch")

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def _frames(n: int, h: int, w: int, seed: int = 0) -> list[Frame]:
    rng = np.random.default_rng(seed)
    return [Frame(index=10 + 2 * i, image=rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for i in range(n)]


def test_registry_and_lazy_imports():
    names = available_priors()
    assert {"hf", "onnx", "depthcrafter"} <= set(names)
    code = (
        "import sys, steadydepth.priors.hf, steadydepth.priors.onnx, steadydepth.priors.depthcrafter;"
        "print(sorted(m for m in ('transformers', 'diffusers', 'onnxruntime') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ----------------------------------------------------------------------------------- hf
def test_hf_tiny_depth_anything_relative(tiny_da):
    folder, model, proc = tiny_da(metric=False)
    frames = _frames(3, 48, 64)
    prior = create_prior(f"hf:{folder}?batch_size=2")
    outs = list(prior.process(iter(frames), PriorContext(device="cpu")))
    assert [o.index for o in outs] == [0, 1, 2]
    for o in outs:
        assert o.values.shape == (48, 64) and o.values.dtype == np.float32
        assert np.isfinite(o.values).all()
        assert o.kind == "disparity" and o.metric is False
    d = prior.describe()
    assert d["kind"] == "disparity" and d["metric"] is False and d["device"] == "cpu" and d["dtype"] == "float32"
    assert "relative" in d["metric_reason"]

    # batching must not change results
    single = list(create_prior(f"hf:{folder}?batch_size=1").process(iter(frames), PriorContext(device="cpu")))
    for a, b in zip(outs, single):
        np.testing.assert_allclose(a.values, b.values, rtol=1e-5, atol=1e-6)

    # the same as running the model by hand and resizing bilinearly (pixel centres) to the frame size
    inputs = proc(images=[f.image for f in frames], return_tensors="pt")
    with torch.no_grad():
        pred = model(pixel_values=inputs["pixel_values"]).predicted_depth
    ref = torch.nn.functional.interpolate(pred[:, None], size=(48, 64), mode="bilinear", align_corners=False)[:, 0]
    for o, r in zip(outs, ref.numpy()):
        np.testing.assert_allclose(o.values, r, rtol=1e-4, atol=1e-5)
    assert not np.allclose(outs[0].values, outs[1].values)  # different frames, different maps
    assert outs[0].values.min() > 0 and outs[0].values.std() > 0.1  # the maps are not trivially flat


def test_hf_metric_from_config(tiny_da):
    folder, _, _ = tiny_da(metric=True)
    prior = create_prior(f"hf:{folder}?device=cpu")
    (o,) = list(prior.process(iter(_frames(1, 40, 30)), PriorContext(device="auto")))
    assert o.kind == "depth" and o.metric is True
    assert o.values.shape == (40, 30) and o.values.dtype == np.float32 and (o.values >= 0).all()
    assert prior.describe()["metric_reason"] == "config.depth_estimation_type = 'metric'"
    forced = create_prior(f"hf:{folder}?metric=0")
    assert forced.metric is False and "forced" in forced.describe()["metric_reason"]


def test_hf_metric_rules():
    from steadydepth.priors.hf import is_metric_config

    assert is_metric_config(SimpleNamespace(model_type="zoedepth"))[0] is True
    assert is_metric_config(SimpleNamespace(model_type="dpt"))[0] is False
    assert is_metric_config(SimpleNamespace(model_type="dpt"), "someone/DPT-Metric-Indoor")[0] is True
    assert is_metric_config(SimpleNamespace(model_type="depth_anything", depth_estimation_type="relative"),
                            "x/metric-named")[0] is False  # the config decides when it says


def test_hf_errors(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    with pytest.raises(ModelError, match="does not exist.*hf download"):
        create_prior(f"hf:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        create_prior(f"hf:{tmp_path / 'empty'}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    with pytest.raises(ModelError, match=r"steadydepth-test/no-such-model.*HF_HUB_OFFLINE.*hf download steadydepth-test/no-such-model"):
        create_prior("hf:steadydepth-test/no-such-model")
    with pytest.raises(InputError):
        create_prior("hf")
    with pytest.raises(InputError, match="unknown option"):
        create_prior(f"hf:{tmp_path}?colour=red")


# ----------------------------------------------------------------------------------- onnx
class _TinyDepthNet(torch.nn.Module):
    def __init__(self, channel_out: bool) -> None:
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.c2 = torch.nn.Conv2d(4, 1, 3, padding=1)
        self.channel_out = channel_out

    def forward(self, x):
        y = torch.nn.functional.softplus(self.c2(torch.relu(self.c1(x))))
        return y if self.channel_out else y[:, 0]


def _export(net, path, shape, dynamic: bool) -> None:
    kwargs = {"input_names": ["image"], "output_names": ["depth"], "dynamo": False}
    if dynamic:
        kwargs["dynamic_axes"] = {"image": {0: "n", 2: "h", 3: "w"}, "depth": {0: "n"}}
    # dynamo=False: the new exporter needs onnxscript, which is not a dependency
    torch.onnx.export(net, torch.randn(*shape), str(path), **kwargs)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_fixed_size_matches_torch(tmp_path):
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    net = _TinyDepthNet(channel_out=False).eval()
    path = tmp_path / "fixed.onnx"
    _export(net, path, (1, 3, 48, 64), dynamic=False)
    frames = _frames(3, 48, 64)
    prior = create_prior(f"onnx:{path}")
    outs = list(prior.process(iter(frames), PriorContext(device="cpu")))
    assert [o.index for o in outs] == [0, 1, 2]
    # by hand: RGB / 255, ImageNet mean/std, no resize (the graph's size is the frame size)
    x = (np.stack([f.image for f in frames]).astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    with torch.no_grad():
        ref = net(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))).numpy()
    for o, r in zip(outs, ref):
        assert o.kind == "disparity" and o.metric is False and o.values.dtype == np.float32
        np.testing.assert_allclose(o.values, r, rtol=1e-4, atol=1e-5)
    assert prior.describe()["input_size"] == [48, 64]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_dynamic_size_metric_and_batching(tmp_path):
    pytest.importorskip("onnxruntime")
    import cv2

    torch.manual_seed(1)
    net = _TinyDepthNet(channel_out=True).eval()
    path = tmp_path / "dyn.onnx"
    _export(net, path, (1, 3, 28, 42), dynamic=True)
    frames = _frames(3, 30, 40)
    prior = create_prior(f"onnx:{path}?size=28&batch_size=2&mean=0.5,0.5,0.5&std=0.5,0.5,0.5:metric")
    # shorter side 30 -> 28; long side 40 * 28 / 30 = 37.3 -> nearest multiple of 14 = 42
    assert prior.input_size(30, 40) == (28, 42)
    outs = list(prior.process(iter(frames), PriorContext(device="auto")))
    assert len(outs) == 3 and all(o.kind == "depth" and o.metric and o.values.shape == (30, 40) for o in outs)
    for f, o in zip(frames, outs):
        img = cv2.resize(f.image, (42, 28), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0
        x = torch.from_numpy(np.ascontiguousarray(((img - 0.5) / 0.5).transpose(2, 0, 1)[None]))
        with torch.no_grad():
            y = net(x)[0, 0].numpy()
        ref = cv2.resize(y, (40, 30), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(o.values, ref, rtol=1e-4, atol=1e-5)
    single = list(create_prior(f"onnx:{path}?size=28&mean=0.5,0.5,0.5&std=0.5,0.5,0.5&metric")
                  .process(iter(frames), PriorContext()))
    for a, b in zip(outs, single):
        np.testing.assert_allclose(a.values, b.values, rtol=1e-5, atol=1e-6)


def test_onnx_errors(tmp_path):
    pytest.importorskip("onnxruntime")
    with pytest.raises(ModelError, match="missing.onnx.*does not exist"):
        create_prior(f"onnx:{tmp_path / 'missing.onnx'}")
    bad = tmp_path / "bad.onnx"
    bad.write_text("this is not a protobuf")
    with pytest.raises(ModelError, match="bad.onnx: not a loadable ONNX model"):
        create_prior(f"onnx:{bad}")
    with pytest.raises(InputError):
        create_prior("onnx")
    with pytest.raises(InputError, match="three"):
        create_prior(f"onnx:{bad}?mean=1,2")


# ----------------------------------------------------------------------------------- depthcrafter
def test_window_schedule_exact():
    from steadydepth.priors.depthcrafter_windows import window_schedule

    assert window_schedule(10, 6, 2) == [(0, 6), (4, 10)]
    assert window_schedule(11, 6, 2) == [(0, 6), (4, 10), (8, 11)]
    assert window_schedule(6, 6, 2) == [(0, 6)]
    assert window_schedule(5, 6, 2) == [(0, 5)]
    assert window_schedule(0, 6, 2) == []
    # published defaults: stride 85
    assert window_schedule(300) == [(0, 110), (85, 195), (170, 280), (255, 300)]
    assert window_schedule(195) == [(0, 110), (85, 195)]
    for n in range(1, 40):
        w = window_schedule(n, 7, 3)
        covered = np.zeros(n, int)
        for a, b in w:
            covered[a:b] += 1
        assert covered.min() >= 1 and w[-1][1] == n
        assert all(w[k + 1][0] == w[k][1] - 3 for k in range(len(w) - 1))  # overlap of exactly 3
    with pytest.raises(InputError):
        window_schedule(10, 6, 6)


def test_overlap_weights_and_noise_indices_exact():
    from steadydepth.priors.depthcrafter_windows import noise_indices, overlap_weights

    np.testing.assert_array_equal(overlap_weights(4), np.array([0, 1 / 3, 2 / 3, 1], np.float32))
    np.testing.assert_array_equal(overlap_weights(2), [0.0, 1.0])
    assert overlap_weights(25).dtype == np.float32 and overlap_weights(25)[12] == np.float32(0.5)
    assert overlap_weights(0).shape == (0,)
    np.testing.assert_array_equal(noise_indices(0, 6, 2), [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(noise_indices(1, 6, 2), [4, 5, 0, 1, 2, 3])
    np.testing.assert_array_equal(noise_indices(2, 6, 2), [2, 3, 4, 5, 0, 1])
    for k in range(5):
        a, b = noise_indices(k, 110, 25), noise_indices(k + 1, 110, 25)
        np.testing.assert_array_equal(b[:25], a[-25:])  # shared frames, shared noise
        assert sorted(b) == list(range(110))


@pytest.fixture(scope="module")
def tiny_depthcrafter(tmp_path_factory):
    """Tiny SVD-style components: spatio-temporal UNet, temporal-decoder VAE, CLIP vision encoder."""
    diffusers = pytest.importorskip("diffusers")
    transformers = pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("tiny_depthcrafter")
    torch.manual_seed(0)
    diffusers.UNetSpatioTemporalConditionModel(
        sample_size=8, in_channels=8, out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        block_out_channels=(32, 64), addition_time_embed_dim=8, projection_class_embeddings_input_dim=24,
        layers_per_block=1, cross_attention_dim=16, num_attention_heads=(2, 4), num_frames=6,
    ).save_pretrained(root / "unet")
    diffusers.AutoencoderKLTemporalDecoder(
        block_out_channels=(32, 32), down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        layers_per_block=1, latent_channels=4,
    ).save_pretrained(root / "svd" / "vae")
    transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        image_size=32, patch_size=8, projection_dim=16,
    )).save_pretrained(root / "svd" / "image_encoder")
    transformers.CLIPImageProcessor(crop_size={"height": 32, "width": 32}, size={"shortest_edge": 32}).save_pretrained(
        root / "svd" / "feature_extractor")
    # the scheduler configuration of stable-video-diffusion-img2vid-xt
    diffusers.EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", interpolation_type="linear",
        num_train_timesteps=1000, prediction_type="v_prediction", sigma_max=700.0, sigma_min=0.002,
        steps_offset=1, timestep_spacing="leading", timestep_type="continuous", use_karras_sigmas=True,
    ).save_pretrained(root / "svd" / "scheduler")
    return root


@pytest.mark.slow
def test_depthcrafter_tiny_streaming(tiny_depthcrafter):
    from steadydepth.priors.depthcrafter_windows import window_schedule

    root = tiny_depthcrafter
    prior = create_prior(f"depthcrafter:{root / 'unet'}?svd={root / 'svd'}&window=6&overlap=2&decode_chunk=4")
    prior.record_noise = True
    denoised, decoded = [], []
    orig_denoise, orig_decode = prior._denoise, prior._decode

    def spy_denoise(*args):
        out = orig_denoise(*args)
        denoised.append(out[0].clone())
        return out

    def spy_decode(latents):
        decoded.extend(latents)
        return orig_decode(latents)

    prior._denoise, prior._decode = spy_denoise, spy_decode

    frames = _frames(11, 64, 64, seed=3)
    consumed = []

    def stream():
        for k, f in enumerate(frames):
            consumed.append(k)
            yield f

    outs, consumed_at_yield = [], []
    for o in prior.process(stream(), PriorContext(device="cpu")):
        outs.append(o)
        consumed_at_yield.append(len(consumed))

    assert [o.index for o in outs] == list(range(11))
    for o in outs:
        assert o.values.shape == (64, 64) and o.values.dtype == np.float32
        assert np.isfinite(o.values).all() and o.values.min() >= 0 and o.values.max() <= 1
        assert o.kind == "disparity" and o.metric is False
    # windows as the pure schedule says, and streaming: the first frames come out before the clip is read
    assert [(a, b) for a, b, _ in prior.noise_log] == window_schedule(11, 6, 2)
    assert consumed_at_yield[0] <= 6
    # the same noise on overlapping frames, fresh noise elsewhere
    n0, n1, n2 = (n for _, _, n in prior.noise_log)
    assert torch.equal(n1[:, :2], n0[:, -2:]) and torch.equal(n2[:, :2], n1[:, 4:6])
    assert not torch.equal(n1[:, 2:4], n0[:, 2:4])
    # linear blend over the overlap: weight 0 for the new window on its first overlap frame
    assert len(decoded) == 11
    assert torch.equal(decoded[4], denoised[0][4]) and torch.equal(decoded[8], denoised[1][4])
    assert torch.equal(decoded[5], denoised[1][1]) and not torch.equal(decoded[5], denoised[0][5])
    assert not np.allclose(outs[0].values, outs[1].values)


def test_depthcrafter_unet_matches_stock_forward(tiny_depthcrafter):
    """With one embedding for every frame, DepthCrafter's per-frame forward equals the stock SVD forward."""
    import diffusers

    from steadydepth.priors.depthcrafter_loading import _depthcrafter_unet_class

    ours = _depthcrafter_unet_class().from_pretrained(tiny_depthcrafter / "unet").eval()
    stock = diffusers.UNetSpatioTemporalConditionModel.from_pretrained(tiny_depthcrafter / "unet").eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 8, 16, 16, generator=g)
    emb = torch.randn(1, 1, 16, generator=g)
    ids = torch.tensor([[7.0, 127.0, 0.02]])
    with torch.no_grad():
        a = ours(x, 500.0, encoder_hidden_states=emb.expand(1, 3, 16), added_time_ids=ids)[0]
        b = stock(x, 500.0, encoder_hidden_states=emb, added_time_ids=ids, return_dict=False)[0]
        c = ours(x, 500.0, encoder_hidden_states=torch.randn(1, 3, 16, generator=g), added_time_ids=ids)[0]
    assert a.shape == (1, 3, 4, 16, 16)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(a, c)  # the per-frame embeddings do reach the network


def test_depthcrafter_short_clip_and_resize(tiny_depthcrafter):
    root = tiny_depthcrafter
    prior = create_prior(f"depthcrafter:{root / 'unet'}?svd={root / 'svd'}&window=6&overlap=2&steps=2&guidance=1.2")
    prior.record_noise = True
    outs = list(prior.process(iter(_frames(4, 30, 44)), PriorContext(device="cpu")))
    assert [o.index for o in outs] == [0, 1, 2, 3]
    assert all(o.values.shape == (30, 44) and np.isfinite(o.values).all() for o in outs)
    assert [(a, b) for a, b, _ in prior.noise_log] == [(0, 4)]
    d = prior.describe()
    assert d["kind"] == "disparity" and d["guidance"] == 1.2 and d["steps"] == 2 and d["device"] == "cpu"


def test_depthcrafter_missing_weights(tmp_path, monkeypatch):
    pytest.importorskip("diffusers")
    with pytest.raises(ModelError, match=r"does not exist.*tencent/DepthCrafter.*stable-video-diffusion-img2vid-xt"):
        create_prior(f"depthcrafter:{tmp_path / 'nothing'}")
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="missing vae/config.json"):
        create_prior(f"depthcrafter:{tmp_path / 'unet'}?svd={tmp_path}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    with pytest.raises(ModelError, match="tencent/DepthCrafter.*HF_HUB_OFFLINE"):
        create_prior("depthcrafter")
    with pytest.raises(InputError):
        create_prior(f"depthcrafter:{tmp_path}?window=4&overlap=4")
