"""``refine:SPEC``: multi-view refinement of another prior's depth, as a stage of the prior stream.

``--prior refine:hf:MODEL+mvs`` (or ``refine:simulated:GTDIR+mvs`` for benchmarks) runs the
inner prior (here the combined ``hf:MODEL+mvs``) and then refines each frame's depth with
:func:`~steadydepth.consistency.refine.refine_depth`: a coarse log-scale grid multiplying the
depth is optimised so that neighbour views, warped into the frame through the depth, look
like it (plus gradient preservation, multi-view depth agreement with the neighbours' depth
and, when the cameras carry a sparse SfM cloud, agreement with those points).

Streaming, with memory flat in clip length:

* the frames are teed to the inner prior and to this stage by :class:`SpillingTee`, which
  keeps at most ``in_memory`` frames per branch in memory and spills the rest to a temporary
  folder (the combined prior reads the *whole* clip before it yields its first output, so a
  plain in-memory tee would hold the whole clip);
* a sliding window of ``2 * neighbours_per_side * step + 1`` frames (image, pose, depth,
  confidence) is kept; frame ``i`` is refined against frames ``i +- step, i +- 2 step, ...``
  (those that exist and have a pose) once frame ``i + radius`` has arrived.

Conventions: the inner prior must yield **z-depth** (``kind="depth"``) in the units of the
camera poses (the combined ``a+mvs`` prior does, when its clip alignment is anchored by
geometry); a disparity prior is refused with :class:`InputError`. Poses are camera-to-world
4x4 (OpenCV axes), intrinsics at the processing resolution (OpenCV pixel centres). Frames
without a pose, or whose depth scale disagrees with the SfM points by more than a factor
1.5, pass through unrefined. Each output keeps the inner prior's confidence and ``metric``
flag; ``index`` is the position in the stream.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import InputError, ReconstructionError
from ..geometry import project_points, resize_keep_invalid
from ..types import Cameras, Frame, Intrinsics, PriorOutput
from .base import DepthPrior, PriorContext, create_prior, register_prior
from .tee import SpillingTee

__all__ = ["RefinedPrior", "SpillingTee", "REFINE_PRESETS"]  # SpillingTee re-exported from .tee

log = logging.getLogger(__name__)

#: per preset: (neighbours per side, step between neighbours in frames, Adam iterations, working width)
#: measured on 2 CPU cores at 320x240 (see the report of the change): "balanced" about 0.5-0.9 s/frame
REFINE_PRESETS: dict[str, dict] = {
    "fast": {"neighbours_per_side": 1, "step": 2, "iters": 12, "work_width": 128, "lr": 0.03},
    "balanced": {"neighbours_per_side": 1, "step": 2, "iters": 20, "work_width": 160, "lr": 0.03},
    "fine": {"neighbours_per_side": 2, "step": 2, "iters": 40, "work_width": 160, "lr": 0.03},
}


@dataclass
class _Entry:
    position: int
    image: np.ndarray
    pose: np.ndarray | None
    depth: np.ndarray
    confidence: np.ndarray | None
    metric: bool
    refined: np.ndarray | None = None


def _points_scale_ratio(depth: np.ndarray, pose: np.ndarray, intr: Intrinsics, points: np.ndarray | None) -> float | None:
    """Median of ``z_point / depth`` at the projections of the sparse points (None if < 10 points)."""
    if points is None or len(points) == 0:
        return None
    uf, vf, z = project_points(points, pose, intr, min_depth=1e-6)
    if z.size < 10:
        return None
    u = np.rint(uf).astype(np.int64)
    v = np.rint(vf).astype(np.int64)
    h, w = depth.shape
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    if inside.sum() < 10:
        return None
    d = depth[v[inside], u[inside]]
    ok = np.isfinite(d) & (d > 0)
    if ok.sum() < 10:
        return None
    return float(np.median(z[inside][ok] / d[ok]))


def _neighbours(window: deque[_Entry], e: _Entry, k_side: int, step: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(image, pose_c2w, depth)`` of the views frame ``e`` is refined against: frames
    ``e +- step, e +- 2 step, ...`` that have a pose, topped up at the clip ends (or next to
    unposed frames) by other posed frames of the window, farthest first (wider baseline).
    A neighbour's depth is its refined depth once it has one."""
    posed = {f.position: f for f in window if f.pose is not None and f.position != e.position}
    wanted = [e.position + sign * m * step for m in range(1, k_side + 1) for sign in (-1, 1)]
    chosen = [j for j in wanted if j in posed]
    chosen += sorted((j for j in posed if j not in chosen),
                     key=lambda j: -abs(j - e.position))[: len(wanted) - len(chosen)]
    nbs = []
    for j in chosen:
        f = posed[j]
        nbs.append((f.image, f.pose, f.refined if f.refined is not None else f.depth))
    return nbs


