"""Regression bound of the default path on the shared real 7-Scenes clip (skips without ../shared/data).

Measured on this clip (default balanced run, 2 CPU cores; repeatable run to run since SfM is
seeded and single-threaded where order matters): AbsRel 0.101, delta1 0.909, TAE 0.82 (the
ground truth against itself: TAE 0.68). The bounds leave about 10 % for numerical differences
between machines.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from steadydepth import estimate
from steadydepth.eval.evaluate import evaluate_output


@pytest.mark.slow
def test_default_run_on_real_sevenscenes_clip(shared_data: Path, tmp_path: Path) -> None:
    seq = shared_data / "sevenscenes_redkitchen"
    if not seq.is_dir():
        pytest.skip(f"{seq} not found")
    out = tmp_path / "out"
    estimate(str(seq / "frame-*.color.png"), out, progress_bar=False)
    row = evaluate_output(out, seq)["rows"][0]
    assert row["align"] == "sequence"
    assert row["abs_rel"] <= 0.11, row
    assert row["delta1"] >= 0.89, row
    assert row["tae"] <= 0.95, row
