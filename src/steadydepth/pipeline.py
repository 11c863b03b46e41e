"""The end-to-end job: frames -> cameras -> per-frame depth -> consistency -> outputs.

:func:`estimate` is the public entry point (the CLI is a thin layer over it). Frames
are decoded lazily and every result is written as soon as its frame is done, so memory
stays flat in clip length; the returned :class:`DepthVideo` reads frames back lazily.
"""

from __future__ import annotations

import logging
import platform
import shutil
import tempfile
import time
import weakref
from contextlib import contextmanager
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .cameras.lens import RadialLens, lens_for
from .cameras.sfm_settings import SFM_MAX_SIDE
from .consistency.clip_stage import ClipAlignmentStage
from .consistency.sparse_check import SparseAgreement
from .consistency.temporal import TemporalFusion, TemporalSettings
from .errors import InputError, NoDepthError, ReconstructionError
from .geometry import resize_depth
from .interrupts import process_info, reclaim_sigterm, sigterm_as_interrupt
from .io.disk_space import check_free_space, depth_output_bytes, sfm_scratch_bytes
from .io.frames import FrameSource, open_source, processing_size, resize_frame
from .options import RunOptions, parse_metric_hint
from .outputs import OutputFolder
from .priors.base import PriorContext, create_prior
from .image_stash import ImageStash, Recorder
from .read_ahead import one_blas_thread, read_ahead, useful_ahead
from .progress import LoggedWarnings, Progress, peak_memory_mb
from .resume import ResumePlan, RunState, announce, plan_resume, prior_start, run_identity
from .types import Cameras, DepthFrame, Frame, Intrinsics, PriorOutput
from .validation import check_run

__all__ = ["estimate", "DepthVideo"]

log = logging.getLogger(__name__)


@dataclass
class DepthVideo:
    """Depth of a whole clip, stored in an output folder and read back frame by frame.

    Iterating yields :class:`~steadydepth.types.DepthFrame` (z-depth float32, 0 = invalid,
    confidence in [0, 1], camera-to-world pose or None). ``units`` is ``"metres"`` or
    ``"scene"``.
    """

    folder: Path
    num_frames: int
    units: str
    frame_indices: list[int]
    cameras: Cameras | None = None
    intrinsics: Intrinsics | None = None
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return self.num_frames

    def __getitem__(self, i: int) -> DepthFrame:
        if not -self.num_frames <= i < self.num_frames:
            raise IndexError(f"frame {i} out of range (clip has {self.num_frames} frames)")
        i %= self.num_frames
        out = OutputFolder(self.folder)
        depth, confidence = out.read_frame(i)
        pose = self.cameras.poses[i] if self.cameras is not None and i < len(self.cameras.poses) else None
        return DepthFrame(index=self.frame_indices[i], depth=depth, confidence=confidence, units=self.units, pose=pose)

    def __iter__(self) -> Iterator[DepthFrame]:
        for i in range(self.num_frames):
            yield self[i]

    def to_array(self) -> np.ndarray:
        """All depth maps as one (T, H, W) array (loads the whole clip: short clips only)."""
        return np.stack([f.depth for f in self])

    def save(self, folder: str | Path, *, overwrite: bool = False) -> Path:
        """Copy the run's outputs to ``folder`` (refuses a folder holding a run unless ``overwrite``)."""
        target = OutputFolder(folder, overwrite=overwrite)
        target.prepare()
        for entry in self.folder.iterdir():
            if entry.name.startswith("."):
                continue
            dest = target.root / entry.name
            shutil.copytree(entry, dest) if entry.is_dir() else shutil.copy2(entry, dest)
        target.discard_previous()
        return target.root


