"""``steadydepth batch``: many clips, one folder each, failures isolated, resume per clip, Ray."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from steadydepth.batch import clip_names, collect_clips, run_batch
from steadydepth.cli import main
from steadydepth.errors import InputError
from steadydepth.options import RunOptions
from steadydepth.synthetic.render import render_clip
from steadydepth.synthetic.writer import save_clip

ARGS = ["--preset", "fast", "--quiet", "--no-vis"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """``clips/a.mp4``, ``clips/broken.mp4`` (not a video) and ``more/b c.mp4`` listed in ``list.txt``."""
    root = tmp_path_factory.mktemp("batch")
    (root / "clips").mkdir()
    (root / "more").mkdir()
    for seed, target in ((1, root / "clips" / "a.mp4"), (2, root / "more" / "b c.mp4")):
        folder = save_clip(render_clip(10, 128, 96, motion="walk", seed=seed), root / f"render{seed}")
        (folder / "clip.mp4").rename(target)
    (root / "clips" / "broken.mp4").write_bytes(os.urandom(3000))
    (root / "list.txt").write_text("# clips of the second camera\n\nmore/b c.mp4\n")
    return root


def test_inputs_folders_and_list_files_give_safe_unique_names(clips, tmp_path):
    found = collect_clips([clips / "clips", clips / "list.txt", clips / "clips" / "a.mp4"])  # a.mp4 only once
    assert [Path(c).name for c in found] == ["a.mp4", "broken.mp4", "b c.mp4"]
    assert clip_names(found) == ["a", "broken", "b_c"]
    assert clip_names(["x/clip.mp4", "y/clip.mp4", "z/Clip.mov", "w/.hidden.mp4", "frames/"]) == \
        ["clip", "clip-2", "Clip-3", "hidden", "frames"]
    (tmp_path / "images").mkdir()  # a folder without videos is one clip (an image sequence)
    assert collect_clips([tmp_path / "images"]) == [str(tmp_path / "images")]
    with pytest.raises(InputError, match="cannot read the list file"):
        collect_clips([tmp_path / "missing.txt"])


def test_batch_isolates_a_broken_clip_and_resumes_per_clip(clips, tmp_path, caplog):
    out = tmp_path / "out"
    args = ["batch", str(clips / "clips"), str(clips / "list.txt"), "-o", str(out), *ARGS]
    with caplog.at_level(logging.INFO, logger="steadydepth"):
        assert main(args) == 2  # the broken file's exit code (bad input); the others complete
    info = json.loads((out / "batch.json").read_text())
    assert info["status"] == "complete" and info["counts"] == {"complete": 2, "failed": 1, "pending": 0}
    by_name = {Path(r["output"]).name: r for r in info["clips"]}
    assert by_name["a"]["status"] == by_name["b_c"]["status"] == "complete"
    assert by_name["a"]["frames"] == 10 and by_name["a"]["fps"] == pytest.approx(24.0)
    assert by_name["broken"]["status"] == "failed" and "broken.mp4" in by_name["broken"]["error"]
    for name in ("a", "b_c"):
        assert json.loads((out / name / "run.json").read_text())["status"] == "complete"
        assert (out / name / "depth.npz").exists()
    summary = next(r.getMessage() for r in caplog.records if "batch summary" in r.getMessage())
    assert "2 complete, 1 failed" in summary and "b_c" in summary and "not a readable video" in summary

    mtimes = {p: p.stat().st_mtime_ns for p in (out / "a" / "depth").iterdir()}
    assert main(args) == 2  # again: the completed clips are not run again
    info = json.loads((out / "batch.json").read_text())
    skipped = {Path(r["output"]).name: r.get("skipped") for r in info["clips"]}
    assert skipped == {"a": "complete in an earlier run", "b_c": "complete in an earlier run", "broken": None}
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())


def test_batch_on_a_local_ray_with_two_cpus(clips, tmp_path, capfd):
    pytest.importorskip("ray")
    out = tmp_path / "out"
    records = run_batch([clips / "clips" / "a.mp4", clips / "list.txt"], out,
                        RunOptions(preset="fast", vis=False, progress_bar=False), use_ray=True, num_cpus=2)
    assert [r["status"] for r in records] == ["complete", "complete"], records
    pids = {json.loads((out / name / "run.json").read_text())["process"]["pid"] for name in ("a", "b_c")}
    assert os.getpid() not in pids and len(pids) == 2  # two Ray workers, one clip each
    assert json.loads((out / "batch.json").read_text())["counts"]["complete"] == 2
    err = capfd.readouterr().err
    assert "ray" not in err.lower(), err  # Ray's own logs stay off the terminal


def test_batch_on_ray_without_ray_installed_says_which_extra(clips, tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    rc = main(["batch", str(clips / "list.txt"), "-o", str(tmp_path / "out"), "--ray", *ARGS])
    assert rc == 4
    assert "steadydepth[ray]" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_batch_refuses_bad_options_before_any_clip(clips, tmp_path, capsys):
    assert main(["batch", str(clips / "list.txt"), "-o", str(tmp_path / "out"), "--stride", "0", *ARGS]) == 2
    assert "--stride 0" in capsys.readouterr().err and not (tmp_path / "out").exists()
