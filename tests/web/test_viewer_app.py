"""The viewer's server side without a browser: controls act on the scene, the fused scene toggle, a missing viser."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest

from steadydepth.cli import main

viser = pytest.importorskip("viser")


def test_controls_change_the_scene_and_the_fused_scene_toggles(gt_run, tmp_path):
    import trimesh

    from steadydepth.viewer import open_viewer

    run_folder, _ = gt_run
    app = open_viewer(run_folder, port=0, max_points=2000)
    try:
        assert app.fused is None and app.show_scene.disabled
        assert app.url == f"http://127.0.0.1:{app.port}/"
        first = app.cloud.points.copy()
        app.slider.value = 5  # as the browser's slider does: the callback shows that frame
        assert app.current == 5 and not np.array_equal(app.cloud.points, first)
        np.testing.assert_allclose(app.frustum.position, app.run.poses[5][:3, 3])
        image_colors = app.cloud.colors.copy()
        app.color_by.value = "depth"
        assert not np.array_equal(app.cloud.colors, image_colors)
        app.point_size.value = 2.0
        assert app.cloud.point_size == pytest.approx(2.0 * app.base_point_size)
        app.show_points.value = False
        assert not app.cloud.visible
    finally:
        app.close()

    with_scene = tmp_path / "run"
    shutil.copytree(run_folder, with_scene)
    (with_scene / "scene.glb").write_bytes(trimesh.creation.box(extents=(1, 1, 1)).export(file_type="glb"))
    app = open_viewer(with_scene, port=0)
    try:
        assert app.fused is not None and not app.show_scene.disabled and not app.fused.visible
        app.show_scene.value = True
        assert app.fused.visible
    finally:
        app.close()


def test_missing_viser_is_a_dependency_error(gt_run, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "viser", None)  # import viser now raises ImportError
    assert main(["view", str(gt_run[0])]) == 4
    assert "pip install 'steadydepth[viewer]'" in capsys.readouterr().err


def test_a_glb_root_turn_is_undone():
    import json
    import struct

    from steadydepth.viewer.app import _undo_root_rotation

    def glb(doc: dict) -> bytes:
        text = json.dumps(doc).encode()
        text += b" " * (-len(text) % 4)
        return struct.pack("<4sIIII", b"glTF", 2, 20 + len(text), len(text), 0x4E4F534A) + text

    turned = {"scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0, "rotation": [1.0, 0.0, 0.0, 0.0]}]}
    assert _undo_root_rotation(glb(turned)) == (0.0, -1.0, -0.0, -0.0)  # 180 deg about x, undone
    plain = {"scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}]}
    assert _undo_root_rotation(glb(plain)) == (1.0, -0.0, -0.0, -0.0)
    assert _undo_root_rotation(b"not a glb at all....") == (1.0, 0.0, 0.0, 0.0)