class _ResizedFrames:
    """Re-iterable view of a source at the processing resolution, undistorted once ``lens`` is set."""

    def __init__(self, source: FrameSource, max_res: int | None) -> None:
        self.source = source
        self.max_res = max_res
        self.size = processing_size(source.width, source.height, max_res)
        self.lens: RadialLens | None = None

    def __iter__(self) -> Iterator[Frame]:
        return self.iter_from(0, [])

    def iter_from(self, first: int, skipped: list[int]) -> Iterator[Frame]:
        """The frames from stream position ``first`` on; the source indices of those before it are
        appended to ``skipped`` (decoded, not resized)."""
        for position, frame in enumerate(self.source):
            if position < first:
                skipped.append(frame.index)
                continue
            image = resize_frame(frame.image, self.max_res)
            if self.lens is not None:
                image = self.lens.undistort_image(image)
            yield Frame(index=frame.index, image=image, time=frame.time, name=frame.name)


def _to_depth(out: PriorOutput) -> tuple[np.ndarray, np.ndarray]:
    """z-depth and confidence of a depth-kind prior output (invalid -> 0)."""
    values = np.asarray(out.values, dtype=np.float32)
    valid = np.isfinite(values) & (values > 0)
    depth = np.where(valid, values, 0.0).astype(np.float32)
    conf = valid.astype(np.float32) if out.confidence is None else np.where(valid, out.confidence, 0.0)
    return depth, conf.astype(np.float32)


def _versions() -> dict:
    import importlib.metadata as md

    versions = {"steadydepth": __version__, "python": platform.python_version()}
    for pkg in ("numpy", "opencv-python-headless", "av", "torch", "pycolmap", "transformers"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return versions


class _DepthWriter:
    """Writes each finished frame at the output size: the metric-hint scale (``depth=M`` fixes
    it on the first frame with depth), the resize to ``size = (width, height)`` and every format of the
    run. Counts frames and clipped png16 pixels; ``metric`` is the prior's flag once known.
    With a ``lens`` the depth arrives on its pinhole grid and is written on the input pixels."""

    def __init__(self, out: OutputFolder, opts: RunOptions, hint: tuple[str, float] | None, scale: float,
                 units: str, size: tuple[int, int]) -> None:
        self.out, self.opts, self.hint, self.size = out, opts, hint, size
        self.scale, self.units = scale, units
        self.count = 0
        self.clipped = 0
        self.valid = 0  # valid (depth > 0) pixels written
        self.empty: list[int] = []  # positions of the frames written without any valid pixel
        self.hint_applied = False
        self.metric: bool | None = None
        self.lens: RadialLens | None = None
        self.sparse_check: SparseAgreement | None = None  # depth in the cameras' units, on their pinhole grid
        #: a resumed run: positions below this are finished on disk and not written again
        self.skip_below = 0
        #: records the scale and units in the resume state when they change
        self.state: RunState | None = None
        self._recorded: tuple | None = None

    def resume_from(self, plan: ResumePlan, start: int) -> None:
        """Continue the counts and the scale of the interrupted run ``plan``; writing starts at ``start``."""
        self.count, self.skip_below = start, plan.finished
        self.valid, self.clipped, self.empty = plan.valid, plan.clipped, list(plan.empty)
        if plan.scale is not None:
            self.scale, self.units, self.hint_applied = plan.scale, plan.units, plan.hint_applied
            self._recorded = (self.scale, self.units, self.hint_applied)

    def write(self, depth: np.ndarray, conf: np.ndarray) -> None:
        if self.count < self.skip_below:  # finished by the run this one resumes: kept as it is
            self.count += 1
            return
        if self.sparse_check is not None:  # (a resumed run checks the frames it writes)
            self.sparse_check.add(self.count, depth)
        if self.lens is not None:
            depth, conf = self.lens.distort_depth(depth, conf)
        if self.hint is not None and self.hint[0] == "depth" and not self.hint_applied and (depth > 0).any():
            # the first frame with depth fixes the scale (frames before it hold no depth to scale)
            self.scale, self.units = self.hint[1] / float(np.median(depth[depth > 0])), "metres"
            self.hint_applied = True
        if self.scale != 1.0:
            depth = depth * np.float32(self.scale)
        depth, conf = resize_depth(depth, conf, self.size)
        valid = int(np.count_nonzero(depth > 0))
        self.valid += valid
        if not valid:
            self.empty.append(self.count)
        self.clipped += self.out.write_frame(self.count, depth, conf, formats=self.opts.formats,
                                             png_scale=self.opts.png_scale)
        self.count += 1
        if self.state is not None and self._recorded != (self.scale, self.units, self.hint_applied):
            self._recorded = (self.scale, self.units, self.hint_applied)
            self.state.update(scale=self.scale, units=self.units, hint_applied=self.hint_applied)


def _empty_frames_warning(frames: list[int], count: int, prior: str) -> str:
    """The run.json warning for the frames (input frame numbers, ascending) written without any valid pixel."""
    spans: list[list[int]] = []
    for f in frames:
        if spans and f == spans[-1][1] + 1:
            spans[-1][1] = f
        else:
            spans.append([f, f])
    listed = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans[:8]) + (", ..." if len(spans) > 8 else "")
    return (f"depth: {len(frames)} of {count} frames hold no valid depth (frames {listed}): the '{prior}' prior "
            "recovered nothing there (for a video's geometry: no other view with a different camera position, "
            "or nothing matched); their files hold depth 0 = invalid")


