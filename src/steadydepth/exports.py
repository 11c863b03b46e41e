"""End-of-run exports: cameras (JSON + COLMAP text), point clouds, the depth video.

Each reads the per-frame files back one at a time, so memory stays flat in clip length.
"""

from __future__ import annotations

import logging

import numpy as np

from .io.frames import FrameSource
from .outputs import OutputFolder
from .types import Cameras, Intrinsics

__all__ = ["frame_poses", "write_cameras", "shots_summary", "write_points", "write_visualisation", "visualisation_size",
           "VIS_MAX_SIDE"]

log = logging.getLogger(__name__)


def frame_poses(frames: list[dict]) -> list[np.ndarray | None]:
    """The camera-to-world 4x4 poses (float64) of ``cameras.json``'s ``frames`` entries, None where
    ``pose_c2w`` is null or absent (the reading side of :func:`write_cameras`)."""
    return [None if f.get("pose_c2w") is None else np.asarray(f["pose_c2w"], dtype=np.float64) for f in frames]


def write_cameras(out: OutputFolder, cameras: Cameras | None, intrinsics: Intrinsics | None,
                  frame_indices: list[int], units: str) -> None:
    """``cameras.json`` (intrinsics at the output resolution with their radial ``k1``, c2w poses,
    null where unknown, and per frame ``pose_source``: how the pose was obtained, see
    :data:`~steadydepth.types.POSE_SOURCES`); plus ``colmap/`` text files and ``sparse.ply`` when SfM ran."""
    poses = cameras.poses if cameras is not None else [None] * len(frame_indices)
    out.write_json("cameras.json", {
        "convention": "camera-to-world 4x4, OpenCV axes (x right, y down, z forward); "
                      "pixel centres at integer coordinates",
        "depth_pixels": "the input images' pixels (distorted by intrinsics.k1, SIMPLE_RADIAL, when it is not 0)",
        "units": units,
        "source": cameras.source if cameras is not None else None,
        "intrinsics": intrinsics.to_dict() if intrinsics is not None else None,
        "frames": [
            {"position": i, "index": int(idx), "pose_c2w": None if p is None else np.asarray(p).tolist(),
             "pose_source": cameras.pose_source(i) if cameras is not None else None,
             **({"shot": cameras.shot_of(i)} if cameras is not None and cameras.shots else {})}
            for i, (idx, p) in enumerate(zip(frame_indices, poses))
        ],
        **({"shots": shots_summary(cameras)} if cameras is not None and cameras.shots else {}),
    })
    if cameras is None:
        return
    from .cameras.colmap_io import write_colmap_text

    write_colmap_text(cameras, out.root / "colmap", image_names=[f"{i:06d}.png" for i in frame_indices])
    if cameras.points is not None and len(cameras.points):
        from .io.ply import write_ply

        write_ply(out.root / "sparse.ply", cameras.points, cameras.colors)


def shots_summary(cameras: Cameras) -> list[dict]:
    """The shots of ``cameras`` as written to ``cameras.json`` and ``run.json`` (positions, frame
    indices, units, chunk boundaries with their residuals)."""
    return [{k: v for k, v in shot.items() if k != "points"} for shot in cameras.shots]


def write_points(out: OutputFolder, source: FrameSource, count: int, intrinsics: Intrinsics | None,
                 cameras: Cameras | None, *, stride: int = 2) -> None:
    """``points/000000.ply``: coloured points per frame, in world coordinates when the frame has a pose."""
    from .errors import InputError
    from .io.ply import depth_to_points, write_ply

    if intrinsics is None:
        raise InputError("point clouds need intrinsics: use a geometric prior or pass --fov / --intrinsics")
    folder = out.root / "points"
    folder.mkdir(exist_ok=True)
    for i, frame in enumerate(source):
        if i >= count:
            break
        depth, _ = out.read_frame(i)
        pose = cameras.poses[i] if cameras is not None and i < len(cameras.poses) else None
        image = frame.image
        if image.shape[:2] != depth.shape:
            import cv2

            image = cv2.resize(image, (depth.shape[1], depth.shape[0]), interpolation=cv2.INTER_AREA)
        points, colors = depth_to_points(depth, intrinsics, pose, image=image, stride=stride)
        write_ply(folder / f"{i:06d}.ply", points, colors)


#: the long side of depth_vis.mp4 (both panels with --side-by-side) is at most this many pixels
VIS_MAX_SIDE = 1920


def visualisation_size(width: int, height: int, *, side_by_side: bool = False,
                       max_side: int | None = None) -> tuple[int, int]:
    """``(w, h)`` of one panel of ``depth_vis.mp4`` for ``width x height`` depth maps: the maps'
    own size when the video's long side fits ``max_side`` (default :data:`VIS_MAX_SIDE`), else
    shrunk (aspect kept, even sides)."""
    max_side = VIS_MAX_SIDE if max_side is None else max_side
    panels = 2 if side_by_side else 1
    scale = max_side / max(width * panels, height)
    if scale >= 1.0:
        return width, height
    return max(2, 2 * round(width * scale / 2)), max(2, 2 * round(height * scale / 2))


def write_visualisation(out: OutputFolder, source: FrameSource, count: int, *, fps: float, cmap: str = "inferno",
                        side_by_side: bool = False) -> None:
    """``depth_vis.mp4``: colour-mapped depth with ONE value range for the whole clip (no colour flicker).

    The video is a preview: past :data:`VIS_MAX_SIDE` pixels on its long side each depth map is
    shrunk (invalid-aware) before colouring, so memory and time stay bounded at any resolution (an
    H.264 encoder holds some 40 frames in flight; at 4K that was about 1 GB). The depth files keep
    the full resolution.
    """
    import cv2

    from .geometry import resize_depth
    from .io.video_writer import VideoWriter
    from .scene.colormap import colorize_depth, robust_range

    vmin, vmax = robust_range(out.iter_depth(count))
    frames = iter(source) if side_by_side else None
    size: tuple[int, int] | None = None
    with VideoWriter(out.root / "depth_vis.mp4", fps) as writer:
        for i, depth in enumerate(out.iter_depth(count)):
            if size is None:
                size = visualisation_size(depth.shape[1], depth.shape[0], side_by_side=side_by_side)
                if size != (depth.shape[1], depth.shape[0]):
                    log.info("depth_vis.mp4: %dx%d depth shown at %dx%d", depth.shape[1], depth.shape[0], *size)
            depth, _ = resize_depth(depth, np.ones_like(depth), size)
            rgb = colorize_depth(depth, vmin, vmax, cmap=cmap)
            if frames is not None:
                image = next(frames).image
                if image.shape[:2] != rgb.shape[:2]:
                    image = cv2.resize(image, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_AREA)
                rgb = np.concatenate([image, rgb], axis=1)
            writer.write(rgb)
