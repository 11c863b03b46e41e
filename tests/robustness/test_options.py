"""Every option and the input are checked before any work and before anything is deleted.

A finished run sits in the output folder; a rerun with ``--overwrite`` and a nonsense value
must fail at once with one line naming the user's flag, and leave the finished run as it was.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from steadydepth import InputError, OutputError
from steadydepth.cli import main
from steadydepth.pipeline import estimate
from steadydepth.priors import available_priors
from steadydepth.synthetic import render_clip, save_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 12-frame 96x72 orbit clip: clip.mp4, images/, gt/."""
    return save_clip(render_clip(12, 96, 72, motion="orbit"), tmp_path_factory.mktemp("clip"))


@pytest.fixture()
def finished_run(tmp_path, clip):
    """A completed run (the I/O prior: no SfM, fast) and a snapshot of what it wrote."""
    out = tmp_path / "done"
    assert main(["run", str(clip / "clip.mp4"), "-o", str(out), "--prior", "io-passthrough", "--quiet", "--no-vis"]) == 0
    snapshot = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    return out, snapshot


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "expected an error message"
    assert "Traceback" not in "\n".join(err)
    return err[-1]


def _unchanged(out, snapshot) -> None:
    now = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert now == snapshot, "the finished run was changed"
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


# (extra arguments, the flag the message must name)
BAD_OPTIONS = [
    (["--fov", "200"], "--fov"),
    (["--fov", "nan"], "--fov"),
    (["--points", "--points-stride", "0"], "--points-stride"),
    (["--format", "png16", "--png-scale", "0"], "--png-scale"),
    (["--format", "png16", "--png-scale", "inf"], "--png-scale"),
    (["--intrinsics", "nan,nan,1,1"], "--intrinsics"),
    (["--intrinsics", "300,300,-5000,1e9"], "--intrinsics"),
    (["--intrinsics", "1e-9,1e-9,48,36"], "--intrinsics"),
    (["--intrinsics", "80,80,48,1e9"], "--intrinsics"),
    (["--metric-hint", "depth=inf"], "--metric-hint"),
    (["--metric-hint", "depth=1e-300"], "--metric-hint"),
    (["--metric-hint", "travel=nan"], "--metric-hint"),
    (["--metric-hint", "travel=1e300"], "--metric-hint"),
    (["--start", "50"], "--start"),
    (["--stride", "0"], "--stride"),
    (["--start", "5", "--stop", "3"], "--stop"),
    (["--max-res", "8"], "--max-res"),
    (["--temporal-radius", "-1"], "--temporal-radius"),
    (["--device", "gpu"], "--device"),
]


