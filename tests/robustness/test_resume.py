"""Resume: a run killed with SIGKILL continues from its cameras, finished frames and outputs.

The kill test runs the real command line in a child process on a small synthetic video,
kills it once a few depth frames exist, runs the same command again and compares the result
with an uninterrupted run of the same command (SfM here is seeded and repeatable).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from steadydepth.cli import main
from steadydepth.outputs import OutputFolder
from steadydepth.resume import RunState
from steadydepth.synthetic.render import render_clip
from steadydepth.synthetic.writer import save_clip

SRC = str(Path(__file__).resolve().parents[2] / "src")
#: fast preset: the mvs prior needs 6 + 2 + 2 frames of context; the temporal fusion held at 2 (the preset has 4)
#: so that a kill after 14 of 18 frames restarts the depth mid-clip
ARGS = ["--preset", "fast", "--temporal-radius", "2", "--quiet", "--no-vis"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """An 18-frame 112x84 orbit video."""
    root = tmp_path_factory.mktemp("resume")
    return save_clip(render_clip(18, 112, 84, motion="orbit", seed=1), root / "clip") / "clip.mp4"


def _kill_after(out: Path, frames: int, *args: str, timeout: float = 240.0) -> None:
    """Run the CLI in a child process and SIGKILL it once ``frames`` depth frames exist."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    child = subprocess.Popen([sys.executable, "-m", "steadydepth.cli", "run", *args, "-o", str(out)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while not (out / "depth" / f"{frames - 1:06d}.npy").exists():
            assert child.poll() is None, f"the run ended before it was killed: {child.stderr.read().decode()}"
            assert time.monotonic() < deadline, "the run did not reach the frame to kill it at"
            time.sleep(0.01)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_a_killed_run_resumes_from_its_cameras_and_finished_frames(clip, tmp_path, caplog, monkeypatch):
    video = clip
    out = tmp_path / "out"
    _kill_after(out, 14, str(video), *ARGS)
    assert json.loads((out / "run.json").read_text())["status"] == "running"  # SIGKILL: nothing recorded
    killed_cameras = RunState(out).load_cameras()
    with np.load(out / ".resume" / "cameras.npz") as saved:
        killed_poses = saved["poses"].copy()  # the killed run's cameras: the resumed run must use them
    assert 14 <= len(list((out / "depth").glob("*.npy"))) < 18
    # a frame is finished when both its depth and confidence files exist (the kill may land between them)
    complete = {p.name for p in (out / "depth").glob("*.npy")} & {p.name for p in (out / "confidence").glob("*.npy")}
    finished = {**{k: v for k, v in _mtimes(out / "depth").items() if k in complete},
                **{"c" + k: v for k, v in _mtimes(out / "confidence").items() if k in complete}}
    done = len(complete)

    with caplog.at_level(logging.INFO, logger="steadydepth"):
        assert main(["run", str(video), "-o", str(out), *ARGS]) == 0
    lines = [r.getMessage() for r in caplog.records if "resuming" in r.getMessage()]
    assert len(lines) == 1 and f"{done} of 18 frames finished" in lines[0] and "cameras from the earlier run" in lines[0]
    assert "depth restarts at frame" in lines[0]  # mvs starts mid-clip, not at frame 0
    assert not any(r.name.startswith("steadydepth.progress") and "cameras/" in r.getMessage() for r in caplog.records)

    now = {**_mtimes(out / "depth"), **{"c" + k: v for k, v in _mtimes(out / "confidence").items()}}
    assert all(now[name] == mtime for name, mtime in finished.items())  # finished frames not rewritten
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "complete" and info["frames"] == 18 and info["resumed"]["finished_frames"] == done
    assert "cameras" not in info["timings_s"]
    assert not (out / ".resume").exists() and (out / "cameras.json").exists() and (out / "colmap").is_dir()

    # an uninterrupted run with the same cameras (SfM is not bit-repeatable from run to run, so the
    # reference takes the killed run's cameras instead of solving its own): the same depth
    from steadydepth import pipeline

    monkeypatch.setattr(pipeline, "_estimate_cameras", lambda *a, **k: copy.deepcopy(killed_cameras))
    reference = tmp_path / "reference"
    assert main(["run", str(video), "-o", str(reference), *ARGS]) == 0
    with np.load(reference / "depth.npz") as a, np.load(out / "depth.npz") as b:
        np.testing.assert_array_equal(b["poses"], killed_poses)  # the cameras were read back, not solved again
        np.testing.assert_array_equal(a["poses"], b["poses"])
        assert b["depth"].shape == a["depth"].shape
        for t in range(18):  # frames after the restart differ by float noise of their context at most
            da, db = a["depth"][t], b["depth"][t]
            assert np.mean((da > 0) != (db > 0)) < 1e-3, t
            both = (da > 0) & (db > 0)
            rel = np.abs(da - db)[both] / da[both]
            assert np.median(rel) < 1e-4 and np.mean(rel) < 5e-3, (t, np.median(rel), np.mean(rel))


