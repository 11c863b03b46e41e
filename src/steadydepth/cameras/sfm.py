"""Cameras for every frame of a video by structure from motion (pycolmap, CPU).

Pipeline of :func:`estimate_cameras`:

1. **Stream** the frames (processing resolution, uint8 RGB): each is written to
   ``work_dir/images/NNNNNN.jpg`` (``NNNNNN`` = position in the stream) and fed to the
   online :class:`~steadydepth.cameras.keyframes.KeyframeSelector`; only small per-frame
   data stays in memory.
2. **Map the keyframes** with pycolmap: SIFT extraction (one shared camera,
   ``SIMPLE_RADIAL`` with its focal refined; a fixed ``PINHOLE`` when intrinsics are given),
   sequential matching, incremental mapping; models with under 100 points or bogus camera
   parameters are dropped (all dropped with SIMPLE_RADIAL: one retry with ``k`` fixed at 0),
   and of the rest the one with most registered images is kept.
   When no intrinsics are given, the focal's conditioning is checked (:func:`_check_focal`):
   if bundle adjustment with the focal fixed 20 % off its estimate fits as well (forward
   motion, motion along a dominant plane), the clip does not determine it and the focal is
   set to the prior (``--fov``, else :data:`DEFAULT_FOCAL_FACTOR` x the long side) with an
   ``"intrinsics:"`` warning. Measured end to end on 60-frame synthetic clips (true focal 416
   px): drone ATE 0.146 -> 0.021 (SfM had 2411 px), forward 0.272 -> 0.027.
3. **Register every other frame** (and keyframes the model missed): the triangulated
   keypoints (up to 600, spread over the image) of the nearer posed keyframe are tracked
   frame by frame with forward-backward checked Lucas-Kanade flow (the other neighbour
   takes over where a chain breaks), and the 2D-3D matches give the pose by
   ``pycolmap.estimate_and_refine_absolute_pose`` (LO-RANSAC + refinement). Frames that
   still fail get slerp/lerp-interpolated poses and a ``"interpolated:"`` warning.
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
distortion ``k`` (COLMAP: ``u = f * x * (1 + k r^2) + cx``) is not removed; it is
reported as a warning starting with ``"distortion:"`` with its size in pixels at the
image corner.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError, OutputError, ReconstructionError
from ..types import Cameras, Frame, Intrinsics
from .keyframes import KEYFRAME_PRESETS, KeyframePolicy, KeyframeSelector
from ..geometry import interpolate_poses

__all__ = ["estimate_cameras", "SfmPreset", "SFM_PRESETS", "DEFAULT_FOCAL_FACTOR"]

log = logging.getLogger(__name__)

#: focal guess (times the long image side) when nothing else is known; COLMAP's default
DEFAULT_FOCAL_FACTOR = 1.2

#: a keyframe model with fewer triangulated points is not trusted (pure rotation gives a handful)
_MIN_POINTS = 100
#: below this relative rise of the reprojection error for a 20 % focal change, the clip does not determine the focal
_FOCAL_MIN_RISE = 0.02
#: triangulated keypoints per keyframe tracked into the other frames (spread over the image)
_MAX_TRACKED = 600

ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SfmPreset:
    """Speed/accuracy knobs of one preset.

    ``max_features``: SIFT features per keyframe; ``first_octave``: SIFT's first octave
    (-1 doubles the image first: about 3x the features, about 3-4x slower); ``overlap``:
    sequential matching window (keyframes); ``min_inliers``: 2D-3D inliers needed to accept
    a registered frame.
    """

    keyframes: KeyframePolicy
    max_features: int
    overlap: int
    first_octave: int = -1
    min_inliers: int = 20


SFM_PRESETS: dict[str, SfmPreset] = {
    "fast": SfmPreset(KEYFRAME_PRESETS["fast"], max_features=2048, overlap=6, first_octave=0),
    "balanced": SfmPreset(KEYFRAME_PRESETS["balanced"], max_features=4096, overlap=8, first_octave=0),
    "best": SfmPreset(KEYFRAME_PRESETS["best"], max_features=8192, overlap=12),
}

_LK = dict(winSize=(15, 15), maxLevel=3, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))


def _report(progress: ProgressFn | None, stage: str, done: int, total: int) -> None:
    """Call ``progress`` if given; otherwise log the end of each stage at INFO."""
    if progress is not None:
        progress(stage, done, total)
    elif total > 0 and done == total:
        log.info("SfM %s: %d/%d done", stage, done, total)


@contextlib.contextmanager
def _quiet_colmap() -> Iterator[None]:
    """Silence COLMAP's glog INFO output unless this module logs at DEBUG."""
    import pycolmap

    old = pycolmap.logging.minloglevel
    if not log.isEnabledFor(logging.DEBUG):
        pycolmap.logging.minloglevel = 2
    try:
        yield
    finally:
        pycolmap.logging.minloglevel = old


