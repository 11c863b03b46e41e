"""Ground-truth readers: gt/ layout, Open3D RGB-D data, single TUM / NYU / SUN frames."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from steadydepth.errors import InputError
from steadydepth.eval.datasets import (
    GroundTruthSequence,
    load_ground_truth,
    load_gt_folder,
    load_open3d_rgbd,
    load_rgbd_pair,
    nyu_raw_to_metres,
    read_open3d_log,
    register_depth,
    rgbd_intrinsics,
    sun_depth_to_metres,
)
from steadydepth.types import Intrinsics

DATA = Path(os.environ.get("STEADYDEPTH_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
OPEN3D = DATA / "open3d_rgbd"
OTHER = OPEN3D / "other_formats"


def _need(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"real RGB-D data not available at {path} (set STEADYDEPTH_DATA)")


def _reprojection_error(seq: GroundTruthSequence, i: int, j: int, poses: np.ndarray) -> tuple[float, float]:
    """Median relative depth error (and share under 1 %) of frame i's depth seen from frame j."""
    K = seq.intrinsics.K
    d = seq.depth[i].astype(np.float64)
    h, w = d.shape
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    m = d.ravel() > 0
    z = d.ravel()[m]
    X = np.stack([(u.ravel()[m] - K[0, 2]) / K[0, 0] * z, (v.ravel()[m] - K[1, 2]) / K[1, 1] * z, z], axis=1)
    T = np.linalg.inv(poses[j]) @ poses[i]
    Y = X @ T[:3, :3].T + T[:3, 3]
    uu = np.rint(K[0, 0] * Y[:, 0] / Y[:, 2] + K[0, 2]).astype(int)
    vv = np.rint(K[1, 1] * Y[:, 1] / Y[:, 2] + K[1, 2]).astype(int)
    ok = (Y[:, 2] > 0) & (uu >= 0) & (uu < w) & (vv >= 0) & (vv < h)
    dj = seq.depth[j][vv[ok], uu[ok]].astype(np.float64)
    zj = Y[ok, 2]
    keep = dj > 0
    rel = np.abs(dj[keep] - zj[keep]) / dj[keep]
    return float(np.median(rel)), float(np.mean(rel < 0.01))


# ---------------------------------------------------------------------------- Open3D
def test_open3d_sequence_shapes_units_and_intrinsics() -> None:
    _need(OPEN3D)
    seq = load_open3d_rgbd(OPEN3D)
    assert len(seq) == 5 and seq.images is not None and len(seq.images) == 5
    assert seq.images[0].shape == (480, 640, 3) and seq.images[0].dtype == np.uint8
    assert seq.depth[0].shape == (480, 640) and seq.depth[0].dtype == np.float32
    valid = seq.depth[0][seq.depth[0] > 0]
    # metres, not millimetres: an indoor room, README says up to about 2.7 m
    assert 0.5 < valid.min() and valid.max() < 3.0 and np.median(valid) > 1.0
    assert seq.intrinsics == Intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)
    assert seq.poses is not None and seq.poses.shape == (5, 4, 4)
    for T in seq.poses:
        np.testing.assert_allclose(T[:3, :3].T @ T[:3, :3], np.eye(3), atol=1e-9)
    step = np.linalg.norm(np.diff(seq.poses[:, :3, 3], axis=0), axis=1)
    assert np.all((0.015 < step) & (step < 0.035))          # README: about 2.4 cm per frame
    assert seq.valid(0).mean() > 0.8 and seq.max_depth == 10.0


def test_open3d_poses_are_camera_to_world() -> None:
    """Frame 0's depth, moved with the trajectory's poses, lands on frame 1's (and 4's) depth."""
    _need(OPEN3D)
    seq = load_open3d_rgbd(OPEN3D)
    med01, share01 = _reprojection_error(seq, 0, 1, seq.poses)
    med04, share04 = _reprojection_error(seq, 0, 4, seq.poses)
    # measured: 0.30 % / 0.31 % median (mm quantisation + nearest-pixel lookup), ~95 % under 1 %
    assert med01 < 0.006 and share01 > 0.85
    assert med04 < 0.006 and share04 > 0.85
    # read as world-to-camera instead, 10 cm apart, the depths disagree (measured 7.4 %)
    med_wrong, _ = _reprojection_error(seq, 0, 4, np.linalg.inv(seq.poses))
    assert med_wrong > 5 * med04


