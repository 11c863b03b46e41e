"""Tests of steadydepth.eval.metrics and steadydepth.eval.report.

Expected numbers are computed by hand (in the comments) or from exact synthetic ground truth.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from steadydepth.errors import InputError
from steadydepth.eval.metrics import (
    DepthMetrics,
    depth_metrics,
    evaluate_depth,
    fit_scale_shift_disparity,
    head_ratio,
    mean_over_sequences,
)
from steadydepth.eval.temporal_metrics import flicker, temporal_alignment_error
from steadydepth.eval.trajectory import trajectory_error
from steadydepth.geometry import umeyama
from steadydepth.eval.report import format_table, metrics_to_json
from steadydepth.types import Intrinsics

# A tiny pinhole camera: 16 x 12 pixels, f = 10, principal point at the image centre.
H, W = 12, 16
CAM = Intrinsics(10.0, 10.0, 7.5, 5.5, W, H)


def _pose(rot_y_deg: float = 0.0, t=(0.0, 0.0, 0.0)) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("y", rot_y_deg, degrees=True).as_matrix()
    T[:3, 3] = t
    return T


def _render_plane(T_c2w: np.ndarray, plane_z: float = 2.0) -> np.ndarray:
    """Exact z-depth of the world plane Z = plane_z seen by camera T_c2w (OpenCV pixel centres)."""
    u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    ray_cam = np.stack([(u - CAM.cx) / CAM.fx, (v - CAM.cy) / CAM.fy, np.ones_like(u)], axis=-1)
    ray_w = ray_cam @ T_c2w[:3, :3].T
    # X = c + lam * ray_w with ray_cam's z = 1, so lam is the z-depth
    return (plane_z - T_c2w[2, 3]) / ray_w[..., 2]


# ----------------------------------------------------------------- per-frame scores


def test_depth_metrics_hand_computed_2x2():
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    gt = np.array([[1.0, 1.0], [2.0, 5.0]])
    m = depth_metrics(pred, gt)
    # |p-g|/g = 0, 1, 0.5, 0.2 -> mean 0.425
    assert m["abs_rel"] == pytest.approx(0.425)
    # max(p/g, g/p) = 1, 2, 1.5, 1.25 -> only the first is < 1.25
    assert m["delta1"] == pytest.approx(0.25)
    # squared errors 0, 1, 1, 1 -> sqrt(3/4)
    assert m["rmse"] == pytest.approx(math.sqrt(0.75))
    assert m["valid_pixels"] == 4


def test_evaluate_none_matches_hand_values_and_masks_invalid_gt():
    pred = np.array([[1.0, 2.0, 7.0], [3.0, 4.0, 1.0]])
    gt = np.array([[1.0, 1.0, 0.0], [2.0, 5.0, 20.0]])  # 0 = invalid, 20 > max_depth
    m = evaluate_depth([pred], [gt], align="none", max_depth=10.0)
    assert m.abs_rel == pytest.approx(0.425)
    assert m.delta1 == pytest.approx(0.25)
    assert m.rmse == pytest.approx(math.sqrt(0.75))
    assert m.num_frames == 1 and m.num_pixels == 4
    assert (m.scale, m.shift) == (1.0, 0.0)


def test_evaluate_none_clips_prediction_to_max_depth():
    # pred 30 is clipped to max_depth 10 before scoring: |10 - 5| / 5 = 1
    m = evaluate_depth([np.array([[30.0]])], [np.array([[5.0]])], align="none", max_depth=10.0)
    assert m.abs_rel == pytest.approx(1.0)


def test_invalid_prediction_pixels_are_excluded_and_counted_in_coverage():
    gt = np.full((2, 2), 2.0)
    pred = np.array([[2.0, 0.0], [np.nan, 3.0]])
    m = evaluate_depth([pred], [gt], align="none")
    # two valid prediction pixels: errors 0 and 0.5
    assert m.abs_rel == pytest.approx(0.25)
    assert m.coverage == pytest.approx(0.5)


# ----------------------------------------------------------------- disparity least squares


def test_fit_scale_shift_hand_computed():
    # x = 0, 1, 2 (two frames), y = 1, 2, 4: s = sum dx dy / sum dx^2 = 3 / 2, t = 7/3 - 1.5
    pairs = [
        (np.array([[0.0, 1.0]]), np.array([[1.0, 2.0]]), np.array([[True, True]])),
        (np.array([[2.0, 9.0]]), np.array([[4.0, -5.0]]), np.array([[True, False]])),
    ]
    s, t = fit_scale_shift_disparity(pairs)
    assert s == pytest.approx(1.5)
    assert t == pytest.approx(7.0 / 3.0 - 1.5)


def test_fit_scale_shift_no_pixel_raises():
    with pytest.raises(InputError, match="no valid pixel"):
        fit_scale_shift_disparity([(np.ones((2, 2)), np.ones((2, 2)), np.zeros((2, 2), bool))])


@pytest.mark.parametrize("pred_is_disparity", [True, False])
def test_exact_affine_disparity_gives_zero_error(pred_is_disparity):
    rng = np.random.default_rng(1)
    gts = [rng.uniform(1.0, 5.0, size=(3, 3)) for _ in range(3)]
    a, b = 0.4, 0.7  # pred_disp = a * gt_disp + b  ->  s = 1 / a, t = -b / a
    disps = [a / g + b for g in gts]
    preds = disps if pred_is_disparity else [1.0 / d for d in disps]
    m = evaluate_depth(preds, gts, pred_is_disparity=pred_is_disparity)
    assert m.scale == pytest.approx(1.0 / a, rel=1e-9)
    assert m.shift == pytest.approx(-b / a, rel=1e-9)
    assert m.abs_rel < 1e-10 and m.rmse < 1e-9 and m.delta1 == 1.0
    assert m.num_frames == 3 and m.align == "sequence"


def test_sequence_and_frame_alignment_differ_when_scale_flickers():
    # Two frames with the same ground truth (depths 1 and 2); frame 1's disparity is doubled.
    gt = np.array([[1.0, 2.0]])
    preds = [np.array([[1.0, 0.5]]), np.array([[2.0, 1.0]])]
    per_frame = evaluate_depth(preds, [gt, gt], pred_is_disparity=True, align="frame")
    assert per_frame.abs_rel < 1e-12  # each frame is exactly affine in disparity
    assert [f["scale"] for f in per_frame.per_frame] == pytest.approx([1.0, 0.5])

    seq = evaluate_depth(preds, [gt, gt], pred_is_disparity=True, align="sequence")
    # one line through (1,1), (0.5,0.5), (2,1), (1,0.5): independently fitted with polyfit
    x = np.array([1.0, 0.5, 2.0, 1.0])
    y = np.array([1.0, 0.5, 1.0, 0.5])
    s, t = np.polyfit(x, y, 1)
    assert (seq.scale, seq.shift) == pytest.approx((s, t))  # hand: s = 0.375 / 1.1875
    assert seq.scale == pytest.approx(0.375 / 1.1875)
    d = 1.0 / (s * x + t)
    g = np.array([1.0, 2.0, 1.0, 2.0])
    rel = np.abs(d - g) / g
    assert seq.abs_rel == pytest.approx(0.5 * (rel[:2].mean() + rel[2:].mean()))
    assert seq.abs_rel > 0.1


def test_scale_alignment_recovers_median_ratio():
    rng = np.random.default_rng(2)
    gts = [rng.uniform(1.0, 4.0, size=(5, 5)) for _ in range(2)]
    m = evaluate_depth([0.5 * g for g in gts], gts, align="scale")
    assert m.scale == pytest.approx(2.0, rel=1e-3)  # histogram medians: exact to 1e-4 relative
    assert m.abs_rel < 1e-3


def test_prediction_at_lower_resolution_is_resized():
    gt = np.full((4, 4), 2.0)
    pred = np.array([[2.0, 2.0], [0.0, 2.0]])  # one invalid pixel -> one invalid 2x2 block
    m = evaluate_depth([pred], [gt], align="none")
    assert m.abs_rel == pytest.approx(0.0, abs=1e-12)
    assert m.coverage == pytest.approx(12 / 16)
    # a linear ramp stays linear under bilinear upsampling with OpenCV pixel centres
    ramp_gt = np.tile(1.0 + 0.25 * np.arange(8.0), (4, 1))
    ramp_pred = np.tile(1.0 + 0.5 * np.arange(4.0) + 0.125, (2, 1))  # values at the 2x coarser centres
    m2 = evaluate_depth([ramp_pred], [ramp_gt], align="none")
    assert m2.per_frame[0]["valid_pixels"] == 32
    # interior columns are exact; the border columns are clamped to the outer coarse centres:
    # column 0 gets 1.125 (gt 1.0), column 7 gets 2.625 (gt 2.75)
    assert m2.abs_rel == pytest.approx((0.125 / 1.0 + 0.125 / 2.75) / 8)


# ----------------------------------------------------------------- streaming and errors


def test_streaming_factory_matches_list():
    rng = np.random.default_rng(3)
    gts = [rng.uniform(1.0, 5.0, size=(4, 6)) for _ in range(4)]
    preds = [1.0 / g * rng.uniform(0.9, 1.1) + 0.05 * rng.standard_normal(g.shape) ** 2 for g in gts]
    a = evaluate_depth(preds, gts, pred_is_disparity=True)
    calls = []

    def pred_factory():
        calls.append(1)
        return (p for p in preds)

    b = evaluate_depth(pred_factory, lambda: iter(gts), pred_is_disparity=True)
    assert len(calls) == 2  # fit pass + scoring pass
    assert b.abs_rel == pytest.approx(a.abs_rel, rel=1e-12)
    assert (b.scale, b.shift) == pytest.approx((a.scale, a.shift), rel=1e-12)
    # a (T, H, W) array works too
    c = evaluate_depth(np.stack(preds), np.stack(gts), pred_is_disparity=True)
    assert c.abs_rel == pytest.approx(a.abs_rel, rel=1e-12)


def test_one_shot_iterator_needs_factory_for_two_passes():
    gts = [np.full((2, 2), 2.0)] * 2
    with pytest.raises(InputError, match="one-shot iterator"):
        evaluate_depth(iter(gts), gts, align="sequence")
    m = evaluate_depth(iter(gts), iter(gts), align="none")  # one pass is fine
    assert m.abs_rel == 0.0


def test_length_mismatch_names_the_shorter_stream():
    g = np.full((2, 2), 2.0)
    with pytest.raises(InputError, match="prediction has 1 frames"):
        evaluate_depth([g], [g, g])
    with pytest.raises(InputError, match="ground truth has 1 frames"):
        evaluate_depth([g, g], [g], align="none")


def test_no_valid_pixel_and_bad_arguments_raise():
    g = np.full((2, 2), 20.0)  # beyond max_depth
    with pytest.raises(InputError, match="no valid pixel"):
        evaluate_depth([g], [g], max_depth=10.0)
    with pytest.raises(InputError, match="no valid pixel"):
        evaluate_depth([g], [g], max_depth=10.0, align="none")
    with pytest.raises(InputError, match="align"):
        evaluate_depth([g], [g], align="median")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="intrinsics and poses"):
        evaluate_depth([g], [g], intrinsics=CAM)
    with pytest.raises(InputError, match=r"\(H, W\)"):
        evaluate_depth([np.ones(3)], [np.ones(3)])


# ----------------------------------------------------------------- TAE


def test_tae_zero_for_exact_depth_and_hand_value_when_perturbed():
    # Fronto-parallel plane at world z = 2; camera 1 moves 0.5 forward: depths 2 and 1.5.
    T0, T1 = _pose(), _pose(t=(0.0, 0.0, 0.5))
    d0, d1 = np.full((H, W), 2.0), np.full((H, W), 1.5)
    assert temporal_alignment_error([d0, d1], CAM, [T0, T1]) == pytest.approx(0.0, abs=1e-12)
    # Frame 1 scaled by a = 1.2: 0 -> 1: |1.8 - 1.5| / 1.8 = 0.2 / 1.2; 1 -> 0: points at
    # depth 1.8 in frame 1 are at 2.3 in frame 0: |2 - 2.3| / 2 = 0.15.  TAE = 100 * mean.
    tae = temporal_alignment_error([d0, 1.2 * d1], CAM, np.stack([T0, T1]))
    assert tae == pytest.approx(100 * (0.2 / 1.2 + 0.15) / 2)
    # The pose direction matters: an inverted motion must be detected
    assert temporal_alignment_error([d0, d1], CAM, [T0, np.linalg.inv(T1)]) > 10.0


def test_tae_rotated_camera_small_for_exact_depth_large_for_wrong_pose():
    T0, T1 = _pose(), _pose(5.0, (0.1, 0.0, 0.3))
    d0, d1 = _render_plane(T0), _render_plane(T1)
    good = temporal_alignment_error([d0, d1], CAM, [T0, T1])
    bad = temporal_alignment_error([d0, d1], CAM, [T1, T0])
    assert good < 0.5  # only nearest-pixel rounding of a slanted plane remains
    assert bad > 10.0


def test_tae_occlusion_nearest_surface_wins():
    # A near half-plane (world x < 0 at z = 1) in front of a far plane (z = 4); the camera
    # moves 0.3 along x. Projecting frame 1 into frame 0, near points shift 3 px and far
    # points 1 px (0.75 rounded), so at columns 6 and 7 a near and a far point land on the same
    # pixel; frame 0 sees the near plane there. With the nearest point kept the exact depths
    # agree everywhere (rounded shifts are whole pixels): TAE is exactly 0.
    u = np.arange(W, dtype=np.float64)[None, :].repeat(H, axis=0)

    def render_step(cam_x: float) -> np.ndarray:
        return np.where(cam_x + (u - CAM.cx) / CAM.fx < 0.0, 1.0, 4.0)

    d0, d1 = render_step(0.0), render_step(0.3)
    assert d0[0, 7] == 1.0 and d1[0, 5] == 4.0  # the step moved
    assert temporal_alignment_error([d0, d1], CAM, [_pose(), _pose(t=(0.3, 0.0, 0.0))]) == 0.0


def test_tae_in_evaluate_depth_and_pose_count_check():
    T0, T1 = _pose(), _pose(t=(0.0, 0.0, 0.5))
    gts = [np.full((H, W), 2.0), np.full((H, W), 1.5)]
    disp = [0.5 / g + 0.1 for g in gts]  # exact affine disparity -> exact depth after alignment
    m = evaluate_depth(disp, gts, pred_is_disparity=True, intrinsics=CAM, poses=[T0, T1])
    assert m.tae == pytest.approx(0.0, abs=1e-9)
    assert m.flicker == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(InputError, match="poses"):
        evaluate_depth(disp, gts, pred_is_disparity=True, intrinsics=CAM, poses=[T0])
    with pytest.raises(InputError, match="at least two frames"):
        temporal_alignment_error([gts[0]], CAM, [T0])


# ----------------------------------------------------------------- flicker


def test_flicker_hand_value():
    g = np.full((3, 3), 2.0)
    preds = [g, 1.1 * g, g]
    # pairs (0,1) and (1,2) each change by |ln 1.1| relative to the static ground truth
    assert flicker(preds, [g, g, g]) == pytest.approx(100 * math.log(1.1))
    # a global scale is not flicker
    assert flicker([3 * g, 3 * g], [g, g]) == pytest.approx(0.0, abs=1e-12)
    # a moving camera: ground truth changes, the prediction follows it exactly
    assert flicker([g, 0.5 * g], [g, 0.5 * g]) == pytest.approx(0.0, abs=1e-12)


# ----------------------------------------------------------------- trajectories


def _random_similarity(seed: int):
    rng = np.random.default_rng(seed)
    R = Rotation.from_rotvec(rng.normal(size=3)).as_matrix()
    return 2.5, R, rng.normal(size=3)


def test_umeyama_recovers_known_similarity():
    s, R, t = _random_similarity(4)
    src = np.random.default_rng(5).normal(size=(10, 3))
    dst = s * src @ R.T + t
    s2, R2, t2 = umeyama(src, dst)
    assert s2 == pytest.approx(s)
    np.testing.assert_allclose(R2, R, atol=1e-10)
    np.testing.assert_allclose(t2, t, atol=1e-10)
    assert np.linalg.det(R2) == pytest.approx(1.0)
    s3, R3, _ = umeyama(src, src @ R.T + t, with_scale=False)
    assert s3 == 1.0
    np.testing.assert_allclose(R3, R, atol=1e-10)
    with pytest.raises(InputError):
        umeyama(src[:2], dst[:2])


def _gt_trajectory(n: int = 8) -> np.ndarray:
    poses = []
    for k in range(n):
        T = np.eye(4)
        T[:3, :3] = Rotation.from_euler("xyz", [2 * k, 7 * k, -3 * k], degrees=True).as_matrix()
        T[:3, 3] = [0.3 * k, 0.1 * math.sin(k), 0.05 * k * k]
        poses.append(T)
    return np.stack(poses)


def test_trajectory_error_zero_for_similarity_transformed_trajectory():
    gt = _gt_trajectory()
    s, R, t = _random_similarity(6)
    # pred = the gt trajectory seen in another frame: X_pred = s R X_gt + t
    S = np.eye(4)
    S[:3, :3], S[:3, 3] = R, t
    pred = []
    for T in gt:
        P = np.eye(4)
        P[:3, :3] = R @ T[:3, :3]
        P[:3, 3] = s * R @ T[:3, 3] + t
        pred.append(P)
    pred[3] = None
    out = trajectory_error(pred, list(gt))
    assert out["alignment"] == "umeyama"
    assert out["ate_rmse"] < 1e-9 and out["rot_err_deg_max"] < 1e-5
    assert out["rpe_trans_rmse"] < 1e-9 and out["rpe_rot_deg_mean"] < 1e-5
    assert out["scale"] == pytest.approx(1.0 / s)
    assert (out["num_frames"], out["num_missing"], out["num_total"]) == (7, 1, 8)
    # one centre moved by 0.2 m in the gt frame: the error shows
    pred[5] = pred[5].copy()
    pred[5][:3, 3] += s * R @ np.array([0.2, 0.0, 0.0])
    assert trajectory_error(pred, list(gt))["ate_rmse"] > 0.02


def test_trajectory_error_straight_line_uses_orientations():
    gt = np.stack([np.eye(4)] * 5)
    gt[:, 0, 3] = np.arange(5) * 0.1  # a straight line: Umeyama cannot fix the rotation
    R = Rotation.from_euler("z", 30, degrees=True).as_matrix()
    pred = gt.copy()
    pred[:, :3, :3] = R
    pred[:, :3, 3] = 3.0 * gt[:, :3, 3] @ R.T
    out = trajectory_error(pred, gt)
    assert out["alignment"] == "orientation"
    assert out["ate_rmse"] < 1e-12 and out["rot_err_deg_max"] < 1e-5
    assert out["scale"] == pytest.approx(1 / 3)


# ----------------------------------------------------------------- report


def test_format_table_fixed_width():
    rows = [{"name": "a", "abs_rel": 0.12346, "frames": 3}, {"name": "long-name", "abs_rel": None, "frames": 10}]
    text = format_table(rows, ["name", "abs_rel", "frames"])
    assert text.splitlines() == [
        "name       abs_rel  frames",
        "---------  -------  ------",
        "a           0.1235       3",
        "long-name        -      10",
    ]


def test_metrics_to_json_roundtrip(tmp_path):
    m = DepthMetrics(abs_rel=0.1, delta1=0.9, rmse=float("nan"), tae=None, flicker=1.5, num_frames=2,
                     scale=np.float64(2.0), shift=0.0, align="sequence",
                     per_frame=[{"index": 0, "abs_rel": np.float32(0.25)}])
    path = tmp_path / "sub" / "m.json"
    text = metrics_to_json({"seq": m, "mean": mean_over_sequences([m])}, path)
    data = json.loads(path.read_text())
    assert data == json.loads(text)
    assert data["seq"]["rmse"] is None and data["seq"]["scale"] == 2.0
    assert data["seq"]["per_frame"][0]["abs_rel"] == 0.25
    assert data["mean"]["tae"] is None and data["mean"]["num_sequences"] == 1


def test_head_ratio_compares_the_first_frames_with_the_median():
    gt = [np.full((4, 4), 2.0)] * 8
    errors = [0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2, 0.1]  # frame 0 three times the median
    preds = [g * (1 + e) for g, e in zip(gt, errors)]
    m = evaluate_depth(preds, gt, align="none")
    assert m.head_ratio == pytest.approx(3.0)
    assert evaluate_depth(preds[:5], gt[:5], align="none").head_ratio is None  # too short to say
    assert head_ratio([0.1] * 6) == pytest.approx(1.0)


# ----------------------------------------------------------------- real RGB-D data


def _read_open3d(root):
    cv2 = pytest.importorskip("cv2")
    lines = (root / "trajectory.log").read_text().split("\n")
    poses = [np.array([[float(x) for x in lines[5 * i + 1 + r].split()] for r in range(4)]) for i in range(5)]
    depths = [cv2.imread(str(root / "depth" / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED).astype(np.float64) / 1000.0
              for i in range(5)]
    return depths, poses


def test_real_rgbd_sequence(shared_data):
    root = shared_data / "open3d_rgbd"
    if not (root / "trajectory.log").is_file():
        pytest.skip(f"open3d_rgbd not found at {root}")
    depths, poses = _read_open3d(root)
    cam = Intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)
    # ground truth against itself at half resolution: bilinear resizing costs little
    half = [d[::2, ::2] for d in depths]
    m = evaluate_depth(half, depths, intrinsics=cam, poses=poses, max_depth=10.0)
    assert m.abs_rel < 0.05 and m.delta1 > 0.95
    # ground-truth depth with ground-truth poses is consistent (measured 0.59); wrong poses are not
    tae = temporal_alignment_error(depths, cam, poses)
    assert tae < 1.0
    assert temporal_alignment_error(depths, cam, poses[::-1]) > 2 * tae
