"""Cameras when structure from motion cannot give them: a static camera (identity poses) and
pure rotation (rotations from frame-to-frame homographies, ``R = K^-1 H K`` projected on SO(3),
the focal searched when unknown; zero translation). Both add a ``"no-parallax:"`` warning, set
``Cameras.no_parallax`` to what stopped the geometry and what to do (:func:`mapping_failure`
says which of too few frames, too few features, no model), and mark every pose
``"static"`` / ``"rotation-only"`` in ``Cameras.pose_sources``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np

from ..types import Cameras, Intrinsics
from .sfm_focal import _guess_intrinsics
from .sfm_registration import _LK, _read_gray

__all__ = ["mapping_failure"]

log = logging.getLogger(__name__)

#: below this median number of SIFT features per keyframe the mapping failed for lack of features
_FEW_FEATURES = 100

#: what to do when the camera does not translate (static, pure rotation)
_NO_TRANSLATION_ADVICE = ("multi-view depth needs a camera that moves sideways; for this clip use a learned "
                          "prior (--prior hf:MODEL)")


def mapping_failure(sfm_dir: Path, num_frames: int, num_keyframes: int, size: tuple[int, int]) -> tuple[str, str]:
    """What stopped the keyframe mapping and what to do: ``(reason, advice)``, read from the
    COLMAP database of the last mapping (``sfm_dir/database.db``).

    Too few frames (the mapping needs 3 registered images) comes first, then too few features
    (median SIFT features per keyframe under :data:`_FEW_FEATURES`: tiny, blank, blurred or
    textureless frames), else structure from motion built no model from matched keyframes
    (little parallax: pure rotation, or a weak focal guess).
    """
    w, h = size
    features: list[int] = []
    matches = 0
    try:
        import pycolmap

        db = pycolmap.Database.open(str(sfm_dir / "database.db"))
        try:
            features = [db.num_keypoints_for_image(im.image_id) for im in db.read_all_images()]
            matches = int(db.num_inlier_matches())
        finally:
            db.close()
    except Exception:  # noqa: BLE001 - the reason is a courtesy; the fallback goes on without it
        log.debug("could not read the SfM database for the failure reason", exc_info=True)
    median = int(np.median(features)) if features else None
    if num_frames < 3 or num_keyframes < 3:
        return (f"too few frames for structure from motion ({num_frames} frame(s), {num_keyframes} keyframe(s); "
                "it needs at least 3 with camera motion between them)",
                "use a longer clip, or a learned prior (--prior hf:MODEL)")
    if median is not None and median < _FEW_FEATURES:
        return (f"structure from motion found too few features (median {median} SIFT features per keyframe "
                f"at {w}x{h}: the frames are too small, blank, blurred or textureless)",
                "use a larger input or a larger --max-res, a textured scene, or a learned prior (--prior hf:MODEL)")
    found = f"{median} SIFT features per keyframe, {matches} verified matches" if median is not None else "no database"
    return (f"structure from motion built no model from {num_keyframes} keyframes ({found}): too little "
            "parallax (the camera only rotates?) or a wrong focal guess",
            "pass --fov if the lens is known; for a camera that does not move sideways use a learned prior "
            "(--prior hf:MODEL)")


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


def _static_cameras(indices, size, K, hfov_deg, reason: str) -> Cameras:
    intr, note = _guess_intrinsics(K, hfov_deg, size)
    warnings = [f"no-parallax: {reason}; every frame has the identity pose (pose_source 'static')"]
    if note:
        warnings.append(note)
    for wmsg in warnings:
        log.warning(wmsg)
    return Cameras(intrinsics=intr, poses=[np.eye(4) for _ in indices], frame_indices=list(indices),
                   points=np.zeros((0, 3)), colors=np.zeros((0, 3), np.uint8), units="scene",
                   source="pycolmap", warnings=warnings, pose_sources=["static"] * len(indices),
                   no_parallax=f"{reason}: {_NO_TRANSLATION_ADVICE}")


def _rotation_cameras(images_dir, indices, size, K, hfov_deg, reason: str, timings: dict,
                      advice: str = _NO_TRANSLATION_ADVICE) -> Cameras:
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
                   colors=np.zeros((0, 3), np.uint8), units="scene", source="pycolmap", warnings=warnings,
                   pose_sources=["rotation-only"] * n, no_parallax=f"{reason}: {advice}")
