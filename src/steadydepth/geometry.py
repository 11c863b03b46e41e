"""Camera and pose geometry: the one home for every stage (ground floor: imports only numpy,
scipy, OpenCV and :mod:`steadydepth.types`).

Conventions (the whole package):

* a pose ``pose_c2w`` is a camera-to-world 4x4 matrix, ``X_world = pose_c2w @ X_cam``, with
  OpenCV camera axes (x right, y down, z forward); a camera centre is ``pose_c2w[:3, 3]``;
* pixel centres sit at integer coordinates; ``K`` is the 3x3 calibration matrix;
* depth is z-depth (distance along the optical axis), 0 = invalid;
* a similarity ``(s, R, t)`` maps a point ``X`` to ``s * R @ X + t``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from .errors import InputError, ReconstructionError
from .types import Intrinsics

__all__ = [
    "sample_at",
    "Sim3",
    "umeyama",
    "nearest_rotation",
    "rotation_angle_deg",
    "rotation_error_deg",
    "camera_centers",
    "relative_pose",
    "align_sim3",
    "interpolate_poses",
    "pose_fill_kinds",
    "world_to_camera",
    "project_points",
    "project_camera_points",
    "scale_K",
    "invert_valid",
    "resize_depth",
    "resize_keep_invalid",
    "resize_valid_normalised",
]

#: second / first singular value of the centred camera centres below which they count as
#: (nearly) on one line, where Umeyama cannot fix the rotation about that line
COLLINEAR_RATIO = 0.05
#: smallest first singular value of the centred centres that counts as a spread at all
MIN_CENTRE_SPREAD = 1e-12


# --------------------------------------------------------------------------- rotations


def nearest_rotation(M: np.ndarray) -> np.ndarray:
    """The proper rotation (det +1) nearest to the 3x3 matrix ``M`` in the Frobenius norm."""
    U, _, Vt = np.linalg.svd(np.asarray(M, dtype=np.float64))
    S = np.eye(3)
    if np.linalg.det(U @ Vt) < 0:
        S[2, 2] = -1.0
    return U @ S @ Vt


def rotation_angle_deg(R: np.ndarray) -> float:
    """Angle in degrees of the rotation ``R`` (3x3), via the rotation vector (accurate near 0)."""
    return float(np.degrees(Rotation.from_matrix(nearest_rotation(R)).magnitude()))


def rotation_error_deg(R_a: np.ndarray, R_b: np.ndarray) -> float:
    """Geodesic distance in degrees between rotations ``R_a`` and ``R_b`` (angle of ``R_a^T R_b``)."""
    return rotation_angle_deg(np.asarray(R_a, dtype=np.float64).T @ np.asarray(R_b, dtype=np.float64))


# --------------------------------------------------------------------------- poses


def camera_centers(poses_c2w: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Camera centres ``(N, 3)`` of camera-to-world poses ``(N, 4, 4)`` (their translation columns)."""
    arr = np.asarray([np.asarray(p, dtype=np.float64) for p in poses_c2w], dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1:] != (4, 4):
        raise ValueError(f"poses must be camera-to-world 4x4 matrices, got shape {arr.shape}")
    return arr[:, :3, 3].copy()


