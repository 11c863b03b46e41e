"""Temporal multi-view fusion on synthetic clips with exact depth and poses."""

from __future__ import annotations

import numpy as np
import pytest

from steadydepth.consistency.temporal import (
    TemporalFusion,
    TemporalSettings,
    backproject_world,
    splat_depth,
    median_of_valid,
)
from steadydepth.synthetic import render_clip


def _K(f=100.0, w=64, h=48):
    return np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1.0]])


def _pose(tx=0.0):
    p = np.eye(4)
    p[0, 3] = tx
    return p


def test_splat_of_a_plane_from_a_translated_camera_keeps_its_depth():
    K = _K()
    depth = np.full((48, 64), 2.0, np.float32)
    pts = backproject_world(depth, K, _pose(0.1))
    out = splat_depth(pts, K, _pose(0.0), (64, 48))
    seen = out > 0
    # a 0.1 shift at depth 2 moves the plane 5 px sideways: most of the image is covered
    assert seen.mean() > 0.85
    np.testing.assert_allclose(out[seen], 2.0, rtol=1e-6)
    assert not seen[:, :3].any()  # the strip the source camera (shifted right) does not see stays empty


def test_splat_keeps_the_nearest_surface():
    K = _K()
    pts = np.array([[0.0, 0.0, 3.0], [0.0, 0.0, 1.5], [0.0, 0.0, 2.0]])
    out = splat_depth(pts, K, np.eye(4), (64, 48))
    assert out[int(K[1, 2] + 0.5), int(K[0, 2] + 0.5)] == pytest.approx(1.5)
    assert (out > 0).sum() == 1


def test_median_ignores_invalid_entries():
    values = np.array([1.0, 5.0, 2.0, 0.0], np.float32).reshape(4, 1, 1)
    med, count = median_of_valid(values)
    assert med[0, 0] == pytest.approx(2.0) and count[0, 0] == 3
    med, count = median_of_valid(np.zeros_like(values))
    assert med[0, 0] == 0.0 and count[0, 0] == 0


def _fuse_all(fusion: TemporalFusion, depths, confs):
    out = []
    for d, c in zip(depths, confs):
        out += fusion.push(d, c)
    return out + fusion.flush()


def test_fusion_removes_per_frame_noise_and_streams_in_bounded_memory():
    clip = render_clip(14, 96, 72, motion="orbit", seed=1)
    rng = np.random.default_rng(0)
    gt = clip.depth.astype(np.float32)
    # every frame wrong on its own: a per-frame scale wobble plus 3 % pixel noise
    noisy = np.stack([g * np.float32(1 + 0.04 * rng.standard_normal()) *
                      (1 + 0.03 * rng.standard_normal(g.shape)).astype(np.float32) for g in gt])
    conf = np.ones_like(noisy)
    fusion = TemporalFusion(clip.intrinsics.K, list(clip.poses), TemporalSettings(radius=3))
    out = _fuse_all(fusion, noisy, conf)
    assert len(out) == len(gt)
    assert fusion.max_held <= 2 * 3 + 1
    err_in = np.mean([np.mean(np.abs(n - g) / g) for n, g in zip(noisy, gt)])
    err_out = np.mean([np.mean(np.abs(d - g) / g) for (d, _), g in zip(out, gt)])
    assert err_out < 0.6 * err_in, (err_in, err_out)
    # frame-to-frame change of the error (flicker) drops too
    flick_in = np.mean([np.mean(np.abs((a - ga) / ga - (b - gb) / gb))
                        for a, b, ga, gb in zip(noisy[:-1], noisy[1:], gt[:-1], gt[1:])])
    flick_out = np.mean([np.mean(np.abs((a[0] - ga) / ga - (b[0] - gb) / gb))
                         for a, b, ga, gb in zip(out[:-1], out[1:], gt[:-1], gt[1:])])
    assert flick_out < 0.6 * flick_in, (flick_in, flick_out)
    assert all(0.0 <= c.min() and c.max() <= 1.0 for _, c in out)


def test_exact_depth_is_left_exact_and_a_frame_without_pose_passes_through():
    clip = render_clip(8, 80, 60, motion="walk", seed=2)
    gt = clip.depth.astype(np.float32)
    poses: list = list(clip.poses)
    poses[4] = None
    fusion = TemporalFusion(clip.intrinsics.K, poses, TemporalSettings(radius=2))
    out = _fuse_all(fusion, gt, np.ones_like(gt))
    np.testing.assert_array_equal(out[4][0], gt[4])
    for k in (0, 3, 7):
        rel = np.abs(out[k][0] - gt[k]) / gt[k]
        assert np.median(rel) < 1e-3 and np.mean(rel < 0.01) > 0.95  # nearest-pixel splats: sub-pixel slant, edges


@pytest.mark.parametrize("n, shot_of", [(14, None), (14, [0] * 6 + [1] * 8), (4, None)])
def test_every_frame_gets_two_radius_neighbours_where_its_shot_has_them(monkeypatch, n, shot_of):
    """The window slides inwards at the clip's and each shot's ends instead of shrinking to one side."""
    poses = [_pose(0.05 * k) for k in range(n)]
    used: list[int] = []
    fusion = TemporalFusion(_K(), poses, TemporalSettings(radius=2), shot_of=shot_of)
    monkeypatch.setattr(fusion, "_fuse", lambda depth, conf, pose, nb: (used.append(len(nb)), (depth, conf))[1])
    d = np.full((48, 64), 2.0, np.float32)
    out = _fuse_all(fusion, [d] * n, [np.ones_like(d)] * n)
    assert len(out) == n and fusion.max_held <= 2 * 2 + 1
    shots = shot_of or [0] * n
    assert used == [min(4, shots.count(shots[k]) - 1) for k in range(n)]


def test_radius_zero_is_the_identity():
    clip = render_clip(4, 48, 36, motion="orbit", seed=0)
    d = clip.depth.astype(np.float32)
    out = _fuse_all(TemporalFusion(clip.intrinsics.K, list(clip.poses), TemporalSettings(radius=0)), d,
                    np.full_like(d, 0.5))
    for (a, c), b in zip(out, d):
        np.testing.assert_array_equal(a, b)
        assert np.all(c == 0.5)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        TemporalSettings(radius=-1)
    with pytest.raises(ValueError):
        TemporalSettings(agree_tol=0)
