"""``steadydepth serve``: drop a clip in the browser, get its depth, downloads and a 3D view.

A plain page (``static/``: HTML, CSS, JavaScript, no library, nothing from a CDN) over the
standard library's threading HTTP server. Routes:

* ``GET /`` and ``GET /static/NAME`` -- the page (a fixed set of files);
* ``POST /api/jobs`` -- the request body is the clip itself (no multipart, no file name);
  ``Content-Length`` is required and checked against the upload cap before anything is read;
* ``POST /api/example`` -- a job on the generated synthetic example clip;
* ``GET /api/jobs/ID`` -- the job's progress (JSON);
* ``GET /api/jobs/ID/files/NAME`` -- a download of a finished job (names from
  :data:`~steadydepth.web.jobs.DOWNLOADS`; byte ranges served for the video).

See :mod:`steadydepth.web.jobs` for the job rules (folders, caps, queue, clean-up).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ..errors import InputError, OutputError
from .jobs import INPUT_NAME, JOB_ID, JobLimits, JobManager, QueueFull

__all__ = ["WebApp", "start_server"]

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
STATIC_FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                "app.css": "text/css; charset=utf-8"}
CONTENT_TYPES = {".json": "application/json", ".mp4": "video/mp4", ".npz": "application/octet-stream",
                 ".zip": "application/zip", ".glb": "model/gltf-binary", ".ply": "application/octet-stream",
                 ".bin": "application/octet-stream"}
_ROUTE = re.compile(r"^/api/jobs/([^/]+)(?:/files/([^/]+))?$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
#: the synthetic example offered on the page (rendered once per server)
EXAMPLE = {"frames": 24, "width": 256, "height": 192, "motion": "orbit"}


class WebApp:
    """The server and its jobs. ``url`` is where to open it; :meth:`close` stops it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8000, *, jobs_dir: str | Path | None = None,
                 limits: JobLimits | None = None, **run_options) -> None:
        from ..viewer.app import check_host

        check_host(host, "the web app")
        self._own_root = jobs_dir is None
        root = Path(tempfile.mkdtemp(prefix="steadydepth-serve-")) if jobs_dir is None else Path(jobs_dir)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{root}: cannot create the jobs folder ({exc.strerror or exc})") from exc
        self.jobs = JobManager(root, limits, **run_options)
        self._example_lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"app": self})
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            self.jobs.close()
            raise OutputError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port") from exc
        self.httpd.daemon_threads = True
        self.host = host
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="steadydepth-serve", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}/"

    def example_clip(self) -> Path:
        """The synthetic example clip (rendered on first use, then kept for this server)."""
        from ..synthetic import render_clip, save_clip

        folder = self.jobs.root / "example"
        with self._example_lock:
            if not (folder / "clip.mp4").is_file():
                clip = render_clip(EXAMPLE["frames"], EXAMPLE["width"], EXAMPLE["height"], motion=EXAMPLE["motion"], seed=0)
                save_clip(clip, folder)
        return folder / "clip.mp4"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.jobs.close()
        if self._own_root:
            shutil.rmtree(self.jobs.root, ignore_errors=True)


