"""Readers for the real RGB-D layouts: 7-Scenes frames and a RealSense rgb/ + depth/ folder.

Each reader is tested on a small synthetic folder written in ``tmp_path`` (always runs) and on
the real sequences of ``../shared/data`` (skipped when absent).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from steadydepth.errors import InputError
from steadydepth.eval.datasets import GroundTruthSequence, load_ground_truth
from steadydepth.eval.real_sequences import load_realsense_folder, load_sevenscenes, sevenscenes_colour_depth
from steadydepth.types import Intrinsics

H, W = 12, 16


def _pose(k: int) -> np.ndarray:
    c, s = np.cos(0.1 * k), np.sin(0.1 * k)
    P = np.eye(4)
    P[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    P[:3, 3] = [0.01 * k, -0.02 * k, 0.5 + k]
    return P


def _depth_mm(k: int) -> np.ndarray:
    d = (1000 + 100 * k + np.arange(H * W).reshape(H, W)).astype(np.uint16)
    d[0, 0] = 0
    d[0, 1] = 65535
    return d


def _write_sevenscenes(root: Path, n: int = 3, ext: str = "png", first: int = 150) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    np.savetxt(root / "camera-intrinsics.txt", np.array([[585.0, 0, 320], [0, 585.0, 240], [0, 0, 1]]))
    rng = np.random.default_rng(0)
    for k in range(n):
        stem = root / f"frame-{first + k:06d}"
        cv2.imwrite(f"{stem}.color.{ext}", rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
        cv2.imwrite(f"{stem}.depth.png", _depth_mm(k))
        np.savetxt(f"{stem}.pose.txt", _pose(k))
    return root


def _write_realsense(root: Path, n: int = 3, first: int = 2) -> Path:
    (root / "rgb").mkdir(parents=True, exist_ok=True)
    (root / "depth").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for k in range(n):
        cv2.imwrite(str(root / "rgb" / f"rgb{first + k:05d}.png"), rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
        d = _depth_mm(k)
        d[1, 0] = 12000  # 12 m: sensor noise
        cv2.imwrite(str(root / "depth" / f"depth{first + k:05d}.png"), d)
    return root


# ---------------------------------------------------------------------------- 7-Scenes, synthetic
@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_sevenscenes_synthetic_units_poses_intrinsics(tmp_path: Path, ext: str) -> None:
    root = _write_sevenscenes(tmp_path / "seq", ext=ext)
    seq = load_sevenscenes(root)
    assert len(seq) == 3 and seq.name == "seq"
    assert seq.intrinsics == Intrinsics(585.0, 585.0, 320.0, 240.0, W, H)  # the depth camera's, as the file says
    for k in range(3):
        d = seq.depth[k]
        assert d.dtype == np.float32 and d.shape == (H, W)
        exp = _depth_mm(k).astype(np.float32) / 1000.0
        exp[0, 1] = 0.0  # 65535 = no measurement
        np.testing.assert_array_equal(d, exp)
        np.testing.assert_allclose(seq.poses[k], _pose(k))
        assert seq.images[k].shape == (H, W, 3) and seq.images[k].dtype == np.uint8
    assert not seq.valid(0)[0, 0] and not seq.valid(0)[0, 1] and seq.valid(0)[1, 1]


def test_sevenscenes_numeric_order_and_dispatch(tmp_path: Path) -> None:
    root = _write_sevenscenes(tmp_path / "seq", n=3, first=998)  # 998, 999, 1000: numeric, not text order
    seq = load_ground_truth(root, max_depth=4.0)
    assert len(seq) == 3 and seq.max_depth == 4.0
    np.testing.assert_allclose(seq.poses[2], _pose(2))
    assert seq.depth[2][1, 1] == pytest.approx((1200 + W + 1) / 1000.0)


def test_sevenscenes_without_intrinsics_file_uses_nominal(tmp_path: Path) -> None:
    root = _write_sevenscenes(tmp_path / "seq", n=2)
    (root / "camera-intrinsics.txt").unlink()
    seq = load_sevenscenes(root, load_images=False)
    assert seq.images is None
    assert (seq.intrinsics.fx, seq.intrinsics.fy, seq.intrinsics.cx, seq.intrinsics.cy) == (585.0, 585.0, 320.0, 240.0)


def test_sevenscenes_colour_depth_moves_pixels_into_the_wider_colour_camera() -> None:
    # a 2 m wall with a 1 m post in depth columns 598-602: seen by a 525 px colour camera (wider than the
    # 585 px depth camera about the same centre) the post moves to 320 + 280 * 525 / 585 = 571.3 and the
    # colour image's border, outside the depth camera's view, has no depth
    d = np.full((480, 640), 2.0, np.float32)
    d[:, 598:603] = 1.0
    gt = GroundTruthSequence(images=None, depth=[d], intrinsics=Intrinsics(585.0, 585.0, 320.0, 240.0, 640, 480),
                             poses=None, name="t", max_depth=10.0)
    (out,) = sevenscenes_colour_depth(gt, colour_focal=525.0)
    assert out.shape == (480, 640) and out.dtype == np.float32
    row = out[240]
    post = np.flatnonzero(row == 1.0)
    assert post.min() >= 569 and post.max() <= 574
    assert np.all(row[:30] == 0) and np.all(row[-30:] == 0)
    assert set(np.unique(out[out > 0])) == {1.0, 2.0}  # depth values are kept, only moved
    assert (out > 0).mean() > 0.75


def test_sevenscenes_missing_pose_is_named(tmp_path: Path) -> None:
    root = _write_sevenscenes(tmp_path / "seq")
    (root / "frame-000151.pose.txt").unlink()
    with pytest.raises(InputError, match="frame-000151.pose.txt"):
        load_sevenscenes(root)


def test_sevenscenes_corrupt_depth_is_named(tmp_path: Path) -> None:
    root = _write_sevenscenes(tmp_path / "seq")
    (root / "frame-000152.depth.png").write_bytes(b"not a png at all")
    with pytest.raises(InputError, match="frame-000152.depth.png"):
        load_sevenscenes(root)


def test_sevenscenes_8bit_depth_and_bad_pose_are_named(tmp_path: Path) -> None:
    root = _write_sevenscenes(tmp_path / "seq")
    cv2.imwrite(str(root / "frame-000150.depth.png"), np.zeros((H, W), np.uint8))
    with pytest.raises(InputError, match="frame-000150.depth.png.*16-bit"):
        load_sevenscenes(root)
    root2 = _write_sevenscenes(tmp_path / "seq2")
    (root2 / "frame-000151.pose.txt").write_text("1 0 0\n0 1 0\n")
    with pytest.raises(InputError, match="frame-000151.pose.txt"):
        load_sevenscenes(root2)
    (root2 / "frame-000151.pose.txt").write_text("1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 x")
    with pytest.raises(InputError, match="frame-000151.pose.txt"):
        load_sevenscenes(root2)


def test_sevenscenes_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no frame-NNNNNN.color"):
        load_sevenscenes(tmp_path)


# ---------------------------------------------------------------------------- RealSense, synthetic
def test_realsense_synthetic_units_and_invalid(tmp_path: Path) -> None:
    root = _write_realsense(tmp_path / "desk", n=3)
    seq = load_realsense_folder(root)
    assert len(seq) == 3 and seq.name == "desk"
    assert seq.poses is None and seq.intrinsics is None
    for k in range(3):
        d = seq.depth[k]
        assert d.dtype == np.float32 and d.shape == (H, W)
        assert d[0, 0] == 0.0 and d[0, 1] == 0.0 and d[1, 0] == 0.0  # 0, 65535 and 12 m are invalid
        assert d[1, 1] == pytest.approx((1000 + 100 * k + W + 1) / 1000.0)
        assert seq.images[k].shape == (H, W, 3)
    assert load_ground_truth(root).name == "desk"


def test_realsense_pairs_by_number(tmp_path: Path) -> None:
    root = _write_realsense(tmp_path / "desk", n=3, first=9)  # 9, 10, 11
    seq = load_realsense_folder(root, load_images=False)
    assert seq.images is None
    assert [float(d[1, 1]) for d in seq.depth] == pytest.approx([(1000 + 100 * k + W + 1) / 1000 for k in range(3)])


def test_realsense_missing_and_corrupt_files_are_named(tmp_path: Path) -> None:
    root = _write_realsense(tmp_path / "desk", n=3)
    (root / "depth" / "depth00003.png").unlink()
    with pytest.raises(InputError, match="depth00003.png"):
        load_realsense_folder(root)
    root2 = _write_realsense(tmp_path / "desk2", n=3)
    (root2 / "depth" / "depth00004.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(InputError, match="depth00004.png"):
        load_realsense_folder(root2)
    root3 = _write_realsense(tmp_path / "desk3", n=2)
    (root3 / "rgb" / "rgb00002.png").write_bytes(b"")
    with pytest.raises(InputError, match="rgb00002.png"):
        load_realsense_folder(root3)
    with pytest.raises(InputError, match="rgb/ and depth/"):
        load_realsense_folder(tmp_path)


# ---------------------------------------------------------------------------- the real sequences
def _warp_error(depth_i: np.ndarray, depth_j: np.ndarray, K: np.ndarray, T_j_i: np.ndarray) -> float:
    """Median relative error of frame i's depth moved into frame j against frame j's depth."""
    h, w = depth_i.shape
    v, u = np.nonzero(depth_i > 0)
    z = depth_i[v, u].astype(np.float64)
    X = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z])
    Y = T_j_i[:3, :3] @ X + T_j_i[:3, 3:4]
    uu = np.rint(K[0, 0] * Y[0] / Y[2] + K[0, 2]).astype(int)
    vv = np.rint(K[1, 1] * Y[1] / Y[2] + K[1, 2]).astype(int)
    ok = (Y[2] > 0) & (uu >= 0) & (uu < w) & (vv >= 0) & (vv < h)
    dj = depth_j[vv[ok], uu[ok]].astype(np.float64)
    keep = dj > 0
    return float(np.median(np.abs(dj[keep] - Y[2, ok][keep]) / dj[keep]))


@pytest.mark.parametrize("name,frames,ext", [("sevenscenes_redkitchen", 50, "png"),
                                             ("sevenscenes_redkitchen_long", 100, "jpg")])
def test_real_sevenscenes(shared_data: Path, name: str, frames: int, ext: str) -> None:
    root = shared_data / name
    if not root.is_dir():
        pytest.skip(f"{root} absent")
    seq = load_ground_truth(root)
    assert len(seq) == frames and seq.name == name
    assert seq.intrinsics == Intrinsics(585.0, 585.0, 320.0, 240.0, 640, 480)
    assert seq.images[0].shape == (480, 640, 3) and seq.depth[0].shape == (480, 640)
    valid = np.mean([seq.valid(i).mean() for i in (0, frames // 2, frames - 1)])
    assert 0.75 < valid < 0.98  # about 10 % sensor holes
    med = float(np.median(seq.depth[0][seq.valid(0)]))
    assert 0.5 < med < 5.0  # a kitchen, in metres
    assert np.all(np.isfinite(seq.poses))
    np.testing.assert_allclose(seq.poses[:, 3], np.tile([0, 0, 0, 1.0], (frames, 1)))
    # camera-to-world with the depth camera's intrinsics: depth(0) seen from frame 10 agrees (README: 0.3-0.7 %)
    T = np.linalg.inv(seq.poses[10]) @ seq.poses[0]
    assert _warp_error(seq.depth[0], seq.depth[10], seq.intrinsics.K, T) < 0.02
    # the inverse (treating them as world-to-camera) does not
    Tw = seq.poses[10] @ np.linalg.inv(seq.poses[0])
    assert _warp_error(seq.depth[0], seq.depth[10], seq.intrinsics.K, Tw) > 0.02


def test_real_realsense_desk(shared_data: Path) -> None:
    root = shared_data / "realsense_desk"
    if not root.is_dir():
        pytest.skip(f"{root} absent")
    seq = load_ground_truth(root)
    assert len(seq) == 60 and seq.poses is None and seq.intrinsics is None
    assert seq.images[0].shape == (480, 640, 3)
    for i in (0, 59):
        d = seq.depth[i]
        assert d.dtype == np.float32 and d.max() <= 10.0
        assert 0.75 < seq.valid(i).mean() < 0.98
        assert 0.4 < float(np.median(d[d > 0])) < 3.0  # a desk, in metres
