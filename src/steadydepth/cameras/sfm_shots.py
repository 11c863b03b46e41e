"""The cameras of a clip with scene cuts: one reconstruction per shot, put side by side.

Each shot (found by :class:`~steadydepth.cameras.shots.ShotDetector`) is reconstructed on
its own and keeps its own world and scale (median keyframe depth 1 in that shot): nothing
links two shots, so their poses are not comparable. :func:`combine_shots` concatenates the
poses, pose sources and sparse points, and records each shot in ``Cameras.shots``
(``start``/``stop`` positions, ``units``, the range of its sparse points, and its chunk
boundaries when it was chunked). Consumers that compare frames through their poses (the
temporal fusion, multi-view stereo) must only pair frames of the same shot
(:meth:`~steadydepth.types.Cameras.shot_of`).
"""

from __future__ import annotations

import logging

import numpy as np

from ..types import Cameras

__all__ = ["combine_shots", "SHOT_UNITS"]

log = logging.getLogger(__name__)

#: what ``units`` says of each shot's translations
SHOT_UNITS = "scene (this shot's own scale: median keyframe depth 1; not comparable across shots)"


def combine_shots(results: list[Cameras], spans: list[tuple[int, int]], indices: list[int]) -> Cameras:
    """One :class:`Cameras` for the clip from the per-shot ``results`` (shot ``k`` covers positions
    ``spans[k]``, stop excluded; ``indices`` the frames' indices)."""
    poses: list[np.ndarray | None] = []
    sources: list[str | None] = []
    points, colors, shots = [], [], []
    warnings = [f"shots: the clip has {len(spans)} shots (scene cuts before frames "
                f"{[indices[lo] for lo, _ in spans[1:]]}); each was reconstructed on its own with its own scale, "
                "and frames of different shots are never compared"]
    npts = 0
    usable = [c for c in results if not c.no_parallax] or results
    intr = usable[0].intrinsics
    for k, (cams, (lo, hi)) in enumerate(zip(results, spans)):
        poses.extend(cams.poses)
        sources.extend(cams.pose_source(p) for p in range(hi - lo))
        m = 0 if cams.points is None else len(cams.points)
        if m:
            points.append(cams.points)
            colors.append(cams.colors)
        shot = {"start": lo, "stop": hi, "first_frame": indices[lo], "last_frame": indices[hi - 1],
                "units": SHOT_UNITS, "points": [npts, npts + m]}
        if cams.no_parallax:
            shot["no_parallax"] = cams.no_parallax
        for sub in cams.shots:  # a chunked shot: its boundary residuals
            shot.update({key: val for key, val in sub.items() if key in ("chunks", "boundaries")})
        shots.append(shot)
        npts += m
        if abs(cams.intrinsics.fx / intr.fx - 1) > 0.05 and not cams.no_parallax:
            warnings.append(f"shots: shot {k + 1} has focal {cams.intrinsics.fx:.1f} px, shot 1 {intr.fx:.1f} px; "
                            "cameras.json keeps one camera (the first shot's)")
        warnings.extend(f"shot {k + 1}: {w}" for w in cams.warnings)
    log.warning(warnings[0])
    no_parallax = results[0].no_parallax if all(c.no_parallax for c in results) else None
    return Cameras(intrinsics=intr, poses=poses, frame_indices=list(indices),
                   points=np.concatenate(points) if points else np.zeros((0, 3)),
                   colors=np.concatenate(colors) if colors else np.zeros((0, 3), np.uint8),
                   units="scene", source="pycolmap", warnings=warnings, pose_sources=sources,
                   no_parallax=no_parallax, shots=shots)
