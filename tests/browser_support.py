"""Shared helpers of the browser tests: a real headless Chromium driven by selenium.

Chromium and its driver come from the Debian packages ``chromium`` and ``chromium-driver``;
:func:`ensure_chromium` installs them with apt-get when they are missing (CI runs as root
in a fresh clone), and the ``browser`` fixture skips with the reason printed when that
cannot be done. WebGL runs on SwiftShader (software), so no GPU is needed.
"""

from __future__ import annotations

import io
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVER = ("chromedriver",)


def _which(names: tuple[str, ...]) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def ensure_chromium() -> tuple[str, str] | str:
    """``(chromium, chromedriver)`` paths, installing the Debian packages when missing;
    a one-line reason (str) when they cannot be had."""
    browser, driver = _which(CHROMIUM), _which(DRIVER)
    if browser and driver:
        return browser, driver
    if not shutil.which("apt-get"):
        return "chromium/chromedriver are not installed and there is no apt-get to install them"
    try:
        import os

        if hasattr(os, "geteuid") and os.geteuid() != 0:
            return "chromium/chromedriver are not installed and installing them needs root (apt-get)"
    except OSError:
        pass
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"]):
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"'{' '.join(cmd)}' failed: {exc}"
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
            return f"'{' '.join(cmd)}' failed (exit {done.returncode}): {tail[0]}"
    browser, driver = _which(CHROMIUM), _which(DRIVER)
    if browser and driver:
        return browser, driver
    return "apt-get installed chromium but no chromium/chromedriver is on PATH"


def start_browser(browser: str, driver: str, *, width: int = 1000, height: int = 700):
    """A headless Chromium (selenium WebDriver) with software WebGL."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}",
                "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--use-gl=angle",
                "--ignore-gpu-blocklist", "--disable-extensions", "--no-first-run", "--mute-audio",
                "--autoplay-policy=no-user-gesture-required"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver), options=opts)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def screenshot(driver, element=None) -> np.ndarray:
    """The page (or one element) as an RGB ``(H, W, 3)`` uint8 array."""
    from PIL import Image

    png = element.screenshot_as_png if element is not None else driver.get_screenshot_as_png()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def save_png(image: np.ndarray, path) -> None:
    from PIL import Image

    Image.fromarray(image).save(path)


def non_background_fraction(image: np.ndarray, background: np.ndarray | None = None, tol: int = 24) -> float:
    """Share of pixels farther than ``tol`` (max over channels) from ``background`` (default:
    the most common colour of the image)."""
    flat = image.reshape(-1, 3).astype(np.int16)
    if background is None:
        values, counts = np.unique(flat, axis=0, return_counts=True)
        background = values[np.argmax(counts)]
    diff = np.abs(flat - np.asarray(background, dtype=np.int16)).max(axis=1)
    return float((diff > tol).mean())


def wait_until(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.25):
    """Poll ``condition`` until it returns something other than None, False or an empty list; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value is not None and value is not False and not (isinstance(value, (list, tuple)) and not value):
                return value
        except Exception as exc:  # noqa: BLE001 - the page may not be ready yet
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}" + (f" (last error: {last_exc})" if last_exc else ""))


def log_reason(reason: str) -> None:
    """Print why the browser tests skip (shown by pytest -rs and on stderr in CI logs)."""
    print(f"browser tests skipped: {reason}", file=sys.stderr)


def remote_requests(driver, local: str) -> list[str]:
    """Resources the page loaded from anywhere but ``local`` (its own origin), data: and blob: URLs."""
    names = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)") or []
    return [n for n in names if not (n.startswith(local) or n.startswith("data:") or n.startswith("blob:"))]