# -- cheap runs (pass-through prior, no SfM): interrupted with Ctrl-C after frame 3 ----------------
def _images(folder: Path, n: int = 8) -> Path:
    import cv2

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:03d}.png"), rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))
    return folder


def _interrupted_run(tmp_path: Path, monkeypatch, *extra: str) -> tuple[list[str], Path]:
    args = ["run", str(_images(tmp_path / "imgs")), "-o", str(tmp_path / "out"), "--prior", "io-passthrough",
            "--quiet", *extra]
    write_frame = OutputFolder.write_frame

    def write_then_stop(self, position, *a, **k):
        n = write_frame(self, position, *a, **k)
        if position == 3:
            raise KeyboardInterrupt
        return n

    monkeypatch.setattr(OutputFolder, "write_frame", write_then_stop)
    assert main(args) == 130
    monkeypatch.setattr(OutputFolder, "write_frame", write_frame)
    return args, tmp_path / "out"


def test_resume_after_ctrl_c_keeps_finished_frames_and_completes(tmp_path, monkeypatch, caplog):
    args, out = _interrupted_run(tmp_path, monkeypatch)
    before = _mtimes(out / "depth")
    assert sorted(before) == [f"{i:06d}.npy" for i in range(4)]
    with caplog.at_level(logging.INFO, logger="steadydepth"):
        assert main(args) == 0
    line = next(r.getMessage() for r in caplog.records if "resuming" in r.getMessage())
    assert "4 of 8 frames finished" in line and "starts at the clip's start" in line  # a prior without frames_before
    assert all(_mtimes(out / "depth")[k] == v for k, v in before.items())
    with np.load(out / "depth.npz") as z:
        assert z["depth"].shape == (8, 24, 32) and (z["depth"] > 0).all()
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


def test_resume_refuses_other_options_or_input_and_overwrite_starts_fresh(tmp_path, monkeypatch, capsys):
    args, out = _interrupted_run(tmp_path, monkeypatch)
    capsys.readouterr()
    assert main(args + ["--stride", "2"]) == 3
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "cannot resume" in err and "--stride differs" in err and "--overwrite" in err
    assert main(args + ["--format", "png16"]) == 3
    assert "--format differs" in capsys.readouterr().err
    first = tmp_path / "imgs" / "000.png"
    os.utime(first, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 10**9))
    assert main(args) == 3
    assert "input's modification time differs" in capsys.readouterr().err
    before = _mtimes(out / "depth")
    time.sleep(0.01)
    assert main(args + ["--overwrite"]) == 0  # fresh: every frame written again
    after = _mtimes(out / "depth")
    assert len(after) == 8 and all(after[k] != v for k, v in before.items())
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "complete" and "resumed" not in info


def test_outputs_finished_before_the_interruption_are_not_written_again(tmp_path, monkeypatch, caplog):
    from steadydepth import exports

    args = ["run", str(_images(tmp_path / "imgs")), "-o", str(tmp_path / "out"), "--prior", "io-passthrough",
            "--quiet"]
    out = tmp_path / "out"
    write_visualisation = exports.write_visualisation

    def stop(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(exports, "write_visualisation", stop)
    assert main(args) == 130
    monkeypatch.setattr(exports, "write_visualisation", write_visualisation)
    npz = (out / "depth.npz").stat().st_mtime_ns
    assert not (out / "depth_vis.mp4").exists()
    with caplog.at_level(logging.INFO, logger="steadydepth"):
        assert main(args) == 0
    line = next(r.getMessage() for r in caplog.records if "resuming" in r.getMessage())
    assert "8 of 8 frames finished" in line and "depth done" in line and "already written: cameras, depth.npz" in line
    assert (out / "depth.npz").stat().st_mtime_ns == npz and (out / "depth_vis.mp4").exists()
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


def test_a_resumed_run_keeps_the_scale_the_finished_frames_were_written_with(tmp_path, monkeypatch):
    args, out = _interrupted_run(tmp_path, monkeypatch, "--metric-hint", "depth=2")
    assert main(args) == 0
    assert main(args[:3] + [str(tmp_path / "fresh")] + args[4:]) == 0
    with np.load(out / "depth.npz") as a, np.load(tmp_path / "fresh" / "depth.npz") as b:
        np.testing.assert_array_equal(a["depth"], b["depth"])
        assert str(a["units"]) == "metres"
