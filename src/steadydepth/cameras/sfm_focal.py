"""Focal-length conditioning: does the clip determine the focal? (bundle adjustment with the
focal fixed off its estimate), and the focal guess used when it does not.
"""

from __future__ import annotations

import logging

import numpy as np

from ..types import Intrinsics
from .sfm_mapping import _model_ok, _quiet_colmap

__all__ = ["DEFAULT_FOCAL_FACTOR"]

log = logging.getLogger(__name__)


#: focal guess (times the long image side) when nothing else is known: a horizontal field of
#: view of about 64 degrees, typical of phone, webcam and RGB-D colour lenses. It also seeds
#: the mapping (COLMAP's own seed, 1.2, is a 45-degree lens: on weakly conditioned clips the
#: mapping then settles near the seed's wrong focal; see benchmarks/NOTES.md).
DEFAULT_FOCAL_FACTOR = 0.8


#: below this relative rise of the reprojection error for a 20 % focal change, the clip does not determine the focal
_FOCAL_MIN_RISE = 0.02


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
    opts.ceres.solver_options.num_threads = 1  # repeatable: the same sums in the same order
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
