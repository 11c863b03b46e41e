"""The command line: a thin layer over :func:`steadydepth.estimate` and :mod:`steadydepth.eval`.

``steadydepth run INPUT -o OUTDIR`` and ``steadydepth eval OUTDIR --gt GT``. Errors a
user can cause print one line naming the file and the cause and exit non-zero;
``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

from . import __version__
from .errors import InputError, SteadyDepthError, exit_codes_help
from .interrupts import Terminated
from .io.depth_files import DEPTH_FORMATS
from .options import PRESET_ALIASES, PRESETS, RunOptions, cli_names
from .scene.colormap import COLORMAPS
from .types import Intrinsics

__all__ = ["main", "build_parser"]

log = logging.getLogger("steadydepth")


def _intrinsics(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or values[0] <= 0 or values[1] <= 0:
        raise argparse.ArgumentTypeError(f"expected fx,fy,cx,cy in pixels of the input, got '{text}'")
    return values  # type: ignore[return-value]


def _fusion(text: str) -> dict[str, bool]:
    from .priors.combined import parse_fusion

    try:
        return parse_fusion(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="steadydepth", description="Temporally consistent depth from video.",
                                     epilog=exit_codes_help())
    parser.add_argument("--version", action="version", version=f"steadydepth {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", action="store_true", help="only warnings and errors, no progress bar")
    common.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", parents=[common], help="estimate depth for a video or image sequence",
                         epilog=exit_codes_help())
    run.add_argument("input", help="video file (mp4, mov, mkv, webm, ...), image folder, or glob ('dir/*.png')")
    run.add_argument("-o", "--output", required=True, help="output folder")
    run.add_argument("--prior", default="auto",
                     help="depth source: auto (default: a learned video model fused with mvs when its weights are on "
                          "disk or can be downloaded, else mvs; see `steadydepth priors`), mvs (no weights), files:DIR, "
                          "hf:MODEL, vda:FILE, onnx:FILE, tflite:FILE, depthcrafter, combinations such as hf:MODEL+mvs, "
                          "and refine:SPEC (multi-view refinement of SPEC's depth)")
    run.add_argument("--fusion", type=_fusion, metavar="KEY=BOOL,...",
                     help="how a learned prior is fused with the geometry (priors such as tflite:FILE+mvs, and auto "
                          "when it picks a learned model): local_fit=false keeps one scale and shift per frame "
                          "(default true: a smooth local field), blend=false keeps the fitted learned depth "
                          "everywhere (default true: the geometry where it is confident)")
    run.add_argument("--model-dir", help="folder of model weights searched before $STEADYDEPTH_MODELS and the "
                                         "Hugging Face cache (--prior auto, vda)")
    run.add_argument("--no-download", action="store_true",
                     help="never download model weights (as STEADYDEPTH_NO_DOWNLOAD=1)")
    run.add_argument("--preset", default="balanced", choices=[*PRESETS, *PRESET_ALIASES])
    run.add_argument("--max-res", type=int, help="long side of the processing resolution (preset default)")
    run.add_argument("--temporal-radius", type=int,
                     help="fuse each frame's depth with this many neighbours on each side through the cameras "
                          "(0 = off; preset default)")
    run.add_argument("--output-res", default="input", choices=["input", "processing"],
                     help="write depth at the input resolution (default) or the processing one")
    run.add_argument("--start", type=int, default=0, help="first source frame")
    run.add_argument("--stop", type=int, help="source frame to stop before")
    run.add_argument("--stride", type=int, default=1, help="take every N-th frame")
    run.add_argument("--format", dest="formats", action="append", choices=list(DEPTH_FORMATS),
                     help="per-frame depth files besides npy (repeatable): " + ", ".join(f for f in DEPTH_FORMATS if f != "npy"))
    run.add_argument("--png-scale", type=float, default=1000.0,
                     help="16-bit PNG stores round(depth * scale) (default 1000: millimetres for metric depth)")
    run.add_argument("--no-npz", action="store_true", help="skip depth.npz (per-frame files only)")
    run.add_argument("--no-vis", action="store_true", help="skip depth_vis.mp4")
    run.add_argument("--side-by-side", action="store_true", help="put the input beside the depth in depth_vis.mp4")
    run.add_argument("--cmap", default="inferno", choices=sorted(COLORMAPS), help="colour map of depth_vis.mp4")
    run.add_argument("--points", action="store_true", help="write points/NNNNNN.ply per frame")
    run.add_argument("--no-scene", action="store_true",
                     help="skip the fused scene (scene.ply, scene.glb, scene_points.ply)")
    run.add_argument("--points-stride", type=int, default=2, help="take every N-th pixel for point clouds")
    run.add_argument("--fov", type=float, help="known horizontal field of view in degrees")
    run.add_argument("--intrinsics", type=_intrinsics, help="known fx,fy,cx,cy in pixels of the input")
    run.add_argument("--metric-hint", help="depth=METRES (median depth of the first frame) or travel=METRES "
                                           "(camera path length) to output metres")
    run.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto (learned priors)")
    run.add_argument("--overwrite", action="store_true", help="replace a run already in the output folder")

    _add_batch_parser(sub, common, run)

    ev = sub.add_parser("eval", parents=[common], help="score an output folder against ground truth")
    ev.add_argument("output", help="a steadydepth output folder (or any folder with depth/*.npy)")
    ev.add_argument("--gt", required=True, help="ground truth: a gt/ folder (depth/ + cameras.json) or a dataset folder")
    ev.add_argument("--max-depth", type=float, help="ignore ground truth beyond this depth (dataset default)")
    ev.add_argument("--json", dest="json_path", help="also write the metrics as JSON here")

    pri = sub.add_parser("priors", parents=[common], help="list the depth priors and the learned models (licence, "
                                                           "size, outputs, how to get them, which are on disk)")
    pri.add_argument("--model-dir", help="also look for weights in this folder")
    from .web.cli import add_web_commands

    add_web_commands(sub, common)
    _add_animate_parser(sub, common)
    return parser


def _add_batch_parser(sub, common: argparse.ArgumentParser, run: argparse.ArgumentParser) -> None:
    """``batch INPUTS... -o OUTDIR``: the options of ``run`` (copied from its parser) plus Ray's."""
    batch = sub.add_parser("batch", parents=[common], epilog=exit_codes_help(),
                           help="run many clips (files, folders of videos, .txt lists of paths), one folder each")
    batch.add_argument("inputs", nargs="+", help="video files, image folders, folders of videos, or .txt lists")
    batch.add_argument("-o", "--output", required=True, help="output folder: one sub-folder per clip, batch.json")
    for action in run._actions:
        if action.dest not in ("help", "input", "output", "quiet", "log_level", "debug", "intrinsics"):
            batch._add_action(action)
    batch.add_argument("--ray", action="store_true", help="run the clips as tasks on a local Ray (extra 'ray')")
    batch.add_argument("--address", help="join the Ray cluster at this address instead ('auto', HOST:PORT)")
    batch.add_argument("--num-cpus", type=int, help="CPUs of the local Ray (default: all)")
    batch.add_argument("--cpus-per-clip", type=float, default=1.0, help="CPUs Ray reserves for each clip")