def _entry(position: int, frame: Frame, pose_c2w: np.ndarray | None, out: PriorOutput) -> _Entry:
    """The window entry of one inner output, its depth and confidence at the frame's size."""
    h, w = frame.image.shape[:2]
    depth = resize_keep_invalid(out.values, w, h)
    conf = out.confidence
    if conf is not None:
        conf = np.clip(np.asarray(conf, np.float32), 0.0, 1.0)
        if conf.shape != (h, w):
            conf = cv2.resize(conf, (w, h), interpolation=cv2.INTER_LINEAR)
    return _Entry(position, frame.image, None if pose_c2w is None else np.asarray(pose_c2w, np.float64),
                  depth, conf, bool(out.metric))


class RefinedPrior(DepthPrior):
    """Wrap a depth prior and refine its depth by multi-view warping (see the module docstring).

    ``neighbours_per_side``, ``step``, ``iters`` and ``work_width`` default to the
    :data:`REFINE_PRESETS` entry of ``context.preset``; ``depth_weight`` weights the
    multi-view depth agreement (0 turns it off); ``use_points`` uses ``context.cameras.points``;
    ``in_memory`` bounds the frames the tee keeps in memory per branch. After a run
    ``last_stats`` holds counts, timings, mean photometric error before/after and the memory
    high-water marks (``window_high_water`` <= ``2 * radius + 1``, ``tee_memory_high_water``
    <= ``in_memory``).
    """

    name = "refine"
    needs_cameras = True

    def __init__(self, inner: DepthPrior, spec: str = "", *, neighbours_per_side: int | None = None,
                 step: int | None = None, iters: int | None = None, work_width: int | None = None,
                 lr: float | None = None,
                 depth_weight: float = 0.5, anchor_weight: float = 0.0, use_points: bool = True, in_memory: int = 8,
                 max_scale_disagreement: float = 1.5) -> None:
        self.inner = inner
        self.spec = spec
        self.overrides = {k: v for k, v in (("neighbours_per_side", neighbours_per_side), ("step", step),
                                            ("iters", iters), ("work_width", work_width), ("lr", lr))
                          if v is not None}
        for k, v in self.overrides.items():
            if not v > 0 or (k != "lr" and int(v) < 1):
                raise InputError(f"refine prior '{spec}': {k} must be >= 1, got {v}")
        self.depth_weight = float(depth_weight)
        self.anchor_weight = float(anchor_weight)
        self.use_points = bool(use_points)
        self.in_memory = int(in_memory)
        self.max_scale_disagreement = float(max_scale_disagreement)
        self.last_stats: dict = {}

    def settings(self, preset: str) -> dict:
        """The effective settings for ``preset`` (unknown presets fall back to ``balanced``)."""
        return {**REFINE_PRESETS.get(preset, REFINE_PRESETS["balanced"]), **self.overrides}

    def describe(self) -> dict:
        return {"name": self.name, "spec": self.spec, "inner": self.inner.describe(),
                "overrides": self.overrides, "depth_weight": self.depth_weight, "stats": self.last_stats}

    def check_source(self, source) -> None:
        """The refined prior checks the source."""
        self.inner.check_source(source)

    # Long on purpose: one streaming loop (tee, window, in-order release) whose state is shared by
    # finish(); neighbour choice and window entries are the helpers _neighbours and _entry.
    def process(self, frames: Iterable[Frame], context: PriorContext) -> Iterator[PriorOutput]:
        from ..consistency.refine import refine_depth

        cameras: Cameras | None = context.cameras
        if cameras is None:
            raise InputError(f"refine prior '{self.spec}': needs camera poses (context.cameras is None); "
                             "run structure from motion or give cameras")
        cfg = self.settings(context.preset)
        k_side, step = int(cfg["neighbours_per_side"]), int(cfg["step"])
        radius = k_side * step
        points = cameras.points if self.use_points else None
        stats = {"frames": 0, "refined": 0, "passed_through": 0, "no_pose": 0, "scale_mismatch": 0,
                 "seconds": 0.0, "photo_start": [], "photo_end": [], "window_high_water": 0, **cfg}
        self.last_stats = stats

        tee = SpillingTee(frames, 2, in_memory=self.in_memory)
        inner_branch, mine = tee.branches()
        window: deque[_Entry] = deque()
        intr_cache: dict[tuple[int, int], Intrinsics] = {}
        state = {"refine_all": True}

        def intr_for(w: int, h: int) -> Intrinsics:
            if (w, h) not in intr_cache:
                i0 = cameras.intrinsics
                intr_cache[(w, h)] = i0 if (i0.width, i0.height) == (w, h) else i0.scaled(w, h)
            return intr_cache[(w, h)]

        def finish(e: _Entry) -> PriorOutput:
            h, w = e.depth.shape
            out_depth = e.depth
            if e.pose is None:
                stats["no_pose"] += 1
            elif state["refine_all"]:
                nbs = _neighbours(window, e, k_side, step)
                intr = intr_for(w, h)
                ratio = _points_scale_ratio(e.depth, e.pose, intr, points)
                if ratio is not None and not (1 / self.max_scale_disagreement < ratio < self.max_scale_disagreement):
                    stats["scale_mismatch"] += 1
                    log.warning("refine: frame %d depth disagrees with the SfM points by a factor %.2f; "
                                "left unrefined", e.position, ratio)
                elif nbs:
                    t0 = time.perf_counter()
                    out_depth, info = refine_depth(
                        e.image, e.depth, nbs, e.pose, intr, points=points,
                        depth_weight=self.depth_weight, anchor_weight=self.anchor_weight,
                        confidence=e.confidence, iters=int(cfg["iters"]),
                        work_width=int(cfg["work_width"]), lr=float(cfg["lr"]), return_info=True)
                    stats["seconds"] += time.perf_counter() - t0
                    stats["refined"] += 1
                    stats["photo_start"].append(info["photo_start"])
                    stats["photo_end"].append(info["photo_end"])
            if out_depth is e.depth:
                stats["passed_through"] += 1
            e.refined = out_depth
            stats["frames"] += 1
            return PriorOutput(index=e.position, values=out_depth, kind="depth", metric=e.metric,
                               confidence=e.confidence)

        try:
            next_out = 0
            n = 0
            for out in self.inner.process(inner_branch, context):
                frame = next(mine, None)
                if frame is None:
                    raise ReconstructionError(
                        f"refine prior '{self.spec}': the inner prior yielded more outputs than frames")
                if out.kind != "depth":
                    raise InputError(
                        f"refine prior '{self.spec}': the inner prior yields {out.kind}, but refinement needs "
                        "z-depth in the units of the camera poses; combine it with a geometric prior first, "
                        "e.g. --prior refine:hf:MODEL+mvs")
                if n == 0:
                    gauge = getattr(self.inner, "last_stats", {}).get("gauge")
                    if gauge is not None and gauge != "anchors":
                        state["refine_all"] = False
                        log.warning("refine prior '%s': the inner depth is not anchored to the camera scale "
                                    "(gauge %s); frames pass through unrefined", self.spec, gauge)
                pose = cameras.poses[n] if n < len(cameras.poses) else None
                window.append(_entry(n, frame, pose, out))
                stats["window_high_water"] = max(stats["window_high_water"], len(window))
                n += 1
                while next_out <= n - 1 - radius:
                    yield finish(next(e for e in window if e.position == next_out))
                    next_out += 1
                    while window and window[0].position < next_out - radius:
                        window.popleft()
            if next(mine, None) is not None:
                raise ReconstructionError(
                    f"refine prior '{self.spec}': the inner prior yielded fewer outputs than frames ({n})")
            while next_out < n:
                yield finish(next(e for e in window if e.position == next_out))
                next_out += 1
                while window and window[0].position < next_out - radius:
                    window.popleft()
        finally:
            stats["tee_memory_high_water"] = tee.memory_high_water
            stats["tee_spilled"] = tee.spilled
            tee.close()
            ps, pe = stats.pop("photo_start"), stats.pop("photo_end")
            stats["photo_start_mean"] = float(np.mean(ps)) if ps else None
            stats["photo_end_mean"] = float(np.mean(pe)) if pe else None
            stats["seconds_per_refined_frame"] = stats["seconds"] / stats["refined"] if stats["refined"] else None
            log.info("refine: %s", stats)


@register_prior("refine")
def _factory(arg: str | None) -> RefinedPrior:
    spec = (arg or "").strip()
    if not spec:
        raise InputError("--prior refine: needs an inner prior, e.g. --prior refine:hf:MODEL+mvs")
    return RefinedPrior(create_prior(spec), spec)
