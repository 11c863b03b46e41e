"""Planar completion: a one-coloured region's weak pixels take the plane of its confident ones."""

import numpy as np

from steadydepth.consistency.planar import PlanarSettings, planar_fill


def _scene(h: int = 120, w: int = 160):
    """Left half: a tilted wall (a plane in disparity), grey; right half: a curved surface
    (not a plane), blue. Returns exact depth and the guide image."""
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    disp = np.where(u < w // 2, 0.5 + 0.004 * u + 0.002 * v, 0.6 + 0.3 * np.sin(u / 9.0) * np.cos(v / 11.0))
    guide = np.zeros((h, w, 3), np.uint8)
    guide[:, : w // 2] = (120, 120, 120)
    guide[:, w // 2:] = (30, 60, 200)
    return (1.0 / disp).astype(np.float32), guide


def test_plane_recovered_where_only_its_edges_were_matched():
    depth, guide = _scene()
    h, w = depth.shape
    conf = np.full((h, w), 0.2, np.float32)  # weak everywhere ...
    conf[:6, : w // 2] = conf[-6:, : w // 2] = 0.9  # ... but the wall's top and bottom bands
    conf[::10, w // 2:] = conf[5::10, w // 2:] = 0.9  # the curved half: confident rows all over it
    rng = np.random.default_rng(0)
    filled = np.where(conf > 0.5, depth, depth * rng.uniform(0.85, 1.15, depth.shape)).astype(np.float32)
    out, stats = planar_fill(filled, conf, guide, weak_confidence=0.2)
    wall = np.s_[:, : w // 2 - 3]  # (the segmentation gives the colour edge itself a thin region)
    assert stats["planar"] >= 1 and stats["pixels"] > 0.5 * (h * w // 2)
    assert np.max(np.abs(out[wall] / depth[wall] - 1.0)) < 1e-3
    # the curved half is not a plane: its confident rows do not support one, it keeps its fill
    curved = np.s_[:, w // 2 + 3:]
    np.testing.assert_array_equal(out[curved], filled[curved])


def test_support_along_a_line_is_not_extrapolated():
    depth, guide = _scene()
    h, w = depth.shape
    conf = np.full((h, w), 0.2, np.float32)
    conf[:6, : w // 2] = 0.9  # only the top band: the tilt down the wall is unconstrained
    filled = (depth * 1.1).astype(np.float32)
    filled[conf > 0.5] = depth[conf > 0.5]
    out, stats = planar_fill(filled, conf, guide, weak_confidence=0.2, settings=PlanarSettings(min_spread=0.3))
    np.testing.assert_array_equal(out, filled)
    assert stats["planar"] == 0
