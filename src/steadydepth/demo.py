"""``python -m steadydepth.demo OUT``: the main job on a clip the project makes itself.

Renders a synthetic room with exact depth and poses (:mod:`steadydepth.synthetic`),
encodes it to H.264, runs ``steadydepth run`` on the video with the default,
weight-free prior, and scores depth and cameras against the ground truth. This is a
command-line entry point, so it prints.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m steadydepth.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", default="demo_out", help="folder for the clip and the run")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--prior", default="mvs")
    parser.add_argument("--preset", default="balanced")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from .cli import main as cli_main
    from .synthetic import render_clip, save_clip

    out = Path(args.out)
    clip_dir = out / "clip"
    print(f"rendering a {args.frames}-frame synthetic clip with exact ground truth -> {clip_dir}")
    clip = render_clip(num_frames=args.frames, width=320, height=240, motion="orbit", seed=0)
    save_clip(clip, clip_dir)
    run_dir = out / "run"
    rc = cli_main(["run", str(clip_dir / "clip.mp4"), "-o", str(run_dir), "--prior", args.prior,
                   "--preset", args.preset, "--overwrite", "--side-by-side", "--format", "png16"])
    if rc != 0:
        return rc
    info = json.loads((run_dir / "run.json").read_text())
    print(f"\nwrote {info['frames']} frames to {run_dir} "
          f"({info['frames_per_second']} frames/s; stages: {info['timings_s']})")
    for w in info["warnings"]:
        print(f"warning: {w}")
    print("\nscores against the exact ground truth:")
    return cli_main(["eval", str(run_dir), "--gt", str(clip_dir / "gt"), "--json", str(out / "eval.json")])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
