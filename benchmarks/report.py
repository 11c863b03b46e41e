"""A Markdown benchmark report with plots, from the JSON rows of the other benchmarks.

Inputs (any of them):

* ``--memory FILE...``: rows of ``bench_memory.py --json`` (whole pipeline per clip length,
  one file per resolution): frames per second and peak memory against clip length and
  resolution, seconds per stage (``run.json``'s ``timings_s``), and the ratio of the
  end-to-end time to plain decoding of the same clip (decoded again here, when the clip
  ``WORK/clip-N.mp4`` is still there);
* ``--long FILE...``: rows of ``bench_long.py --json`` (chunked against one-shot SfM, one
  file per synthetic motion): ATE, scale drift and time per frame against clip length;
* ``--real``: runs ``bench_real.py``'s :func:`run_once` on each sequence of ``../shared/data``
  (AbsRel, δ1, TAE, ATE per sequence; minutes per sequence).

Needs matplotlib (``pip install -e .[bench]``).

    .venv/bin/python benchmarks/report.py --memory mem.json --long long.json [--real] -o report/
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def _plot(path: Path, title: str, xlabel: str, ylabel: str, series: dict[str, tuple[list, list]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", label=label)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return f"![{title}]({path.name})\n"


def _table(rows: list[dict], cols: list[tuple[str, str]]) -> str:
    def cell(v):
        return f"{v:.4g}" if isinstance(v, float) else ("-" if v is None else str(v))

    lines = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r.get(k)) for k, _ in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def decode_seconds(clip: Path) -> float | None:
    """Seconds to decode every frame of ``clip`` with the project's reader (None when absent)."""
    if not clip.is_file():
        return None
    from steadydepth.io.frames import open_source

    t = time.perf_counter()
    for _ in open_source(clip):
        pass
    return time.perf_counter() - t


def memory_section(files: list[str], out: Path, work: Path) -> str:
    rows = []
    for f in files:
        for r in json.loads(Path(f).read_text()):
            r.setdefault("size", "?")
            rows.append(r)
    by_size: dict[str, list[dict]] = {}
    for r in rows:
        by_size.setdefault(str(r["size"]), []).append(r)
        dec = decode_seconds(work / f"clip-{r['frames']}.mp4") if r["size"] == "?" or len(files) == 1 else None
        r["fps"] = r["frames"] / r["seconds"]
        r["decode_s"] = dec
        r["vs_decode"] = r["seconds"] / dec if dec else None
        for stage in ("cameras", "depth", "outputs"):
            sec = r.get("timings", {}).get(stage)
            r[f"{stage}_fps"] = r["frames"] / sec if sec else None
    md = ["## Whole pipeline against clip length\n"]
    md.append(_table(rows, [("size", "size"), ("frames", "frames"), ("seconds", "seconds"), ("fps", "frames/s"),
                            ("cameras_fps", "cameras f/s"), ("depth_fps", "depth f/s"),
                            ("outputs_fps", "outputs f/s"), ("peak_rss_mb", "peak MB"), ("ratio", "x shortest"),
                            ("decode_s", "decode s"), ("vs_decode", "x decoding")]))
    md.append(_plot(out / "memory.png", "Peak memory", "frames", "MB",
                    {s: ([r["frames"] for r in rs], [r["peak_rss_mb"] for r in rs]) for s, rs in by_size.items()}))
    for s, rs in by_size.items():
        md.append(_plot(out / f"stages-{s}.png".replace("?", "x"), f"Frames per second per stage ({s})", "frames",
                        "frames / s", {st: ([r["frames"] for r in rs], [r[f"{st}_fps"] for r in rs])
                                       for st in ("cameras", "depth", "outputs")}))
    if len(by_size) > 1:
        md.append(_plot(out / "fps-size.png", "Frames per second against resolution", "pixels", "frames / s",
                        {"all lengths": ([_pixels(r["size"]) for r in rows], [r["fps"] for r in rows])}))
    return "\n".join(md)


def _pixels(size) -> int:
    w, h = (int(v) for v in str(size).lower().split("x"))
    return w * h


def long_section(files: list[str], out: Path) -> str:
    md = ["## Chunked against one-shot structure from motion\n"]
    for f in files:
        rows = json.loads(Path(f).read_text())
        motion = rows[0].get("motion", Path(f).stem)
        md.append(f"### {motion}\n")
        md.append(_table(rows, [("mode", "mode"), ("frames", "frames"), ("ms_per_frame", "ms/frame"),
                                ("cpu_ms_per_frame", "CPU ms/frame"),
                                ("peak_rss_mb", "peak MB"), ("ate_rmse_m", "ATE m"), ("rot_err_deg", "rot °"),
                                ("scale_drift", "scale drift"), ("chunks", "chunks"),
                                ("worst_boundary_rel", "worst boundary")]))
        modes = sorted({r["mode"] for r in rows})
        for key, label in (("ms_per_frame", "ms per frame"), ("cpu_ms_per_frame", "CPU ms per frame"),
                           ("ate_rmse_m", "ATE (m)")):
            md.append(_plot(out / f"{motion}-{key}.png", f"{label} ({motion})", "frames", label,
                            {m: ([r["frames"] for r in rows if r["mode"] == m],
                                 [r[key] for r in rows if r["mode"] == m]) for m in modes}))
    return "\n".join(md)


def real_section(preset: str) -> str:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_real import SEQS, SHARED, run_once

    rows = []
    with tempfile.TemporaryDirectory(prefix="sd-report-") as tmp:
        for name in SEQS:
            if (SHARED / name).is_dir():
                rows.append(run_once(name, Path(tmp) / name, preset, []))
    return "## Accuracy on real sequences\n\n" + _table(
        rows, [("seq", "sequence"), ("frames", "frames"), ("abs_rel", "AbsRel"), ("delta1", "δ1"), ("tae", "TAE"),
               ("ate", "ATE m"), ("fps", "frames/s"), ("peak_mb", "peak MB"), ("note", "note")])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--memory", nargs="*", default=[])
    parser.add_argument("--long", nargs="*", default=[])
    parser.add_argument("--real", action="store_true")
    parser.add_argument("--preset", default="balanced", help="preset of the --real runs")
    parser.add_argument("--work", default="/tmp/steadydepth-bench-long", help="where bench_memory left its clips")
    parser.add_argument("-o", "--out", required=True)
    args = parser.parse_args(argv)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("report.py needs matplotlib: pip install -e .[bench]", file=sys.stderr)
        return 4
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    parts = ["# steadydepth benchmark report\n"]
    if args.memory:
        parts.append(memory_section(args.memory, out, Path(args.work)))
    if args.long:
        parts.append(long_section(args.long, out))
    if args.real:
        parts.append(real_section(args.preset))
    (out / "report.md").write_text("\n".join(parts))
    print(out / "report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
