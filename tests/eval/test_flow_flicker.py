from __future__ import annotations

import numpy as np
import pytest

from steadydepth.errors import InputError
from steadydepth.eval.temporal_metrics import flow_flicker


def test_flow_flicker_small_for_true_depth_and_counts_a_scale_jump():
    synthetic = pytest.importorskip("steadydepth.synthetic")
    clip = synthetic.render_clip(8, 160, 120, motion="orbit", seed=0)
    depth = [np.asarray(d, np.float32) for d in clip.depth]
    true = flow_flicker(clip.images, depth)
    assert true < 1.0
    # every other frame 10 % deeper: each pair jumps by ln(1.1) = 9.5 %
    jumpy = [d * (1.1 if k % 2 else 1.0) for k, d in enumerate(depth)]
    assert flow_flicker(clip.images, jumpy) == pytest.approx(100 * np.log(1.1), abs=1.0 + true)
    # one global scale changes nothing
    assert flow_flicker(clip.images, [3.0 * d for d in depth]) == pytest.approx(true, rel=1e-4)
    with pytest.raises(InputError, match="two or more frames"):
        flow_flicker(clip.images[:1], depth[:1])
