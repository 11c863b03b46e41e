"""The SIMPLE_RADIAL lens model and its resampling between input pixels and the pinhole grid.

Oracles: pycolmap's own SIMPLE_RADIAL camera (the model SfM estimates) and OpenCV's
``projectPoints``; the synthetic renderer traces the rays of a distorted camera exactly, so a
pinhole render and a distorted render of the same view are exact ground truth for each other.
"""

from __future__ import annotations

import dataclasses
import logging

import cv2
import numpy as np
import pytest

from steadydepth.cameras.colmap_io import read_colmap_text, write_colmap_text
from steadydepth.cameras.lens import RadialLens, lens_for
from steadydepth.io.ply import depth_to_points
from steadydepth.types import Cameras, Intrinsics

synthetic = pytest.importorskip("steadydepth.synthetic")

W, H = 160, 120
K1 = 0.25  # 12.8 px at the corner of a 60-degree 160x120 camera


@pytest.fixture(scope="module")
def views():
    """One view rendered through a pinhole camera and through the same camera with ``K1``."""
    from steadydepth.synthetic.render import render_frame
    from steadydepth.synthetic.scene import build_scene
    from steadydepth.synthetic.paths import camera_path

    scene = build_scene(seed=0)
    pose = camera_path(4, "orbit", seed=0)[1]
    pin = Intrinsics.from_fov(60.0, W, H)
    dist = dataclasses.replace(pin, k1=K1)
    img_p, dep_p, _ = render_frame(scene, pin, pose)
    img_d, dep_d, _ = render_frame(scene, dist, pose)
    return dist, (img_p, dep_p), (img_d, dep_d), pose


def _smooth(depth: np.ndarray, ratio: float = 1.05, radius: int = 2) -> np.ndarray:
    """Pixels whose (2 radius + 1)^2 neighbourhood has no depth edge (max/min under ``ratio``)."""
    k = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    return cv2.dilate(depth, k) <= ratio * cv2.erode(depth, k)


def _interior(shape, margin: int) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[margin:-margin, margin:-margin] = True
    return m


