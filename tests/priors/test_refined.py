"""Tests of the ``refine:SPEC`` prior stage (priors/refined.py): multi-view refinement of a
depth prior's stream, with exact synthetic ground truth."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import cv2
import numpy as np
import pytest

from steadydepth.consistency.refine import photometric_error
from steadydepth.errors import InputError
from steadydepth.eval import simulate as _simulate  # noqa: F401  (registers the "simulated" prior)
from steadydepth.eval.metrics import evaluate_depth
from steadydepth.priors.base import DepthPrior, PriorContext, create_prior
from steadydepth.priors.refined import RefinedPrior, SpillingTee
from steadydepth.synthetic import render_clip
from steadydepth.types import Frame, PriorOutput

W, H, T = 160, 120, 8


@pytest.fixture(scope="module")
def clip():
    return render_clip(num_frames=T, width=W, height=H, motion="orbit")


def _distortion(index: int, width: int, height: int) -> np.ndarray:
    """A smooth, low-frequency multiplicative field (about +-10 %), different per frame."""
    coarse = np.random.default_rng(100 + index).standard_normal((3, 4)).astype(np.float32)
    return np.exp(0.1 * cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC))


class DistortedGTDepthFixture(DepthPrior):
    """TEST FIXTURE (not a depth estimate): ground-truth depth times a smooth per-frame field.

    Like the combined prior it reads the whole stream before yielding (two passes), so the
    refinement stage's tee must spill to disk to keep memory flat. ``kind`` can be set to
    ``"disparity"`` to check that refinement refuses it.
    """

    name = "distorted-gt-fixture"

    def __init__(self, depth: np.ndarray, kind: str = "depth") -> None:
        self.depth = depth
        self.kind = kind

    def process(self, frames: Iterable[Frame], context: PriorContext) -> Iterator[PriorOutput]:
        indices = [f.index for f in frames]  # first pass: only the indices are kept
        for pos, k in enumerate(indices):
            d = self.depth[k] * _distortion(k, W, H)
            values = d if self.kind == "depth" else 1.0 / d
            yield PriorOutput(index=pos, values=values.astype(np.float32), kind=self.kind, metric=True,
                              confidence=np.full((H, W), 0.7, np.float32))


def _context(clip, poses=None) -> PriorContext:
    cams = clip.cameras()
    if poses is not None:
        cams.poses = poses
    return PriorContext(cameras=cams, num_frames=len(clip), frame_size=(W, H), preset="balanced")


def _photo(clip, depths) -> float:
    errs = []
    for r in range(len(clip)):
        nb = [(clip.images[j], clip.poses[j]) for j in (r - 2, r + 2) if 0 <= j < len(clip)]
        errs.append(photometric_error(clip.images[r], depths[r], nb, clip.poses[r], clip.intrinsics))
    return float(np.mean(errs))


@pytest.mark.slow
def test_refinement_stage_reduces_depth_and_photometric_error(clip):
    inner = DistortedGTDepthFixture(clip.depth)
    prior = RefinedPrior(inner, "fixture", in_memory=3)
    assert prior.needs_cameras
    outs = list(prior.process(clip.frames(), _context(clip)))
    assert [o.index for o in outs] == list(range(T))
    assert all(o.kind == "depth" and o.metric for o in outs)
    assert all(np.allclose(o.confidence, 0.7) for o in outs)
    refined = np.stack([o.values for o in outs])
    before = np.stack([clip.depth[k] * _distortion(k, W, H) for k in range(T)])
    m0 = evaluate_depth(before, clip.depth)
    m1 = evaluate_depth(refined, clip.depth)
    p0, p1 = _photo(clip, before), _photo(clip, refined)
    assert m1.abs_rel < 0.6 * m0.abs_rel, (m0.abs_rel, m1.abs_rel)
    assert p1 < 0.9 * p0, (p0, p1)
    st = prior.last_stats
    assert st["refined"] == T and st["passed_through"] == 0
    # memory flat in clip length: the window holds 2 * radius + 1 frames, the tee <= in_memory
    radius = st["neighbours_per_side"] * st["step"]
    assert st["window_high_water"] <= 2 * radius + 1
    assert st["tee_memory_high_water"] <= 3 and st["tee_spilled"] >= T - 3


def test_frames_without_pose_pass_through(clip):
    inner = DistortedGTDepthFixture(clip.depth)
    poses = [p.copy() for p in clip.poses]
    poses[3] = None
    prior = RefinedPrior(inner, "fixture", iters=2)
    outs = list(prior.process(clip.frames(), _context(clip, poses)))
    assert [o.index for o in outs] == list(range(T))
    np.testing.assert_array_equal(outs[3].values, clip.depth[3] * _distortion(3, W, H))
    assert prior.last_stats["no_pose"] == 1 and prior.last_stats["refined"] == T - 1


def test_disparity_inner_prior_is_refused(clip):
    prior = RefinedPrior(DistortedGTDepthFixture(clip.depth, kind="disparity"), "fixture")
    with pytest.raises(InputError, match="combine it with a geometric prior"):
        list(prior.process(clip.frames(), _context(clip)))


def test_needs_cameras(clip):
    prior = RefinedPrior(DistortedGTDepthFixture(clip.depth), "fixture")
    with pytest.raises(InputError, match="camera poses"):
        list(prior.process(clip.frames(), PriorContext()))


def test_spec_parsing(tmp_path):
    (tmp_path / "depth").mkdir()
    np.save(tmp_path / "depth" / "000000.npy", np.ones((4, 4), np.float32))
    p = create_prior(f"refine:simulated:{tmp_path}+mvs")
    assert isinstance(p, RefinedPrior) and p.inner.name == "combined" and p.needs_cameras
    p = create_prior(f"refine:simulated:{tmp_path}")
    assert isinstance(p, RefinedPrior) and p.inner.name == "simulated"
    with pytest.raises(InputError):
        create_prior("refine:")


def test_spilling_tee_order_and_bound():
    tee = SpillingTee(({"i": i} for i in range(50)), 2, in_memory=4)
    a, b = tee.branches()
    first = [next(a)["i"] for _ in range(30)]  # b falls 30 behind: 26 spilled
    assert first == list(range(30))
    assert [x["i"] for x in b] == list(range(50))
    assert [x["i"] for x in a] == list(range(30, 50))
    assert tee.memory_high_water <= 4 and tee.spilled > 0
    tee.close()


def test_trust_term_keeps_confident_prior(clip):
    """refine_depth's confidence-weighted trust term: a fully trusted prior barely moves."""
    from steadydepth.consistency.refine import refine_depth

    r = 4
    prior = clip.depth[r] * _distortion(r, W, H)
    nb = [(clip.images[j], clip.poses[j]) for j in (r - 2, r + 2)]
    free = refine_depth(clip.images[r], prior, nb, clip.poses[r], clip.intrinsics, iters=20)
    held = refine_depth(clip.images[r], prior, nb, clip.poses[r], clip.intrinsics, iters=20,
                        confidence=np.ones((H, W), np.float32), anchor_weight=100.0)
    move_free = float(np.mean(np.abs(np.log(free / prior))))
    move_held = float(np.mean(np.abs(np.log(held / prior))))
    assert move_held < 0.2 * move_free, (move_free, move_held)
