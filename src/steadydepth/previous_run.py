"""What a new run does with what an earlier run left in its output folder.

Called by :meth:`steadydepth.outputs.OutputFolder.prepare` before it looks for a run to
refuse or replace:

* ``run.json`` says ``running`` and its process is alive: the folder is in use; refused,
  also with ``--overwrite`` (nothing is touched). A process on another machine (a shared
  disk) cannot be checked: refused unless ``--overwrite``.
* ``running`` but the process is gone (killed, crashed, the machine rebooted): that run was
  interrupted; ``run.json`` is marked so, and without ``--overwrite`` the refusal says so.
* hidden temporary files of a write that never finished (``.depth.1a2b3c4d.tmp.npz``,
  see :func:`steadydepth.io.atomic.is_temp_name`) and the scratch folder ``.work/`` are
  removed: nothing reads them.
* a run that failed or was interrupted before finishing any frame holds nothing worth
  keeping: it is removed, so the corrected command runs without ``--overwrite`` (unless this
  run resumes it, :mod:`steadydepth.resume`: its saved cameras are worth keeping).
* an interrupted run that this run resumes keeps its files.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from .errors import OutputError
from .interrupts import process_alive
from .io.atomic import atomic_write_json, remove_temp_files

__all__ = ["settle_previous_run"]

log = logging.getLogger(__name__)

#: folders a run writes files into (temporary files of an unfinished write can be left in each)
_FILE_FOLDERS = ("depth", "confidence", "depth_png16", "depth_exr", "points", "colmap")
#: what a run writes before its first frame: removed with a run that finished no frame
_EARLY_ENTRIES = ("run.json", ".work", ".resume", *_FILE_FOLDERS)


def _read_status(root: Path) -> dict | None:
    try:
        info = json.loads((root / "run.json").read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _finished_frames(root: Path) -> int:
    folder = root / "depth"
    return sum(1 for p in folder.glob("*.npy") if not p.name.startswith(".")) if folder.is_dir() else 0


def settle_previous_run(root: Path, overwrite: bool = False, *, resume: bool = False) -> None:
    """Deal with an earlier run's leftovers in ``root`` as the module docstring says.

    Raises :class:`OutputError` when a live process is using the folder, and (without
    ``overwrite``) when an interrupted run there has finished frames. With ``resume`` (this
    run continues the interrupted one, :mod:`steadydepth.resume`) its files are kept.
    """
    info = _read_status(root)
    status = info.get("status") if info else None
    if status == "running":
        alive = process_alive(info.get("process"))
        process = info.get("process") or {}
        if alive:
            raise OutputError(
                f"{root}: another run (process {process.get('pid')}) is using this folder; "
                "wait for it to finish or choose another folder"
            )
        if alive is None and process.get("host") and not overwrite:  # another machine (a shared disk)
            raise OutputError(
                f"{root}: a run on {process['host']} (process {process.get('pid')}) may still be using this "
                "folder; pass --overwrite if it is not running any more, or choose another folder"
            )
        who = f"its process {process['pid']} no longer exists" if alive is False else "it never finished"
        info.update(status="interrupted", error=f"interrupted: {who}")
        try:
            atomic_write_json(root / "run.json", info)
        except OutputError:  # the new run reports an unwritable folder itself
            pass
        status = "interrupted"
        done = _finished_frames(root)
        if done and not (overwrite or resume):
            raise OutputError(
                f"{root}: folder holds an interrupted run ({who}; {done} finished frame{'' if done == 1 else 's'}); "
                "pass --overwrite to replace it, or choose another folder"
            )
        if not resume:
            log.info("%s: the earlier run in this folder was interrupted (%s)", root, who)
    shutil.rmtree(root / ".work", ignore_errors=True)
    removed = remove_temp_files(root) + sum(remove_temp_files(root / name) for name in _FILE_FOLDERS)
    if removed:
        log.info("%s: removed %d temporary files of an unfinished write", root, removed)
    if (status in ("failed", "interrupted") and not resume and _finished_frames(root) == 0
            and not (root / ".previous").exists()):
        # (with a ".previous" run set aside, OutputFolder.prepare puts that run back instead)
        log.info("%s: replacing a %s run that finished no frame", root, status)
        for name in _EARLY_ENTRIES:
            path = root / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()
