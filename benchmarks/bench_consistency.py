"""Accuracy and speed of the consistency layer on sequences with exact ground truth.

The per-frame "model" is the flickering-prior SIMULATOR (:mod:`steadydepth.eval.simulate`),
built from the ground truth: a measurement tool, not a depth estimator. For each sequence
the table gives AbsRel, delta1 and TAE (evaluation protocol of :mod:`steadydepth.eval.metrics`,
one scale/shift per sequence unless said otherwise) of:

* ``raw (seq)``      the simulated prior, aligned per sequence (the protocol);
* ``raw (frame)``    the same, aligned frame by frame to the ground truth (an oracle);
* ``clip-aligned``   after :class:`~steadydepth.consistency.align.ClipAligner` (no geometry);
* ``mvs``            the weight-free multi-view stereo prior alone (GROUND-TRUTH cameras);
* ``fused``          ``simulated+mvs``: the combined prior (fusion + clip alignment with
  mvs as geometry; GROUND-TRUTH cameras given to mvs and to the aligner);
* ``fused+refined``  the fused depth refined by :func:`~steadydepth.consistency.refine.refine_depth`
  (GROUND-TRUTH cameras, neighbours at +-2 and +-4 frames with their fused depth).

Also ``AbsRel(none)``: the fused output scored with no alignment at all (it has the poses'
metric units). Run: ``python benchmarks/bench_consistency.py [--quick] [--no-refine]``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from steadydepth.consistency.align import ClipAligner
from steadydepth.consistency.refine import refine_depth
from steadydepth.eval.metrics import evaluate_depth
from steadydepth.eval.report import format_table
from steadydepth.eval.simulate import simulate_flickering_prior
from steadydepth.priors.base import PriorContext, create_prior
from steadydepth.types import Cameras, Frame, Intrinsics

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "open3d_rgbd"


def load_open3d(root: Path, width: int) -> dict | None:
    if not root.is_dir():
        return None
    images = [cv2.imread(str(p))[:, :, ::-1] for p in sorted((root / "color").glob("*.jpg"))]
    depth = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED).astype(np.float32) / 1000.0
             for p in sorted((root / "depth").glob("*.png"))]
    lines = [ln.split() for ln in (root / "trajectory.log").read_text().splitlines() if ln.strip()]
    poses = [np.array([[float(x) for x in lines[5 * i + 1 + r]] for r in range(4)]) for i in range(len(lines) // 5)]
    h0, w0 = depth[0].shape
    height = int(round(h0 * width / w0))
    intr = Intrinsics(525.0, 525.0, 319.5, 239.5, w0, h0).scaled(width, height)
    images = np.stack([cv2.resize(np.ascontiguousarray(im), (width, height), interpolation=cv2.INTER_AREA) for im in images])
    depth = np.stack([cv2.resize(d, (width, height), interpolation=cv2.INTER_NEAREST) for d in depth])
    return {"name": "open3d_rgbd (5 fr)", "images": images, "depth": depth, "poses": np.stack(poses), "intrinsics": intr}


def synthetic(frames: int, width: int, height: int, moving: bool) -> dict:
    from steadydepth.synthetic import render_clip

    clip = render_clip(frames, width, height, motion="orbit", moving_object=moving, seed=11)
    name = f"synthetic orbit{' + mover' if moving else ''} ({frames} fr)"
    return {"name": name, "images": clip.images, "depth": clip.depth, "poses": clip.poses, "intrinsics": clip.intrinsics}


def run_sequence(seq: dict, *, refine: bool, seed: int = 0) -> list[dict]:
    images, gt, poses, intr = seq["images"], seq["depth"], seq["poses"], seq["intrinsics"]
    T = len(images)
    kw = dict(intrinsics=intr, poses=poses)
    rows: list[dict] = []

    def row(method: str, m, seconds: float | None = None, extra: dict | None = None) -> None:
        r = {"sequence": seq["name"], "method": method, "AbsRel": m.abs_rel, "delta1": m.delta1, "TAE": m.tae,
             "s/frame": None if seconds is None else seconds / T}
        r.update(extra or {})
        rows.append(r)

    raw = np.stack(list(simulate_flickering_prior(gt, seed=seed)))
    row("raw (seq)", evaluate_depth(raw, gt, pred_is_disparity=True, **kw))
    row("raw (frame, oracle)", evaluate_depth(raw, gt, pred_is_disparity=True, align="frame", **kw))

    t0 = time.perf_counter()
    al = ClipAligner()
    for k in range(T):
        al.observe(k, images[k], raw[k])
    al.solve()
    aligned = np.stack([al.apply(k, raw[k]) for k in range(T)])
    row("clip-aligned", evaluate_depth(aligned, gt, pred_is_disparity=True, **kw), time.perf_counter() - t0)

    cams = Cameras(intrinsics=intr, poses=list(poses), units="metres", source="ground truth")
    ctx = PriorContext(cameras=cams, num_frames=T, frame_size=(intr.width, intr.height), preset="balanced")
    frames = [Frame(k, np.ascontiguousarray(images[k])) for k in range(T)]
    try:
        t0 = time.perf_counter()
        mvs = [o.values for o in create_prior("mvs").process(iter(frames), ctx)]
        t_mvs = time.perf_counter() - t0
        row("mvs (GT cameras)", evaluate_depth(np.stack(mvs), gt, **kw), t_mvs)
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "depth").mkdir()
            for k in range(T):
                np.save(Path(tmp) / "depth" / f"{k:06d}.npy", gt[k])
            t0 = time.perf_counter()
            prior = create_prior(f"simulated:{tmp}?seed={seed}+mvs")
            fused = np.stack([o.values for o in prior.process(iter(frames), ctx)])
            t_fused = time.perf_counter() - t0
        m_none = evaluate_depth(fused, gt, align="none", **kw)
        row("fused (sim+mvs)", evaluate_depth(fused, gt, **kw), t_fused, {"AbsRel(none)": m_none.abs_rel})
    except Exception as exc:  # report, do not hide
        logging.getLogger("bench").error("%s: fusion not measured: %s", seq["name"], exc)
        return rows

    if refine:
        t0 = time.perf_counter()
        refined = []
        for k in range(T):
            nb = [(images[j], poses[j], fused[j]) for j in (k - 4, k - 2, k + 2, k + 4) if 0 <= j < T]
            if not nb:
                nb = [(images[j], poses[j], fused[j]) for j in range(T) if j != k][:2]
            refined.append(refine_depth(images[k], fused[k], nb, poses[k], intr, iters=40))
        t_ref = time.perf_counter() - t0
        m_none = evaluate_depth(np.stack(refined), gt, align="none", **kw)
        row("fused+refined", evaluate_depth(np.stack(refined), gt, **kw), t_ref, {"AbsRel(none)": m_none.abs_rel})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--width", type=int, default=240)
    ap.add_argument("--quick", action="store_true", help="12 frames at 160x120")
    ap.add_argument("--no-refine", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    frames, width = (12, 160) if args.quick else (args.frames, args.width)
    height = width * 3 // 4
    seqs = [synthetic(frames, width, height, False), synthetic(frames, width, height, True)]
    real = load_open3d(DATA, 320)
    if real is None:
        print(f"(open3d_rgbd not found at {DATA}: skipped)")
    else:
        seqs.append(real)
    rows = []
    for seq in seqs:
        t0 = time.perf_counter()
        rows += run_sequence(seq, refine=not args.no_refine)
        print(f"{seq['name']}: {time.perf_counter() - t0:.1f} s", flush=True)
    print("simulated prior = flickering-prior SIMULATOR built from ground truth (measurement tool)")
    print("mvs / fusion / refinement use GROUND-TRUTH cameras")
    print(format_table(rows, ["sequence", "method", "AbsRel", "delta1", "TAE", "AbsRel(none)", "s/frame"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
