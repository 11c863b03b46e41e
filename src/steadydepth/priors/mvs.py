"""``mvs``: weight-free dense multi-view stereo depth for every frame of a posed video (CPU).

Conventions (see :mod:`steadydepth.types`): frames are uint8 RGB at the processing
resolution; ``context.cameras`` holds the intrinsics at that resolution (OpenCV pixel
centres) and one camera-to-world pose per frame (OpenCV axes), in stream order. Output
values are z-depth in the cameras' units (scene units after SfM, ``metric=False``), float32,
with a confidence in ``[0, 1]``.

Algorithm, per reference frame ``r`` (all at a reduced *work* resolution, see presets):

1. **Source views**: among frames ``r-N .. r+N`` (``search_radius``) with a pose, drop
   near-duplicates (baseline / scene depth below ``min_baseline_ratio``) and views whose
   optical axis turns more than ``max_view_angle_deg``; rank the rest by how close their
   baseline ratio is to ``target_baseline_ratio`` and take ``num_views``, alternating past and
   future frames (occlusions on one side are seen on the other). **Wide baselines**: when at
   least ``wide_min_share`` of the pixels are matched with a confidence below ``wide_below``,
   the frame is swept a second time (steps 2-4, ``wide_planes`` planes) against views chosen
   the same way among frames ``r - wide_radius .. r + wide_radius``, and those weak pixels take
   the second sweep's depth where it is more confident by ``wide_gain``: surfaces far from a
   slowly moving camera (an office behind a desk) have too little parallax in the near views.
   Pixels the near views match are never changed. Off in ``fast`` (``wide_radius = 0``; the
   presets' reaches are in :data:`~steadydepth.priors.mvs_settings.MVS_PRESETS`).
2. **Depth hypotheses**: ``num_planes`` fronto-parallel planes uniform in *inverse* depth over
   a range from the sparse SfM points seen by the frame (``Cameras.points``), else from the
   previous frame's depth, else from a bootstrap sweep whose nearest plane gives a disparity of
   a quarter of the image width on the widest baseline.
3. **Matching cost**, coarse to fine: the source image is warped onto each hypothesis with the
   plane-induced homography ``H = K_s (R + rho t n^T) K_r^-1`` (``n = (0, 0, 1)``,
   ``rho = 1 / depth``, ``X_s = R X_r + t``) using ``cv2.remap``; cost = ``1 - NCC`` over a
   ``(2 r + 1)^2`` box window on grayscale (robust to exposure changes; variances are floored
   so textureless patches score NCC 0, not noise). Per pixel and hypothesis the ``best_k``
   smallest view costs are averaged (occlusion robust), a min filter over the window
   ("shiftable windows") limits foreground fattening, and the volume is filtered with a
   guided filter (reference image as guide, edge-aware aggregation). The full plane sweep
   runs at half the work resolution; at the work resolution each pixel then tests
   ``refine_hypotheses`` inverse depths half a plane apart around the upsampled coarse
   winner, plus three around the nearest and three around the farthest coarse winner within
   ``alt_radius`` coarse pixels (so pixels next to a depth edge can take the other side's
   depth). The winner is refined by a parabola fit through its neighbouring hypotheses.
4. **Matching confidence**: ``clip((NCC - 0.2) / 0.6, 0, 1)`` of the winner times a
   uniqueness term from the coarse sweep, ``clip((c2 - c1) / 0.1, 0, 1)`` with ``c1`` the
   best cost and ``c2`` the lowest *other* local minimum of the pixel's cost curve (1 when
   there is none); zero on textureless patches and where the winner sits on the range's end.
5. **Geometric consistency** (:mod:`steadydepth.consistency.geometric`): each frame's depth is
   checked forward-backward against the raw depths of frames ``r-M .. r+M``
   (``consistency_radius``, kept in a small cache); pixels agreeing with fewer than
   ``min_agree`` views are dropped (occlusions, mismatches, moving objects); in a frame where
   that would keep under ``relax_below`` of the pixels, one agreeing view is enough
   (:func:`~steadydepth.consistency.geometric.confirmed`; a slow pan before a far background).
6. **Completion** (:mod:`steadydepth.consistency.completion`): dropped and unmatched pixels are
   filled by an edge-aware least-squares solve in inverse depth (confidence 0.2; link weights
   never below ``fill_edge_floor``, so the texture edges inside an unmatched textured patch do not cut it off from
   its matched surroundings; the guide colours are first median filtered over
   ``fill_guide_median`` (odd) pixels, which removes thin texture lines). Then **planar
   completion** (:mod:`steadydepth.consistency.planar`, ``planar_scale > 0``): the image is
   cut into one-coloured regions, and in a region whose matched pixels lie on one plane
   (within ``planar_tol`` in disparity for ``planar_min_inliers`` of them, spread over the
   region) the filled pixels take that plane (walls, floors, cabinet fronts that touch the
   image border or another surface, which the harmonic fill bends towards); on in ``balanced``,
   off in ``fast`` and ``fine`` (``planar_scale = 0``; each preset's values are in
   :data:`~steadydepth.priors.mvs_settings.MVS_PRESETS`). Depth edges
   are then snapped onto colour edges by a colour-weighted median in inverse depth over
   ``(2 snap_radius + 1)^2`` windows, only where the window spans more than ``snap_ratio`` in
   disparity (:func:`~steadydepth.consistency.completion.snap_depth_edges`; removes part of the NCC
   window's foreground fattening), and depth is upsampled to the processing resolution
   bilinearly in inverse depth *without blending across depth edges*: where the four taps
   disagree by more than 10 % only the near or the far taps are used, whichever holds the
   colour closest to the output pixel's (a blend of foreground and background is no surface
   and fails delta1). Pixels the snapping moves get the fill confidence. Optionally
   (``occlusion_radius > 0``, off by default) holes larger than ``occlusion_min_area`` (a
   fraction of the work-resolution pixels) are filled from their far boundary (occluded
   background, links to nearer boundary pixels weighted by ``occlusion_weight``)).
7. **Temporal blend**: filled pixels (confidence at most ``fill_confidence``) are averaged with
   the previous frame's final depth reprojected through the current depth, where the two
   agree within 1.5 px and 15 % (``temporal_blend`` = weight of the previous frame); matched
   pixels are never changed.
8. **Edge test** (:func:`edge_test`, at the processing resolution, after upsampling): pixels
   on the near side of a depth edge (disparity span above ``edge_test_ratio`` within
   ``edge_test_radius`` *work* pixels) compare the photometric cost of their depth with that
   of the farthest depth around them, over small ``(2 edge_test_window + 1)^2`` zero-mean
   windows against frames ``r-2 .. r+2`` (``EDGE_TEST_SPAN``), and take the far depth when it is clearly cheaper
   (``edge_test_margin``); ``edge_test_iterations`` passes. It removes much of the
   foreground fattening that the 7x7 NCC windows leave and the geometric check cannot see
   (fattened neighbours agree with each other). Moved pixels get the fill confidence.

Resuming (``context.first_position > 0``): the stream starts at that position; a start
:meth:`MVSPrior.frames_before` frames before a position gives that position the output of a
run from the clip's start (up to the state carried from frame to frame, see there).

Streaming: frames are consumed ``N + M`` ahead of the output (``N`` the larger of
``search_radius`` and ``wide_radius``, :attr:`MVSSettings.source_window`); matching (steps 1-4)
holds at most ``2 N + 1`` frames (``max_buffered`` records the high-water mark) and the later
steps the raw depths and images of ``o - max(M, EDGE_TEST_SPAN) .. o + M`` (``max_cached_depths``), so memory
is flat in clip length. Matching runs in a worker thread a couple of frames ahead of the later
steps (:func:`~steadydepth.read_ahead.read_ahead`; on one core, in the caller's thread); each
part keeps its order, so the output does not depend on the threads.

No parallax: if ``cameras.warnings`` holds a ``"no-parallax:"`` entry or no two cameras within
the source window are farther apart than ``1e-4`` of the scene depth (median depth of the
sparse points, else 1 scene unit), depth cannot be recovered from the video; every frame then gets
depth 0 (invalid) with confidence 0, and one warning says why (``Cameras.no_parallax``: static
camera, pure rotation, or structure from motion built no model) and what to do. A run whose
frames all lack depth ends with :class:`~steadydepth.errors.NoDepthError` (exit code 7).

Frames without a pose get a pose interpolated between the nearest posed frames (linear in
position, spherical in rotation) or copied from the nearest one; a warning says how many.
Frames whose pose structure from motion copied (``Cameras.pose_source(i) == "copied"``: before
the first / after the last registered frame) get depth 0 (invalid) and serve as no source view.

Presets (``context.preset``): ``fast`` (work long side 192, 32 planes, 3 views), ``balanced``
(240, 48, 4), ``fine`` (320, 64, 4). ``context.options["mvs"]`` (a dict) overrides any field
of :class:`MVSSettings`. Short clips (``context.num_frames`` at most ``short_clip_frames``,
12) are matched at a work long side of at least ``short_clip_long_side`` (640, capped at the
processing resolution): a few frames give little baseline, so the disparities in pixels must
come from resolution; the clip is short, so the higher per-frame cost stays
small in total.

The measurements behind these defaults (and the alternatives tried) are in
``benchmarks/NOTES.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import asdict, fields, replace

import cv2
import numpy as np

from ..consistency.completion import complete_depth, snap_depth_edges, upsample_depth
from ..consistency.geometric import confirmed, geometric_consistency
from ..consistency.planar import PlanarSettings, planar_fill
from ..errors import InputError, ReconstructionError
from ..geometry import interpolate_poses, project_points
from ..options import preset_name
from ..read_ahead import read_ahead, useful_ahead
from ..types import Cameras, Frame, Intrinsics, PriorOutput
from .base import DepthPrior, PriorContext, register_prior
from .mvs_edges import edge_test
from .mvs_settings import MVS_PRESETS, NO_PARALLAX_RATIO, MVSSettings
from .mvs_sweep import plane_sweep, select_sources

__all__ = ["MVSPrior"]

log = logging.getLogger(__name__)

#: the edge test (step 8) compares frame ``o`` with the frames ``o - EDGE_TEST_SPAN .. o + EDGE_TEST_SPAN``
EDGE_TEST_SPAN = 2


# --------------------------------------------------------------------------- the prior


def _to_gray(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    img = image
    if img.shape[1] != size[0] or img.shape[0] != size[1]:
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


def _work_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    s = min(1.0, long_side / float(max(width, height)))
    return max(16, int(round(width * s))), max(16, int(round(height * s)))


class MVSPrior(DepthPrior):
    """Dense multi-view stereo on a posed video (see the module docstring)."""

    name = "mvs"
    needs_cameras = True

    def __init__(self, settings: MVSSettings | None = None) -> None:
        self._fixed = settings
        self.settings = settings or MVS_PRESETS["balanced"]
        #: most frames held at once during the last :meth:`process` (memory bound check)
        self.max_buffered = 0
        #: most raw depth maps held at once during the last :meth:`process`
        self.max_cached_depths = 0
        self.no_parallax = False
        #: ``(width, height)`` of the work resolution of the last :meth:`process` (None before)
        self.work_size: tuple[int, int] | None = None

    def describe(self) -> dict:
        out = {"name": self.name, "settings": asdict(self.settings)}
        if self._fixed is None:
            out["preset"] = "the run's preset (settings shown are those of the last run, else balanced)"
        return out

    # ---------------------------------------------------------------- setup
    def _resolve_settings(self, context: PriorContext) -> MVSSettings:
        if self._fixed is not None:
            s = self._fixed
        else:
            s = MVS_PRESETS.get(context.preset, MVS_PRESETS["balanced"])
        overrides = dict(context.options.get("mvs", {}) or {})
        if overrides:
            names = {f.name for f in fields(MVSSettings)}
            bad = sorted(set(overrides) - names)
            if bad:
                raise InputError(f"unknown mvs option(s) {bad}: choose from {sorted(names)}")
            s = replace(s, **overrides)
        return s

    @staticmethod
    def _scene_depth_from_points(cameras: Cameras, pose: np.ndarray, intr: Intrinsics,
                                 position: int = 0) -> tuple[float, float, float] | None:
        """Median depth and 1/99 % inverse-depth percentiles of sparse points (of frame
        ``position``'s shot) seen by ``pose``."""
        pts = cameras.points_of_shot(position)
        if pts is None or len(pts) < 20:
            return None
        u, v, z = project_points(pts, pose, intr, min_depth=1e-9)
        if z.size < 20:
            return None
        inside = (u >= -0.5) & (u <= intr.width - 0.5) & (v >= -0.5) & (v <= intr.height - 0.5)
        if inside.sum() < 20:
            return None
        zz = z[inside]
        rho = 1.0 / zz
        return float(np.median(zz)), float(np.percentile(rho, 1)), float(np.percentile(rho, 99))

    def _check_parallax(self, cameras: Cameras, poses: list[np.ndarray | None], scene_depth: float) -> bool:
        if any(str(wn).startswith("no-parallax:") for wn in cameras.warnings):
            return False
        centres = [p[:3, 3] for p in poses if p is not None]
        if len(centres) < 2:
            return False
        C = np.asarray(centres)
        R = self.settings.source_window
        best = 0.0
        for i in range(len(C)):
            d = np.linalg.norm(C[i + 1 : i + 1 + R] - C[i], axis=1)
            if d.size:
                best = max(best, float(d.max()))
        return best / max(scene_depth, 1e-12) >= NO_PARALLAX_RATIO

    def frames_before(self, context: PriorContext) -> int:
        """Raw depth at ``p`` reads frames ``p +- N`` (:attr:`MVSSettings.source_window`), the
        consistency check at ``p`` the raw depths ``p +- M``, so ``N + M`` frames; two more for what
        is carried from frame to frame (the temporal blend of filled pixels, the depth range where
        no SfM point is seen), which makes the output close to, not bit-equal with, a run from the
        clip's start."""
        s = self._resolve_settings(context)
        return s.source_window + min(s.consistency_radius, s.search_radius) + 2

    # ---------------------------------------------------------------- main loop
    # Long on purpose: the streaming schedule (read N + M ahead, raw depth, consistency, release);
    # the per-frame work is in _raw_depth and _finish.
    def process(self, frames: Iterable[Frame], context: PriorContext) -> Iterator[PriorOutput]:
        cameras = context.cameras
        if cameras is None:
            raise ReconstructionError("the mvs prior needs camera poses (structure from motion did not run)")
        self.settings = s = self._resolve_settings(context)
        self.max_buffered = 0
        self.max_cached_depths = 0
        poses = list(cameras.poses)
        filled = sum(p is None for p in poses)
        if filled == len(poses):
            filled = 0  # nothing to interpolate from
        else:
            poses = interpolate_poses(poses)
        if filled:
            log.warning("mvs: %d of %d frames have no camera pose; using poses interpolated from the "
                        "nearest posed frames", filled, len(poses))
        copied = [i for i in range(len(poses)) if cameras.pose_source(i) == "copied"]
        if copied:
            log.warning("mvs: %d frame(s) have a copied, not measured, pose: their depth is left invalid (0)",
                        len(copied))
        all_unposed = all(p is None for p in poses)

        first_pose = next((p for p in poses if p is not None), None)
        pts_info = self._scene_depth_from_points(cameras, first_pose, cameras.intrinsics) if first_pose is not None else None
        scene_depth0 = pts_info[0] if pts_info else 1.0
        self.no_parallax = (not all_unposed) and not self._check_parallax(cameras, poses, scene_depth0)
        if all_unposed:
            log.warning("mvs: no frame has a camera pose; depth cannot be computed (every frame gets "
                        "depth 0 with confidence 0)")
        if self.no_parallax:
            if cameras.no_parallax:
                why = "structure from motion gave no parallax (see its no-parallax warning)"
            elif sum(p is not None for p in poses) < 2:
                why = "fewer than two frames have a camera pose: use a learned prior (--prior hf:MODEL)"
            else:
                why = ("the camera centres do not move (no parallax): use a learned prior (--prior hf:MODEL) "
                       "for such clips")
            log.warning("mvs: no multi-view depth (every frame gets depth 0, invalid): %s", why)
        first = context.first_position  # a resumed run starts mid-clip (frames_before)
        if all_unposed or self.no_parallax:
            for i, frame in enumerate(frames, start=first):
                self.max_buffered = max(self.max_buffered, 1)
                h, w = frame.image.shape[:2]
                yield PriorOutput(index=i, values=np.zeros((h, w), np.float32), kind="depth",
                                  metric=False, confidence=np.zeros((h, w), np.float32))
            return

        state = {"scene_depth": pts_info[0] if pts_info else None, "rho_range": None, "K": None, "intr": None,
                 "wsize": None, "psize": None, "num_frames": context.num_frames}
        # matching runs one stage ahead in a worker thread (its next frames overlap this frame's
        # consistency check and completion); each stage keeps its own order, so results are the same
        matched = read_ahead(self._matched(frames, poses, state, cameras, first), ahead=useful_ahead(),
                             name="steadydepth-mvs-matching")
        M = min(s.consistency_radius, s.search_radius)
        keep = max(M, EDGE_TEST_SPAN)  # the consistency check reads raw depths o-M .. o+M, the edge test images
        held: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # i -> (rgb, raw depth, match confidence)
        next_out = first
        for r, rgb, depth, conf in matched:
            held[r] = (rgb, depth, conf)
            self.max_cached_depths = max(self.max_cached_depths, len(held))
            while next_out <= r - M:
                yield self._finish(next_out, held, poses, state, M)
                next_out += 1
                for j in [j for j in held if j < next_out - keep]:
                    del held[j]
        while next_out in held:  # the last M frames
            yield self._finish(next_out, held, poses, state, M)
            next_out += 1

    def _matched(self, frames: Iterable[Frame], poses: list, state: dict, cameras: Cameras,
                 first: int) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """``(position, rgb, raw depth, match confidence)`` of every frame, in order; a frame's raw
        depth (:meth:`_raw_depth`) is computed once the ``source_window`` frames after it are read."""
        N = self.settings.source_window
        buf: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # i -> (rgb processing res, gray work res)
        next_raw = first
        last = first - 1

        def raw(r: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
            return (r, buf[r][0], *self._raw_depth(r, buf, poses, last, state, cameras))

        for i, frame in enumerate(frames, start=first):
            img = np.asarray(frame.image)
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise InputError(f"mvs: frame {i} must be uint8 RGB (H, W, 3), got {img.dtype} {img.shape}")
            if i >= len(poses):
                raise ReconstructionError(
                    f"mvs: frame {i} has no camera (the cameras cover {len(poses)} frames)")
            if state["intr"] is None:
                self._setup_sizes(state, cameras.intrinsics, img.shape[1], img.shape[0])
            buf[i] = (img, _to_gray(img, state["wsize"]))
            last = i
            self.max_buffered = max(self.max_buffered, len(buf))
            while next_raw <= i - N:
                yield raw(next_raw)
                next_raw += 1
                for j in [j for j in buf if j < next_raw - N]:
                    del buf[j]
        while next_raw <= last:
            yield raw(next_raw)
            next_raw += 1

    @staticmethod
    def _warn_once(state: dict, message: str) -> None:
        """Log the first such problem as a warning, later ones at debug level (long static spans)."""
        if state.get("warned"):
            log.debug(message)
        else:
            state["warned"] = True
            log.warning("%s (further such messages at debug level)", message)

    def _setup_sizes(self, state: dict, intr: Intrinsics, width: int, height: int) -> None:
        if (intr.width, intr.height) != (width, height):
            log.debug("mvs: frames are %dx%d, intrinsics %dx%d; rescaling intrinsics",
                      width, height, intr.width, intr.height)
            intr = intr.scaled(width, height)
        long_side = self.settings.work_long_side
        nf = state.get("num_frames")
        if nf is not None and nf <= self.settings.short_clip_frames:
            long_side = max(long_side, self.settings.short_clip_long_side)
            log.debug("mvs: short clip (%d frames): work long side %d", nf, long_side)
        wsize = _work_size(width, height, long_side)
        state["psize"] = (width, height)
        state["wsize"] = wsize
        self.work_size = wsize
        state["intr"] = intr.scaled(*wsize)
        state["K"] = state["intr"].K
        state["K_proc"] = intr.K

    def _raw_depth(self, r: int, buf: dict, poses: list, last: int, state: dict,
                   cameras: Cameras) -> tuple[np.ndarray, np.ndarray]:
        """Plane-sweep depth of frame ``r`` at work resolution (no consistency, no completion):
        the sweep against the views within ``search_radius``, then, where that one's confidence is
        below ``wide_below``, the wide-baseline sweep's (views within ``wide_radius``) where it is
        more confident by ``wide_gain``."""
        s = self.settings
        wsize = state["wsize"]
        zero = np.zeros((wsize[1], wsize[0]), np.float32)
        if cameras.pose_source(r) == "copied":  # not measured: its depth would be made up
            return zero, zero.copy()
        shot = cameras.shot_of(r)  # frames of another shot live in another world
        cand = {j: poses[j] for j in range(max(0, r - s.source_window),
                                           min(last, r + s.source_window) + 1)
                if j in buf and poses[j] is not None and cameras.pose_source(j) != "copied"
                and cameras.shot_of(j) == shot}
        pts = self._scene_depth_from_points(cameras, poses[r], state["intr"], r)
        near = {j: p for j, p in cand.items() if abs(j - r) <= s.search_radius}
        swept = self._sweep(r, near, buf, poses, state, pts, s.num_planes, update_state=True)
        depth, conf = swept if swept is not None else (zero, zero.copy())
        if s.wide_radius > s.search_radius:
            low = conf < s.wide_below
            if low.mean() >= s.wide_min_share:
                wide = self._sweep(r, cand, buf, poses, state, pts, s.wide_planes, update_state=False)
                if wide is not None:
                    take = low & (wide[1] > conf + s.wide_gain)
                    depth = np.where(take, wide[0], depth)
                    conf = np.where(take, wide[1], conf)
        if swept is None and not (conf > 0).any():
            self._warn_once(state, f"mvs: frame {r} has no source view with a different camera position")
        depth = np.where(conf >= s.raw_min_confidence, depth, 0.0).astype(np.float32)
        return depth, conf.astype(np.float32)

    def _sweep(self, r: int, cand: dict, buf: dict, poses: list, state: dict,
               pts: tuple[float, float, float] | None, num_planes: int,
               update_state: bool) -> tuple[np.ndarray, np.ndarray] | None:
        """:func:`plane_sweep` of frame ``r`` against views chosen among ``cand`` (index -> pose),
        ``num_planes`` planes over the sparse points' inverse-depth range ``pts`` (else the
        previous frame's, else a bootstrap sweep's); None when no candidate moved."""
        s = self.settings
        K, intr, wsize = state["K"], state["intr"], state["wsize"]
        pose_r = poses[r]
        scene_depth = pts[0] if pts else state["scene_depth"]
        srcs = select_sources(r, cand, scene_depth, s)
        if not srcs:
            return None
        ref = buf[r][1]
        src_imgs = [buf[j][1] for j in srcs]
        src_poses = [poses[j] for j in srcs]

        if pts:
            lo, hi = 0.6 * pts[1], 1.5 * pts[2]
        elif state["rho_range"] is not None:
            lo, hi = state["rho_range"]
        else:
            # bootstrap: nearest plane = a quarter image width of disparity on the widest baseline
            base = max(float(np.linalg.norm(poses[j][:3, 3] - pose_r[:3, 3])) for j in srcs)
            hi = 0.25 * wsize[0] / (intr.fx * max(base, 1e-12))
            lo = hi / 200.0
            d0, c0 = plane_sweep(ref, src_imgs, K, pose_r, src_poses, np.linspace(lo, hi, num_planes), s)
            ok = c0 > 0.3
            if ok.sum() > 50:
                rr = 1.0 / d0[ok]
                lo, hi = 0.6 * float(np.percentile(rr, 1)), 1.5 * float(np.percentile(rr, 99))
                scene_depth = float(np.median(d0[ok]))
                srcs = select_sources(r, cand, scene_depth, s)
                src_imgs = [buf[j][1] for j in srcs]
                src_poses = [poses[j] for j in srcs]
            log.debug("mvs: bootstrap inverse-depth range for frame %d: %.4g .. %.4g", r, lo, hi)
        depth, conf = plane_sweep(ref, src_imgs, K, pose_r, src_poses, np.linspace(lo, hi, num_planes), s)
        ok = conf > 0.3
        if update_state and ok.sum() > 50:
            rr = 1.0 / depth[ok]
            state["rho_range"] = (0.6 * float(np.percentile(rr, 1)), 1.5 * float(np.percentile(rr, 99)))
            state["scene_depth"] = float(np.median(depth[ok]))
        return depth, conf

    def _finish(self, o: int, held: dict, poses: list, state: dict, M: int) -> PriorOutput:
        """Consistency check (against the raw depths of ``o - M .. o + M`` in ``held``), completion
        and upsampling of frame ``o``; ``held``: position -> (rgb, raw depth, match confidence)."""
        s = self.settings
        rgb, depth, conf = held[o]
        wsize = state["wsize"]
        neigh = [(held[j][1], poses[j]) for j in range(o - M, o + M + 1) if j != o and j in held]
        if neigh and (depth > 0).any():
            res = geometric_consistency(depth, state["K"], poses[o], neigh, pix_tol=s.pix_tol, rel_tol=s.rel_tol)
            need = min(s.min_agree, len(neigh))
            keep = confirmed(res.num_agree, need, s.relax_below)
            geo = np.clip(res.num_agree / float(max(need, 1)), 0.0, 1.0)
            depth = np.where(keep, res.fused_depth, 0.0).astype(np.float32)
            conf = np.where(keep, conf * geo, 0.0).astype(np.float32)
        small = cv2.resize(rgb, wsize, interpolation=cv2.INTER_AREA) if rgb.shape[:2] != wsize[::-1] else rgb
        if (depth > 0).any():
            guide = cv2.medianBlur(small, s.fill_guide_median) if s.fill_guide_median > 1 else small
            depth, conf = complete_depth(depth, conf, guide, fill_confidence=s.fill_confidence,
                                         edge_floor=s.fill_edge_floor,
                                         occlusion_radius=s.occlusion_radius,
                                         occlusion_weight=s.occlusion_weight,
                                         occlusion_min_area=int(s.occlusion_min_area * depth.size))
            if s.planar_scale > 0:
                depth, pstats = planar_fill(depth, conf, small, weak_confidence=s.fill_confidence, settings=PlanarSettings(
                    scale=s.planar_scale, tol=s.planar_tol, min_inliers=s.planar_min_inliers,
                    min_spread=s.planar_min_spread, max_change=s.planar_max_change))
                log.debug("mvs: frame %d: planar fill %s", o, pstats)
            if s.snap_radius > 0:
                snapped = snap_depth_edges(depth, small, radius=s.snap_radius, sigma_color=s.snap_sigma,
                                           iterations=s.snap_iterations, edge_ratio=s.snap_ratio)
                moved = np.abs(snapped - depth) > 0.01 * depth  # took the other side's depth
                conf = np.where(moved, np.minimum(conf, s.fill_confidence), conf).astype(np.float32)
                depth = snapped
            prev = state.get("prev_final")
            if s.temporal_blend > 0 and prev is not None and prev[0] == o - 1:
                depth = self._temporal_blend(depth, conf, prev[1], state["K"], poses[o], poses[o - 1])
            state["prev_final"] = (o, depth)
            depth, conf = upsample_depth(depth, conf, rgb)
            if s.edge_test_radius > 0:
                depth, conf = self._edge_test(o, depth, conf, held, poses, state)
        elif state.get("prev_final") is not None:
            # nothing matched (e.g. the camera stopped for longer than the search window):
            # repeat the last good depth with confidence 0 rather than inventing geometry
            self._warn_once(state, f"mvs: frame {o}: no pixel could be matched; repeating the depth of "
                                   f"frame {state['prev_final'][0]} with confidence 0")
            depth, _ = upsample_depth(state["prev_final"][1], np.zeros(wsize[::-1], np.float32), rgb)
            conf = np.zeros(depth.shape, np.float32)
        else:
            self._warn_once(state, f"mvs: frame {o}: no pixel could be matched; depth 0 with confidence 0")
            h, w = rgb.shape[:2]
            depth, conf = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
        return PriorOutput(index=o, values=depth.astype(np.float32), kind="depth", metric=False,
                           confidence=np.clip(conf, 0, 1).astype(np.float32))


    def _edge_test(self, o: int, depth: np.ndarray, conf: np.ndarray, held: dict, poses: list,
                   state: dict) -> tuple[np.ndarray, np.ndarray]:
        """:func:`edge_test` at the processing resolution against the frames within ``EDGE_TEST_SPAN`` of ``o`` still held."""
        s = self.settings
        srcs = [j for j in range(o - EDGE_TEST_SPAN, o + EDGE_TEST_SPAN + 1)
                if j != o and j in held and poses[j] is not None]
        if not srcs:
            return depth, conf
        gray = [_to_gray(held[j][0], state["psize"]) for j in [o, *srcs]]
        radius = max(1, round(s.edge_test_radius * state["psize"][0] / state["wsize"][0]))
        for _ in range(s.edge_test_iterations):
            depth, moved = edge_test(depth, gray[0], gray[1:], state["K_proc"], poses[o], [poses[j] for j in srcs],
                                     radius=radius, window=s.edge_test_window, margin=s.edge_test_margin,
                                     best_k=s.best_k, edge_ratio=s.edge_test_ratio)
            conf = np.where(moved, np.minimum(conf, s.fill_confidence), conf).astype(np.float32)
        return depth, conf

    def _temporal_blend(self, depth: np.ndarray, conf: np.ndarray, prev: np.ndarray, K: np.ndarray,
                        pose: np.ndarray, pose_prev: np.ndarray) -> np.ndarray:
        """Blend *filled* pixels with the previous frame's final depth seen through the current depth.

        Only pixels with confidence at most ``fill_confidence`` change: where the previous
        frame's depth, reprojected into this frame, lands within 1.5 px and 15 % of the fill,
        the fill becomes ``(1 - a) * fill + a * previous`` with ``a = temporal_blend``. Matched
        pixels never change, so errors cannot accumulate on them; fills become a running
        average over frames (less flicker where the video itself says nothing).
        """
        from ..consistency.geometric import reproject_check

        s = self.settings
        pix_err, rel_err, back, seen = reproject_check(depth, prev, K, pose, pose_prev)
        use = seen & (conf <= s.fill_confidence + 1e-6) & (pix_err < 1.5) & (rel_err < 0.15)
        a = np.float32(s.temporal_blend)
        out = depth.copy()
        out[use] = (1 - a) * depth[use] + a * back[use]
        return out


@register_prior("mvs")
def _factory(arg: str | None) -> MVSPrior:
    """``--prior mvs`` or ``--prior mvs:PRESET`` (``fast`` / ``balanced`` / ``fine``)."""
    if not arg:
        return MVSPrior()
    arg = preset_name(arg)
    if arg not in MVS_PRESETS:
        raise InputError(f"--prior mvs:{arg}: unknown preset; choose one of {', '.join(MVS_PRESETS)}")
    return MVSPrior(MVS_PRESETS[arg])
