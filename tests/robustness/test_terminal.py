"""A terminal a person can read: no COLMAP/glog lines, no collisions with progress bars,
each warning once, no "done" after Ctrl-C, no distortion warning where it does not matter.

COLMAP writes from C++ straight to file descriptor 2, so these tests capture stderr at the fd
level (``capfd``, or a subprocess).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from steadydepth.cameras.colmap_log import quiet_colmap

GLOG = re.compile(r"^(?:\x1b\[[0-9;]*m)?[IWEF]\d{8} \d\d:\d\d:\d\d", re.MULTILINE)


@pytest.fixture(scope="module")
def orbit_folder(tmp_path_factory):
    """16 frames of a synthetic orbit as PNG files (SfM maps it, so bundle adjustment runs)."""
    import cv2

    from steadydepth.synthetic import render_clip

    folder = tmp_path_factory.mktemp("orbit")
    for i, im in enumerate(render_clip(num_frames=16, width=160, height=120, motion="orbit", seed=1).images):
        cv2.imwrite(str(folder / f"{i:04d}.png"), cv2.cvtColor(im, cv2.COLOR_RGB2BGR))
    return folder


def test_bundle_adjustment_lines_stay_off_stderr(capfd, caplog):
    """pycolmap.bundle_adjustment resets glog to INFO: only the fd-level filter keeps it quiet."""
    import pycolmap

    with caplog.at_level(logging.INFO, logger="steadydepth.colmap"):
        with quiet_colmap():
            pycolmap.bundle_adjustment(pycolmap.Reconstruction(), pycolmap.BundleAdjustmentOptions())
            os.write(2, b"our own line\n")
            os.write(2, b"\rdepth:  50%|#####     | 1/2")  # a tqdm bar (no newline) passes at once
    err = capfd.readouterr().err
    assert not GLOG.search(err) and "bundle adjustment" not in err, err
    assert "our own line\n" in err and "\rdepth:  50%|#####     | 1/2" in err


def test_colmap_lines_reach_the_debug_log(caplog, capfd):
    with caplog.at_level(logging.DEBUG, logger="steadydepth.colmap"):
        with quiet_colmap():
            os.write(2, b"I20261201 20:53:06.954411 140657790536576 bundle_adjustment.cc:46] === Global ===\n")
    assert not GLOG.search(capfd.readouterr().err)
    assert [r.getMessage() for r in caplog.records if r.name == "steadydepth.colmap"] == ["colmap: === Global ==="]


def test_quiet_cli_run_prints_nothing_from_colmap(orbit_folder, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.run(
        [sys.executable, "-m", "steadydepth.cli", "run", str(orbit_folder), "-o", str(tmp_path / "out"),
         "--quiet", "--no-vis", "--preset", "fast", "--temporal-radius", "0"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert not GLOG.search(proc.stderr), proc.stderr
    # --quiet: warnings only, each once
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert all(ln.startswith("WARNING ") for ln in lines), lines
    assert len(lines) == len(set(ln.split(": ", 1)[1] for ln in lines)), lines


class _FakeTTY:
    """A text stream that says it is a terminal (tqdm draws its bar on it)."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True

    @property
    def text(self) -> str:
        return "".join(self.parts)


def test_log_lines_do_not_collide_with_a_bar(monkeypatch):
    from steadydepth.progress import Progress

    tty = _FakeTTY()
    monkeypatch.setattr(sys, "stderr", tty)
    root = logging.getLogger()
    handler = logging.StreamHandler(tty)  # what the CLI's basicConfig installs: stderr
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        with Progress("depth", 3, bar=True) as bar:
            bar.update()
            logging.getLogger("steadydepth.test").info("a line in the middle")
            bar.update()
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    text = tty.text
    at = text.index("INFO steadydepth.test: a line in the middle")
    assert at == 0 or text[at - 1] in "\r\n", repr(text[max(0, at - 40):at + 10])
    assert root.handlers.count(handler) == 0 and handler not in root.handlers
    # the console handler is back in place after the bar: a later line is written by it directly
    assert not any(type(h).__name__ == "_TqdmLoggingHandler" for h in root.handlers)


def test_interrupted_stage_does_not_say_done(caplog):
    from steadydepth.progress import Progress

    with caplog.at_level(logging.INFO, logger="steadydepth.progress"):
        with pytest.raises(KeyboardInterrupt):
            with Progress("depth", 30, bar=False) as bar:
                bar.update(3)
                raise KeyboardInterrupt
    msgs = [r.getMessage() for r in caplog.records if r.name == "steadydepth.progress"]
    assert msgs == ["depth: interrupted after 3/30 frames"], msgs


class _Model:
    name = "SIMPLE_RADIAL"


