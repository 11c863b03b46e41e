"""Keyframe correspondences from optical-flow tracks, for clips where SIFT finds too little.

White walls, faint or blurred texture: SIFT's contrast threshold leaves a few dozen features per
frame even in the rescue attempt, and the mapping registers nothing. Corners tracked with
pyramidal Lucas-Kanade through *every* frame (small motion per step, so faint texture still
locks) on contrast-equalised images (CLAHE) link the keyframes instead:

1. each frame's grey image is equalised with CLAHE (``clip_limit``, 8x8 tiles);
2. tracks are followed frame to frame from the first to the last keyframe with a
   forward-backward check (``fb_tolerance`` px); at every keyframe new corners
   (``cv2.goodFeaturesToTrack``, quality ``quality`` relative to the strongest, at least
   ``min_distance`` px from live tracks) top the tracks up to ``max_tracks``;
3. a keyframe's keypoints are the positions of the tracks alive at it; two keyframes at most
   ``overlap`` apart are matched by the tracks they share.

:func:`write_flow_matches` writes these keypoints and matches into a COLMAP database that
``pycolmap.extract_features`` created (its SIFT keypoints and descriptors are replaced) and
runs COLMAP's geometric verification on them (seeded RANSAC), so the incremental mapping
that follows treats them like any other matches. Keypoints are stored in COLMAP's pixel
convention (first pixel's centre at 0.5, 0.5); tracking uses OpenCV's (centre at 0, 0).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .colmap_log import quiet_colmap
from .sfm_registration import _read_gray

__all__ = ["FlowTrackSettings", "track_keyframes", "write_flow_matches"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FlowTrackSettings:
    """Knobs of the flow tracks (see the module docstring)."""

    max_tracks: int = 2000
    quality: float = 0.001
    min_distance: int = 7
    clip_limit: float = 3.0
    fb_tolerance: float = 0.7
    window: int = 21
    levels: int = 3


def _equalised(images_dir: Path, pos: int, clahe: cv2.CLAHE) -> np.ndarray:
    return clahe.apply(_read_gray(images_dir, pos))


def track_keyframes(images_dir: Path, keyframes: list[int], settings: FlowTrackSettings = FlowTrackSettings()
                    ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Tracks through frames ``keyframes[0] .. keyframes[-1]`` of ``images_dir``.

    Returns ``{keyframe position: (xy (N, 2) float32 OpenCV pixels, track ids (N,) int64)}``.
    """
    clahe = cv2.createCLAHE(clipLimit=settings.clip_limit, tileGridSize=(8, 8))
    lk = dict(winSize=(settings.window, settings.window), maxLevel=settings.levels,
              criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
    wanted = set(keyframes)
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    pts = np.zeros((0, 2), np.float32)
    ids = np.zeros(0, np.int64)
    next_id = 0
    prev = None
    for pos in range(keyframes[0], keyframes[-1] + 1):
        g = _equalised(images_dir, pos, clahe)
        h, w = g.shape
        if prev is not None and len(pts):
            nxt, st, _ = cv2.calcOpticalFlowPyrLK(prev, g, pts.reshape(-1, 1, 2), None, **lk)
            back, st2, _ = cv2.calcOpticalFlowPyrLK(g, prev, nxt, None, **lk)
            q = nxt.reshape(-1, 2)
            fb = np.linalg.norm(back.reshape(-1, 2) - pts, axis=1)
            ok = (st.ravel() == 1) & (st2.ravel() == 1) & (fb < settings.fb_tolerance)
            ok &= (q[:, 0] >= 0) & (q[:, 0] <= w - 1) & (q[:, 1] >= 0) & (q[:, 1] <= h - 1)
            pts, ids = q[ok].astype(np.float32), ids[ok]
        if pos in wanted:
            room = settings.max_tracks - len(pts)
            if room > 0:
                mask = np.full((h, w), 255, np.uint8)
                for x, y in pts:
                    cv2.circle(mask, (int(round(x)), int(round(y))), settings.min_distance, 0, -1)
                new = cv2.goodFeaturesToTrack(g, maxCorners=room, qualityLevel=settings.quality,
                                              minDistance=settings.min_distance, mask=mask, blockSize=7)
                if new is not None:
                    new = new.reshape(-1, 2).astype(np.float32)
                    pts = np.concatenate([pts, new])
                    ids = np.concatenate([ids, np.arange(next_id, next_id + len(new))])
                    next_id += len(new)
            out[pos] = (pts.copy(), ids.copy())
        prev = g
    return out


def write_flow_matches(database: Path, images_dir: Path, names: list[str], positions: list[int], overlap: int,
                       settings: FlowTrackSettings = FlowTrackSettings()) -> int:
    """Replace the keypoints and matches of ``database`` with flow tracks and verify them.

    ``names[k]`` is the database image of frame ``positions[k]`` (ascending). Returns the
    number of raw matches written (before verification).
    """
    import pycolmap

    tracks = track_keyframes(images_dir, positions, settings)
    db = pycolmap.Database.open(str(database))
    written = 0
    pairs: list[tuple[str, str]] = []
    try:
        image_ids = {im.name: im.image_id for im in db.read_all_images()}
        db.clear_keypoints()
        db.clear_descriptors()
        db.clear_matches()
        db.clear_two_view_geometries()
        for name, pos in zip(names, positions):
            xy = tracks[pos][0].astype(np.float32) + np.float32(0.5)  # COLMAP pixel centres
            db.write_keypoints(image_ids[name], xy)
        for a in range(len(names)):
            ids_a = tracks[positions[a]][1]
            for b in range(a + 1, min(len(names), a + overlap + 1)):
                ids_b = tracks[positions[b]][1]
                common, ia, ib = np.intersect1d(ids_a, ids_b, assume_unique=True, return_indices=True)
                if len(common) < 15:
                    continue
                db.write_matches(image_ids[names[a]], image_ids[names[b]],
                                 np.stack([ia, ib], axis=1).astype(np.uint32))
                pairs.append((names[a], names[b]))
                written += len(common)
    finally:
        db.close()
    pairs_file = database.with_name("flow_pairs.txt")
    pairs_file.write_text("".join(f"{a} {b}\n" for a, b in pairs))
    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.random_seed = 0
    with quiet_colmap():
        pycolmap.verify_matches(database, pairs_file, options=verification)
    log.debug("SfM flow tracks: %d keyframes, %d pairs, %d raw matches", len(names), len(pairs), written)
    return written
