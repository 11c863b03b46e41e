"""The fused scene of a run: every posed frame's depth in one TSDF volume, written as
``scene.ply`` (coloured triangle mesh), ``scene.glb`` (the same mesh, binary glTF) and
``scene_points.ply`` (one coloured point per surface voxel).

Frames are read back one at a time (depth from the output folder, colour from the source)
at a reduced resolution (long side :data:`FUSION_MAX_SIDE`), so time is a small share of a
run and memory is bounded by the volume's block cap, not by the clip length. The voxel size
follows the scene: :data:`PIXELS_PER_VOXEL` fusion pixels' footprint at the median depth of
a sample of frames, made coarser when the surface those frames see would not fit the cap.
Units are those of the run's cameras and depth (metres when the run is metric).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from ..types import Intrinsics
from .tsdf import BLOCK, Mesh, TSDFSettings, TSDFVolume

__all__ = ["FUSION_MAX_SIDE", "PIXELS_PER_VOXEL", "SCENE_FILES", "fusion_size", "choose_voxel_size",
           "select_views", "fuse", "write_scene_files", "write_scene"]

log = logging.getLogger(__name__)

#: long side (pixels) of the depth maps fused
FUSION_MAX_SIDE = 320
#: voxel edge = this many fusion pixels' footprint at the median depth
PIXELS_PER_VOXEL = 2.5
#: a frame is fused when its camera moved this fraction of the median depth, or turned
#: :data:`VIEW_TURN_DEG`, since the last fused frame (nearer views add nothing to depth that the
#: temporal fusion has already made consistent, and cost as much)
VIEW_MOVE = 0.02
#: pixels deeper than this many median depths are not fused (sky, far outliers)
MAX_DEPTH_RATIO = 20.0
VIEW_TURN_DEG = 1.5
#: the files :func:`write_scene` writes
SCENE_FILES = ("scene.ply", "scene.glb", "scene_points.ply")

#: one frame for the fusion: z-depth (H, W), confidence (H, W) or None, RGB (H, W, 3) or None, c2w pose
FusionFrame = tuple[np.ndarray, "np.ndarray | None", "np.ndarray | None", np.ndarray]


def fusion_size(width: int, height: int, max_side: int = FUSION_MAX_SIDE) -> tuple[int, int]:
    """``(w, h)`` the maps are fused at: ``width x height`` shrunk (aspect kept) to ``max_side``."""
    scale = min(1.0, max_side / max(width, height))
    return max(2, round(width * scale)), max(2, round(height * scale))


def choose_voxel_size(samples: Iterable[tuple[np.ndarray, np.ndarray | None, np.ndarray]], K: np.ndarray, *,
                      pixels_per_voxel: float = PIXELS_PER_VOXEL, max_blocks: int = 20000,
                      min_confidence: float = 0.3, fill: float = 0.5) -> tuple[float, float]:
    """Voxel edge for the maps ``samples`` (``(depth, confidence, pose_c2w)``, a few frames of the
    clip) seen with pinhole ``K``: ``pixels_per_voxel`` pixels' footprint at their median depth,
    enlarged until the blocks their surface touches (times 2 for the truncation band) are at most
    ``fill * max_blocks``. Returns ``(voxel, median_depth)``; raises ValueError when no sample
    has valid depth."""
    f = 0.5 * (float(K[0, 0]) + float(K[1, 1]))
    clouds, medians = [], []
    for depth, conf, pose in samples:
        d = np.asarray(depth, np.float32)
        ok = np.isfinite(d) & (d > 0)
        if conf is not None:
            ok &= np.asarray(conf) >= min_confidence
        if not ok.any():
            continue
        medians.append(float(np.median(d[ok])))
        step = max(1, int(math.sqrt(ok.sum() / 4000)))
        v, u = np.nonzero(ok[::step, ::step])
        v, u = v * step, u * step
        z = d[v, u].astype(np.float64)
        cam = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], axis=1)
        clouds.append(cam @ np.asarray(pose)[:3, :3].T + np.asarray(pose)[:3, 3])
    if not medians:
        raise ValueError("no sampled frame has valid depth")
    median = float(np.median(medians))
    voxel = pixels_per_voxel * median / f
    points = np.concatenate(clouds)
    for _ in range(8):  # coarser until the surface fits (block count ~ 1 / voxel^2)
        blocks = 2 * len(np.unique(np.floor(points / (BLOCK * voxel)).astype(np.int64), axis=0))
        if blocks <= fill * max_blocks:
            break
        voxel *= math.sqrt(blocks / (fill * max_blocks)) * 1.05
    return voxel, median


def select_views(poses: list[np.ndarray | None], scale: float, *, move: float = VIEW_MOVE,
                 turn_deg: float = VIEW_TURN_DEG) -> list[int]:
    """Positions of the posed frames to fuse: the first, then each whose camera centre moved
    ``move * scale`` or turned ``turn_deg`` degrees from the last one kept, and the last."""
    from ..geometry import rotation_error_deg

    keep: list[int] = []
    for i, p in enumerate(poses):
        if p is None:
            continue
        if not keep:
            keep.append(i)
            continue
        q = poses[keep[-1]]
        if (np.linalg.norm(p[:3, 3] - q[:3, 3]) >= move * scale
                or rotation_error_deg(p[:3, :3], q[:3, :3]) >= turn_deg):
            keep.append(i)
    last = max((i for i, p in enumerate(poses) if p is not None), default=None)
    if last is not None and keep[-1] != last:
        keep.append(last)
    return keep


def fuse(frames: Callable[[bool], Iterator[FusionFrame]], K: np.ndarray, settings: TSDFSettings, *,
         count: int | None = None, progress_bar: bool = True, carve: bool = True) -> tuple[Mesh, TSDFVolume, int]:
    """Fuse the frames ``frames(with_colour)`` yields (called twice: fusion with colours, then the
    free-space test without) into a :class:`TSDFVolume`; returns its mesh, the volume and the
    number of voxels the free-space test cleared. ``count``: frames expected (progress only)."""
    from ..progress import Progress

    vol = TSDFVolume(settings)
    with Progress("scene", count, bar=progress_bar) as bar:
        for depth, conf, image, pose in frames(True):
            vol.integrate(depth, conf, image, K, pose)
            bar.update()
    cleared = 0
    if carve:
        tested = vol.begin_carving()
        with Progress("scene/check", count, bar=progress_bar) as bar:
            for depth, conf, _, pose in frames(False):
                vol.carve(depth, conf, K, pose)
                bar.update()
        cleared = vol.end_carving()
        log.debug("scene: %d voxels tested against every view, %d cleared", tested, cleared)
    return vol.extract_mesh(), vol, cleared


def write_scene_files(folder: Path, mesh: Mesh, voxel_size: float, *, units: str) -> dict:
    """``scene.ply``, ``scene.glb`` and ``scene_points.ply`` in ``folder``; returns their counts."""
    from ..io.ply import write_ply
    from .mesh_export import GLB_NODE_ROTATION, write_glb, write_mesh
    from .scene_points import surface_points

    write_mesh(folder / "scene.ply", mesh)
    write_glb(folder / "scene.glb", mesh, extras={"units": units, "voxel_size": voxel_size,
                                                  "world": "OpenCV axes (y down); node rotated 180 deg about x"})
    points, colors, normals = surface_points(mesh, voxel_size)
    write_ply(folder / "scene_points.ply", points, colors, normals)
    return {"vertices": int(len(mesh.vertices)), "faces": int(len(mesh.faces)), "points": int(len(points)),
            "glb_node_rotation_xyzw": GLB_NODE_ROTATION}


def write_scene(out, source, count: int, intrinsics: Intrinsics | None, cameras, units: str, *,
                progress_bar: bool = True, max_side: int = FUSION_MAX_SIDE, max_blocks: int = 20000,
                pixels_per_voxel: float | None = None, carve: bool = True, **settings) -> dict:
    """Fuse the run in ``out`` (an :class:`~steadydepth.outputs.OutputFolder` with ``count``
    frames of depth) with its ``cameras`` and write :data:`SCENE_FILES`; colours come from
    ``source`` (a :class:`~steadydepth.io.frames.FrameSource`). ``intrinsics`` are those at the
    output resolution (with their ``k1``: the maps are undistorted before fusing). ``settings``:
    :class:`TSDFSettings` fields other than the voxel size; ``carve=False`` skips the free-space
    test. Returns the
    ``run.json`` entry; without poses (or intrinsics) nothing is written and the entry says why."""
    import cv2

    from ..cameras.lens import RadialLens
    from ..geometry import resize_depth

    started = time.perf_counter()
    poses = list(cameras.poses[:count]) if cameras is not None else []
    posed = [i for i, p in enumerate(poses) if p is not None]
    if not posed or intrinsics is None:
        why = "the run has no camera poses" if not posed else "the run has no intrinsics"
        log.info("scene: not written, %s (a geometric prior such as mvs gives them)", why)
        return {"written": False, "reason": why}
    size = fusion_size(intrinsics.width, intrinsics.height, max_side)
    intr = intrinsics.scaled(*size)
    K = intr.K
    lens = RadialLens(intr) if intr.k1 != 0.0 else None

    def depth_at(i: int) -> tuple[np.ndarray, np.ndarray]:
        depth, conf = out.read_frame(i)
        depth, conf = resize_depth(depth, conf, size)
        if lens is not None:
            depth, conf = lens.undistort_depth(depth, conf)
        return depth, conf

    sample = posed[:: max(1, len(posed) // 12)]
    try:
        voxel, median = choose_voxel_size(((*depth_at(i), poses[i]) for i in sample), K, max_blocks=max_blocks,
                                          pixels_per_voxel=pixels_per_voxel or PIXELS_PER_VOXEL)
    except ValueError:
        log.info("scene: not written, no posed frame has valid depth")
        return {"written": False, "reason": "no posed frame has valid depth"}
    config = TSDFSettings(voxel_size=voxel, max_blocks=max_blocks,
                          **{"reference_depth": median, "max_depth": MAX_DEPTH_RATIO * median, **settings})
    views = set(select_views(poses, median, move=VIEW_MOVE, turn_deg=VIEW_TURN_DEG))

    def frames(with_colour: bool) -> Iterator[FusionFrame]:
        images = iter(source) if with_colour else None
        for i in range(count):
            frame = next(images, None) if images is not None else None
            if i not in views:
                continue
            depth, conf = depth_at(i)
            image = None
            if frame is not None:
                image = cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA)
                if lens is not None:
                    image = lens.undistort_image(image)
            yield depth, conf, image, poses[i]

    mesh, vol, cleared = fuse(frames, K, config, count=len(views), progress_bar=progress_bar, carve=carve)
    counts = write_scene_files(out.root, mesh, voxel, units=units)
    info = {"written": True, "files": list(SCENE_FILES), "units": units, "voxel_size": voxel,
            "fusion_size": list(size), "frames_fused": vol.frames, "blocks": vol.num_blocks,
            "volume_mb": round(vol.nbytes / 1e6, 1), "volume_full": vol.full, "voxels_cleared": cleared,
            **counts, "time_s": round(time.perf_counter() - started, 3)}
    log.info("scene: %d vertices, %d faces, %d points (voxel %.4g %s) in %.1f s", info["vertices"], info["faces"],
             info["points"], voxel, units, info["time_s"])
    return info
