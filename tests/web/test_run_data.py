"""Reading a run back for the viewer: folder checks, world points, colours, the fused scene files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from steadydepth.errors import InputError
from steadydepth.geometry import project_points
from steadydepth.io.ply import depth_to_points, write_ply
from steadydepth.types import Intrinsics
from steadydepth.viewer import RunData, grid_stride


def test_refuses_folders_that_are_not_runs(tmp_path, gt_run):
    with pytest.raises(InputError, match="no such run folder"):
        RunData(tmp_path / "missing")
    (tmp_path / "depth").mkdir()
    with pytest.raises(InputError, match=r"not a steadydepth run folder \(missing run.json, cameras.json, depth/000000.npy\)"):
        RunData(tmp_path)
    run, _ = gt_run
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    (broken / "cameras.json").write_text("{")
    with pytest.raises(InputError, match="cannot be read"):
        RunData(broken)


def test_grid_stride_bounds_the_points():
    for w, h, n in ((1920, 1080, 40_000), (128, 96, 6000), (100, 100, 10_000), (7, 5, 1)):
        s = grid_stride(w, h, n)
        assert -(-w // s) * -(-h // s) <= n
        assert s == 1 or -(-w // (s - 1)) * -(-h // (s - 1)) > n  # the smallest such stride


def test_points_are_in_world_coordinates_and_coloured_by_the_input(gt_run):
    from steadydepth.io.images import read_image

    run_folder, images = gt_run
    run = RunData(run_folder, max_points=2000)
    assert run.num_frames == 6 and run.stride == 2 and run.has_images and run.fps == 12.0
    first = run.points(0)
    # the same as depth_to_points on the full frame (the existing unprojection)
    depth0 = np.load(run_folder / "depth" / "000000.npy")
    image0 = read_image(sorted(images.iterdir())[0])
    ref, ref_colors = depth_to_points(depth0, run.intrinsics, run.poses[0], image=image0, stride=2)
    np.testing.assert_allclose(first.points, ref, atol=1e-5)
    np.testing.assert_array_equal(first.colors, ref_colors)
    # world coordinates: frame 0's points seen from frame 5 land on frame 5's exact depth
    intr: Intrinsics = run.intrinsics
    u, v, z = project_points(first.points.astype(np.float64), run.poses[5], intr, min_depth=1e-3)
    inside = (u > 1) & (v > 1) & (u < intr.width - 2) & (v < intr.height - 2)
    depth5 = np.load(run_folder / "depth" / "000005.npy")
    seen = depth5[np.rint(v[inside]).astype(int), np.rint(u[inside]).astype(int)]
    rel = np.abs(z[inside] - seen) / seen
    assert inside.sum() > 0.5 * len(first.points) and np.median(rel) < 0.01
    # colour by depth: the clip-wide colour map, one colour per point
    by_depth = run.points(0, "depth")
    np.testing.assert_array_equal(by_depth.points, first.points)
    assert not np.array_equal(by_depth.colors, first.colors)
    with pytest.raises(ValueError, match="color_by"):
        run.points(0, "normals")


def test_long_runs_are_thinned_frames_without_pose_are_skipped_scene_files_found(gt_run, tmp_path):
    run_folder, _ = gt_run
    copy = tmp_path / "run"
    shutil.copytree(run_folder, copy)
    cams = json.loads((copy / "cameras.json").read_text())
    cams["frames"][3]["pose_c2w"] = None
    (copy / "cameras.json").write_text(json.dumps(cams))
    write_ply(copy / "scene_points.ply", np.zeros((4, 3), np.float32), np.zeros((4, 3), np.uint8))
    run = RunData(copy, max_frames=3)
    assert run.shown == [0, 2, 4] and run.step == 2
    assert run.points(3) is None and run.points(2) is not None
    assert list(run.scene_files()) == ["scene_points.ply"]
    # the input moved away: the points are coloured by depth, with a warning, not an error
    info = json.loads((copy / "run.json").read_text())
    info["input"]["path"] = str(tmp_path / "gone")
    (copy / "run.json").write_text(json.dumps(info))
    run = RunData(copy)
    assert not run.has_images and run.image(0) is None and len(run.points(0).colors)
