"""steadydepth animate: novel views against a synthetic clip's true frames, outputs, refusals,
path replay, the loop seam of the Eulerian motion, starting from a run's frame."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from steadydepth.animate.clip_fill import clip_band_filler, read_run
from steadydepth.animate.detect import detect_region
from steadydepth.animate.evaluate import psnr, score_view, seen_mask
from steadydepth.animate.layers import build_layers
from steadydepth.animate.motion import LoopingMotion, flow_field
from steadydepth.animate.render import render_view
from steadydepth.cli import main
from steadydepth.synthetic import render_clip, save_as_run

W, H = 160, 120


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """The rasteriser's small element-wise operations run faster on one thread (as animate() does)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def clip():
    return render_clip(21, W, H, motion="orbit")


@pytest.fixture(scope="module")
def picture(tmp_path_factory, clip):
    folder = tmp_path_factory.mktemp("picture")
    cv2.imwrite(str(folder / "img.png"), clip.images[0][:, :, ::-1])
    np.save(folder / "depth.npy", clip.depth[0])
    return folder


def test_novel_views_match_the_true_frames(clip):
    K = clip.intrinsics.K
    ldi = build_layers(clip.images[0], clip.depth[0], K, clip.poses[0], band=16, pad=10)
    for k in range(1, 5):
        view = render_view(ldi, K, clip.poses[k], W, H)
        seen = seen_mask(K, clip.depth[0], clip.poses[0], clip.depth[k], clip.poses[k])
        s = score_view(view.image, clip.images[k], seen)
        assert s["psnr_seen"] > 28.0, (k, s)  # measured 30.5-32.2 dB at this size
        assert view.uncovered.mean() < 0.005, (k, view.uncovered.mean())
        assert (view.depth > 0).all()  # no hole: every pixel has colour and depth
        # no rubber sheet: where frame 0 saw nothing, the rendered depth is that of a real surface
        hidden = seen_mask(K, clip.depth[0], clip.poses[0], clip.depth[k], clip.poses[k], hidden=True)
        if hidden.sum() > 20:
            rel = np.abs(view.depth[hidden] - clip.depth[k][hidden]) / clip.depth[k][hidden]
            assert np.median(rel) < 0.05, np.median(rel)


def _run(args):
    return main(["animate", *map(str, args), "--quiet"])


