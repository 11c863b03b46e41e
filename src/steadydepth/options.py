"""Run options and presets.

A preset (``fast`` / ``balanced`` / ``fine``) fills every option the user did not set;
explicit options always win.
"""

from __future__ import annotations

import logging
import math
import numbers
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field, fields

from .errors import InputError
from .io.depth_files import DEPTH_FORMATS
from .types import Intrinsics

log = logging.getLogger(__name__)

__all__ = ["RunOptions", "PRESETS", "PRESET_ALIASES", "preset_name", "METRIC_HINT_RANGE", "cli_names", "option_text", "parse_metric_hint"]

#: option field -> the command-line flag that sets it (fields not listed are spelt ``--field-name``)
CLI_FLAGS: dict[str, str] = {"hfov_deg": "--fov", "formats": "--format", "npz": "--no-npz", "vis": "--no-vis",
                             "progress_bar": "--quiet", "scene": "--no-scene"}

#: accepted ``--metric-hint`` values in metres (a millimetre-sized scene up to a 1000 km path)
METRIC_HINT_RANGE = (1e-3, 1e6)

_CLI_NAMES: ContextVar[bool] = ContextVar("steadydepth_cli_names", default=False)


@contextmanager
def cli_names() -> Iterator[None]:
    """Within this block, error messages name command-line flags (``--fov 200``) instead of
    the Python arguments (``hfov_deg=200``); the command line wraps each command in it."""
    token = _CLI_NAMES.set(True)
    try:
        yield
    finally:
        _CLI_NAMES.reset(token)


def option_text(name: str, value: object = None) -> str:
    """How the user spelt option ``name`` (a :class:`RunOptions` field or an ``eval`` argument):
    ``--fov 200`` on the command line, ``hfov_deg=200`` from Python. A boolean flag is
    ``--overwrite`` / ``overwrite=True``; ``value=None`` gives the name alone."""
    if _CLI_NAMES.get():
        flag = CLI_FLAGS.get(name, "--" + name.replace("_", "-"))
        return flag if value is None or isinstance(value, bool) else f"{flag} {value}"
    return name if value is None else f"{name}={value!r}" if isinstance(value, str) else f"{name}={value}"

#: preset -> defaults. ``max_res`` is the long side of the processing resolution in pixels;
#: ``temporal_radius`` the neighbours on each side that the temporal fusion compares each
#: frame with (:mod:`steadydepth.consistency.temporal`; 0 = off).
PRESETS: dict[str, dict] = {
    "fast": {"max_res": 320, "temporal_radius": 8},
    "balanced": {"max_res": 480, "temporal_radius": 20},
    "fine": {"max_res": 640, "temporal_radius": 20},
}

#: former preset names -> their preset. ``best`` was renamed ``fine``: it processes at a finer
#: resolution and is better than ``balanced`` on the synthetic clips and the RealSense desk, but not
#: on the 7-Scenes clips (benchmarks/NOTES.md), so it is not "best" on every clip.
PRESET_ALIASES: dict[str, str] = {"best": "fine"}