def test_load_ground_truth_recognises_open3d() -> None:
    _need(OPEN3D)
    seq = load_ground_truth(OPEN3D, max_depth=4.0)
    assert len(seq) == 5 and seq.max_depth == 4.0 and seq.name == "open3d_rgbd"


def test_read_open3d_log_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(0)
    mats = rng.normal(size=(3, 4, 4))
    text = "".join(f"{k} {k} {k + 1}\n" + "\n".join(" ".join(repr(float(x)) for x in row) for row in m) + "\n"
                   for k, m in enumerate(mats))
    (tmp_path / "t.log").write_text(text)
    np.testing.assert_array_equal(read_open3d_log(tmp_path / "t.log"), mats)
    (tmp_path / "bad.log").write_text("0 0 1\n1 2 3 4\n")
    with pytest.raises(InputError, match="bad.log"):
        read_open3d_log(tmp_path / "bad.log")


# ---------------------------------------------------------------------------- single frames
def test_depth_conversions_by_hand() -> None:
    # NYU toolbox: 351.3 / (1092.5 - raw); 2047 = no return; raw > 1092.5 would be negative
    d = nyu_raw_to_metres(np.array([1000, 500, 2047, 1100], dtype=np.uint16))
    np.testing.assert_allclose(d, [351.3 / 92.5, 351.3 / 592.5, 0.0, 0.0], rtol=1e-6)
    # SUN: millimetres rotated left by 3 bits inside 16 bits
    mm = np.array([2723, 1057, 0, 9870], dtype=np.uint32)
    stored = (((mm << 3) | (mm >> 13)) & 0xFFFF).astype(np.uint16)
    np.testing.assert_allclose(sun_depth_to_metres(stored), mm / 1000.0, rtol=1e-7)


@pytest.mark.parametrize("dataset,color,depth", [
    ("tum", "TUM_color.png", "TUM_depth.png"),
    ("nyu", "NYU_color.ppm", "NYU_depth.pgm"),
    ("sun", "SUN_color.jpg", "SUN_depth.png"),
])
def test_rgbd_pairs_give_plausible_indoor_metres(dataset: str, color: str, depth: str) -> None:
    _need(OTHER)
    image, d = load_rgbd_pair(OTHER / color, OTHER / depth, dataset)
    assert image.shape == (480, 640, 3) and image.dtype == np.uint8
    assert d.shape == (480, 640) and d.dtype == np.float32
    valid = d[d > 0]
    assert valid.size > 0.5 * d.size
    # measured medians: TUM 2.42 m, NYU 3.27 m, SUN 2.72 m; a Kinect sees 0.4-10 m
    assert 0.4 < np.percentile(valid, 1) and np.percentile(valid, 99) < 10.0
    assert 1.0 < np.median(valid) < 5.0


def test_nyu_registration_moves_depth_into_the_colour_camera() -> None:
    _need(OTHER)
    _, raw = load_rgbd_pair(OTHER / "NYU_color.ppm", OTHER / "NYU_depth.pgm", "nyu", register=False)
    _, reg = load_rgbd_pair(OTHER / "NYU_color.ppm", OTHER / "NYU_depth.pgm", "nyu")
    both = (raw > 0) & (reg > 0)
    assert both.mean() > 0.5
    assert not np.array_equal(raw, reg)
    # a rigid move of 2.5 cm barely changes z: medians agree within 2 %
    assert abs(np.median(reg[reg > 0]) / np.median(raw[raw > 0]) - 1) < 0.02
    # registered depth discontinuities sit on the colour image's edges (measured median
    # distance 1.4 px registered vs 3.0 px raw)
    image = cv2.cvtColor(cv2.imread(str(OTHER / "NYU_color.ppm")), cv2.COLOR_BGR2GRAY)
    edges = cv2.Canny(cv2.GaussianBlur(image, (0, 0), 1.5), 40, 120)
    dist = cv2.distanceTransform((edges == 0).astype(np.uint8), cv2.DIST_L2, 5)

    def edge_distance(d: np.ndarray) -> float:
        d = cv2.medianBlur(d, 5)
        jump = np.zeros(d.shape, bool)
        for a, b, sl in ((d[:, 1:], d[:, :-1], np.s_[:, 1:]), (d[1:, :], d[:-1, :], np.s_[1:, :])):
            ok = (a > 0) & (b > 0)
            jump[sl] |= ok & (np.abs(a - b) > 0.1 * np.minimum(a, b))
        jump[:20] = jump[-20:] = False
        jump[:, :20] = jump[:, -20:] = False
        assert jump.sum() > 500
        return float(np.median(dist[jump]))

    assert edge_distance(reg) < 0.7 * edge_distance(raw)


