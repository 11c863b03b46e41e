"""The synthetic renderer: exact depth, consistent poses, motions, dynamic mask, saving."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from steadydepth.errors import InputError
from steadydepth.synthetic import (
    MOTIONS,
    SyntheticClip,
    build_scene,
    camera_path,
    main,
    moving_object_centre,
    render_clip,
    render_frame,
    save_clip,
)
from steadydepth.types import Intrinsics

W, H = 97, 73          # odd sizes: the principal point falls on an integer pixel centre


def _unproject(depth: np.ndarray, K: np.ndarray, pose: np.ndarray) -> np.ndarray:
    h, w = depth.shape
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    z = depth.astype(np.float64).ravel()
    cam = np.stack([(u.ravel() - K[0, 2]) / K[0, 0] * z, (v.ravel() - K[1, 2]) / K[1, 1] * z, z], axis=1)
    return cam @ pose[:3, :3].T + pose[:3, 3]


@pytest.fixture(scope="module")
def orbit() -> SyntheticClip:
    return render_clip(6, W, H, motion="orbit", seed=3)


def test_shapes_types_and_rigid_poses(orbit: SyntheticClip) -> None:
    assert orbit.images.shape == (6, H, W, 3) and orbit.images.dtype == np.uint8
    assert orbit.depth.shape == (6, H, W) and orbit.depth.dtype == np.float32
    assert orbit.poses.shape == (6, 4, 4) and orbit.poses.dtype == np.float64
    assert orbit.dynamic_mask is None
    assert isinstance(orbit.intrinsics, Intrinsics)
    assert (orbit.intrinsics.width, orbit.intrinsics.height) == (W, H)
    assert np.all(np.isfinite(orbit.depth)) and orbit.depth.min() > 0.5
    for T in orbit.poses:
        R = T[:3, :3]
        np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
        assert np.linalg.det(R) == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_array_equal(T[3], [0, 0, 0, 1])
    # rich texture: strong local gradients over most of the image
    g = np.abs(np.diff(orbit.images[0].astype(np.float32).mean(axis=2), axis=1))
    assert np.median(g) > 1.0


def test_unprojected_depth_lies_on_the_geometry(orbit: SyntheticClip) -> None:
    """Every pixel's (depth, pose, K) gives a world point on some surface of the scene (|SDF| ~ 0)."""
    scene = build_scene(seed=3)
    K = orbit.intrinsics.K
    for i in (0, 5):
        X = _unproject(orbit.depth[i], K, orbit.poses[i])
        dist = np.min(np.stack([np.abs(p.signed_distance(X)) for p in scene.primitives]), axis=0)
        # float32 depth of <= 7 m carries ~4e-7 m of rounding
        assert dist.max() < 2e-6, f"frame {i}: point {dist.max():.2e} m off every surface"


def test_known_planes_have_analytic_depth() -> None:
    """Camera looking straight down +z: the far wall (z = 3) and the floor (y = +1.5) have closed-form depth."""
    intr = Intrinsics.from_fov(60.0, W, H)
    pos = np.array([-1.0, -0.1, -2.8])
    pose = np.eye(4)
    pose[:3, 3] = pos
    scene = build_scene()
    _, depth, _ = render_frame(scene, intr, pose)
    cx, cy = int(intr.cx), int(intr.cy)
    assert depth[cy, cx] == pytest.approx(3.0 - pos[2], rel=1e-7)
    # no pixel can be farther than the far wall when the optical axis is the wall normal
    assert depth.max() <= 3.0 - pos[2] + 1e-5
    # the floor below the camera: z = (1.5 - y_cam) * fy / (v - cy)
    v = H - 1
    expected = (1.5 - pos[1]) * intr.fy / (v - intr.cy)
    assert depth[v, cx] == pytest.approx(expected, rel=1e-6)
    # the far wall is seen at exactly one depth over a large area
    assert np.mean(np.abs(depth - (3.0 - pos[2])) < 1e-5) > 0.15


