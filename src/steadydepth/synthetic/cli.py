"""``python -m steadydepth.synthetic OUT ...``: render a synthetic clip to a folder."""

from __future__ import annotations

import argparse

from .paths import MOTIONS
from .render import render_clip
from .scene import MOVERS
from .writer import save_clip

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """``python -m steadydepth.synthetic OUT [--frames N] [--motion M] ...``"""
    ap = argparse.ArgumentParser(prog="python -m steadydepth.synthetic",
                                 description="Render a synthetic clip with exact depth and poses.")
    ap.add_argument("out", help="output folder")
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--motion", choices=MOTIONS, default="orbit")
    ap.add_argument("--moving-object", action="store_true")
    ap.add_argument("--mover", choices=MOVERS, default="box", help="kind of moving object (with --moving-object)")
    ap.add_argument("--textureless-wall", action="store_true")
    ap.add_argument("--hfov", type=float, default=60.0, help="horizontal field of view, degrees")
    ap.add_argument("--fps", type=float, default=24.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-video", action="store_true", help="skip clip.mp4")
    args = ap.parse_args(argv)
    clip = render_clip(args.frames, args.width, args.height, motion=args.motion,
                       moving_object=args.moving_object, textureless_wall=args.textureless_wall,
                       hfov_deg=args.hfov, seed=args.seed, mover=args.mover)
    clip.fps = args.fps
    out = save_clip(clip, args.out, video=not args.no_video)
    print(f"wrote {len(clip)} frames ({args.width}x{args.height}, {args.motion}) to {out}")
    print(f"depth range {clip.depth.min():.3f} .. {clip.depth.max():.3f} m")
    return 0

