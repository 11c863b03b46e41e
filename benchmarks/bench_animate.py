"""Benchmark of ``steadydepth animate`` on synthetic clips with exact depth and poses.

Prints three tables:

1. novel views: the layered depth image of frame 0 (exact depth) rendered at the true cameras of
   later frames, scored against the true frames (PSNR on the pixels frame 0 sees, PSNR and SSIM
   on all pixels, after one gain per frame; % of pixels no layer covered, filled afterwards);
2. speed: a 5 s, 24 fps animation at 640x360 (wall and CPU seconds, load average), and the
   flicker of its frames (``eval.temporal_metrics.flow_flicker``) and mean grey-level change;
3. from a run's frame: PSNR on the disoccluded pixels of nearby true views, background band
   filled from the other frames of the clip vs by inpainting (a run folder written from the
   clip's exact depth and poses, and optionally, ``--pipeline``, one made by ``steadydepth run``).

    PYTHONPATH=src python benchmarks/bench_animate.py [--quick] [--pipeline]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _table(rows: list[dict], cols: list[str]) -> str:
    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def novel_views(width: int, height: int, motion: str, step: int) -> list[dict]:
    from steadydepth.animate.evaluate import score_view, seen_mask
    from steadydepth.animate.layers import build_layers
    from steadydepth.animate.render import render_view
    from steadydepth.synthetic import render_clip

    clip = render_clip(4 * step + 1, width, height, motion=motion)
    K = clip.intrinsics.K
    ldi = build_layers(clip.images[0], clip.depth[0], K, clip.poses[0], band=24, pad=round(0.06 * width))
    rows = []
    for k in range(step, 4 * step + 1, step):
        v = render_view(ldi, K, clip.poses[k], width, height)
        seen = seen_mask(K, clip.depth[0], clip.poses[0], clip.depth[k], clip.poses[k])
        s = score_view(v.image, clip.images[k], seen)
        base = np.linalg.norm(clip.poses[k][:3, 3] - clip.poses[0][:3, 3])
        rows.append({"clip": f"{motion} {width}x{height}", "frame": k, "baseline m": float(base),
                     "PSNR seen": s["psnr_seen"], "PSNR all": s["psnr_all"], "SSIM all": s["ssim_all"],
                     "seen %": 100 * s["seen"], "uncovered %": 100 * float(v.uncovered.mean())})
    return rows


def speed(frames: int, folder: Path) -> dict:
    import cv2

    from steadydepth.animate import AnimateOptions, animate
    from steadydepth.eval.temporal_metrics import flow_flicker
    from steadydepth.synthetic import render_clip

    clip = render_clip(1, 640, 360)
    cv2.imwrite(str(folder / "img.png"), clip.images[0][:, :, ::-1])
    np.save(folder / "depth.npy", clip.depth[0])
    load0 = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    summary = animate(folder / "anim", AnimateOptions(image=str(folder / "img.png"), depth=str(folder / "depth.npy"),
                                                      fov=60.0, frames=frames, fps=24.0, path="auto",
                                                      progress_bar=False))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    imgs = [cv2.imread(str(folder / "anim" / "frames" / f"{i:06d}.png"))[:, :, ::-1] for i in range(frames)]
    with np.load(folder / "anim" / "depth.npz") as z:
        depths = [z["depth"][i] for i in range(frames)]
    return {"frames": frames, "size": "640x360", "wall s": wall, "CPU s": cpu, "load avg": load0,
            "flow flicker": flow_flicker(imgs, depths), "grey change": summary["frame_change"],
            "uncovered %": 100 * summary["uncovered_mean"]}


def from_run(folder: Path, run: Path | None, clip, start: int, offsets: list[int], label: str) -> list[dict]:
    from steadydepth.animate.clip_fill import clip_band_filler, read_run
    from steadydepth.animate.evaluate import psnr, seen_mask
    from steadydepth.animate.layers import build_layers
    from steadydepth.animate.render import render_view

    frame, neighbours, intr = read_run(run, start)
    K = intr.K
    w, h = intr.width, intr.height
    filler = clip_band_filler(frame, neighbours, K)
    ldi_clip = build_layers(frame.image, frame.depth, K, frame.pose_c2w, band=24, pad=16, fill_band=filler)
    ldi_inp = build_layers(frame.image, frame.depth, K, frame.pose_c2w, band=24, pad=16)
    import json

    poses = [np.asarray(f["pose_c2w"]) for f in json.loads((run / "cameras.json").read_text())["frames"]]
    rows = []
    for off in offsets:
        k = start + off
        hidden = seen_mask(clip.intrinsics.K, clip.depth[start], clip.poses[start], clip.depth[k], clip.poses[k],
                           hidden=True)
        a = render_view(ldi_clip, K, poses[k], w, h).image
        b = render_view(ldi_inp, K, poses[k], w, h).image
        rows.append({"run": label, "start": start, "view": k, "hidden %": 100 * float(hidden.mean()),
                     "PSNR hidden, from clip": psnr(a, clip.images[k], hidden),
                     "PSNR hidden, inpainted": psnr(b, clip.images[k], hidden)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes, shorter animation")
    ap.add_argument("--pipeline", action="store_true", help="also from a run made by 'steadydepth run --preset fast'")
    ap.add_argument("--parts", default="views,speed,run", help="comma-separated: views, speed, run")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    torch.set_num_threads(1)
    rows = []
    if "views" in parts:
        for motion, step in (("orbit", 1), ("orbit", 4), ("walk", 1), ("forward", 2)):
            rows += novel_views(320 if args.quick else 640, 180 if args.quick else 360, motion, step)
        print("novel views from frame 0 (exact depth, true cameras)")
        print(_table(rows, ["clip", "frame", "baseline m", "PSNR seen", "PSNR all", "SSIM all", "seen %",
                            "uncovered %"]))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if "speed" in parts:
            print("\nspeed (1 torch thread)")
            s = speed(24 if args.quick else 120, tmp)
            print(_table([s], list(s)))
        if "run" not in parts:
            return
        from steadydepth.synthetic import render_clip, save_as_run

        clip = render_clip(41, 320, 240, motion="orbit")
        run = save_as_run(clip, tmp / "gt")
        rows = from_run(tmp, run, clip, 20, [-12, -6, 6, 12], "exact depth + poses")
        if args.pipeline:
            from steadydepth import estimate

            estimate(str(tmp / "gt" / "clip" / "images"), str(tmp / "piped"), preset="fast", progress_bar=False)
            rows += from_run(tmp, tmp / "piped", clip, 20, [-12, -6, 6, 12], "steadydepth run --preset fast")
        print("\nfrom a run's frame: disoccluded pixels of true views")
        print(_table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
