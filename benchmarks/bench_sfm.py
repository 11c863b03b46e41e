"""Benchmark of :func:`steadydepth.cameras.sfm.estimate_cameras`: speed per stage and accuracy.

Prints one table row per case:

* synthetic orbit clips (``steadydepth.synthetic.render_clip``) of 60 and 300 frames at
  480x270 (renders are cached as ``.npz`` under ``--cache``; rendering is not timed);
* the 5-frame Open3D RGB-D sequence in ``../shared/data/open3d_rgbd`` (skipped when absent),
  with the known intrinsics and without, against its ``trajectory.log``.

ATE is the RMS camera-centre error after Sim(3) (Umeyama) alignment to the ground truth, in
the ground truth's metres and as a percentage of the ground-truth path extent (bounding-box
diagonal of the camera centres); rot is the median orientation error after alignment, rpe
the median rotation error of consecutive relative poses (no alignment needed).

Usage: ``python benchmarks/bench_sfm.py [--frames 60 300] [--size 480x270] [--motion orbit]``
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from steadydepth.cameras.sfm import estimate_cameras
from steadydepth.eval.trajectory import trajectory_error
from steadydepth.types import Frame, Intrinsics

__all__ = ["main"]

log = logging.getLogger("bench_sfm")

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "open3d_rgbd"


def _clip(n: int, w: int, h: int, motion: str, cache: Path):
    from steadydepth.synthetic import render_clip

    path = cache / f"{motion}_{n}_{w}x{h}.npz"
    if path.exists():
        d = np.load(path)
        return d["images"], d["poses"], float(d["fx"])
    t = time.perf_counter()
    clip = render_clip(n, w, h, motion=motion, seed=0)
    log.info("rendered %s in %.1f s", path.name, time.perf_counter() - t)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, images=clip.images, poses=clip.poses, fx=clip.intrinsics.fx)
    return clip.images, clip.poses, clip.intrinsics.fx


def _row(name, frames, gt_poses, gt_fx, work, intrinsics=None) -> dict:
    tm: dict = {}
    t = time.perf_counter()
    cams = estimate_cameras(frames, work, intrinsics=intrinsics, timings=tm)
    total = time.perf_counter() - t
    st = trajectory_error(cams.poses, list(gt_poses))
    c = np.asarray(gt_poses)[:, :3, 3]
    extent = float(np.linalg.norm(c.max(0) - c.min(0)))
    return {
        "case": name, "frames": tm["num_frames"], "kf": tm.get("num_keyframes", 0),
        "kf_reg": tm.get("num_registered_keyframes", 0), "tracked": tm.get("num_registered_tracking", 0),
        "interp": tm.get("num_interpolated", 0),
        **{k: tm.get(k, float("nan")) for k in ("extraction", "matching", "mapping", "registration")},
        "write_s": tm.get("frames", float("nan")),
        "total_s": total, "fps": tm["num_frames"] / total,
        "ate": st["ate_rmse"], "ate_pct": 100 * st["ate_rmse"] / extent if extent > 0 else float("nan"),
        "rot_deg": st["rot_err_deg"], "rpe_deg": st["rpe_rot_deg"], "f_err_pct": 100 * (cams.intrinsics.fx / gt_fx - 1),
        "warn": ";".join(w.split(":")[0] for w in cams.warnings),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[60, 300])
    ap.add_argument("--size", default="480x270")
    ap.add_argument("--motion", default="orbit")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "steadydepth_bench_cache")
    ap.add_argument("--no-open3d", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    w, h = (int(v) for v in args.size.lower().split("x"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.frames:
            images, poses, fx = _clip(n, w, h, args.motion, args.cache)
            frames = (Frame(i, im) for i, im in enumerate(images))
            rows.append(_row(f"{args.motion} {w}x{h}", frames, poses, fx, os.path.join(tmp, f"s{n}")))
        if not args.no_open3d and DATA.is_dir():
            import cv2

            imgs = [cv2.cvtColor(cv2.imread(str(DATA / "color" / f"{i:05d}.jpg")), cv2.COLOR_BGR2RGB)
                    for i in range(5)]
            lines = (DATA / "trajectory.log").read_text().split("\n")
            gt = [np.array([[float(v) for v in lines[5 * k + 1 + r].split()] for r in range(4)]) for k in range(5)]
            K = Intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)
            for name, intr in (("open3d K given", K), ("open3d K free", None)):
                frames = (Frame(i, im) for i, im in enumerate(imgs))
                rows.append(_row(name, frames, gt, 525.0, os.path.join(tmp, name.replace(" ", "_")), intr))
    cols = ["case", "frames", "kf", "kf_reg", "tracked", "interp", "write_s", "extraction", "matching",
            "mapping", "registration", "total_s", "fps", "ate", "ate_pct", "rot_deg", "rpe_deg", "f_err_pct", "warn"]
    fmt = {float: "{:.3g}", int: "{}", str: "{}"}
    table = [[fmt.get(type(r[c]), "{}").format(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    out = ["  ".join(c.ljust(wd) for c, wd in zip(cols, widths))]
    out += ["  ".join(v.ljust(wd) for v, wd in zip(t, widths)) for t in table]
    print("\n".join(out))  # a benchmark script's table goes to stdout
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