class _Cam:
    model = _Model()

    def __init__(self, k: float) -> None:
        self.params = [200.0, 80.5, 60.5, k]


@pytest.mark.parametrize("k, applied", [(0.002, False), (0.2, True)])
def test_distortion_is_kept_and_logged_not_warned(k, applied, caplog):
    """SfM's radial term is kept on the camera (no warning: the pipeline undistorts where it
    matters); the one INFO line saying what is done with it comes from the lens decision."""
    from steadydepth.cameras.lens import lens_for
    from steadydepth.cameras.sfm import _intrinsics_of

    with caplog.at_level(logging.INFO, logger="steadydepth"):
        intr = _intrinsics_of(_Cam(k), 160, 120)
        lens = lens_for(intr, 160, 120)
    assert intr.k1 == k and (lens is not None) == applied
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    lines = [r.getMessage() for r in caplog.records if "k1=" in r.getMessage()]
    assert len(lines) == 1 and ("undistorted frames" in lines[0]) == applied, lines


def _run_cli(args: list[str], env: dict[str, str], cwd) -> tuple[int, str, float]:
    import time

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), **env}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "steadydepth.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=240)
    return proc.returncode, proc.stderr, time.perf_counter() - t0


@pytest.fixture(scope="module")
def two_frames(tmp_path_factory):
    import cv2

    folder = tmp_path_factory.mktemp("two")
    for i in range(2):
        cv2.imwrite(str(folder / f"{i:04d}.png"), np.full((48, 64, 3), 100 + i, np.uint8))
    return folder


# no network: HF_HUB_OFFLINE, or an endpoint where nothing listens (connection refused at once; today
# the Hub client retries each file for about 25 s and prints every retry)
@pytest.mark.parametrize("prior, env", [
    ("hf:depth-anything/Depth-Anything-V2-Small-hf", {"HF_HUB_OFFLINE": "1"}),
    ("hf:depth-anything/Depth-Anything-V2-Small-hf", {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}),
    ("depthcrafter", {"HF_HUB_OFFLINE": "1"}),
])
def test_learned_prior_without_network_fails_fast_in_one_line(prior, env, two_frames, tmp_path):
    pytest.importorskip("transformers")
    if prior == "depthcrafter":
        pytest.importorskip("diffusers")
    env = {**env, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_CACHE": str(tmp_path / "hf_home" / "hub")}
    rc, err, seconds = _run_cli(["run", str(two_frames), "-o", str(tmp_path / "out"), "--prior", prior], env, tmp_path)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 6, err
    assert len(lines) == 1 and lines[0].startswith("steadydepth: error:"), lines
    assert "--local-dir" in lines[0] and "cache" in lines[0], lines[0]  # where to put the weights
    assert seconds < 30, seconds  # measured ~3 s here (interpreter start and imports); before: 25-100 s


def test_empty_local_model_folder_is_not_offered_as_a_hub_download(two_frames, tmp_path):
    pytest.importorskip("transformers")
    (tmp_path / "models" / "da").mkdir(parents=True)
    rc, err, _ = _run_cli(["run", str(two_frames), "-o", str(tmp_path / "out"), "--prior", "hf:models/da"],
                          {"HF_HUB_OFFLINE": "1"}, tmp_path)
    assert rc == 6 and "no config.json" in err, err
    assert "download models/da" not in err and "hf download depth-anything/" in err, err


def test_ctrl_c_during_a_run_is_not_reported_done(tmp_path, monkeypatch, caplog):
    """Ctrl-C in the middle of the depth stage: run.json says interrupted and no stage says done."""
    import json

    from steadydepth import estimate
    from steadydepth.priors.files import FilesPrior

    folder = tmp_path / "prior"
    folder.mkdir()
    for i in range(5):
        np.save(folder / f"{i:06d}.npy", np.full((24, 32), 1.0 + i, np.float32))
    real = FilesPrior.process

    def interrupted(self, frames, context):
        for n, out in enumerate(real(self, frames, context)):
            if n == 2:
                raise KeyboardInterrupt
            yield out

    monkeypatch.setattr(FilesPrior, "process", interrupted)
    frames = [np.full((24, 32, 3), 50, np.uint8)] * 5
    with caplog.at_level(logging.INFO, logger="steadydepth"):
        with pytest.raises(KeyboardInterrupt):
            estimate(frames, tmp_path / "out", prior=f"files:{folder}", vis=False, progress_bar=False)
    msgs = [r.getMessage() for r in caplog.records]
    assert not any(m.startswith("depth: done") for m in msgs), msgs
    assert "depth: interrupted after 2/5 frames" in msgs, msgs
    assert json.loads((tmp_path / "out" / "run.json").read_text())["status"] == "interrupted"
