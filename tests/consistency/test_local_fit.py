"""Local scale/shift field fit of a learned disparity to confident geometry, and the fusion it feeds."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from steadydepth.consistency.fusion import blend_with_geometry, fit_to_geometry
from steadydepth.consistency.local_fit import LocalFieldSettings, fit_local_field, weak_geometry_weight
from steadydepth.errors import InputError
from steadydepth.synthetic import render_clip


def _abs_rel(pred: np.ndarray, gt: np.ndarray) -> float:
    ok = (pred > 0) & (gt > 0)
    return float(np.mean(np.abs(pred[ok] - gt[ok]) / gt[ok]))


def tilted_disparity(depth: np.ndarray, k: int, *, tilt: float = 0.5) -> np.ndarray:
    """A learned-like disparity: truth times a smooth low-frequency field (a tilted floor, a
    compressed far side) that changes from frame to frame, in affine-invariant units."""
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w] / np.array([h - 1, w - 1])[:, None, None]
    field = np.exp(tilt * (v - 0.5) + 0.3 * np.sin(2.0 * u + 0.4 * k))
    disp = field / depth
    return (2.0 + 0.1 * k) * disp / np.median(disp) + 0.05 * k


def weak_geometry(depth: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Multi-view-like geometry: exact to 2 % on textured blobs (confidence 1, ~35 % of the
    pixels), a blocky biased fill elsewhere (confidence 0.2), as mvs gives with completion."""
    rng = np.random.default_rng(seed)
    h, w = depth.shape
    blobs = np.zeros((h, w), bool)
    for _ in range(25):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(5, 14)
        yy, xx = np.ogrid[:h, :w]
        blobs |= (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    good = depth * (1.0 + 0.02 * rng.standard_normal((h, w)))
    blocks = np.repeat(np.repeat(rng.uniform(0.75, 1.35, (h // 20 + 1, w // 20 + 1)), 20, 0), 20, 1)[:h, :w]
    fill = np.median(depth) * blocks
    geo = np.where(blobs, good, fill).astype(np.float32)
    conf = np.where(blobs, 1.0, 0.2).astype(np.float32)
    return geo, conf


@pytest.fixture(scope="module")
def clip():
    return render_clip(num_frames=3, width=160, height=120, seed=1)


def test_local_field_undoes_a_smooth_error_and_the_fusion_beats_both_inputs(clip):
    for k, depth in enumerate(clip.depth):
        learned = tilted_disparity(depth, k)
        geo, conf = weak_geometry(depth, k)
        glob = fit_to_geometry(learned, geo, conf).apply_disparity(learned)
        field = fit_local_field(learned, geo, conf)
        assert field is not None and field.pixels > 1000
        assert field.residual < 0.5 * field.global_residual
        local = field.apply(learned)
        err_global = _abs_rel(1.0 / glob, depth)
        err_local = _abs_rel(1.0 / local, depth)
        err_geo = _abs_rel(geo, depth)
        fused, fconf = blend_with_geometry(local, geo, conf)
        err_fused = _abs_rel(fused, depth)
        old, _ = blend_with_geometry(glob, geo, conf)
        assert err_local < 0.5 * err_global, (err_local, err_global)
        assert err_fused < 0.6 * min(err_geo, err_global), (err_fused, err_geo, err_global)
        assert err_fused < 0.7 * _abs_rel(old, depth)
        assert (fused > 0).all() and fconf.shape == depth.shape


def test_field_reproduces_an_exact_affine_map_and_handles_weak_frames(clip):
    depth = clip.depth[0]
    learned = (3.0 / depth + 0.2).astype(np.float32)  # a pure global affine map of the truth
    field = fit_local_field(learned, depth, None)
    np.testing.assert_allclose(1.0 / field.apply(learned), depth, rtol=2e-3)
    s, t = field.maps(*depth.shape)
    np.testing.assert_allclose(s, 1.0 / 3.0, rtol=2e-3)
    # too few confident pixels: no field (the caller keeps its clip alignment)
    conf = np.zeros_like(depth)
    conf[:5, :5] = 1.0
    assert fit_local_field(learned, depth, conf) is None
    # invalid learned pixels stay invalid
    learned[10, 10] = 0.0
    assert field.apply(learned)[10, 10] == 0.0


def test_weak_geometry_weight_follows_how_well_the_learned_shape_extrapolates(clip):
    depth = clip.depth[0]
    geo, conf = weak_geometry(depth, 0)
    good = weak_geometry_weight(tilted_disparity(depth, 0), geo, conf)
    rng = np.random.default_rng(0)
    noise = np.exp(0.5 * rng.standard_normal(depth.shape)).astype(np.float32)  # uncorrelated with the scene
    poor = weak_geometry_weight(noise, geo, conf)
    assert good is not None and poor is not None
    assert good < 0.2 < 0.5 < poor, (good, poor)
    conf[:] = 0.0
    conf[:10, :10] = 1.0
    assert weak_geometry_weight(tilted_disparity(depth, 0), geo, conf) is None


def test_bad_arguments_are_refused(clip):
    with pytest.raises(InputError, match="grid"):
        LocalFieldSettings(grid=(1, 4))
    with pytest.raises(InputError, match="ridge"):
        LocalFieldSettings(ridge=0.0)
    with pytest.raises(InputError, match="one shape"):
        fit_local_field(np.ones((4, 5)), np.ones((5, 4)))


@pytest.mark.slow
def test_files_prior_with_a_tilted_error_fused_with_mvs_beats_both(tmp_path):
    """End to end: ``files:DIR?disparity+mvs`` (truth warped by a smooth, per-frame changing
    field) against ``mvs`` and the files alone, on a synthetic clip with a textureless wall."""
    from steadydepth import estimate
    from steadydepth.eval.metrics import evaluate_depth

    clip = render_clip(num_frames=12, width=240, height=180, textureless_wall=True, seed=0)
    folder = tmp_path / "learned"
    folder.mkdir()
    for k, depth in enumerate(clip.depth):
        np.save(folder / f"{k:06d}.npy", tilted_disparity(depth, k, tilt=0.8).astype(np.float32))
    scores = {}
    for name, spec in (("files", f"files:{folder}?disparity"), ("mvs", "mvs"), ("fused", f"files:{folder}?disparity+mvs")):
        video = estimate(list(clip.images), tmp_path / name, prior=spec, progress_bar=False, vis=False)
        scores[name] = evaluate_depth(list(video.to_array()), list(clip.depth), align="sequence").abs_rel
    assert scores["fused"] < 0.9 * min(scores["mvs"], scores["files"]), scores


@pytest.mark.slow
def test_a_learned_shape_uncorrelated_with_the_scene_leaves_the_geometry_alone(tmp_path):
    """``files:DIR?disparity+mvs`` with noise for the learned disparity: the cross-validated
    weight finds the shape no better than the geometry's smoothing, so the weak geometry is kept
    and the fused depth scores as ``mvs`` alone (a blend would pull it towards the noise)."""
    import json

    from steadydepth import estimate
    from steadydepth.eval.metrics import evaluate_depth

    clip = render_clip(num_frames=12, width=240, height=180, textureless_wall=True, seed=0)
    folder = tmp_path / "learned"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(len(clip.depth)):
        noise = np.exp(0.5 * rng.standard_normal(clip.depth[k].shape)).astype(np.float32)
        np.save(folder / f"{k:06d}.npy", cv2.GaussianBlur(noise, (0, 0), 8))
    scores = {}
    for name, spec in (("mvs", "mvs"), ("fused", f"files:{folder}?disparity+mvs")):
        video = estimate(list(clip.images), tmp_path / name, prior=spec, progress_bar=False, vis=False)
        scores[name] = evaluate_depth(list(video.to_array()), list(clip.depth), align="sequence").abs_rel
    stats = json.loads((tmp_path / "fused" / "run.json").read_text())["prior"]["stats"]["local_fit"]
    assert stats["weak_geometry_kept"] is True and stats["weak_geometry_weight"] >= 0.5, stats
    assert scores["fused"] < 1.05 * scores["mvs"], scores
