"""End-to-end runs of the pipeline on small in-memory clips and files (no learned weights)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from steadydepth import OutputError
from steadydepth.pipeline import estimate


def _frames(n: int = 6, h: int = 48, w: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, size=(n, h, w, 3), dtype=np.uint8)


def _depth_folder(tmp_path, n=6, h=48, w=64):
    folder = tmp_path / "ext_depth"
    folder.mkdir()
    yy, xx = np.mgrid[0:h, 0:w]
    gts = []
    for i in range(n):
        d = (1.0 + 0.02 * xx + 0.01 * yy + 0.1 * i).astype(np.float32)
        d[0, 0] = 0.0  # one invalid pixel must stay invalid
        np.save(folder / f"frame{i}.npy", d)
        gts.append(d)
    return folder, np.stack(gts)


def test_passthrough_run_writes_every_output(tmp_path):
    frames = _frames()
    video = estimate(frames, tmp_path / "out", prior="io-passthrough", progress_bar=False)
    out = tmp_path / "out"
    assert len(video) == 6
    with np.load(out / "depth.npz") as z:
        assert z["depth"].shape == (6, 48, 64) and z["depth"].dtype == np.float32
        assert z["confidence"].shape == (6, 48, 64)
        assert str(z["units"]) == "scene"
        assert list(z["frame_indices"]) == list(range(6))
        expected = 1.0 + frames[2].astype(np.float32).mean(axis=2) / 255.0
        np.testing.assert_allclose(z["depth"][2], expected, rtol=1e-5)
    for name in ("depth_vis.mp4", "cameras.json", "run.json", "depth/000005.npy"):
        assert (out / name).exists(), name
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "complete" and info["frames"] == 6
    assert set(info["timings_s"]) >= {"depth", "outputs", "total"}
    assert "io-passthrough" in json.dumps(info["prior"])
    assert not (out / ".work").exists()
    import av

    with av.open(str(out / "depth_vis.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 6


def test_files_prior_restores_input_resolution_exactly(tmp_path):
    folder, gt = _depth_folder(tmp_path)
    video = estimate(_frames(), tmp_path / "out", prior=f"files:{folder}", max_res=32, progress_bar=False,
                     formats=("png16", "exr"))
    depth = video.to_array()
    assert depth.shape == gt.shape
    np.testing.assert_allclose(depth, gt, rtol=1e-6)
    assert video[0].depth[0, 0] == 0 and not video[0].valid[0, 0]
    png = (tmp_path / "out" / "depth_png16" / "000003.png")
    assert png.exists() and (tmp_path / "out" / "depth_exr" / "000003.exr").exists()
    from steadydepth.io.depth_files import read_depth

    np.testing.assert_allclose(read_depth(png), gt[3], atol=0.0006)


def test_stride_and_range_pick_matching_files(tmp_path):
    folder, gt = _depth_folder(tmp_path)
    video = estimate(_frames(), tmp_path / "out", prior=f"files:{folder}", start=1, stride=2, progress_bar=False)
    assert video.frame_indices == [1, 3, 5]
    np.testing.assert_allclose(video.to_array(), gt[[1, 3, 5]], rtol=1e-6)


def test_metric_hint_depth_scales_to_metres(tmp_path):
    folder, gt = _depth_folder(tmp_path)
    video = estimate(_frames(), tmp_path / "out", prior=f"files:{folder}", metric_hint="depth=3.0",
                     progress_bar=False)
    d0 = video[0].depth
    assert video.units == "metres"
    assert np.median(d0[d0 > 0]) == pytest.approx(3.0, rel=1e-5)
    ratio = video[4].depth[5, 5] / gt[4][5, 5]
    assert ratio == pytest.approx(3.0 / np.median(gt[0][gt[0] > 0]), rel=1e-5)


def test_refuses_folder_holding_a_run_unless_overwrite(tmp_path):
    frames = _frames(3)
    estimate(frames, tmp_path / "out", prior="io-passthrough", progress_bar=False, vis=False)
    with pytest.raises(OutputError, match="already holds a run"):
        estimate(frames, tmp_path / "out", prior="io-passthrough", progress_bar=False)
    video = estimate(frames[:2], tmp_path / "out", prior="io-passthrough", progress_bar=False, overwrite=True)
    assert len(video) == 2 and not (tmp_path / "out" / "depth" / "000002.npy").exists()


def test_unwritable_output_is_a_clear_error(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="afile"):
        estimate(_frames(2), blocker / "out", prior="io-passthrough", progress_bar=False)


def test_depth_video_save_copies_the_run(tmp_path):
    video = estimate(_frames(3), None, prior="io-passthrough", progress_bar=False)
    target = video.save(tmp_path / "copy")
    for name in ("depth.npz", "cameras.json", "run.json", "depth/000002.npy"):
        assert (target / name).exists(), name
    assert not any(p.name.startswith(".") for p in target.iterdir())
    with pytest.raises(OutputError):
        video.save(tmp_path / "copy")  # holds a run: refused without overwrite
    video.save(tmp_path / "copy", overwrite=True)


def test_relative_disparity_prior_is_aligned_over_the_clip(tmp_path):
    """A per-frame-scaled disparity (what relative models give) comes out steady: the
    pipeline's clip alignment removes the per-frame scale/shift."""
    from steadydepth.eval.metrics import evaluate_depth
    from steadydepth.synthetic import render_clip

    clip = render_clip(num_frames=8, width=160, height=120, motion="orbit", seed=1)
    rng = np.random.default_rng(3)
    folder = tmp_path / "disp"
    folder.mkdir()
    for i, d in enumerate(clip.depth):
        s, t = rng.uniform(0.5, 2.0), rng.uniform(0.0, 0.2)
        np.save(folder / f"{i:04d}.npy", (s / d + t).astype(np.float32))
    video = estimate(clip.images, tmp_path / "out", prior=f"files:{folder}?disparity", progress_bar=False)
    pred = video.to_array()
    raw = [np.load(folder / f"{i:04d}.npy") for i in range(8)]
    aligned = evaluate_depth(pred, list(clip.depth), align="sequence", intrinsics=clip.intrinsics, poses=clip.poses)
    flickering = evaluate_depth(raw, list(clip.depth), pred_is_disparity=True, align="sequence",
                                intrinsics=clip.intrinsics, poses=clip.poses)
    assert aligned.abs_rel < 0.02, aligned.abs_rel
    assert aligned.tae < flickering.tae / 3, (aligned.tae, flickering.tae)
    assert any("clip alignment" in w for w in video.warnings)