def _output_intrinsics(cameras: Cameras | None, opts: RunOptions, size: tuple[int, int]) -> Intrinsics | None:
    """Intrinsics at the output size: the cameras', else the user's, else from ``--fov``, else None."""
    out_w, out_h = size
    if cameras is not None:
        return cameras.intrinsics.scaled(out_w, out_h)
    if opts.intrinsics is not None:
        return opts.intrinsics.scaled(out_w, out_h)
    if opts.hfov_deg is not None:
        return Intrinsics.from_fov(opts.hfov_deg, out_w, out_h)
    return None


def _write_clip_outputs(out: OutputFolder, opts: RunOptions, source: FrameSource, count: int, size: tuple[int, int],
                        units: str, frame_indices: list[int], cameras: Cameras | None,
                        intr_out: Intrinsics | None, state: RunState, done: set[str]) -> dict:
    """The outputs written at the end of a run: depth.npz, cameras, points, visualisation, the fused
    scene; those in ``done`` (written before the run being resumed was interrupted) are skipped, each
    one finished is recorded in ``state``. Returns what goes to ``run.json`` besides (``scene``)."""
    from .exports import write_cameras, write_points, write_visualisation

    out_w, out_h = size
    extras: dict = {}

    def scene() -> None:
        from .scene.fused_scene import write_scene

        extras["scene"] = write_scene(out, source, count, intr_out, cameras, units, progress_bar=opts.progress_bar)

    steps = {
        "depth.npz": (opts.npz, lambda: out.write_npz(count, (out_h, out_w), units=units, frame_indices=frame_indices,
                                                      cameras=cameras, intrinsics=intr_out)),
        "cameras": (True, lambda: write_cameras(out, cameras, intr_out, frame_indices, units)),
        "points": (opts.points, lambda: write_points(out, source, count, intr_out, cameras,
                                                     stride=opts.points_stride)),
        "vis": (opts.vis, lambda: write_visualisation(out, source, count, fps=source.fps or 24.0, cmap=opts.cmap,
                                                      side_by_side=opts.side_by_side)),
        "scene": (opts.scene, scene),
    }
    for name, (wanted, write) in steps.items():
        if wanted and name not in done:
            write()
            state.mark_output(name)
    return extras