def test_register_depth_identity_and_pure_shift() -> None:
    intr = Intrinsics(100.0, 100.0, 31.5, 23.5, 64, 48)
    d = np.full((48, 64), 2.0, dtype=np.float32)
    np.testing.assert_array_equal(register_depth(d, intr, intr, np.eye(3), np.zeros(3)), d)
    # shifting the camera by -0.04 m in x moves a plane at 2 m by f * 0.04 / 2 = 2 pixels
    out = register_depth(d, intr, intr, np.eye(3), np.array([0.04, 0.0, 0.0]))
    assert np.all(out[:, :2] == 0) and np.all(out[:, 2:] == 2.0)


def test_rgbd_intrinsics() -> None:
    assert rgbd_intrinsics("tum") == Intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)
    nyu = rgbd_intrinsics("nyu")
    assert nyu.fx == pytest.approx(518.8579) and nyu.cy == pytest.approx(253.7362)
    assert rgbd_intrinsics("sun") is None
    half = rgbd_intrinsics("tum", 320, 240)
    assert half.fx == 262.5 and half.cx == pytest.approx(159.5)
    with pytest.raises(InputError):
        rgbd_intrinsics("kitti")
    with pytest.raises(InputError):
        load_rgbd_pair("a.png", "b.png", "kitti")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- gt/ layout
def test_gt_folder_round_trip_with_synthetic_clip(tmp_path) -> None:
    from steadydepth.synthetic import render_clip, save_clip

    clip = render_clip(4, 48, 36, motion="orbit")
    root = save_clip(clip, tmp_path / "syn", video=False)
    for where in (root, root / "gt"):
        seq = load_ground_truth(where)
        assert len(seq) == 4 and seq.name == "syn"
        np.testing.assert_array_equal(np.stack(seq.depth), clip.depth)
        np.testing.assert_array_equal(seq.poses, clip.poses)
        assert seq.intrinsics == clip.intrinsics
        assert seq.images is not None
        np.testing.assert_array_equal(np.stack(seq.images), clip.images)


def test_gt_folder_png16_and_null_poses(tmp_path) -> None:
    gt = tmp_path / "gt"
    (gt / "depth").mkdir(parents=True)
    depth = np.array([[0.0, 1.5], [2.25, 10.0]], dtype=np.float32)
    cv2.imwrite(str(gt / "depth" / "000000.png"), np.rint(depth * 2000).astype(np.uint16))
    (gt / "cameras.json").write_text(json.dumps({
        "units": "metres", "depth_png_scale": 2000,
        "intrinsics": {"fx": 2.0, "fy": 2.0, "cx": 0.5, "cy": 0.5, "width": 2, "height": 2},
        "frames": [{"index": 0, "pose_c2w": None}],
    }))
    seq = load_gt_folder(gt)
    np.testing.assert_array_equal(seq.depth[0], depth)
    assert seq.poses is None and seq.images is None
    assert seq.valid(0).tolist() == [[False, True], [True, False]]   # 10 m is not < max_depth


def test_bad_ground_truth_raises_input_error(tmp_path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_ground_truth(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty"):
        load_ground_truth(tmp_path / "empty")
    gt = tmp_path / "g"
    (gt / "depth").mkdir(parents=True)
    (gt / "cameras.json").write_text("{not json")
    with pytest.raises(InputError, match="cameras.json"):
        load_ground_truth(gt)
    (gt / "cameras.json").write_text(json.dumps({"units": "scene", "intrinsics": {}}))
    with pytest.raises(InputError, match="metres"):
        load_gt_folder(gt)
    (gt / "cameras.json").write_text(json.dumps({
        "units": "metres", "intrinsics": {"fx": 2, "fy": 2, "cx": 0.5, "cy": 0.5, "width": 2, "height": 2},
        "frames": [{"index": 0, "pose_c2w": np.eye(4).tolist()}, {"index": 1, "pose_c2w": None}]}))
    np.save(gt / "depth" / "000000.npy", np.ones((2, 2), np.float32))
    with pytest.raises(InputError, match="2 frames listed but 1 depth"):
        load_gt_folder(gt)
    np.save(gt / "depth" / "000001.npy", np.ones((3, 2), np.float32))
    with pytest.raises(InputError, match="000001.npy"):
        load_gt_folder(gt)