def _add_animate_parser(sub, common: argparse.ArgumentParser) -> None:
    from .animate.paths import PATHS

    an = sub.add_parser("animate", parents=[common], help="one picture (or a run's frame) to a 3D camera fly-through",
                        epilog=exit_codes_help())
    an.add_argument("image", nargs="?", help="the picture (png, jpg, exr, ...); omit with --from-run")
    an.add_argument("-o", "--output", required=True, help="output folder")
    an.add_argument("--depth", help="z-depth of the picture: .npy, 16-bit .png (see --png-scale), .exr, .pfm, .tif")
    an.add_argument("--png-scale", type=float, default=1000.0, help="16-bit PNG depth = value / scale (default 1000)")
    an.add_argument("--prior", help="a learned depth prior for the picture (tflite:FILE, hf:MODEL, onnx:FILE, ...)")
    an.add_argument("--intrinsics", type=_intrinsics, help="fx,fy,cx,cy in pixels of the picture")
    an.add_argument("--fov", type=float, help="horizontal field of view in degrees (default 60)")
    an.add_argument("--path", default="auto", help=f"camera path: {', '.join(PATHS)} or FILE.json (a run's "
                                                   "cameras.json layout, poses relative to the input view)")
    an.add_argument("--frames", type=int, help="number of frames (default fps x 5 s, or the path file's poses)")
    an.add_argument("--fps", type=float, default=24.0)
    an.add_argument("--speed", type=float, default=1.0, help="scale of the camera travel (default 1)")
    an.add_argument("--from-run", help="start from a frame of a processed steadydepth run folder")
    an.add_argument("--frame", type=int, default=0, help="with --from-run: the frame to start from")
    an.add_argument("--animate", dest="animate_region", choices=["sky", "water"], help="set this region in motion")
    an.add_argument("--animate-mask", help="image whose white pixels move (instead of --animate)")
    an.add_argument("--motion-speed", type=float, help="speed of the moving region in pixels per frame")
    an.add_argument("--band", type=int, help="width in pixels of the background hidden behind edges (default: from the path)")
    an.add_argument("--device", default="cpu", help="device of a learned prior")
    an.add_argument("--overwrite", action="store_true", help="replace an animation already in the output folder")


