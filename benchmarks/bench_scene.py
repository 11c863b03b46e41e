"""Accuracy, cost and memory of the fused scene (``scene.ply``) that every posed run writes.

For each case the default pipeline runs (``steadydepth.estimate``, ``--preset``, scene on) and
its mesh is scored by :mod:`steadydepth.eval.scene_accuracy` after moving it by the Sim(3) that
aligns the run's cameras to the true ones:

* synthetic clips (``orbit60``, ``walk60``, ``mover60``: 60 frames 480x270 rendered by
  :func:`steadydepth.synthetic.render_clip`): distance of every mesh vertex to the true surface
  (the static primitives' exact ``signed_distance``; the moving box counts as an error), and the
  true surface sampled from the ground-truth depth maps (every 4th pixel of every 3rd frame,
  moving-object pixels left out);
* real 7-Scenes sequences from ``../shared/data``: the reference is a TSDF of the ground-truth
  depth fused with the ground-truth poses (same fusion code, 1 cm voxels, the depth camera's
  intrinsics), distances are to its nearest vertex. The run's mesh comes from the *colour*
  camera, the reference from the depth camera (not registered, a few cm apart): a floor of
  roughly a centimetre is in these figures. A second row (``... depth-scaled``) takes the
  Sim(3)'s scale from the depth instead (median ratio of ground-truth to run depth over co-valid
  pixels) and its rotation from the camera orientations: what is left is the depth's own error,
  not the trajectory's scale;
* ``exact-orbit``, ``exact-walk``: the fusion alone, on the exact depth and cameras of the same
  synthetic clips (the same frame selection, fusion size and settings as a run), no pipeline.

Columns: ``median%`` (median vertex distance, % of the diagonal of the seen true surface; target
<= 0.5), ``complete%`` (true surface within 1 % of the diagonal of a vertex; target >= 80),
``accurate%`` (vertices within 1 %), ``scene_s`` and ``run_s`` (the scene's time and the whole
run's, from run.json), ``frac%`` (their ratio; target < 15), ``voxel``, ``volume_mb`` (the TSDF's
arrays). ``--memory`` adds the peak memory (tracemalloc) of fusing the exact depth of a 60- and a
240-frame orbit of the same room (the longer path's extra shake sees more surface: memory follows
the surface seen, capped by the block budget, not the frame count).

    .venv/bin/python benchmarks/bench_scene.py [--cases orbit60 walk60 mover60 sevenscenes_redkitchen]
        [--preset balanced] [--memory] [--keep DIR [--reuse]]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

CASES = {"orbit60": ("orbit", False), "walk60": ("walk", False), "mover60": ("orbit", True)}


def _poses(path: Path) -> list[np.ndarray | None]:
    cams = json.loads(path.read_text())
    return [None if f["pose_c2w"] is None else np.asarray(f["pose_c2w"]) for f in cams["frames"]]


REUSE = False  # --reuse: keep a finished run found in --keep instead of running it again


def _run(src: Path, out: Path, preset: str) -> dict:
    from steadydepth.pipeline import estimate

    done = out / "run.json"
    if not (REUSE and done.is_file() and json.loads(done.read_text()).get("status") == "complete"
            and (out / "scene.ply").is_file()):
        estimate(src, out, preset=preset, progress_bar=False, overwrite=True)
    return json.loads((out / "run.json").read_text())


def _row(name: str, info: dict | None, score: dict) -> dict:
    if info is None:
        return {"case": name, **{k: score[k] for k in ("median_pct", "complete_pct", "accurate_pct")},
                "vertices": score["vertices"]}
    scene = info.get("scene") or {}
    total = info["timings_s"]["total"]
    return {"case": name, "frames": info["frames"], **{k: score[k] for k in ("median_pct", "complete_pct",
                                                                              "accurate_pct")},
            "vertices": scene.get("vertices"), "voxel": scene.get("voxel_size"), "scene_s": scene.get("time_s"),
            "run_s": total, "frac_pct": 100.0 * scene.get("time_s", float("nan")) / total,
            "volume_mb": scene.get("volume_mb")}


def exact_case(name: str) -> dict:
    """The fusion alone on a synthetic clip's exact depth and cameras (``exact-orbit``, ``exact-walk``)."""
    import cv2

    from steadydepth.eval.scene_accuracy import scene_accuracy, surface_samples
    from steadydepth.scene.fused_scene import choose_voxel_size, fuse, fusion_size, select_views
    from steadydepth.scene.tsdf import TSDFSettings
    from steadydepth.synthetic import build_scene, render_clip

    clip = render_clip(60, 480, 270, motion=name.split("-", 1)[1], seed=0)
    size = fusion_size(480, 270)
    K = clip.intrinsics.scaled(*size).K
    depth = [cv2.resize(d, size, interpolation=cv2.INTER_NEAREST) for d in clip.depth]
    images = [cv2.resize(im, size, interpolation=cv2.INTER_AREA) for im in clip.images]
    voxel, median = choose_voxel_size([(depth[k], None, clip.poses[k]) for k in range(0, 60, 5)], K)
    views = select_views(list(clip.poses), median)

    def frames(colour: bool):
        for k in views:
            yield depth[k], None, images[k] if colour else None, clip.poses[k]

    mesh, _, _ = fuse(frames, K, TSDFSettings(voxel_size=voxel, reference_depth=median), progress_bar=False)
    prims = build_scene(seed=0).primitives
    truth = surface_samples(((clip.depth[k], clip.poses[k], None) for k in range(0, 60, 3)), clip.intrinsics)
    score = scene_accuracy(mesh.vertices, truth, distance_to_truth=lambda p: np.min(
        np.abs(np.stack([q.signed_distance(p) for q in prims])), axis=0))
    return {**_row(name, None, score), "frames": 60, "voxel": voxel}


