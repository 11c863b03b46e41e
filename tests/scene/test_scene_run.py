"""The fused scene as a run writes it: on by default with poses, off with ``scene=False``, skipped
without poses, a bad value refused before any work."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

import steadydepth.pipeline as pipeline
from steadydepth.errors import InputError
from steadydepth.scene.fused_scene import SCENE_FILES
from steadydepth.types import Cameras

synthetic = pytest.importorskip("steadydepth.synthetic")


@pytest.fixture(scope="module")
def clip():
    return synthetic.render_clip(8, 96, 72, motion="orbit", seed=1)


def _run(clip, out, monkeypatch, **kw):
    def gt_cameras(frames, *args, **kwargs) -> Cameras:  # exact cameras: no SfM in a unit test
        return Cameras(clip.intrinsics.scaled(*frames.size), poses=[p.copy() for p in clip.poses],
                       frame_indices=list(range(len(clip))), units="metres", source="gt")

    monkeypatch.setattr(pipeline, "_estimate_cameras", gt_cameras)
    return pipeline.estimate(clip.images, out, prior="mvs", preset="fast", progress_bar=False, vis=False, npz=False,
                             **kw)


def test_a_posed_run_writes_the_scene_and_no_scene_writes_none(clip, tmp_path, monkeypatch):
    _run(clip, tmp_path / "on", monkeypatch)
    info = json.loads((tmp_path / "on" / "run.json").read_text())["scene"]
    assert info["written"] and info["files"] == list(SCENE_FILES)
    assert info["units"] == "scene" and info["vertices"] > 100 and info["faces"] > 100 and info["time_s"] >= 0
    assert info["voxel_size"] > 0 and info["frames_fused"] >= 2
    from steadydepth.io.ply import read_mesh_ply, read_ply

    verts, faces, colors = read_mesh_ply(tmp_path / "on" / "scene.ply")
    assert len(verts) == info["vertices"] and len(faces) == info["faces"] and colors is not None
    points, _ = read_ply(tmp_path / "on" / "scene_points.ply")
    assert len(points) == info["points"] > 0
    glb = (tmp_path / "on" / "scene.glb").read_bytes()
    assert glb[:4] == b"glTF" and int.from_bytes(glb[8:12], "little") == len(glb)
    # the mesh lies on the room's surfaces (the cameras are exact, the depth is the run's own)
    prims = synthetic.build_scene(seed=1).primitives
    d = np.min(np.abs(np.stack([p.signed_distance(verts) for p in prims])), axis=0)
    assert np.median(d) < 0.1, np.median(d)
    assert not list((tmp_path / "on").glob("*.tmp*"))  # written atomically: no temporary left

    _run(clip, tmp_path / "off", monkeypatch, scene=False)
    assert not any((tmp_path / "off" / name).exists() for name in SCENE_FILES)
    assert "scene" not in json.loads((tmp_path / "off" / "run.json").read_text())


def test_a_run_without_poses_skips_the_scene_with_one_line(tmp_path, caplog):
    frames = np.random.default_rng(0).integers(0, 255, size=(3, 32, 48, 3), dtype=np.uint8)
    with caplog.at_level(logging.INFO, logger="steadydepth"):
        pipeline.estimate(frames, tmp_path / "out", prior="io-passthrough", progress_bar=False, vis=False)
    assert not any((tmp_path / "out" / name).exists() for name in SCENE_FILES)
    info = json.loads((tmp_path / "out" / "run.json").read_text())["scene"]
    assert info == {"written": False, "reason": "the run has no camera poses"}
    assert sum(r.getMessage().startswith("scene: not written") for r in caplog.records) == 1


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_a_bad_scene_value_is_refused_before_any_work(tmp_path, value):
    with pytest.raises(InputError, match="scene"):
        pipeline.estimate(np.zeros((2, 16, 16, 3), np.uint8), tmp_path / "out", prior="io-passthrough", scene=value)
    assert not (tmp_path / "out").exists()


def test_the_command_line_turns_the_scene_off():
    from steadydepth.cli import build_parser
    from steadydepth.options import cli_names, option_text

    args = build_parser().parse_args(["run", "in.mp4", "-o", "out", "--no-scene"])
    assert args.no_scene is True
    assert build_parser().parse_args(["run", "in.mp4", "-o", "out"]).no_scene is False
    with cli_names():
        assert option_text("scene", False) == "--no-scene"
