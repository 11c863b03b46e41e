"""Sparse points on moving objects, found and removed from a keyframe model.

A textured object moving through the view (a person walking past) gives SIFT tracks as good as
the static scene's. Bundle adjustment cannot tell them apart from the static points: it bends
the camera path until they fit too (on a synthetic clip with a person-sized mover, 13-18 % of
the points lay on the mover and the last keyframes were off by 1.3-1.8 times the step between
frames, with every point still fitting within 0.4-0.5 px).

Two observations separate them. Points of one rigid object move together in the image: between
consecutive keyframes, neighbouring points of the mover have nearly the same displacement,
while a mover and the static surface around it do not. And the static scene alone gives the
right cameras, under which a mover's points no longer meet in one place.

:func:`remove_moving_points` links points whose displacements between consecutive keyframes
agree with an image neighbour's (within ``link_px`` plus ``link_rel`` of the displacement, and
never clearly disagree elsewhere), keeps the links that two common neighbours confirm (one stray
link would merge a mover with the wall behind it), and takes the connected groups. The largest
group is the *core*, assumed static; the cameras are bundle-adjusted on it alone (poses and
points; intrinsics as the mapping left them). Every other group's points are triangulated again
from those cameras: a group whose median reprojection error exceeds ``moving_factor`` times the
core's (and ``moving_px``) is a moving object, and its points leave the model; once one is found, so do the
single points outside the core beyond that error (the mover's loose points). The model is then
adjusted again. Nothing is removed when the core is too small, too thinly spread over the
keyframes to pose them, or when the groups to remove would hold more than ``max_share`` of the
points.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

__all__ = ["MoverSettings", "registered_in_clip_order", "remove_moving_points"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MoverSettings:
    """Knobs of :func:`remove_moving_points` (see the module docstring).

    ``link_px`` / ``link_rel``: two neighbouring points agree when their displacements between
    consecutive keyframes differ by less than ``link_px + link_rel * |displacement|``, and
    disagree when they differ by more than ``disagree`` times that; ``neighbours``: image
    neighbours per point considered for links; ``min_group``: smallest group tested;
    ``core_share``: smallest share of the points the core must hold; ``core_per_image``: core
    observations each keyframe needs; ``moving_factor`` / ``moving_px``: a group moves when its
    median reprojection error under the core's cameras exceeds both ``moving_factor`` times the
    core's and ``moving_px``; ``max_share``: most points removed (a mover is the minority).
    """

    link_px: float = 1.0
    link_rel: float = 0.05
    disagree: float = 3.0
    neighbours: int = 6
    min_group: int = 5
    core_share: float = 0.25
    core_per_image: int = 20
    moving_factor: float = 6.0
    moving_px: float = 2.0
    max_share: float = 0.4


def registered_in_clip_order(rec) -> list[int]:
    """Ids of the registered images of a keyframe model in clip order (image names sort so)."""
    return sorted(rec.reg_image_ids(), key=lambda i: rec.images[i].name)


def _motion_groups(rec, s: MoverSettings) -> list[set[int]]:
    """Groups of 3D point ids whose image displacements agree between consecutive keyframes
    (links confirmed by two common neighbours, then connected components), largest first."""
    from collections import defaultdict

    from scipy.spatial import cKDTree

    obs = []
    for i in registered_in_clip_order(rec):
        im = rec.images[i]
        obs.append({p.point3D_id: np.asarray(p.xy, np.float64) for p in im.points2D if p.has_point3D()})
    agree: set[tuple[int, int]] = set()
    disagree: set[tuple[int, int]] = set()
    for here, there in zip(obs, obs[1:]):
        common = [pid for pid in here if pid in there]
        if len(common) <= s.neighbours:
            continue
        xy = np.array([here[p] for p in common])
        disp = np.array([there[p] for p in common]) - xy
        _, nn = cKDTree(xy).query(xy, s.neighbours + 1)
        mag = np.linalg.norm(disp, axis=1)
        for k in range(1, s.neighbours + 1):
            b = nn[:, k]
            diff = np.linalg.norm(disp - disp[b], axis=1)
            tol = s.link_px + s.link_rel * np.maximum(mag, mag[b])
            for a in np.flatnonzero(diff < tol):
                agree.add((min(common[a], common[b[a]]), max(common[a], common[b[a]])))
            for a in np.flatnonzero(diff > s.disagree * tol):
                disagree.add((min(common[a], common[b[a]]), max(common[a], common[b[a]])))
    adj: dict[int, set[int]] = defaultdict(set)
    for a, b in agree - disagree:
        adj[a].add(b)
        adj[b].add(a)
    parent = {pid: pid for pid in rec.points3D.keys()}

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, nbrs in adj.items():
        for b in nbrs:
            if a < b and len(adj[a] & adj[b]) >= 2:  # confirmed by two common neighbours
                ra, rb = find(a), find(b)
                if ra != rb:
                    parent[ra] = rb
    groups: dict[int, set[int]] = {}
    for pid in parent:
        groups.setdefault(find(pid), set()).add(pid)
    return sorted(groups.values(), key=len, reverse=True)


def _adjusted_held(rec):
    """A copy of ``rec`` bundle-adjusted with its intrinsics as they are (poses and points free):
    :func:`~steadydepth.cameras.sfm_focal._adjusted` with the shared focal and radial term held."""
    from .sfm_focal import _adjusted  # sfm_focal imports the mapping, which imports this module

    focal = float(next(iter(rec.cameras.values())).params[0])
    return _adjusted(rec, focal=focal, refine_k=False)


def _retriangulated_errors(rec, cams, ids) -> np.ndarray:
    """Per point of ``ids``: RMS reprojection error (pixels) after triangulating its observations
    in ``rec`` again (linear, in normalised undistorted coordinates) from the poses of ``cams``
    (a model with the same images); ``inf`` for a point behind a camera, NaN with under 2 views."""
    poses = {i: cams.images[i].cam_from_world().matrix() for i in cams.reg_image_ids()}
    out = np.full(len(ids), np.nan)
    for k, pid in enumerate(ids):
        els = [e for e in rec.points3D[pid].track.elements if e.image_id in poses]
        if len(els) < 2:
            continue
        cam = cams.cameras[cams.images[els[0].image_id].camera_id]
        xy = np.array([rec.images[e.image_id].points2D[e.point2D_idx].xy for e in els])
        uv = np.asarray(cam.cam_from_img(xy), np.float64)
        M = np.stack([poses[e.image_id] for e in els])
        A = np.concatenate([uv[:, :1] * M[:, 2] - M[:, 0], uv[:, 1:] * M[:, 2] - M[:, 1]])
        X = np.linalg.svd(A)[2][-1]
        if abs(X[3]) < 1e-12:
            out[k] = np.inf
            continue
        c = M[:, :, :3] @ (X[:3] / X[3]) + M[:, :, 3]
        if (c[:, 2] <= 0).any():
            out[k] = np.inf
            continue
        r = np.hypot(c[:, 0] / c[:, 2] - uv[:, 0], c[:, 1] / c[:, 2] - uv[:, 1])
        out[k] = float(np.sqrt(np.mean(r * r))) * cam.mean_focal_length()
    return out


def remove_moving_points(rec, settings: MoverSettings | None = None) -> tuple[object, int]:
    """The keyframe model ``rec`` (a ``pycolmap.Reconstruction``) without the points of moving
    objects (module docstring), re-adjusted; returns ``(model, number of points removed)``.
    ``rec`` itself is left as it is; it is returned unchanged when nothing moves or the test
    cannot be made."""
    import pycolmap

    s = settings or MoverSettings()
    total = rec.num_points3D()
    if total < 50 or rec.num_reg_images() < 3:
        return rec, 0
    groups = _motion_groups(rec, s)
    core = groups[0]
    if len(core) < s.core_share * total:
        log.debug("SfM: moving-object test skipped: the largest group holds %d of %d points", len(core), total)
        return rec, 0
    static = pycolmap.Reconstruction(rec)
    for pid in list(static.points3D.keys()):
        if pid not in core:
            static.delete_point3D(pid)
    seen = [sum(p.has_point3D() for p in static.images[i].points2D) for i in static.reg_image_ids()]
    if min(seen) < s.core_per_image:
        log.debug("SfM: moving-object test skipped: a keyframe sees only %d points of the largest group", min(seen))
        return rec, 0
    static = _adjusted_held(static)
    core_ids = sorted(core)
    core_err = float(np.nanmedian(_retriangulated_errors(rec, static, core_ids)))
    limit = max(s.moving_factor * core_err, s.moving_px)
    moving: set[int] = set()
    for g in groups[1:]:
        if len(g) < s.min_group:
            break  # groups are sorted by size
        err = float(np.nanmedian(_retriangulated_errors(rec, static, sorted(g))))
        log.debug("SfM: moving-object test: %d points, median error %.2f px under the static cameras (core %.2f)",
                  len(g), err, core_err)
        if err > limit:
            moving |= g
    if not moving:
        return rec, 0
    # with a mover found, the single points outside the core that do not meet either are mostly its own
    rest = sorted(p for p in rec.points3D.keys() if p not in core and p not in moving)
    moving |= {p for p, e in zip(rest, _retriangulated_errors(rec, static, rest)) if e > limit}
    if len(moving) > s.max_share * total:
        log.info("SfM: %d of %d points would be moving objects; more than the test trusts, kept", len(moving), total)
        return rec, 0
    out = pycolmap.Reconstruction(rec)
    for pid in moving:
        out.delete_point3D(pid)
    out = _adjusted_held(out)
    log.info("SfM: %d of %d points lay on moving objects (they do not meet under the static scene's cameras); "
             "removed", len(moving), total)
    return out, len(moving)
