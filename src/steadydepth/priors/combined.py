"""``a+b``: a learned prior for shape fused with geometric priors for scale, then clip-aligned.

``--prior hf:MODEL+mvs`` (or ``simulated:GTDIR+mvs`` in benchmarks, once they import :mod:`steadydepth.eval.simulate`): the first part gives
the shape (usually affine-invariant disparity from a per-frame model), the later parts give
geometry (z-depth with a confidence, e.g. multi-view stereo). Processing:

1. **First pass** (streaming): the frames are teed to every part (all parts are in-order
   stream transformers; what one part runs ahead of another beyond ``max_lag`` frames is
   spilled to disk, :class:`~steadydepth.priors.tee.SpillingTee`). Per frame, the geometry of the parts is merged (per pixel, the most
   confident), and the clip stage (:class:`~steadydepth.consistency.clip_stage.ClipAlignmentStage`) observes the frame,
   the shape values, the camera pose and the geometry as *anchor*. Shape and geometry are
   spilled to a temporary folder (memory stays flat in clip length).
2. **Solve**: one scale and shift per frame, jointly over the clip (cross-frame agreement
   through optical flow and poses, plus agreement with confident geometry).
3. **Second pass**: per frame, the aligned shape is fitted *locally* to the frame's confident
   geometry (a smooth scale and shift field on a coarse grid,
   :func:`~steadydepth.consistency.local_fit.fit_local_field`: it undoes the learned model's
   low-frequency errors, a tilted floor or a compressed far wall, and its per-frame flicker;
   a frame with too little confident geometry keeps the clip alignment), blended with the
   geometry by confidence (:func:`~steadydepth.consistency.fusion.blend_with_geometry`: the
   geometry is kept where it is confident, the fitted shape fills where it is weak or empty;
   the geometry's weight is ``confidence ** gamma`` where it is confident, and where it is
   weak the clip's median over its frames of
   :func:`~steadydepth.consistency.local_fit.weak_geometry_weight`, a spatial
   cross-validation of how well the fitted shape and the geometry's own smoothing each
   predict held-out confident pixels: a good learned model takes over the weak regions, a
   poor one leaves them to the geometry; at ``LEARNED_NO_BETTER`` (0.5) or above, where the
   fitted shape predicts no better than the geometry's smoothing, the weak geometry is kept
   as it is (weight 1) and the shape fills only where there is no geometry)
   and yielded as z-depth in the geometry's units (``metric`` when every geometric part is
   metric). The pipeline's temporal fusion then makes the frames agree through the cameras.
   ``local_fit=None`` turns the local fit off (one scale and shift per frame only).

``context.options["fusion"]`` (a dict; ``RunOptions(extra={"fusion": {...}})``) overrides:
``local_fit`` (bool, default true) and ``blend`` (bool, default true; false yields the fitted
learned depth everywhere, the geometry serving only to fit it: the learned prior made
consistent with the cameras, for measurements).

Without any confident geometry the clip is aligned to its first frame (relative depth in
arbitrary "scene" units, with a warning). ``needs_cameras`` is true when any part needs them.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from ..consistency.clip_stage import ClipAlignmentStage
from ..consistency.fusion import blend_with_geometry
from ..consistency.local_fit import LocalField, LocalFieldSettings, fit_local_field, weak_geometry_weight
from ..errors import InputError, ReconstructionError
from ..geometry import invert_valid, resize_keep_invalid
from ..types import Frame, PriorOutput
from .base import DepthPrior, PriorContext, create_prior, register_prior
from .spec import parse_prior_spec
from .tee import SpillingTee


__all__ = ["CombinedPrior", "FUSION_KEYS", "parse_fusion"]

#: the fusion options (``--fusion KEY=BOOL,...``; ``RunOptions(extra={"fusion": {...}})``)
FUSION_KEYS = ("local_fit", "blend")
#: clip weak-geometry weight from which the weak geometry is kept unblended (the learned shape,
#: fitted to the confident geometry, predicts held-out pixels no better than the geometry's own
#: smooth fit: ``e_l >= e_g`` in :func:`~steadydepth.consistency.local_fit.weak_geometry_weight`)
LEARNED_NO_BETTER = 0.5

log = logging.getLogger(__name__)


class CombinedPrior(DepthPrior):
    """Shape prior + geometric prior(s), fused and clip-aligned (see the module docstring)."""

    name = "combined"

    def __init__(self, parts: list[DepthPrior], spec: str = "", *, max_lag: int = 256,
                 min_confidence: float = 0.5, local_fit: LocalFieldSettings | None = LocalFieldSettings(),
                 gamma: float = 0.25) -> None:
        if len(parts) < 2:
            raise InputError(f"combined prior '{spec}' needs at least two parts joined by '+'")
        self.parts = parts
        self.spec = spec
        self.max_lag = max_lag
        self.min_confidence = min_confidence
        self.local_fit = local_fit
        self.gamma = gamma
        self.needs_cameras = any(p.needs_cameras for p in parts)
        self.last_stats: dict = {}

    def describe(self) -> dict:
        return {"name": self.name, "spec": self.spec, "shape": self.parts[0].describe(),
                "geometry": [p.describe() for p in self.parts[1:]], "stats": self.last_stats}

    def check_source(self, source) -> None:
        """Every part checks the source."""
        for part in self.parts:
            part.check_source(source)

    def process(self, frames: Iterable[Frame], context: PriorContext) -> Iterator[PriorOutput]:
        local_fit, blend = fusion_settings(context.options.get("fusion"), self.local_fit)
        tee = SpillingTee(frames, len(self.parts) + 1, in_memory=self.max_lag)
        branches = tee.branches()
        gens = [part.process(branch, context) for part, branch in zip(self.parts, branches[:-1])]
        mine = branches[-1]
        cameras = context.cameras
        tmp = Path(tempfile.mkdtemp(prefix="steadydepth-combined-"))
        try:
            stage: ClipAlignmentStage | None = None
            kinds: set[str] = set()
            geo_metric = True
            n = 0
            for frame, *outs in zip(mine, *gens):
                shape, geos = outs[0], outs[1:]
                h, w = frame.image.shape[:2]
                if stage is None:
                    kind = "depth" if shape.kind == "depth" else "disparity"
                    stage = ClipAlignmentStage(tmp, kind, intrinsics=cameras.intrinsics if cameras is not None else None)
                kinds.add(shape.kind)
                sv = resize_keep_invalid(shape.values, w, h)
                gd = np.zeros((h, w), np.float32)
                gc = np.zeros((h, w), np.float32)
                for g in geos:
                    if g.kind != "depth":
                        raise InputError(f"combined prior: geometric part '{g}' must yield depth, not {g.kind}")
                    geo_metric &= bool(g.metric)
                    d = resize_keep_invalid(g.values, w, h)
                    if g.confidence is None:
                        c = np.ones_like(d)
                    else:
                        c = np.clip(np.asarray(g.confidence, np.float32), 0.0, 1.0)
                        if c.shape != (h, w):
                            c = cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR)
                    c = np.where(d > 0, c, 0.0)
                    better = c > gc
                    gd, gc = np.where(better, d, gd), np.where(better, c, gc)
                pose = None
                if cameras is not None and n < len(cameras.poses):
                    pose = cameras.poses[n]
                conf_anchor = np.where(gc >= self.min_confidence, gc, 0.0).astype(np.float32)
                stage.add(frame.image, sv, pose=pose, anchor=gd, anchor_confidence=conf_anchor,
                          extras={"g": gd, "c": gc.astype(np.float32)})
                n += 1
            if next(mine, None) is not None:
                raise ReconstructionError(
                    f"combined prior '{self.spec}': a part yielded fewer outputs than frames ({n})")
            if len(kinds) > 1:
                raise InputError(f"combined prior: the shape part changed kind mid-clip ({kinds})")
            if stage is None:
                return
            stage.solve()
            anchored = stage.stats.get("gauge") == "anchors"
            if not anchored:
                log.warning("combined prior: no confident geometry in the whole clip; depth is aligned to the "
                            "first frame only (relative, arbitrary scale)")
            self.last_stats = {"frames": n, "tee_memory_high_water": tee.memory_high_water, "tee_spilled": tee.spilled, **stage.stats}
            metric = anchored and geo_metric
            yield from self._fused_frames(stage, anchored, metric, local_fit, blend)
            if local_fit is not None and anchored:
                lf = self.last_stats["local_fit"]
                log.info("combined prior: local fit on %d/%d frames (median relative residual %s -> %s)", lf["frames"],
                         n, lf["residual_global"], lf["residual_local"])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            tee.close()

    def _fused_frames(self, stage: ClipAlignmentStage, anchored: bool, metric: bool,
                      local_fit: LocalFieldSettings | None, blend: bool) -> Iterator[PriorOutput]:
        """The second pass (module docstring, step 3): per frame, the clip-aligned shape fitted
        locally to the confident geometry and blended with it, as z-depth.

        Two reads of the spilled frames: the first fits every frame's field and weighs its
        weak geometry (:func:`weak_geometry_weight`); the second blends, with the weak geometry
        of every frame weighed by the clip's median weight. One learned model on one scene is
        about as good in every frame, while one frame's estimate rests on a few hundred confident
        pixels (from 0 to 1 frame to frame on a blurred pan); and a frame with too little
        confident geometry to be weighed does not let an unvalidated shape replace its geometry.
        """
        fields: dict[int, LocalField] = {}
        weak: list[float] = []
        if anchored and local_fit is not None:
            for i, aligned, maps in stage.aligned():
                disp = aligned if stage.kind == "disparity" else invert_valid(aligned)
                field = fit_local_field(disp, maps["g"], maps["c"], local_fit)
                if field is None:
                    continue
                fields[i] = field
                wk = weak_geometry_weight(disp, maps["g"], maps["c"], local_fit) if blend else None
                if wk is not None:
                    weak.append(wk)
        clip_weak = float(np.median(weak)) if weak else None  # None unless fields were fitted and blend is on
        kept = clip_weak is not None and clip_weak >= LEARNED_NO_BETTER
        if kept:
            log.info("combined prior: the learned shape extrapolates no better than the geometry's own smooth "
                     "fit (weak-geometry weight %.2f): the geometry is kept where it is weak", clip_weak)
        for i, aligned, maps in stage.aligned():
            gd, gc = maps["g"], maps["c"]
            disp = aligned if stage.kind == "disparity" else invert_valid(aligned)
            if not anchored:
                ok = disp > 0
                depth = np.where(ok, 1.0 / np.where(ok, disp, 1.0), 0.0).astype(np.float32)
                yield PriorOutput(index=i, values=depth, kind="depth", metric=metric,
                                  confidence=np.where(ok, 0.5, 0.0).astype(np.float32))
                continue
            if i in fields:
                disp = fields[i].apply(disp)
            weights = gc
            if kept:  # the learned shape only where there is no geometry at all
                weights = np.where(gc >= local_fit.min_confidence, gc, 1.0)
            elif clip_weak is not None:  # weak geometry weighs what it is worth (sqrt: leaning to it)
                weights = np.where(gc >= local_fit.min_confidence, gc, np.sqrt(clip_weak) ** (1.0 / self.gamma))
            if blend:
                depth, conf = blend_with_geometry(disp, gd, weights.astype(np.float32), gamma=self.gamma)
            else:
                depth = invert_valid(disp)
                conf = np.where(depth > 0, 0.5, 0.0).astype(np.float32)
            yield PriorOutput(index=i, values=depth, kind="depth", metric=metric, confidence=conf)
        if local_fit is not None and anchored:
            res = [(f.global_residual, f.residual) for f in fields.values()]
            self.last_stats["local_fit"] = {
                "frames": len(fields), "grid": list(local_fit.grid), "blend": blend,
                "weak_geometry_weight": clip_weak, "weak_geometry_kept": kept,
                "weak_geometry_weight_frames": len(weak),
                "residual_global": float(np.median([r[0] for r in res])) if res else None,
                "residual_local": float(np.median([r[1] for r in res])) if res else None}


def parse_fusion(text: str) -> dict[str, bool]:
    """``"local_fit=false,blend=true"`` (the ``--fusion`` flag) -> ``{"local_fit": False, "blend": True}``.

    Keys are :data:`FUSION_KEYS`, values true/false (also 1/0, yes/no); raises InputError naming
    the first bad item."""
    words = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    out: dict[str, bool] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if key not in FUSION_KEYS:
            raise InputError(f"--fusion {text}: unknown option '{key}' (known: {', '.join(FUSION_KEYS)})")
        if not eq or value.strip().lower() not in words:
            raise InputError(f"--fusion {text}: '{item}' must be {key}=true or {key}=false")
        out[key] = words[value.strip().lower()]
    if not out:
        raise InputError(f"--fusion {text!r}: give KEY=true|false, KEY one of {', '.join(FUSION_KEYS)}")
    return out


def fusion_settings(given, default: LocalFieldSettings | None) -> tuple[LocalFieldSettings | None, bool]:
    """``(local fit settings or None, blend)`` from ``context.options["fusion"]`` (see the module docstring)."""
    opts = dict(given or {})
    unknown = sorted(set(opts) - set(FUSION_KEYS))
    if unknown:
        raise InputError(f"fusion options: unknown {unknown} (known: {', '.join(FUSION_KEYS)})")
    for key in opts:
        if not isinstance(opts[key], bool):
            raise InputError(f"fusion options: {key} must be true or false, got {opts[key]!r}")
    local_fit = default if opts.get("local_fit", True) else None
    if local_fit is None and opts.get("local_fit", False):
        local_fit = LocalFieldSettings()
    return local_fit, bool(opts.get("blend", True))


@register_prior("combined", internal=True)
def _factory(arg: str | None) -> DepthPrior:
    parsed = parse_prior_spec(arg or "")
    if not parsed.parts:
        raise InputError(f"--prior '{parsed.text}': a combined prior is 'shape+geometry', e.g. hf:MODEL+mvs")
    return CombinedPrior([create_prior(s) for s in parsed.parts], parsed.text)
