"""Resuming an interrupted run: what an output folder keeps so the same command can continue it.

A run keeps its resume state in ``OUTDIR/.resume/`` from its start until it completes:

* ``state.json``: what the run is (:func:`run_identity`: the input's path, size and
  modification time, or a hash of its first frames for in-memory input, and every option
  that changes results), the depth scale and units once fixed, and the end-of-run outputs
  already written (``depth.npz``, ``cameras``, ``points``, ``vis``);
* ``cameras.json`` + ``cameras.npz``: the structure-from-motion result at the processing
  resolution, saved as soon as it exists.

The per-frame files (``depth/NNNNNN.npy`` and the rest, written atomically in order) say
which frames are finished. When a folder holds an *interrupted* run (``run.json`` says
``interrupted``, or ``running`` and its process is gone: SIGKILL, a crash, a reboot) with
a resume state, running the same command again continues it (:func:`plan_resume`):
cameras are read back instead of solved, finished frames are neither recomputed nor
rewritten (a prior that can start mid-clip, see
:meth:`steadydepth.priors.base.DepthPrior.frames_before`, restarts a few frames before the
first unfinished one so that it and the temporal fusion see the neighbours they need;
other priors start at the clip's start and the outputs of finished frames are dropped),
and finished end-of-run outputs are not written again. A state that does not match this
run (another input, another option) refuses to resume and names what differs;
``--overwrite`` starts fresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import OutputError
from .interrupts import process_alive
from .io.atomic import atomic_path, atomic_write_json
from .io.depth_files import DEPTH_FORMATS
from .io.frames import FrameSource
from .options import RunOptions, option_text
from .types import Cameras, Intrinsics

__all__ = ["STATE_DIR", "ResumePlan", "RunState", "run_identity", "input_fingerprint", "plan_resume",
           "finished_frames"]

log = logging.getLogger(__name__)

#: the folder of the resume state inside OUTDIR
STATE_DIR = ".resume"
#: options that do not change any result (how the run is shown or where it runs)
_NEUTRAL_OPTIONS = ("overwrite", "progress_bar", "device")
#: frames hashed to recognise in-memory input
_HASHED_FRAMES = 3


def input_fingerprint(source: FrameSource) -> dict:
    """What identifies the input: path, kind, frame size and count, and per file its size and
    modification time (a video: the file; images: every file, summed / latest); in-memory
    frames: a SHA-256 of the first few frames."""
    fp = {"kind": source.kind, "path": source.path, "width": source.width, "height": source.height,
          "num_frames": source.num_frames}
    files = getattr(source, "files", None)
    if source.kind == "video" and os.path.isfile(source.path):
        files = [Path(source.path)]
    if files:
        stats = [Path(f).stat() for f in files]
        fp["path"] = os.path.abspath(source.path) if source.kind == "video" else source.path
        fp["files"] = len(stats)
        fp["bytes"] = int(sum(s.st_size for s in stats))
        fp["mtime_ns"] = int(max(s.st_mtime_ns for s in stats))
    else:
        digest = hashlib.sha256()
        for k, frame in enumerate(source):
            if k >= _HASHED_FRAMES:
                break
            digest.update(np.ascontiguousarray(frame.image).tobytes())
        fp["first_frames_sha256"] = digest.hexdigest()
    return fp


def run_identity(source: FrameSource, opts: RunOptions) -> dict:
    """The input and the options that change results (JSON-able): equal identities give equal runs."""
    options = {k: v for k, v in opts.to_dict().items() if k not in _NEUTRAL_OPTIONS}
    return json.loads(json.dumps({"input": input_fingerprint(source), "options": options}, default=str))


def _difference(saved: dict, current: dict) -> str | None:
    """The first difference between two identities, said for the user; None when equal."""
    for key, now in current["options"].items():
        before = saved.get("options", {}).get(key)
        if before != now:
            return f"option {option_text(key)} differs (earlier run: {before!r}, this run: {now!r})"
    for key, now in current["input"].items():
        before = saved.get("input", {}).get(key)
        if before != now:
            what = {"mtime_ns": "modification time", "bytes": "size in bytes",
                    "first_frames_sha256": "first frames"}.get(key, key)
            return f"the input's {what} differs (earlier run: {before!r}, this run: {now!r})"
    return None


def finished_frames(root: Path, formats: tuple[str, ...]) -> int:
    """How many frames from position 0 on have every per-frame file (each format and the confidence)."""
    folders = [root / DEPTH_FORMATS[f][0] for f in formats] + [root / "confidence"]
    suffixes = [DEPTH_FORMATS[f][1] for f in formats] + [".npy"]
    names = [set(os.listdir(d)) if d.is_dir() else set() for d in folders]
    n = 0
    while all(f"{n:06d}{suffix}" in have for suffix, have in zip(suffixes, names)):
        n += 1
    return n


@dataclass
class ResumePlan:
    """What an interrupted run left that this run continues from.

    ``finished``: frames ``0 .. finished - 1`` are complete on disk; ``cameras``: the saved
    structure-from-motion result (None when the run stopped before it); ``outputs_done``: the
    end-of-run outputs already written; ``scale`` / ``units``: the depth scale and units the
    finished frames were written with (None when not recorded); ``valid`` / ``clipped``: valid
    pixels and png16-clipped pixels of the finished frames; ``empty``: the positions of the
    finished frames without any valid pixel.
    """

    finished: int
    cameras: Cameras | None = None
    outputs_done: set[str] = field(default_factory=set)
    scale: float | None = None
    units: str | None = None
    hint_applied: bool = False
    valid: int = 0
    clipped: int = 0
    empty: list[int] = field(default_factory=list)

    def describe(self) -> dict:
        return {"finished_frames": self.finished, "cameras": "saved" if self.cameras is not None else None,
                "outputs_done": sorted(self.outputs_done)}


class RunState:
    """The resume state in ``root/.resume/`` (see the module docstring); every file written atomically."""

    def __init__(self, root: str | Path) -> None:
        self.dir = Path(root) / STATE_DIR
        self._state: dict = {}

    def _write(self) -> None:
        atomic_write_json(self.dir / "state.json", self._state)

    def start(self, identity: dict) -> None:
        """A fresh state for a run that starts from nothing (an earlier state is dropped)."""
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._state = {"identity": identity, "outputs_done": []}
        self._write()

    def load(self) -> dict | None:
        try:
            state = json.loads((self.dir / "state.json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(state, dict) or "identity" not in state:
            return None
        self._state = state
        return state

    def update(self, **values) -> None:
        self._state.update(values)
        self._write()

    def mark_output(self, name: str) -> None:
        done = self._state.setdefault("outputs_done", [])
        if name not in done:
            done.append(name)
            self._write()

    def save_cameras(self, cameras: Cameras) -> None:
        """The SfM result at the processing resolution: arrays in ``cameras.npz``, the rest in ``cameras.json``."""
        poses = np.full((len(cameras.poses), 4, 4), np.nan)
        for i, p in enumerate(cameras.poses):
            if p is not None:
                poses[i] = p
        arrays = {"poses": poses}
        if cameras.points is not None:
            arrays["points"] = np.asarray(cameras.points, np.float64)
        if cameras.colors is not None:
            arrays["colors"] = np.asarray(cameras.colors, np.uint8)
        with atomic_path(self.dir / "cameras.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        i = cameras.intrinsics
        atomic_write_json(self.dir / "cameras.json", {
            "intrinsics": [i.fx, i.fy, i.cx, i.cy, i.width, i.height, i.k1],
            "frame_indices": [int(x) for x in cameras.frame_indices], "units": cameras.units,
            "source": cameras.source, "warnings": list(cameras.warnings),
            "pose_sources": list(cameras.pose_sources), "no_parallax": cameras.no_parallax,
        })

    def load_cameras(self) -> Cameras | None:
        try:
            meta = json.loads((self.dir / "cameras.json").read_text())
            with np.load(self.dir / "cameras.npz") as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, KeyError):
            return None
        fx, fy, cx, cy, w, h, k1 = meta["intrinsics"]
        poses = [None if np.isnan(p).any() else p for p in arrays["poses"]]
        return Cameras(intrinsics=Intrinsics(fx, fy, cx, cy, int(w), int(h), k1), poses=poses,
                       frame_indices=meta["frame_indices"], points=arrays.get("points"), colors=arrays.get("colors"),
                       units=meta["units"], source=meta["source"], warnings=meta["warnings"],
                       pose_sources=meta["pose_sources"], no_parallax=meta["no_parallax"])

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _interrupted(root: Path) -> bool:
    """Whether ``root/run.json`` records a run that stopped before finishing and is not running."""
    try:
        info = json.loads((root / "run.json").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(info, dict):
        return False
    if info.get("status") == "interrupted":
        return True
    return info.get("status") == "running" and process_alive(info.get("process")) is False


def plan_resume(root: str | Path, identity: dict, opts: RunOptions) -> ResumePlan | None:
    """The plan to continue the interrupted run in ``root``, or None when there is none to
    continue (no run, a complete or failed one, a live one, no resume state, ``overwrite``).

    Raises :class:`OutputError` naming the first difference when the interrupted run was
    started with another input or other options."""
    root = Path(root).expanduser()
    if opts.overwrite or not _interrupted(root) or (root / ".previous").exists():
        return None
    state = RunState(root)
    saved = state.load()
    if saved is None:
        return None
    diff = _difference(saved["identity"], identity)
    if diff is not None:
        raise OutputError(f"{root}: cannot resume the interrupted run in this folder: {diff}; run the same "
                          f"command to resume it, or pass {option_text('overwrite', True)} to start fresh")
    plan = ResumePlan(finished=finished_frames(root, opts.formats), cameras=state.load_cameras(),
                      outputs_done=set(saved.get("outputs_done", [])), scale=saved.get("scale"),
                      units=saved.get("units"), hint_applied=bool(saved.get("hint_applied", False)))
    for i in range(plan.finished):  # the counts the end of the run reports, from the finished files
        depth = np.load(root / "depth" / f"{i:06d}.npy")
        valid = np.isfinite(depth) & (depth > 0)
        plan.valid += int(np.count_nonzero(valid))
        if not valid.any():
            plan.empty.append(i)
        if "png16" in opts.formats:
            scaled = np.rint(depth[valid].astype(np.float64) * opts.png_scale)
            plan.clipped += int(np.count_nonzero((scaled < 1) | (scaled > 65535)))
    return plan


def prior_start(plan: ResumePlan | None, before: int | None, fusion_radius: int, num_frames: int | None) -> int:
    """The stream position the prior starts at: 0 for a fresh run or a prior that must start at
    the clip's start (``before`` None), else ``before + fusion_radius`` frames before the first
    unfinished frame (its own context and the temporal fusion's neighbours); the first
    unfinished frame itself when every frame is finished (only end-of-run outputs remain)."""
    if plan is None or plan.finished == 0:
        return 0
    if num_frames is not None and plan.finished >= num_frames:
        return plan.finished
    if before is None:
        return 0
    return max(0, plan.finished - before - fusion_radius)


def announce(root: Path, plan: ResumePlan, start: int, num_frames: int | None, prior_name: str,
             needs_cameras: bool) -> None:
    """The one log line of a resumed run: what it continues from and what it recomputes."""
    total = "?" if num_frames is None else str(num_frames)
    parts = [f"{plan.finished} of {total} frames finished"]
    if needs_cameras:
        parts.append("cameras from the earlier run" if plan.cameras is not None else "cameras solved again")
    if num_frames is not None and plan.finished >= num_frames:
        parts.append("depth done")
    elif plan.finished and start < plan.finished:
        how = (f"the '{prior_name}' prior starts at the clip's start" if start == 0
               else f"depth restarts at frame {start}")
        parts.append(f"{how} ({plan.finished - start} finished frames recomputed as context, not rewritten)")
    if plan.outputs_done:
        parts.append("already written: " + ", ".join(sorted(plan.outputs_done)))
    log.info("%s: resuming the interrupted run: %s", root, "; ".join(parts))
