"""Settings and presets of the ``mvs`` prior (:mod:`steadydepth.priors.mvs` describes each step)."""

from __future__ import annotations

from dataclasses import dataclass

from ..consistency.planar import PlanarSettings

__all__ = ["MVSSettings", "MVS_PRESETS", "NO_PARALLAX_RATIO"]


@dataclass(frozen=True)
class MVSSettings:
    """Parameters of :class:`MVSPrior` (see the module docstring for their role)."""

    work_long_side: int = 240
    num_planes: int = 48
    num_views: int = 4
    best_k: int = 2
    search_radius: int = 8
    wide_radius: int = 16  # 0 (or <= search_radius): no wide-baseline sweep
    wide_planes: int = 32
    wide_below: float = 0.2
    wide_gain: float = 0.1
    wide_min_share: float = 0.15
    ncc_radius: int = 3
    ncc_radius_coarse: int = 2
    coarse_to_fine: bool = True
    shiftable_windows: bool = True
    alt_radius: int = 2
    refine_hypotheses: int = 7
    agg_radius: int = 3
    agg_eps: float = 1e-3
    consistency_radius: int = 2
    min_agree: int = 2
    relax_below: float = 0.1
    pix_tol: float = 1.0
    rel_tol: float = 0.02
    min_baseline_ratio: float = 0.01
    target_baseline_ratio: float = 0.08
    max_view_angle_deg: float = 40.0
    raw_min_confidence: float = 0.1
    fill_confidence: float = 0.2
    fill_edge_floor: float = 1e-2
    fill_guide_median: int = 3
    texture_floor: float = 0.005
    temporal_blend: float = 0.5
    snap_radius: int = 4
    snap_ratio: float = 1.2
    snap_sigma: float = 0.05
    snap_iterations: int = 3
    planar_scale: float = 0.0  # off; PlanarSettings.scale when on
    planar_tol: float = PlanarSettings.tol
    planar_min_inliers: float = PlanarSettings.min_inliers
    planar_min_spread: float = PlanarSettings.min_spread
    planar_max_change: float = PlanarSettings.max_change
    occlusion_radius: int = 0
    occlusion_weight: float = 1.0
    occlusion_min_area: float = 0.0
    edge_test_radius: float = 2.5
    edge_test_window: int = 2
    edge_test_margin: float = 0.005
    edge_test_ratio: float = 1.2
    edge_test_iterations: int = 2
    short_clip_frames: int = 12
    short_clip_long_side: int = 640

    @property
    def source_window(self) -> int:
        """Frames either side that may serve as source views (the wide sweep's reach when on)."""
        return max(self.search_radius, self.wide_radius)


MVS_PRESETS: dict[str, MVSSettings] = {
    "fast": MVSSettings(work_long_side=192, num_planes=32, num_views=3, search_radius=6, wide_radius=0),
    # planar completion on, with a strict plane test (85 % of a region's matched pixels within 2 %);
    # the wide sweep reaches 32 frames either side: hand-held clips that barely move need it
    "balanced": MVSSettings(wide_radius=32, planar_scale=200.0, planar_tol=0.02, planar_min_inliers=0.85),
    "fine": MVSSettings(work_long_side=320, num_planes=64, num_views=4, search_radius=10),
}

#: below this baseline / depth ratio the camera is taken as not translating at all
NO_PARALLAX_RATIO = 1e-4