class _Handler(BaseHTTPRequestHandler):
    app: WebApp
    server_version = "steadydepth"
    sys_version = ""

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        log.debug("%s %s", self.address_string(), format % args)

    # -- answers ----------------------------------------------------------------------
    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _file(self, path: Path, content_type: str, *, download_name: str | None = None) -> None:
        size = path.stat().st_size
        start, end = 0, size - 1
        status = HTTPStatus.OK
        match = _RANGE.match(self.headers.get("Range", "") or "")
        if match and size:
            a, b = match.groups()
            if a:
                start, end = int(a), min(int(b), size - 1) if b else size - 1
            elif b:
                start = max(0, size - int(b))
            if start > end or start >= size:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.end_headers()
                return
            status = HTTPStatus.PARTIAL_CONTENT
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        if download_name:
            self.send_header("Content-Disposition", f'attachment; filename="{download_name}"')
        self.end_headers()
        with path.open("rb") as fh:
            fh.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = fh.read(min(1 << 20, left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)

    def _refused(self, *, posting: bool = False) -> bool:
        """Answer 403 to a request with a foreign ``Host`` while bound to loopback (DNS rebinding),
        or, for a POST, an ``Origin`` that is not this server (another site's page sending a clip)."""
        from ..viewer.app import is_loopback

        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        if is_loopback(self.app.host) and not is_loopback(host or "localhost"):
            self._error(HTTPStatus.FORBIDDEN, f"this server answers to 127.0.0.1/localhost only, not {host!r}")
            return True
        origin = self.headers.get("Origin")
        if posting and origin and origin.split("://", 1)[-1] != self.headers.get("Host"):
            self._error(HTTPStatus.FORBIDDEN, "uploads are accepted from this server's own page only")
            return True
        return False

    # -- routes -----------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        if self._refused():
            return
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            return self._file(STATIC / "index.html", STATIC_FILES["index.html"])
        if path.startswith("/static/"):
            name = path[len("/static/"):]
            if name in STATIC_FILES:
                return self._file(STATIC / name, STATIC_FILES[name])
            return self._error(HTTPStatus.NOT_FOUND, "no such file")
        if path == "/api/limits":
            lim = self.app.jobs.limits
            return self._json(HTTPStatus.OK, {"max_upload_bytes": lim.max_upload_bytes, "max_frames": lim.max_frames})
        match = _ROUTE.match(path)
        if not match or not JOB_ID.match(match.group(1)):
            return self._error(HTTPStatus.NOT_FOUND, "no such page")
        job_id, name = match.groups()
        if name is None:
            status = self.app.jobs.status(job_id)
            if status is None:
                return self._error(HTTPStatus.NOT_FOUND, "no such job (finished jobs are removed after a while)")
            return self._json(HTTPStatus.OK, status)
        file = self.app.jobs.download_path(job_id, name)
        if file is None:
            return self._error(HTTPStatus.NOT_FOUND, f"{name}: not available for this job")
        attach = None if name in ("depth_vis.mp4", "points.bin") else name
        return self._file(file, CONTENT_TYPES.get(file.suffix, "application/octet-stream"), download_name=attach)

    def do_POST(self) -> None:  # noqa: N802
        if self._refused(posting=True):
            self.close_connection = True
            return
        path = self.path.split("?", 1)[0]
        if path == "/api/example":
            self._drain()
            try:
                self.app.jobs.check_room()
            except QueueFull as exc:
                return self._error(HTTPStatus.SERVICE_UNAVAILABLE, str(exc))
            job_id, folder = self.app.jobs.new_folder()
            shutil.copyfile(self.app.example_clip(), folder / INPUT_NAME)
            return self._submit(job_id, folder)
        if path != "/api/jobs":
            return self._error(HTTPStatus.NOT_FOUND, "no such page")
        limit = self.app.jobs.limits.max_upload_bytes
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.isdigit():
            return self._error(HTTPStatus.LENGTH_REQUIRED, "send the clip as the request body with a Content-Length")
        length = int(length_text)
        if length == 0:
            return self._error(HTTPStatus.BAD_REQUEST, "the upload is empty")
        if length > limit:
            self.close_connection = True  # the body is not read
            return self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                               f"the clip is {length / 1e6:.1f} MB; this server takes at most {limit / 1e6:.1f} MB "
                               "(--max-upload-mb)")
        try:
            self.app.jobs.check_room()
        except QueueFull as exc:
            self.close_connection = True  # the body is not read
            return self._error(HTTPStatus.SERVICE_UNAVAILABLE, str(exc))
        job_id, folder = self.app.jobs.new_folder()
        try:
            with (folder / INPUT_NAME).open("wb") as fh:
                left = length
                while left > 0:
                    chunk = self.rfile.read(min(1 << 20, left))
                    if not chunk:
                        raise ConnectionError("the upload stopped early")
                    fh.write(chunk)
                    left -= len(chunk)
        except (OSError, ConnectionError) as exc:
            shutil.rmtree(folder, ignore_errors=True)
            self.close_connection = True
            return self._error(HTTPStatus.BAD_REQUEST, f"the upload failed ({exc})")
        return self._submit(job_id, folder)

    def _drain(self) -> None:
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and 0 < int(length) <= 1 << 16:
            self.rfile.read(int(length))

    def _submit(self, job_id: str, folder: Path) -> None:
        try:
            job = self.app.jobs.submit(job_id, folder)
        except QueueFull as exc:
            return self._error(HTTPStatus.SERVICE_UNAVAILABLE, str(exc))
        except InputError as exc:
            return self._error(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc))
        return self._json(HTTPStatus.ACCEPTED, self.app.jobs.status(job.id) or {"id": job.id})


def start_server(host: str = "127.0.0.1", port: int = 8000, **kwargs) -> WebApp:
    """Start ``steadydepth serve`` in background threads (see :class:`WebApp`)."""
    return WebApp(host, port, **kwargs)
