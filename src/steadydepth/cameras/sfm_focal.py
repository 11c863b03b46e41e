"""Intrinsics conditioning: does the clip need a radial distortion term, and does it determine the
focal? (bundle adjustment with the term or the focal fixed), and the focal guess used when it does not.
"""

from __future__ import annotations

import logging

import numpy as np

from ..types import Intrinsics
from .sfm_mapping import _model_ok, _quiet_colmap

__all__ = ["DEFAULT_FOCAL_FACTOR", "check_distortion", "hold_intrinsics"]

log = logging.getLogger(__name__)


#: focal guess (times the long image side) when nothing else is known: a horizontal field of
#: view of about 64 degrees, typical of phone, webcam and RGB-D colour lenses. It also seeds
#: the mapping (COLMAP's own seed, 1.2, is a 45-degree lens: on weakly conditioned clips the
#: mapping then settles near the seed's wrong focal; see benchmarks/NOTES.md).
DEFAULT_FOCAL_FACTOR = 0.8


#: below this relative rise of the reprojection error for a 20 % focal change, the clip does not determine the focal
_FOCAL_MIN_RISE = 0.02


#: the radial term is dropped when fixing it at 0 raises the mean reprojection error by less than this
_DISTORTION_MIN_RISE = 0.03


def _adjusted(rec, *, focal: float | None = None, k: float | None = None, refine_k: bool = True):
    """A copy of ``rec`` bundle-adjusted (poses and points free) with the shared focal fixed at
    ``focal`` (None: refined) and the SIMPLE_RADIAL term set to ``k`` and fixed (None: kept, and
    refined when ``refine_k``)."""
    import pycolmap

    out = pycolmap.Reconstruction(rec)
    for cid in list(out.cameras):
        cam = out.cameras[cid]
        params = np.array(cam.params, dtype=np.float64)
        if focal is not None:
            params[0] = focal
        if k is not None and cam.model.name == "SIMPLE_RADIAL":
            params[3] = k
        cam.params = params
        out.cameras[cid] = cam
    opts = pycolmap.BundleAdjustmentOptions()
    opts.refine_focal_length = focal is None
    opts.refine_extra_params = k is None and refine_k
    opts.print_summary = False
    opts.ceres.solver_options.num_threads = 1  # repeatable: the same sums in the same order
    with _quiet_colmap():
        pycolmap.bundle_adjustment(out, opts)
    return out


def check_distortion(rec):
    """Keep the radial term only where the keyframes need it.

    A SIMPLE_RADIAL ``k`` trades off against the focal: on weakly conditioned clips the mapping
    can settle on a wrong focal with a large ``k`` that compensates it, or (when ``k`` ran away
    and the mapping was redone with it fixed at 0) lose a real lens distortion. Three bundle
    adjustments of the model: ``k`` fixed at 0 (focal free), ``k`` free (focal free), ``k`` free
    with the focal held. Of the two free fits whose camera is plausible (:func:`_model_ok`) the
    one with the lower error is kept when ``k = 0`` raises the mean reprojection error by at least
    ``_DISTORTION_MIN_RISE``, else the ``k = 0`` fit. (When :func:`_check_focal` then moves an
    undetermined focal, its bundle adjustments refine ``k`` again at the new focal.)
    Returns the re-adjusted copy (``rec`` itself for a camera without the term).
    """
    cam = next(iter(rec.cameras.values()))
    if cam.model.name != "SIMPLE_RADIAL":
        return rec
    zero = _adjusted(rec, k=0.0)
    # k free with the focal free, and with the focal held (on forward motion the two trade off
    # and a free pair can run away, e.g. k = 4.7): the plausible fit with the lower error
    fits = [(f.compute_mean_reprojection_error(), f)
            for f in (_adjusted(rec), _adjusted(rec, focal=float(cam.params[0]))) if _model_ok(f)]
    if not fits:
        log.info("SfM: a radial distortion term does not fit the keyframes plausibly: k = 0")
        return zero
    free_err, free = min(fits, key=lambda fit: fit[0])
    rise = zero.compute_mean_reprojection_error() / max(free_err, 1e-12)
    k = float(next(iter(free.cameras.values())).params[3])
    if np.isfinite(rise) and rise >= 1.0 + _DISTORTION_MIN_RISE:
        log.info("SfM: radial distortion k=%.4g kept (k = 0 raises the reprojection error by %+.1f %%)",
                 k, 100 * (rise - 1))
        return free
    log.info("SfM: radial distortion k=%.4g not needed (k = 0 raises the reprojection error by %+.1f %%): "
             "k = 0", k, 100 * (rise - 1))
    return zero


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
    base = _adjusted(rec, focal=f0).compute_mean_reprojection_error()
    rises = []
    for factor in (1 / 1.2, 1.2):
        err = _adjusted(rec, focal=f0 * factor).compute_mean_reprojection_error()
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
    return _walk_focal(rec, prior), msg


