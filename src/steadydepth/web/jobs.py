"""The jobs of ``steadydepth serve``: one folder per upload, a bounded pool, a queue, clean-up.

Safety rules (the server relies on them):

* every job lives in ``ROOT/<id>/`` where ``id`` is 16 random hex digits made here
  (:func:`secrets.token_hex`); the uploaded clip is stored as ``input.video`` and the run
  writes to ``out/``. No name or path sent by a client is ever used on the disk.
* the clip is checked before it is queued: it must decode (PyAV) and hold at most
  ``max_frames`` frames; otherwise the job folder is removed at once and the error says why.
* at most ``max_running`` jobs run at a time (a thread pool); at most ``max_queued`` wait;
  more are refused (:class:`QueueFull`).
* finished jobs (and their folders) are removed ``keep_s`` seconds after they ended.

Progress of a running job comes from its output folder (``depth/*.npy`` are written as
frames finish) and from the ``steadydepth`` progress log lines of the job's thread (the
stage: cameras, depth, align).
"""

from __future__ import annotations

import logging
import queue
import re
import secrets
import shutil
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, SteadyDepthError

__all__ = ["Job", "JobManager", "JobLimits", "QueueFull", "JOB_ID", "DOWNLOADS"]

log = logging.getLogger(__name__)

#: the form of a job id (the only part of a request that names a folder)
JOB_ID = re.compile(r"^[0-9a-f]{16}$")
#: files a client may download from a finished job: public name -> path inside the job's ``out/``
DOWNLOADS = {
    "depth.npz": "depth.npz",
    "depth_png16.zip": "depth_png16.zip",
    "cameras.json": "cameras.json",
    "depth_vis.mp4": "depth_vis.mp4",
    "scene.glb": "scene.glb",
    "scene.ply": "scene.ply",
    "points.bin": "points.bin",
}
INPUT_NAME = "input.video"


class QueueFull(SteadyDepthError):
    """Too many jobs are waiting; the client should try again later."""

    exit_code = 2


@dataclass(frozen=True)
class JobLimits:
    """Caps of the server: upload bytes, clip frames, jobs running / waiting, seconds a finished job is kept."""

    max_upload_bytes: int = 200 * 1024 * 1024
    max_frames: int = 600
    max_running: int = 1
    max_queued: int = 4
    keep_s: float = 3600.0

    def __post_init__(self) -> None:
        for name, flag in (("max_upload_bytes", "--max-upload-mb"), ("max_frames", "--max-frames"),
                           ("max_running", "--max-jobs"), ("max_queued", "--max-queued")):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{flag} must be > 0 (JobLimits.{name} >= 1), got {getattr(self, name)}")
        if not self.keep_s > 0:
            raise InputError(f"--keep must be > 0 seconds, got {self.keep_s}")


@dataclass
class Job:
    """One upload and its run. ``state``: queued, running, done, failed."""

    id: str
    folder: Path
    total: int | None
    fps_in: float | None
    created: float = field(default_factory=time.time)
    state: str = "queued"
    stage: str = "waiting"
    error: str | None = None
    started: float | None = None
    ended: float | None = None

    @property
    def out(self) -> Path:
        return self.folder / "out"

    def frames_done(self) -> int:
        depth = self.out / "depth"
        if not depth.is_dir():
            return 0
        return sum(1 for p in depth.iterdir() if p.suffix == ".npy" and not p.name.startswith("."))

    def status(self, queue_position: int | None = None) -> dict:
        """The JSON a client polls: state, stage, frames done / total, frames per second and
        seconds left (from the depth frames written so far), and the downloads when done."""
        done = self.frames_done() if self.state in ("running", "done", "failed") else 0
        fps = eta = None
        if done >= 2:
            try:
                first = (self.out / "depth" / "000000.npy").stat().st_mtime
            except OSError:
                first = None
            end = self.ended if self.ended is not None else time.time()
            if first is not None and end > first:
                fps = (done - 1) / (end - first)
                if self.state == "running" and self.total and done < self.total:
                    eta = (self.total - done) / fps
        info = {"id": self.id, "state": self.state, "stage": self.stage, "frames_done": done, "frames_total": self.total,
                "fps": fps, "eta_s": eta, "error": self.error, "queue_position": queue_position}
        if self.state == "done":
            info["downloads"] = [name for name, rel in DOWNLOADS.items() if (self.out / rel).is_file()]
        return info


