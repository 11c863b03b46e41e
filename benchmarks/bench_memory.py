"""Peak memory of the whole default pipeline (structure from motion, depth, fusion, outputs)
as the clip grows.

Renders one synthetic clip (``steadydepth.synthetic.render_clip``, small frames, cached as
``.npy`` and shared with ``bench_long.py``), encodes prefixes of it as H.264 files (PyAV),
and runs ``steadydepth.pipeline.estimate`` with the default prior (``mvs``; by default with
:data:`CHEAP_MVS`, a cheaper plane sweep with the same stages and buffers: ``--full-mvs``
for the real settings) on each in a fresh process. Reports per length: seconds, frames per second, the run's peak RSS
(``run.json``'s ``peak_memory_mb``), and the ratio to the shortest clip's peak. The
target: the longest within 1.25x of the shortest.

    .venv/bin/python benchmarks/bench_memory.py [--lengths 100 400 2000] [--size 160 120]
        [--preset fast] [--motion orbit] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

CHILD = r"""
import json, sys, time, logging
logging.basicConfig(level=logging.ERROR)
from steadydepth.pipeline import estimate
t = time.perf_counter()
extra = json.loads(sys.argv[4])
video = estimate(sys.argv[1], sys.argv[2], preset=sys.argv[3], progress_bar=False, overwrite=True, extra=extra)
info = json.loads((video.folder / "run.json").read_text())
print(json.dumps({"frames": len(video), "seconds": time.perf_counter() - t, "peak_rss_mb": info["peak_memory_mb"],
                  "timings": info["timings_s"], "prior": info["prior"].get("name"),
                  "shots": info.get("shots")}))
"""


#: multi-view stereo at a fraction of its cost (fewer planes and views, a smaller working
#: image): the same stages and buffers, so the same dependence on the clip length
CHEAP_MVS = {"work_long_side": 80, "num_planes": 12, "num_views": 2, "coarse_to_fine": False}


def encode(images: np.ndarray, path: Path, fps: int = 30) -> None:
    """Write ``images`` (T, H, W, 3) uint8 RGB as an H.264 file (PyAV, near lossless)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = images.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "12"}
        for img in images:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 400, 2000])
    parser.add_argument("--size", type=int, nargs=2, default=[160, 120])
    parser.add_argument("--motion", default="orbit")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--work", default="/tmp/steadydepth-bench-long")
    parser.add_argument("--json", help="write the rows to this file")
    parser.add_argument("--full-mvs", dest="cheap_mvs", action="store_false",
                        help="the default mvs settings (about 1-2 s per frame on a loaded 2-core machine)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_long import render

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    longest = max(args.lengths)
    images_path, _ = render(work / f"clip-{args.motion}-{longest}-{args.size[0]}x{args.size[1]}-s0", longest,
                            tuple(args.size), args.motion, 0)
    images = np.load(images_path, mmap_mode="r")
    rows = []
    print(f"{'frames':>6} {'seconds':>8} {'fps':>6} {'peak MB':>8} {'x first':>7}  stages (s)", flush=True)
    for n in sorted(args.lengths):
        clip = work / f"clip-{n}.mp4"
        if not clip.exists():
            encode(images[:n], clip)
        extra = {"mvs": CHEAP_MVS} if args.cheap_mvs else {}
        proc = subprocess.run([sys.executable, "-c", CHILD, str(clip), str(work / f"out-{n}"), args.preset,
                               json.dumps(extra)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"run on {n} frames failed:\n{proc.stderr[-3000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        r["size"] = f"{args.size[0]}x{args.size[1]}"
        r["ratio"] = round(r["peak_rss_mb"] / rows[0]["peak_rss_mb"], 3) if rows else 1.0
        rows.append(r)
        stages = {k: v for k, v in r["timings"].items() if k in ("cameras", "depth", "outputs")}
        print(f"{n:6d} {r['seconds']:8.1f} {n / r['seconds']:6.2f} {r['peak_rss_mb']:8.1f} {r['ratio']:7.3f}  {stages}",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
