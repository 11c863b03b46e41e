"""Checks of a run's options against its input, done before any work and before anything is deleted.

:meth:`RunOptions.resolved` checks each option on its own; :func:`check_run` checks what
needs the opened input and the prior: the frame range selects frames, the prior has what
it needs (enough frames, its files, intrinsics for point clouds), and ``--intrinsics``
describe a plausible camera for the input's size. Every failure is an
:class:`~steadydepth.errors.InputError` naming the user's option.
"""

from __future__ import annotations

import logging
import math

from .errors import InputError
from .io.frames import FrameSource
from .options import RunOptions, option_text
from .priors.base import DepthPrior
from .types import Intrinsics

__all__ = ["check_run", "check_intrinsics", "frame_count_slack", "same_aspect"]

#: a field of view outside (1, 179) degrees is not a camera (the range ``--fov`` accepts)
_FOV_RANGE_DEG = (1.0, 179.0)

log = logging.getLogger(__name__)


def check_run(opts: RunOptions, source: FrameSource, prior: DepthPrior) -> None:
    """Refuse, before any work, a run that cannot succeed: an empty frame range, a geometric
    prior with fewer than 2 frames, point clouds without intrinsics, implausible intrinsics,
    or what the prior's own :meth:`~steadydepth.priors.base.DepthPrior.check_source` refuses.
    ``opts`` must be resolved; ``source.num_frames`` is trusted where it is known."""
    n = source.num_frames
    total = getattr(source, "source_frames", None)
    if n == 0 and not (total and opts.start < total + frame_count_slack(source)):
        size = f" (the input has {total} frames)" if total else ""
        raise InputError(f"{source.path}: {option_text('start', opts.start)}"
                         f"{'' if opts.stop is None else ' ' + option_text('stop', opts.stop)} selects no frame{size}")
    if n is not None and n + frame_count_slack(source) < 2 and prior.needs_cameras:
        raise InputError(
            f"{source.path}: the '{prior.name}' prior recovers depth from camera motion and needs at least 2 frames, "
            f"the input (after {option_text('start')}/{option_text('stop')}/{option_text('stride')}) has {n}; "
            "for a single image use a learned prior such as --prior hf:MODEL"
        )
    if opts.intrinsics is not None:
        check_intrinsics(opts.intrinsics, source.width, source.height)
    if opts.points and not prior.needs_cameras and opts.intrinsics is None and opts.hfov_deg is None:
        raise InputError(
            f"{option_text('points', True)} needs the camera's intrinsics and the '{prior.name}' prior runs no "
            f"structure from motion: pass {option_text('hfov_deg')} or {option_text('intrinsics')}"
        )
    _check_fusion(opts, prior)
    prior.check_source(source)


def _check_fusion(opts: RunOptions, prior: DepthPrior) -> None:
    """The fusion options (``extra["fusion"]``) apply to a learned prior fused with the geometry:
    checked there, refused for any other prior, and only noted when ``auto`` chose no learned model."""
    from .priors.combined import CombinedPrior, fusion_settings

    fusion = opts.extra.get("fusion")
    if not fusion:
        return
    if isinstance(prior, CombinedPrior):
        fusion_settings(fusion, None)
    elif opts.prior.split("?")[0] == "auto":
        log.warning("--fusion does not apply: --prior auto chose '%s', which fuses no learned depth", prior.name)
    else:
        raise InputError(f"--fusion applies to a learned prior fused with the geometry (such as tflite:FILE+mvs); "
                         f"{option_text('prior', opts.prior)} fuses nothing")


def check_intrinsics(intr: Intrinsics, width: int, height: int) -> None:
    """Refuse intrinsics that are not finite, have a non-positive focal length, a field of view
    outside (1, 179) degrees, a principal point outside the image, or an image size of another
    aspect ratio than the ``width x height`` input."""
    given = f"{intr.fx:g},{intr.fy:g},{intr.cx:g},{intr.cy:g}"
    label = option_text("intrinsics", given)
    if not all(math.isfinite(v) for v in (intr.fx, intr.fy, intr.cx, intr.cy)):
        raise InputError(f"{label}: every value must be a finite number (fx,fy,cx,cy in pixels)")
    if intr.fx <= 0 or intr.fy <= 0:
        raise InputError(f"{label}: focal lengths fx and fy must be positive")
    if intr.width <= 0 or intr.height <= 0 or not same_aspect((intr.width, intr.height), (width, height)):
        raise InputError(f"{label}: given for a {intr.width}x{intr.height} image, the input is {width}x{height} "
                         "(another aspect ratio)")
    low, high = _FOV_RANGE_DEG
    for axis, f, side in (("horizontal", intr.fx, intr.width), ("vertical", intr.fy, intr.height)):
        fov = math.degrees(2.0 * math.atan(side / (2.0 * f)))
        if not low < fov < high:
            raise InputError(f"{label}: a focal length of {f:g} px gives a {axis} field of view of {fov:.3g} degrees "
                             f"on the {intr.width}x{intr.height} image (expected between {low:g} and {high:g})")
    for name, c, side in (("cx", intr.cx, intr.width), ("cy", intr.cy, intr.height)):
        if not -0.5 <= c <= side - 0.5:
            raise InputError(f"{label}: the principal point {name}={c:g} lies outside the "
                             f"{intr.width}x{intr.height} image (expected 0 to {side - 1})")


def frame_count_slack(source: FrameSource) -> int:
    """How many frames ``source.num_frames`` may be short of the truth: 0 where it is exact
    (images, arrays, a video whose container announces its frame count), else a few frames
    (a count estimated from the duration, as :class:`~steadydepth.io.frames.VideoSource` does)."""
    if getattr(source, "kind", "") != "video" or getattr(source, "_announced", 0):
        return 0
    return max(2, int(0.02 * (source.num_frames or 0)))


def same_aspect(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """True when ``(w, h)`` sizes ``a`` and ``b`` have one aspect ratio up to the rounding of a
    resize (one pixel and 1 % on the side derived from the other)."""
    (wa, ha), (wb, hb) = a, b
    return abs(ha - wa * hb / wb) <= 1.0 + 0.01 * ha or abs(wa - ha * wb / hb) <= 1.0 + 0.01 * wa
