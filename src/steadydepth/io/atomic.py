"""Atomic file writes: write to a hidden sibling, then ``os.replace`` onto the target.

A reader never sees a half-written output: either the old file (or none) or the complete
new one. The temporary file lives in the *same folder* as the target (so the final
rename never crosses file systems), its name starts with ``'.'`` and it keeps the
target's suffix (``.png``, ``.exr``, ``.mp4`` ...) so libraries that pick a format from
the file name still work.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError
from .disk_space import write_failure

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_json", "sibling_temp_path", "to_jsonable",
           "is_temp_name", "remove_temp_files"]

log = logging.getLogger(__name__)

_TEMP_NAME = re.compile(r"^\..*\.[0-9a-f]{8}\.tmp(\.[A-Za-z0-9]+)?$")


def sibling_temp_path(path: str | Path) -> Path:
    """A fresh hidden temporary path next to ``path`` with the same suffix.

    ``out/depth.png`` -> ``out/.depth.3f2a9c1b.tmp.png``.
    """
    path = Path(path)
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one of :func:`sibling_temp_path`'s names (``.depth.3f2a9c1b.tmp.npz``)."""
    return bool(_TEMP_NAME.match(name))


def remove_temp_files(folder: str | Path) -> int:
    """Remove the temporary files that writes killed before their rename left in ``folder`` (not
    recursive); return how many. Only names of :func:`sibling_temp_path`'s form are touched."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for entry in folder.iterdir():
        if is_temp_name(entry.name) and entry.is_file():
            _remove_quietly(entry)
            removed += 1
    return removed


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:  # pragma: no cover - depends on the file system
        log.warning("could not remove temporary file %s: %s", path, exc)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically.

    On an exception inside the block the temporary file is removed and the exception
    propagates; ``path`` is left untouched. The parent folder must exist (it is not
    created). An ``OSError`` while writing or renaming (permission, missing folder,
    full disk: "no space left on device") becomes :class:`~steadydepth.errors.OutputError`
    naming ``path``.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"{path}: cannot write, folder {path.parent} does not exist")
    tmp = sibling_temp_path(path)
    try:
        yield tmp
        if not tmp.exists():
            raise OutputError(f"{path}: nothing was written (the temporary file {tmp.name} is missing)")
        os.replace(tmp, path)
    except OSError as exc:
        _remove_quietly(tmp)
        raise OutputError(f"{path}: cannot write ({write_failure(path, exc)})") from exc
    except BaseException:
        _remove_quietly(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)


def to_jsonable(obj: Any) -> Any:
    """Convert to plain JSON values (recursively): objects with a ``to_dict`` method and
    dataclasses become dicts, mappings dicts with string keys, numpy scalars/arrays numbers/lists,
    tuples and sets lists, paths strings, bytes text; non-finite floats become ``None`` (JSON has
    no NaN). Anything else is returned unchanged (``json.dumps`` then says what it cannot write).
    """
    if hasattr(obj, "to_dict") and callable(obj.to_dict) and not isinstance(obj, type):
        return to_jsonable(obj.to_dict())
    if is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", errors="replace")
    return obj


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented (2 spaces) UTF-8 JSON, numpy values converted, atomically.

    Raises :class:`OutputError` when ``obj`` holds a value JSON cannot represent.
    """
    try:
        text = json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise OutputError(f"{path}: cannot encode as JSON ({exc})") from exc
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))