def test_depth_agrees_across_frames(orbit: SyntheticClip) -> None:
    """Warp frame i's depth into frame j: at visible pixels the depths agree to sub-millimetre
    relative error, and so do the colours (static Lambertian shading)."""
    K = orbit.intrinsics.K
    i, j = 0, 5
    X = _unproject(orbit.depth[i], K, orbit.poses[i])
    Tj = np.linalg.inv(orbit.poses[j])
    Xj = X @ Tj[:3, :3].T + Tj[:3, 3]
    z = Xj[:, 2]
    u = K[0, 0] * Xj[:, 0] / z + K[0, 2]
    v = K[1, 1] * Xj[:, 1] / z + K[1, 2]
    inside = (u >= 0) & (u <= W - 1) & (v >= 0) & (v <= H - 1)
    # inverse depth is affine in pixel coordinates on a plane: bilinear interpolation is exact there
    inv = (1.0 / orbit.depth[j]).astype(np.float32)
    mu, mv = u.reshape(H, W).astype(np.float32), v.reshape(H, W).astype(np.float32)
    zj = 1.0 / cv2.remap(inv, mu, mv, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).ravel()
    # smooth neighbourhood in frame j (no depth edge inside the 2x2 cell)
    dmin = cv2.erode(orbit.depth[j], np.ones((3, 3), np.uint8))
    dmax = cv2.dilate(orbit.depth[j], np.ones((3, 3), np.uint8))
    smooth = cv2.remap(((dmax - dmin) / dmin < 0.02).astype(np.uint8), mu, mv, cv2.INTER_NEAREST).ravel() > 0
    rel = np.abs(zj - z) / z
    visible = inside & smooth & (rel < 0.05)
    assert visible.mean() > 0.6
    assert np.median(rel[visible]) < 1e-5
    assert np.percentile(rel[visible], 90) < 1e-3
    # brightness constancy: colours of frame j fetched at the projections match frame i
    img_j = orbit.images[j].astype(np.float32)
    warped = cv2.remap(img_j, mu, mv, cv2.INTER_LINEAR).reshape(-1, 3)
    diff = np.abs(warped - orbit.images[i].reshape(-1, 3).astype(np.float32)).mean(axis=1)
    assert np.median(diff[visible]) < 6.0


def test_static_motion_repeats_the_same_frame() -> None:
    clip = render_clip(3, 48, 36, motion="static")
    for k in (1, 2):
        np.testing.assert_array_equal(clip.images[k], clip.images[0])
        np.testing.assert_array_equal(clip.depth[k], clip.depth[0])
        np.testing.assert_array_equal(clip.poses[k], clip.poses[0])


def test_pan_rotates_without_translating() -> None:
    poses = camera_path(30, "pan")
    np.testing.assert_array_equal(poses[:, :3, 3], np.repeat(poses[:1, :3, 3], 30, axis=0))
    angles = [np.degrees(np.arccos(np.clip((np.trace(poses[0, :3, :3].T @ p[:3, :3]) - 1) / 2, -1, 1)))
              for p in poses]
    assert max(angles) > 5.0


@pytest.mark.parametrize("motion", ["orbit", "walk", "forward", "drone"])
def test_translating_motions_have_useful_parallax(motion: str) -> None:
    """Consecutive-frame baseline is 1-3 % of the scene depth (about 4 m) for any clip length."""
    for n in (10, 300):
        poses = camera_path(n, motion)
        step = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)
        assert 0.01 < np.median(step) / 4.0 < 0.03, (motion, n, np.median(step))
        # the camera stays inside the room, away from the walls
        assert np.all(np.abs(poses[:, 0, 3]) < 3.5) and np.all(np.abs(poses[:, 1, 3]) < 1.4)
        assert np.all(np.abs(poses[:, 2, 3]) < 2.9)


def test_every_motion_renders_positive_depth() -> None:
    for motion in MOTIONS:
        clip = render_clip(2, 40, 30, motion=motion)
        assert np.all(clip.depth > 0.3) and np.all(np.isfinite(clip.depth)), motion


def test_moving_object_mask_moves() -> None:
    clip = render_clip(8, 64, 48, motion="orbit", moving_object=True)
    assert clip.dynamic_mask is not None and clip.dynamic_mask.shape == (8, 48, 64)
    counts = clip.dynamic_mask.sum(axis=(1, 2))
    assert np.all(counts[2:] > 20)
    # the object slides towards +x: its world centre moves, and its pixels really are its surface
    scene = build_scene(moving_object=True)
    mover = scene.primitives[-1]
    K = clip.intrinsics.K
    for k in (3, 7):
        mover.centre = moving_object_centre(k, 8)
        X = _unproject(clip.depth[k], K, clip.poses[k])
        on_mover = np.abs(mover.signed_distance(X)) < 1e-5
        np.testing.assert_array_equal(on_mover.reshape(48, 64), clip.dynamic_mask[k])
    assert not np.array_equal(clip.dynamic_mask[3], clip.dynamic_mask[7])
    static = render_clip(2, 64, 48, motion="orbit")
    assert static.dynamic_mask is None


def test_person_mover_is_large_and_stands_on_the_floor() -> None:
    clip = render_clip(8, 64, 48, motion="orbit", moving_object=True, mover="person")
    share = clip.dynamic_mask.mean(axis=(1, 2))
    assert share[4:7].min() > 0.15  # person-sized near the camera, unlike the small box
    scene = build_scene(moving_object=True, mover="person")
    person = scene.primitives[-1]
    assert person.name == "walking person"
    person.centre = moving_object_centre(5, 8, "person")
    assert person.centre[1] + person.half[1] >= 1.5  # reaches the floor (y = +1.5, y down)
    X = _unproject(clip.depth[5], clip.intrinsics.K, clip.poses[5])
    on_person = np.abs(person.signed_distance(X)) < 1e-5
    np.testing.assert_array_equal(on_person.reshape(48, 64), clip.dynamic_mask[5])
    with pytest.raises(InputError, match="unknown moving object 'cat'"):
        render_clip(2, 16, 12, moving_object=True, mover="cat")


