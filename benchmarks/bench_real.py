"""Default ``steadydepth run`` on the real RGB-D sequences of ``../shared/data``, scored the field's way.

One row per real sequence (``sevenscenes_redkitchen``, ``sevenscenes_redkitchen_long``,
``realsense_desk``; a sequence that is absent is skipped with a printed line). Each run is a
fresh ``steadydepth run`` process on a temporary folder of symlinks to the sequence's colour
frames (the data is never copied), with ``--quiet``, ``--preset`` and any extra arguments given
after ``--``. The output is scored with :func:`steadydepth.eval.evaluate.evaluate_output`
against the readers of :mod:`steadydepth.eval.datasets`:

* depth: one least-squares scale and shift per sequence in disparity, AbsRel and delta1
  (< 1.25) averaged over frames (ground truth valid in (1e-3, 10) m);
* TAE x100 (where poses exist): the aligned depth moved between consecutive frames with the
  ground-truth poses and the ground truth's *depth-camera* intrinsics (7-Scenes: 585, 585,
  320, 240; the colour camera is near 525 px and its depth is not registered to colour, so
  this TAE has a floor: 0.68 and 0.54 for the ground truth against itself);
* AbsRel colour, δ1 colour (7-Scenes only): the same against the ground truth moved into an
  assumed 525 px colour camera (:func:`~steadydepth.eval.real_sequences.sevenscenes_colour_depth`).
  The raw ground truth is the depth camera's (585 px), so the raw AbsRel rewards a focal near
  585 px, which is wrong for the colour frames being processed; a perfect colour-camera depth
  scores about 0.060 against the raw one. Neither column is exact (the sensors' offset is not
  modelled); read both before judging a change of intrinsics;
* head: the worst AbsRel of the first three frames over the median per-frame AbsRel
  (:attr:`~steadydepth.eval.metrics.DepthMetrics.head_ratio`; the issue's bound is 1.5);
* ATE RMSE (metres) of the run's cameras against the ground-truth poses after a Sim(3)
  alignment (:func:`steadydepth.eval.trajectory.trajectory_error`, as ``bench_pipeline.py``);
* frames/s end to end (wall clock of the whole ``steadydepth run`` process, start-up
  included), ``peak_memory_mb`` from ``run.json``, and the focal length (px, at the input
  resolution) in ``cameras.json``, i.e. the one SfM chose (or the focal check substituted),
  and the kinds of warning ``run.json`` lists (``no-parallax``, ``intrinsics``, ...).

SfM is not bit-reproducible: ``--repeat N`` runs each sequence N times and prints the mean and
the spread (min-max) of AbsRel, delta1 and TAE.

Cross-check against the independent scorer ``../shared/tools/score_depth.py`` (done by hand once,
on the depth.npz of one default balanced run of ``sevenscenes_redkitchen`` at main 73cdc35 with
other work in progress in the tree; K = 585,585,320,240 as ``../shared/tools/real_check.sh``
calls it, ground truth from :func:`~steadydepth.eval.real_sequences.load_sevenscenes`):

    this script (evaluate_output)   AbsRel 0.118488  delta1 0.871408  TAE 2.0697
    score_depth.py                  AbsRel 0.118488  delta1 0.871408  TAE 2.0855

AbsRel and delta1 agree (to 1e-11). TAE is 0.8 % lower here, two protocol details of the TAE,
not a bug in either: ``temporal_alignment_error`` projects every pixel with a valid prediction
(ground truth or not) and keeps the nearest point per target pixel (z-buffer), while
score_depth.py masks both frames by ground-truth validity and keeps every projected point.
Masking by ground truth alone gives 2.0788 here (half the gap); the z-buffer the rest.

    .venv/bin/python benchmarks/bench_real.py [--seqs NAME ...] [--preset balanced] [--repeat N]
        [--keep DIR] [-- EXTRA RUN ARGS]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from steadydepth.eval.datasets import GroundTruthSequence

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SEQS = ["sevenscenes_redkitchen", "sevenscenes_redkitchen_long", "realsense_desk"]

CHILD = "import sys; from steadydepth.cli import main; sys.exit(main(sys.argv[1:]))"


def _num_key(p: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def colour_frames(folder: Path) -> list[Path]:
    """The colour images of a sequence, in the order the ground-truth readers use."""
    if (folder / "rgb").is_dir():  # RealSense: rgb/rgbNNNNN.png
        return sorted((folder / "rgb").glob("rgb*.png"), key=_num_key)
    files = [p for p in folder.iterdir() if re.match(r"^frame-\d+\.color\.(png|jpg|jpeg)$", p.name, re.I)]
    return sorted(files, key=_num_key)


def link_frames(frames: list[Path], dest: Path) -> None:
    """``dest/000000.ext`` ... as symlinks to ``frames`` (no data copied)."""
    dest.mkdir(parents=True)
    for k, f in enumerate(frames):
        os.symlink(f.resolve(), dest / f"{k:06d}{f.suffix.lower()}")


def run_once(name: str, work: Path, preset: str, extra: list[str]) -> dict:
    """One ``steadydepth run`` on sequence ``name`` in a fresh process, scored against its ground truth."""
    from steadydepth.eval.datasets import load_ground_truth
    from steadydepth.eval.evaluate import evaluate_output

    seq = SHARED / name
    frames = colour_frames(seq)
    src, out = work / "rgb", work / "out"
    link_frames(frames, src)
    args = ["run", str(src), "-o", str(out), "--quiet", "--preset", preset, *extra]
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or ["(no message)"])[-1]
        return {"seq": name, "frames": len(frames), "note": f"run failed (rc {res.returncode}): {tail[:160]}"}
    info = json.loads((out / "run.json").read_text())
    cams = json.loads((out / "cameras.json").read_text()) if (out / "cameras.json").is_file() else {}
    intr = cams.get("intrinsics") or {}
    gt = load_ground_truth(seq)
    ev = evaluate_output(out, gt)
    row = ev["rows"][0]
    assert row["align"] == "sequence"
    posed = sum(f.get("pose_c2w") is not None for f in cams.get("frames", []))
    colour = colour_registered_scores(out, seq, gt)
    return {
        "seq": name, "frames": info["frames"], "size": "x".join(map(str, info.get("processing_size", []))),
        "abs_rel": row["abs_rel"], "delta1": row["delta1"], "tae": row["tae"], "head": row["head_ratio"],
        "abs_rel_colour": colour and colour[0], "delta1_colour": colour and colour[1],
        "ate": (ev.get("trajectory") or {}).get("ate_rmse"), "posed": f"{posed}/{info['frames']}",
        "wall_s": wall, "fps": info["frames"] / wall, "peak_mb": info.get("peak_memory_mb"),
        "focal": intr.get("fx"),
        "warnings": ",".join(sorted({str(w).split(":", 1)[0] for w in info.get("warnings") or []})) or "none",
    }


def colour_registered_scores(out: Path, seq: Path, gt: GroundTruthSequence) -> tuple[float, float] | None:
    """AbsRel and delta1 (sequence alignment) of a run against ``gt``, the ground truth of ``seq``,
    moved into the assumed colour camera
    (:func:`~steadydepth.eval.real_sequences.sevenscenes_colour_depth`); None for a sequence whose
    depth is already the colour camera's (the RealSense desk, which has ``rgb/``)."""
    from steadydepth.eval.evaluate import read_output_depth
    from steadydepth.eval.metrics import evaluate_depth
    from steadydepth.eval.real_sequences import sevenscenes_colour_depth

    if (seq / "rgb").is_dir():
        return None
    colour = sevenscenes_colour_depth(gt)
    files, indices = read_output_depth(out)
    m = evaluate_depth(lambda: (np.load(f) for f in files), [colour[i] for i in indices], align="sequence",
                       max_depth=gt.max_depth)
    return m.abs_rel, m.delta1