# Long on purpose: the run reads top to bottom as its stages (cameras, depth, clip alignment,
# outputs, run.json); each stage body is a helper above, what remains is the hand-over between them.
def estimate(
    src: str | Path | Sequence[np.ndarray] | np.ndarray,
    output_dir: str | Path | None = None,
    options: RunOptions | None = None,
    **overrides,
) -> DepthVideo:
    """Estimate depth for every frame of a video, an image folder/glob, or in-memory frames.

    ``options`` (or keyword overrides of :class:`~steadydepth.options.RunOptions` fields)
    choose the prior, preset, frame range and outputs. Every option and the input are
    checked before the output folder is touched; a run it replaces (``overwrite``) is put
    back if this one fails before its first frame. An interrupted run of the same input and
    options in ``output_dir`` is continued (:mod:`steadydepth.resume`). Results go to ``output_dir`` as they
    finish; the returned :class:`DepthVideo` reads them back lazily. With ``output_dir=None``
    they go to a temporary folder that is removed when the run fails or when the returned
    :class:`DepthVideo` is garbage-collected (``DepthVideo.save`` keeps a copy).
    """
    opts = (options or RunOptions())
    if overrides:
        opts = RunOptions(**{**opts.to_dict(), "intrinsics": opts.intrinsics, **overrides})
    opts = opts.resolved()
    timings: dict[str, float] = {}
    warnings: list[str] = []
    started = time.perf_counter()

    source = open_source(src, start=opts.start, stop=opts.stop, stride=opts.stride)
    prior = create_prior(opts.prior)
    check_run(opts, source, prior)  # every option and the input, before the output folder is touched
    temporary = output_dir is None
    # an interrupted run of the same input and options in output_dir is continued (steadydepth.resume)
    identity = run_identity(source, opts) if not temporary else {}
    plan = plan_resume(output_dir, identity, opts) if not temporary else None
    out = OutputFolder(tempfile.mkdtemp(prefix="steadydepth-") if temporary else output_dir, overwrite=opts.overwrite,
                       resume=plan is not None)
    out.prepare()
    state = RunState(out.root)
    if plan is None:
        state.start(identity)
    run_info = {
        "status": "running",
        "input": source.describe(),
        "options": opts.to_dict(),
        "prior": prior.describe(),
        "versions": _versions(),
        "process": process_info(),  # a later run tells an interrupted run from one still going
    }
    if plan is not None:
        run_info["resumed"] = plan.describe()
    out.write_json("run.json", run_info)

    with _undo_on_failure(out, temporary), _record_failure(out, run_info), LoggedWarnings() as shown:
        frames = _ResizedFrames(source, opts.max_res)
        proc_w, proc_h = frames.size
        out_w, out_h = (source.width, source.height) if opts.output_res == "input" else (proc_w, proc_h)
        user_K = opts.intrinsics.scaled(proc_w, proc_h) if opts.intrinsics is not None else None
        _check_space(out, opts, source, prior.needs_cameras, (proc_w, proc_h), (out_w, out_h))

        # -- cameras ----------------------------------------------------------------------------
        cameras: Cameras | None = None
        if prior.needs_cameras and plan is not None and plan.cameras is not None:
            cameras = plan.cameras  # solved by the run this one resumes
            frames.lens = lens_for(cameras.intrinsics, proc_w, proc_h)
        elif prior.needs_cameras:
            t0 = time.perf_counter()
            cameras = _estimate_cameras(frames, source, prior.name, out, opts, user_K)
            timings["cameras"] = time.perf_counter() - t0
            state.save_cameras(cameras)
            frames.lens = lens_for(cameras.intrinsics, proc_w, proc_h)  # the prior works on a pinhole grid
        if cameras is not None:
            warnings.extend(cameras.warnings)

        hint = parse_metric_hint(opts.metric_hint) if opts.metric_hint else None
        scale, units = (_travel_scale(cameras, hint[1]), "metres") if hint and hint[0] == "travel" else (1.0, "scene")

        # -- depth ----------------------------------------------------------------------------------
        context = PriorContext(cameras=cameras, num_frames=source.num_frames, frame_size=(proc_w, proc_h),
                               source_size=(source.width, source.height), device=opts.device, preset=opts.preset,
                               options=opts.extra)
        t0 = time.perf_counter()
        frame_indices: list[int] = []
        images = ImageStash(out.work_dir / "images")  # images the prior has read but not yet answered
        writer = _DepthWriter(out, opts, hint, scale, units, (out_w, out_h))
        writer.lens = frames.lens
        if prior.needs_cameras:  # such priors give depth in the cameras' units
            writer.sparse_check = SparseAgreement.for_cameras(cameras)
        writer.state = state
        stage: ClipAlignmentStage | None = None  # relative frames waiting for the clip alignment

        fusion = _temporal_fusion(prior, cameras, opts, (proc_w, proc_h))
        start = prior_start(plan, prior.frames_before(context) if plan else None, fusion.settings.radius,
                            source.num_frames)
        if plan is not None:
            announce(out.root, plan, start, source.num_frames, prior.name, prior.needs_cameras)
            writer.resume_from(plan, start)
            fusion = _temporal_fusion(prior, cameras, opts, (proc_w, proc_h), first=start)
            context.first_position = start

        def emit(depth: np.ndarray, conf: np.ndarray) -> None:
            if frames.lens is not None:  # nothing seen beyond the input image: keep it out of the fusion
                depth, conf = frames.lens.drop_unseen(depth, conf)
            for fused in fusion.push(depth, conf):
                writer.write(*fused)

        with Progress("depth", source.num_frames, bar=opts.progress_bar) as bar, one_blas_thread():
            bar.update(start)
            stream = Recorder(frames.iter_from(start, frame_indices), frame_indices, images)
            # the prior runs a few frames ahead in a worker thread: its next frame's matching
            # overlaps this frame's fusion and writes (same order, same results)
            outputs = read_ahead(prior.process(stream, context), ahead=useful_ahead(), name="steadydepth-prior")
            for position, prior_out in enumerate(outputs, start=start):
                image = images.pop(position)
                if writer.metric is None:
                    writer.metric = bool(prior_out.metric)
                    if writer.metric and hint is None:
                        writer.units = "metres"
                if prior_out.kind == "disparity":
                    # Relative disparity: every frame has its own scale and shift. The clip stage
                    # stores it and fits one alignment for the whole clip; written in a second pass.
                    if stage is None:
                        stage = ClipAlignmentStage(out.work_dir / "prior", kind="disparity")
                        if plan is not None and plan.finished:
                            log.info("resume: the clip alignment of the relative prior is recomputed over every "
                                     "frame (finished frames are not rewritten)")
                    stage.add(image, np.asarray(prior_out.values, np.float32))
                else:
                    emit(*_to_depth(prior_out))
                bar.update()
            for fused in fusion.flush():
                writer.write(*fused)
        if stage is not None:
            writer.sparse_check = None  # the clip alignment's gauge is not the cameras'
            t1 = time.perf_counter()
            stage.solve()
            with Progress("align", stage.count, bar=opts.progress_bar) as bar:
                for _, depth, _ in stage.aligned(as_depth=True):
                    writer.write(depth, (depth > 0).astype(np.float32))
                    bar.update()
            timings["align"] = time.perf_counter() - t1
            warnings.append("relative prior: depth is in scene units fixed by the clip alignment (frame 0 gauge)")
        count, clipped, scale, units = writer.count, writer.clipped, writer.scale, writer.units
        timings["depth"] = time.perf_counter() - t0
        warnings.extend(source.warnings)
        if count == 0:
            raise InputError(f"{source.path}: no frame could be processed")
        if count != len(frame_indices):
            raise RuntimeError(f"prior {prior.name} yielded {count} outputs for {len(frame_indices)} frames")
        if writer.valid == 0:
            why = (cameras.no_parallax if cameras is not None and cameras.no_parallax
                   else f"the '{prior.name}' prior gave no valid depth in any frame")
            raise NoDepthError(f"{source.path}: no depth could be recovered: {why} "
                               "(the per-frame files hold depth 0 = invalid)")
        if writer.empty:
            warnings.append(_empty_frames_warning([frame_indices[i] for i in writer.empty], count, prior.name))
        geometry_check = writer.sparse_check.summary() if writer.sparse_check is not None else None
        if writer.sparse_check is not None and writer.sparse_check.warning():
            warnings.append(writer.sparse_check.warning())
        if clipped:
            warnings.append(f"png16: {clipped} pixels beyond {65535 / opts.png_scale:.1f} units were clipped")

        if cameras is not None and scale != 1.0:
            cameras = _scale_cameras(cameras, scale)
            cameras.units = "metres"
        intr_out = _output_intrinsics(cameras, opts, (out_w, out_h))

        # -- outputs at the end of the run ----------------------------------------------------------
        t0 = time.perf_counter()
        run_info.update(_write_clip_outputs(out, opts, source, count, (out_w, out_h), units, frame_indices, cameras,
                                            intr_out, state, plan.outputs_done if plan is not None else set()))
        timings["outputs"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - started
        out.cleanup()
        for w in warnings:
            if w not in shown.messages:  # each warning once: those logged live are not repeated
                log.warning("%s", w)
        if warnings:
            log.info("%d warning(s) in this run, listed in %s", len(warnings), out.root / "run.json")
        run_info.update({
            "status": "complete",
            "prior": prior.describe(),
            "frames": count,
            "frame_indices": frame_indices,
            "processing_size": [proc_w, proc_h],
            "output_size": [out_w, out_h],
            "units": units,
            "metric_scale_applied": scale,
            "geometry_check": geometry_check,
            "timings_s": {k: round(v, 3) for k, v in timings.items()},
            "frames_per_second": round(count / timings["total"], 3) if timings["total"] > 0 else None,
            "peak_memory_mb": peak_memory_mb(),
            "warnings": warnings,
        })
        if cameras is not None and cameras.shots:
            from .exports import shots_summary

            run_info["shots"] = shots_summary(cameras)
        out.write_json("run.json", run_info)
        state.remove()  # complete: nothing to resume
    video = DepthVideo(folder=out.root, num_frames=count, units=units, frame_indices=frame_indices,
                       cameras=cameras, intrinsics=intr_out, warnings=warnings)
    if temporary:  # the folder lives as long as the DepthVideo that reads it
        weakref.finalize(video, shutil.rmtree, out.root, True)
    return video


@contextmanager
def _undo_on_failure(out: OutputFolder, temporary: bool) -> Iterator[None]:
    """On failure, remove a temporary folder (no ``output_dir``), or put back the run that
    ``--overwrite`` was replacing when this run failed before writing its first frame."""
    try:
        yield
    except BaseException:
        if temporary:
            shutil.rmtree(out.root, ignore_errors=True)
        elif out.restore_previous():
            log.warning("%s: the new run stopped before its first frame; the run it was replacing is kept", out.root)
        raise


@contextmanager
def _record_failure(out: OutputFolder, run_info: dict) -> Iterator[None]:
    """Mark ``run.json`` as failed or interrupted (finished frames stay valid), remove the scratch
    folder and re-raise. SIGTERM interrupts the run like Ctrl-C (:mod:`steadydepth.interrupts`)."""
    try:
        with sigterm_as_interrupt():
            yield
    except BaseException as exc:
        run_info["status"] = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        run_info["error"] = f"{type(exc).__name__}: {exc}"
        try:
            out.write_json("run.json", run_info)
        except Exception:  # noqa: BLE001 - the original error matters more
            log.debug("could not record the failure in run.json", exc_info=True)
        out.cleanup()
        raise


def _check_space(out: OutputFolder, opts: RunOptions, source: FrameSource, sfm: bool,
                 proc_size: tuple[int, int], out_size: tuple[int, int]) -> None:
    """Refuse a run whose files will not fit on the output's file system, before any work
    (COLMAP aborts the whole process when its database finds the disk full)."""
    if not source.num_frames:
        return
    needed = depth_output_bytes(source.num_frames, out_size, formats=opts.formats, npz=opts.npz,
                                points_stride=opts.points_stride if opts.points else None)
    if sfm:
        needed += sfm_scratch_bytes(source.num_frames, proc_size)
    check_free_space(out.root, needed, f"{source.num_frames} frames at {out_size[0]}x{out_size[1]}",
                     "free some space, choose another output folder, or write less (--output-res processing, "
                     "--no-npz, fewer --format, --start/--stop)")


def _estimate_cameras(frames: _ResizedFrames, source: FrameSource, prior_name: str, out: OutputFolder,
                      opts: RunOptions, user_K: Intrinsics | None) -> Cameras:
    """Structure from motion over the processing-resolution frames (at most ``SFM_MAX_SIDE`` on the
    long side; the intrinsics come back at the processing size), with per-stage progress."""
    import pycolmap  # noqa: F401 - its import installs glog's SIGTERM handler: take ours back below

    from .cameras.sfm import estimate_cameras

    reclaim_sigterm()
    bars: dict[str, Progress] = {}

    def sfm_progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = Progress(f"cameras/{stage}", total, bar=opts.progress_bar)
        bar.update(done - bar.done)

    # SfM sees the frames at most SFM_MAX_SIDE on their long side: its cameras do not change with a
    # larger processing resolution (``fine``, ``--max-res``), which only refines the depth
    sfm_frames = frames
    if max(frames.size) > SFM_MAX_SIDE:
        sfm_frames = _ResizedFrames(source, SFM_MAX_SIDE)
        user_K = user_K.scaled(*sfm_frames.size) if user_K is not None else None
    try:
        cameras = estimate_cameras(sfm_frames, out.work_dir / "sfm", intrinsics=user_K, hfov_deg=opts.hfov_deg,
                                   preset=opts.preset, progress=sfm_progress)
        if sfm_frames is not frames:
            cameras.intrinsics = cameras.intrinsics.scaled(*frames.size)
    except ReconstructionError as exc:
        raise ReconstructionError(
            f"{source.path}: {exc} (the '{prior_name}' prior recovers depth from camera motion; "
            "for a single image or a still camera use a learned prior such as --prior hf:MODEL)"
        ) from exc
    finally:
        for bar in bars.values():
            bar.close()
    if cameras.num_posed < 2 and len(cameras.poses) >= 2:
        cameras.warnings.append("cameras: fewer than two frames have a pose")
    return cameras


def _temporal_fusion(prior, cameras: Cameras | None, opts: RunOptions, size: tuple[int, int],
                     first: int = 0) -> TemporalFusion:
    """The temporal fusion stage; a pass-through (radius 0) unless the depth is in the cameras' units.

    Priors that need the cameras (``mvs``, combinations with it, refinement) give depth in
    the units of the camera poses, so neighbouring frames can be compared through them.
    """
    usable = (cameras is not None and prior.needs_cameras and cameras.num_posed >= 2
              and not any(w.startswith("no-parallax:") for w in cameras.warnings))
    if not usable or not opts.temporal_radius:
        return TemporalFusion(np.eye(3), [], TemporalSettings(radius=0), first=first)
    K = cameras.intrinsics.scaled(*size).K
    shot_of = [cameras.shot_of(i) for i in range(len(cameras.poses))] if cameras.shots else None
    return TemporalFusion(K, list(cameras.poses), TemporalSettings(radius=opts.temporal_radius), first=first,
                          shot_of=shot_of)


def _travel_scale(cameras: Cameras | None, metres: float) -> float:
    """Scale that makes the camera path length ``metres`` (``--metric-hint travel=``)."""
    if cameras is None or cameras.num_posed < 2:
        raise InputError("--metric-hint travel=... needs camera poses (a geometric prior such as mvs)")
    centres = np.array([p[:3, 3] for p in cameras.poses if p is not None])
    path_length = float(np.linalg.norm(np.diff(centres, axis=0), axis=1).sum())
    if path_length <= 0:
        raise InputError("--metric-hint travel=...: the camera did not move, so travel gives no scale")
    return metres / path_length


def _scale_cameras(cameras: Cameras, scale: float) -> Cameras:
    poses = []
    for p in cameras.poses:
        if p is None:
            poses.append(None)
            continue
        q = np.array(p, dtype=np.float64)
        q[:3, 3] *= scale
        poses.append(q)
    points = cameras.points * scale if cameras.points is not None else None
    return Cameras(intrinsics=cameras.intrinsics, poses=poses, frame_indices=cameras.frame_indices, points=points,
                   colors=cameras.colors, units=cameras.units, source=cameras.source, warnings=cameras.warnings,
                   pose_sources=cameras.pose_sources, no_parallax=cameras.no_parallax, shots=cameras.shots)
