from __future__ import annotations

import pytest

import browser_support


@pytest.fixture(scope="session")
def chromium():
    """(chromium, chromedriver) paths; installs the Debian packages when missing, else skips with the reason."""
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")
    found = browser_support.ensure_chromium()
    if isinstance(found, str):
        browser_support.log_reason(found)
        pytest.skip(found)
    return found


@pytest.fixture
def browser(chromium):
    driver = browser_support.start_browser(*chromium)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def gt_run(tmp_path_factory):
    """A run folder made of a synthetic clip's exact depth and cameras (its input: the clip's images)."""
    from steadydepth.synthetic import render_clip, save_as_run

    root = tmp_path_factory.mktemp("gt_run")
    run = save_as_run(render_clip(6, 96, 72, motion="orbit", seed=0), root, fps=12.0)
    return run, root / "clip" / "images"


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    """A 10-frame 128x96 synthetic orbit saved as clip.mp4 (and images/, gt/)."""
    from steadydepth.synthetic import render_clip, save_clip

    folder = tmp_path_factory.mktemp("tiny_clip")
    save_clip(render_clip(10, 128, 96, motion="orbit", seed=0), folder)
    return folder / "clip.mp4"


@pytest.fixture(scope="session")
def tiny_run(tiny_clip, tmp_path_factory):
    """That clip through the real pipeline (fast preset)."""
    from steadydepth import estimate

    out = tmp_path_factory.mktemp("tiny_run") / "run"
    estimate(tiny_clip, out, preset="fast", progress_bar=False, vis=False, npz=False)
    return out
