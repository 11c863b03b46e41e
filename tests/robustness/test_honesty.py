"""Runs that cannot recover depth say so, and every pose says how it was obtained.

Small synthetic clips made in the test. Before: each clip below ended ``status: complete`` with
depth 1.0 everywhere marked valid, and the message blamed a camera that "does not translate"
even where it moved; frames before the first registered one got its pose copied, unmarked.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from steadydepth import estimate
from steadydepth.cli import main
from steadydepth.errors import NoDepthError
from steadydepth.geometry import pose_fill_kinds
from steadydepth.synthetic import render_clip
from steadydepth.types import Cameras, Intrinsics, POSE_SOURCES


def _frames(case: str) -> tuple[list[np.ndarray], dict]:
    """The frames of one failure case and the run options it needs."""
    if case == "blank":
        return [np.full((96, 128, 3), 128, np.uint8) for _ in range(10)], {}
    n, w, h, motion, opts = {
        "two-frames": (2, 160, 120, "orbit", {}),
        "32x32": (10, 32, 32, "orbit", {}),
        "max-res-33": (10, 160, 120, "orbit", {"max_res": 33}),
        "static": (10, 128, 96, "static", {}),
        "pan": (8, 128, 96, "pan", {}),
    }[case]
    return list(render_clip(num_frames=n, width=w, height=h, motion=motion, seed=1).images), opts


# what actually stopped the geometry, per case
_CAUSES = {
    "two-frames": "too few frames",
    "32x32": "too few features",
    "max-res-33": "too few features",
    "blank": "too few features",
    "static": "static camera",
    "pan": "built no model",
}


@pytest.mark.parametrize("case", list(_CAUSES))
def test_no_depth_is_an_error_not_a_valid_placeholder(case, tmp_path):
    frames, opts = _frames(case)
    out = tmp_path / "out"
    with pytest.raises(NoDepthError) as info:
        estimate(frames, out, vis=False, progress_bar=False, **opts)
    msg = str(info.value)
    assert info.value.exit_code == 7
    assert "no depth could be recovered" in msg and _CAUSES[case] in msg, msg
    assert "--prior hf:" in msg, msg  # what to do
    if case in ("two-frames", "32x32", "max-res-33", "blank"):
        assert "does not translate" not in msg, msg  # the camera moved (or nothing was seen)
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "failed" and "no depth could be recovered" in run["error"]
    # the frames already written are honest: depth 0 (invalid), confidence 0
    written = sorted((out / "depth").glob("*.npy"))
    assert len(written) == len(frames)
    for path in written:
        assert not np.any(np.load(path) > 0)
        assert not np.any(np.load(out / "confidence" / path.name) > 0)


def test_cli_exit_code_and_one_line_for_no_depth(tmp_path, capsys):
    import cv2

    src = tmp_path / "frames"
    src.mkdir()
    for i in range(6):
        cv2.imwrite(str(src / f"{i:04d}.png"), np.full((64, 80, 3), 90, np.uint8))
    rc = main(["run", str(src), "-o", str(tmp_path / "out"), "--quiet", "--no-vis"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("steadydepth: error")]
    assert rc == 7
    assert len(err) == 1 and "no depth could be recovered" in err[0] and "too few features" in err[0], err


def test_pose_fill_kinds_tell_interpolated_from_copied():
    p = np.eye(4)
    assert pose_fill_kinds([None, None, p, None, p, None]) == [
        "copied", "copied", None, "interpolated", None, "copied"]
    assert pose_fill_kinds([None, None]) == [None, None]


def test_cameras_refuse_unknown_pose_sources():
    intr = Intrinsics.from_fov(60.0, 32, 24)
    with pytest.raises(ValueError, match="unknown pose sources"):
        Cameras(intr, poses=[np.eye(4)], pose_sources=["measured-ish"])
    cams = Cameras(intr, poses=[np.eye(4), None])
    assert cams.pose_source(0) == "unknown" and cams.pose_source(1) is None


def test_unregistered_start_is_marked_copied_in_cameras_json_and_npz(tmp_path):
    """Frames 0-5 cannot be registered (blank): their poses are copied from frame 6 and say so."""
    clip = render_clip(num_frames=20, width=160, height=120, motion="orbit", seed=1)
    frames = [np.asarray(im) for im in clip.images]
    for i in range(6):
        frames[i] = np.full_like(frames[i], 128)
    video = estimate(frames, tmp_path / "out", vis=False, progress_bar=False, preset="fast", temporal_radius=0)
    cams = json.loads((video.folder / "cameras.json").read_text())["frames"]
    sources = [f["pose_source"] for f in cams]
    assert sources[:6] == ["copied"] * 6, sources
    assert set(sources[6:]) <= {"mapped", "tracked", "interpolated"} and "mapped" in sources, sources
    assert all(s in POSE_SOURCES for s in sources)
    with np.load(video.folder / "depth.npz") as z:
        assert list(z["pose_source"]) == sources
    run = json.loads((video.folder / "run.json").read_text())
    copied = [w for w in run["warnings"] if w.startswith("copied:")]
    assert len(copied) == 1 and copied[0].endswith("[0, 1, 2, 3, 4, 5]"), run["warnings"]
    assert not any(w.startswith("interpolated:") and "[0," in w for w in run["warnings"]), run["warnings"]


def test_mvs_leaves_frames_with_a_copied_pose_invalid():
    """A copied pose is not measured: multi-view depth from it would be made up (blurred start)."""
    from steadydepth.priors.base import PriorContext
    from steadydepth.priors.mvs import MVSPrior
    from steadydepth.types import Frame

    clip = render_clip(num_frames=8, width=96, height=72, motion="orbit", seed=1)
    poses = [p.copy() for p in clip.poses]
    for i in range(3):
        poses[i] = poses[3].copy()
    cams = Cameras(clip.intrinsics, poses=poses, source="sfm",
                   pose_sources=["copied"] * 3 + ["mapped"] * 5)
    outs = list(MVSPrior().process((Frame(i, im) for i, im in enumerate(clip.images)),
                                   PriorContext(cameras=cams, num_frames=8, options={"mvs": {"search_radius": 3}})))
    assert len(outs) == 8
    for o in outs[:3]:
        assert not np.any(o.values > 0) and not np.any(o.confidence > 0)
    assert all((o.values > 0).mean() > 0.5 for o in outs[3:])


def test_metric_hint_depth_takes_the_first_frame_with_depth(tmp_path):
    """A start without depth (copied poses, blank frames) does not block --metric-hint depth=."""
    from steadydepth.io.depth_files import write_depth

    folder = tmp_path / "prior"
    folder.mkdir()
    frames = []
    for i in range(4):
        depth = np.zeros((24, 32), np.float32) if i < 2 else np.full((24, 32), 0.5 * i, np.float32)
        write_depth(folder / f"{i:06d}.npy", depth, "npy")
        frames.append(np.full((24, 32, 3), 60 + i, np.uint8))
    video = estimate(frames, tmp_path / "out", prior=f"files:{folder}", metric_hint="depth=3.0", vis=False,
                     progress_bar=False)
    assert video.units == "metres"
    assert not np.any(video[0].depth > 0)
    assert np.allclose(video[2].depth, 3.0) and np.allclose(video[3].depth, 4.5)


def test_frames_without_depth_are_named_in_one_warning(tmp_path):
    """A run where some frames got no depth at all completes, and run.json says which frames."""
    folder = tmp_path / "depth"
    folder.mkdir()
    for i in range(7):
        d = np.full((24, 32), 2.0, np.float32)
        if i in (1, 2, 3, 5):
            d[:] = 0.0  # nothing recovered in this frame
        np.save(folder / f"frame{i}.npy", d)
    frames = np.random.default_rng(0).integers(0, 255, (7, 24, 32, 3), dtype=np.uint8)
    estimate(frames, tmp_path / "out", prior=f"files:{folder}", progress_bar=False)
    info = json.loads((tmp_path / "out" / "run.json").read_text())
    empty = [w for w in info["warnings"] if w.startswith("depth:")]
    assert len(empty) == 1 and "4 of 7 frames hold no valid depth (frames 1-3, 5)" in empty[0], info["warnings"]
    with np.load(tmp_path / "out" / "depth.npz") as z:
        assert not (z["depth"][[1, 2, 3, 5]] > 0).any() and (z["depth"][[0, 4, 6]] > 0).all()