def relative_pose(ref_c2w: np.ndarray, src_c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(R, t)`` mapping reference-camera coordinates into the source camera: ``X_src = R X_ref + t``."""
    rel = np.linalg.inv(src_c2w) @ ref_c2w
    return rel[:3, :3], rel[:3, 3]


def interpolate_poses(
    poses_c2w: Sequence[np.ndarray | None], times: Sequence[float] | None = None
) -> list[np.ndarray]:
    """Fill the ``None`` entries of a list of camera-to-world poses.

    Between two posed neighbours the rotation is spherically interpolated (slerp) and the
    centre linearly, by ``times`` (default: list positions, strictly increasing over the
    posed frames). Before the first / after the last posed frame the nearest pose is copied
    (no extrapolation). Returns float64 copies. Raises
    :class:`~steadydepth.errors.ReconstructionError` when no frame has a pose.
    """
    n = len(poses_c2w)
    t_all = np.arange(n, dtype=np.float64) if times is None else np.asarray(times, dtype=np.float64)
    if t_all.shape != (n,):
        raise ValueError(f"times must have one entry per pose ({n}), got {t_all.shape}")
    known = [i for i, p in enumerate(poses_c2w) if p is not None]
    if not known:
        raise ReconstructionError("cannot interpolate camera poses: no frame has a pose")
    K = np.asarray([poses_c2w[i] for i in known], dtype=np.float64)
    out: list[np.ndarray | None] = [None] * n
    for i in known:
        out[i] = np.asarray(poses_c2w[i], dtype=np.float64).copy()
    if len(known) == 1:
        return [K[0].copy() if p is None else p for p in out]
    tk = t_all[known]
    if np.any(np.diff(tk) <= 0):
        raise ValueError("times of posed frames must be strictly increasing")
    slerp = Slerp(tk, Rotation.from_matrix(K[:, :3, :3]))
    for i in range(n):
        if out[i] is not None:
            continue
        ti = t_all[i]
        if ti <= tk[0]:
            q = K[0].copy()
        elif ti >= tk[-1]:
            q = K[-1].copy()
        else:
            q = np.eye(4)
            q[:3, :3] = slerp([ti]).as_matrix()[0]
            for d in range(3):
                q[d, 3] = np.interp(ti, tk, K[:, d, 3])
        out[i] = q
    return out  # type: ignore[return-value]


def pose_fill_kinds(poses_c2w: Sequence[np.ndarray | None]) -> list[str | None]:
    """How :func:`interpolate_poses` fills each ``None`` entry: ``"interpolated"`` between two
    posed frames, ``"copied"`` before the first / after the last posed one (the nearest pose);
    None for the entries that already have a pose (and for every entry when none has one)."""
    known = [i for i, p in enumerate(poses_c2w) if p is not None]
    if not known:
        return [None] * len(poses_c2w)
    first, last = known[0], known[-1]
    return [None if p is not None else ("interpolated" if first < i < last else "copied")
            for i, p in enumerate(poses_c2w)]


# --------------------------------------------------------------------------- Sim(3)


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ~ s * R @ src + t`` (Umeyama 1991).

    ``src``, ``dst``: corresponding points ``(N, 3)``, ``N >= 3``. Returns ``(s, R, t)`` with
    ``R`` a proper rotation (det +1) and ``s = 1`` when ``with_scale`` is False. When the
    source points lie on a line the rotation about that line is not determined (any
    minimiser is returned). Raises :class:`InputError` on bad shapes or identical points.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.ndim != 2 or src.shape[1] != 3 or src.shape != dst.shape:
        raise InputError(f"umeyama: src and dst must both be (N, 3), got {src.shape} and {dst.shape}")
    n = src.shape[0]
    if n < 3:
        raise InputError(f"umeyama: needs at least 3 point pairs, got {n}")
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    xs, xd = src - mu_s, dst - mu_d
    var_s = float(np.sum(xs**2)) / n
    if var_s <= 1e-300:
        raise InputError("umeyama: the source points are all identical")
    U, D, Vt = np.linalg.svd(xd.T @ xs / n)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1.0
    R = U @ S @ Vt
    s = float(np.sum(D * np.diag(S)) / var_s) if with_scale else 1.0
    t = mu_d - s * R @ mu_s
    return s, R, t


@dataclass
class Sim3:
    """A similarity ``X -> s * R @ X + t`` fitted by :func:`align_sim3` (``method``: how)."""

    s: float
    R: np.ndarray
    t: np.ndarray
    method: str = "umeyama"
    aligned: list[np.ndarray | None] = field(default_factory=list)

    def apply_to_pose(self, pose_c2w: np.ndarray) -> np.ndarray:
        """The camera-to-world pose moved by this similarity: ``[[R R_p, s R c_p + t], [0, 1]]``."""
        p = np.asarray(pose_c2w, dtype=np.float64)
        q = np.eye(4)
        q[:3, :3] = self.R @ p[:3, :3]
        q[:3, 3] = self.s * self.R @ p[:3, 3] + self.t
        return q


def align_sim3(
    pred_c2w: Sequence[np.ndarray | None], ref_c2w: Sequence[np.ndarray | None], *, with_scale: bool = True
) -> Sim3:
    """Similarity aligning a predicted camera-to-world trajectory onto a reference one.

    Frames where either pose is ``None`` are left out of the fit (``aligned`` keeps ``None``
    where the prediction has none). With 3+ centres spanning more than a line (second
    singular value of the centred predicted centres at least :data:`COLLINEAR_RATIO` of the
    first) the centres are aligned by :func:`umeyama` (``method="umeyama"``); otherwise the
    rotation is the one best mapping predicted orientations onto reference ones and scale
    and translation are least squares given it (``method="orientation"``). Raises
    :class:`InputError` on different lengths, non-4x4 poses or no usable frame.
    """
    if len(pred_c2w) != len(ref_c2w):
        raise InputError(f"align_sim3: {len(pred_c2w)} predicted poses but {len(ref_c2w)} reference poses")
    P, G = [], []
    for i, (p, g) in enumerate(zip(pred_c2w, ref_c2w)):
        if p is None or g is None:
            continue
        p, g = np.asarray(p, dtype=np.float64), np.asarray(g, dtype=np.float64)
        if p.shape != (4, 4) or g.shape != (4, 4):
            raise InputError(f"align_sim3: pose {i} must be 4x4 (pred {p.shape}, reference {g.shape})")
        P.append(p)
        G.append(g)
    if not P:
        raise InputError("align_sim3: no frame has both a predicted and a reference pose")
    P_arr, G_arr = np.asarray(P), np.asarray(G)
    cp, cg = P_arr[:, :3, 3], G_arr[:, :3, 3]
    sv = np.linalg.svd(cp - cp.mean(0), compute_uv=False) if len(P) >= 3 else np.zeros(3)
    if len(P) >= 3 and sv[0] > MIN_CENTRE_SPREAD and sv[1] > COLLINEAR_RATIO * sv[0]:
        s, R, t = umeyama(cp, cg, with_scale=with_scale)
        method = "umeyama"
    else:
        R = nearest_rotation(sum(g[:3, :3] @ p[:3, :3].T for p, g in zip(P_arr, G_arr)))
        xs, xd = (cp - cp.mean(0)) @ R.T, cg - cg.mean(0)
        den = float(np.sum(xs**2))
        spread_ref = float(np.sum(xd**2))
        s = float(np.sum(xs * xd) / den) if (with_scale and den > 1e-300 and spread_ref > 0) else 1.0
        t = cg.mean(0) - s * R @ cp.mean(0)
        method = "orientation"
    sim = Sim3(s=float(s), R=R, t=t, method=method)
    sim.aligned = [None if p is None else sim.apply_to_pose(p) for p in pred_c2w]
    return sim


# --------------------------------------------------------------------------- projection


def world_to_camera(points_world: np.ndarray, pose_c2w: np.ndarray) -> np.ndarray:
    """Points ``(N, 3)`` in world coordinates expressed in the camera of ``pose_c2w`` (``(N, 3)``)."""
    P = np.asarray(points_world, np.float64).reshape(-1, 3)
    w2c = np.linalg.inv(np.asarray(pose_c2w, np.float64))
    return P @ w2c[:3, :3].T + w2c[:3, 3]


def project_points(
    points_world: np.ndarray, pose_c2w: np.ndarray, intr: Intrinsics, *, min_depth: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pinhole projection of world points into the frame of ``pose_c2w``.

    Returns ``(u, v, z)`` float64 for the points in front of the camera (``z > min_depth``)
    only: pixel coordinates (OpenCV centres, not rounded, not clipped to the image) and their
    z-depths.
    """
    X = world_to_camera(points_world, pose_c2w)
    z = X[:, 2]
    front = z > min_depth
    zf = z[front]
    u = intr.fx * X[front, 0] / zf + intr.cx
    v = intr.fy * X[front, 1] / zf + intr.cy
    return u, v, zf


def project_camera_points(K: np.ndarray, X_cam: np.ndarray, *, min_depth: float = 1e-9
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pinhole projection of camera-frame points ``X_cam`` ``(3, N)`` through ``K`` (3x3).

    Returns ``(u, v, in_front)``: pixel coordinates ``(N,)`` (OpenCV centres; inf/NaN behind or on
    the camera plane) and the mask ``z > min_depth``.
    """
    z = X_cam[2]
    in_front = z > min_depth
    q = K @ X_cam
    with np.errstate(divide="ignore", invalid="ignore"):
        u = q[0] / z
        v = q[1] / z
    return u, v, in_front


def scale_K(K: np.ndarray, size: tuple[int, int], new_size: tuple[int, int]) -> np.ndarray:
    """``K`` of an image of ``size = (width, height)`` for the image resized to ``new_size``
    (the rule of :meth:`Intrinsics.scaled`: pixel centres kept exact)."""
    K = np.asarray(K, np.float64)
    return Intrinsics.from_K(K, int(size[0]), int(size[1])).scaled(int(new_size[0]), int(new_size[1])).K


# --------------------------------------------------------------------------- resizing maps
#
# Three resizes that keep invalid pixels (0 / non-finite) out, each with its own contract:
# resize_depth (output maps: disparity space, area when shrinking, majority-valid),
# resize_keep_invalid (prior maps: bilinear where the whole footprint is valid, nearest
# elsewhere, so no pixel is lost) and resize_valid_normalised (evaluation: validity by
# exact nearest, values normalised over the valid weights).


def invert_valid(values: np.ndarray) -> np.ndarray:
    """``1 / values`` where ``values`` is finite and positive, 0 (invalid) elsewhere, float32.

    Turns z-depth into disparity and back; invalid pixels stay 0 and never become inf.
    """
    valid = np.isfinite(values) & (values > 0)
    return np.where(valid, 1.0 / np.where(valid, values, 1.0), 0.0).astype(np.float32)


def resize_depth(depth: np.ndarray, confidence: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Resize z-depth ``(H, W)`` and its confidence to ``size = (width, height)`` (up or down).

    Unlike :func:`steadydepth.consistency.completion.upsample_depth` (edge-aware, needs the
    target-resolution image) this needs no guide. Interpolates in disparity (1/depth),
    weighting by validity so invalid pixels (0) never bleed into valid ones; a pixel is valid
    when over half of its interpolation weight was valid. Pixel centres are kept aligned
    (OpenCV ``resize``; area averaging when shrinking). Returns float32 maps.
    """
    w, h = size
    if depth.shape == (h, w):
        return depth.astype(np.float32), confidence.astype(np.float32)
    valid = (depth > 0) & np.isfinite(depth)
    disp = invert_valid(depth)
    weight = valid.astype(np.float32)
    down = w < depth.shape[1]
    interp = cv2.INTER_AREA if down else cv2.INTER_LINEAR
    disp_r = cv2.resize(disp, (w, h), interpolation=interp)
    weight_r = cv2.resize(weight, (w, h), interpolation=interp)
    conf_r = cv2.resize(confidence.astype(np.float32), (w, h), interpolation=interp)
    ok = weight_r > 0.5
    out = np.zeros((h, w), np.float32)
    out[ok] = weight_r[ok] / np.maximum(disp_r[ok], 1e-12)
    return out, np.clip(np.where(ok, conf_r, 0.0), 0.0, 1.0).astype(np.float32)


def resize_keep_invalid(values: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize a map ``(H, W)`` (0 / non-finite = invalid) to ``width x height``, float32.

    Bilinear where the whole bilinear footprint is valid, nearest elsewhere: invalid pixels
    are never mixed into valid ones.
    """
    values = np.asarray(values, np.float32)
    if values.shape == (height, width):
        return values
    ok = np.isfinite(values) & (values > 0)
    lin = cv2.resize(np.where(ok, values, 0.0), (width, height), interpolation=cv2.INTER_LINEAR)
    near = cv2.resize(np.where(ok, values, 0.0), (width, height), interpolation=cv2.INTER_NEAREST)
    okr = cv2.resize(ok.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR) > 0.999
    return np.where(okr, lin, near).astype(np.float32)


def resize_valid_normalised(
    values: np.ndarray, valid: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Resize ``values`` to ``shape = (H, W)``: bilinear normalised over ``valid``, validity by
    exact nearest. Returns ``(values float64, valid bool)``."""
    h, w = shape
    m = valid.astype(np.float64)
    num = cv2.resize(np.where(valid, values, 0.0), (w, h), interpolation=cv2.INTER_LINEAR)
    den = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
    near = cv2.resize(valid.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST_EXACT).astype(bool)
    ok = near & (den > 1e-9)
    out = np.zeros((h, w), dtype=np.float64)
    out[ok] = num[ok] / den[ok]
    return out, ok


#: cv2.remap refuses maps with a side of SHRT_MAX (32767) or more: scattered samples go in rows this long
_REMAP_ROW = 4096


def sample_at(image: np.ndarray, x: np.ndarray, y: np.ndarray, *, interpolation: int = cv2.INTER_LINEAR,
              border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Sample a single-channel ``image`` ``(H, W)`` at scattered pixel positions (OpenCV pixel centres).

    ``x``, ``y``: 1-D float arrays of the same length ``N`` (any ``N``: they are laid out in
    rows, since ``cv2.remap`` refuses maps wider than 32766). Returns ``(N,)`` values of the
    image's dtype.
    """
    x = np.asarray(x, np.float32).ravel()
    y = np.asarray(y, np.float32).ravel()
    n = x.size
    if n == 0:
        return np.zeros(0, image.dtype)
    rows = -(-n // _REMAP_ROW)
    pad = rows * _REMAP_ROW - n
    mx = np.pad(x, (0, pad)).reshape(rows, _REMAP_ROW)
    my = np.pad(y, (0, pad)).reshape(rows, _REMAP_ROW)
    out = cv2.remap(image, mx, my, interpolation, borderMode=border)
    return out.ravel()[:n]
