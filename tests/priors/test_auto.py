"""``--prior auto`` (the default of ``run``): the learned model when its weights are on disk, else
``mvs`` at once (no network here), with one line of explanation and the choice in run.json."""

from __future__ import annotations

import copy
import json
import logging
import shutil
import time

import numpy as np
import pytest

from steadydepth.cli import main
from steadydepth.priors.base import create_prior
from steadydepth.synthetic import render_clip, save_clip


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """No model folder with weights and an empty Hugging Face cache."""
    (tmp_path / "models").mkdir()
    (tmp_path / "hf-cache").mkdir()
    monkeypatch.setenv("STEADYDEPTH_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    return tmp_path / "models"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    # SfM on clips under ~200 px wide is not reliable (see test_pipeline_learned), so 240x180
    return save_clip(render_clip(num_frames=10, width=240, height=180, seed=0), tmp_path_factory.mktemp("clip")) / "clip.mp4"


def _auto_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "steadydepth.priors.auto"]


@pytest.fixture
def cameras_solved_once(monkeypatch):
    """Later runs in this test reuse the first run's SfM cameras (as a resumed run does), so two
    runs of one clip compare the depth priors alone: SfM is not bit-repeatable within one long
    test process (seen in CI: 209.3 px and 205.4 px for this clip in two runs)."""
    from steadydepth import pipeline

    solved = []
    solve = pipeline._estimate_cameras

    def once(*args, **kwargs):
        if not solved:
            solved.append(solve(*args, **kwargs))
        return copy.deepcopy(solved[0])

    monkeypatch.setattr(pipeline, "_estimate_cameras", once)
    return solved


def test_default_without_weights_offline_is_mvs_with_one_line(no_weights, clip, tmp_path, caplog, cameras_solved_once):
    with caplog.at_level(logging.INFO, logger="steadydepth"):
        assert main(["run", str(clip), "-o", str(tmp_path / "auto"), "--no-vis"]) == 0  # the default prior
    lines = _auto_lines(caplog)
    assert len(lines) == 1, lines
    assert "'mvs'" in lines[0] and "hf download depth-anything/Video-Depth-Anything-Small" in lines[0]
    assert "STEADYDEPTH_NO_DOWNLOAD" in lines[0]  # why nothing was downloaded (set for the whole test suite)
    assert main(["run", str(clip), "-o", str(tmp_path / "mvs"), "--prior", "mvs", "--quiet", "--no-vis"]) == 0
    assert len(cameras_solved_once) == 1  # solved by the first run, reused by the second
    info = json.loads((tmp_path / "auto" / "run.json").read_text())
    assert info["prior"]["name"] == "mvs"
    auto = info["prior"]["auto"]
    assert auto["chosen"] == "mvs" and auto["model"] is None and "no learned model on disk" in auto["reason"]
    assert auto["tried"] == ["vda-small: not on disk", "da2-small: not on disk"]
    assert auto["resolve_s"] < 2.0
    with np.load(tmp_path / "auto" / "depth.npz") as a, np.load(tmp_path / "mvs" / "depth.npz") as m:
        assert (a["depth"] > 0).mean() > 0.5
        np.testing.assert_array_equal(a["poses"], m["poses"])  # the same cameras: the priors alone differ
        np.testing.assert_allclose(a["depth"], m["depth"], rtol=1e-5, atol=1e-6)


