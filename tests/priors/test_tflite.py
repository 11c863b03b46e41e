"""``--prior tflite:FILE`` on REAL weights (FastDepth int8, ../shared/models) and real 7-Scenes frames.

Skips when the model, the data or the ``ai-edge-litert`` runtime is absent. Measured on
frame 150 of ``sevenscenes_redkitchen`` (640x480): Spearman 0.63 between the model's depth and
the Kinect depth; AbsRel 0.169 after a least-squares scale and shift, against 0.247 for the
best constant (the median). The bounds below leave room for other runtimes' rounding.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from steadydepth import estimate
from steadydepth.cli import main
from steadydepth.errors import DependencyError, InputError, ModelError
from steadydepth.priors import PriorContext, available_priors, create_prior
from steadydepth.types import Frame

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
MODEL = SHARED / "models" / "fastdepth" / "fast_depth_224.tflite"
KITCHEN = SHARED / "data" / "sevenscenes_redkitchen"


@pytest.fixture(scope="module")
def model() -> Path:
    pytest.importorskip("ai_edge_litert.interpreter")
    if not MODEL.is_file():
        pytest.skip(f"real FastDepth weights not found at {MODEL}")
    return MODEL.resolve()


@pytest.fixture(scope="module")
def kitchen() -> Path:
    if not KITCHEN.is_dir():
        pytest.skip(f"real 7-Scenes frames not found at {KITCHEN}")
    return KITCHEN.resolve()


def _color(seq: Path, i: int) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(seq / f"frame-{i:06d}.color.png")), cv2.COLOR_BGR2RGB)


def _gt(seq: Path, i: int) -> np.ndarray:
    return cv2.imread(str(seq / f"frame-{i:06d}.depth.png"), cv2.IMREAD_UNCHANGED).astype(np.float64) / 1000.0


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).correlation)


def _affine_abs_rel(pred: np.ndarray, gt: np.ndarray) -> float:
    A = np.stack([pred, np.ones_like(pred)], 1)
    sol, *_ = np.linalg.lstsq(A, gt, rcond=None)
    return float(np.mean(np.abs(A @ sol - gt) / gt))


def test_registered_and_runtime_imported_lazily():
    assert "tflite" in available_priors()
    code = "import sys, steadydepth.priors.tflite; print('ai_edge_litert' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_tensor_details_read_from_the_model(model):
    prior = create_prior(f"tflite:{model}?threads=1")
    d = prior.describe()
    assert d["input"]["shape"] == [1, 224, 224, 3] and d["input"]["dtype"] == "uint8"
    assert d["output"]["shape"] == [224, 224] and d["output"]["dtype"] == "uint8"
    assert d["kind"] == "disparity" and d["metric"] is False and d["threads"] == 1
    # raw pixel values go in (input scale 1/255, zero point 0)
    img = np.arange(224 * 224 * 3, dtype=np.int64).reshape(224, 224, 3).astype(np.uint8)
    np.testing.assert_array_equal(prior.preprocess(img)[0], img)
    # at the network's own size no resize happens: the depth is the quantised output times its scale
    depth = prior.depth(img)
    q = depth / d["output"]["scale"]
    np.testing.assert_allclose(q, np.round(q), atol=1e-3)
    assert q.max() <= 255


def test_real_frame_depth_follows_the_kinect_depth(model, kitchen):
    prior = create_prior(f"tflite:{model}")
    img, gt = _color(kitchen, 150), _gt(kitchen, 150)
    (out,) = prior.process(iter([Frame(index=0, image=img)]), PriorContext())
    assert out.index == 0 and out.kind == "disparity" and out.metric is False
    assert out.values.shape == (480, 640) and out.values.dtype == np.float32
    assert np.isfinite(out.values).all() and (out.values > 0).mean() > 0.99
    depth = prior.depth(img)
    np.testing.assert_allclose(out.values[depth > 0], 1.0 / depth[depth > 0], rtol=1e-6)
    scale = prior.describe()["output"]["scale"]
    assert scale <= depth.min() and depth.max() <= 255 * scale
    ok = gt > 0
    rho = _spearman(depth[ok], gt[ok])
    fit = _affine_abs_rel(depth[ok].astype(np.float64), gt[ok])
    const = float(np.mean(np.abs(np.median(gt[ok]) - gt[ok]) / gt[ok]))
    assert rho > 0.45, rho  # measured 0.63
    assert fit < 0.8 * const, (fit, const)  # measured 0.169 vs 0.247
    assert 0.3 < np.median(depth[ok]) < 10.0  # indoor metres-ish scale

    metric = create_prior(f"tflite:{model}?metric")
    (m,) = metric.process(iter([Frame(index=0, image=img)]), PriorContext())
    assert m.kind == "depth" and m.metric is True
    np.testing.assert_array_equal(m.values, depth)


def test_runtime_log_line_stays_out_of_the_terminal(model, capfd):
    create_prior(f"tflite:{model}")
    err = capfd.readouterr().err
    assert "XNNPACK" not in err and "INFO" not in err, err


def test_error_cases(model, tmp_path, monkeypatch, capsys):
    with pytest.raises(ModelError, match="missing.tflite.*does not exist"):
        create_prior(f"tflite:{tmp_path / 'missing.tflite'}")
    bad = tmp_path / "notes.tflite"
    bad.write_text("not a flatbuffer\n" * 20)
    with pytest.raises(ModelError, match="notes.tflite: not a TFLite model"):
        create_prior(f"tflite:{bad}")
    with pytest.raises(InputError, match="needs a model file"):
        create_prior("tflite")
    with pytest.raises(InputError, match="unknown option 'size'"):
        create_prior(f"tflite:{model}?size=3")
    with pytest.raises(InputError, match="threads must be"):
        create_prior(f"tflite:{model}?threads=two")
    with pytest.raises(InputError, match="threads must be at least 1"):
        create_prior(f"tflite:{model}?threads=0")

    # unsupported layouts, from the real model's tensor details with one thing changed
    prior = create_prior(f"tflite:{model}")
    inp, out = prior._interp.get_input_details(), prior._interp.get_output_details()
    nchw = [dict(inp[0], shape=np.array([1, 3, 224, 224]))]
    with pytest.raises(ModelError, match=r"unsupported tensor layout.*input .* uint8 \[1, 3, 224, 224\].*\(1, H, W, 3\)"):
        prior._check_layout(nchw, out)
    two_ch = [dict(out[0], shape=np.array([1, 224, 224, 2]))]
    with pytest.raises(ModelError, match="unsupported tensor layout.*output"):
        prior._check_layout(inp, two_ch)
    unquantised = [dict(out[0], quantization=(0.0, 0))]
    with pytest.raises(ModelError, match="without quantisation parameters"):
        prior._check_layout(inp, unquantised)

    # the runtime not installed: the message names the extra
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(DependencyError, match=r"pip install 'steadydepth\[tflite\]'"):
        create_prior(f"tflite:{model}")
    monkeypatch.undo()

    # through the command line: one line, exit code of a model error, before the output folder exists
    clip = tmp_path / "frames"
    clip.mkdir()
    cv2.imwrite(str(clip / "0.png"), np.zeros((48, 64, 3), np.uint8))
    capsys.readouterr()
    rc = main(["run", str(clip), "-o", str(tmp_path / "out"), "--prior", f"tflite:{bad}", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == ModelError.exit_code and "\n" not in err and "not a TFLite model" in err, err
    assert not (tmp_path / "out").exists()


def test_pipeline_alone_and_fused_with_mvs_on_real_frames(model, kitchen, tmp_path):
    """The relative prior alone is clip-aligned (scene units); ``+mvs`` takes the cameras' scale."""
    frames = str(kitchen / "frame-*.color.png")
    alone = estimate(frames, tmp_path / "alone", prior=f"tflite:{model}", stop=6, max_res=320,
                     progress_bar=False, vis=False)
    info = json.loads((tmp_path / "alone" / "run.json").read_text())
    assert info["status"] == "complete" and info["frames"] == 6
    depth = alone.to_array()
    assert depth.shape == (6, 480, 640) and np.isfinite(depth).all() and (depth > 0).mean() > 0.99
    for k, i in enumerate((150, 155)):
        gt = _gt(kitchen, i)
        ok = (gt > 0) & (depth[5 * k] > 0)
        assert _spearman(depth[5 * k][ok], gt[ok]) > 0.45

    fused = estimate(frames, tmp_path / "fused", prior=f"tflite:{model}+mvs", stride=4, preset="fast",
                     max_res=320, progress_bar=False, vis=False)
    info = json.loads((tmp_path / "fused" / "run.json").read_text())
    assert info["status"] == "complete" and info["frames"] == len(fused) >= 12
    # the real network's smooth errors are fitted locally: the field fits the confident geometry better
    local = info["prior"]["stats"]["local_fit"]
    assert local["frames"] >= 6 and local["residual_local"] < 0.8 * local["residual_global"], local
    d = fused.to_array()
    assert np.isfinite(d).all() and (d > 0).mean() > 0.9
    # the video's geometry fixes scale and shift: the fused depth agrees with the Kinect up to one scale
    ratios, rel = [], []
    for k, frame in enumerate(fused):
        gt = _gt(kitchen, 150 + frame.index)
        ok = (gt > 0) & (frame.depth > 0)
        ratios.append(np.median(gt[ok] / frame.depth[ok]))
        rel.append((gt[ok], frame.depth[ok]))
    s = float(np.median(ratios))
    abs_rel = float(np.mean([np.mean(np.abs(s * p - g) / g) for g, p in rel]))
    assert abs_rel < 0.2, abs_rel
