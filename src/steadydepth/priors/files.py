"""``files:DIR``: depth that another tool produced, one file per frame.

``DIR`` holds one depth map per *source* frame (``.npy``, ``.npz``, 16-bit ``.png``
in millimetres-style units of 1/1000, ``.exr`` or ``.pfm``), sorted naturally by name;
the file at position ``k`` belongs to source frame ``k`` (so ``--stride`` and ``--start``
pick the matching files). Values are z-depth (0 = invalid). If ``DIR`` or its parent
holds a ``cameras.json`` saying ``"units": "metres"``, the depth is taken as metric.
Append ``?disparity`` to the folder to read the files as affine-invariant disparity.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import InputError
from ..io.images import natural_sort_key
from ..types import Frame, PriorOutput
from .spec import option_bool, parse_spec_options
from .base import DepthPrior, PriorContext, register_prior

__all__ = ["FilesPrior", "DEPTH_SUFFIXES"]

DEPTH_SUFFIXES = (".npy", ".npz", ".png", ".exr", ".pfm")


class FilesPrior(DepthPrior):
    name = "files"

    def __init__(self, folder: str | Path, *, disparity: bool = False) -> None:
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise InputError(f"{self.folder}: depth folder for --prior files: does not exist")
        self.files = sorted(
            (p for p in self.folder.iterdir() if p.suffix.lower() in DEPTH_SUFFIXES and not p.name.startswith(".")),
            key=lambda p: natural_sort_key(p.name),
        )
        if not self.files:
            raise InputError(f"{self.folder}: no depth files ({', '.join(DEPTH_SUFFIXES)}) found")
        self.disparity = disparity
        self.metric = False
        for meta in (self.folder / "cameras.json", self.folder.parent / "cameras.json"):
            if meta.is_file():
                try:
                    self.metric = json.loads(meta.read_text()).get("units") == "metres"
                except (OSError, ValueError) as exc:
                    raise InputError(f"{meta}: unreadable cameras.json ({exc})") from exc
                break

    def process(self, frames: Iterable[Frame], context: PriorContext) -> Iterator[PriorOutput]:
        from ..io.depth_files import read_depth

        for i, frame in enumerate(frames):
            if frame.index >= len(self.files):
                raise InputError(
                    f"{self.folder}: no depth file for source frame {frame.index} "
                    f"(the folder holds {len(self.files)} files)"
                )
            values = read_depth(self.files[frame.index])
            yield PriorOutput(
                index=i,
                values=values,
                kind="disparity" if self.disparity else "depth",
                metric=self.metric and not self.disparity,
            )

    def describe(self) -> dict:
        return {"name": self.name, "folder": str(self.folder), "files": len(self.files),
                "kind": "disparity" if self.disparity else "depth", "metric": self.metric}


@register_prior("files")
def _factory(arg: str | None) -> FilesPrior:
    if not arg:
        raise InputError("--prior files: needs a folder, e.g. --prior files:path/to/depth")
    folder, opts = parse_spec_options(arg, {"disparity": "the files hold disparity, not depth"}, "files")
    return FilesPrior(folder, disparity=option_bool(opts.get("disparity"), "disparity", False))
