"""The ``view`` and ``serve`` subcommands (kept here so ``cli.py`` only wires them in)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

__all__ = ["add_web_commands", "run_web_command"]

log = logging.getLogger("steadydepth")


def add_web_commands(sub, common: argparse.ArgumentParser) -> None:
    """Add ``view OUTDIR`` and ``serve`` to the subcommand parser ``sub``."""
    from ..options import PRESET_ALIASES, PRESETS

    view = sub.add_parser("view", parents=[common], help="open a run in a 4D viewer in the browser (viser)")
    view.add_argument("output", help="a steadydepth output folder (the -o of 'steadydepth run')")
    view.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    view.add_argument("--port", type=int, default=8080, help="port (the next free one when it is taken)")
    view.add_argument("--max-points", type=int, default=40_000, help="points drawn per frame (the pixel grid is thinned)")
    view.add_argument("--max-frames", type=int, default=600, help="frames kept for playback (every k-th of a longer run)")

    serve = sub.add_parser("serve", parents=[common], help="a web app: drop a clip, get depth, downloads and 3D")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--jobs-dir", help="folder for the jobs (default: a temporary folder removed on exit)")
    serve.add_argument("--preset", default="balanced", choices=[*PRESETS, *PRESET_ALIASES])
    serve.add_argument("--max-upload-mb", type=float, default=200.0, help="largest upload accepted, in MB")
    serve.add_argument("--max-frames", type=int, default=600, help="longest clip accepted, in frames")
    serve.add_argument("--max-jobs", type=int, default=1, help="clips processed at the same time")
    serve.add_argument("--max-queued", type=int, default=4, help="clips that may wait for their turn")
    serve.add_argument("--keep", type=float, default=3600.0, help="seconds a finished job's files are kept")


def _check_port(port: int) -> None:
    from ..errors import InputError

    if not 0 <= port <= 65535:
        raise InputError(f"--port must be in 0..65535, got {port}")


def _wait_forever() -> None:
    """Until Ctrl-C or SIGTERM (either stops the server cleanly, exit 0)."""
    stop = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def run_web_command(args: argparse.Namespace) -> int:
    from ..errors import InputError

    _check_port(args.port)
    if args.command == "view":
        if args.max_points < 100 or args.max_frames < 1:
            raise InputError("--max-points must be >= 100 and --max-frames >= 1")
        from ..viewer.app import open_viewer

        app = open_viewer(args.output, host=args.host, port=args.port, max_points=args.max_points,
                          max_frames=args.max_frames)
        print(f"steadydepth view: open {app.url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    else:
        from .jobs import JobLimits
        from .server import start_server

        if not args.max_upload_mb > 0:
            raise InputError(f"--max-upload-mb must be > 0, got {args.max_upload_mb}")
        limits = JobLimits(max_upload_bytes=int(args.max_upload_mb * 1e6), max_frames=args.max_frames,
                           max_running=args.max_jobs, max_queued=args.max_queued, keep_s=args.keep)
        app = start_server(args.host, args.port, jobs_dir=args.jobs_dir, limits=limits, preset=args.preset)
        print(f"steadydepth serve: open {app.url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        _wait_forever()
    finally:
        app.close()
    return 0