def test_textureless_wall_is_flat() -> None:
    intr = Intrinsics.from_fov(60.0, W, H)
    pose = np.eye(4)
    pose[:3, 3] = [-1.0, -0.1, -2.8]
    img_p, depth_p, _ = render_frame(build_scene(textureless_wall=True), intr, pose)
    img_r, depth_r, _ = render_frame(build_scene(), intr, pose)
    np.testing.assert_array_equal(depth_p, depth_r)
    far = np.abs(depth_p - 5.8) < 1e-5                      # the far wall z = 3 seen straight on
    far = cv2.erode(far.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert far.sum() > 200

    def grad(img: np.ndarray) -> np.ndarray:
        g = np.abs(np.diff(img.astype(np.float32).mean(axis=2), axis=1))
        return g[far[:, 1:] & far[:, :-1]]

    assert np.mean(grad(img_p)) < 0.5 and np.mean(grad(img_r)) > 5.0


def test_deterministic_given_seed() -> None:
    a = render_clip(2, 40, 30, seed=5)
    b = render_clip(2, 40, 30, seed=5)
    c = render_clip(2, 40, 30, seed=6)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.poses, b.poses)
    assert not np.array_equal(a.images, c.images)


def test_bad_arguments_raise_input_error() -> None:
    with pytest.raises(InputError, match="motion"):
        render_clip(2, 32, 24, motion="teleport")
    with pytest.raises(InputError):
        render_clip(0, 32, 24)
    with pytest.raises(InputError, match="field of view"):
        render_clip(2, 32, 24, hfov_deg=180.0)


def test_save_clip_round_trip(tmp_path) -> None:
    av = pytest.importorskip("av")
    clip = render_clip(6, 64, 48, motion="walk", moving_object=True)
    out = save_clip(clip, tmp_path / "clip")
    assert out == tmp_path / "clip"
    with av.open(str(out / "clip.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 6 and frames[0].shape == (48, 64, 3)
    err = np.mean([np.abs(f.astype(np.float32) - im).mean() for f, im in zip(frames, clip.images)])
    assert err < 8.0, f"H.264 round trip too lossy: mean abs error {err:.2f}"
    png = cv2.imread(str(out / "images" / "000003.png"))[:, :, ::-1]
    np.testing.assert_array_equal(png, clip.images[3])
    np.testing.assert_array_equal(np.load(out / "gt" / "depth" / "000005.npy"), clip.depth[5])
    meta = json.loads((out / "gt" / "cameras.json").read_text())
    assert meta["units"] == "metres"
    assert {"fx", "fy", "cx", "cy", "width", "height"} <= set(meta["intrinsics"])
    assert meta["intrinsics"]["fx"] == clip.intrinsics.fx
    np.testing.assert_array_equal(np.array([f["pose_c2w"] for f in meta["frames"]]), clip.poses)
    assert [f["index"] for f in meta["frames"]] == list(range(6))


def test_save_odd_size_video_refused(tmp_path) -> None:
    clip = render_clip(2, 33, 24, motion="static")
    with pytest.raises(InputError, match="even"):
        save_clip(clip, tmp_path / "odd")
    save_clip(clip, tmp_path / "odd2", video=False)
    assert (tmp_path / "odd2" / "images" / "000001.png").exists()


def test_main_writes_a_clip(tmp_path, capsys) -> None:
    assert main([str(tmp_path / "m"), "--frames", "3", "--width", "32", "--height", "24",
                 "--motion", "forward", "--no-video"]) == 0
    assert len(list((tmp_path / "m" / "gt" / "depth").glob("*.npy"))) == 3
    assert "wrote 3 frames" in capsys.readouterr().out


def test_frames_and_cameras_views(orbit: SyntheticClip) -> None:
    frames = list(orbit.frames())
    assert [f.index for f in frames] == list(range(6))
    assert frames[2].time == pytest.approx(2 / 24.0)
    np.testing.assert_array_equal(frames[4].image, orbit.images[4])
    cams = orbit.cameras()
    assert cams.units == "metres" and cams.num_posed == 6 and cams.intrinsics == orbit.intrinsics
    np.testing.assert_array_equal(np.stack(cams.poses), orbit.poses)


def test_procedural_textures_when_photos_are_missing(monkeypatch) -> None:
    """Without scikit-image's sample photos the scene falls back to procedural noise, still rich."""
    from steadydepth.synthetic import textures as synthetic

    monkeypatch.setattr(synthetic, "_load_photo", lambda name, tint: None)
    synthetic._texture_bank.cache_clear()
    try:
        clip = render_clip(1, 64, 48, motion="static")
    finally:
        synthetic._texture_bank.cache_clear()
    g = np.abs(np.diff(clip.images[0].astype(np.float32).mean(axis=2), axis=1))
    assert np.median(g) > 0.5 and clip.images[0].std() > 10
    np.testing.assert_array_equal(clip.depth, render_clip(1, 64, 48, motion="static").depth)
