from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def vda_checkpoint(tmp_path_factory):
    """A folder holding a randomly initialised Video Depth Anything Small saved as the published
    file: ``torch.save(state_dict)`` to ``video_depth_anything_vits.pth`` (exact ViT-S layout)."""
    torch = pytest.importorskip("torch")
    from steadydepth.priors._vda_model import VideoDepthAnything

    torch.manual_seed(0)
    model = VideoDepthAnything("vits").eval()
    with torch.no_grad():  # a positive last bias: random maps of order 1 that vary, not all 0 after the ReLU
        model.head.scratch.output_conv2[2].bias.fill_(0.5)
    folder = tmp_path_factory.mktemp("vda")
    torch.save(model.state_dict(), folder / "video_depth_anything_vits.pth")
    return folder