@pytest.mark.parametrize("k", [0.33, -0.2])
def test_model_is_colmap_simple_radial_and_opencv_k1(k):
    """Pinhole pixel -> input pixel agrees with pycolmap's SIMPLE_RADIAL (COLMAP principal point =
    ours + 0.5) and with OpenCV's k1; input pixel -> ray agrees with pycolmap's inverse."""
    import pycolmap

    intr = Intrinsics(150.0, 150.0, 81.25, 57.5, W, H, k1=k)
    cam = pycolmap.Camera.create_from_model_name(1, "SIMPLE_RADIAL", 150.0, W, H)
    cam.params = [150.0, intr.cx + 0.5, intr.cy + 0.5, k]
    lens = RadialLens(intr)
    mx, my = lens.input_positions(W, H)
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    x, y = (u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy
    colmap = np.asarray(cam.img_from_cam(np.stack([x.ravel(), y.ravel(), np.ones(x.size)], 1))).reshape(H, W, 2) - 0.5
    ok = mx > -1  # pixels past the fold of k < 0 have no position
    assert ok.mean() > 0.95
    np.testing.assert_allclose(mx[ok], colmap[..., 0][ok], atol=2e-4)  # float32 maps
    np.testing.assert_allclose(my[ok], colmap[..., 1][ok], atol=2e-4)
    cv, _ = cv2.projectPoints(np.stack([x.ravel(), y.ravel(), np.ones(x.size)], 1), np.zeros(3), np.zeros(3),
                              intr.K, np.array([k, 0.0, 0.0, 0.0]))
    np.testing.assert_allclose(cv.reshape(H, W, 2)[ok], colmap[ok], atol=1e-9)
    # the inverse: rays of input pixels, exact where they exist
    rx, ry = lens.normalised_rays(W, H)
    has = np.isfinite(rx)
    back = np.asarray(cam.cam_from_img(np.stack([u[has] + 0.5, v[has] + 0.5], 1)))
    np.testing.assert_allclose(rx[has], back[:, 0], atol=1e-8)
    np.testing.assert_allclose(ry[has], back[:, 1], atol=1e-8)
    assert has.mean() > 0.9


def test_k1_is_normalised_so_resizing_keeps_the_model():
    intr = Intrinsics(150.0, 140.0, 79.5, 59.5, W, H, k1=0.2)
    big = intr.scaled(2 * W, 2 * H)
    assert big.k1 == 0.2
    mx, my = RadialLens(intr).input_positions(W, H)
    bx, by = RadialLens(big).input_positions(2 * W, 2 * H)
    # pixel (u, v) at W x H is pixel (2u + 0.5, 2v + 0.5) at 2W x 2H (pixel centres kept exact);
    # the distorted position of the same ray scales the same way
    np.testing.assert_allclose(2 * mx[10:-10, 10:-10] + 0.5, cv2.resize(bx, (W, H), interpolation=cv2.INTER_LINEAR)
                               [10:-10, 10:-10], atol=2e-3)
    np.testing.assert_allclose(2 * my[10:-10, 10:-10] + 0.5, cv2.resize(by, (W, H), interpolation=cv2.INTER_LINEAR)
                               [10:-10, 10:-10], atol=2e-3)


def test_distort_depth_of_the_true_pinhole_depth_is_the_true_distorted_depth(views):
    dist, (_, dep_p), (_, dep_d), _ = views
    lens = RadialLens(dist)
    out, conf = lens.distort_depth(dep_p, np.ones_like(dep_p))
    assert (out > 0).all() and np.allclose(conf, 1.0, atol=1e-6)  # k > 0: every input pixel sees inside the pinhole grid
    rel = np.abs(out - dep_d) / dep_d
    smooth = _smooth(dep_d)
    assert smooth.mean() > 0.6
    assert np.median(rel[smooth]) < 1e-6  # bilinear in disparity is exact on planes (creases and spheres: nearly)
    assert np.percentile(rel[smooth], 99) < 2e-3, np.percentile(rel[smooth], 99)
    # the pinhole map itself is far from the distorted truth: the resampling is what makes them agree
    assert np.median((np.abs(dep_p - dep_d) / dep_d)[smooth]) > 20 * np.median(rel[smooth]) + 1e-3
    # at depth edges: one side or the other (the nearest pixel), never a blend
    edges = ~smooth
    near = cv2.erode(dep_p, np.ones((5, 5), np.uint8)), cv2.dilate(dep_p, np.ones((5, 5), np.uint8))
    inv = lens.pinhole_positions(W, H)
    pu = np.clip(np.rint(inv[0]).astype(int), 0, W - 1)
    pv = np.clip(np.rint(inv[1]).astype(int), 0, H - 1)
    lo, hi = near[0][pv, pu], near[1][pv, pu]
    assert ((out[edges] >= lo[edges] * (1 - 1e-6)) & (out[edges] <= hi[edges] * (1 + 1e-6))).all()


def test_depth_resampling_keeps_invalid_pixels_out_and_never_blends_a_step():
    intr = dataclasses.replace(Intrinsics.from_fov(60.0, W, H), k1=0.3)
    lens = RadialLens(intr)
    v, u = np.mgrid[0:H, 0:W]
    pin = np.where(u < W // 2, 1.0, 3.0).astype(np.float32)  # a depth step ...
    pin[(v > 40) & (v < 80) & (u > 20) & (u < 60)] = 0.0  # ... and a hole
    out, conf = lens.distort_depth(pin, np.full_like(pin, 0.5))
    valid = out > 0
    vals = out[valid]
    assert np.all(np.isclose(vals, 1.0, rtol=1e-6) | np.isclose(vals, 3.0, rtol=1e-6))
    np.testing.assert_allclose(conf[valid], 0.5, rtol=1e-6)
    assert (conf[~valid] == 0).all()
    # exactly the input pixels whose nearest pinhole pixel is valid
    px, py = lens.pinhole_positions(W, H)
    nearest = pin[np.clip(np.rint(py).astype(int), 0, H - 1), np.clip(np.rint(px).astype(int), 0, W - 1)]
    assert abs(int(valid.sum()) - int((nearest > 0).sum())) <= 0.002 * valid.size  # ties at half pixels


def test_undistort_then_distort_depth_is_exact_away_from_the_border(views):
    dist, (_, dep_p), (_, dep_d), _ = views
    lens = RadialLens(dist)
    und, c_und = lens.undistort_depth(dep_d, np.ones_like(dep_d))
    # pinhole pixels whose ray leaves the input image (k > 0: the corners) are invalid, not invented
    mx, my = lens.input_positions(W, H)
    outside = (mx < -0.5) | (mx > W - 0.5) | (my < -0.5) | (my > H - 0.5)
    assert outside.any() and (und[outside] == 0).all() and (c_und[outside] == 0).all()
    smooth_p = _smooth(dep_p) & (und > 0)
    assert np.percentile((np.abs(und - dep_p) / dep_p)[smooth_p], 99) < 2e-3
    back, _ = lens.distort_depth(und, c_und)
    keep = _smooth(dep_d) & _interior(dep_d.shape, 6)
    assert (back[keep] > 0).all()
    rel = np.abs(back - dep_d)[keep] / dep_d[keep]
    assert np.median(rel) < 1e-6 and np.percentile(rel, 99) < 2e-3, (np.median(rel), np.percentile(rel, 99))


def test_undistort_image_gives_the_pinhole_image(views):
    dist, (img_p, _), (img_d, _), _ = views
    und = RadialLens(dist).undistort_image(img_d)
    assert und.shape == img_d.shape and und.dtype == np.uint8
    mx, my = RadialLens(dist).input_positions(W, H)
    inside = (mx > 1) & (mx < W - 2) & (my > 1) & (my < H - 2)
    err = np.abs(und.astype(np.float64) - img_p)[inside].mean()
    before = np.abs(img_d.astype(np.float64) - img_p)[inside].mean()
    assert err < 0.35 * before, (err, before)
    # pinhole pixels that see beyond the input are marked, and depth there is never kept
    lens = RadialLens(dist)
    unseen = lens.unseen(W, H)
    np.testing.assert_array_equal(unseen, ~((mx >= -0.5) & (mx <= W - 0.5) & (my >= -0.5) & (my <= H - 0.5)))
    assert 0 < unseen.mean() < 0.25
    d, c = lens.drop_unseen(np.ones((H, W), np.float32), np.ones((H, W), np.float32))
    np.testing.assert_array_equal(d > 0, ~unseen)
    np.testing.assert_array_equal(c > 0, ~unseen)


def test_negative_k1_past_the_fold_is_invalid_not_wrapped():
    """Barrel k1 < 0 folds over at r^2 = 1 / (3 |k1|): pinhole pixels past it and input pixels beyond
    the largest distorted radius have no counterpart and stay invalid."""
    k = -0.3
    intr = dataclasses.replace(Intrinsics.from_fov(90.0, W, H), k1=k)
    lens = RadialLens(intr)
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    r = np.hypot((u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy)
    r_fold = np.sqrt(1.0 / (3.0 * -k))
    r_max = r_fold * (1.0 + k * r_fold**2)  # largest distorted radius
    mx, _ = lens.input_positions(W, H)
    has_source = mx > -1e5
    assert (~has_source).any() and has_source[r < 0.999 * r_fold].all() and not has_source[r > 1.001 * r_fold].any()
    rx, _ = lens.normalised_rays(W, H)
    has_ray = np.isfinite(rx)
    assert (~has_ray).any() and has_ray[r < 0.999 * r_max].all() and not has_ray[r > 1.001 * r_max].any()
    depth = np.ones((H, W), np.float32)
    und, _ = lens.undistort_depth(depth, depth)
    assert (und[~has_source] == 0).all()
    back, _ = lens.distort_depth(depth, depth)
    px, py = lens.pinhole_positions(W, H)
    lands = has_ray & (px >= -0.5) & (px <= W - 0.5) & (py >= -0.5) & (py <= H - 0.5)  # the periphery does not
    assert lands.mean() > 0.3 and not lands.all()
    np.testing.assert_array_equal(back > 0, lands)


def test_lens_for_skips_negligible_distortion_and_says_what_it_does(caplog):
    base = Intrinsics.from_fov(60.0, W, H)
    assert lens_for(base, W, H) is None
    tiny = dataclasses.replace(base, k1=0.005)  # ~0.26 px at the corner
    with caplog.at_level(logging.INFO, logger="steadydepth"):
        assert lens_for(tiny, W, H) is None
        lens = lens_for(dataclasses.replace(base, k1=K1), W, H)
    assert isinstance(lens, RadialLens) and lens.corner_shift_px(W, H) > 12
    msgs = [r.getMessage() for r in caplog.records if r.name.startswith("steadydepth")]
    assert any("under 0.5 px" in m for m in msgs)
    assert any("undistorted frames" in m and "k1=0.25" in m for m in msgs)
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name.startswith("steadydepth"))


def test_points_unproject_through_the_lens(views):
    """depth_to_points of a distorted depth map gives the true 3D surface (pycolmap's rays as the oracle)."""
    import pycolmap

    dist, _, (img_d, dep_d), pose = views
    cam = pycolmap.Camera.create_from_model_name(1, "SIMPLE_RADIAL", dist.fx, W, H)
    cam.params = [dist.fx, dist.cx + 0.5, dist.cy + 0.5, dist.k1]
    pts, cols = depth_to_points(dep_d, dist, pose, image=img_d)
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    rays = np.asarray(cam.cam_from_img(np.stack([u.ravel() + 0.5, v.ravel() + 0.5], 1)))
    X = np.concatenate([rays, np.ones((rays.shape[0], 1))], 1) * dep_d.reshape(-1, 1).astype(np.float64)
    Xw = X @ pose[:3, :3].T + pose[:3, 3]
    assert pts.shape == Xw.shape
    np.testing.assert_allclose(pts, Xw, atol=2e-5 * float(dep_d.max()))
    np.testing.assert_array_equal(cols, img_d.reshape(-1, 3))
    pinhole, _ = depth_to_points(dep_d, dataclasses.replace(dist, k1=0.0), pose)
    assert np.abs(pinhole - Xw).max() > 0.05  # the pinhole unprojection is off by centimetres at the corners


@pytest.mark.parametrize("fy", [150.0, 152.5])
def test_colmap_text_keeps_k1(tmp_path, fy):
    import pycolmap

    intr = Intrinsics(150.0, fy, 79.25, 59.75, W, H, k1=-0.125)
    cams = Cameras(intr, poses=[np.eye(4)], frame_indices=[0], source="test")
    write_colmap_text(cams, tmp_path)
    model = (tmp_path / "cameras.txt").read_text()
    assert ("SIMPLE_RADIAL" if fy == 150.0 else "OPENCV") in model and "distorted input pixels" in model
    back = read_colmap_text(tmp_path)
    assert back.intrinsics == intr and not back.warnings
    rec = pycolmap.Reconstruction(str(tmp_path))  # COLMAP itself reads the same camera
    cam = rec.cameras[1]
    assert cam.model.name == ("SIMPLE_RADIAL" if fy == 150.0 else "OPENCV")
    pt = np.array([[0.3, -0.2, 1.0]])
    ours = RadialLens(intr)
    xd, yd = ours.distort_normalised(np.array([0.3]), np.array([-0.2]))
    np.testing.assert_allclose(np.asarray(cam.img_from_cam(pt))[0] - 0.5,
                               [xd[0] * intr.fx + intr.cx, yd[0] * intr.fy + intr.cy], atol=1e-9)
    assert intr.to_dict()["k1"] == -0.125 and intr.to_dict()["model"] == "SIMPLE_RADIAL"


def test_other_distortion_models_are_still_reported(tmp_path):
    (tmp_path / "cameras.txt").write_text(f"1 RADIAL {W} {H} 150 80 60 0.1 0.02\n")
    (tmp_path / "images.txt").write_text("1 1 0 0 0 0 0 0 1 f0.png\n\n")
    back = read_colmap_text(tmp_path)
    assert back.intrinsics.k1 == 0.0
    assert any(w.startswith("distortion:") for w in back.warnings)