def _image_name(pos: int) -> str:
    return f"{pos:06d}.jpg"


# --------------------------------------------------------------------------- streaming


def _stream_frames(
    frames: Iterable[Frame], images_dir: Path, policy: KeyframePolicy, progress: ProgressFn | None
) -> tuple[list[int], KeyframeSelector | None, tuple[int, int]]:
    indices: list[int] = []
    selector: KeyframeSelector | None = None
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
            raise OutputError(f"cannot write frame image {path}")
        selector.add(img)
        indices.append(int(frame.index))
        _report(progress, "frames", pos + 1, 0)
    return indices, selector, size


# --------------------------------------------------------------------------- COLMAP mapping


def _map_keyframes(
    sfm_dir: Path, images_dir: Path, names: list[str], K: Intrinsics | None, focal_guess: float | None,
    size: tuple[int, int], preset: SfmPreset, progress: ProgressFn | None, timings: dict,
):
    import pycolmap

    db = sfm_dir / "database.db"
    models = sfm_dir / "models"
    if db.exists():
        db.unlink()
    w, h = size

    reader = pycolmap.ImageReaderOptions()
    if K is not None:
        reader.camera_model = "PINHOLE"
        reader.camera_params = f"{K.fx},{K.fy},{K.cx + 0.5},{K.cy + 0.5}"
    else:
        reader.camera_model = "SIMPLE_RADIAL"
        if focal_guess is not None:
            reader.camera_params = f"{focal_guess},{w / 2.0},{h / 2.0},0"
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.sift.max_num_features = preset.max_features
    extraction.sift.first_octave = preset.first_octave

    t0 = time.perf_counter()
    _report(progress, "extraction", 0, len(names))
    with _quiet_colmap():
        pycolmap.extract_features(
            db, images_dir, image_names=names, camera_mode=pycolmap.CameraMode.SINGLE,
            reader_options=reader, extraction_options=extraction,
        )
    _report(progress, "extraction", len(names), len(names))
    timings["extraction"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    _report(progress, "matching", 0, len(names))
    pairing = pycolmap.SequentialPairingOptions()
    pairing.overlap = preset.overlap
    pairing.quadratic_overlap = True
    with _quiet_colmap():
        pycolmap.match_sequential(db, pairing_options=pairing)
    _report(progress, "matching", len(names), len(names))
    timings["matching"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    opts = pycolmap.IncrementalPipelineOptions()
    opts.min_model_size = 3
    opts.extract_colors = True
    opts.random_seed = 0
    # video keyframes have small baselines: start the initial-pair search at 4 degrees
    # (COLMAP halves it twice more when no model comes out) instead of 16.
    opts.mapper.init_min_tri_angle = 4.0
    if K is not None:
        opts.ba_refine_focal_length = False
        opts.ba_refine_principal_point = False
        opts.ba_refine_extra_params = False
        opts.mapper.abs_pose_refine_focal_length = False
        opts.mapper.abs_pose_refine_extra_params = False
    count = [0]

    def _next_image() -> None:
        count[0] += 1
        _report(progress, "mapping", min(count[0], len(names)), len(names))

    def _run(options):
        if models.exists():
            shutil.rmtree(models)
        models.mkdir(parents=True)
        count[0] = 0
        _report(progress, "mapping", 0, len(names))
        with _quiet_colmap():
            recs = pycolmap.incremental_mapping(db, images_dir, models, options=options,
                                                next_image_callback=_next_image)
        good = {k: r for k, r in recs.items() if _model_ok(r)}
        if len(good) < len(recs):
            log.info("SfM: %d of %d models rejected (too few points or bogus camera parameters)",
                     len(recs) - len(good), len(recs))
        return good, len(recs)

    good, num = _run(opts)
    if not good and K is None and num > 0:
        # SIMPLE_RADIAL can diverge on weak geometry (e.g. forward motion): retry with k fixed at 0
        log.info("SfM: retrying the mapping with the radial distortion fixed at 0")
        opts.ba_refine_extra_params = False
        opts.mapper.abs_pose_refine_extra_params = False
        good, num = _run(opts)
    timings["mapping"] = time.perf_counter() - t0
    if not good:
        return None, num
    best = max(good, key=lambda k: (good[k].num_reg_images(), good[k].num_points3D()))
    if len(good) > 1:
        log.info("SfM produced %d disconnected models (%s registered images); keeping the largest",
                 len(good), sorted((r.num_reg_images() for r in good.values()), reverse=True))
    return good[best], len(good)


def _model_ok(rec) -> bool:
    """A usable keyframe model: enough points and a plausible camera (focal 0.1-10 x size, |k| < 0.5)."""
    if rec.num_points3D() < _MIN_POINTS or rec.num_reg_images() < 2:
        return False
    return not any(c.has_bogus_params(0.1, 10.0, 0.5) for c in rec.cameras.values())


def _focal_fixed_ba(rec, focal: float, refine_distortion: bool = True):
    """A copy of ``rec`` bundle-adjusted with the shared focal fixed at ``focal`` (poses, points and,
    with ``refine_distortion``, the radial term free)."""
    import pycolmap

    out = pycolmap.Reconstruction(rec)
    for cid in list(out.cameras):
        cam = out.cameras[cid]
        params = np.array(cam.params, dtype=np.float64)
        params[0] = focal
        cam.params = params
        out.cameras[cid] = cam
    opts = pycolmap.BundleAdjustmentOptions()
    opts.refine_focal_length = False
    opts.refine_extra_params = refine_distortion
    opts.print_summary = False
    with _quiet_colmap():
        pycolmap.bundle_adjustment(out, opts)
    return out


def _check_focal(rec, prior: float, from_fov: bool):
    """Replace the mapped focal by ``prior`` when the keyframes do not determine it.

    The model is bundle-adjusted with its focal fixed at its own value and at ``1/1.2`` and
    ``1.2`` times it. When neither change raises the mean reprojection error by
    ``_FOCAL_MIN_RISE`` the focal is not determined by the video (camera translating along its
    axis, or parallel to a dominant plane: depth and focal trade off), and COLMAP's estimate is
    arbitrary (measured on a synthetic drone clip: 138 px in one run, 2411 px in another, for a
    true 416 px; reprojection error 0.207 px at every focal from 200 to 415 px). The focal is
    then moved to ``prior`` (the ``--fov`` value when ``from_fov``, else
    :data:`DEFAULT_FOCAL_FACTOR` x the long side) in steps of at most 20 %, each followed by a
    bundle adjustment; if that leaves a camera :func:`_model_ok` rejects (the radial term ran
    away), the walk is redone with the radial term fixed. A well-posed clip (synthetic orbit) raises the error by 14-16 % at
    +-20 %. Returns ``(model, warning)``: ``rec`` and None, or the re-adjusted copy and a
    warning starting with ``"intrinsics:"``.
    """
    f0 = float(next(iter(rec.cameras.values())).params[0])
    base = _focal_fixed_ba(rec, f0).compute_mean_reprojection_error()
    rises = []
    for factor in (1 / 1.2, 1.2):
        err = _focal_fixed_ba(rec, f0 * factor).compute_mean_reprojection_error()
        rises.append(err / max(base, 1e-12) if np.isfinite(err) else np.inf)
    if min(rises) >= 1.0 + _FOCAL_MIN_RISE:
        log.debug("SfM: focal %.1f px is determined (error x%.3f / x%.3f at -/+20 %%)", f0, *rises)
        return rec, None
    if from_fov:
        what = "the --fov value"
    else:
        what = (f"the default guess ({DEFAULT_FOCAL_FACTOR} x the long side); pass --fov or --intrinsics "
                "for undistorted geometry (depth stays consistent either way)")
    msg = (f"intrinsics: this clip does not determine the focal length (a 20 % focal change moves the "
           f"reprojection error by {100 * (min(rises) - 1):+.1f} %; typical for forward motion or motion "
           f"along a dominant plane): SfM's {f0:.1f} px replaced by {prior:.1f} px, {what}")
    log.warning(msg)
    # one big jump can flip points behind the cameras: walk there. A walk whose camera the mapper
    # itself would reject (_model_ok: |k| >= 0.5, seen: k = 94) is redone with the radial term kept.
    steps = max(1, int(np.ceil(abs(np.log(prior / f0)) / np.log(1.2))))
    for refine_distortion in (True, False):
        out = rec
        for f in f0 * (prior / f0) ** (np.arange(1, steps + 1) / steps):
            out = _focal_fixed_ba(out, float(f), refine_distortion)
        if _model_ok(out):
            break
    return out, msg


# --------------------------------------------------------------------------- registration


def _read_gray(images_dir: Path, pos: int) -> np.ndarray:
    g = cv2.imread(str(images_dir / _image_name(pos)), cv2.IMREAD_GRAYSCALE)
    if g is None:
        raise OutputError(f"cannot read back frame image {images_dir / _image_name(pos)}")
    return g


def _keyframe_observations(rec, image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An image's triangulated keypoints: ``(xy, xyz, xyz_all)`` with ``xy`` (N,2) OpenCV pixel
    positions and ``xyz`` (N,3) world points of at most ``_MAX_TRACKED`` of them (spread over
    the image), and ``xyz_all`` the world points of all of them."""
    xy, xyz = [], []
    for p in image.points2D:
        if p.has_point3D():
            xy.append(p.xy)
            xyz.append(rec.points3D[p.point3D_id].xyz)
    if not xy:
        return np.zeros((0, 2), np.float32), np.zeros((0, 3)), np.zeros((0, 3))
    xy_cv = (np.asarray(xy) - 0.5).astype(np.float32)
    xyz_a = np.asarray(xyz, dtype=np.float64)
    keep = _spread_subset(xy_cv, image.camera.width, image.camera.height, _MAX_TRACKED)
    return xy_cv[keep], xyz_a[keep], xyz_a


def _spread_subset(xy: np.ndarray, width: int, height: int, limit: int) -> np.ndarray:
    """Indices of at most ``limit`` points spread over an 8x6 grid (round robin over cells)."""
    if len(xy) <= limit:
        return np.arange(len(xy))
    cell = (np.clip(xy[:, 0] * 8 // max(width, 1), 0, 7) * 6 + np.clip(xy[:, 1] * 6 // max(height, 1), 0, 5))
    order = np.random.default_rng(0).permutation(len(xy))
    cell = cell[order].astype(int)
    rank = np.zeros(len(xy), int)  # position of each point within its cell
    counts: dict[int, int] = {}
    for k, c in enumerate(cell):
        rank[k] = counts.get(c, 0)
        counts[c] = rank[k] + 1
    return np.sort(order[np.argsort(rank, kind="stable")[:limit]])


def _chain_tracks(
    images_dir: Path, start: int, stop: int, step: int, pts: np.ndarray, xyz: np.ndarray, size: tuple[int, int]
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Track ``pts`` (in frame ``start``) frame by frame to ``start+step, ...`` up to (excluding) ``stop``."""
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if len(pts) < 8:
        return out
    w, h = size
    prev = _read_gray(images_dir, start)
    cur_pts = pts.reshape(-1, 1, 2).astype(np.float32)
    cur_xyz = xyz
    for pos in range(start + step, stop, step):
        g = _read_gray(images_dir, pos)
        nxt, st, _ = cv2.calcOpticalFlowPyrLK(prev, g, cur_pts, None, **_LK)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(g, prev, nxt, None, **_LK)
        fb = np.linalg.norm((back - cur_pts).reshape(-1, 2), axis=1)
        q = nxt.reshape(-1, 2)
        ok = (st.ravel() == 1) & (st2.ravel() == 1) & (fb < 0.7)
        ok &= (q[:, 0] >= 0) & (q[:, 0] <= w - 1) & (q[:, 1] >= 0) & (q[:, 1] <= h - 1)
        cur_pts, cur_xyz = nxt[ok], cur_xyz[ok]
        out[pos] = (cur_pts.reshape(-1, 2).copy(), cur_xyz)
        prev = g
        if len(cur_pts) < 8:
            break
    return out


def _short(chain: dict, lo: int, hi: int, enough: int) -> bool:
    """True when some frame in ``[lo, hi)`` has fewer than ``enough`` tracked points in ``chain``."""
    return any(p not in chain or len(chain[p][0]) < enough for p in range(lo, hi))


def _register_frames(
    camera, images_dir: Path, num_frames: int, posed_w2c: dict[int, np.ndarray], kf_obs: dict,
    size: tuple[int, int], preset: SfmPreset, progress: ProgressFn | None,
) -> dict[int, np.ndarray]:
    """Absolute poses (3x4 world-to-camera, COLMAP world) of frames without one."""
    import pycolmap

    anchors = sorted(posed_w2c)
    todo = [p for p in range(num_frames) if p not in posed_w2c]
    result: dict[int, np.ndarray] = {}
    est = pycolmap.AbsolutePoseEstimationOptions()
    est.ransac.max_error = 4.0
    est.ransac.random_seed = 0
    ref = pycolmap.AbsolutePoseRefinementOptions()
    done = 0
    # segments between consecutive anchors (plus the head and tail of the clip)
    bounds = [-1, *anchors, num_frames]
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b - a <= 1:
            continue
        # each frame is tracked from its nearer anchor; a chain that breaks is taken over
        # by the other anchor's chain over the whole segment
        corr: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {p: [] for p in range(a + 1, b)}
        both = a >= 0 and b < num_frames
        mid = (a + b) // 2
        fwd = _chain_tracks(images_dir, a, mid + 1 if both else b, 1, *kf_obs[a], size) if a >= 0 else {}
        bwd = _chain_tracks(images_dir, b, mid if both else a, -1, *kf_obs[b], size) if b < num_frames else {}
        enough = 2 * preset.min_inliers
        if both and _short(bwd, mid + 1, b, enough):
            fwd = _chain_tracks(images_dir, a, b, 1, *kf_obs[a], size)
        if both and _short(fwd, a + 1, mid + 1, enough):
            bwd = _chain_tracks(images_dir, b, a, -1, *kf_obs[b], size)
        for chain in (fwd, bwd):
            for p, c in chain.items():
                corr[p].append(c)
        for p in range(a + 1, b):
            done += 1
            _report(progress, "registration", done, len(todo))
            if not corr[p]:
                continue
            x2 = np.concatenate([c[0] for c in corr[p]]).astype(np.float64) + 0.5  # COLMAP pixel convention
            x3 = np.concatenate([c[1] for c in corr[p]])
            if len(x2) < preset.min_inliers:
                continue
            try:
                r = pycolmap.estimate_and_refine_absolute_pose(x2, x3, camera, est, ref)
            except Exception as exc:  # pragma: no cover - pycolmap raises on degenerate input
                log.debug("absolute pose of frame %d failed: %s", p, exc)
                r = None
            if r is None or r["num_inliers"] < max(preset.min_inliers, 0.3 * len(x2)):
                continue
            result[p] = r["cam_from_world"].matrix()
    return result


# --------------------------------------------------------------------------- fallbacks


def _homography_chain(images_dir: Path, n: int) -> tuple[list[np.ndarray | None], list[int]]:
    """Homographies H_0i (frame 0 -> frame i) composed from consecutive LK homographies."""
    Hs: list[np.ndarray | None] = [np.eye(3)]
    failed: list[int] = []
    prev = _read_gray(images_dir, 0)
    H_acc = np.eye(3)
    for pos in range(1, n):
        g = _read_gray(images_dir, pos)
        pts = cv2.goodFeaturesToTrack(prev, maxCorners=800, qualityLevel=0.01, minDistance=7)
        H = None
        if pts is not None and len(pts) >= 12:
            nxt, st, _ = cv2.calcOpticalFlowPyrLK(prev, g, pts, None, **_LK)
            ok = st.ravel() == 1
            if ok.sum() >= 12:
                H, _ = cv2.findHomography(pts[ok], nxt[ok], cv2.RANSAC, 1.5)
        if H is None:
            failed.append(pos)
            H = np.eye(3)
        H_acc = H @ H_acc
        Hs.append(H_acc / np.cbrt(np.linalg.det(H_acc)))
        prev = g
    return Hs, failed


def _rotation_from_h(H: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, float]:
    M = np.linalg.inv(K) @ H @ K
    U, S, Vt = np.linalg.svd(M)
    R = U @ Vt
    if np.linalg.det(R) < 0:
        R = -R
    return R, float(S[0] / S[2] - 1.0)


def _estimate_focal_from_rotation(Hs: list[np.ndarray], size: tuple[int, int]) -> float | None:
    """Focal that makes ``K^-1 H K`` closest to a rotation for all homographies (1-D search)."""
    w, h = size
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], float).T
    useful = []
    for H in Hs:
        q = H @ corners
        q = q[:2] / q[2]
        if np.median(np.linalg.norm(q - corners[:2], axis=0)) > 0.05 * w:
            useful.append(H)
    if not useful:
        return None

    def cost(f: float) -> float:
        K = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]])
        return sum(_rotation_from_h(H, K)[1] for H in useful)

    fs = np.geomspace(0.25 * w, 6.0 * w, 80)
    costs = [cost(f) for f in fs]
    k = int(np.argmin(costs))
    if k in (0, len(fs) - 1):  # no interior minimum: the focal is not determined
        return None
    from scipy.optimize import minimize_scalar

    res = minimize_scalar(cost, bounds=(fs[k - 1], fs[k + 1]), method="bounded", options={"xatol": 1e-3 * fs[k - 1]})
    return float(res.x)