@pytest.mark.parametrize("extra,flag", BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_bad_option_is_refused_before_the_old_run_is_deleted(finished_run, clip, capsys, extra, flag):
    out, snapshot = finished_run
    capsys.readouterr()
    rc = main(["run", str(clip / "clip.mp4"), "-o", str(out), "--overwrite", "--quiet", "--no-vis", *extra])
    assert rc == InputError.exit_code
    line = _error_line(capsys)
    assert flag in line, line
    assert "hfov_deg" not in line and "internal error" not in line
    _unchanged(out, snapshot)


def test_mvs_needs_two_frames_before_any_work(finished_run, clip, capsys):
    out, snapshot = finished_run
    capsys.readouterr()
    rc = main(["run", str(clip / "clip.mp4"), "-o", str(out), "--overwrite", "--quiet", "--start", "4",
               "--stride", "20"])
    assert rc == InputError.exit_code
    assert "at least 2 frames" in _error_line(capsys)
    _unchanged(out, snapshot)


def test_points_without_intrinsics_refused_before_the_run(finished_run, clip, capsys):
    out, snapshot = finished_run
    capsys.readouterr()
    rc = main(["run", str(clip / "clip.mp4"), "-o", str(out), "--overwrite", "--quiet", "--no-vis",
               "--prior", f"files:{clip / 'gt' / 'depth'}", "--points"])
    assert rc == InputError.exit_code
    line = _error_line(capsys)
    assert "--points" in line and "--fov" in line and "--intrinsics" in line, line
    _unchanged(out, snapshot)
    # with --fov the same run works and writes the point clouds
    assert main(["run", str(clip / "clip.mp4"), "-o", str(out), "--overwrite", "--quiet", "--no-vis",
                 "--prior", f"files:{clip / 'gt' / 'depth'}", "--points", "--fov", "60"]) == 0
    assert (out / "points" / "000011.ply").is_file()


def test_good_intrinsics_still_accepted(tmp_path, clip):
    out = tmp_path / "out"
    rc = main(["run", str(clip / "images"), "-o", str(out), "--quiet", "--no-vis", "--prior",
               f"files:{clip / 'gt' / 'depth'}", "--points", "--intrinsics", "80,80,47.5,35.5"])
    assert rc == 0
    assert json.loads((out / "cameras.json").read_text())["intrinsics"]["fx"] == pytest.approx(80)


# -- files: prior --------------------------------------------------------------------------------------------

def _depth_maps(folder, n, w, h):
    folder.mkdir()
    for i in range(n):
        np.save(folder / f"d{i}.npy", np.full((h, w), 1.0 + 0.1 * i, np.float32))
    return folder


def test_files_prior_of_another_aspect_ratio_is_refused(finished_run, clip, tmp_path, capsys):
    out, snapshot = finished_run
    maps = _depth_maps(tmp_path / "maps", 12, 30, 10)  # 3:1 maps for a 4:3 clip
    capsys.readouterr()
    rc = main(["run", str(clip / "clip.mp4"), "-o", str(out), "--overwrite", "--quiet", "--no-vis",
               "--prior", f"files:{maps}"])
    assert rc == InputError.exit_code
    line = _error_line(capsys)
    assert "d0.npy" in line and "30x10" in line and "96x72" in line and "aspect ratio" in line, line
    _unchanged(out, snapshot)


def test_files_prior_of_another_size_is_resized_with_one_warning(clip, tmp_path, caplog):
    maps = _depth_maps(tmp_path / "maps", 12, 48, 36)  # half size, same aspect ratio
    with caplog.at_level(logging.WARNING, logger="steadydepth"):
        video = estimate(clip / "clip.mp4", tmp_path / "out", prior=f"files:{maps}", progress_bar=False, vis=False)
    warned = [r for r in caplog.records if "48x36" in r.getMessage()]
    assert len(warned) == 1, [r.getMessage() for r in caplog.records]
    assert video[5].depth.shape == (72, 96)
    np.testing.assert_allclose(video[5].depth, 1.5, rtol=1e-5)


def test_files_prior_with_too_few_files_is_refused_before_the_run(finished_run, clip, tmp_path, capsys,
                                                                  monkeypatch):
    out, snapshot = finished_run
    maps = _depth_maps(tmp_path / "maps", 7, 96, 72)
    read = []
    import steadydepth.io.depth_files as depth_files

    original = depth_files.read_depth
    monkeypatch.setattr(depth_files, "read_depth", lambda path, **kw: read.append(path) or original(path, **kw))
    capsys.readouterr()
    rc = main(["run", str(clip / "clip.mp4"), "-o", str(out), "--overwrite", "--quiet", "--no-vis",
               "--prior", f"files:{maps}", "--start", "2"])
    assert rc == InputError.exit_code
    line = _error_line(capsys)
    assert "holds 7 depth files" in line and "need 12" in line, line
    assert len(read) <= 1  # refused before the frames are processed (at most the first map's size is read)
    _unchanged(out, snapshot)
    # the range that the files cover works
    assert main(["run", str(clip / "clip.mp4"), "-o", str(out), "--overwrite", "--quiet", "--no-vis",
                 "--prior", f"files:{maps}", "--start", "2", "--stop", "7"]) == 0


# -- the Python API ------------------------------------------------------------------------------------------

def test_api_errors_name_the_python_arguments(tmp_path, clip):
    frames = np.random.default_rng(0).integers(0, 255, (3, 40, 56, 3), dtype=np.uint8)
    with pytest.raises(InputError, match=r"hfov_deg=200") as info:
        estimate(frames, tmp_path / "a", hfov_deg=200, progress_bar=False)
    assert "--fov" not in str(info.value)
    estimate(frames, tmp_path / "b", prior="io-passthrough", progress_bar=False, vis=False)
    with pytest.raises(OutputError, match=r"overwrite=True") as info:  # the README example run twice
        estimate(frames, tmp_path / "b", prior="io-passthrough", progress_bar=False, vis=False)
    assert "--overwrite" not in str(info.value)
    estimate(frames, tmp_path / "b", prior="io-passthrough", progress_bar=False, vis=False, overwrite=True)


def test_api_without_output_folder_leaves_no_temporary_folder(tmp_path, monkeypatch):
    import gc
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    frames = np.random.default_rng(0).integers(0, 255, (3, 40, 56, 3), dtype=np.uint8)
    video = estimate(frames, prior="io-passthrough", progress_bar=False, vis=False)
    assert video.folder.parent == tmp_path and video[2].depth.shape == (40, 56)
    kept = video.save(tmp_path / "kept")
    del video
    gc.collect()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]
    assert (kept / "depth.npz").is_file()
    with pytest.raises(InputError):  # a run that fails after its folder was made removes it too
        estimate(frames, prior="io-passthrough", progress_bar=False, vis=False, metric_hint="travel=2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]


# -- priors and eval -----------------------------------------------------------------------------------------

def test_priors_lists_only_real_depth_sources(capsys):
    import steadydepth.eval.simulate  # noqa: F401 - registers 'simulated'

    assert main(["priors"]) == 0
    listed = capsys.readouterr().out.split()
    assert {"mvs", "files", "hf"} <= set(listed)
    assert not {"io-passthrough", "simulated", "combined"} & set(listed)
    assert "io-passthrough" in available_priors(include_internal=True)


def test_eval_says_when_it_scores_an_interrupted_run(clip, tmp_path, capsys, monkeypatch, caplog):
    """An interrupted run (stride 2, stopped after 3 frames) is scored as partial, frame k against source 2k."""
    import steadydepth.priors.files as files_prior

    original = files_prior.FilesPrior.process

    def interrupted(self, frames, context):
        for k, out in enumerate(original(self, frames, context)):
            if k == 3:
                raise KeyboardInterrupt
            yield out

    monkeypatch.setattr(files_prior.FilesPrior, "process", interrupted)
    out = tmp_path / "out"
    rc = main(["run", str(clip / "clip.mp4"), "-o", str(out), "--quiet", "--no-vis", "--temporal-radius", "0",
               "--prior", f"files:{clip / 'gt' / 'depth'}", "--stride", "2"])
    assert rc == 130
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="steadydepth"):
        assert main(["eval", str(out), "--gt", str(clip / "gt"), "--json", str(tmp_path / "m.json")]) == 0
    assert any("interrupted" in r.getMessage() and "3 frames" in r.getMessage() for r in caplog.records)
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["partial"] is True and metrics["status"] == "interrupted"
    row = metrics["rows"][0]
    assert row["frames"] == 3 and row["abs_rel"] < 1e-3  # the ground truth itself, matched frame for frame


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "0"])
def test_eval_max_depth_must_be_positive(clip, tmp_path, capsys, value):
    rc = main(["eval", str(tmp_path), "--gt", str(clip / "gt"), "--max-depth", value])
    assert rc == InputError.exit_code
    assert "--max-depth" in _error_line(capsys)


