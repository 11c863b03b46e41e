"""Keyframe mapping with pycolmap: SIFT extraction, sequential matching, incremental mapping,
and the checks that drop bogus models.

Conventions as in :mod:`steadydepth.cameras.sfm` (the images are ``work_dir/images/NNNNNN.jpg``).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from ..types import Intrinsics
from .colmap_log import quiet_colmap as _quiet_colmap  # noqa: F401 - also imported by sfm_focal
from .sfm_movers import registered_in_clip_order, remove_moving_points
from .sfm_settings import ProgressFn, SfmPreset, _report

__all__ = []

log = logging.getLogger(__name__)


#: COLMAP's smallest triangulation angle (degrees) of a point it creates or keeps; a mapping
#: at the preset's smaller angle (SfmPreset.min_tri_angle) is redone at this one when few
#: points need less
WELL_TRIANGULATED_DEG = 1.5

#: a mapping with small-angle points is kept when at least this share of its points need them
#: (a hand-held pan: 0.56 on the RealSense desk; a walk through the 7-Scenes kitchen: 0.08-0.22)
SMALL_ANGLE_SHARE = 0.4

#: a keyframe model with fewer triangulated points is not trusted (pure rotation gives a handful)
_MIN_POINTS = 100

#: a mapped keyframe whose centre lies further than this many units from both of its neighbours
#: in clip order is a stray (see :func:`drop_stray_keyframes`); a unit is the larger of the median
#: step between consecutive keyframe centres and the median depth of the model's points
STRAY_GAP_UNITS = 20.0


def _image_name(pos: int) -> str:
    return f"{pos:06d}.jpg"


def _map_keyframes(
    sfm_dir: Path, images_dir: Path, names: list[str], K: Intrinsics | None, focal_guess: float | None,
    size: tuple[int, int], preset: SfmPreset, progress: ProgressFn | None, timings: dict,
    matcher: Callable[[Path], object] | None = None,
):
    """SIFT extraction, matching and incremental mapping of the keyframe images ``names``.

    The camera is one free SIMPLE_RADIAL, seeded at ``K`` when given (its mean focal, principal
    point and ``k1``; the caller holds ``K`` afterwards), else at ``focal_guess`` and the centre.

    ``matcher(database)``, when given, replaces SIFT's sequential matching: it writes the
    keypoints and verified matches itself (:func:`~steadydepth.cameras.sfm_flow.write_flow_matches`).
    Returns ``(model or None, number of models)``.
    """
    import pycolmap

    pycolmap.set_random_seed(0)  # COLMAP's RANSACs without a seed of their own: repeatable runs
    db = sfm_dir / "database.db"
    models = sfm_dir / "models"
    if db.exists():
        db.unlink()
    w, h = size

    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = "SIMPLE_RADIAL"
    if K is not None:  # a known camera seeds a free one; hold_intrinsics puts the model on it afterwards
        reader.camera_params = f"{0.5 * (K.fx + K.fy)},{K.cx + 0.5},{K.cy + 0.5},{K.k1}"
    elif focal_guess is not None:
        reader.camera_params = f"{focal_guess},{w / 2.0},{h / 2.0},0"
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = 1
    extraction.sift.max_num_features = preset.max_features
    extraction.sift.first_octave = preset.first_octave
    extraction.sift.peak_threshold = preset.peak_threshold

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
    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.random_seed = 0  # a fixed seed per pair: the same matches whatever the thread order
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = 1  # threaded CPU matching kept 39, 40 or 41 pairs from run to run
    if matcher is not None:
        matcher(db)
    else:
        with _quiet_colmap():
            pycolmap.match_sequential(db, matching_options=matching, pairing_options=pairing, verification_options=verification)
    _report(progress, "matching", len(names), len(names))
    timings["matching"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    opts = pycolmap.IncrementalPipelineOptions()
    opts.min_model_size = 3
    opts.extract_colors = True
    opts.random_seed = 0
    opts.num_threads = 1  # threaded bundle adjustment sums in a varying order: runs would differ
    # video keyframes have small baselines: start the initial-pair search at 4 degrees
    # (COLMAP halves it twice more when no model comes out) instead of 16.
    opts.mapper.init_min_tri_angle = 4.0
    # far points of a small-baseline clip: kept (they fix the rotation; see SfmPreset), unless
    # few points need them (then mapped again at COLMAP's default, below)
    opts.triangulation.min_angle = preset.min_tri_angle
    opts.mapper.filter_min_tri_angle = preset.min_tri_angle
    if preset.fixed_distortion:
        opts.ba_refine_extra_params = False
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
        pycolmap.set_random_seed(0)  # each attempt as from a fresh start, whatever ran before it
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
    if not good and num > 0 and not preset.fixed_distortion:
        # SIMPLE_RADIAL can diverge on weak geometry (forward motion: focal and k trade off and
        # run away together): retry with the focal held at its seed, then with k fixed at 0
        log.info("SfM: retrying the mapping with the focal held at its seed")
        opts.ba_refine_focal_length = False
        opts.mapper.abs_pose_refine_focal_length = False
        good, num = _run(opts)
        if not good and num > 0:
            log.info("SfM: retrying the mapping with the radial distortion fixed at 0")
            opts.ba_refine_focal_length = True
            opts.mapper.abs_pose_refine_focal_length = True
            opts.ba_refine_extra_params = False
            opts.mapper.abs_pose_refine_extra_params = False
            good, num = _run(opts)
    if good and preset.min_tri_angle < WELL_TRIANGULATED_DEG:
        rec = _largest(good)
        share = _small_angle_share(rec, WELL_TRIANGULATED_DEG)
        if share < SMALL_ANGLE_SHARE:
            # the clip has parallax: its small-angle points only add depth noise to the cameras
            log.info("SfM: %.0f %% of the points under %.1f degrees of parallax; mapping again without them",
                     100 * share, WELL_TRIANGULATED_DEG)
            opts.triangulation.min_angle = WELL_TRIANGULATED_DEG
            opts.mapper.filter_min_tri_angle = WELL_TRIANGULATED_DEG
            good2, num2 = _run(opts)
            if good2 and _largest(good2).num_reg_images() >= rec.num_reg_images():
                good, num = good2, num2
        else:
            log.info("SfM: %.0f %% of the points under %.1f degrees of parallax (a small baseline): kept",
                     100 * share, WELL_TRIANGULATED_DEG)
    timings["mapping"] = time.perf_counter() - t0
    if not good:
        return None, num
    if len(good) > 1:
        log.info("SfM produced %d disconnected models (%s registered images); keeping the largest",
                 len(good), sorted((r.num_reg_images() for r in good.values()), reverse=True))
    rec = _largest(good)
    drop_stray_keyframes(rec)
    with _quiet_colmap():  # its bundle adjustments log through glog
        rec, timings["num_moving_points"] = remove_moving_points(rec)
    return rec, len(good)


def _largest(models: dict):
    """The model with the most registered images (then the most points)."""
    return max(models.values(), key=lambda r: (r.num_reg_images(), r.num_points3D()))


def _small_angle_share(rec, angle_deg: float) -> float:
    """Share of the model's 3D points whose widest pair of viewing rays (from the registered
    cameras' centres) is under ``angle_deg`` apart: points whose direction the model measures
    better than their depth."""
    import numpy as np

    centres = {i: np.asarray(rec.images[i].projection_center()) for i in rec.reg_image_ids()}
    cos_max = float(np.cos(np.radians(angle_deg)))
    small = total = 0
    for p in rec.points3D.values():
        rays = np.array([p.xyz - centres[e.image_id] for e in p.track.elements if e.image_id in centres])
        if len(rays) < 2:
            continue
        rays /= np.linalg.norm(rays, axis=1, keepdims=True)
        total += 1
        small += int(float((rays @ rays.T).min()) > cos_max)
    return small / total if total else 0.0


def drop_stray_keyframes(rec) -> list[str]:
    """Deregister (in place) the keyframes the mapping put far away from the rest of the path.

    A keyframe linked to the model only through near-zero-parallax two-view tracks can be
    registered with a small reprojection error yet a centre millions of scene units away (seen on
    the RealSense desk with a fixed focal: 36 points, centre at 4e7). Its neighbours in clip order
    (image names sort in clip order) then lie further than :data:`STRAY_GAP_UNITS` units from it,
    a jump no video makes between keyframes. Its observations are removed (points left with one
    view are deleted) and the frame is posed later by tracking like any other frame. Returns the
    names of the dropped images.
    """
    import numpy as np

    ids = registered_in_clip_order(rec)
    if len(ids) < 3:
        return []
    centres = np.array([rec.images[i].projection_center() for i in ids], dtype=np.float64)
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    depths = []
    for i in ids:
        im = rec.images[i]
        M = im.cam_from_world().matrix()
        xyz = np.array([rec.points3D[p.point3D_id].xyz for p in im.points2D if p.has_point3D()]).reshape(-1, 3)
        depths.append(xyz @ M[:3, :3].T[:, 2] + M[2, 3])
    depth = float(np.median(np.abs(np.concatenate(depths)))) if depths else 0.0
    unit = max(float(np.median(steps)), depth)
    gap = np.minimum(np.r_[np.inf, steps], np.r_[steps, np.inf])
    stray = [ids[k] for k in np.flatnonzero(gap > STRAY_GAP_UNITS * unit)]
    if len(stray) * 2 >= len(ids):
        return []  # no majority path to judge against
    names = []
    for i in stray:
        im = rec.images[i]
        names.append(im.name)
        for idx, p in enumerate(im.points2D):
            if p.has_point3D():
                rec.delete_observation(i, idx)
        rec.deregister_frame(im.frame_id)
    if names:
        log.info("SfM: %d keyframe(s) mapped far off the camera path (%s, over %.0f x the median step or "
                 "scene depth from both neighbours): posed by tracking instead", len(names), ", ".join(names),
                 STRAY_GAP_UNITS)
    return names


def _model_ok(rec) -> bool:
    """A usable keyframe model: enough points and a plausible camera (focal 0.1-10 x size, |k| < 0.5)."""
    if rec.num_points3D() < _MIN_POINTS or rec.num_reg_images() < 2:
        return False
    return not any(c.has_bogus_params(0.1, 10.0, 0.5) for c in rec.cameras.values())
