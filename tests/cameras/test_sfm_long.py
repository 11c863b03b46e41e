"""Long clips: structure from motion in overlapping chunks, and scene cuts (one reconstruction per shot)."""

from __future__ import annotations

import numpy as np
import pytest

from steadydepth import synthetic
from steadydepth.cameras.keyframes import KEYFRAME_PRESETS
from steadydepth.cameras.sfm import estimate_cameras
from steadydepth.cameras.sfm_chunks import plan_chunks
from steadydepth.cameras.sfm_settings import ChunkPolicy
from steadydepth.cameras.shots import ShotDetector
from steadydepth.consistency.temporal import TemporalFusion, TemporalSettings
from steadydepth.eval.trajectory import trajectory_error
from steadydepth.geometry import align_sim3
from steadydepth.types import Frame


def _frames(images):
    return (Frame(index=i, image=np.asarray(im)) for i, im in enumerate(images))


def test_plan_chunks_overlap_and_cover():
    policy = KEYFRAME_PRESETS["fast"]
    cands = list(range(0, 1000, 5))  # 200 candidates
    plan = plan_chunks(cands, 1000, policy, ChunkPolicy(above_frames=500, keyframes=40, overlap=8))
    assert plan[0][0] == 0 and plan[-1][1] == 1000
    for (a0, a1), (b0, b1) in zip(plan, plan[1:]):
        assert a0 < b0 < a1 < b1  # consecutive chunks overlap
        assert sum(1 for c in cands if b0 <= c < a1) == 8  # by `overlap` candidates
    assert plan_chunks(cands, 1000, policy, ChunkPolicy(above_frames=1000)) == [(0, 1000)]  # short: at once
    assert plan_chunks(cands, 1000, policy, ChunkPolicy(above_frames=0)) == [(0, 1000)]  # 0: never
    with pytest.raises(ValueError):
        ChunkPolicy(keyframes=10, overlap=6)


def test_chunked_sfm_matches_one_shot_with_one_scale(tmp_path):
    clip = synthetic.render_clip(72, 320, 240, motion="orbit", seed=0)
    gt = list(clip.poses)
    one = estimate_cameras(_frames(clip.images), tmp_path / "one", preset="fast", chunks=ChunkPolicy(above_frames=0))
    timings: dict = {}
    chunked = estimate_cameras(_frames(clip.images), tmp_path / "chunked", preset="fast", timings=timings,
                               chunks=ChunkPolicy(above_frames=30, keyframes=4, overlap=2))
    assert timings["num_chunks"] >= 2
    shot = chunked.shots[0]
    assert len(shot["boundaries"]) == timings["num_chunks"] - 1
    assert all(b["residual_rel"] < 0.1 for b in shot["boundaries"])  # the chunks agree on the shared frames
    e_one, e_chunk = trajectory_error(one.poses, gt), trajectory_error(chunked.poses, gt)
    extent = float(np.ptp(np.array([p[:3, 3] for p in gt]), axis=0).max())
    assert e_chunk["ate_rmse"] <= max(2.0 * e_one["ate_rmse"], 0.01 * extent)
    assert e_chunk["rot_err_deg"] < 1.0
    # one scale for the whole clip: each half aligned on its own needs the same scale as the whole
    half = len(gt) // 2
    s_a = align_sim3(chunked.poses[:half], gt[:half]).s
    s_b = align_sim3(chunked.poses[half:], gt[half:]).s
    assert abs(s_a / s_b - 1) < 0.05
    # and the same scale convention as one-shot SfM (median keyframe depth 1)
    assert abs(e_chunk["scale"] / e_one["scale"] - 1) < 0.1


@pytest.fixture(scope="module")
def two_shots():
    a = synthetic.render_clip(20, 320, 240, motion="orbit", seed=0)
    b = synthetic.render_clip(20, 320, 240, motion="walk", seed=3)
    return a, b, np.concatenate([a.images, b.images])


def test_shot_detector_finds_the_cut_only(two_shots):
    a, b, images = two_shots
    det = ShotDetector()
    found = [det.add(im) for im in images]
    assert [c for c in found if c is not None] == [len(a.images)] == det.cuts
    det = ShotDetector()  # one continuous clip: no cut
    assert not any(det.add(im) is not None for im in a.images)
    det = ShotDetector()  # one blank frame inside a shot: no cut
    blank = list(a.images)
    blank[10] = np.full_like(blank[10], 128)
    assert not any(det.add(im) is not None for im in blank)


