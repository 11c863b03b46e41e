"""The safety rules of ``steadydepth serve`` over real HTTP (no browser): caps, names, queue, clean-up."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request

import pytest

from steadydepth.cli import main
from steadydepth.viewer.app import check_host, is_loopback
from steadydepth.web import JobLimits, start_server
from steadydepth.web.jobs import JOB_ID


def _post(url: str, data: bytes) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method="POST")) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def server(tmp_path):
    apps = []

    def start(**limits):
        app = start_server("127.0.0.1", 0, jobs_dir=tmp_path / "jobs", limits=JobLimits(**limits), preset="fast")
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.close()


def test_refused_uploads_say_why_and_leave_nothing_on_disk(server, tiny_clip):
    app = server(max_upload_bytes=len(tiny_clip.read_bytes()) + 10, max_frames=5)
    status, body = _post(app.url + "api/jobs", b"x" * (len(tiny_clip.read_bytes()) + 11))
    assert status == 413 and "at most" in body["error"] and "--max-upload-mb" in body["error"]
    status, body = _post(app.url + "api/jobs", b"this is not a video")
    assert status == 422 and body["error"].startswith("the upload") and str(app.jobs.root) not in body["error"]
    status, body = _post(app.url + "api/jobs", tiny_clip.read_bytes())
    assert status == 422 and "has 10 frames" in body["error"] and "at most 5 frames (--max-frames)" in body["error"]
    assert [p for p in app.jobs.root.iterdir() if JOB_ID.match(p.name)] == []


def test_only_server_made_names_reach_the_disk(server):
    app = server()
    for path in ("api/jobs/..%2f..%2fetc%2fpasswd", "api/jobs/0123456789abcdef", "api/jobs/0123456789abcdef/files/run.json",
                 "static/../jobs.py", "static/server.py", "api/jobs/0123456789ABCDEF"):
        status, _ = _get(app.url + path)
        assert status == 404, path
    foreign = urllib.request.Request(app.url, headers={"Host": "evil.example:80"})
    with pytest.raises(urllib.error.HTTPError, match="403"):
        urllib.request.urlopen(foreign)
    cross = urllib.request.Request(app.url + "api/example", data=b"", method="POST",
                                   headers={"Origin": "http://evil.example"})
    with pytest.raises(urllib.error.HTTPError, match="403"):
        urllib.request.urlopen(cross)
    status, page = _get(app.url)
    assert status == 200 and b"/static/app.js" in page and b"http" not in page.replace(b"http-equiv", b"")  # nothing remote


def test_jobs_are_bounded_queued_and_cleaned(server, tiny_clip, monkeypatch):
    import steadydepth.pipeline as pipeline

    release = threading.Event()
    started = threading.Event()

    def held_run(src, out, **options):  # a run that waits for the test: the queue can be seen filling up
        started.set()
        release.wait(30)
        raise pipeline.NoDepthError("stopped by the test")

    monkeypatch.setattr(pipeline, "estimate", held_run)
    app = server(max_running=1, max_queued=1, keep_s=5)
    clip = tiny_clip.read_bytes()
    s1, first = _post(app.url + "api/jobs", clip)
    assert s1 == 202 and JOB_ID.match(first["id"])
    assert started.wait(10)
    s2, second = _post(app.url + "api/jobs", clip)
    assert s2 == 202 and second["state"] == "queued" and second["queue_position"] == 1
    s3, third = _post(app.url + "api/jobs", clip)
    assert s3 == 503 and "at most 1" in third["error"]
    release.set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and app.jobs.status(second["id"])["state"] not in ("failed", "done"):
        time.sleep(0.1)
    done = app.jobs.status(first["id"])
    assert done["state"] == "failed" and "stopped by the test" in done["error"]
    assert app.jobs.status(second["id"])["state"] == "failed"
    assert app.jobs.clean(now=time.time()) == 0  # not old yet
    assert app.jobs.clean(now=time.time() + 6) == 2
    assert app.jobs.status(first["id"]) is None and not (app.jobs.root / first["id"]).exists()


def test_hosts_and_command_line_errors(caplog, capsys, tmp_path):
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    with caplog.at_level(logging.WARNING, logger="steadydepth"):
        check_host("127.0.0.1", "the viewer")
        assert not caplog.records
        check_host("0.0.0.0", "the viewer")
    assert "listens on 0.0.0.0" in caplog.records[0].getMessage()
    assert main(["view", str(tmp_path)]) == 2
    assert "not a steadydepth run folder" in capsys.readouterr().err
    assert main(["serve", "--port", "70000"]) == 2
    assert "--port must be in 0..65535" in capsys.readouterr().err
    assert main(["serve", "--max-jobs", "0", "--port", "0"]) == 2
    assert "--max-jobs must be > 0" in capsys.readouterr().err


def test_serve_command_prints_its_url_and_stops_cleanly_on_sigterm(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    import steadydepth

    env = dict(os.environ, PYTHONPATH=str(Path(steadydepth.__file__).parents[1]))
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from steadydepth.cli import main; sys.exit(main())",
                             "serve", "--port", "0", "--jobs-dir", str(tmp_path / "jobs")],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stderr.readline()
        assert line.startswith("steadydepth serve: open http://127.0.0.1:"), line
        url = line.split("open ", 1)[1].split(" ", 1)[0]
        assert _get(url)[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