def test_failure_mid_run_keeps_finished_frames_and_says_so(tmp_path):
    from steadydepth import InputError

    folder, gt = _depth_folder(tmp_path, n=6)
    (folder / "frame3.npy").write_bytes(b"not a depth map")  # the 4th frame's depth is damaged
    with pytest.raises(InputError, match="frame3.npy"):
        estimate(_frames(6), tmp_path / "out", prior=f"files:{folder}", progress_bar=False)
    out = tmp_path / "out"
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "failed" and "frame3.npy" in info["error"]
    np.testing.assert_allclose(np.load(out / "depth" / "000002.npy"), gt[2], rtol=1e-6)
    assert not list((out / "depth").glob(".*"))  # no temporary leftovers


def test_image_stash_spills_past_its_memory_bound(tmp_path):
    from steadydepth.image_stash import ImageStash

    stash = ImageStash(tmp_path / "stash", in_memory=2)
    imgs = [np.full((2, 2, 3), i, np.uint8) for i in range(5)]
    for i, im in enumerate(imgs):
        stash.put(i, im)
    assert len(stash.memory) == 2 and len(stash.spilled) == 3
    for i in (4, 0, 3, 1, 2):
        np.testing.assert_array_equal(stash.pop(i), imgs[i])
    assert not stash.memory and not stash.spilled and not list((tmp_path / "stash").iterdir())