def test_unreachable_hub_falls_back_within_two_seconds(no_weights, monkeypatch, caplog):
    """Downloading allowed, but the Hub does not answer: one probe, then mvs (no retries)."""
    monkeypatch.delenv("STEADYDEPTH_NO_DOWNLOAD", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    # not routable (a connect timeout at worst); where a proxy intercepts every connection, it answers 404
    monkeypatch.setenv("HF_ENDPOINT", "http://10.255.255.1:81")
    create_prior("mvs")  # import the prior modules first: the overhead measured is auto's own
    t0 = time.perf_counter()
    with caplog.at_level(logging.INFO, logger="steadydepth"):
        prior = create_prior("auto")
    elapsed = time.perf_counter() - t0
    t1 = time.perf_counter()
    create_prior("mvs")
    overhead = elapsed - (time.perf_counter() - t1)
    auto = prior.describe()["auto"]
    assert prior.name == "mvs" and auto["chosen"] == "mvs"
    assert "cannot be reached" in auto["reason"] and "10.255.255.1" in auto["reason"]
    assert len(_auto_lines(caplog)) == 1
    assert overhead < 2.0, overhead
    # and with downloading turned off there is no probe at all
    t0 = time.perf_counter()
    prior = create_prior("auto?download=0")
    assert "--no-download" in prior.describe()["auto"]["reason"] and time.perf_counter() - t0 < 2.0


@pytest.mark.slow
def test_picks_the_model_in_the_models_folder_and_records_it(no_weights, tiny_da, vda_checkpoint, clip, tmp_path,
                                                              caplog):
    folder, _, _ = tiny_da(metric=False)
    da_dir = no_weights / "Depth-Anything-V2-Small-hf"
    shutil.copytree(folder, da_dir)
    # a broken Video Depth Anything file is reported and skipped: the next candidate is used
    vda_dir = no_weights / "Video-Depth-Anything-Small"
    vda_dir.mkdir()
    (vda_dir / "video_depth_anything_vits.pth").write_bytes(b"truncated")
    with caplog.at_level(logging.INFO, logger="steadydepth"):
        assert main(["run", str(clip), "-o", str(tmp_path / "out"), "--no-vis"]) == 0
    assert any("could not be loaded" in line for line in _auto_lines(caplog))
    info = json.loads((tmp_path / "out" / "run.json").read_text())
    auto = info["prior"]["auto"]
    assert auto["model"] == "da2-small" and auto["chosen"] == f"hf:{da_dir}+mvs"
    assert auto["licence"] == "Apache-2.0" and "model folder" in auto["reason"]
    assert info["prior"]["name"] == "combined" and info["prior"]["shape"]["name"] == "hf"
    with np.load(tmp_path / "out" / "depth.npz") as z:
        assert np.isfinite(z["depth"]).all() and (z["depth"] > 0).mean() > 0.5
    # with a good Video Depth Anything file (here in --model-dir) it is the first choice: a video model
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(vda_checkpoint / "video_depth_anything_vits.pth", other)
    prior = create_prior(f"auto?model_dir={other}")
    auto = prior.describe()["auto"]
    assert auto["model"] == "vda-small" and auto["chosen"] == f"vda:{other / 'video_depth_anything_vits.pth'}+mvs"
    assert prior.name == "combined" and prior.parts[0].name == "vda"


def test_priors_listing_says_licence_size_outputs_command_and_presence(no_weights, vda_checkpoint, capsys):
    shutil.copy(vda_checkpoint / "video_depth_anything_vits.pth", no_weights)
    assert main(["priors"]) == 0
    text = capsys.readouterr().out
    assert {"auto", "vda", "mvs"} <= set(text.split("learned models")[0].split())
    block = text[text.index("vda-small:"):text.index("da2-small:")]
    assert "Apache-2.0" in block and "MB" in block and "video-consistent" in block
    assert f"present (model folder {no_weights})" in block
    assert f"hf download depth-anything/Video-Depth-Anything-Small video_depth_anything_vits.pth --local-dir " \
           f"{no_weights / 'Video-Depth-Anything-Small'}" in block
    da = text[text.index("da2-small:"):text.index("vda-small-metric:")]
    assert "not on disk" in da and "hf download depth-anything/Depth-Anything-V2-Small-hf" in da
    assert "CC-BY-NC-4.0" in text  # the larger Video Depth Anything models are non-commercial


@pytest.fixture
def local_hub(vda_checkpoint, monkeypatch):
    """A Hub on 127.0.0.1 that knows one repository: Video Depth Anything Small (the random checkpoint)."""
    import hashlib
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    repo = "depth-anything/Video-Depth-Anything-Small"
    data = (vda_checkpoint / "video_depth_anything_vits.pth").read_bytes()
    etag = hashlib.sha256(data).hexdigest()
    requests: list[str] = []

    class Hub(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _answer(self, body: bytes | None, ctype: str = "application/octet-stream") -> None:
            requests.append(f"{self.command} {self.path}")
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", f'"{etag}"')
            self.send_header("X-Repo-Commit", "a" * 40)
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(body)

        def _route(self) -> None:
            if self.path == f"/api/models/{repo}":
                self._answer(json.dumps({"id": repo}).encode(), "application/json")
            elif self.path == f"/{repo}/resolve/main/video_depth_anything_vits.pth":
                self._answer(data)
            else:
                self._answer(None)

        do_GET = do_HEAD = _route

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.delenv("STEADYDEPTH_NO_DOWNLOAD", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield requests
    server.shutdown()
    server.server_close()


def test_downloads_the_recommended_model_when_the_hub_answers(no_weights, local_hub, tmp_path):
    prior = create_prior("auto")
    auto = prior.describe()["auto"]
    assert auto["model"] == "vda-small" and "downloaded from the Hugging Face Hub" in auto["reason"]
    cached = auto["chosen"].removeprefix("vda:").removesuffix("+mvs")
    assert cached.startswith(str(tmp_path / "hf-cache")) and cached.endswith("video_depth_anything_vits.pth")
    assert prior.parts[0].name == "vda" and prior.parts[0].encoder == "vits"
    assert any(r.startswith("GET /api/models/") for r in local_hub)
    # the next run finds it in the cache: no request at all
    local_hub.clear()
    again = create_prior("auto").describe()["auto"]
    assert "Hugging Face cache" in again["reason"] and local_hub == []
