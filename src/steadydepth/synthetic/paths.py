"""Camera paths of the synthetic clips: camera-to-world 4x4 poses (OpenCV axes) for each
motion in :data:`MOTIONS`.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .scene import _rot_x, _rot_y, _rot_z

__all__ = ["MOTIONS", "camera_path"]


#: camera motions :func:`render_clip` knows
MOTIONS = ("orbit", "walk", "forward", "pan", "static", "drone")


def _look_at(position: np.ndarray, target: np.ndarray, roll_deg: float = 0.0) -> np.ndarray:
    """Camera-to-world 4x4 (OpenCV axes) at ``position`` looking at ``target``; world y is down."""
    z = target - position
    z = z / np.linalg.norm(z)
    x = np.cross(np.array([0.0, 1.0, 0.0]), z)
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z], axis=1) @ _rot_z(roll_deg)
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = position
    return T


def _shake(rng: np.random.Generator, n: int, amplitude: float, dims: int = 3) -> np.ndarray:
    """Smooth handheld-like wobble (n, dims): a few sinusoids with random frequencies and phases."""
    i = np.arange(n, dtype=np.float64)[:, None]
    out = np.zeros((n, dims))
    for period in (9.0, 23.0, 51.0):
        freq = 2 * np.pi / (period * rng.uniform(0.8, 1.25, size=dims))
        phase = rng.uniform(0, 2 * np.pi, size=dims)
        out += np.sin(i * freq + phase) / 3.0
    return amplitude * out


def camera_path(num_frames: int, motion: str = "orbit", *, seed: int = 0) -> np.ndarray:
    """Camera-to-world poses ``(T, 4, 4)`` of a motion in :data:`MOTIONS` (world y down, metres).

    Translating motions move about 4-6 cm per frame (1-2 % of the 3-5 m scene depth),
    smoothly, and stay inside the free space of the room for any clip length.
    """
    if motion not in MOTIONS:
        raise InputError(f"unknown synthetic motion '{motion}': choose one of {', '.join(MOTIONS)}")
    if num_frames < 1:
        raise InputError(f"num_frames must be >= 1, got {num_frames}")
    rng = np.random.default_rng(seed + 7919)
    n = num_frames
    i = np.arange(n, dtype=np.float64)
    poses = np.empty((n, 4, 4))
    if motion == "static":
        poses[:] = _look_at(np.array([0.2, -0.1, -2.2]), np.array([0.0, 0.4, 1.5]))
        return poses
    if motion == "orbit":
        # arc around a target at ~3.6 m; one swing of +-28 deg takes 180 frames
        target = np.array([0.0, 0.45, 1.3])
        radius = 3.6
        theta = np.radians(28.0) * np.sin(2 * np.pi * i / 180.0)
        shake = _shake(rng, n, 0.02)
        rshake = _shake(rng, n, 0.6, dims=2)
        for k in range(n):
            pos = target + radius * np.array([np.sin(theta[k]), 0.0, -np.cos(theta[k])])
            pos[1] = -0.15 + 0.1 * np.sin(2 * np.pi * k / 97.0)
            pos = pos + shake[k]
            aim = target + np.array([0.3 * rshake[k, 0], 0.3 * rshake[k, 1], 0.0])
            poses[k] = _look_at(pos, aim, roll_deg=1.5 * rshake[k, 0])
        return poses
    if motion == "walk":
        # wander sideways and forward/back while the gaze drifts, like a handheld phone
        shake = _shake(rng, n, 0.015)
        rshake = _shake(rng, n, 1.0, dims=2)
        for k in range(n):
            x = 1.4 * np.sin(2 * np.pi * k / 150.0)
            z = -2.2 + 0.5 * np.sin(2 * np.pi * k / 110.0 + 0.7)
            y = -0.1 + 0.03 * np.sin(2 * np.pi * k / 18.0)   # footsteps
            pos = np.array([x, y, z]) + shake[k]
            gaze = np.array([-0.5 * np.sin(2 * np.pi * k / 130.0 + 0.3), 0.45, 1.5])
            poses[k] = _look_at(pos, gaze + 0.25 * np.array([rshake[k, 0], rshake[k, 1], 0.0]),
                                roll_deg=1.0 * rshake[k, 1])
        return poses
    if motion == "forward":
        # 4.5 cm per frame along the optical axis; clips longer than 2 m of travel dolly back
        shake = _shake(rng, n, 0.005)
        for k in range(n):
            s = (0.045 * k) % 4.0
            pos = np.array([0.1, -0.1, -2.6 + (s if s <= 2.0 else 4.0 - s)]) + shake[k]
            poses[k] = _look_at(pos, pos + np.array([0.0, 0.12, 1.0]))
        return poses
    if motion == "pan":
        pos = np.array([0.0, -0.1, -2.0])
        yaw = 30.0 * np.sin(2 * np.pi * i / 200.0 + 0.0) - 10.0
        pitch = 8.0 + 3.0 * np.sin(2 * np.pi * i / 70.0)
        for k in range(n):
            R = _rot_y(yaw[k]) @ _rot_x(-pitch[k])
            poses[k] = np.eye(4)
            poses[k][:3, :3] = R
            poses[k][:3, 3] = pos
        return poses
    # drone: high up, looking down ~45 deg, sliding sideways and forwards
    shake = _shake(rng, n, 0.01)
    for k in range(n):
        x = -2.0 + 4.0 * (0.5 - 0.5 * np.cos(2 * np.pi * k / 240.0 + np.pi / 3))
        pos = np.array([x, -1.15, -2.2 + 0.6 * np.sin(2 * np.pi * k / 160.0)]) + shake[k]
        poses[k] = _look_at(pos, pos + np.array([0.2, 1.0, 1.1]))
    return poses
