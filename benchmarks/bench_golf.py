"""The real 1080p ``golf_clip`` (walking forward outdoors, no ground truth): flicker and a picture.

Runs the default ``steadydepth run`` on ``../shared/data/golf_clip/golf.mov`` (or scores output
folders given with ``--runs LABEL=DIR ...``, e.g. one made by an older checkout), then prints per
run the pose-free, ground-truth-free flicker (:func:`steadydepth.eval.temporal_metrics.flow_flicker`,
depth change along checked optical flow between consecutive frames, x100), the focal length in
``cameras.json`` and the run's warnings, and writes ``--picture`` (default
``benchmarks/golf_frames.png``): the first, middle and last frames, the input on top and each
run's depth below (inverse depth, one colour range per run from its 2-98 % depth percentiles).

    .venv/bin/python benchmarks/bench_golf.py [--runs before=DIR after=DIR] [--picture PNG]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "data" / "golf_clip" / "golf.mov"
CHILD = "import sys; from steadydepth.cli import main; sys.exit(main(sys.argv[1:]))"


def _run_default(out: Path) -> None:
    res = subprocess.run([sys.executable, "-c", CHILD, "run", str(CLIP), "-o", str(out), "--quiet"],
                         capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"steadydepth run failed (rc {res.returncode}): {res.stderr.strip()[-300:]}")


def main() -> None:
    from steadydepth.eval.temporal_metrics import flow_flicker
    from steadydepth.io.frames import open_source
    from steadydepth.scene.colormap import colorize_depth, robust_range

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="*", default=[], help="LABEL=OUTPUT_DIR of finished runs on the clip")
    ap.add_argument("--picture", default=str(ROOT / "benchmarks" / "golf_frames.png"))
    args = ap.parse_args()
    if not CLIP.is_file():
        print(f"skipped: {CLIP} not found")
        return
    runs = [tuple(r.split("=", 1)) for r in args.runs]
    if not runs:
        tmp = Path(tempfile.mkdtemp(prefix="sd-golf-"))
        _run_default(tmp / "out")
        runs = [("this checkout", str(tmp / "out"))]
    images = [f.image for f in open_source(CLIP)]
    rows, depth_rows = [], []
    h, w = images[0].shape[:2]
    picks = [0, len(images) // 2, len(images) - 1]
    for label, folder in runs:
        depth = np.load(Path(folder) / "depth.npz")["depth"]
        depths = [np.where(np.isfinite(d), d, 0) for d in depth]
        cams = json.loads((Path(folder) / "cameras.json").read_text())
        info = json.loads((Path(folder) / "run.json").read_text())
        rows.append((label, flow_flicker(images, depths), (cams.get("intrinsics") or {}).get("fx"),
                     ",".join(sorted({str(x).split(":", 1)[0] for x in info.get("warnings", [])})) or "none"))
        lo, hi = robust_range(depths)
        depth_rows.append([cv2.resize(colorize_depth(depths[k], lo, hi), (w // 4, h // 4)) for k in picks])
    print("| run | flow flicker x100 | focal px | warnings |\n|---|---|---|---|")
    for label, fl, fx, warn in rows:
        print(f"| {label} | {fl:.2f} | {fx if fx is None else round(fx, 1)} | {warn} |")
    top = [cv2.resize(images[k], (w // 4, h // 4), interpolation=cv2.INTER_AREA) for k in picks]
    grid = np.vstack([np.hstack(top)] + [np.hstack(r) for r in depth_rows])
    cv2.imwrite(args.picture, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    print(f"picture: {args.picture} (frames {picks}; rows: input, " + ", ".join(l for l, _ in runs) + ")")


if __name__ == "__main__":
    main()