def synthetic_case(name: str, root: Path, preset: str) -> dict:
    from steadydepth.eval.scene_accuracy import align_mesh_to, scene_accuracy, surface_samples
    from steadydepth.io.ply import read_mesh_ply
    from steadydepth.synthetic import build_scene, render_clip, save_clip

    motion, mover = CASES[name]
    clip = render_clip(60, 480, 270, motion=motion, moving_object=mover, seed=0)
    save_clip(clip, root / name)
    info = _run(root / name / "clip.mp4", root / f"{name}_out", preset)
    verts, _, _ = read_mesh_ply(root / f"{name}_out" / "scene.ply")
    verts, _ = align_mesh_to(verts, _poses(root / f"{name}_out" / "cameras.json"), list(clip.poses))
    static = [p for p in build_scene(moving_object=mover, seed=0).primitives if not p.dynamic]

    def distance(points: np.ndarray) -> np.ndarray:
        return np.min(np.abs(np.stack([p.signed_distance(points) for p in static])), axis=0)

    masks = clip.dynamic_mask if clip.dynamic_mask is not None else [None] * len(clip)
    truth = surface_samples(((clip.depth[k], clip.poses[k], masks[k]) for k in range(0, len(clip), 3)),
                            clip.intrinsics)
    return _row(name, info, scene_accuracy(verts, truth, distance_to_truth=distance))