def _walk_focal(rec, target: float):
    """A copy of ``rec`` with its shared focal moved to ``target`` in steps of at most 20 %, each
    followed by a bundle adjustment (one big jump can flip points behind the cameras). A walk whose
    camera the mapper itself would reject (:func:`_model_ok`: |k| >= 0.5, seen: k = 94) is redone
    with the radial term held."""
    f0 = float(next(iter(rec.cameras.values())).params[0])
    steps = max(1, int(np.ceil(abs(np.log(target / f0)) / np.log(1.2))))
    for refine_distortion in (True, False):
        out = rec
        for f in f0 * (target / f0) ** (np.arange(1, steps + 1) / steps):
            out = _adjusted(out, focal=float(f), refine_k=refine_distortion)
        if _model_ok(out):
            break
    return out


def hold_intrinsics(rec, K: Intrinsics, *, k1_known: bool = False):
    """A copy of the keyframe model ``rec`` (mapped with a free SIMPLE_RADIAL camera seeded at
    ``K``) on the known camera ``K`` (OpenCV convention, at the model's image size).

    The focal is walked to ``K``'s (:func:`_walk_focal`), then the camera is replaced by ``K``
    (COLMAP's principal point is OpenCV's + 0.5) and the poses and points are bundle-adjusted with
    its focal and principal point held. ``K.k1 != 0``: ``SIMPLE_RADIAL`` with that term, held.
    ``K.k1 == 0`` and ``k1_known`` (a later chunk on the first chunk's camera): ``PINHOLE``.
    ``K.k1 == 0`` otherwise (a pinhole part only, as ``--intrinsics fx,fy,cx,cy`` gives) with
    ``fx == fy``: the radial term is not known, so it stays the model's own and is refined; with
    ``fx != fy`` a ``PINHOLE`` camera. Mapping with the camera held from the start is what fails on
    small-baseline hand-held clips: the incremental mapper then settles in a wrong solution
    whose translations point elsewhere (the RealSense desk with its focal given: AbsRel 0.50-0.63
    against 0.13 mapped free, and 0.17-0.21 with the radial term held at 0; benchmarks/NOTES.md).
    """
    import pycolmap

    out = _walk_focal(rec, 0.5 * (K.fx + K.fy))
    free_k = not K.k1 and not k1_known and abs(K.fx - K.fy) <= 1e-9 * K.fx
    for cid in list(out.cameras):
        old = out.cameras[cid]  # the mapping's SIMPLE_RADIAL (f, cx, cy, k)
        if K.k1 or free_k:
            params, model = [K.fx, K.cx + 0.5, K.cy + 0.5, K.k1 or float(old.params[3])], "SIMPLE_RADIAL"
        else:
            params, model = [K.fx, K.fy, K.cx + 0.5, K.cy + 0.5], "PINHOLE"
        out.cameras[cid] = pycolmap.Camera(model=model, width=old.width, height=old.height, params=params,
                                           camera_id=cid)
    # focal (fx) and principal point held; the radial term refined only when it is not known
    return _adjusted(out, focal=K.fx, refine_k=free_k)


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