def _cell(vals: list, fmt: str) -> str:
    vals = [v for v in vals if v is not None]
    if not vals:
        return "—"
    if len(vals) == 1:
        return format(vals[0], fmt)
    return f"{format(float(np.mean(vals)), fmt)} ({format(min(vals), fmt)}–{format(max(vals), fmt)})"


def summarise(runs: list[dict]) -> dict:
    """Mean (min–max) of each metric over the repeats of one sequence, as table cells."""
    ok = [r for r in runs if "note" not in r]
    if not ok:
        return {"seq": runs[0]["seq"], "frames": str(runs[0].get("frames", "—")), "runs": f"0/{len(runs)}",
                "note": runs[0]["note"]}
    cols = {"abs_rel": ".4f", "delta1": ".3f", "abs_rel_colour": ".4f", "delta1_colour": ".3f", "tae": ".2f",
            "head": ".2f", "ate": ".4f", "fps": ".2f", "peak_mb": ".0f", "focal": ".1f", "wall_s": ".1f"}
    out = {"seq": ok[0]["seq"], "frames": str(ok[0]["frames"]), "size": ok[0]["size"],
           "runs": f"{len(ok)}/{len(runs)}", "posed": " ".join(sorted({r["posed"] for r in ok})),
           "warnings": " / ".join(sorted({r["warnings"] for r in ok}))}
    out.update({c: _cell([r[c] for r in ok], f) for c, f in cols.items()})
    return out


def markdown(rows: list[dict], cols: list[tuple[str, str]]) -> str:
    lines = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(k, "—")) for k, _ in cols) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seqs", nargs="+", default=SEQS, help="sequences of ../shared/data (default: all three)")
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--repeat", type=int, default=1, help="runs per sequence (mean and min–max spread)")
    parser.add_argument("--keep", help="keep the symlink folders and outputs here")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="sd-bench-real-"))
    root.mkdir(parents=True, exist_ok=True)

    rows = []
    try:
        for name in args.seqs:
            if not (SHARED / name).is_dir():
                print(f"skipped {name}: {SHARED / name} absent")
                continue
            runs = []
            for r in range(args.repeat):
                work = root / f"{name}_{r}"
                if work.exists():
                    shutil.rmtree(work)
                runs.append(run_once(name, work, args.preset, extra))
                print(f"done: {name} run {r + 1}/{args.repeat}: "
                      + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                  for k, v in runs[-1].items() if k != "seq"), file=sys.stderr, flush=True)
            rows.append(summarise(runs))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    cols = [("seq", "sequence"), ("frames", "frames"), ("size", "processing size"), ("runs", "runs ok"),
            ("abs_rel", "AbsRel"), ("delta1", "δ1"), ("abs_rel_colour", "AbsRel colour"),
            ("delta1_colour", "δ1 colour"), ("tae", "TAE"), ("head", "head"), ("ate", "ATE m"),
            ("posed", "posed"), ("focal", "focal px"), ("fps", "frames/s"), ("wall_s", "wall s"),
            ("peak_mb", "peak MB"), ("warnings", "run warnings")]
    print(f"preset: {args.preset}; extra run args: {' '.join(extra) or '(none)'}; repeats: {args.repeat}"
          + ("; cells with several runs: mean (min–max)" if args.repeat > 1 else ""))
    print(markdown(rows, cols))
    for r in rows:
        if "note" in r:
            print(f"{r['seq']}: {r['note']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
