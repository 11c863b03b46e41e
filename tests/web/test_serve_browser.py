"""``steadydepth serve`` end to end in a real headless Chromium: upload the synthetic clip,
wait for the run, see the depth video play and the 3D view draw, and find the downloads."""

from __future__ import annotations

import io
import urllib.request
import zipfile

import numpy as np

import browser_support as bs

BACKGROUND = (18, 18, 18)  # the 3D view's clear colour (0.07 in app.js)


def test_upload_runs_and_shows_depth_video_and_3d(tiny_clip, browser, tmp_path):
    from steadydepth.web import JobLimits, start_server

    app = start_server("127.0.0.1", bs.free_port(), jobs_dir=tmp_path / "jobs",
                       limits=JobLimits(max_upload_bytes=5_000_000, max_frames=60), preset="fast")
    try:
        browser.get(app.url)
        bs.wait_until(lambda: "frames" in browser.find_element("id", "limits").text, 20, "the page to load its limits")
        browser.find_element("id", "file").send_keys(str(tiny_clip))
        progress = []

        def finished():
            status = browser.find_element("id", "status").text
            if status and (not progress or progress[-1] != status):
                progress.append(status)
            if browser.find_element("id", "message").text:
                raise AssertionError(f"the page shows an error: {browser.find_element('id', 'message').text}")
            return browser.find_element("id", "result").is_displayed()

        bs.wait_until(finished, 120, "the run to finish (the results to show)", interval=0.3)
        assert any("frames" in p for p in progress), progress  # progress was shown while it ran

        def playing():
            return browser.execute_script(
                "const v = document.getElementById('depth-video');"
                "return v.readyState >= 2 && !v.paused && v.currentTime > 0 && v.videoWidth > 0;")

        bs.wait_until(playing, 30, "the depth video to play")
        video = bs.screenshot(browser, browser.find_element("id", "depth-video"))
        bs.save_png(video, tmp_path / "serve_depth_video.png")
        assert video.reshape(-1, 3).std(axis=0).max() > 10  # a picture, not a blank box

        bs.wait_until(lambda: browser.execute_script("return (window.steadydepthView || {}).frames > 3"), 30,
                      "the 3D view to draw")
        view = bs.screenshot(browser, browser.find_element("id", "view3d"))
        bs.save_png(view, tmp_path / "serve_3d.png")
        assert browser.execute_script("return window.steadydepthView.points") > 1000
        assert bs.non_background_fraction(view, BACKGROUND) > 0.05

        assert bs.remote_requests(browser, app.url.rstrip("/")) == []  # nothing from a CDN
        links = {a.text.split(" ")[0]: a.get_attribute("href") for a in browser.find_elements("css selector", "#downloads a")}
        assert {"depth.npz", "depth_png16.zip", "cameras.json", "depth_vis.mp4"} <= set(links), links
        with urllib.request.urlopen(links["depth_png16.zip"]) as r:
            names = zipfile.ZipFile(io.BytesIO(r.read())).namelist()
        assert len(names) == 10 and names[0] == "depth_png16/000000.png"
        with urllib.request.urlopen(links["depth.npz"]) as r, np.load(io.BytesIO(r.read())) as z:
            assert z["depth"].shape == (10, 96, 128) and (z["depth"] > 0).mean() > 0.5
    finally:
        app.close()
