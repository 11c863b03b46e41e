from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "2")
# --prior auto (the default of run) never downloads weights in the tests
os.environ.setdefault("STEADYDEPTH_NO_DOWNLOAD", "1")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real RGB-D data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_da(tmp_path_factory):
    """A tiny Depth Anything (Dinov2 backbone, hidden 32, 2 layers, patch 14) + its processor."""
    transformers = pytest.importorskip("transformers")

    def build(metric: bool = False):
        folder = tmp_path_factory.mktemp("tiny_da_metric" if metric else "tiny_da")
        backbone = transformers.Dinov2Config(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            patch_size=14, image_size=56, out_features=["stage1", "stage2"], reshape_hidden_states=False,
            initializer_range=0.2,
        )
        cfg = transformers.DepthAnythingConfig(
            backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16],
            reassemble_factors=[4, 2], fusion_hidden_size=16, head_hidden_size=8,
            depth_estimation_type="metric" if metric else "relative", max_depth=20 if metric else 1,
            initializer_range=0.2,
        )
        torch.manual_seed(0)
        model = transformers.DepthAnythingForDepthEstimation(cfg).eval()
        # With the default init (0.02) the random net outputs ~1e-7 (mostly 0 after its ReLU), which would
        # make every comparison below pass trivially; a positive last layer gives maps of order 10 that vary.
        with torch.no_grad():
            model.head.conv3.weight.abs_()
            model.head.conv3.bias.fill_(0.1)
        proc = transformers.DPTImageProcessor(
            size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14, resample=3,
        )
        model.save_pretrained(folder)
        proc.save_pretrained(folder)
        return folder, model, proc

    return build