# -- --overwrite keeps the old run until the new one has a frame -------------------------------------------

def _failing_passthrough(monkeypatch, after: int, exc: BaseException):
    """The I/O prior, made to raise ``exc`` once it has yielded ``after`` frames."""
    import steadydepth.priors.passthrough as passthrough

    original = passthrough.PassthroughPrior.process

    def failing(self, frames, context):
        for k, out in enumerate(original(self, frames, context)):
            if k == after:
                raise exc
            yield out

    monkeypatch.setattr(passthrough.PassthroughPrior, "process", failing)


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()], ids=["failure", "interrupt"])
def test_overwrite_that_stops_before_its_first_frame_keeps_the_old_run(finished_run, clip, monkeypatch, exc):
    out, snapshot = finished_run
    _failing_passthrough(monkeypatch, 0, exc)
    args = ["run", str(clip / "images"), "-o", str(out), "--overwrite", "--quiet", "--no-vis", "--prior",
            "io-passthrough", "--stride", "2"]
    assert main(args) != 0
    _unchanged(out, snapshot)
    assert not (out / ".previous").exists()


def test_overwrite_replaces_the_old_run_once_a_frame_is_written(finished_run, clip, monkeypatch):
    out, _ = finished_run
    _failing_passthrough(monkeypatch, 2, RuntimeError("boom"))
    assert main(["run", str(clip / "images"), "-o", str(out), "--overwrite", "--quiet", "--no-vis", "--prior",
                 "io-passthrough", "--stride", "2"]) != 0
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "failed" and info["options"]["stride"] == 2
    assert sorted(p.name for p in (out / "depth").iterdir()) == ["000000.npy", "000001.npy"]
    assert not (out / ".previous").exists() and not (out / "depth.npz").exists()


