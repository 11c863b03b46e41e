"""Tests of steadydepth.geometry: Sim(3), rotations, pose interpolation, projection, resizes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from steadydepth.errors import ReconstructionError
from steadydepth.eval.trajectory import trajectory_error
from steadydepth.geometry import (
    align_sim3,
    camera_centers,
    interpolate_poses,
    project_points,
    relative_pose,
    resize_depth,
    resize_keep_invalid,
    resize_valid_normalised,
    rotation_error_deg,
    scale_K,
    umeyama,
)
from steadydepth.types import Intrinsics


def _rand_rot(rng) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def test_umeyama_recovers_exact_similarity():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(20, 3))
    R, s, t = _rand_rot(rng), 2.5, np.array([1.0, -2.0, 0.5])
    dst = s * src @ R.T + t
    s2, R2, t2 = umeyama(src, dst)
    assert s2 == pytest.approx(s, rel=1e-12)
    np.testing.assert_allclose(R2, R, atol=1e-12)
    np.testing.assert_allclose(t2, t, atol=1e-12)
    s3, _, _ = umeyama(src, dst, with_scale=False)
    assert s3 == 1.0


def test_align_sim3_exact_and_none_entries():
    rng = np.random.default_rng(1)
    gt = []
    for k in range(8):
        T = np.eye(4)
        T[:3, :3] = _rand_rot(rng)
        T[:3, 3] = rng.normal(size=3)
        gt.append(T)
    R, s, t = _rand_rot(rng), 0.3, np.array([0.2, 0.1, -1.0])
    pred = []
    for T in gt:  # pred = inverse similarity of gt
        P = np.eye(4)
        P[:3, :3] = R.T @ T[:3, :3]
        P[:3, 3] = R.T @ (T[:3, 3] - t) / s
        pred.append(P)
    pred[3] = None
    assert align_sim3(pred, gt).aligned[3] is None
    st = trajectory_error(pred, gt)
    assert st["ate_rmse"] < 1e-10 and st["rot_err_deg"] < 1e-6 and st["rpe_rot_deg"] < 1e-6
    assert st["scale"] == pytest.approx(s, rel=1e-10)
    # a perturbed prediction must show a non-zero error
    pred[0] = pred[0].copy()
    pred[0][:3, 3] += 1.0
    st2 = trajectory_error(pred, gt)
    assert st2["ate_rmse"] > 1e-3


def test_interpolate_poses_slerp_and_lerp():
    A, B = np.eye(4), np.eye(4)
    B[:3, :3] = cv2.Rodrigues(np.array([0.0, np.radians(40.0), 0.0]))[0]
    B[:3, 3] = [2.0, 0.0, 4.0]
    out = interpolate_poses([None, A, None, None, B, None])
    np.testing.assert_allclose(out[0], A)
    np.testing.assert_allclose(out[5], B)
    # 1/3 of the way: 13.33 degrees about y, centre lerped
    assert rotation_error_deg(A[:3, :3], out[2][:3, :3]) == pytest.approx(40.0 / 3, abs=1e-9)
    np.testing.assert_allclose(out[2][:3, 3], [2 / 3, 0.0, 4 / 3], atol=1e-12)
    np.testing.assert_allclose(camera_centers(out)[3], [4 / 3, 0.0, 8 / 3], atol=1e-12)
    with pytest.raises(ReconstructionError):
        interpolate_poses([None, None])


def test_interpolate_poses_between_two_posed_frames():
    p0, p2 = np.eye(4), np.eye(4)
    p2[:3, 3] = [2.0, 0.0, 0.0]
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    p2[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    filled = interpolate_poses([None, p0, None, p2, None])
    np.testing.assert_allclose(filled[0], p0)
    np.testing.assert_allclose(filled[4], p2)
    np.testing.assert_allclose(filled[2][:3, 3], [1.0, 0.0, 0.0])
    c15, s15 = np.cos(np.radians(15)), np.sin(np.radians(15))
    np.testing.assert_allclose(filled[2][:3, :3], [[c15, 0, s15], [0, 1, 0], [-s15, 0, c15]], atol=1e-12)


def test_relative_pose_maps_reference_into_source_camera():
    rng = np.random.default_rng(3)
    ref, src = np.eye(4), np.eye(4)
    ref[:3, :3], ref[:3, 3] = _rand_rot(rng), rng.normal(size=3)
    src[:3, :3], src[:3, 3] = _rand_rot(rng), rng.normal(size=3)
    R, t = relative_pose(ref, src)
    X_ref = rng.normal(size=3)
    X_world = ref[:3, :3] @ X_ref + ref[:3, 3]
    X_src = np.linalg.inv(src)[:3, :3] @ X_world + np.linalg.inv(src)[:3, 3]
    np.testing.assert_allclose(R @ X_ref + t, X_src, atol=1e-12)


def test_project_points_and_scale_K():
    intr = Intrinsics(10.0, 10.0, 7.5, 5.5, 16, 12)
    pose = np.eye(4)
    pose[:3, 3] = [0.0, 0.0, -1.0]  # camera 1 m behind the origin, looking along +z
    u, v, z = project_points(np.array([[0.0, 0.0, 1.0], [0.1, -0.2, 0.0], [0.0, 0.0, -2.0]]), pose, intr,
                             min_depth=1e-6)
    np.testing.assert_allclose(z, [2.0, 1.0])  # the point behind the camera is dropped
    np.testing.assert_allclose(u, [7.5, 8.5])
    np.testing.assert_allclose(v, [5.5, 3.5])
    np.testing.assert_allclose(scale_K(intr.K, (16, 12), (8, 6)), intr.scaled(8, 6).K)


def test_resizes_keep_invalid_pixels_out():
    d = np.full((4, 4), 2.0, np.float32)
    d[:, :2] = 0.0
    up = resize_keep_invalid(d, 8, 8)
    assert up.shape == (8, 8) and set(np.unique(up)) <= {0.0, 2.0}
    vals, ok = resize_valid_normalised(d.astype(np.float64), d > 0, (8, 8))
    assert np.all(vals[ok] == 2.0) and not ok[:, :4].any() and ok[:, 4:].all()


def test_resize_depth_keeps_invalid_pixels_out():
    d = np.full((4, 4), 2.0, np.float32)
    d[:, :2] = 0.0
    up, conf = resize_depth(d, (d > 0).astype(np.float32), (8, 8))
    assert up.shape == (8, 8)
    assert np.all(up[:, :3] == 0) and np.allclose(up[:, 5:], 2.0)
    assert np.all(conf[:, :3] == 0)


def test_sample_at_takes_any_number_of_points():
    """cv2.remap refuses maps wider than 32766: 50 000 scattered samples must still work."""
    import cv2

    from steadydepth.geometry import sample_at

    img = np.arange(40 * 30, dtype=np.float32).reshape(30, 40)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 39, 50_000)
    y = rng.uniform(0, 29, 50_000)
    got = sample_at(img, x, y)
    assert got.shape == (50_000,)
    # bilinear on a linear ramp is exact: value = 40 * y + x
    np.testing.assert_allclose(got, 40 * y + x, rtol=1e-4, atol=1e-2)
    nearest = sample_at(img, np.array([1.4, 100.0]), np.array([2.6, 0.0]), interpolation=cv2.INTER_NEAREST,
                        border=cv2.BORDER_CONSTANT)
    np.testing.assert_array_equal(nearest, [img[3, 1], 0.0])