def preset_name(name: str) -> str:
    """The preset ``name`` stands for (a former name is logged as a warning and mapped)."""
    if name in PRESET_ALIASES:
        log.warning("preset %r is now called %r (finer processing; not better than balanced on every clip)",
                    name, PRESET_ALIASES[name])
        return PRESET_ALIASES[name]
    return name



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
    cameras (0 turns the temporal fusion off). ``scene``: fuse every posed frame into
    ``scene.ply`` / ``scene.glb`` / ``scene_points.ply`` (:mod:`steadydepth.scene.fused_scene`).
    """

    prior: str = "auto"
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
    scene: bool = True
    hfov_deg: float | None = None
    intrinsics: Intrinsics | None = None
    metric_hint: str | None = None
    device: str = "cpu"
    overwrite: bool = False
    progress_bar: bool = True
    extra: dict = field(default_factory=dict)

    def resolved(self) -> RunOptions:
        """A copy with preset values filled in and every value checked (no input is read:
        the checks against the input are :func:`steadydepth.validation.check_run`)."""
        preset = preset_name(self.preset)
        if preset not in PRESETS:
            raise InputError(f"{option_text('preset', self.preset)}: unknown preset, choose one of {', '.join(PRESETS)}")
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["preset"] = preset
        for key, value in PRESETS[preset].items():
            if values.get(key) is None:
                values[key] = value
        out = RunOptions(**values)
        out.formats = tuple(dict.fromkeys(("npy", *out.formats)))
        bad = [f for f in out.formats if f not in DEPTH_FORMATS]
        if bad:
            raise InputError(f"{option_text('formats', bad[0])}: unknown depth format, choose from "
                             f"{', '.join(DEPTH_FORMATS)}")
        _check_int(out.start, "start", 0)
        _check_int(out.stride, "stride", 1)
        if out.stop is not None:
            _check_int(out.stop, "stop", out.start + 1, f"the frame to stop before, after {option_text('start')}")
        _check_int(out.max_res, "max_res", 32, "pixels")
        _check_int(out.temporal_radius, "temporal_radius", 0, "frames", high=30)
        _check_int(out.points_stride, "points_stride", 1, "pixels")
        if not isinstance(out.scene, bool):
            raise InputError(f"{option_text('scene', out.scene)}: must be True or False (the fused scene on or off)")
        if out.output_res not in ("input", "processing"):
            raise InputError(f"{option_text('output_res', out.output_res)}: must be 'input' or 'processing'")
        if not _finite(out.png_scale) or out.png_scale <= 0:
            raise InputError(f"{option_text('png_scale', out.png_scale)}: must be a positive finite number "
                             "(16-bit PNG value = round(depth * scale))")
        if out.hfov_deg is not None and (not _finite(out.hfov_deg) or not 1.0 < out.hfov_deg < 179.0):
            raise InputError(f"{option_text('hfov_deg', out.hfov_deg)}: the horizontal field of view must be "
                             "between 1 and 179 degrees")
        if out.metric_hint is not None:
            parse_metric_hint(out.metric_hint)
        if not isinstance(out.device, str) or not _DEVICE.fullmatch(out.device.strip().lower()):
            raise InputError(f"{option_text('device', out.device)}: unknown device, use cpu, cuda, cuda:N, mps or auto")
        from .scene.colormap import COLORMAPS

        if out.cmap not in COLORMAPS:
            raise InputError(f"{option_text('cmap', out.cmap)}: unknown colour map, choose from "
                             f"{', '.join(sorted(COLORMAPS))}")
        return out

    def to_dict(self) -> dict:
        d = asdict(self)
        d["intrinsics"] = self.intrinsics.to_dict() if self.intrinsics else None
        return d


def parse_metric_hint(hint: str) -> tuple[str, float]:
    """``"depth=2.5"`` -> ``("depth", 2.5)``; raises InputError on anything else, including
    values outside :data:`METRIC_HINT_RANGE` metres (``inf``, ``1e-300``)."""
    kind, _, value = str(hint).partition("=")
    kind = kind.strip().lower()
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    low, high = METRIC_HINT_RANGE
    if kind not in ("depth", "travel") or not _finite(number):
        raise InputError(
            f"{option_text('metric_hint', hint)}: expected depth=METRES (median depth of the first frame) "
            "or travel=METRES (camera path length over the clip)"
        )
    if not low <= number <= high:
        raise InputError(f"{option_text('metric_hint', hint)}: {kind} must be between {low:g} and {high:g} metres")
    return kind, number


_DEVICE = re.compile(r"cpu|auto|mps|cuda(:\d+)?")


def _finite(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _check_int(value: object, name: str, low: int, unit: str = "", *, high: int | None = None) -> None:
    """Refuse ``value`` unless it is None or an integer in ``[low, high]`` (message names the option)."""
    if value is None:
        return
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= low \
        and (high is None or value <= high)
    if not ok:
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InputError(f"{option_text(name, value)}: must be an integer {bound}{f' ({unit})' if unit else ''}")