def test_scene_cut_gives_two_shots_with_their_own_scale(two_shots, tmp_path, caplog):
    a, b, images = two_shots
    cut = len(a.images)
    with caplog.at_level("WARNING"):
        cams = estimate_cameras(_frames(images), tmp_path, preset="fast")
    assert [(s["start"], s["stop"]) for s in cams.shots] == [(0, cut), (cut, len(images))]
    assert cams.shot_of(cut - 1) == 0 and cams.shot_of(cut) == 1
    assert any("2 shots" in r.getMessage() for r in caplog.records)
    assert any(w.startswith("shots: the clip has 2 shots") for w in cams.warnings)
    # each shot matches its own ground truth (a pose jump across the cut is no continuous path)
    for (lo, hi), clip in (((0, cut), a), ((cut, len(images)), b)):
        err = trajectory_error(cams.poses[lo:hi], list(clip.poses))
        extent = float(np.ptp(clip.poses[:, :3, 3], axis=0).max())
        assert err["ate_rmse"] < 0.05 * extent
    pts = [cams.points_of_shot(0), cams.points_of_shot(cut)]
    assert all(len(p) > 0 for p in pts) and sum(map(len, pts)) == len(cams.points)


def test_temporal_fusion_does_not_fuse_across_a_cut():
    K = np.array([[50.0, 0, 15.5], [0, 50.0, 11.5], [0, 0, 1]])
    poses = [np.eye(4)] * 6
    depths = [np.full((24, 32), 1.0 if i < 3 else 3.0, np.float32) for i in range(6)]
    conf = np.ones((24, 32), np.float32)

    def run(shot_of):
        fusion = TemporalFusion(K, poses, TemporalSettings(radius=2), shot_of=shot_of)
        out = [f for depth in depths for f in fusion.push(depth, conf)]
        return out + fusion.flush()

    mixed = run(None)  # one shot: frames 2 and 3 are compared with the other scene's frames
    assert mixed[2][1].max() < 1.0 and mixed[3][1].max() < 1.0  # disagreeing neighbours lower the confidence
    kept = run([0, 0, 0, 1, 1, 1])
    for i in range(6):
        np.testing.assert_allclose(kept[i][0], depths[i])
        np.testing.assert_allclose(kept[i][1], 1.0)


def test_cameras_json_records_the_shots(tmp_path):
    import json

    from steadydepth.exports import write_cameras
    from steadydepth.outputs import OutputFolder
    from steadydepth.types import Cameras, Intrinsics

    intr = Intrinsics.from_fov(60.0, 32, 24)
    poses = [np.eye(4) for _ in range(5)]
    shots = [{"start": 0, "stop": 2, "units": "scene", "points": [0, 0]},
             {"start": 2, "stop": 5, "units": "scene", "points": [0, 0]}]
    cams = Cameras(intrinsics=intr, poses=poses, frame_indices=list(range(5)), shots=shots,
                   pose_sources=["mapped"] * 5)
    out = OutputFolder(tmp_path / "out")
    out.prepare()
    write_cameras(out, cams, intr, list(range(5)), "scene")
    doc = json.loads((tmp_path / "out" / "cameras.json").read_text())
    assert [f["shot"] for f in doc["frames"]] == [0, 0, 1, 1, 1]
    assert doc["shots"] == [{"start": 0, "stop": 2, "units": "scene"}, {"start": 2, "stop": 5, "units": "scene"}]
    one = Cameras(intrinsics=intr, poses=poses, frame_indices=list(range(5)))
    write_cameras(out, one, intr, list(range(5)), "scene")  # one shot: the file is as before
    doc = json.loads((tmp_path / "out" / "cameras.json").read_text())
    assert "shots" not in doc and "shot" not in doc["frames"][0]


def test_a_run_over_a_cut_writes_two_shots_and_scores_each(two_shots, tmp_path):
    """End to end: the pipeline reconstructs each shot on its own, records them, and its depth is
    right on both sides of the cut (each shot scored with its own alignment)."""
    import json

    from steadydepth import estimate
    from steadydepth.eval.metrics import evaluate_depth

    a, b, images = two_shots
    cut = len(a.images)
    # full 320x240 frames: halved, the walk gives SfM under 80 SIFT features a keyframe and its
    # depth swung between AbsRel 0.029 and 0.054 with one or two features more or less
    video = estimate(images, tmp_path / "run", prior="mvs", preset="fast", progress_bar=False,
                     vis=False, scene=False)
    cams = json.loads((tmp_path / "run" / "cameras.json").read_text())
    assert [(s["start"], s["stop"]) for s in cams["shots"]] == [(0, cut), (cut, len(images))]
    assert [f["shot"] for f in cams["frames"]] == [0] * cut + [1] * (len(images) - cut)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert len(run["shots"]) == 2 and any(w.startswith("shots: the clip has 2 shots") for w in run["warnings"])
    depth = video.to_array()
    for lo, hi, clip in ((0, cut, a), (cut, len(images), b)):
        assert evaluate_depth(depth[lo:hi], list(clip.depth), align="sequence").abs_rel < 0.05  # measured 0.020, 0.024
