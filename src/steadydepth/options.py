"""Run options and presets.

A preset (``fast`` / ``balanced`` / ``best``) fills every option the user did not set;
explicit options always win.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from .errors import InputError
from .io.depth_files import DEPTH_FORMATS
from .types import Intrinsics

__all__ = ["RunOptions", "PRESETS"]

#: preset -> defaults. ``max_res`` is the long side of the processing resolution in pixels;
#: ``temporal_radius`` the neighbours on each side that the temporal fusion compares each
#: frame with (:mod:`steadydepth.consistency.temporal`; 0 = off).
PRESETS: dict[str, dict] = {
    "fast": {"max_res": 320, "temporal_radius": 2},
    "balanced": {"max_res": 480, "temporal_radius": 3},
    "best": {"max_res": 640, "temporal_radius": 5},
}



@dataclass
class RunOptions:
    """Everything that shapes one run. ``None`` means "take the preset's value".

    ``output_res``: ``"input"`` restores depth to the input resolution (default),
    ``"processing"`` keeps the processing resolution. ``formats``: per-frame depth files
    (``npy`` is always written: it backs ``depth.npz`` and :class:`DepthVideo`).
    ``png_scale``: 16-bit PNG value = round(depth * png_scale) (1000: millimetres when the
    depth is metric). ``metric_hint``: ``"depth=2.5"`` (median depth of the first frame, in
    metres) or ``"travel=1.2"`` (camera path length over the clip, metres).
    ``temporal_radius``: neighbours on each side fused into each frame's depth through the
    cameras (0 turns the temporal fusion off).
    """

    prior: str = "mvs"
    preset: str = "balanced"
    max_res: int | None = None
    temporal_radius: int | None = None
    start: int = 0
    stop: int | None = None
    stride: int = 1
    output_res: str = "input"
    formats: tuple[str, ...] = ("npy",)
    png_scale: float = 1000.0
    npz: bool = True
    vis: bool = True
    side_by_side: bool = False
    cmap: str = "inferno"
    points: bool = False
    points_stride: int = 2
    hfov_deg: float | None = None
    intrinsics: Intrinsics | None = None
    metric_hint: str | None = None
    device: str = "cpu"
    overwrite: bool = False
    progress_bar: bool = True
    extra: dict = field(default_factory=dict)

    def resolved(self) -> RunOptions:
        """A copy with preset values filled in and every value checked."""
        if self.preset not in PRESETS:
            raise InputError(f"unknown preset '{self.preset}': choose one of {', '.join(PRESETS)}")
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, value in PRESETS[self.preset].items():
            if values.get(key) is None:
                values[key] = value
        out = RunOptions(**values)
        out.formats = tuple(dict.fromkeys(("npy", *out.formats)))
        bad = [f for f in out.formats if f not in DEPTH_FORMATS]
        if bad:
            raise InputError(f"unknown depth format(s) {bad}: choose from {', '.join(DEPTH_FORMATS)}")
        if out.stride < 1 or out.start < 0 or (out.stop is not None and out.stop <= out.start):
            raise InputError(f"bad frame range: start={out.start} stop={out.stop} stride={out.stride}")
        if out.max_res is not None and out.max_res < 32:
            raise InputError(f"--max-res {out.max_res} is too small (minimum 32 pixels)")
        if out.temporal_radius is not None and not 0 <= out.temporal_radius <= 30:
            raise InputError(f"--temporal-radius must be between 0 and 30 frames, got {out.temporal_radius}")
        if out.output_res not in ("input", "processing"):
            raise InputError(f"--output-res must be 'input' or 'processing', got '{out.output_res}'")
        if out.metric_hint is not None:
            parse_metric_hint(out.metric_hint)
        return out

    def to_dict(self) -> dict:
        d = asdict(self)
        d["intrinsics"] = self.intrinsics.to_dict() if self.intrinsics else None
        return d


def parse_metric_hint(hint: str) -> tuple[str, float]:
    """``"depth=2.5"`` -> ``("depth", 2.5)``; raises InputError on anything else."""
    kind, _, value = hint.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if kind not in ("depth", "travel") or not number > 0:
        raise InputError(
            f"--metric-hint '{hint}': expected depth=METRES (median depth of the first frame) "
            "or travel=METRES (camera path length over the clip)"
        )
    return kind, number
