"""``steadydepth batch INPUTS... -o OUTDIR``: many clips, one output folder each, failures isolated.

Inputs are video files, image folders, folders of videos (each video one clip; a folder with
no video but images is one image-sequence clip) and list files (``.txt``: one path a line,
relative to the list file's folder; blank lines and ``#`` comments skipped). Each clip is
written to ``OUTDIR/NAME/`` (:func:`clip_names`: the file name, made safe and unique), by
the same :func:`steadydepth.estimate` as ``run``, so each clip resumes on its own
(:mod:`steadydepth.resume`): running the same batch again skips the clips that completed
with the same options and continues the interrupted ones.

A clip that fails (unreadable file, no depth, ...) is recorded with its one-line error and
the others go on. ``OUTDIR/batch.json`` (written atomically after every clip) holds one
record per clip: input, output, status (``pending``, ``complete``, ``failed``), frames, the
input's fps, processing frames per second, time, warnings, error and exit code; the end of
the batch logs the same as a table.

Clips run one after the other in this process, or as Ray tasks (``ray`` extra): a local Ray
(``ray.init(num_cpus=...)``), or an existing cluster (``address``; every machine then needs
the inputs and ``OUTDIR`` at the same paths, e.g. shared storage). Ray does the scheduling.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path

from .errors import InputError, SteadyDepthError, require
from .outputs import make_output_folder
from .io.atomic import atomic_write_json
from .io.images import IMAGE_EXTENSIONS
from .options import RunOptions

__all__ = ["VIDEO_SUFFIXES", "collect_clips", "clip_names", "run_clip", "run_batch", "summary_table"]

log = logging.getLogger(__name__)

#: file suffixes taken as videos when a folder is scanned (a file named on its own may be any video)
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".mts",
                            ".m2ts", ".wmv", ".flv", ".3gp", ".ogv"})
#: options that do not change results (a completed clip run with other values of these is reused)
_NEUTRAL = ("overwrite", "progress_bar", "device")
#: columns of the summary table
COLUMNS = ["clip", "frames", "fps", "frames/s", "time s", "status", "warnings", "error"]


def _list_file(path: Path) -> list[Path]:
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the list file ({exc})") from exc
    entries = [line.strip() for line in lines]
    return [p if p.is_absolute() else path.parent / p
            for p in (Path(e).expanduser() for e in entries if e and not e.startswith("#"))]


def _expand(path: Path) -> list[str]:
    """A folder of videos gives its videos (sorted); any other path is one clip."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        videos = [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]
        if videos:
            return [str(p) for p in videos]
    return [str(path)]  # an image folder, a video, or a path whose run will say what is wrong with it


def collect_clips(inputs: Sequence[str | Path]) -> list[str]:
    """The clips of ``inputs`` in order (see the module docstring), each once.

    Raises :class:`InputError` when a list file cannot be read or nothing is given."""
    clips: list[str] = []
    for item in inputs:
        path = Path(item).expanduser()
        entries = _list_file(path) if path.suffix.lower() == ".txt" else [path]
        for entry in entries:
            clips.extend(_expand(entry))
    seen: set[str] = set()
    unique = []
    for clip in clips:
        key = str(Path(clip).resolve())
        if key not in seen:
            seen.add(key)
            unique.append(clip)
    if not unique:
        raise InputError("batch: no input clip (give video files, folders or a .txt list of paths)")
    return unique


def clip_names(clips: Sequence[str]) -> list[str]:
    """One output folder name per clip: the file name without its video suffix (a folder's own
    name), characters other than letters, digits, ``. _ -`` replaced by ``_``, no leading dot;
    a name already taken (case-insensitively) gets ``-2``, ``-3``... in input order."""
    names, taken = [], set()
    for clip in clips:
        path = Path(clip)
        stem = path.stem if path.suffix.lower() in VIDEO_SUFFIXES | IMAGE_EXTENSIONS else path.name
        base = re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip(".") or "clip"
        base = base[:100]
        name, k = base, 1
        while name.lower() in taken or name.lower() == "batch.json":
            k += 1
            name = f"{base}-{k}"
        taken.add(name.lower())
        names.append(name)
    return names


def _results_options(options: dict) -> dict:
    return {k: v for k, v in options.items() if k not in _NEUTRAL}


