"""``files:DIR``: depth that another tool produced, one file per frame.

``DIR`` holds one depth map per *source* frame (``.npy``, ``.npz``, 16-bit ``.png``
in millimetres-style units of 1/1000, ``.exr`` or ``.pfm``), sorted naturally by name;
the file at position ``k`` belongs to source frame ``k`` (so ``--stride`` and ``--start``
pick the matching files). Values are z-depth (0 = invalid). If ``DIR`` or its parent
holds a ``cameras.json`` saying ``"units": "metres"``, the depth is taken as metric.
Append ``?disparity`` to the folder to read the files as affine-invariant disparity.

Maps may be of another size than the input (they are resized, with one warning) but not of
another aspect ratio (refused); the folder must hold a file for every selected source frame,
which is checked before the run starts when the input's frame count is known.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import InputError
from ..io.frames import FrameSource
from ..io.images import natural_sort_key
from ..types import Frame, PriorOutput
from .spec import option_bool, parse_spec_options
from .base import DepthPrior, PriorContext, register_prior

__all__ = ["FilesPrior", "DEPTH_SUFFIXES"]

log = logging.getLogger(__name__)

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
        self._size_warned = False
        self.metric = False
        for meta in (self.folder / "cameras.json", self.folder.parent / "cameras.json"):
            if meta.is_file():
                try:
                    self.metric = json.loads(meta.read_text()).get("units") == "metres"
                except (OSError, ValueError) as exc:
                    raise InputError(f"{meta}: unreadable cameras.json ({exc})") from exc
                break

    def check_source(self, source: FrameSource) -> None:
        """Refuse a folder with too few files for the selected frames (when the input's frame count
        is known) or whose first map has another aspect ratio than the input."""
        from ..io.depth_files import read_depth
        from ..validation import frame_count_slack

        if source.num_frames:
            last = source.start + (source.num_frames - 1) * source.stride
            if last >= len(self.files) + frame_count_slack(source) * source.stride:
                raise InputError(
                    f"{self.folder}: holds {len(self.files)} depth files, the input's frames "
                    f"{source.start} to {last} need {last + 1} (one file per source frame, in name order)"
                )
        first = self.files[min(source.start, len(self.files) - 1)]
        self._check_size(first, read_depth(first).shape, (source.width, source.height))

    def _check_size(self, path: Path, shape: tuple[int, ...], source_size: tuple[int, int] | None) -> None:
        """Refuse a map of another aspect ratio than the input; warn once on another size."""
        from ..validation import same_aspect

        if source_size is None:
            return
        h, w = shape[:2]
        if not same_aspect((w, h), source_size):
            raise InputError(f"{path}: the depth map is {w}x{h}, the input is {source_size[0]}x{source_size[1]} "
                             "(another aspect ratio: the maps do not belong to this input)")
        if (w, h) != tuple(source_size) and not self._size_warned:
            self._size_warned = True
            log.warning("%s: depth maps are %dx%d, the input is %dx%d: they are resized to it", self.folder, w, h,
                        *source_size)

    def process(self, frames: Iterable[Frame], context: PriorContext) -> Iterator[PriorOutput]:
        from ..io.depth_files import read_depth

        for i, frame in enumerate(frames):
            if frame.index >= len(self.files):
                raise InputError(
                    f"{self.folder}: no depth file for source frame {frame.index} "
                    f"(the folder holds {len(self.files)} files)"
                )
            values = read_depth(self.files[frame.index])
            self._check_size(self.files[frame.index], values.shape, context.source_size)
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