def real_case(name: str, root: Path, preset: str) -> list[dict]:
    from bench_real import colour_frames, link_frames

    from steadydepth.eval.real_sequences import load_sevenscenes
    from steadydepth.eval.scene_accuracy import align_mesh_to, scene_accuracy
    from steadydepth.io.ply import read_mesh_ply
    from steadydepth.scene.fused_scene import fuse, fusion_size
    from steadydepth.scene.tsdf import TSDFSettings

    folder = SHARED / name
    if not folder.is_dir():
        print(f"skipped {name}: {folder} absent", file=sys.stderr)
        return []
    shutil.rmtree(root / name, ignore_errors=True)  # symlinks of an earlier run (the data is never copied)
    link_frames(colour_frames(folder), root / name)
    info = _run(root / name, root / f"{name}_out", preset)
    gt = load_sevenscenes(folder, load_images=False)
    size = fusion_size(gt.intrinsics.width, gt.intrinsics.height)
    K = gt.intrinsics.scaled(*size).K

    def frames(_colour: bool):
        import cv2

        for d, pose in zip(gt.depth, gt.poses):
            d = np.where(gt_valid(d), d, 0.0).astype(np.float32)
            yield cv2.resize(d, size, interpolation=cv2.INTER_NEAREST), None, None, pose

    def gt_valid(d: np.ndarray) -> np.ndarray:
        return np.isfinite(d) & (d > 1e-3) & (d < gt.max_depth)

    ref, _, _ = fuse(frames, K, TSDFSettings(voxel_size=0.01, min_weight=1.0), count=len(gt), progress_bar=False)
    raw, _, _ = read_mesh_ply(root / f"{name}_out" / "scene.ply")
    pred = _poses(root / f"{name}_out" / "cameras.json")
    verts, _ = align_mesh_to(raw, pred, list(gt.poses))
    rows = [_row(name, info, scene_accuracy(verts, ref.vertices))]
    # the depth's own error: scale from the depth, rotation from the orientations
    from steadydepth.geometry import nearest_rotation

    ratios = []
    for k in range(0, len(gt), 5):
        d = np.load(root / f"{name}_out" / "depth" / f"{k:06d}.npy")
        ok = gt_valid(gt.depth[k]) & (d > 0)
        ratios.append(np.median(gt.depth[k][ok] / d[ok]))
    s = float(np.median(ratios))
    pairs = [(p, g) for p, g in zip(pred, gt.poses) if p is not None]
    R = nearest_rotation(sum(g[:3, :3] @ p[:3, :3].T for p, g in pairs))
    t = np.mean([g[:3, 3] for _, g in pairs], 0) - s * R @ np.mean([p[:3, 3] for p, _ in pairs], 0)
    rows.append(_row(f"{name} depth-scaled", None, scene_accuracy(s * raw @ R.T + t, ref.vertices)))
    return rows


def memory_rows() -> list[dict]:
    """Peak traced memory of fusing exact depth of orbits of 60 and 240 frames (same room)."""
    import tracemalloc

    from steadydepth.scene.fused_scene import choose_voxel_size, fuse, select_views
    from steadydepth.scene.tsdf import TSDFSettings
    from steadydepth.synthetic import render_clip

    rows = []
    for n in (60, 240):
        clip = render_clip(n, 320, 180, motion="orbit", seed=0)
        K = clip.intrinsics.K
        voxel, median = choose_voxel_size(((clip.depth[k], None, clip.poses[k]) for k in range(0, n, n // 12)), K)
        views = select_views(list(clip.poses), median)

        def frames(colour: bool):
            for k in views:
                yield clip.depth[k], None, clip.images[k] if colour else None, clip.poses[k]

        tracemalloc.start()
        t = time.perf_counter()
        mesh, vol, _ = fuse(frames, K, TSDFSettings(voxel_size=voxel), count=len(views), progress_bar=False)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rows.append({"case": f"exact orbit{n}", "frames": n, "fused": len(views), "blocks": vol.num_blocks,
                     "volume_mb": vol.nbytes / 1e6, "peak_mb": peak / 1e6, "fuse_s": time.perf_counter() - t})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=["orbit60", "walk60", "mover60", "exact-orbit", "exact-walk",
                                                       "sevenscenes_redkitchen"])
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--memory", action="store_true", help="also the peak memory of 60 vs 240 frames")
    parser.add_argument("--keep", help="keep clips and outputs here")
    parser.add_argument("--reuse", action="store_true", help="with --keep: score runs already there")
    args = parser.parse_args(argv)
    global REUSE
    REUSE = bool(args.reuse and args.keep)
    from steadydepth.eval.report import format_table

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="sd-bench-scene-"))
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for name in args.cases:
            if name in CASES:
                rows.append(synthetic_case(name, root, args.preset))
            elif name.startswith("exact-"):
                rows.append(exact_case(name))
            else:
                rows.extend(real_case(name, root, args.preset))
            print(f"done: {name}", file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"preset: {args.preset}")
    print(format_table(rows, ["case", "frames", "median_pct", "complete_pct", "accurate_pct", "vertices", "voxel",
                              "scene_s", "run_s", "frac_pct", "volume_mb"]))
    if args.memory:
        print(format_table(memory_rows(), ["case", "frames", "fused", "blocks", "volume_mb", "peak_mb", "fuse_s"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