def test_outputs_written_and_readable(picture, tmp_path):
    import av

    mask = np.zeros((H, W), np.uint8)
    mask[:30] = 255
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    out = tmp_path / "out"
    assert _run([picture / "img.png", "-o", out, "--depth", picture / "depth.npy", "--fov", 60, "--frames", 6,
                 "--path", "orbit", "--animate-mask", tmp_path / "mask.png"]) == 0
    frames = sorted((out / "frames").glob("*.png"))
    assert [f.name for f in frames] == [f"{i:06d}.png" for i in range(6)]
    assert cv2.imread(str(frames[3])).shape == (H, W, 3)
    with av.open(str(out / "animation.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in c.decode(video=0)) == 6
    with np.load(out / "depth.npz") as z:
        assert z["depth"].shape == (6, H, W) and (z["depth"] > 0).all()
        assert z["poses"].shape == (6, 4, 4) and np.allclose(z["poses"][0], np.eye(4))
        assert str(z["units"]) == "scene"
    cams = json.loads((out / "cameras.json").read_text())
    assert len(cams["frames"]) == 6 and cams["intrinsics"]["width"] == W
    assert not (out / ".work").exists()
    # frame 0 is the input view: it reproduces the picture
    f0 = cv2.imread(str(frames[0]))[:, :, ::-1]
    assert psnr(f0, cv2.imread(str(picture / "img.png"))[:, :, ::-1]) > 35.0
    # the path replays from its cameras.json: same poses, same frames
    again = tmp_path / "again"
    assert _run([picture / "img.png", "-o", again, "--depth", picture / "depth.npy", "--fov", 60,
                 "--path", out / "cameras.json", "--animate-mask", tmp_path / "mask.png"]) == 0
    cams2 = json.loads((again / "cameras.json").read_text())
    assert np.allclose([f["pose_c2w"] for f in cams2["frames"]], [f["pose_c2w"] for f in cams["frames"]], atol=1e-9)
    for i in range(6):
        a = cv2.imread(str(out / "frames" / f"{i:06d}.png"))
        b = cv2.imread(str(again / "frames" / f"{i:06d}.png"))
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    # an existing animation is refused without --overwrite (exit 3)
    assert _run([picture / "img.png", "-o", out, "--depth", picture / "depth.npy", "--frames", 3]) == 3


@pytest.mark.parametrize("extra, message", [
    ([], "--depth FILE or a learned --prior"),
    (["--prior", "mvs"], "cannot work on one image"),
    (["--depth", "missing.npy"], "no such depth file"),
    (["--depth", "DEPTH", "--frames", "1"], "--frames"),
    (["--depth", "DEPTH", "--path", "spiral"], "--path"),
])
def test_refused_before_any_work(picture, tmp_path, capsys, extra, message):
    out = tmp_path / "never"
    extra = [str(picture / "depth.npy") if e == "DEPTH" else e for e in extra]
    assert _run([picture / "img.png", "-o", out, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_loop_has_no_seam():
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.random((60, 80, 3)).astype(np.float32), (0, 0), 1.5)
    mask = np.zeros((60, 80), bool)
    mask[:, 10:70] = True
    n = 24
    motion = LoopingMotion([img], flow_field(mask, "sky", speed=0.8), n)
    frames = [motion.frame(t)[0] for t in range(n + 1)]
    inner = mask & (cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5) > 8)
    seam = np.abs(frames[n] - frames[0])[inner].mean()
    step = np.abs(frames[1] - frames[0])[inner].mean()
    middle = np.abs(frames[n // 2] - frames[0])[inner].mean()
    assert np.array_equal(frames[0], img)
    assert seam < 0.5 * step, (seam, step)  # the last frame returns to the first
    assert middle > 2 * step  # and in between the texture really moved
    assert np.array_equal(frames[5][~mask], img[~mask])  # nothing outside the mask moves


def test_sky_detector_finds_a_bright_smooth_far_top():
    rng = np.random.default_rng(1)
    img = (rng.random((80, 100, 3)) * 255).astype(np.uint8)  # textured ground
    img[:30] = (200, 220, 250)
    depth = np.full((80, 100), 3.0, np.float32)
    depth[:30] = 0.0  # no depth in the sky
    m = detect_region(img, depth, "sky")
    assert m[:25].mean() > 0.9 and m[40:].mean() < 0.02


def test_from_run_fills_hidden_parts_from_the_clip(clip, tmp_path):
    run = save_as_run(clip, tmp_path)
    start, neighbours, intr = read_run(run, 10, radius=10, limit=4)
    K = intr.K
    with_clip = build_layers(start.image, start.depth, K, start.pose_c2w, band=16, pad=10,
                             fill_band=clip_band_filler(start, neighbours, K))
    inpainted = build_layers(start.image, start.depth, K, start.pose_c2w, band=16, pad=10)
    k = 20
    hidden = seen_mask(K, clip.depth[10], clip.poses[10], clip.depth[k], clip.poses[k], hidden=True)
    assert hidden.sum() > 50
    a = psnr(render_view(with_clip, K, clip.poses[k], W, H).image, clip.images[k], hidden)
    b = psnr(render_view(inpainted, K, clip.poses[k], W, H).image, clip.images[k], hidden)
    assert a > b + 3.0, (a, b)
    out = tmp_path / "anim"
    assert _run(["-o", out, "--from-run", run, "--frame", 10, "--frames", 3, "--path", "swing"]) == 0
    with np.load(out / "depth.npz") as z:
        assert z["depth"].shape == (3, H, W)


def test_learned_prior_gives_the_depth(picture, tmp_path):
    model = Path(__file__).resolve().parents[3] / "shared" / "models" / "fastdepth" / "fast_depth_224.tflite"
    if not model.is_file():
        pytest.skip(f"{model} not found")
    out = tmp_path / "prior"
    code = _run([picture / "img.png", "-o", out, "--prior", f"tflite:{model}", "--frames", 3, "--path", "dolly-in"])
    if code == 4:
        pytest.skip("TFLite runtime not installed")
    assert code == 0
    with np.load(out / "depth.npz") as z:
        d = z["depth"]
    assert d.shape == (3, H, W) and (d > 0).all()
    assert d[0].max() > 2 * d[0].min()  # the network's depth varies across the picture


def test_long_path_restarts_from_the_last_rendered_view(picture, tmp_path):
    from steadydepth.animate import AnimateOptions, animate

    summary = animate(tmp_path / "long", AnimateOptions(
        image=str(picture / "img.png"), depth=str(picture / "depth.npy"), fov=60.0, frames=8, path="dolly-in",
        speed=4.0, reanchor=0.15, progress_bar=False))
    assert summary["anchors_made"] >= 1
    with np.load(tmp_path / "long" / "depth.npz") as z:
        assert (z["depth"] > 0).all() and z["depth"].shape == (8, H, W)


def test_depth_from_a_16_bit_png(picture, tmp_path):
    from steadydepth.io.depth_files import write_depth

    write_depth(tmp_path / "d.png", np.load(picture / "depth.npy"), "png16", png_scale=1000.0)
    out = tmp_path / "png"
    assert _run([picture / "img.png", "-o", out, "--depth", tmp_path / "d.png", "--png-scale", 1000,
                 "--frames", 2, "--path", "zoom"]) == 0
    with np.load(out / "depth.npz") as z:
        assert abs(float(np.median(z["depth"][0])) - float(np.median(np.load(picture / "depth.npy")))) < 0.01