def _cmd_animate(args: argparse.Namespace) -> int:
    from .animate.command import AnimateOptions, animate

    opts = AnimateOptions(
        image=args.image, depth=args.depth, png_scale=args.png_scale, prior=args.prior, intrinsics=args.intrinsics,
        fov=args.fov, path=args.path, frames=args.frames, fps=args.fps, speed=args.speed, from_run=args.from_run,
        frame=args.frame, animate=args.animate_region, animate_mask=args.animate_mask,
        motion_speed=args.motion_speed, band=args.band, overwrite=args.overwrite, progress_bar=not args.quiet,
        device=args.device)
    animate(args.output, opts)
    return 0


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.WARNING if args.quiet else getattr(logging, args.log_level)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if level > logging.DEBUG:  # third-party logs stay off the terminal; our errors say what failed
        for name, env in (("huggingface_hub", "HF_HUB_VERBOSITY"), ("transformers", "TRANSFORMERS_VERBOSITY"),
                          ("diffusers", "DIFFUSERS_VERBOSITY")):
            logging.getLogger(name).setLevel(logging.ERROR)
            os.environ.setdefault(env, "error")  # their own handlers read it when they are imported


def _run_options(args: argparse.Namespace, intr: Intrinsics | None) -> RunOptions:
    return RunOptions(
        prior=args.prior, preset=args.preset, max_res=args.max_res, temporal_radius=args.temporal_radius,
        start=args.start, stop=args.stop,
        stride=args.stride, output_res=args.output_res, formats=tuple(args.formats or ("npy",)),
        png_scale=args.png_scale, npz=not args.no_npz, vis=not args.no_vis, side_by_side=args.side_by_side,
        cmap=args.cmap, points=args.points, points_stride=args.points_stride, scene=not args.no_scene, hfov_deg=args.fov, intrinsics=intr,
        metric_hint=args.metric_hint, device=args.device, overwrite=args.overwrite, progress_bar=not args.quiet,
        extra={"fusion": args.fusion} if args.fusion else {},
    )


def _cmd_run(args: argparse.Namespace) -> int:
    from .pipeline import estimate

    if args.model_dir:  # read by the model catalogue (priors.catalog) for this run
        os.environ["STEADYDEPTH_MODELS"] = os.pathsep.join(filter(None, [args.model_dir,
                                                                         os.environ.get("STEADYDEPTH_MODELS")]))
    if args.no_download:
        os.environ["STEADYDEPTH_NO_DOWNLOAD"] = "1"

    intr = None
    if args.intrinsics is not None:
        from .io.frames import open_source

        src = open_source(args.input, start=args.start, stop=args.stop, stride=args.stride)
        fx, fy, cx, cy = args.intrinsics
        intr = Intrinsics(fx, fy, cx, cy, src.width, src.height)
    video = estimate(args.input, args.output, _run_options(args, intr))
    info = json.loads((video.folder / "run.json").read_text())
    log.info("wrote %d frames (%s units) to %s in %.1f s", len(video), video.units, video.folder,
             info["timings_s"]["total"])
    return 0


def _cmd_batch(args: argparse.Namespace) -> int:
    """Exit code: 0 when every clip completed, else the first failed clip's."""
    from .batch import run_batch

    records = run_batch(args.inputs, args.output, _run_options(args, None), use_ray=args.ray,
                        address=args.address, num_cpus=args.num_cpus, cpus_per_clip=args.cpus_per_clip)
    return next((r["exit_code"] or 1 for r in records if r["status"] == "failed"), 0)


def _cmd_eval(args: argparse.Namespace) -> int:
    from .eval.evaluate import evaluate_output
    from .eval.report import format_table

    result = evaluate_output(Path(args.output), Path(args.gt), max_depth=args.max_depth)
    print(format_table(result["rows"], result["columns"]))
    traj = result.get("trajectory")
    if traj:
        print(f"trajectory: ATE RMSE {traj['ate_rmse']:.4g} (after Sim(3) alignment), "
              f"rotation error {traj['rot_err_deg_mean']:.3g} deg mean, {traj['num_frames']} posed frames")
    if args.json_path:
        from .io.atomic import atomic_write_json

        atomic_write_json(Path(args.json_path), result)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args)
    try:
        if args.command == "run":
            with cli_names():
                return _cmd_run(args)
        if args.command == "batch":
            with cli_names():
                return _cmd_batch(args)
        if args.command == "eval":
            with cli_names():
                return _cmd_eval(args)
        if args.command in ("view", "serve"):
            from .web.cli import run_web_command

            return run_web_command(args)
        if args.command == "animate":
            return _cmd_animate(args)
        if args.command == "priors":
            from .priors import available_priors
            from .priors.catalog import format_listing

            print("\n".join(available_priors()))
            print("\nlearned models (--prior auto picks the first auto candidate on disk):")
            print(format_listing(args.model_dir))
            return 0
        raise InputError(f"unknown command {args.command}")
    except SteadyDepthError as exc:
        if args.debug:
            raise
        print(f"steadydepth: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Terminated:
        print("steadydepth: terminated (SIGTERM); finished frames are kept in the output folder", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("steadydepth: interrupted; finished frames are kept in the output folder", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last resort: one line, traceback with --debug
        if args.debug:
            raise
        print(f"steadydepth: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
