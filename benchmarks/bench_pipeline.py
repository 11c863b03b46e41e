"""End-to-end speed, memory and accuracy of ``steadydepth run`` with the default prior.

For each case a clip is rendered (synthetic, exact ground truth) or read from
``../shared/data``, ``steadydepth run`` is executed in a fresh process (peak resident
memory measured there), and the output is scored with ``steadydepth eval`` (the field's
protocol: one scale and shift per sequence in disparity; TAE with ground-truth poses;
ATE of the SfM cameras after a Sim(3) alignment; ``head``: the worst AbsRel of the first three
frames over the median per-frame AbsRel). Prints one table.

    .venv/bin/python benchmarks/bench_pipeline.py [--cases orbit60 orbit300 mover60 open3d] [--preset balanced]
        [-- RUN ARGS...]   (more arguments for every ``steadydepth run``, e.g. ``-- --temporal-radius 8``)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "open3d_rgbd"

CHILD = "import sys; from steadydepth.cli import main; sys.exit(main(sys.argv[1:]))"

CASES = {
    # name: (frames, width, height, motion, moving object (None or a kind of synthetic.MOVERS), textureless_wall)
    "orbit60": (60, 480, 270, "orbit", None, False),
    "orbit300": (300, 480, 270, "orbit", None, False),
    "mover60": (60, 480, 270, "orbit", "box", False),
    "person60": (60, 480, 270, "orbit", "person", False),
    "walk60": (60, 480, 270, "walk", None, False),
    "drone60": (60, 480, 270, "drone", None, False),
    "forward60": (60, 480, 270, "forward", None, False),
    "textureless60": (60, 480, 270, "orbit", None, True),
}


def _run(args: list[str]) -> None:
    """``steadydepth ARGS`` in a fresh process, so run.json's peak memory is the run's alone."""
    res = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write(res.stderr)
        raise SystemExit(f"run failed: {' '.join(args)}")


def _case(name: str, root: Path, preset: str, run_args: list[str]) -> dict:
    from steadydepth.eval.evaluate import evaluate_output

    extra: list[str] = []
    if name == "open3d":
        if not SHARED.is_dir():
            return {"case": name, "note": f"skipped: {SHARED} absent"}
        src, gt = SHARED / "color", SHARED
        extra = ["--intrinsics", "525,525,319.5,239.5"]
        render_s = 0.0
    else:
        from steadydepth.synthetic import render_clip, save_clip

        n, w, h, motion, mover, blank = CASES[name]
        t = time.perf_counter()
        clip = render_clip(num_frames=n, width=w, height=h, motion=motion, moving_object=mover is not None,
                           textureless_wall=blank, seed=0, mover=mover or "box")
        save_clip(clip, root / name)
        render_s = time.perf_counter() - t
        src, gt = root / name / "clip.mp4", root / name / "gt"
    out = root / f"{name}_out"
    _run(["run", str(src), "-o", str(out), "--preset", preset, "--quiet", "--overwrite", *extra, *run_args])
    info = json.loads((out / "run.json").read_text())
    ev = evaluate_output(out, gt)
    seq = ev["rows"][0]
    t = info["timings_s"]
    return {
        "case": name, "frames": info["frames"], "size": "x".join(map(str, info["processing_size"])),
        "render_s": render_s, "cameras_s": t.get("cameras", 0.0), "depth_s": t.get("depth", 0.0),
        "outputs_s": t.get("outputs", 0.0), "total_s": t["total"], "fps": info["frames"] / t["total"],
        "peak_mb": info["peak_memory_mb"], "abs_rel": seq["abs_rel"], "delta1": seq["delta1"], "tae": seq["tae"],
        "head": seq["head_ratio"], "ate": (ev.get("trajectory") or {}).get("ate_rmse"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=["orbit60", "mover60", "textureless60", "open3d", "orbit300"])
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--keep", help="keep clips and outputs here")
    argv = sys.argv[1:] if argv is None else list(argv)
    run_args = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="sd-bench-pipe-"))
    root.mkdir(parents=True, exist_ok=True)
    from steadydepth.eval.report import format_table

    rows = []
    for name in args.cases:
        rows.append(_case(name, root, args.preset, run_args))
        print(f"done: {name}", file=sys.stderr)
    cols = ["case", "frames", "size", "cameras_s", "depth_s", "outputs_s", "total_s", "fps", "peak_mb",
            "abs_rel", "delta1", "tae", "head", "ate"]
    print(f"preset: {args.preset}; extra run args: {' '.join(run_args) or '(none)'}")
    print(format_table(rows, cols))
    if not args.keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
