"""``steadydepth animate``: one picture (or one frame of a run) to a 3D camera fly-through.

Outputs in ``OUTDIR`` (every file written under a temporary name and renamed):

* ``animation.mp4`` H.264; ``frames/000000.png`` ... lossless, every rendered frame;
* ``depth.npz`` the z-depth of every rendered frame, the contract of a run's ``depth.npz``
  (``confidence``: 1 seen in the input view, 0.5 from the background layer, 0.1 filled);
* ``cameras.json`` the path used (a run's layout: intrinsics + camera-to-world poses relative
  to the input view), with ``colmap/`` text files of it.

Long paths: each frame is rendered from the *anchor* (a layered depth image) nearest to its
camera. The input view is the first anchor; when a frame's camera is farther from its nearest
anchor than ``reanchor`` times that anchor's near depth (10th percentile) in translation, or 20
degrees in rotation, or the render left more than 2 % of the pixels uncovered, that rendered
frame (image and depth) becomes a new anchor for the frames after it. At most four anchors are
kept (the input view and the three newest).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError, OutputError
from ..outputs import make_output_folder
from ..geometry import rotation_angle_deg
from ..types import Intrinsics
from .layers import LayeredImage, build_layers
from .paths import PATHS, load_path_file, make_path, scene_depths
from .render import RenderedView, render_view

__all__ = ["AnimateOptions", "animate", "check_options", "OUTPUT_NAMES"]

log = logging.getLogger(__name__)

#: what ``animate`` writes in its output folder (refused there without ``overwrite``)
OUTPUT_NAMES = ("animation.mp4", "frames", "depth.npz", "cameras.json", "colmap")
MAX_ANCHORS = 4


@dataclass
class AnimateOptions:
    """Options of :func:`animate` (the command line's flags; see ``steadydepth animate --help``)."""

    image: str | None = None
    depth: str | None = None
    png_scale: float = 1000.0
    prior: str | None = None
    intrinsics: tuple[float, float, float, float] | None = None
    fov: float | None = None
    path: str = "auto"
    frames: int | None = None
    fps: float = 24.0
    duration: float = 5.0
    speed: float = 1.0
    from_run: str | None = None
    frame: int = 0
    animate: str | None = None
    animate_mask: str | None = None
    motion_speed: float | None = None
    band: int | None = None
    edge: float = 0.04
    reanchor: float = 0.3
    overwrite: bool = False
    progress_bar: bool = True
    device: str = "cpu"


def check_options(o: AnimateOptions) -> None:
    """Refuse bad options before any work (one line naming the flag)."""
    if o.from_run is None:
        if not o.image:
            raise InputError("animate needs an IMAGE (or --from-run RUN_DIR --frame K)")
        if not Path(o.image).is_file():
            raise InputError(f"{o.image}: no such image file")
        if o.depth is None and o.prior is None:
            raise InputError("animate needs depth for the image: --depth FILE or a learned --prior (the "
                             "weight-free geometric prior 'mvs' needs several views and cannot work on one image)")
        if o.depth is not None and o.prior is not None:
            raise InputError("give --depth FILE or --prior SPEC, not both")
        if o.depth is not None and not Path(o.depth).is_file():
            raise InputError(f"--depth {o.depth}: no such depth file")
    else:
        if o.image or o.depth or o.prior:
            raise InputError("--from-run takes its image and depth from the run: drop IMAGE, --depth and --prior")
        if not Path(o.from_run).is_dir():
            raise InputError(f"--from-run {o.from_run}: no such run folder")
        if o.frame < 0:
            raise InputError(f"--frame must be >= 0, got {o.frame}")
    if o.path not in PATHS and not o.path.endswith(".json"):
        raise InputError(f"--path {o.path}: choose one of {', '.join(PATHS)} or a cameras.json file")
    if o.path.endswith(".json") and not Path(o.path).is_file():
        raise InputError(f"--path {o.path}: no such file")
    if o.frames is not None and o.frames < 2:
        raise InputError(f"--frames must be >= 2, got {o.frames}")
    for name, value in (("--fps", o.fps), ("--speed", o.speed), ("--png-scale", o.png_scale)):
        if not (np.isfinite(value) and value > 0):
            raise InputError(f"{name} must be positive, got {value}")
    if o.fov is not None and not 1.0 < o.fov < 179.0:
        raise InputError(f"--fov must be in (1, 179) degrees, got {o.fov}")
    if o.intrinsics is not None and o.fov is not None:
        raise InputError("give --intrinsics or --fov, not both")
    if o.animate is not None and o.animate_mask is not None:
        raise InputError("give --animate or --animate-mask, not both")
    if o.animate is not None and o.animate not in ("sky", "water"):
        raise InputError(f"--animate {o.animate}: choose sky or water")
    if o.animate_mask is not None and not Path(o.animate_mask).is_file():
        raise InputError(f"--animate-mask {o.animate_mask}: no such file")
    if o.band is not None and o.band < 1:
        raise InputError(f"--band must be >= 1, got {o.band}")
    if o.prior is not None:
        from ..priors.base import create_prior

        prior = create_prior(o.prior)
        if prior.needs_cameras:
            raise InputError(f"--prior {o.prior}: this prior needs camera motion (several views) and cannot work on "
                             f"one image; use a learned prior (e.g. tflite:FILE, hf:MODEL) or --depth FILE")


def _prepare_output(out: Path, overwrite: bool) -> None:
    make_output_folder(out)
    found = [n for n in OUTPUT_NAMES if (out / n).exists()]
    if found and not overwrite:
        raise OutputError(f"{out}: folder already holds an animation ({', '.join(found)}); pass --overwrite to "
                          f"replace it, or choose another folder")
    for n in found:
        p = out / n
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def _intrinsics(o: AnimateOptions, width: int, height: int, from_file: Intrinsics | None) -> Intrinsics:
    if o.intrinsics is not None:
        fx, fy, cx, cy = o.intrinsics
        return Intrinsics(fx, fy, cx, cy, width, height)
    if o.fov is not None:
        return Intrinsics.from_fov(o.fov, width, height)
    if from_file is not None:
        return from_file if (from_file.width, from_file.height) == (width, height) else from_file.scaled(width, height)
    log.info("no --intrinsics or --fov: assuming a 60 degree horizontal field of view")
    return Intrinsics.from_fov(60.0, width, height)


def _prior_depth(spec: str, image: np.ndarray, device: str) -> np.ndarray:
    """Z-depth ``(H, W)`` of ``image`` from a learned prior; a disparity output (up to scale and
    shift) is mapped to depth 1..10 scene units (its 2nd..98th percentiles), then the edges are
    sharpened (:func:`sharpen_depth_edges`)."""
    from ..geometry import resize_keep_invalid
    from ..priors.base import PriorContext, create_prior
    from ..types import Frame

    h, w = image.shape[:2]
    prior = create_prior(spec)
    ctx = PriorContext(num_frames=1, frame_size=(w, h), source_size=(w, h), device=device)
    out = next(iter(prior.process([Frame(index=0, image=image, time=0.0, name="image")], ctx)))
    values = np.asarray(out.values, np.float32)
    if values.shape != (h, w):
        values = resize_keep_invalid(values, w, h)
    valid = (values > 0) & np.isfinite(values)
    if not valid.any():
        raise InputError(f"--prior {spec}: the prior gave no valid depth for this image")
    if out.kind == "disparity":
        lo, hi = np.percentile(values[valid], [2, 98])
        s = np.clip((values - lo) / max(hi - lo, 1e-9), 0.0, 1.0)
        values = np.where(valid, 1.0 / (0.2 + 0.8 * s), 0.0).astype(np.float32)
    return sharpen_depth_edges(smooth_prior_depth(values))


def smooth_prior_depth(depth: np.ndarray) -> np.ndarray:
    """A learned model's depth at the picture's size is often blocky (a low-resolution output
    upsampled): its disparity is smoothed by a Gaussian (sigma 1.5 px) and a bilateral filter
    (5 % of the disparity range) so that only real edges stay steep. Zeros (invalid) stay zero."""
    valid = depth > 0
    disp = np.where(valid, 1.0 / np.maximum(depth, 1e-9), 0.0).astype(np.float32)
    if not valid.any():
        return depth
    fill = float(np.median(disp[valid]))
    d = cv2.GaussianBlur(np.where(valid, disp, fill).astype(np.float32), (0, 0), 1.5)
    span = float(np.percentile(d[valid], 98) - np.percentile(d[valid], 2)) or 1.0
    d = cv2.bilateralFilter(d, 9, 0.05 * span, 3.0)
    return np.where(valid & (d > 0), 1.0 / np.maximum(d, 1e-9), 0.0).astype(np.float32)


def sharpen_depth_edges(depth: np.ndarray, *, ratio: float = 1.12, passes: int = 3) -> np.ndarray:
    """Turn the soft ramps a learned model puts at depth edges into steps: where the 3x3 range
    exceeds ``ratio``, each pixel takes the local minimum or maximum, whichever is closer
    (``passes`` times). Zeros (invalid) stay zero."""
    d = depth.astype(np.float32).copy()
    valid = d > 0
    k = np.ones((3, 3), np.uint8)
    for _ in range(passes):
        big = np.where(valid, d, np.inf).astype(np.float32)
        lo = cv2.erode(big, k)
        hi = cv2.dilate(np.where(valid, d, 0).astype(np.float32), k)
        ramp = valid & np.isfinite(lo) & (hi > ratio * lo)
        snap = np.where(d - lo < hi - d, lo, hi)
        d = np.where(ramp, snap, d)
    return d


def _distance(pose: np.ndarray, anchor_pose: np.ndarray, near: float) -> tuple[float, float]:
    rel = np.linalg.inv(anchor_pose) @ pose
    return float(np.linalg.norm(rel[:3, 3]) / max(near, 1e-9)), rotation_angle_deg(rel[:3, :3])


def _band_width(o: AnimateOptions, depth: np.ndarray, fx: float, travel: float, size: int) -> int:
    """Background band width in pixels: the widest disocclusion the path can open,
    ``fx * travel * (1/d_2 - 1/d_98)`` (2nd/98th depth percentiles), plus 4 pixels."""
    if o.band is not None:
        return int(o.band)
    d = depth[depth > 0]
    d2, d98 = np.percentile(d, [2, 98])
    width = fx * travel * (1.0 / d2 - 1.0 / d98) + 4.0
    return int(np.clip(np.ceil(width), 6, max(6, size // 10)))


def _write_png(path: Path, rgb: np.ndarray) -> None:
    from ..io.atomic import atomic_write_bytes

    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OutputError(f"{path}: cannot encode PNG")
    atomic_write_bytes(path, buf.tobytes())


def _load_mask(path: str, shape: tuple[int, int]) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise InputError(f"--animate-mask {path}: cannot read the image")
    if img.shape != shape:
        img = cv2.resize(img, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return img > 127


@dataclass
class _Anchor:
    ldi: LayeredImage
    near: float
    motion: object | None = None


def animate(out_dir: str | Path, o: AnimateOptions) -> dict:
    """Render the animation of :class:`AnimateOptions` ``o`` into ``out_dir`` (see module docstring);
    returns a summary (frames, seconds, uncovered fraction, anchors, mean frame change).

    The rasteriser runs torch on one thread: its many small element-wise operations were several
    times slower with two threads on a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _animate(out_dir, o)
    finally:
        torch.set_num_threads(threads)


def _animate(out_dir: str | Path, o: AnimateOptions) -> dict:
    from ..exports import write_cameras
    from ..io.images import read_image
    from ..io.video_writer import VideoWriter
    from ..outputs import OutputFolder
    from ..progress import Progress
    from ..types import Cameras

    check_options(o)
    started = time.perf_counter()
    out = Path(out_dir).expanduser()
    path_poses, path_intr = (load_path_file(o.path) if o.path.endswith(".json") else (None, None))
    filler = None
    start_pose = np.eye(4)
    if o.from_run is not None:
        from .clip_fill import clip_band_filler, read_run

        start, neighbours, run_intr = read_run(o.from_run, o.frame)
        image, depth = start.image, start.depth
        if o.intrinsics is None and o.fov is None:
            path_intr = run_intr
        intr = _intrinsics(o, image.shape[1], image.shape[0], path_intr)
        filler = clip_band_filler(start, neighbours, intr.K, edge=o.edge) if neighbours else None
        start_pose = start.pose_c2w
        units = "scene"
    else:
        image = read_image(o.image)
        h, w = image.shape[:2]
        if o.depth is not None:
            from ..geometry import resize_keep_invalid
            from ..io.depth_files import read_depth

            depth = read_depth(o.depth, png_scale=o.png_scale)
            if depth.shape != (h, w):
                dh, dw = depth.shape
                if abs(dw / dh - w / h) > 0.01 * (w / h):
                    raise InputError(f"--depth {o.depth}: {dw}x{dh} does not have the image's aspect ({w}x{h})")
                depth = resize_keep_invalid(depth, w, h)
        else:
            depth = _prior_depth(o.prior, image, o.device)
        depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)
        intr = _intrinsics(o, w, h, path_intr)
        units = "scene"
    h, w = image.shape[:2]
    if not (depth > 0).any():
        raise InputError("the depth map has no valid pixel")
    _prepare_output(out, o.overwrite)

    n = o.frames if o.frames is not None else (len(path_poses) if path_poses is not None
                                               else max(2, int(round(o.fps * o.duration))))
    if path_poses is not None:
        poses = path_poses[:n]
        if len(poses) < n:
            log.info("--path %s has %d poses: rendering %d frames", o.path, len(poses), len(poses))
            n = len(poses)
    else:
        poses = make_path(o.path, n, depth, speed=o.speed)
    _, near, _ = scene_depths(depth)
    travel = max(float(np.linalg.norm(p[:3, 3])) for p in poses)
    travel = min(travel, o.reanchor * near)
    K = intr.K
    band = _band_width(o, depth, intr.fx, max(travel, 0.02 * near), max(w, h))
    pad = int(np.clip(round(0.06 * max(w, h)), 4, 96))
    log.info("animate: %dx%d, %d frames, path %s, background band %d px, border %d px", w, h, n, o.path, band, pad)

    mask = None
    if o.animate_mask is not None:
        mask = _load_mask(o.animate_mask, (h, w))
    elif o.animate is not None:
        from .detect import detect_region

        mask = detect_region(image, depth, o.animate)
    kind = o.animate or "sky"

    def make_anchor(img: np.ndarray, dep: np.ndarray, pose: np.ndarray, first: bool) -> _Anchor:
        ldi = build_layers(img, dep, K, pose, band=band, edge=o.edge, pad=pad, fill_band=filler if first else None)
        anchor = _Anchor(ldi, scene_depths(dep)[1])
        if first and mask is not None and mask.any():
            from .motion import LoopingMotion, flow_field

            mpad = cv2.copyMakeBorder(mask.astype(np.uint8), pad, pad, pad, pad, cv2.BORDER_REFLECT_101) > 0
            flow = flow_field(mpad, kind, speed=o.motion_speed)
            anchor.motion = LoopingMotion([g.astype(np.float32) / 255.0 for g in ldi.grids], flow, n)
        return anchor

    world = start_pose  # poses of the path are relative to the input view
    anchors = [make_anchor(image, depth, world, True)]
    motion = anchors[0].motion
    frames_dir = out / "frames"
    frames_dir.mkdir(exist_ok=True)
    scratch = OutputFolder(out / ".work")
    (out / ".work").mkdir(exist_ok=True)
    uncovered = []
    used_poses = []
    flicker_pairs = []
    reanchored = 0
    prev = None
    try:
        with VideoWriter(out / "animation.mp4", o.fps) as video, Progress("animate", n, bar=o.progress_bar) as prog, \
                _Writer() as writer:
            for i in range(n):
                pose = world @ poses[i]
                dist = [_distance(pose, a.ldi.pose_c2w, a.near) for a in anchors]
                j = int(np.argmin([t / o.reanchor + r / 20.0 for t, r in dist]))
                anchor = anchors[j]
                colours = None
                if motion is not None:
                    grids = motion.frame(i)
                    if j == 0:
                        colours = [g.reshape(-1, 3)[layer.pixels] for g, layer in zip(grids, anchor.ldi.layers)]
                view: RenderedView = render_view(anchor.ldi, K, pose, w, h, colours=colours)
                frac = float(view.uncovered.mean())
                uncovered.append(frac)
                t_d, r_d = dist[j]
                if (t_d > o.reanchor or r_d > 20.0 or frac > 0.02) and i + 1 < n and motion is None:
                    anchors.append(make_anchor(view.image, view.depth, pose, False))
                    if len(anchors) > MAX_ANCHORS:
                        del anchors[1]
                    reanchored += 1
                writer.submit(_write_outputs, frames_dir / f"{i:06d}.png", video, scratch, i, view)
                if prev is not None:
                    flicker_pairs.append(_frame_flicker(prev, view.image))
                prev = view.image
                used_poses.append(np.linalg.inv(world) @ pose)
                prog.update()
        cams = Cameras(intrinsics=intr, poses=[p for p in used_poses], frame_indices=list(range(n)), units=units,
                       source="animate", pose_sources=["given"] * n)
        npz = scratch.write_npz(n, (h, w), units=units, frame_indices=list(range(n)), cameras=cams, intrinsics=intr)
        npz.replace(out / "depth.npz")
        write_cameras(OutputFolder(out), cams, intr, list(range(n)), units)
    finally:
        shutil.rmtree(out / ".work", ignore_errors=True)
    summary = {
        "frames": n, "seconds": time.perf_counter() - started, "uncovered_mean": float(np.mean(uncovered)),
        "uncovered_max": float(np.max(uncovered)), "anchors_made": reanchored, "band_px": band, "border_px": pad,
        "frame_change": float(np.mean(flicker_pairs)) if flicker_pairs else 0.0,
    }
    log.info("wrote %d frames to %s in %.1f s (%.2f %% of the pixels filled, %d re-anchored views)", n, out,
             summary["seconds"], 100.0 * summary["uncovered_mean"], reanchored)
    return summary


def _write_outputs(png: Path, video, scratch, i: int, view: RenderedView) -> None:
    _write_png(png, view.image)
    video.write(view.image)
    scratch.write_frame(i, view.depth, view.confidence)


class _Writer:
    """Writes each frame's files on one background thread while the next frame renders (encoders
    and the rasteriser release the GIL); at most two frames wait, so memory stays flat."""

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="animate-writer")
        self._pending: list = []

    def submit(self, fn, *args) -> None:
        self._pending.append(self._pool.submit(fn, *args))
        while len(self._pending) > 2:
            self._pending.pop(0).result()

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                for f in self._pending:
                    f.result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _frame_flicker(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute grey-level change between consecutive frames (a cheap running figure; the
    benchmark measures flicker along optical flow with :func:`~steadydepth.eval.temporal_metrics.flow_flicker`)."""
    ga = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gb = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(ga - gb).mean())
