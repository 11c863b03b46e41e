"""Writing a synthetic clip to disk in steadydepth's ground-truth layout (and as H.264).
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import DependencyError, InputError, OutputError
from .render import SyntheticClip

__all__ = ["save_clip", "save_as_run"]


def _write_mp4(path: Path, images: np.ndarray, fps: float, crf: int = 14) -> None:
    try:
        import av
    except ImportError as exc:  # pragma: no cover - PyAV is a core dependency
        raise DependencyError(f"writing {path} needs PyAV ({exc}); install it with: pip install av") from exc
    t, h, w = images.shape[:3]
    if h % 2 or w % 2:
        raise InputError(f"{path}: H.264 yuv420p needs an even width and height, got {w}x{h}; "
                         "render an even size or save with video=False")
    rate = Fraction(fps).limit_denominator(1001)
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    with av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for k in range(t):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(images[k]), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)


def save_clip(clip: SyntheticClip, folder: str | Path, *, video: bool = True) -> Path:
    """Write a clip to ``folder`` and return the folder.

    Layout: ``clip.mp4`` (H.264, yuv420p, crf 14; only when ``video``), ``images/000000.png``
    (lossless RGB), and ground truth in steadydepth's output layout: ``gt/depth/000000.npy``
    (float32 z-depth, metres) and ``gt/cameras.json`` (intrinsics, camera-to-world poses,
    ``"units": "metres"``), plus ``gt/dynamic/000000.png`` (uint8, 255 = moving object) when
    the clip has a dynamic mask. Existing files of the same names are overwritten.
    """
    import cv2

    root = Path(folder).expanduser()
    try:
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "gt" / "depth").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{root}: cannot create folder ({exc.strerror or exc})") from exc
    for k in range(len(clip)):
        name = f"{k:06d}"
        if not cv2.imwrite(str(root / "images" / f"{name}.png"), clip.images[k][:, :, ::-1]):
            raise OutputError(f"{root / 'images' / (name + '.png')}: cannot write image")
        np.save(root / "gt" / "depth" / f"{name}.npy", clip.depth[k].astype(np.float32))
        if clip.dynamic_mask is not None:
            (root / "gt" / "dynamic").mkdir(exist_ok=True)
            cv2.imwrite(str(root / "gt" / "dynamic" / f"{name}.png"), clip.dynamic_mask[k].astype(np.uint8) * 255)
    meta = {
        "convention": "camera-to-world 4x4, OpenCV axes (x right, y down, z forward); "
                      "pixel centres at integer coordinates; depth = z-depth",
        "units": "metres",
        "source": "steadydepth.synthetic",
        "fps": clip.fps,
        "intrinsics": clip.intrinsics.to_dict(),
        "frames": [{"position": k, "index": k, "pose_c2w": np.asarray(clip.poses[k]).tolist()}
                   for k in range(len(clip))],
    }
    (root / "gt" / "cameras.json").write_text(json.dumps(meta, indent=1))
    if video:
        _write_mp4(root / "clip.mp4", clip.images, clip.fps)
    return root


def save_as_run(clip: SyntheticClip, folder: str | Path, *, fps: float | None = None) -> Path:
    """Write a clip as a finished ``steadydepth run`` output folder holding its exact depth and cameras.

    ``folder/clip`` gets :func:`save_clip`'s layout (images only, no video); ``folder/run`` the
    run's: ``depth/000000.npy`` (z-depth, metres) with confidence 1, ``cameras.json`` and a
    ``run.json`` with status ``complete``, metric units and the input (the images, all frames,
    ``fps``, default the clip's). For checks of what reads a run (the viewer, ``animate
    --from-run``) against exact geometry. Returns the run folder.
    """
    from ..exports import write_cameras
    from ..io.atomic import atomic_write_json
    from ..outputs import OutputFolder

    root = Path(folder).expanduser()
    images = save_clip(clip, root / "clip", video=False) / "images"
    run = root / "run"
    run.mkdir(parents=True, exist_ok=True)
    out = OutputFolder(run)
    for k in range(len(clip)):
        out.write_frame(k, clip.depth[k], np.ones_like(clip.depth[k]))
    write_cameras(out, clip.cameras(), clip.intrinsics, list(range(len(clip))), "metres")
    atomic_write_json(run / "run.json", {
        "status": "complete", "units": "metres",
        "input": {"kind": "images", "path": str(images), "fps": clip.fps if fps is None else fps,
                  "start": 0, "stop": None, "stride": 1}})
    return run
