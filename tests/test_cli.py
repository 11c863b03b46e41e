"""The command line: outputs of `run`, and one-line errors (no traceback) on bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from steadydepth.cli import main


def _write_images(folder, n=4, h=40, w=56):
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        cv2.imwrite(str(folder / f"img{i}.png"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    return folder


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "expected an error message"
    assert "Traceback" not in "\n".join(err)
    return err[-1]


def test_run_on_image_folder(tmp_path, capsys):
    imgs = _write_images(tmp_path / "imgs")
    rc = main(["run", str(imgs), "-o", str(tmp_path / "out"), "--prior", "io-passthrough", "--quiet",
               "--side-by-side", "--points", "--fov", "60", "--format", "png16"])
    assert rc == 0
    out = tmp_path / "out"
    for name in ("depth.npz", "depth_vis.mp4", "cameras.json", "run.json", "points/000003.ply",
                 "depth_png16/000000.png"):
        assert (out / name).exists(), name
    import av

    with av.open(str(out / "depth_vis.mp4")) as c:
        frame = next(c.decode(video=0))
        assert frame.width >= 2 * 56 - 2  # input beside depth


def test_missing_input(tmp_path, capsys):
    rc = main(["run", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "out")])
    assert rc != 0
    assert "nope.mp4" in _error_line(capsys)


def test_not_a_video(tmp_path, capsys):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video")
    rc = main(["run", str(bad), "-o", str(tmp_path / "out"), "--prior", "io-passthrough"])
    assert rc != 0
    assert "notes.mp4" in _error_line(capsys)


def test_existing_run_is_refused(tmp_path, capsys):
    imgs = _write_images(tmp_path / "imgs", n=2)
    args = ["run", str(imgs), "-o", str(tmp_path / "out"), "--prior", "io-passthrough", "--quiet", "--no-vis"]
    assert main(args) == 0
    assert main(args) != 0
    assert "--overwrite" in _error_line(capsys)
    assert main(args + ["--overwrite"]) == 0


def test_unknown_prior(tmp_path, capsys):
    imgs = _write_images(tmp_path / "imgs", n=2)
    rc = main(["run", str(imgs), "-o", str(tmp_path / "out"), "--prior", "magic"])
    assert rc != 0
    assert "magic" in _error_line(capsys)


def test_no_traceback_from_a_real_process(tmp_path):
    res = subprocess.run([sys.executable, "-m", "steadydepth.cli", "run", str(tmp_path / "missing.mov"),
                          "-o", str(tmp_path / "o")], capture_output=True, text=True)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    assert "missing.mov" in res.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("argv", [["run", "x", "-o", "y", "--preset", "ultra"], ["run", "x"]])
def test_bad_arguments_exit_nonzero(argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code != 0


def test_single_frame_with_geometric_prior_names_the_input(tmp_path, capsys):
    imgs = _write_images(tmp_path / "one", n=1)
    rc = main(["run", str(imgs), "-o", str(tmp_path / "out")])
    assert rc != 0
    line = _error_line(capsys)
    assert str(imgs) in line and "2 frames" in line


def test_fusion_flag_is_checked_before_any_work(tmp_path, capsys):
    imgs = _write_images(tmp_path / "imgs", n=3)
    out = tmp_path / "out"
    for bad in ("blend=maybe", "gamma=1", "blend"):
        with pytest.raises(SystemExit) as exc:
            main(["run", str(imgs), "-o", str(out), "--fusion", bad])
        assert exc.value.code == 2
        assert "--fusion" in capsys.readouterr().err
    # a prior that fuses nothing: refused with the flag named, nothing written
    assert main(["run", str(imgs), "-o", str(out), "--prior", "io-passthrough", "--fusion", "blend=false"]) == 2
    assert "--fusion applies to a learned prior" in _error_line(capsys) and not out.exists()


def test_fusion_flag_reaches_the_fusion(tmp_path):
    import json

    from steadydepth.synthetic import render_clip, save_clip

    clip = save_clip(render_clip(num_frames=10, width=240, height=180, seed=0), tmp_path / "clip") / "clip.mp4"
    stats = {}
    for label, flag in (("default", []), ("global", ["--fusion", "local_fit=false"]), ("learned", ["--fusion", "blend=false"])):
        out = tmp_path / label
        assert main(["run", str(clip), "-o", str(out), "--prior", "io-passthrough+mvs", "--quiet", "--no-vis",
                     "--no-scene", *flag]) == 0
        info = json.loads((out / "run.json").read_text())
        stats[label] = info["prior"]["stats"]
        assert info["options"]["extra"] == ({"fusion": {flag[1].split("=")[0]: False}} if flag else {})
    assert stats["default"]["local_fit"]["blend"] is True
    assert "local_fit" not in stats["global"]
    assert stats["learned"]["local_fit"]["blend"] is False
