"""Learned prior + geometry fusion on the real sequences of ``../shared/data``, scored the field's way.

Per real sequence (``sevenscenes_redkitchen``, ``sevenscenes_redkitchen_long``,
``realsense_desk``; an absent one is skipped with a printed line) and the real FastDepth
network (``../shared/models/fastdepth/fast_depth_224.tflite``; the benchmark stops with a
line when it is absent), one ``steadydepth run`` per row (a fresh process each,
:func:`bench_real.run_once`):

* ``mvs``: geometry alone (the default prior);
* ``tflite``: the learned prior alone, clip-aligned (relative, scene units);
* ``tflite raw``: the same output scored with one scale and shift *per frame* (the
  per-frame-aligned network: its own flicker, what "raw TAE" refers to);
* ``tflite+mvs (global)``: the fusion with one scale and shift per frame only
  (``fusion.local_fit = false``, the previous behaviour);
* ``tflite+mvs``: the default fusion (local scale/shift field, geometry kept where confident,
  temporal fusion through the cameras);
* ``tflite consistent``: the learned depth fitted locally to the geometry and made to agree
  across frames through the cameras, the geometry not blended in (``fusion.blend = false``).

Columns: AbsRel, delta1 and TAE x100 (one scale and shift per sequence in disparity, as
``bench_real.py``), and the ratios the targets name: AbsRel and TAE of ``tflite+mvs`` over
``mvs``, raw TAE over ``tflite consistent`` TAE. SfM is not bit-reproducible: ``mvs`` and the
fused rows run SfM separately, so differences within a few per cent are noise.

    .venv/bin/python benchmarks/bench_fusion.py [--seqs NAME ...] [--rows NAME ...] [--preset balanced]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_real  # noqa: E402

MODEL = bench_real.ROOT.parent / "shared" / "models" / "fastdepth" / "fast_depth_224.tflite"


def rows_for(model: Path) -> dict[str, tuple[str, dict | None]]:
    """Row name -> (``--prior`` spec, ``fusion`` options or None)."""
    t = f"tflite:{model}"
    return {
        "mvs": ("mvs", None),
        "tflite": (t, None),
        "tflite+mvs (global)": (f"{t}+mvs", {"local_fit": False}),
        "tflite+mvs": (f"{t}+mvs", None),
        "tflite consistent": (f"{t}+mvs", {"blend": False}),
    }


def _extra_args(fusion: dict | None) -> list[str]:
    """The ``--fusion`` flag for the row's fusion options."""
    return [] if fusion is None else ["--fusion", ",".join(f"{k}={str(v).lower()}" for k, v in fusion.items())]


def _score_raw(out: Path, seq: Path) -> dict:
    """The run's depth scored with one scale and shift per frame (the raw network's flicker)."""
    from steadydepth.eval.evaluate import evaluate_output

    row = [r for r in evaluate_output(out, seq)["rows"] if r["align"] == "frame"][0]
    return {"abs_rel": row["abs_rel"], "delta1": row["delta1"], "tae": row["tae"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seqs", nargs="+", default=bench_real.SEQS)
    parser.add_argument("--rows", nargs="+", default=None, help="rows to run (default: all)")
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--model", default=str(MODEL))
    args = parser.parse_args(argv)
    model = Path(args.model)
    if not model.is_file():
        print(f"skipped: {model} absent (the real FastDepth weights)")
        return 0
    table = rows_for(model)
    wanted = args.rows or list(table)
    unknown = [r for r in wanted if r not in table]
    if unknown:
        parser.error(f"unknown rows {unknown}; known: {list(table)}")
    root = Path(tempfile.mkdtemp(prefix="sd-bench-fusion-"))
    results: list[dict] = []
    try:
        for name in args.seqs:
            seq = bench_real.SHARED / name
            if not seq.is_dir():
                print(f"skipped {name}: {seq} absent")
                continue
            per: dict[str, dict] = {}
            for row in wanted:
                spec, fusion = table[row]
                work = root / f"{name}_{len(per)}"
                extra = ["--prior", spec, "--no-vis", *_extra_args(fusion)]
                r = bench_real.run_once(name, work, args.preset, extra)
                if row == "tflite" and "note" not in r:
                    per["tflite raw"] = {"seq": name, **_score_raw(work / "out", seq)}
                per[row] = r
                print(f"done: {name} {row}: " + ", ".join(f"{k}={v:.4g}" for k, v in r.items()
                                                          if isinstance(v, float)), file=sys.stderr, flush=True)
                shutil.rmtree(work, ignore_errors=True)
            for row, r in per.items():
                results.append({"seq": name, "row": row, **{k: r.get(k) for k in ("abs_rel", "delta1", "tae", "note")}})
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"preset: {args.preset}; model: {model.name}")
    print("| sequence | row | AbsRel | δ1 | TAE |\n|---|---|---|---|---|")
    for r in results:
        cells = [format(r[k], f) if r.get(k) is not None else "—" for k, f in (("abs_rel", ".4f"), ("delta1", ".3f"), ("tae", ".2f"))]
        print(f"| {r['seq']} | {r['row']} | " + " | ".join(cells) + (f" ({r['note']})" if r.get("note") else "") + " |")
    by = {(r["seq"], r["row"]): r for r in results if r.get("abs_rel") is not None}
    seqs = sorted({r["seq"] for r in results}, key=[r["seq"] for r in results].index)

    def ratio(a: str, b: str, key: str) -> float | None:
        vals = [(by[(s, a)][key], by[(s, b)][key]) for s in seqs if (s, a) in by and (s, b) in by
                and by[(s, a)].get(key) is not None and by[(s, b)].get(key) is not None]
        return float(np.mean([x for x, _ in vals]) / np.mean([y for _, y in vals])) if vals else None

    for label, a, b, key in (("mean AbsRel tflite+mvs / mvs (target <= 0.9)", "tflite+mvs", "mvs", "abs_rel"),
                             ("mean TAE tflite+mvs / mvs (target <= 1)", "tflite+mvs", "mvs", "tae"),
                             ("mean TAE tflite raw / tflite consistent (target >= 3)", "tflite raw", "tflite consistent", "tae")):
        v = ratio(a, b, key)
        print(f"{label}: {'—' if v is None else format(v, '.3f')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
