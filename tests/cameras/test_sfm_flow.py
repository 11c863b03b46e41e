"""Optical-flow tracks recover the cameras of a clip too faint for SIFT."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from steadydepth.cameras.sfm import estimate_cameras
from steadydepth.eval.trajectory import trajectory_error
from steadydepth.types import Frame

synthetic = pytest.importorskip("steadydepth.synthetic")


def _faint(images: np.ndarray, contrast: float, seed: int = 0) -> np.ndarray:
    """A white-wall look: blurred, contrast squeezed to ``contrast`` around mid-grey, sensor noise."""
    rng = np.random.default_rng(seed)
    out = []
    for im in images:
        f = cv2.GaussianBlur(im.astype(np.float32), (0, 0), 2.0)
        f = 128 + contrast * (f - f.mean()) + rng.normal(0, 0.7, f.shape)
        out.append(np.clip(np.rint(f), 0, 255).astype(np.uint8))
    return np.stack(out)


def test_faint_clip_is_mapped_with_flow_tracks(tmp_path):
    clip = synthetic.render_clip(14, 256, 192, motion="orbit", seed=0)
    images = _faint(clip.images, 0.06)
    cams = estimate_cameras((Frame(i, im) for i, im in enumerate(images)), tmp_path, preset="balanced")
    assert cams.no_parallax is None, cams.no_parallax
    assert any("optical-flow tracks" in w for w in cams.warnings), cams.warnings
    assert set(cams.pose_sources) <= {"mapped", "tracked", "interpolated"}
    err = trajectory_error(cams.poses, list(clip.poses))
    extent = float(np.ptp(clip.poses[:, :3, 3], axis=0).max())
    assert err["ate_rmse"] < 0.03 * extent and err["rot_err_deg"] < 1.0, err
