"""End-to-end runs on a clip rendered through a distorted (SIMPLE_RADIAL) lens.

The cameras are the exact ground truth (SfM's noise would blur the comparison); the run with
the lens's ``k1`` estimates depth on undistorted frames and writes it back on the input
pixels, the run told ``k1 = 0`` is what the pipeline did before it kept the distortion.
"""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np
import pytest

import steadydepth.pipeline as pipeline
from steadydepth.eval.metrics import evaluate_depth
from steadydepth.io.ply import read_ply
from steadydepth.types import Cameras

synthetic = pytest.importorskip("steadydepth.synthetic")

K1 = 0.25  # ~10 px at the corners of this 128x96, 60-degree camera


@pytest.fixture(scope="module")
def clip():
    return synthetic.render_clip(8, 128, 96, motion="orbit", k1=K1, seed=0)


def _run(clip, tmp_path, monkeypatch, k1: float, **kw):
    def gt_cameras(frames, *args, **kwargs) -> Cameras:
        intr = dataclasses.replace(clip.intrinsics, k1=k1).scaled(*frames.size)
        return Cameras(intr, poses=[p.copy() for p in clip.poses], frame_indices=list(range(len(clip))),
                       units="metres", source="gt")

    monkeypatch.setattr(pipeline, "_estimate_cameras", gt_cameras)
    return pipeline.estimate(clip.images, tmp_path, prior="mvs", preset="fast", progress_bar=False, vis=False, **kw)


def test_distorted_clip_scores_better_with_undistortion(clip, tmp_path, monkeypatch, caplog):
    with caplog.at_level(logging.INFO, logger="steadydepth"):
        lens_run = _run(clip, tmp_path / "lens", monkeypatch, K1, points=True, points_stride=1)
    pinhole_run = _run(clip, tmp_path / "pinhole", monkeypatch, 0.0)
    gt = list(clip.depth)
    with_lens = evaluate_depth(lens_run.to_array(), gt, align="sequence")
    without = evaluate_depth(pinhole_run.to_array(), gt, align="sequence")
    assert with_lens.abs_rel < 0.75 * without.abs_rel, (with_lens.abs_rel, without.abs_rel)
    assert with_lens.abs_rel < 0.05 and with_lens.delta1 >= without.delta1 - 0.005
    assert (lens_run.to_array() > 0).mean() > 0.95  # back on every input pixel, not a cropped pinhole grid

    # what was done is logged once (INFO), and is not a warning of the run
    info = [r.getMessage() for r in caplog.records if r.getMessage().startswith("lens:")]
    assert len(info) == 1 and f"k1={K1:g}" in info[0]
    assert not any("distortion" in w for w in lens_run.warnings)
    meta = json.loads((tmp_path / "lens" / "cameras.json").read_text())
    assert meta["intrinsics"]["k1"] == K1 and meta["intrinsics"]["model"] == "SIMPLE_RADIAL"
    assert "distorted" in meta["depth_pixels"]
    assert "SIMPLE_RADIAL" in (tmp_path / "lens" / "colmap" / "cameras.txt").read_text()
    with np.load(tmp_path / "lens" / "depth.npz") as z:
        assert float(z["k1"]) == K1

    # the point cloud is unprojected through the lens: COLMAP's own camera projects each point
    # back onto the input pixel it came from
    import pycolmap

    intr = clip.intrinsics
    cam = pycolmap.Camera.create_from_model_name(1, "SIMPLE_RADIAL", intr.fx, intr.width, intr.height)
    cam.params = [intr.fx, intr.cx + 0.5, intr.cy + 0.5, K1]
    pts = read_ply(tmp_path / "lens" / "points" / "000003.ply")[0].astype(np.float64)
    w2c = np.linalg.inv(clip.poses[3])
    uv = np.asarray(cam.img_from_cam(pts @ w2c[:3, :3].T + w2c[:3, 3])) - 0.5
    v, u = np.nonzero(lens_run[3].depth > 0)
    assert len(uv) == len(u) > 0.9 * lens_run[3].depth.size
    np.testing.assert_allclose(uv, np.stack([u, v], 1), atol=2e-3)


def test_negligible_distortion_leaves_the_frames_alone(clip, tmp_path, monkeypatch):
    seen = []
    original = pipeline._ResizedFrames.__iter__

    def spy(self):
        for frame in original(self):
            seen.append(self.lens)
            yield frame

    monkeypatch.setattr(pipeline._ResizedFrames, "__iter__", spy)
    run = _run(clip, tmp_path, monkeypatch, 0.002)  # ~0.1 px at the corner
    assert len(run) == len(clip) and all(lens is None for lens in seen)


def test_sfm_sees_frames_of_at_most_its_own_size_and_the_cameras_come_back_at_the_processing_size(
        clip, tmp_path, monkeypatch):
    """A processing size above ``SFM_MAX_SIDE`` changes the depth, not the SfM input: the cameras
    solved on the smaller frames are rescaled (pixel centres exact), so the depth stays right."""
    import steadydepth.cameras.sfm as sfm

    seen = []

    def gt_sfm(frames, work_dir, *, intrinsics=None, **kw) -> Cameras:
        seen.append(frames.size)
        intr = clip.intrinsics.scaled(*frames.size)
        return Cameras(intr, poses=[p.copy() for p in clip.poses], frame_indices=list(range(len(clip))),
                       units="metres", source="gt")

    monkeypatch.setattr(sfm, "estimate_cameras", gt_sfm)
    monkeypatch.setattr(pipeline, "SFM_MAX_SIDE", 64)
    run = pipeline.estimate(clip.images, tmp_path, prior="mvs", preset="fast", max_res=128, progress_bar=False,
                            vis=False)
    assert seen == [(64, 48)]
    meta = json.loads((tmp_path / "cameras.json").read_text())["intrinsics"]
    for key in ("fx", "fy", "cx", "cy", "k1"):
        assert meta[key] == pytest.approx(getattr(clip.intrinsics, key), abs=1e-9), key
    m = evaluate_depth(run.to_array(), list(clip.depth), align="sequence")
    assert m.abs_rel < 0.05, m.abs_rel
