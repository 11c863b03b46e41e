"""``steadydepth view`` in a real headless Chromium: points are drawn, the slider changes the picture."""

from __future__ import annotations


import numpy as np
import pytest

import browser_support as bs

pytest.importorskip("viser")

BACKGROUND = (255, 255, 255)  # viser's default light theme


def _canvas_shot(driver):
    canvas = driver.find_element("css selector", "canvas")
    shot = bs.screenshot(driver, canvas)
    h, w = shot.shape[:2]
    # the middle of the view: the control panel floats on the right, a notice may sit at the top left
    return shot[int(0.25 * h): int(0.8 * h), int(0.3 * w): int(0.65 * w)]


def test_viewer_draws_points_and_slider_changes_them(tiny_run, browser, tmp_path):
    from selenium.webdriver.common.keys import Keys

    from steadydepth.viewer import open_viewer

    app = open_viewer(tiny_run, port=bs.free_port(), max_points=6000)
    try:
        assert app.url.startswith("http://127.0.0.1:")
        browser.get(app.url)
        bs.wait_until(lambda: browser.find_elements("css selector", "canvas"), 40, "the viewer's canvas")
        slider = bs.wait_until(lambda: browser.find_elements("css selector", "[role=slider]"), 40, "the frame slider")[0]

        def drawn():
            shot = _canvas_shot(browser)
            return shot if bs.non_background_fraction(shot, BACKGROUND) > 0.3 else None

        first = bs.wait_until(drawn, 30, "points on the canvas (> 30 % non-background pixels)")
        bs.save_png(first, tmp_path / "view_frame0.png")

        last_frame = len(app.run.shown) - 1

        def moved_to_end():
            # the last frame: the camera has moved along its orbit. The key is sent again on each poll,
            # as a slider still settling on a busy machine has been seen to drop the first one.
            if app.current != last_frame:
                slider.click()
                slider.send_keys(Keys.END)
            return app.current == last_frame

        bs.wait_until(moved_to_end, 30, "the viewer to receive the slider move", interval=2.0)

        polls = [0]

        def changed():
            shot = _canvas_shot(browser)
            if np.abs(shot.astype(int) - first.astype(int)).max(axis=2).__gt__(24).mean() > 0.02:
                return shot
            polls[0] += 1
            if polls[0] % 20 == 0:  # every ~5 s unchanged (seen once in CI): one frame back and to the end again
                slider.send_keys(Keys.LEFT)
                slider.send_keys(Keys.END)
            return None

        last = bs.wait_until(changed, 40, "the picture to change after the slider moved")
        bs.save_png(last, tmp_path / "view_frame_last.png")
        assert bs.non_background_fraction(last, BACKGROUND) > 0.3
        assert bs.remote_requests(browser, app.url.rstrip("/")) == []  # the client is served from the package
    finally:
        app.close()