#: what the page shows for each progress stage of the pipeline (the text before ':' of its log lines)
STAGES = {"cameras": "finding the cameras (structure from motion)", "depth": "depth for every frame",
          "align": "making the clip consistent"}


class _StageLog(logging.Handler):
    """Routes ``steadydepth`` progress log lines to the job whose thread wrote them."""

    def __init__(self, manager: JobManager) -> None:
        super().__init__(level=logging.INFO)
        self.manager = manager

    def emit(self, record: logging.LogRecord) -> None:
        job = self.manager._by_thread.get(record.thread)
        if job is not None and record.name == "steadydepth.progress":
            text = record.getMessage()
            stage = text.split(":", 1)[0].split("/", 1)[0]
            if not text.split(":", 1)[-1].strip().startswith("done"):
                job.stage = STAGES.get(stage, stage)
            elif stage == "cameras":
                job.stage = STAGES["depth"]


class JobManager:
    """Creates, runs, reports and removes jobs under ``root`` (see module docstring).

    ``run_options`` are keyword arguments for :func:`steadydepth.estimate` (``preset`` ...);
    the output formats are always npy + 16-bit PNG (for the PNG zip) with the depth video.
    """

    def __init__(self, root: str | Path, limits: JobLimits | None = None, **run_options) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.limits = limits or JobLimits()
        self.run_options = run_options
        self.jobs: dict[str, Job] = {}
        self._order: list[str] = []  # queued job ids, oldest first
        self._lock = threading.Lock()
        self._by_thread: dict[int, Job] = {}
        # daemon workers (not a ThreadPoolExecutor, whose threads the interpreter waits for at exit):
        # stopping the server does not wait for a running clip
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._workers = [threading.Thread(target=self._work, name=f"steadydepth-job-{k}", daemon=True)
                         for k in range(self.limits.max_running)]
        for worker in self._workers:
            worker.start()
        self._stage_log = _StageLog(self)
        logging.getLogger("steadydepth.progress").addHandler(self._stage_log)
        self._stop = threading.Event()
        self._cleaner = threading.Thread(target=self._clean_loop, name="steadydepth-job-cleaner", daemon=True)
        self._cleaner.start()

    # -- creating jobs ----------------------------------------------------------------
    def new_folder(self) -> tuple[str, Path]:
        """A fresh job id and its (empty) folder."""
        while True:
            job_id = secrets.token_hex(8)
            folder = self.root / job_id
            try:
                folder.mkdir()
                return job_id, folder
            except FileExistsError:  # pragma: no cover - 64 random bits
                continue

    def check_room(self) -> None:
        """Raise :class:`QueueFull` when ``max_queued`` jobs are already waiting (checked before an upload is read)."""
        with self._lock:
            waiting = sum(1 for j in self.jobs.values() if j.state == "queued")
        if waiting >= self.limits.max_queued:
            raise QueueFull(f"{waiting} clips are already waiting (at most {self.limits.max_queued}); "
                            "try again when one has finished")

    def submit(self, job_id: str, folder: Path) -> Job:
        """Check the clip in ``folder/input.video`` and queue its run; the folder is removed when refused."""
        from ..io.frames import open_source

        try:
            self.check_room()
            try:
                source = open_source(folder / INPUT_NAME)
                count = source.num_frames
            except InputError as exc:
                raise InputError(str(exc).replace(str(folder / INPUT_NAME), "the upload")) from exc
            if count is None:
                count = sum(1 for _ in source)
            if count > self.limits.max_frames:
                seconds = f" ({count / source.fps:.1f} s at {source.fps:g} fps)" if source.fps else ""
                raise InputError(f"the clip has {count} frames{seconds}; this server takes at most "
                                 f"{self.limits.max_frames} frames (--max-frames)")
            if count < 2:
                raise InputError(f"the clip has {count} frame(s); depth from a video needs at least 2")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        job = Job(job_id, folder, count, source.fps)
        with self._lock:
            self.jobs[job_id] = job
            self._order.append(job_id)
        self._queue.put(job)
        log.info("job %s: %d frames queued", job_id, count)
        return job

    # -- running ----------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            self._run(job)

    def _run(self, job: Job) -> None:
        from ..pipeline import estimate

        with self._lock:
            if job.id not in self.jobs:  # removed while waiting
                return
            if job.id in self._order:
                self._order.remove(job.id)
            job.state, job.stage, job.started = "running", STAGES["cameras"], time.time()
        ident = threading.get_ident()
        self._by_thread[ident] = job
        try:
            options = {"preset": "balanced", **self.run_options, "formats": ("npy", "png16"), "vis": True,
                       "npz": True, "progress_bar": False, "overwrite": False}
            estimate(job.folder / INPUT_NAME, job.out, **options)
            job.stage = "preparing downloads"
            _zip_png16(job.out)
            _write_view_points(job.out)
            job.state, job.stage = "done", "done"
        except SteadyDepthError as exc:
            job.state, job.error, job.stage = "failed", str(exc), "failed"
            log.warning("job %s failed: %s", job.id, exc)
        except Exception as exc:  # noqa: BLE001 - reported to the client, logged with the traceback
            job.state, job.error, job.stage = "failed", f"internal error: {type(exc).__name__}: {exc}", "failed"
            log.exception("job %s: internal error", job.id)
        finally:
            job.ended = time.time()
            self._by_thread.pop(ident, None)

    def status(self, job_id: str) -> dict | None:
        with self._lock:
            job = self.jobs.get(job_id)
            position = self._order.index(job_id) + 1 if job_id in self._order else None
        return None if job is None else job.status(position)

    def download_path(self, job_id: str, name: str) -> Path | None:
        """The file ``name`` (one of :data:`DOWNLOADS`) of a finished job, None when there is none."""
        job = self.jobs.get(job_id) if JOB_ID.match(job_id) else None
        rel = DOWNLOADS.get(name)
        if job is None or rel is None or job.state != "done":
            return None
        path = job.out / rel
        return path if path.is_file() else None

    # -- clean-up ---------------------------------------------------------------------
    def clean(self, now: float | None = None) -> int:
        """Remove jobs that ended more than ``keep_s`` ago (and their folders), and job-like folders
        left in ``root`` by an earlier server that are that old; returns how many went."""
        now = time.time() if now is None else now
        keep = self.limits.keep_s
        removed = 0
        with self._lock:
            old = [j for j in self.jobs.values() if j.ended is not None and now - j.ended > keep]
            for job in old:
                del self.jobs[job.id]
        for job in old:
            shutil.rmtree(job.folder, ignore_errors=True)
            removed += 1
        for entry in self.root.iterdir():
            if JOB_ID.match(entry.name) and entry.name not in self.jobs and entry.is_dir():
                try:
                    if now - entry.stat().st_mtime > keep:
                        shutil.rmtree(entry, ignore_errors=True)
                        removed += 1
                except OSError:
                    pass
        if removed:
            log.info("removed %d old job(s)", removed)
        return removed

    def _clean_loop(self) -> None:
        interval = min(60.0, max(1.0, self.limits.keep_s / 4))
        while not self._stop.wait(interval):
            try:
                self.clean()
            except OSError as exc:  # pragma: no cover - the disk went away
                log.warning("job clean-up failed: %s", exc)

    def close(self) -> None:
        self._stop.set()
        for _ in self._workers:
            self._queue.put(None)
        logging.getLogger("steadydepth.progress").removeHandler(self._stage_log)


def _zip_png16(out: Path) -> None:
    """``depth_png16.zip``: the run's 16-bit PNG depth maps (stored, PNG is already compressed)."""
    from ..io.atomic import atomic_path

    folder = out / "depth_png16"
    if not folder.is_dir():
        return
    with atomic_path(out / "depth_png16.zip") as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for png in sorted(folder.glob("*.png")):
                zf.write(png, f"depth_png16/{png.name}")


def _write_view_points(out: Path, max_points: int = 150_000) -> None:
    """``points.bin`` for the page's 3D view (see :func:`steadydepth.web.points.view_points`)."""
    from ..io.atomic import atomic_write_bytes
    from .points import view_points

    atomic_write_bytes(out / "points.bin", view_points(out, max_points=max_points))
