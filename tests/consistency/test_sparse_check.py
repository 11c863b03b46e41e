"""The dense-against-sparse plausibility check: silent on sound geometry, one warning otherwise."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from steadydepth import pipeline
from steadydepth.consistency.sparse_check import SparseAgreement
from steadydepth.consistency.temporal import backproject_world
from steadydepth.types import Cameras

synthetic = pytest.importorskip("steadydepth.synthetic")


@pytest.fixture(scope="module")
def clip():
    return synthetic.render_clip(8, 128, 96, motion="orbit", seed=0)


def _sparse_cameras(clip, point_scale: float = 1.0) -> Cameras:
    """The true cameras with a sparse cloud: every 9th pixel of frames 0 and 7 unprojected
    (times ``point_scale``, about the first camera, to make a cloud that disagrees)."""
    K = clip.intrinsics.K
    pts = np.concatenate([backproject_world(clip.depth[i], K, clip.poses[i])[::9] for i in (0, 7)])
    c0 = clip.poses[0][:3, 3]
    pts = c0 + point_scale * (pts - c0)
    cams = clip.cameras()
    return dataclasses.replace(cams, points=pts, colors=np.zeros(pts.shape, np.uint8))


def test_exact_depth_agrees_and_scaled_or_noisy_depth_does_not(clip):
    cams = _sparse_cameras(clip)
    good = SparseAgreement.for_cameras(cams)
    far = SparseAgreement.for_cameras(cams)
    noisy = SparseAgreement.for_cameras(cams)
    rng = np.random.default_rng(0)
    for i, d in enumerate(clip.depth):
        good.add(i, d)
        far.add(i, 3.0 * d)
        noisy.add(i, d * np.exp(rng.normal(0, 0.6, d.shape)).astype(np.float32))
    s = good.summary()
    assert s["frames_judged"] == len(clip) and s["plausible"] is True
    assert abs(s["median_ratio"] - 1) < 0.02 and s["median_agreement"] > 0.9
    assert good.warning() is None
    assert far.summary()["plausible"] is False and abs(far.summary()["median_ratio"] - 3) < 0.1
    assert "disagrees with the run's own sparse reconstruction" in far.warning()
    # right on average, wrong point by point: the agreement share catches it
    assert abs(noisy.summary()["median_ratio"] - 1) < 0.2 and noisy.summary()["plausible"] is False


def test_no_points_no_check():
    assert SparseAgreement.for_cameras(None) is None


@pytest.mark.parametrize("point_scale, plausible", [(1.0, True), (0.6, False)])
def test_run_records_the_check_and_warns_when_implausible(clip, tmp_path, monkeypatch, point_scale, plausible):
    cams = _sparse_cameras(clip, point_scale)
    monkeypatch.setattr(pipeline, "_estimate_cameras", lambda frames, *a, **k: dataclasses.replace(
        cams, intrinsics=cams.intrinsics.scaled(*frames.size)))
    video = pipeline.estimate(clip.images, tmp_path, prior="mvs", preset="fast", progress_bar=False, vis=False)
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["geometry_check"]["plausible"] is plausible
    warned = [w for w in video.warnings if w.startswith("geometry:")]
    assert bool(warned) is (not plausible) and warned == [w for w in run["warnings"] if w.startswith("geometry:")]
