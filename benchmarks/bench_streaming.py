"""Peak memory and speed of the I/O path as the clip grows.

Decodes a generated 640x360 H.264 clip, runs the ``io-passthrough`` prior (NOT a depth
estimator: depth = 1 + luminance, so only I/O is measured), writes every output
(per-frame npy, depth.npz, depth_vis.mp4, cameras.json) and reports each run's peak
resident memory (``run.json``'s ``peak_memory_mb``), measured in a fresh process.
The target: 2000 frames within 1.2x of 200 frames.

    .venv/bin/python benchmarks/bench_streaming.py [--frames 200 2000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, sys, time
from steadydepth.pipeline import estimate
t = time.perf_counter()
video = estimate(sys.argv[1], sys.argv[2], prior="io-passthrough", progress_bar=False)
elapsed = time.perf_counter() - t
info = json.loads((video.folder / "run.json").read_text())
print(json.dumps({"frames": len(video), "seconds": elapsed, "peak_rss_mb": info["peak_memory_mb"]}))
"""


def make_clip(path: Path, frames: int, width: int = 640, height: int = 360, fps: int = 30) -> None:
    """A moving gradient-and-noise pattern, encoded with PyAV (libx264)."""
    import av

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 60, size=(height, width * 2, 3), dtype=np.uint8)
    xs = np.linspace(0, 255, width * 2, dtype=np.float32)
    base = np.broadcast_to(xs[None, :, None], (height, width * 2, 3)).astype(np.uint8)
    canvas = base // 2 + noise
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for i in range(frames):
            off = (i * 3) % width
            img = np.ascontiguousarray(canvas[:, off:off + width])
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--keep", help="keep clips and outputs in this folder")
    args = parser.parse_args(argv)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="sd-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in args.frames:
        clip = root / f"clip_{n}.mp4"
        t = time.perf_counter()
        make_clip(clip, n)
        encode_s = time.perf_counter() - t
        out = root / f"out_{n}"
        res = subprocess.run([sys.executable, "-c", CHILD, str(clip), str(out)], capture_output=True, text=True)
        if res.returncode != 0:
            print(res.stderr, file=sys.stderr)
            return 1
        r = json.loads(res.stdout.strip().splitlines()[-1])
        r["encode_s"] = encode_s
        rows.append(r)
    base = rows[0]["peak_rss_mb"]
    print(f"{'frames':>7} {'peak RSS MB':>12} {'x first':>8} {'run s':>8} {'frames/s':>9}")
    for r in rows:
        print(f"{r['frames']:>7} {r['peak_rss_mb']:>12.1f} {r['peak_rss_mb'] / base:>8.2f} "
              f"{r['seconds']:>8.1f} {r['frames'] / r['seconds']:>9.1f}")
    if not args.keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
