"""Chunked against one-shot structure from motion on a long synthetic clip.

Renders one long clip (``steadydepth.synthetic.render_clip``, small frames; cached as a
``.npy`` pair so reruns skip the rendering), then runs ``estimate_cameras`` on prefixes of
it, each run in a fresh process (its peak RSS is that run's own), once reconstructed at
once (``ChunkPolicy(above_frames=0)``) and once in chunks. Reports per run: seconds, ms per
frame (wall, and CPU: the process's user + system time, less sensitive to a shared
machine), peak RSS, ATE after a Sim(3) alignment (RMSE, ground-truth metres), the median
orientation error, and the **scale drift**: the Sim(3) scale fitted on each window of
``--window`` frames, max / min - 1 (0 = one scale along the whole clip).

    .venv/bin/python benchmarks/bench_long.py [--lengths 250 500 1000 2000] [--size 160 120]
        [--motion orbit] [--preset fast] [--chunk-keyframes 0] [--overlap 8] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, resource, sys, time, logging
import numpy as np
from steadydepth.cameras.sfm import estimate_cameras
from steadydepth.cameras.sfm_settings import ChunkPolicy
from steadydepth.types import Frame
logging.basicConfig(level=logging.WARNING)
def frames(path, n):  # read frame by frame (a memory map's pages would count in the RSS)
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
        size = int(np.prod(shape[1:]))
        for i in range(n):
            yield Frame(index=i, image=np.frombuffer(f.read(size), dtype=dtype).reshape(shape[1:]))
n, mode, work, preset = int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
kf, overlap = int(sys.argv[6]), int(sys.argv[7])
policy = (ChunkPolicy(above_frames=0) if mode == "one-shot"
          else ChunkPolicy(above_frames=1, keyframes=kf, overlap=overlap))
timings = {}
t = time.perf_counter()
cams = estimate_cameras(frames(sys.argv[1], n), work, preset=preset,
                        timings=timings, chunks=policy)
seconds = time.perf_counter() - t
poses = [None if p is None else np.asarray(p).tolist() for p in cams.poses]
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": seconds, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": ru.ru_maxrss / 1024,
                  "poses": poses, "shots": cams.shots, "warnings": cams.warnings,
                  "timings": {k: v for k, v in timings.items() if isinstance(v, (int, float))}}))
"""


def render(path: Path, frames: int, size: tuple[int, int], motion: str, seed: int) -> tuple[Path, np.ndarray]:
    """The rendered clip's images (``.npy``, memory-mapped by the runs) and ground-truth poses."""
    images, poses = path.with_suffix(".images.npy"), path.with_suffix(".poses.npy")
    if not (images.exists() and poses.exists()):
        from steadydepth.synthetic import render_clip

        t = time.perf_counter()
        clip = render_clip(frames, size[0], size[1], motion=motion, seed=seed)
        np.save(images, clip.images)
        np.save(poses, clip.poses)
        print(f"rendered {frames} frames {size[0]}x{size[1]} ({motion}) in {time.perf_counter() - t:.0f} s", flush=True)
    return images, np.load(poses)


def scale_drift(pred: list, gt: np.ndarray, window: int) -> float | None:
    """max / min - 1 of the Sim(3) scales fitted on consecutive windows of ``window`` frames."""
    from steadydepth.geometry import align_sim3

    scales = []
    for a in range(0, len(gt) - window + 1, window):
        p = [None if q is None else np.asarray(q) for q in pred[a:a + window]]
        if sum(q is not None for q in p) >= 3:
            scales.append(align_sim3(p, list(gt[a:a + window])).s)
    return float(max(scales) / min(scales) - 1) if len(scales) >= 2 else None


def run(images: Path, gt: np.ndarray, n: int, mode: str, work: Path, args) -> dict:
    from steadydepth.eval.trajectory import trajectory_error

    proc = subprocess.run([sys.executable, "-c", CHILD, str(images), str(n), mode, str(work), args.preset,
                           str(args.chunk_keyframes), str(args.overlap)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} run on {n} frames failed:\n{proc.stderr[-3000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    pred = [None if p is None else np.asarray(p) for p in res["poses"]]
    err = trajectory_error(pred, list(gt[:n]))
    bounds = [b for s in res["shots"] for b in s.get("boundaries", [])]
    return {"mode": mode, "frames": n, "motion": args.motion, "size": f"{args.size[0]}x{args.size[1]}",
            "seconds": round(res["seconds"], 1), "ms_per_frame": round(1000 * res["seconds"] / n, 1),
            "cpu_ms_per_frame": round(1000 * res["cpu_s"] / n, 1), "peak_rss_mb": round(res["peak_rss_mb"]),
            "ate_rmse_m": round(err["ate_rmse"], 4), "rot_err_deg": round(err["rot_err_deg"], 3),
            "scale_drift": None if (d := scale_drift(pred, gt[:n], args.window)) is None else round(d, 4),
            "chunks": res["timings"].get("num_chunks", 1),
            "worst_boundary_rel": max((b["residual_rel"] or 0 for b in bounds), default=None),
            "num_interpolated": res["timings"].get("num_interpolated", 0),
            "warnings": [w[:140] for w in res["warnings"]]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[250, 500, 1000, 2000])
    parser.add_argument("--size", type=int, nargs=2, default=[160, 120])
    parser.add_argument("--motion", default="orbit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--chunk-keyframes", type=int, default=0, help="keyframe candidates per chunk (0: preset)")
    parser.add_argument("--overlap", type=int, default=8)
    parser.add_argument("--window", type=int, default=200, help="frames per window of the scale drift")
    parser.add_argument("--modes", nargs="+", default=["one-shot", "chunked"])
    parser.add_argument("--work", default="/tmp/steadydepth-bench-long")
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    longest = max(args.lengths)
    images, gt = render(work / f"clip-{args.motion}-{longest}-{args.size[0]}x{args.size[1]}-s{args.seed}", longest,
                        tuple(args.size), args.motion, args.seed)
    rows = []
    print(f"{'mode':9} {'frames':>6} {'s':>7} {'ms/frame':>8} {'cpu ms':>6} {'RSS MB':>6} {'ATE m':>7} {'rot deg':>7} "
          f"{'drift':>6} {'chunks':>6} {'bound.':>7}", flush=True)
    for n in sorted(args.lengths):
        for mode in args.modes:
            r = run(images, gt, n, mode, work / f"run-{mode}-{n}", args)
            rows.append(r)
            print(f"{mode:9} {n:6d} {r['seconds']:7.1f} {r['ms_per_frame']:8.1f} {r['cpu_ms_per_frame']:6.1f} "
                  f"{r['peak_rss_mb']:6d} "
                  f"{r['ate_rmse_m']:7.4f} {r['rot_err_deg']:7.3f} "
                  f"{r['scale_drift'] if r['scale_drift'] is not None else '-':>6} "
                  f"{r['chunks']:6d} {r['worst_boundary_rel'] if r['worst_boundary_rel'] is not None else '-':>7}",
                  flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