def _guess_intrinsics(
    K: Intrinsics | None, hfov_deg: float | None, size: tuple[int, int]
) -> tuple[Intrinsics, str | None]:
    w, h = size
    if K is not None:
        return K, None
    if hfov_deg is not None:
        return Intrinsics.from_fov(hfov_deg, w, h), None
    f = DEFAULT_FOCAL_FACTOR * max(w, h)
    return (Intrinsics(f, f, (w - 1) / 2.0, (h - 1) / 2.0, w, h),
            f"intrinsics: focal length not measurable, guessed {f:.1f} px ({DEFAULT_FOCAL_FACTOR} x long side)")


def _static_cameras(indices, size, K, hfov_deg, reason: str) -> Cameras:
    intr, note = _guess_intrinsics(K, hfov_deg, size)
    warnings = [f"no-parallax: {reason}; every frame has the identity pose"]
    if note:
        warnings.append(note)
    for wmsg in warnings:
        log.warning(wmsg)
    return Cameras(intrinsics=intr, poses=[np.eye(4) for _ in indices], frame_indices=list(indices),
                   points=np.zeros((0, 3)), colors=np.zeros((0, 3), np.uint8), units="scene",
                   source="pycolmap", warnings=warnings)


def _rotation_cameras(images_dir, indices, size, K, hfov_deg, reason: str, timings: dict) -> Cameras:
    t0 = time.perf_counter()
    n = len(indices)
    Hs, failed = _homography_chain(images_dir, n)
    warnings = []
    if K is None and hfov_deg is None:
        f = _estimate_focal_from_rotation(Hs, size)
        if f is not None:
            w, h = size
            intr = Intrinsics(f, f, (w - 1) / 2.0, (h - 1) / 2.0, w, h)
            warnings.append(f"intrinsics: focal {f:.1f} px estimated from rotation-only homographies "
                            "(principal point assumed at the image centre)")
        else:
            intr, note = _guess_intrinsics(None, None, size)
            warnings.append(note)
    else:
        intr, _ = _guess_intrinsics(K, hfov_deg, size)
    Kmat = intr.K
    poses = []
    worst = 0.0
    for H in Hs:
        R_i0, dev = _rotation_from_h(H, Kmat)  # X_i = R_i0 X_0
        worst = max(worst, dev)
        c2w = np.eye(4)
        c2w[:3, :3] = R_i0.T
        poses.append(c2w)
    note = ""
    if worst > 0.05:
        note = "; the homographies are far from rotations, so the camera probably translates: poses are unreliable"
    warnings.insert(0, f"no-parallax: {reason}; poses are rotations from homographies with zero translation "
                       f"(largest deviation of K^-1 H K from a rotation: {worst:.3f}){note}")
    if failed:
        warnings.append(f"homography failed for frames {[indices[p] for p in failed]}: rotation carried over")
    for wmsg in warnings:
        log.warning(wmsg)
    timings["rotation_fallback"] = time.perf_counter() - t0
    return Cameras(intrinsics=intr, poses=poses, frame_indices=list(indices), points=np.zeros((0, 3)),
                   colors=np.zeros((0, 3), np.uint8), units="scene", source="pycolmap", warnings=warnings)


