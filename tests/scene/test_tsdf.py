"""The sparse TSDF on exact synthetic depth and poses: surfaces, carving, memory bound, files."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from steadydepth.scene.fused_scene import choose_voxel_size, fuse, select_views, write_scene_files
from steadydepth.scene.tsdf import BLOCK, TSDFSettings, TSDFVolume

synthetic = pytest.importorskip("steadydepth.synthetic")

VOXEL = 0.06  # metres; the room is 8 x 3 x 6 m


@pytest.fixture(scope="module")
def mover_clip():
    return synthetic.render_clip(16, 96, 72, motion="orbit", moving_object=True, seed=0)


def _static(clip_scene_seed: int = 0):
    return [p for p in synthetic.build_scene(moving_object=True, seed=clip_scene_seed).primitives if not p.dynamic]


def _distance(prims, points: np.ndarray) -> np.ndarray:
    return np.min(np.abs(np.stack([p.signed_distance(points) for p in prims])), axis=0)


def _frames(clip, order=None):
    order = range(len(clip)) if order is None else order

    def frames(colour: bool):
        for k in order:
            yield clip.depth[k], None, clip.images[k] if colour else None, clip.poses[k]

    return frames


def test_exact_depth_gives_the_true_surfaces_and_carving_removes_the_mover(mover_clip):
    clip, static = mover_clip, _static()
    K = clip.intrinsics.K
    mesh, vol, cleared = fuse(_frames(clip), K, TSDFSettings(voxel_size=VOXEL), progress_bar=False)
    assert len(mesh.faces) > 5000 and mesh.faces.max() < len(mesh.vertices)
    d = _distance(static, mesh.vertices.astype(np.float64))
    assert np.median(d) < 0.05 * VOXEL and np.percentile(d, 90) < 0.3 * VOXEL
    # the ball (radius 0.45 m) is there: vertices near its centre lie on its sphere
    ball = next(p for p in static if p.name == "ball")
    near = np.linalg.norm(mesh.vertices - ball.centre, axis=1) < ball.radius + 2 * VOXEL
    assert near.sum() > 100
    assert np.median(np.abs(np.linalg.norm(mesh.vertices[near] - ball.centre, axis=1) - ball.radius)) < 0.2 * VOXEL
    # complete: true surface points (exact depth of a few frames) have a vertex within 2 voxels
    from scipy.spatial import cKDTree

    from steadydepth.eval.scene_accuracy import surface_samples

    truth = surface_samples(((clip.depth[k], clip.poses[k], clip.dynamic_mask[k]) for k in (0, 8, 15)),
                            clip.intrinsics)
    assert np.mean(cKDTree(mesh.vertices).query(truth)[0] < 2 * VOXEL) > 0.9
    # normals point to the free side (towards the cameras): a step along them leaves the surface
    assert np.mean(_distance(static, mesh.vertices + 0.5 * VOXEL * mesh.normals) > 0.25 * VOXEL) > 0.8
    # the moving box left surfaces where it passed only without the free-space test
    kept, _, _ = fuse(_frames(clip), K, TSDFSettings(voxel_size=VOXEL), progress_bar=False, carve=False)
    stray_carved = np.mean(d > 2.5 * VOXEL)
    stray_kept = np.mean(_distance(static, kept.vertices.astype(np.float64)) > 2.5 * VOXEL)
    assert cleared > 0 and stray_carved < 0.25 * stray_kept, (stray_carved, stray_kept)
    # colours are the images': the mean vertex colour is near the mean image colour
    assert abs(float(mesh.colors.mean()) - float(clip.images.mean())) < 30


def test_blocks_do_not_grow_with_clip_length_and_the_cap_holds(mover_clip, caplog):
    clip = mover_clip
    K = clip.intrinsics.K
    once = TSDFVolume(TSDFSettings(voxel_size=VOXEL))
    for depth, conf, image, pose in _frames(clip)(True):
        once.integrate(depth, conf, image, K, pose)
    twice = TSDFVolume(TSDFSettings(voxel_size=VOXEL))
    for depth, conf, image, pose in _frames(clip, list(range(len(clip))) * 2)(True):
        twice.integrate(depth, conf, image, K, pose)
    assert twice.frames == 2 * once.frames
    assert twice.num_blocks == once.num_blocks and twice.nbytes == once.nbytes  # revisiting adds nothing
    cap = once.num_blocks // 3
    small = TSDFVolume(TSDFSettings(voxel_size=VOXEL, max_blocks=cap))
    with caplog.at_level(logging.WARNING, logger="steadydepth"):
        for depth, conf, image, pose in _frames(clip)(True):
            small.integrate(depth, conf, image, K, pose)
    assert small.num_blocks == cap and small.full
    assert small.nbytes <= cap * BLOCK ** 3 * 18 + cap * 24
    assert sum("cap" in r.getMessage() for r in caplog.records) == 1
    assert len(small.extract_mesh().faces) > 0


def test_low_confidence_pixels_are_left_out(mover_clip):
    clip = mover_clip
    vol = TSDFVolume(TSDFSettings(voxel_size=VOXEL, min_confidence=0.5))
    conf = np.zeros_like(clip.depth[0])
    assert vol.integrate(clip.depth[0], conf, None, clip.intrinsics.K, clip.poses[0]) == 0
    assert vol.num_blocks == 0 and len(vol.extract_mesh().faces) == 0
    near = TSDFVolume(TSDFSettings(voxel_size=VOXEL, max_depth=float(np.median(clip.depth[0]))))
    near.integrate(clip.depth[0], None, None, clip.intrinsics.K, clip.poses[0])
    full = TSDFVolume(TSDFSettings(voxel_size=VOXEL))
    full.integrate(clip.depth[0], None, None, clip.intrinsics.K, clip.poses[0])
    assert 0 < near.num_blocks < full.num_blocks  # the far half is left out


def test_voxel_size_follows_the_scene_scale_and_views_skip_near_duplicates(mover_clip):
    clip = mover_clip
    K = clip.intrinsics.K
    samples = [(clip.depth[k], None, clip.poses[k]) for k in (0, 5, 10)]
    voxel, median = choose_voxel_size(samples, K, pixels_per_voxel=2.0)
    assert median == pytest.approx(np.median([np.median(d) for d, _, _ in samples]), rel=0.05)
    assert voxel == pytest.approx(2.0 * median / K[0, 0], rel=0.05)
    scaled, _ = choose_voxel_size([(10 * d, None, p) for d, _, p in samples], K, pixels_per_voxel=2.0)
    assert scaled == pytest.approx(10 * voxel, rel=1e-6)
    capped, _ = choose_voxel_size(samples, K, pixels_per_voxel=2.0, max_blocks=40)
    assert capped > 2 * voxel  # a tight cap makes the voxels coarser
    poses = [np.eye(4) for _ in range(10)] + [None]
    for k in range(10):
        poses[k][0, 3] = 0.001 * k  # 1 mm a frame: 2 % of 1 m every 20 frames
    assert select_views(poses, 1.0) == [0, 9]
    assert select_views(poses, 0.01) == list(range(10))


def test_scene_files_reload(mover_clip, tmp_path):
    clip = mover_clip
    mesh, _, _ = fuse(_frames(clip), clip.intrinsics.K, TSDFSettings(voxel_size=2 * VOXEL), progress_bar=False)
    counts = write_scene_files(tmp_path, mesh, 2 * VOXEL, units="metres")
    from plyfile import PlyData

    from steadydepth.io.ply import read_mesh_ply, read_ply

    ply = PlyData.read(str(tmp_path / "scene.ply"))
    assert ply["vertex"].count == len(mesh.vertices) and ply["face"].count == len(mesh.faces)
    v, f, c = read_mesh_ply(tmp_path / "scene.ply")
    np.testing.assert_array_equal(f, mesh.faces)
    np.testing.assert_allclose(v, mesh.vertices)
    np.testing.assert_array_equal(c, mesh.colors)
    points, colors = read_ply(tmp_path / "scene_points.ply")
    assert counts["points"] == len(points) > 0 and colors is not None
    cells = np.floor(points / (2 * VOXEL)).astype(np.int64)
    assert len(np.unique(cells, axis=0)) >= 0.9 * len(points)  # about one point per voxel
    trimesh = pytest.importorskip("trimesh")
    scene = trimesh.load(tmp_path / "scene.glb", process=False)
    (glb,) = scene.geometry.values()
    assert len(glb.vertices) == len(mesh.vertices) and len(glb.faces) == len(mesh.faces)
    np.testing.assert_allclose(np.asarray(glb.vertices), mesh.vertices, atol=1e-6)  # the run's world coordinates
    np.testing.assert_array_equal(np.asarray(glb.faces), mesh.faces)
    transform, _ = scene.graph[scene.graph.nodes_geometry[0]]
    np.testing.assert_allclose(transform, np.diag([1.0, -1.0, -1.0, 1.0]), atol=1e-9)  # shown y-up
    colours = np.asarray(glb.visual.vertex_attributes["color"])[:, :3]
    np.testing.assert_array_equal(colours, mesh.colors)
