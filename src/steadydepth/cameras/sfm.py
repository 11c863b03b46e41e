"""Cameras for every frame of a video by structure from motion (pycolmap, CPU).

Pipeline of :func:`estimate_cameras`:

1. **Stream** the frames (processing resolution, uint8 RGB): each is written to
   ``work_dir/images/NNNNNN.jpg`` (``NNNNNN`` = position in the stream) and fed to the
   online :class:`~steadydepth.cameras.keyframes.KeyframeSelector`; only small per-frame
   data stays in memory.
2. **Map the keyframes** with pycolmap: SIFT extraction (one shared camera,
   ``SIMPLE_RADIAL`` with its focal refined from a seed of ``--fov`` or else
   :data:`DEFAULT_FOCAL_FACTOR` x the long side, or from the given intrinsics),
   sequential matching, incremental mapping; models with under 100 points or bogus camera
   parameters are dropped (all dropped with SIMPLE_RADIAL: one retry with ``k`` fixed at 0),
   and of the rest the one with most registered images is kept, less any keyframe mapped far
   off the camera path (:func:`~steadydepth.cameras.sfm_mapping.drop_stray_keyframes`).
   Given intrinsics are put on the model afterwards and held
   (:func:`~steadydepth.cameras.sfm_focal.hold_intrinsics`): mapping with them held from the
   start can settle in a wrong solution on small-baseline hand-held clips.
   When no intrinsics are given, the radial term is kept only when it fits the keyframes
   clearly better than ``k = 0`` (:func:`~steadydepth.cameras.sfm_focal.check_distortion`, also
   after a mapping with ``k`` fixed: a large ``k`` can compensate a wrong focal, and a real lens
   needs its term), then the focal's conditioning is checked (:func:`_check_focal`):
   if bundle adjustment with the focal fixed 20 % off its estimate fits as well (forward
   motion, motion along a dominant plane), the clip does not determine it and the focal is
   set to the prior (``--fov``, else :data:`DEFAULT_FOCAL_FACTOR` x the long side) with an
   ``"intrinsics:"`` warning (measurements in ``benchmarks/NOTES.md``).
3. **Register every other frame** (and keyframes the model missed): the triangulated
   keypoints (up to 600, spread over the image) of the nearer posed keyframe are tracked
   frame by frame with forward-backward checked Lucas-Kanade flow (the other neighbour
   takes over where a chain breaks), and the 2D-3D matches give the pose by
   ``pycolmap.estimate_and_refine_absolute_pose`` (LO-RANSAC + refinement). Frames that
   still fail get slerp/lerp-interpolated poses and a ``"interpolated:"`` warning, or, before
   the first / after the last registered frame, the nearest pose copied and a ``"copied:"``
   warning. ``Cameras.pose_sources`` says per frame: mapped, tracked, interpolated, copied.
4. **Normalise the scale**: the median z-depth of the sparse points over all their
   keyframe observations is 1.0 scene unit (``Cameras.units == "scene"``).

Fallbacks (never an exception for a valid clip of 2+ frames):

* static camera (median motion under ~0.75 px for the whole clip): identity poses;
* no model, or the camera centres barely move (pure rotation): rotations from
  frame-to-frame homographies (``R = K^-1 H K`` projected on SO(3); the focal is searched
  when unknown) and zero translation;

both add a warning starting with ``"no-parallax:"`` (geometry cannot give depth).

Conventions: intrinsics in the OpenCV pixel-centre convention (COLMAP's principal
point minus 0.5), poses camera-to-world with OpenCV axes (COLMAP's
``Image.cam_from_world`` is world-to-camera and is inverted here). The SIMPLE_RADIAL
distortion ``k`` (COLMAP: ``u = f * x * (1 + k r^2) + cx``) is returned as
``Intrinsics.k1``: the poses and ``K`` are those of the distorted input frames
(:mod:`steadydepth.cameras.lens` resamples between them and a pinhole grid).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError, OutputError, ReconstructionError
from ..geometry import interpolate_poses, pose_fill_kinds
from ..io.disk_space import write_failure
from ..types import Cameras, Frame, Intrinsics
from .colmap_log import quiet_colmap
from .keyframes import KeyframePolicy, KeyframeSelector
from .sfm_flow import write_flow_matches
from .shots import ShotDetector, ShotPolicy
from .sfm_chunks import add_timings, link_span, plan_chunks, reconstruct_chunked
from .sfm_shots import combine_shots
from .sfm_fallbacks import _rotation_cameras, _static_cameras, mapping_failure
from .sfm_focal import _check_focal, _guess_intrinsics, check_distortion, hold_intrinsics
from .sfm_mapping import _MIN_POINTS, _image_name, _map_keyframes
from .sfm_registration import _keyframe_observations, _register_frames
from .sfm_settings import DEFAULT_CHUNKS, SFM_PRESETS, ChunkPolicy, ProgressFn, SfmPreset, _report, rescue_preset

__all__ = ["estimate_cameras"]

log = logging.getLogger(__name__)

#: below this processing long side SIFT runs on the doubled image (first octave -1) whatever the preset:
#: at 320x240 the undoubled image gave a thin model (about 560 points for 18 keyframes) whose first
#: frames were off by up to 2 frame steps
SMALL_FRAME_LONG_SIDE = 400

def _stream_frames(
    frames: Iterable[Frame], images_dir: Path, policy: KeyframePolicy, shot_policy: ShotPolicy,
    progress: ProgressFn | None,
) -> tuple[list[int], list[tuple[int, int, KeyframeSelector]], tuple[int, int]]:
    """Write the frames to ``images_dir``; returns their indices, the shots as ``(start, stop,
    keyframe selector)`` in stream positions (a scene cut starts a new selector), and the size."""
    indices: list[int] = []
    spans: list[tuple[int, int, KeyframeSelector]] = []
    selector: KeyframeSelector | None = None
    detector = ShotDetector(shot_policy)
    pending: np.ndarray | None = None
    start = 0
    size = (0, 0)
    for pos, frame in enumerate(frames):
        img = np.asarray(frame.image)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise InputError(f"frame {frame.index}: expected uint8 RGB (H, W, 3), got {img.dtype} {img.shape}")
        h, w = img.shape[:2]
        if selector is None:
            size = (w, h)
            selector = KeyframeSelector(w, h, policy)
        elif (w, h) != size:
            raise InputError(f"frame {frame.index} is {w}x{h} but the clip started at {size[0]}x{size[1]}")
        path = images_dir / _image_name(pos)
        if not cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]):
            raise OutputError(f"{path}: cannot write the frame image ({write_failure(path)})")
        # the detector decides on a cut one frame late: each frame goes to its shot's
        # keyframe selector once the next one has been seen
        cut = detector.add(img)
        if pending is not None:
            if cut == pos - 1:
                spans.append((start, pos - 1, selector))
                start, selector = pos - 1, KeyframeSelector(w, h, policy)
            selector.add(pending)
        pending = img
        indices.append(int(frame.index))
        _report(progress, "frames", pos + 1, 0)
    if selector is not None:
        if pending is not None:
            selector.add(pending)
        spans.append((start, len(indices), selector))
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < max(2, shot_policy.min_shot):
        # a cut just before the end leaves too few frames to reconstruct: keep them with the
        # shot before, with a warning from combine_shots' caller
        log.warning("shots: a scene cut %d frame(s) before the end is ignored (too few frames for a shot)",
                    spans[-1][1] - spans[-1][0])
        lo, _, sel = spans[-2]
        spans[-2:] = [(lo, len(indices), sel)]
    return indices, spans, size


def _mapped_enough(rec, num_keyframes: int) -> bool:
    """A keyframe model worth keeping: at least 30 % of the keyframes (3, or 2 of 2) and enough points."""
    min_reg = max(3, int(0.3 * num_keyframes)) if num_keyframes >= 3 else 2
    return rec is not None and rec.num_reg_images() >= min_reg and rec.num_points3D() >= _MIN_POINTS


def _work_dirs(work_dir: Path) -> tuple[Path, Path]:
    """Create ``work_dir/images`` and ``work_dir/sfm``; return them."""
    images_dir = work_dir / "images"
    sfm_dir = work_dir / "sfm"
    try:
        images_dir.mkdir(parents=True, exist_ok=True)
        sfm_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create SfM work folder {work_dir}: {exc}") from exc
    return images_dir, sfm_dir


def _given_intrinsics(intrinsics: Intrinsics | None, hfov_deg: float | None,
                      size: tuple[int, int]) -> tuple[Intrinsics | None, float | None]:
    """The fixed camera (rescaled to ``size``) and the initial focal guess from ``hfov_deg``."""
    w, h = size
    K = intrinsics
    if K is not None and (K.width, K.height) != (w, h):
        log.info("intrinsics given for %dx%d, frames are %dx%d: rescaling", K.width, K.height, w, h)
        K = K.scaled(w, h)
    focal_guess = None
    if hfov_deg is not None:
        try:
            focal_guess = Intrinsics.from_fov(hfov_deg, w, h).fx
        except ValueError as exc:
            raise InputError(f"hfov_deg: {exc}") from exc
        if K is not None:
            log.info("both intrinsics and hfov_deg given: the intrinsics win")
            focal_guess = None
    return K, focal_guess


def _with_halfway_frames(kf: list[int]) -> list[int]:
    """The keyframe positions ``kf`` with the frame halfway between each two that are not adjacent
    (the denser set the retries map)."""
    return sorted(set(kf) | {(a + b) // 2 for a, b in zip(kf, kf[1:]) if b - a > 1})


def _map_with_flow(sfm_dir: Path, images_dir: Path, kf: list[int], K: Intrinsics | None, focal_guess: float | None,
                   size: tuple[int, int], cfg, progress: ProgressFn | None, timings: dict, failed: tuple):
    """The last mapping attempt: keyframes linked by optical-flow tracks (:mod:`.sfm_flow`) instead
    of SIFT matches, in ``sfm_dir/flow`` (the SIFT database stays for the failure report).
    Returns ``(model, number of models, keyframes, note)``, or ``failed`` when it maps no better."""
    flow_dir = sfm_dir / "flow"
    flow_dir.mkdir(exist_ok=True)
    dense = _with_halfway_frames(kf)
    names = [_image_name(p) for p in dense]
    log.info("SfM: no model from SIFT features; retrying with optical-flow tracks over %d keyframes", len(dense))
    preset = rescue_preset(cfg)
    rec, num = _map_keyframes(flow_dir, images_dir, names, K, focal_guess, size, preset, progress, timings,
                              matcher=lambda db: write_flow_matches(db, images_dir, names, dense, preset.overlap))
    if not _mapped_enough(rec, len(dense)):
        return failed
    timings["num_keyframes"] = len(dense)
    note = (f"sfm: SIFT found too little to link the keyframes (faint texture or blur?); recovered with optical-flow "
            f"tracks over {len(dense)} keyframes, the radial distortion fixed at 0 while mapping")
    return rec, num, dense, note


def _keyframe_model(rec, n: int) -> tuple[dict[int, np.ndarray], dict[int, tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """World-to-camera 3x4 poses and 2D-3D observations of the model's keyframes (by stream
    position), and the positive z-depths of their points in their cameras."""
    pos_of_name = {_image_name(p): p for p in range(n)}
    posed_w2c: dict[int, np.ndarray] = {}
    kf_obs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    depths = []
    for iid in rec.reg_image_ids():
        im = rec.images[iid]
        p = pos_of_name[im.name]
        M = im.cam_from_world().matrix()
        posed_w2c[p] = M
        xy, xyz, xyz_all = _keyframe_observations(rec, im)
        kf_obs[p] = (xy, xyz)
        if len(xyz_all):
            depths.append(xyz_all @ M[2, :3] + M[2, 3])  # z in this keyframe's camera
    z = np.concatenate(depths) if depths else np.zeros(0)
    return posed_w2c, kf_obs, z[z > 0]


def _poses_c2w(posed_w2c: dict[int, np.ndarray], extra: dict[int, np.ndarray], n: int,
               scale: float) -> list[np.ndarray | None]:
    """Camera-to-world 4x4 poses (translation times ``scale``) of the ``n`` frames, ``None`` where unposed."""
    poses: list[np.ndarray | None] = []
    for p in range(n):
        M = posed_w2c.get(p, extra.get(p))
        if M is None:
            poses.append(None)
            continue
        c2w = np.eye(4)
        c2w[:3, :3] = M[:3, :3].T
        c2w[:3, 3] = -M[:3, :3].T @ M[:3, 3] * scale
        poses.append(c2w)
    return poses


def _pose_sources(poses: list[np.ndarray | None], mapped: dict[int, np.ndarray], indices: list[int],
                  warnings: list[str]) -> list[str]:
    """``Cameras.pose_sources`` of the SfM result (mapped / tracked, and how the unposed frames
    are filled: interpolated / copied); one warning per kind of filled pose, logged."""
    sources = [k or ("mapped" if p in mapped else "tracked") for p, k in enumerate(pose_fill_kinds(poses))]
    interpolated = [indices[p] for p, k in enumerate(sources) if k == "interpolated"]
    copied = [indices[p] for p, k in enumerate(sources) if k == "copied"]
    notes = []
    if interpolated:
        notes.append(f"interpolated: {len(interpolated)} frame(s) could not be registered and got poses "
                     f"interpolated between registered neighbours: {interpolated}")
    if copied:
        notes.append(f"copied: {len(copied)} frame(s) before the first / after the last registered frame "
                     f"could not be registered and got the nearest registered pose copied (not measured): {copied}")
    for msg in notes:
        log.warning(msg)
    warnings.extend(notes)
    return sources


def _intrinsics_of(cam, w: int, h: int) -> Intrinsics:
    """OpenCV-convention intrinsics of a COLMAP camera (SIMPLE_RADIAL's ``k`` kept as ``k1``)."""
    params = [float(v) for v in cam.params]
    if cam.model.name == "SIMPLE_RADIAL":
        f, cx, cy, k = params
        return Intrinsics(f, f, cx - 0.5, cy - 0.5, w, h, k1=k)
    if cam.model.name == "PINHOLE":
        fx, fy, cx, cy = params
        return Intrinsics(fx, fy, cx - 0.5, cy - 0.5, w, h)
    raise ReconstructionError(f"unexpected COLMAP camera model {cam.model.name}")  # pragma: no cover


def _export_text(result: Cameras, sfm_dir: Path, n: int) -> None:
    """Write the result as a COLMAP text model to ``sfm_dir/model_text`` (a convenience: failures only log)."""
    try:
        from .colmap_io import write_colmap_text

        write_colmap_text(result, sfm_dir / "model_text", [_image_name(p) for p in range(n)])
    except OutputError as exc:
        log.warning("could not export the COLMAP text model: %s", exc)


@dataclass
class _Job:
    """What every reconstruction of one clip shares: the camera given or guessed, the preset,
    progress and timings."""

    K: Intrinsics | None
    hfov_deg: float | None
    focal_guess: float | None
    size: tuple[int, int]
    cfg: SfmPreset
    preset: str
    progress: ProgressFn | None
    timings: dict
    #: ``K.k1`` is known (held) even when 0; else a 0 means not given and the term is refined
    #: (:func:`~steadydepth.cameras.sfm_focal.hold_intrinsics`)
    k1_known: bool = False


@quiet_colmap()
def estimate_cameras(
    frames: Iterable[Frame],
    work_dir: str | Path,
    *,
    intrinsics: Intrinsics | None = None,
    hfov_deg: float | None = None,
    preset: str = "balanced",
    progress: Callable[[str, int, int], None] | None = None,
    timings: dict | None = None,
    chunks: ChunkPolicy = DEFAULT_CHUNKS,
    shots: ShotPolicy | None = None,
) -> Cameras:
    """Intrinsics and a camera-to-world pose for every frame of a (mostly static) scene.

    ``frames``: :class:`~steadydepth.types.Frame` at the processing resolution, uint8 RGB,
    consumed once as a stream (written to ``work_dir/images``; ``work_dir/sfm`` holds the
    COLMAP database, models and a text export ``sfm/model_text`` of the result).
    ``intrinsics``: known camera (OpenCV convention; rescaled if given for another size) —
    seeds the mapping, then held (:func:`~steadydepth.cameras.sfm_focal.hold_intrinsics`: its
    radial term is refined when ``k1`` is 0, i.e. not given). ``hfov_deg``: horizontal field
    of view used as the initial focal guess (refined). ``preset``: ``fast`` / ``balanced`` / ``fine`` (keyframe budget, SIFT
    features, matching window). ``progress(stage, done, total)`` is called for stages
    ``frames`` (total 0 = unknown), ``extraction``, ``matching``, ``mapping``,
    ``registration``. ``timings``, if given, receives seconds per stage and counts.
    ``chunks``: when a long shot is reconstructed in overlapping chunks
    (:mod:`~steadydepth.cameras.sfm_chunks`); ``shots``: scene-cut detection
    (:mod:`~steadydepth.cameras.shots`; default policy when ``None``): every shot is
    reconstructed on its own, with its own scale (``Cameras.shots``).

    Returns :class:`~steadydepth.types.Cameras` with ``poses[i]`` for the i-th frame (every
    frame posed; see module docstring for how), ``frame_indices`` = ``Frame.index``,
    sparse ``points``/``colors``, ``units="scene"`` with the median keyframe depth of the
    points = 1, ``source="pycolmap"``. Raises :class:`ReconstructionError` for fewer than
    2 frames, :class:`InputError` for bad frames or presets.
    """
    if preset not in SFM_PRESETS:
        raise InputError(f"unknown preset '{preset}': choose one of {', '.join(SFM_PRESETS)}")
    if hfov_deg is not None and not 1.0 < float(hfov_deg) < 179.0:
        raise InputError(f"hfov_deg must be in (1, 179) degrees, got {hfov_deg}")
    cfg = SFM_PRESETS[preset]
    timings = {} if timings is None else timings
    images_dir, sfm_dir = _work_dirs(Path(work_dir))

    t0 = time.perf_counter()
    indices, spans, size = _stream_frames(frames, images_dir, cfg.keyframes, shots or ShotPolicy(), progress)
    timings["frames"] = time.perf_counter() - t0
    n = len(indices)
    timings["num_frames"] = n
    if n < 2 or not spans:
        raise ReconstructionError(f"structure from motion needs at least 2 frames, got {n}")
    if max(size) < SMALL_FRAME_LONG_SIDE and cfg.first_octave == 0:
        cfg = replace(cfg, first_octave=-1)  # small frames: SIFT on the doubled image
    K, focal_guess = _given_intrinsics(intrinsics, hfov_deg, size)
    if K is None and focal_guess is None:
        focal_guess = _guess_intrinsics(None, None, size)[0].fx  # seed the mapping with the default guess
    job = _Job(K, hfov_deg, focal_guess, size, cfg, preset, progress, timings)
    if len(spans) == 1:
        return _reconstruct_shot(images_dir, sfm_dir, indices, spans[0][2], job, chunks)
    results = []
    for k, (lo, hi, selector) in enumerate(spans):
        folder = sfm_dir / "shots" / f"{k:02d}"
        shot_images = link_span(images_dir, folder, lo, hi)
        log.info("SfM: shot %d/%d, frames %d-%d", k + 1, len(spans), indices[lo], indices[hi - 1])
        shot_job = replace(job, timings={})
        results.append(_reconstruct_shot(shot_images, folder / "sfm", indices[lo:hi], selector, shot_job, chunks))
        add_timings(timings, shot_job.timings)
    return combine_shots(results, [(lo, hi) for lo, hi, _ in spans], indices)


def _reconstruct_shot(images_dir: Path, sfm_dir: Path, indices: list[int], selector: KeyframeSelector, job: _Job,
                      chunks: ChunkPolicy) -> Cameras:
    """One shot (frames ``0 .. len(indices)-1`` of ``images_dir``): in chunks when long, else at once."""
    n = len(indices)
    if n < 2:
        raise ReconstructionError(f"structure from motion needs at least 2 frames, got {n}")
    if selector.is_static:
        job.timings["num_keyframes"] = 1
        return _static_cameras(indices, job.size, job.K, job.hfov_deg,
                               f"static camera (image motion under {job.cfg.keyframes.static_px} px over the clip)")
    plan = plan_chunks(selector.candidates, n, job.cfg.keyframes, chunks)
    if len(plan) > 1:
        return reconstruct_chunked(images_dir, sfm_dir, indices, selector.candidates, plan, job, _reconstruct)
    return _reconstruct(images_dir, sfm_dir, indices, selector.select(), job)


# Long on purpose: the SfM steps in order with their fallbacks (rotation only, too few
# points) returning early; each step is a helper of this package, what remains is the decisions.
def _reconstruct(images_dir: Path, sfm_dir: Path, indices: list[int], kf: list[int], job: _Job) -> Cameras:
    """Cameras of the frames ``0 .. len(indices)-1`` of ``images_dir`` from the keyframes ``kf``
    (positions), in the world and scale of their own model (median keyframe depth 1)."""
    K, hfov_deg, focal_guess, size, cfg, timings = job.K, job.hfov_deg, job.focal_guess, job.size, job.cfg, job.timings
    progress, preset = job.progress, job.preset
    sfm_dir.mkdir(parents=True, exist_ok=True)
    n = len(indices)
    w, h = size
    timings["num_keyframes"] = len(kf)
    log.info("SfM: %d frames, %d keyframes (%s preset)", n, len(kf), preset)
    names = [_image_name(p) for p in kf]
    rec, num_models = _map_keyframes(sfm_dir, images_dir, names, K, focal_guess, size, cfg, progress, timings)
    rescue_note = None
    if not _mapped_enough(rec, len(kf)) and len(kf) >= 3:
        # blur or faint texture: too few features to link the keyframes. Try once more with
        # twice the keyframes (halfway frames added) and several times the features.
        dense = _with_halfway_frames(kf)
        log.info("SfM: the mapping registered %d of %d keyframes; retrying with %d keyframes and more features",
                 0 if rec is None else rec.num_reg_images(), len(kf), len(dense))
        rec2, num2 = _map_keyframes(sfm_dir, images_dir, [_image_name(p) for p in dense], K, focal_guess, size,
                                    rescue_preset(cfg), progress, timings)
        if _mapped_enough(rec2, len(dense)):
            rescue_note = (f"sfm: the first mapping failed (blur or faint texture?); recovered with {len(dense)} "
                           "keyframes, more SIFT features and the radial distortion fixed at 0 while mapping")
            rec, num_models, kf = rec2, num2, dense
            timings["num_keyframes"] = len(kf)
    if not _mapped_enough(rec, len(kf)) and len(kf) >= 3:
        rec, num_models, kf, rescue_note = _map_with_flow(sfm_dir, images_dir, kf, K, focal_guess, size, cfg,
                                                         progress, timings, (rec, num_models, kf, rescue_note))
    if not _mapped_enough(rec, len(kf)):
        got = 0 if rec is None else rec.num_reg_images()
        npts = 0 if rec is None else rec.num_points3D()
        log.info("SfM: the mapping registered %d of %d keyframes with %d points", got, len(kf), npts)
        why, advice = mapping_failure(sfm_dir, n, len(kf), size)
        return _rotation_cameras(images_dir, indices, size, K, hfov_deg, why, timings, advice)

    focal_note = None
    if K is not None:
        rec = hold_intrinsics(rec, K, k1_known=job.k1_known)
    else:
        t0 = time.perf_counter()
        rec = check_distortion(rec)
        # the mapping's seed is the prior: --fov, else the default guess
        rec, focal_note = _check_focal(rec, focal_guess, from_fov=hfov_deg is not None)
        timings["focal_check"] = time.perf_counter() - t0

    # --- poses of the keyframe model (COLMAP world, world-to-camera 3x4)
    t0 = time.perf_counter()
    posed_w2c, kf_obs, z = _keyframe_model(rec, n)
    cam = rec.cameras[rec.images[next(iter(rec.reg_image_ids()))].camera_id]
    if len(z) < 10:
        return _rotation_cameras(images_dir, indices, size, K, hfov_deg,
                                 "structure from motion triangulated almost no points", timings)
    scale = 1.0 / float(np.median(z))

    # pure rotation check: camera centres spread relative to the scene depth
    centres = np.array([-M[:3, :3].T @ M[:3, 3] for M in posed_w2c.values()]) * scale
    spread = float(np.linalg.norm(centres - centres.mean(0), axis=1).max())
    if spread < 0.01:
        return _rotation_cameras(images_dir, indices, size, K, hfov_deg,
                                 f"camera centres move only {spread:.4f} x the median scene depth", timings)

    # --- register every other frame against the keyframe model
    extra = _register_frames(cam, images_dir, n, posed_w2c, kf_obs, size, cfg, progress)
    timings["registration"] = time.perf_counter() - t0

    warnings: list[str] = [w for w in (rescue_note, focal_note) if w]
    lost_kf = [indices[p] for p in kf if p not in posed_w2c]
    if num_models > 1 and lost_kf:
        warnings.append(f"sfm: {num_models} disconnected models; kept the largest, keyframes {lost_kf} "
                        "outside it were registered by tracking where possible")
    poses = _poses_c2w(posed_w2c, extra, n, scale)
    sources = _pose_sources(poses, posed_w2c, indices, warnings)
    missing = [indices[p] for p in range(n) if poses[p] is None]
    if missing:
        poses = interpolate_poses(poses)

    # --- intrinsics (OpenCV convention, with the radial distortion)
    intr = _intrinsics_of(cam, w, h)

    pts = np.array([p.xyz for p in rec.points3D.values()], dtype=np.float64).reshape(-1, 3) * scale
    cols = np.array([p.color for p in rec.points3D.values()], dtype=np.uint8).reshape(-1, 3)
    timings["num_registered_keyframes"] = len(posed_w2c)
    timings["num_registered_tracking"] = len(extra)
    timings["num_interpolated"] = len(missing)
    result = Cameras(intrinsics=intr, poses=poses, frame_indices=list(indices), points=pts, colors=cols,
                     units="scene", source="pycolmap", warnings=warnings, pose_sources=sources)
    _export_text(result, sfm_dir, n)
    log.info("SfM: %d/%d keyframes in the model, %d frames by tracking, %d interpolated, focal %.1f px, k1 %.4g",
             len(posed_w2c), len(kf), len(extra), len(missing), intr.fx, intr.k1)
    return result
