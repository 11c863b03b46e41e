"""Tests of the weight-free multi-view stereo prior and its consistency / completion helpers.

Synthetic clips (steadydepth.synthetic) give exact depth and poses, so accuracy bounds
are checked against exact ground truth with ground-truth cameras.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from steadydepth.consistency.completion import complete_depth, snap_depth_edges, upsample_depth
from steadydepth.consistency.geometric import confirmed, geometric_consistency, reproject_check
from steadydepth.errors import InputError, ReconstructionError
from steadydepth.priors.base import PriorContext, create_prior
from steadydepth.priors.mvs import MVSPrior
from steadydepth.priors.mvs_edges import edge_test
from steadydepth.priors.mvs_settings import MVS_PRESETS
from steadydepth.priors.mvs_sweep import select_sources
from steadydepth.types import Cameras, Frame, Intrinsics

synthetic = pytest.importorskip("steadydepth.synthetic")

T, W, H = 16, 160, 120
RADIUS = 4  # search radius used in the tests: the buffer must stay at 2 * RADIUS + 1 frames
WIDE = 7  # wide-baseline radius used in the tests (the default 16 would span the whole clip)


def _aligned_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float]:
    """One least-squares scale and shift per sequence in disparity space, then AbsRel / delta1."""
    valid = (gt > 1e-3) & (pred > 0)
    if mask is not None:
        valid &= mask
    x, y = 1.0 / pred[valid], 1.0 / gt[valid]
    (s, b), *_ = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1), y, rcond=None)
    aligned = 1.0 / np.maximum(s / pred[valid] + b, 1e-6)
    g = gt[valid]
    return float(np.mean(np.abs(aligned - g) / g)), float(np.mean(np.maximum(aligned / g, g / aligned) < 1.25))


def _run(images: np.ndarray, cameras: Cameras, **overrides) -> tuple[list, MVSPrior]:
    prior = MVSPrior(MVS_PRESETS["balanced"])
    opts = {"search_radius": RADIUS, "wide_radius": WIDE, **overrides}
    ctx = PriorContext(cameras=cameras, num_frames=len(images), options={"mvs": opts})
    outs = list(prior.process((Frame(i, im) for i, im in enumerate(images)), ctx))
    return outs, prior


@pytest.fixture(scope="module")
def orbit():
    clip = synthetic.render_clip(T, W, H, motion="orbit", seed=0)
    cams = Cameras(clip.intrinsics, poses=list(clip.poses), source="gt")
    outs, prior = _run(clip.images, cams)
    return clip, outs, prior


@pytest.fixture(scope="module")
def mover():
    clip = synthetic.render_clip(T, W, H, motion="orbit", moving_object=True, seed=0)
    cams = Cameras(clip.intrinsics, poses=list(clip.poses), source="gt")
    outs, prior = _run(clip.images, cams)
    return clip, outs, prior


def test_every_frame_has_an_output_in_order(orbit):
    clip, outs, _ = orbit
    assert [o.index for o in outs] == list(range(T))
    for o in outs:
        assert o.kind == "depth" and o.metric is False
        assert o.values.shape == (H, W) and o.values.dtype == np.float32
        assert o.confidence.shape == (H, W) and o.confidence.dtype == np.float32
        assert np.isfinite(o.values).all() and (o.values > 0).all()  # holes are filled
        assert 0.0 <= o.confidence.min() and o.confidence.max() <= 1.0


def test_accuracy_against_exact_depth(orbit):
    clip, outs, _ = orbit
    pred = np.stack([o.values for o in outs])
    absrel, d1 = _aligned_metrics(pred, clip.depth)
    # measured 0.0172 / 0.9913 at 160x120 (0.0177 / 0.9908 before the edge test and the
    # 4-px snapping, 0.0180 / 0.9890 without edge snapping); the bounds leave a small margin
    assert absrel < 0.021, absrel
    assert d1 > 0.988, d1
    # ground-truth cameras are metric: the depth itself (no alignment) must already be right
    conf = np.stack([o.confidence for o in outs])
    sure = conf > 0.5
    assert sure.mean() > 0.5
    rel = np.abs(pred[sure] - clip.depth[sure]) / clip.depth[sure]
    assert float(np.median(rel)) < 0.01


def test_sparse_points_set_the_range_and_any_scale_works(orbit):
    """SfM-like input: scene units (poses scaled by 0.3) and a sparse cloud give the depth range."""
    clip, _, _ = orbit
    rng = np.random.default_rng(1)
    K = clip.intrinsics.K
    pts = []
    for k in (0, T // 2, T - 1):
        v, u = rng.integers(0, H, 300), rng.integers(0, W, 300)
        X = (np.linalg.inv(K) @ np.stack([u, v, np.ones_like(u)]).astype(float)) * clip.depth[k][v, u]
        pts.append((clip.poses[k][:3, :3] @ X).T + clip.poses[k][:3, 3])
    scale = 0.3
    poses = [p.copy() for p in clip.poses]
    for p in poses:
        p[:3, 3] *= scale
    cams = Cameras(clip.intrinsics, poses=poses, points=np.concatenate(pts) * scale, source="sfm")
    outs, _ = _run(clip.images[:8], cams)
    pred = np.stack([o.values for o in outs])
    absrel, d1 = _aligned_metrics(pred, clip.depth[:8])
    assert absrel < 0.035 and d1 > 0.97, (absrel, d1)
    assert abs(float(np.median(pred / clip.depth[:8])) - scale) < 0.01 * scale


def test_frames_without_pose_are_interpolated(orbit, caplog):
    clip, _, _ = orbit
    poses: list = [p.copy() for p in clip.poses[:8]]
    poses[3] = None
    cams = Cameras(clip.intrinsics, poses=poses, source="sfm")
    with caplog.at_level(logging.WARNING, logger="steadydepth.priors.mvs"):
        outs, _ = _run(clip.images[:8], cams)
    assert [o.index for o in outs] == list(range(8))
    assert any("no camera pose" in r.getMessage() for r in caplog.records)
    absrel, _ = _aligned_metrics(outs[3].values[None], clip.depth[3][None])
    assert absrel < 0.1, absrel  # the orbit is smooth: the interpolated pose is close


def test_window_buffer_is_bounded(orbit):
    _, _, prior = orbit
    assert prior.settings.source_window == WIDE
    assert prior.max_buffered <= 2 * WIDE + 1 < T
    s = prior.settings
    assert prior.max_cached_depths <= 2 * s.consistency_radius + 2


def test_wide_baseline_sweep_matches_what_near_views_cannot(orbit):
    """With source views one frame away the baseline is too short for much of the room; the
    wide sweep (views up to WIDE frames away) matches those pixels and lowers the error, and
    a frame whose near sweep is confident almost everywhere is left as it is."""
    clip, _, _ = orbit
    cams = Cameras(clip.intrinsics, poses=list(clip.poses), source="gt")
    near_only, _ = _run(clip.images, cams, search_radius=1, wide_radius=0)
    wide, prior = _run(clip.images, cams, search_radius=1)
    assert prior.max_buffered <= 2 * WIDE + 1
    a_near, _ = _aligned_metrics(np.stack([o.values for o in near_only]), clip.depth)
    a_wide, _ = _aligned_metrics(np.stack([o.values for o in wide]), clip.depth)
    sure_near = np.mean([(o.confidence > 0.5).mean() for o in near_only])
    sure_wide = np.mean([(o.confidence > 0.5).mean() for o in wide])
    assert a_wide < 0.93 * a_near, (a_near, a_wide)  # measured 0.0355 -> 0.0313
    assert sure_wide > sure_near + 0.02, (sure_near, sure_wide)  # measured 0.307 -> 0.338
    # below wide_min_share weak pixels the wide sweep does not run (radius 5: the edge test's
    # frames r-2 .. r+2 are still held either way)
    never, _ = _run(clip.images[:10], cams, search_radius=5, wide_min_share=1.01)
    off, _ = _run(clip.images[:10], cams, search_radius=5, wide_radius=0)
    for a, b in zip(never, off):
        np.testing.assert_array_equal(a.values, b.values)


def test_moving_object_gets_low_confidence(mover):
    clip, outs, _ = mover
    conf = np.stack([o.confidence for o in outs])
    dyn = clip.dynamic_mask
    assert dyn.sum() > 200
    on, off = float(conf[dyn].mean()), float(conf[~dyn].mean())
    assert on < 0.5 * off, (on, off)
    # the static part keeps its accuracy
    pred = np.stack([o.values for o in outs])
    absrel, d1 = _aligned_metrics(pred, clip.depth, mask=~dyn)
    assert absrel < 0.024 and d1 > 0.984, (absrel, d1)  # measured 0.0183 / 0.9902


def _static_cameras(n: int, warnings: list[str] | None = None) -> Cameras:
    pose = np.eye(4)
    intr = Intrinsics.from_fov(60.0, 64, 48)
    return Cameras(intr, poses=[pose.copy() for _ in range(n)], warnings=list(warnings or []))


@pytest.mark.parametrize("warn", [None, ["no-parallax: the camera only rotates"]])
def test_no_parallax_fallback(caplog, warn):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (6, 48, 64, 3), dtype=np.uint8)
    cams = _static_cameras(6, warn)
    if warn:  # with the SfM warning the poses do not matter
        for k, p in enumerate(cams.poses):
            p[0, 3] = 0.1 * k
    prior = MVSPrior()
    with caplog.at_level(logging.WARNING, logger="steadydepth.priors.mvs"):
        outs = list(prior.process((Frame(i, im) for i, im in enumerate(images)), PriorContext(cameras=cams)))
    assert [o.index for o in outs] == list(range(6))
    for o in outs:
        assert o.values.shape == (48, 64) and o.values.dtype == np.float32
        assert np.all(o.values == 0.0) and np.all(o.confidence == 0.0)  # invalid, not a made-up depth
    msgs = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(msgs) == 1 and "no multi-view depth" in msgs[0]
    if not warn:
        assert "do not move" in msgs[0] and "--prior hf" in msgs[0]
    assert prior.no_parallax


def test_needs_cameras_and_registry():
    prior = create_prior("mvs")
    assert isinstance(prior, MVSPrior) and prior.needs_cameras
    assert create_prior("mvs:fast").settings == MVS_PRESETS["fast"]
    with pytest.raises(InputError):
        create_prior("mvs:ultra")
    with pytest.raises(ReconstructionError):
        list(prior.process(iter([Frame(0, np.zeros((8, 8, 3), np.uint8))]), PriorContext(cameras=None)))
    with pytest.raises(InputError):
        ctx = PriorContext(cameras=_static_cameras(1), options={"mvs": {"no_such_option": 1}})
        list(MVSPrior().process(iter([]), ctx))


def test_select_sources_skips_duplicates_and_balances_sides():
    poses = {}
    for j in range(9):
        p = np.eye(4)
        p[0, 3] = 0.02 * (j - 4)  # 2 cm steps at 1 m depth
        poses[j] = p
    poses[5] = poses[4].copy()  # a duplicate of the reference position
    s = MVS_PRESETS["balanced"]
    chosen = select_sources(4, poses, 1.0, s)
    assert 5 not in chosen and len(chosen) == s.num_views
    assert any(j < 4 for j in chosen) and any(j > 4 for j in chosen)


def _plane_depth(K: np.ndarray, w: int, h: int, n_cam: np.ndarray, d: float) -> np.ndarray:
    """Exact z-depth of the plane ``n . X = d`` (camera coordinates)."""
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    rays = np.linalg.inv(K) @ np.stack([u.ravel(), v.ravel(), np.ones(u.size)])
    return (d / (n_cam @ rays)).reshape(h, w).astype(np.float32)


def test_geometric_consistency_on_exact_plane():
    intr = Intrinsics.from_fov(60.0, 80, 60)
    K = intr.K
    pose_a = np.eye(4)
    pose_b = np.eye(4)
    pose_b[:3, 3] = [0.1, 0.02, 0.0]
    n = np.array([0.1, -0.2, 1.0])
    n /= np.linalg.norm(n)
    depth_a = _plane_depth(K, 80, 60, n, 2.0)
    # the same world plane seen from b (plane offset changes by n . c_b)
    depth_b = _plane_depth(K, 80, 60, n, 2.0 - float(n @ pose_b[:3, 3]))
    pix_err, rel_err, back, seen = reproject_check(depth_a, depth_b, K, pose_a, pose_b)
    assert seen.mean() > 0.7
    assert float(pix_err[seen].max()) < 1e-3 and float(rel_err[seen].max()) < 1e-4
    res = geometric_consistency(depth_a, K, pose_a, [(depth_b, pose_b), (depth_b * 1.1, pose_b)])
    assert np.all(res.num_agree[seen] == 1)  # the scaled copy never agrees
    np.testing.assert_allclose(res.fused_depth[seen], depth_a[seen], rtol=1e-4)


def test_one_agreeing_view_is_enough_only_where_two_would_keep_almost_nothing():
    num_agree = np.zeros((10, 10), np.int32)
    num_agree[:5] = 1  # half the frame confirmed by one view
    num_agree[0, :5] = 2  # 5 % by two
    assert confirmed(num_agree, 2).sum() == 5
    assert confirmed(num_agree, 2, relax_below=0.1).sum() == 50  # 5 % < 10 %: one view is enough
    num_agree[1] = 2  # now 15 % by two: the strict rule stands
    assert confirmed(num_agree, 2, relax_below=0.1).sum() == 15
    assert confirmed(num_agree, 1, relax_below=1.0).sum() == 50


def test_relaxed_confirmation_keeps_more_matched_pixels(orbit):
    """Wired into the prior: a threshold no frame reaches keeps the single-view pixels (more
    matched, confident pixels), 0 keeps the strict rule (the fixture's default run)."""
    clip, strict, _ = orbit
    cams = Cameras(clip.intrinsics, poses=list(clip.poses), source="gt")
    relaxed, _ = _run(clip.images[:8], cams, relax_below=1.01)
    strict_only, _ = _run(clip.images[:8], cams, relax_below=0.0)
    n_relaxed = sum(int((o.confidence > 0.2).sum()) for o in relaxed)
    n_strict = sum(int((o.confidence > 0.2).sum()) for o in strict_only)
    assert n_relaxed > n_strict, (n_strict, n_relaxed)


def test_completion_recovers_linear_disparity_and_respects_edges():
    h, w = 40, 60
    disp = np.tile(np.linspace(0.2, 0.6, w, dtype=np.float32), (h, 1))
    depth = 1.0 / disp
    holey = depth.copy()
    holey[10:30, 20:40] = 0.0
    img = np.full((h, w, 3), 128, np.uint8)
    out, conf = complete_depth(holey, np.ones_like(depth), img, fill_confidence=0.2, far_weight=0.0)
    np.testing.assert_allclose(out, depth, rtol=2e-3)  # harmonic fill of a linear function is exact
    assert np.all(conf[10:30, 20:40] == np.float32(0.2)) and np.all(conf[:10] == 1.0)
    # two regions split by a colour edge: a hole straddling the edge is filled per side
    two = np.where(np.arange(w)[None, :] < 30, 1.0, 4.0).astype(np.float32) * np.ones((h, 1), np.float32)
    img2 = np.where(np.arange(w)[None, :, None] < 30, 40, 220).astype(np.uint8) * np.ones((h, 1, 3), np.uint8)
    holey2 = two.copy()
    holey2[15:25, 24:36] = 0.0
    out2, _ = complete_depth(holey2, np.ones_like(two), img2)
    np.testing.assert_allclose(out2, two, rtol=0.05)
    # a blank region cut off by a colour edge from near observations ends far, not near
    far = np.full((h, w), 2.0, np.float32)
    far[:, 40:] = 8.0
    img3 = np.full((h, w, 3), 60, np.uint8)
    img3[:20, :30] = 200  # blank patch (different colour), depth unobserved
    holey3 = far.copy()
    holey3[:20, :30] = 0.0
    out3, conf3 = complete_depth(holey3, np.ones_like(far), img3)
    assert float(np.median(out3[:20, :30])) > 4.0 and np.all(conf3[:20, :30] < 0.3)
    up, upc = upsample_depth(out2, np.ones_like(out2), np.zeros((2 * h, 2 * w, 3), np.uint8))
    assert up.shape == (2 * h, 2 * w) and (up > 0).all() and upc.shape == up.shape


def test_upsampling_never_blends_across_a_depth_edge():
    """Low-res step in depth, high-res colour edge between two low-res pixel centres."""
    hl, wl = 10, 20
    near, far = 1.0, 4.0
    depth = np.where(np.arange(wl)[None, :] <= 10, near, far).astype(np.float32) * np.ones((hl, 1), np.float32)
    img = np.where(np.arange(2 * wl)[None, :, None] < 21, 40, 220).astype(np.uint8) * np.ones((2 * hl, 1, 3), np.uint8)
    up, conf = upsample_depth(depth, np.ones_like(depth), img)
    truth = np.where(np.arange(2 * wl)[None, :] < 21, near, far) * np.ones((2 * hl, 1))
    np.testing.assert_allclose(up, truth, rtol=1e-5)  # every pixel takes its colour's side, no blend
    assert (conf == 1.0).all()
    plain, _ = upsample_depth(depth, np.ones_like(depth), img, edge_aware=False)
    assert np.abs(plain - truth).max() > 0.5  # plain bilinear blends at column 21
    # away from edges both agree: a smooth ramp is upsampled bilinearly either way
    ramp = (1.0 / np.linspace(0.5, 0.6, wl, dtype=np.float32)) * np.ones((hl, 1), np.float32)
    a, _ = upsample_depth(ramp, np.ones_like(ramp), img)
    b, _ = upsample_depth(ramp, np.ones_like(ramp), img, edge_aware=False)
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_snap_depth_edges_moves_a_fattened_edge_onto_the_colour_edge():
    h, w = 30, 40
    img = np.where(np.arange(w)[None, :, None] < 20, 40, 220).astype(np.uint8) * np.ones((h, 1, 3), np.uint8)
    truth = np.where(np.arange(w)[None, :] < 20, 1.0, 3.0).astype(np.float32) * np.ones((h, 1), np.float32)
    fat = np.where(np.arange(w)[None, :] < 22, 1.0, 3.0).astype(np.float32) * np.ones((h, 1), np.float32)
    out = snap_depth_edges(fat, img, radius=3, iterations=2)
    np.testing.assert_allclose(out, truth)  # the 2-px foreground band went back to the background
    np.testing.assert_allclose(snap_depth_edges(truth, img, radius=3), truth)  # a correct edge stays
    holey = truth.copy()
    holey[5, 5] = 0.0
    assert snap_depth_edges(holey, img)[5, 5] == 0.0  # invalid pixels stay invalid


def test_edge_test_gives_fattened_background_pixels_back_to_the_background():
    """Exact depth with every foreground object fattened by 3 px: the local test takes much of it back.

    Measured: 2.4 % of the pixels off by more than 25 % -> 1.4 %; 0.08 % of the exact depth's pixels move."""
    import cv2

    clip = synthetic.render_clip(5, 320, 180, motion="orbit", seed=0)
    gray = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0 for im in clip.images]
    truth = clip.depth[2]
    fat = 1.0 / cv2.dilate(1.0 / truth, np.ones((7, 7), np.uint8))  # nearest depth within 3 px
    wrong = np.maximum(fat / truth, truth / fat) >= 1.25
    assert wrong.mean() > 0.01  # the scene has depth edges to fatten
    K, P = clip.intrinsics.K, clip.poses
    out, moved = edge_test(fat, gray[2], [gray[j] for j in (0, 1, 3, 4)], K, P[2], [P[j] for j in (0, 1, 3, 4)],
                           radius=5)
    still = np.maximum(out / truth, truth / out) >= 1.25
    assert still.mean() < 0.7 * wrong.mean(), (still.mean(), wrong.mean())
    worse = np.abs(np.log(out / truth)) > np.abs(np.log(fat / truth)) + 1e-6
    # measured: 13.5 % of the moves overshoot (the farthest depth within the radius is not always the right one)
    assert moved.any() and (moved & worse).sum() < 0.2 * moved.sum()
    exact, moved_exact = edge_test(truth, gray[2], [gray[j] for j in (0, 1, 3, 4)], K, P[2],
                                   [P[j] for j in (0, 1, 3, 4)], radius=5)
    assert moved_exact.mean() < 0.003  # exact depth stays (nearly) as it is
    assert (np.maximum(exact / truth, truth / exact) >= 1.25).mean() < 0.003
    holey = truth.copy()
    holey[:10, :10] = 0.0
    assert (edge_test(holey, gray[2], [gray[1]], K, P[2], [P[1]])[0][:10, :10] == 0).all()


def test_short_clips_are_matched_at_a_higher_resolution():
    clip = synthetic.render_clip(4, 320, 180, motion="orbit", seed=0)
    cams = Cameras(clip.intrinsics, poses=list(clip.poses), source="gt")
    prior = MVSPrior(MVS_PRESETS["balanced"])
    frames = [Frame(i, im) for i, im in enumerate(clip.images)]
    ctx = PriorContext(cameras=cams, num_frames=4, options={"mvs": {"search_radius": 3}})
    outs = list(prior.process(iter(frames), ctx))
    assert prior.work_size == (320, 180)  # short clip: work at the processing resolution
    absrel, d1 = _aligned_metrics(np.stack([o.values for o in outs]), clip.depth)
    assert absrel < 0.05 and d1 > 0.95, (absrel, d1)
    ctx = PriorContext(cameras=cams, num_frames=4, options={"mvs": {"search_radius": 3, "short_clip_frames": 0}})
    list(prior.process(iter(frames), ctx))
    assert prior.work_size == (240, 135)
