"""Resources a run needs: the depth video's memory is bounded at any resolution."""

from __future__ import annotations

import av
import numpy as np
import pytest

from steadydepth import exports
from steadydepth.exports import VIS_MAX_SIDE, visualisation_size, write_visualisation
from steadydepth.io.frames import ArraySource
from steadydepth.outputs import OutputFolder


@pytest.mark.parametrize("side_by_side", [False, True])
def test_depth_video_of_a_big_clip_is_shrunk_to_a_bounded_size(tmp_path, monkeypatch, side_by_side):
    """A 4K run's depth_vis.mp4 cost about 1 GB (the encoder holds some 40 frames of the full size);
    past VIS_MAX_SIDE on the video's long side the maps are shrunk before colouring (a smaller bound
    here keeps the test fast)."""
    monkeypatch.setattr(exports, "VIS_MAX_SIDE", 320)
    w, h = 400, 225
    out = OutputFolder(tmp_path / "out")
    out.prepare()
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(2):
        depth = (1.0 + xx / w + i).astype(np.float32)
        depth[: h // 4] = 0.0  # invalid rows stay black after the shrink
        out.write_frame(i, depth, (depth > 0).astype(np.float32))
    images = [np.zeros((h, w, 3), np.uint8)] * 2
    write_visualisation(out, ArraySource(images), 2, fps=10, side_by_side=side_by_side)
    with av.open(str(out.root / "depth_vis.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    panel = visualisation_size(w, h, side_by_side=side_by_side)
    assert len(frames) == 2
    assert frames[0].shape[:2] == (panel[1], panel[0] * (2 if side_by_side else 1))
    assert max(frames[0].shape[:2]) <= 320
    assert panel[0] / panel[1] == pytest.approx(w / h, rel=0.01)
    depth_panel = frames[0][:, -panel[0]:]
    assert depth_panel[: panel[1] // 4 - 4].max() < 16 and depth_panel[panel[1] // 2:].mean() > 16


def test_depth_video_keeps_the_size_of_small_clips():
    assert visualisation_size(640, 360) == (640, 360)
    assert visualisation_size(641, 359, side_by_side=True) == (641, 359)
    assert visualisation_size(3840, 2160) == (VIS_MAX_SIDE, VIS_MAX_SIDE * 9 // 16)