def test_overwrite_after_a_killed_replacement_still_keeps_the_last_real_run(finished_run, clip, monkeypatch):
    """A replacing run killed before its first frame leaves .previous/; the next attempt keeps it too."""
    from steadydepth.outputs import OutputFolder

    out, snapshot = finished_run
    OutputFolder(out, overwrite=True).prepare()  # what a killed run leaves: the old run set aside ...
    (out / "run.json").write_text('{"status": "running"}')  # ... and its own run.json
    _failing_passthrough(monkeypatch, 0, RuntimeError("boom"))
    assert main(["run", str(clip / "images"), "-o", str(out), "--overwrite", "--quiet", "--no-vis", "--prior",
                 "io-passthrough"]) != 0
    _unchanged(out, snapshot)
    monkeypatch.undo()
    assert main(["run", str(clip / "images"), "-o", str(out), "--overwrite", "--quiet", "--no-vis", "--prior",
                 "io-passthrough", "--stride", "3"]) == 0
    assert json.loads((out / "run.json").read_text())["frames"] == 4
    assert not (out / ".previous").exists()


@pytest.mark.parametrize("spec", ["depthcrafter:?guidance=nan", "depthcrafter:?noise_aug=inf",
                                  "depthcrafter:?noise_aug=-1",
                                  "onnx:{model}?std=nan,1,1", "onnx:{model}?mean=0,inf,0"])
def test_non_finite_prior_options_are_refused(tmp_path, spec):
    from steadydepth.priors import create_prior

    model = tmp_path / "model.onnx"
    model.write_bytes(b"not loaded before the options are checked")
    with pytest.raises(InputError, match="finite"):
        create_prior(spec.format(model=model))


def test_api_intrinsics_for_another_aspect_ratio_are_refused(tmp_path):
    from steadydepth.types import Intrinsics

    frames = np.random.default_rng(0).integers(0, 255, (3, 40, 56, 3), dtype=np.uint8)
    with pytest.raises(InputError, match=r"intrinsics=.*40x40.*56x40"):
        estimate(frames, tmp_path / "out", prior="io-passthrough", progress_bar=False,
                 intrinsics=Intrinsics(50, 50, 19.5, 19.5, 40, 40))
    assert not (tmp_path / "out").exists()
    video = estimate(frames, tmp_path / "out", prior="io-passthrough", progress_bar=False, vis=False,
                     intrinsics=Intrinsics(25, 25, 13.5, 9.5, 28, 20))  # half size, same aspect ratio: fine
    assert video.intrinsics.fx == pytest.approx(50)


def test_former_preset_name_best_runs_as_fine_with_a_warning(caplog):
    """``best`` was renamed ``fine`` (it is not better than ``balanced`` on every clip); old
    command lines keep working, say so once, and get exactly ``fine``'s settings."""
    from steadydepth.options import RunOptions
    from steadydepth.priors.mvs import MVSPrior
    from steadydepth.priors.mvs_settings import MVS_PRESETS
    from steadydepth.priors.base import create_prior

    with caplog.at_level(logging.WARNING, logger="steadydepth"):
        old = RunOptions(preset="best").resolved()
    assert old == RunOptions(preset="fine").resolved()
    assert any("now called 'fine'" in r.getMessage() for r in caplog.records)
    prior = create_prior("mvs:best")
    assert isinstance(prior, MVSPrior) and prior._fixed == MVS_PRESETS["fine"]
    with pytest.raises(InputError, match="unknown preset"):
        RunOptions(preset="bestest").resolved()