# --------------------------------------------------------------------------- main entry


def estimate_cameras(
    frames: Iterable[Frame],
    work_dir: str | Path,
    *,
    intrinsics: Intrinsics | None = None,
    hfov_deg: float | None = None,
    preset: str = "balanced",
    progress: Callable[[str, int, int], None] | None = None,
    timings: dict | None = None,
) -> Cameras:
    """Intrinsics and a camera-to-world pose for every frame of a (mostly static) scene.

    ``frames``: :class:`~steadydepth.types.Frame` at the processing resolution, uint8 RGB,
    consumed once as a stream (written to ``work_dir/images``; ``work_dir/sfm`` holds the
    COLMAP database, models and a text export ``sfm/model_text`` of the result).
    ``intrinsics``: known camera (OpenCV convention; rescaled if given for another size) —
    kept fixed. ``hfov_deg``: horizontal field of view used as the initial focal guess
    (refined). ``preset``: ``fast`` / ``balanced`` / ``best`` (keyframe budget, SIFT
    features, matching window). ``progress(stage, done, total)`` is called for stages
    ``frames`` (total 0 = unknown), ``extraction``, ``matching``, ``mapping``,
    ``registration``. ``timings``, if given, receives seconds per stage and counts.

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
    work_dir = Path(work_dir)
    images_dir = work_dir / "images"
    sfm_dir = work_dir / "sfm"
    try:
        images_dir.mkdir(parents=True, exist_ok=True)
        sfm_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create SfM work folder {work_dir}: {exc}") from exc

    t0 = time.perf_counter()
    indices, selector, size = _stream_frames(frames, images_dir, cfg.keyframes, progress)
    timings["frames"] = time.perf_counter() - t0
    n = len(indices)
    timings["num_frames"] = n
    if n < 2 or selector is None:
        raise ReconstructionError(f"structure from motion needs at least 2 frames, got {n}")
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

    if selector.is_static:
        timings["num_keyframes"] = 1
        return _static_cameras(indices, size, K, hfov_deg,
                               f"static camera (image motion under {cfg.keyframes.static_px} px over the clip)")

    kf = selector.select()
    timings["num_keyframes"] = len(kf)
    log.info("SfM: %d frames, %d keyframes (%s preset)", n, len(kf), preset)
    names = [_image_name(p) for p in kf]
    rec, num_models = _map_keyframes(sfm_dir, images_dir, names, K, focal_guess, size, cfg, progress, timings)
    min_reg = max(3, int(0.3 * len(kf))) if len(kf) >= 3 else 2
    if rec is None or rec.num_reg_images() < min_reg or rec.num_points3D() < _MIN_POINTS:
        got = 0 if rec is None else rec.num_reg_images()
        npts = 0 if rec is None else rec.num_points3D()
        reason = (f"structure from motion registered {got} of {len(kf)} keyframes with {npts} points "
                  "(pure rotation, too little parallax or too few features)")
        return _rotation_cameras(images_dir, indices, size, K, hfov_deg, reason, timings)

    focal_note = None
    if K is None:
        t0 = time.perf_counter()
        prior = _guess_intrinsics(None, hfov_deg, size)[0].fx  # --fov, else the default guess
        rec, focal_note = _check_focal(rec, prior, from_fov=hfov_deg is not None)
        timings["focal_check"] = time.perf_counter() - t0

    # --- poses of the keyframe model (COLMAP world, world-to-camera 3x4)
    t0 = time.perf_counter()
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
    cam = rec.cameras[rec.images[next(iter(rec.reg_image_ids()))].camera_id]
    z = np.concatenate(depths) if depths else np.zeros(0)
    z = z[z > 0]
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

    warnings: list[str] = [focal_note] if focal_note else []
    lost_kf = [indices[p] for p in kf if p not in posed_w2c]
    if num_models > 1 and lost_kf:
        warnings.append(f"sfm: {num_models} disconnected models; kept the largest, keyframes {lost_kf} "
                        "outside it were registered by tracking where possible")
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
    missing = [indices[p] for p in range(n) if poses[p] is None]
    if missing:
        msg = f"interpolated: {len(missing)} frame(s) could not be registered and got interpolated poses: {missing}"
        warnings.append(msg)
        log.warning(msg)
        poses = interpolate_poses(poses)

    # --- intrinsics (OpenCV convention) and distortion note
    params = [float(v) for v in cam.params]
    if cam.model.name == "SIMPLE_RADIAL":
        f, cx, cy, k = params
        intr = Intrinsics(f, f, cx - 0.5, cy - 0.5, w, h)
        r2 = ((w / 2.0) ** 2 + (h / 2.0) ** 2) / f**2
        corner_px = abs(k) * r2 * np.sqrt(r2) * f
        dmsg = (f"distortion: SIMPLE_RADIAL k={k:.6g} ({corner_px:.2f} px at the image corner); "
                "intrinsics and poses are pinhole, images are not undistorted")
        warnings.append(dmsg)
        if corner_px > 2.0:
            log.warning(dmsg)
    elif cam.model.name == "PINHOLE":
        fx, fy, cx, cy = params
        intr = Intrinsics(fx, fy, cx - 0.5, cy - 0.5, w, h)
    else:  # pragma: no cover - only the two models above are requested
        raise ReconstructionError(f"unexpected COLMAP camera model {cam.model.name}")

    pts = np.array([p.xyz for p in rec.points3D.values()], dtype=np.float64).reshape(-1, 3) * scale
    cols = np.array([p.color for p in rec.points3D.values()], dtype=np.uint8).reshape(-1, 3)
    timings["num_registered_keyframes"] = len(posed_w2c)
    timings["num_registered_tracking"] = len(extra)
    timings["num_interpolated"] = len(missing)
    result = Cameras(intrinsics=intr, poses=poses, frame_indices=list(indices), points=pts, colors=cols,
                     units="scene", source="pycolmap", warnings=warnings)
    try:
        from .colmap_io import write_colmap_text

        write_colmap_text(result, sfm_dir / "model_text", [_image_name(p) for p in range(n)])
    except OutputError as exc:  # the export is a convenience; the result stands without it
        log.warning("could not export the COLMAP text model: %s", exc)
    log.info("SfM: %d/%d keyframes in the model, %d frames by tracking, %d interpolated, focal %.1f px",
             len(posed_w2c), len(kf), len(extra), len(missing), intr.fx)
    return result