def _completed_earlier(out: Path, options: dict) -> dict | None:
    """``run.json`` of a complete run in ``out`` made with the same result-changing options, else None."""
    try:
        info = json.loads((out / "run.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or info.get("status") != "complete":
        return None
    same = json.loads(json.dumps(_results_options(info.get("options", {})), default=str)) == \
        json.loads(json.dumps(_results_options(options), default=str))
    return info if same else None


def run_clip(clip: str, output: str, options: dict) -> dict:
    """Run one clip into ``output`` and return its record (never raises a steadydepth error:
    failures are recorded). ``options``: :meth:`RunOptions.to_dict` without intrinsics. Picklable, so
    it can run as a Ray task."""
    from .pipeline import estimate

    record = {"input": clip, "output": output, "status": "failed", "frames": None, "fps": None,
              "frames_per_second": None, "time_s": None, "warnings": [], "error": None, "exit_code": 0}
    started = time.perf_counter()
    try:
        opts = RunOptions(**{**options, "intrinsics": None, "formats": tuple(options.get("formats", ("npy",)))})
        info = None if opts.overwrite else _completed_earlier(Path(output), opts.resolved().to_dict())
        if info is not None:
            record["skipped"] = "complete in an earlier run"
        else:
            estimate(clip, output, opts)
            info = json.loads((Path(output) / "run.json").read_text())
        record.update(status="complete", frames=info.get("frames"), fps=(info.get("input") or {}).get("fps"),
                      frames_per_second=info.get("frames_per_second"), warnings=list(info.get("warnings", [])))
        if info.get("resumed"):
            record["resumed_from_frame"] = info["resumed"].get("finished_frames")
    except SteadyDepthError as exc:
        record.update(error=str(exc), exit_code=exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - one clip's bug must not stop the others
        log.debug("%s: internal error", clip, exc_info=True)
        record.update(error=f"internal error: {type(exc).__name__}: {exc}", exit_code=1)
    record["time_s"] = round(time.perf_counter() - started, 3)
    return record


def summary_table(records: list[dict]) -> str:
    """The batch summary as a text table (one line per clip)."""
    from .eval.report import format_table

    def fps(value):
        return None if value is None else f"{float(value):.2f}"

    rows = [{"clip": Path(r["output"]).name, "frames": r.get("frames"), "fps": fps(r.get("fps")),
             "frames/s": fps(r.get("frames_per_second")), "time s": None if r.get("time_s") is None else f"{r['time_s']:.1f}",
             "status": r["status"] + (" (earlier)" if r.get("skipped") else "")
             + (" (resumed)" if r.get("resumed_from_frame") else ""),
             "warnings": len(r.get("warnings") or []), "error": r.get("error") or ""} for r in records]
    return format_table(rows, COLUMNS)


class _BatchFile:
    """``OUTDIR/batch.json``, rewritten atomically whenever a clip finishes."""

    def __init__(self, outdir: Path, options: dict, records: list[dict]) -> None:
        self.path, self.options, self.records = outdir / "batch.json", options, records

    def write(self, status: str) -> None:
        counts = {s: sum(r["status"] == s for r in self.records) for s in ("complete", "failed", "pending")}
        atomic_write_json(self.path, {"status": status, "counts": counts, "options": self.options,
                                      "clips": self.records})


def _prepare_outdir(outdir: Path) -> None:
    make_output_folder(outdir)


def run_batch(inputs: Sequence[str | Path], outdir: str | Path, options: RunOptions, *, use_ray: bool = False,
              address: str | None = None, num_cpus: int | None = None, cpus_per_clip: float = 1.0) -> list[dict]:
    """Run every clip of ``inputs`` into ``outdir/NAME/`` (module docstring); returns the records.

    ``use_ray`` (or an ``address``) runs the clips as Ray tasks of ``cpus_per_clip`` CPUs each,
    on a local Ray with ``num_cpus`` CPUs (all when None) or on the cluster at ``address``.
    Options are checked before any clip runs."""
    if options.intrinsics is not None:
        raise InputError("batch: --intrinsics is in pixels of one input; give --fov for a batch of clips")
    checked = options.resolved()  # bad options stop the batch before any clip
    outdir = Path(outdir).expanduser()
    clips = collect_clips(inputs)
    names = clip_names(clips)
    ray = require("ray", "ray", "steadydepth batch --ray") if use_ray or address else None
    _prepare_outdir(outdir)
    opts = {**checked.to_dict(), "progress_bar": options.progress_bar and not (use_ray or address)}
    opts.pop("intrinsics")
    records = [{"input": c, "output": str(outdir / n), "status": "pending"} for c, n in zip(clips, names)]
    batch = _BatchFile(outdir, _results_options(opts), records)
    batch.write("running")
    log.info("batch: %d clip(s) into %s%s", len(clips), outdir, " on Ray" if use_ray or address else "")
    try:
        if ray is not None:
            _run_on_ray(ray, records, opts, batch, address=address, num_cpus=num_cpus, cpus_per_clip=cpus_per_clip)
        else:
            for i, record in enumerate(records):
                log.info("batch: clip %d/%d: %s -> %s", i + 1, len(records), record["input"], record["output"])
                records[i] = run_clip(record["input"], record["output"], opts)
                _report(records[i])
                batch.write("running")
    except BaseException as exc:
        batch.write("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
        raise
    batch.write("complete")
    failed = sum(r["status"] == "failed" for r in records)
    log.info("batch summary (%d complete, %d failed; %s):\n%s", len(records) - failed, failed, batch.path,
             summary_table(records))
    return records


def _report(record: dict) -> None:
    if record["status"] == "failed":
        log.error("batch: %s failed: %s", record["input"], record["error"])
    else:
        log.info("batch: %s: %s frames, %s", record["input"], record["frames"],
                 "complete in an earlier run" if record.get("skipped") else f"{record['time_s']:.1f} s")


def _run_on_ray(ray, records: list[dict], opts: dict, batch: _BatchFile, *, address: str | None,
                num_cpus: int | None, cpus_per_clip: float) -> None:
    """Each clip a Ray task; results recorded as they arrive. Ray's own logs stay off the terminal."""
    started_here = not ray.is_initialized()
    if started_here:
        kwargs = {"log_to_driver": False, "logging_level": logging.ERROR}
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, **kwargs)
    try:
        task = ray.remote(num_cpus=cpus_per_clip, max_retries=0)(run_clip)
        pending = {task.remote(r["input"], r["output"], opts): i for i, r in enumerate(records)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                i = pending.pop(ref)
                try:
                    records[i] = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - the worker died (killed, out of memory)
                    records[i] = {**records[i], "status": "failed", "exit_code": 1, "warnings": [],
                                  "error": f"the Ray task failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"}
                _report(records[i])
                batch.write("running")
    finally:
        if started_here:
            ray.shutdown()
