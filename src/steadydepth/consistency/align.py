"""Clip-level alignment: one scale (and shift) per frame, fitted jointly over the clip.

Per-frame relative depth models give *affine-invariant disparity*: each frame has its own
unknown scale and shift, which is what makes their output flicker. :class:`ClipAligner`
fits, for every frame ``i``, a pair ``(s_i, t_i)`` such that the aligned disparity
``s_i * d_i + t_i`` agrees across frames wherever the same content is seen:

* **Correspondences** come from dense optical flow (``cv2.DISOpticalFlow`` on grayscale,
  forward-backward checked, which also removes occlusions) between each frame and a few
  earlier ones (offsets ``(1, 3, 8)`` by default: the longer pairs limit drift).
* **Fit**: each pair gets its own robust map ``y ~ a x + b`` between the two frames' values
  on its correspondences (Huber IRLS; slope = geometric mean of both regressions, unbiased
  when both sides are noisy); pairs with a large residual (wrong flow) are dropped. The
  per-frame parameters are then *synchronised* over the pair graph: log-scales first
  (``log s_i - log s_j = log a``: linear, so no shrinkage towards a constant disparity, the
  trap of fitting ``s_i d_i + t_i = s_j d_j + t_j`` directly), then shifts given the scales;
  both are small sparse robust least-squares problems (Huber IRLS over pairs).
* **Moving objects / outliers**: the forward-backward and photometric checks drop occluded
  and mismatched pixels, pixels at depth discontinuities are not sampled, and the Huber
  weights of the pair fits and of the synchronisation absorb the rest.
* **Poses**: when camera-to-world poses and intrinsics are given *and* the depth units
  match the pose units (an ``anchor`` was given, or ``depth_in_pose_units=True``), the
  expected disparity change along each correspondence is taken from the reprojection
  ``z_j = (R_ji X_i + t_ji)_z`` (recomputed from the solution, three outer rounds), instead of assuming the
  disparity of a point is the same in both frames (true only for small camera motion).
* **Gauge**: without anchors, frame 0 is fixed (``s_0 = 1, t_0 = 0``): the clip keeps the
  first frame's affine-invariant disparity. With ``anchor`` depth (geometric multi-view or
  metric depth with a confidence), anchor constraints fix scale and shift instead, so the
  result is in the anchor's units.
* ``kind="depth"`` (metric or scene-unit z-depth): only a scale per frame is fitted, in
  log-depth, with the same correspondences.

Streaming: :meth:`ClipAligner.observe` takes frames in order and keeps only the last few
frames at a reduced working resolution plus a few thousand sampled correspondences per
pair (memory ``O(T * pairs * samples_per_pair)`` floats, about 50 KB per frame by
default). :meth:`ClipAligner.solve` is a small sparse least-squares problem
(``2T`` unknowns, scipy); :meth:`ClipAligner.apply` is then used in a second pass.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import scipy.sparse as sp

from ..errors import InputError, ReconstructionError
from ..geometry import invert_valid, sample_at
from ..types import Intrinsics
from .robust import _graph_system, _huber_weights, _robust_affine, _robust_location, _smooth_mask, _solve_fixed

__all__ = ["ClipAligner", "consistent_flow"]

log = logging.getLogger(__name__)


def consistent_flow(
    gray_a: np.ndarray, gray_b: np.ndarray, *, tol: float = 0.75, photo_tol: float = 12.0
) -> tuple[np.ndarray, np.ndarray]:
    """Forward flow ``a -> b`` (``(H, W, 2)`` in pixels, x then y) and its reliability mask.

    A pixel is kept when following the forward flow and then the backward flow returns
    within ``tol + 0.05 * |flow|`` pixels (this drops occluded and disoccluded pixels),
    the target lies inside the image, and the grey levels at both ends differ by less
    than ``photo_tol`` (this drops flow that is consistent but wrong).
    """
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    fwd = dis.calc(gray_a, gray_b, None)
    bwd = dis.calc(gray_b, gray_a, None)
    h, w = gray_a.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = xs + fwd[..., 0], ys + fwd[..., 1]
    back = cv2.remap(bwd, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=1e6)
    err = np.linalg.norm(fwd + back, axis=2)
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    ok = inside & (err < tol + 0.05 * np.linalg.norm(fwd, axis=2))
    warped = cv2.remap(gray_b.astype(np.float32), mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    ok &= np.abs(warped - gray_a.astype(np.float32)) < photo_tol
    return fwd, ok


@dataclass
class _Buffered:
    index: int
    gray: np.ndarray
    disp: np.ndarray  # normalised working-resolution values (disparity, or depth for kind="depth")
    valid: np.ndarray
    pose: np.ndarray | None


@dataclass
class _PairSamples:
    i: int
    j: int
    vi: np.ndarray  # normalised values at the sample in frame i
    vj: np.ndarray  # normalised values at the corresponding point of frame j
    a: np.ndarray | None  # (R_ji K^-1 x)_z per sample, when poses are known
    tz: float  # t_ji z component


@dataclass
class _AnchorSamples:
    i: int
    vi: np.ndarray  # normalised prior values
    g: np.ndarray  # anchor disparity (kind="disparity") or depth (kind="depth"), raw units
    w: np.ndarray  # anchor confidence


class ClipAligner:
    """Fit per-frame scale/shift so a flickering clip agrees with itself (see module docstring).

    Usage (two passes over the prior's outputs)::

        aligner = ClipAligner(kind="disparity")
        for k, (image, disp) in enumerate(stream):
            aligner.observe(k, image, disp)
        params = aligner.solve()             # (T, 2): scale, shift
        for k, disp in enumerate(stream_again):
            aligned = aligner.apply(k, disp)  # s_k * disp + t_k (0 stays invalid)

    Parameters: ``kind`` is ``"disparity"`` (affine: scale and shift in disparity) or
    ``"depth"`` (scale only, fitted in log-depth). ``intrinsics`` (at any resolution; scaled
    internally) and per-frame ``pose`` (camera-to-world 4x4, OpenCV axes) enable the
    reprojection model when depth units match the poses. ``offsets`` are the frame
    distances of the flow pairs; ``samples_per_pair`` bounds memory; ``work_width`` is the
    width of the working resolution for flow.
    """

    def __init__(
        self,
        kind: Literal["disparity", "depth"] = "disparity",
        *,
        intrinsics: Intrinsics | None = None,
        offsets: tuple[int, ...] = (1, 3, 8),
        samples_per_pair: int = 1500,
        anchor_samples: int = 3000,
        work_width: int = 256,
        anchor_weight: float = 1.0,
        depth_in_pose_units: bool = False,
        max_pair_residual: float = 0.2,
        irls_iters: int = 8,
        huber_k: float = 1.5,
        seed: int = 0,
    ) -> None:
        if kind not in ("disparity", "depth"):
            raise InputError(f"ClipAligner: kind must be 'disparity' or 'depth', got '{kind}'")
        if not offsets or min(offsets) < 1:
            raise InputError(f"ClipAligner: offsets must be positive frame distances, got {offsets}")
        self.kind = kind
        self.intrinsics = intrinsics
        self.offsets = tuple(sorted(set(int(o) for o in offsets)))
        self.samples_per_pair = int(samples_per_pair)
        self.anchor_samples = int(anchor_samples)
        self.work_width = int(work_width)
        self.anchor_weight = float(anchor_weight)
        self.depth_in_pose_units = bool(depth_in_pose_units)
        self.max_pair_residual = float(max_pair_residual)
        self.irls_iters = int(irls_iters)
        self.huber_k = float(huber_k)
        self._rng = np.random.default_rng(seed)
        self._buffer: deque[_Buffered] = deque(maxlen=max(self.offsets))
        self._pairs: list[_PairSamples] = []
        self._anchors: list[_AnchorSamples] = []
        self._norm: list[float] = []  # per-frame normalisation (median of the frame's values)
        self._params: np.ndarray | None = None
        self._work_size: tuple[int, int] | None = None
        self.stats: dict = {}

    # ------------------------------------------------------------------ first pass
    @property
    def num_frames(self) -> int:
        return len(self._norm)

    def observe(
        self,
        index: int,
        image: np.ndarray,
        values: np.ndarray,
        valid: np.ndarray | None = None,
        *,
        pose: np.ndarray | None = None,
        anchor: np.ndarray | None = None,
        anchor_confidence: np.ndarray | None = None,
    ) -> None:
        """Collect the statistics of frame ``index`` (0, 1, 2, ... in stream order).

        ``image`` is uint8 RGB ``(H, W, 3)``; ``values`` the prior's disparity (or depth for
        ``kind="depth"``) at any resolution (0/NaN = invalid); ``valid`` an optional extra
        mask at the resolution of ``values``. ``anchor`` is z-depth in the target units
        (0 = invalid; e.g. multi-view stereo) with ``anchor_confidence`` in ``[0, 1]``.
        """
        if index != self.num_frames:
            raise InputError(f"ClipAligner.observe: frames must come in order; expected {self.num_frames}, got {index}")
        image = np.asarray(image)
        values = np.asarray(values, dtype=np.float32)
        if image.ndim != 3 or image.shape[2] != 3 or values.ndim != 2:
            raise InputError(f"ClipAligner.observe: need image (H, W, 3) and values (h, w); got {image.shape}, {values.shape}")
        ok = np.isfinite(values) & (values > 0)
        if valid is not None:
            ok &= np.asarray(valid, bool)
        h, w = image.shape[:2]
        ww = min(self.work_width, w)
        wh = max(8, int(round(h * ww / w)))
        if self._work_size is None:
            self._work_size = (ww, wh)
        elif self._work_size != (ww, wh):
            raise InputError(f"ClipAligner.observe: frame {index} has size {w}x{h}, unlike earlier frames")
        gray = cv2.cvtColor(np.ascontiguousarray(image, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
        gray = cv2.resize(gray, (ww, wh), interpolation=cv2.INTER_AREA)
        v = cv2.resize(np.where(ok, values, 0.0).astype(np.float32), (ww, wh), interpolation=cv2.INTER_NEAREST)
        m = cv2.resize(ok.astype(np.uint8), (ww, wh), interpolation=cv2.INTER_NEAREST).astype(bool)
        norm = float(np.median(v[m])) if m.any() else 1.0
        if not m.any():
            log.warning("ClipAligner: frame %d has no valid prior values", index)
        self._norm.append(norm)
        v = np.where(m, v / norm, 0.0).astype(np.float32)
        pose = None if pose is None else np.asarray(pose, np.float64)
        cur = _Buffered(index, gray, v, m, pose)

        if anchor is not None:
            self._add_anchor(cur, anchor, anchor_confidence)
        for prev in self._buffer:
            if index - prev.index in self.offsets:
                self._add_pair(prev, cur)
        self._buffer.append(cur)
        self._params = None

    def _add_anchor(self, cur: _Buffered, anchor: np.ndarray, conf: np.ndarray | None) -> None:
        ww, wh = self._work_size  # type: ignore[misc]
        anchor = np.asarray(anchor, np.float32)
        good = np.isfinite(anchor) & (anchor > 0)
        c = np.ones_like(anchor) if conf is None else np.asarray(conf, np.float32)
        c = np.where(good, np.clip(c, 0.0, 1.0), 0.0).astype(np.float32)
        a = cv2.resize(np.where(good, anchor, 0.0), (ww, wh), interpolation=cv2.INTER_NEAREST)
        c = cv2.resize(c, (ww, wh), interpolation=cv2.INTER_NEAREST)
        sel = np.flatnonzero(((a > 0) & (c > 0.05) & cur.valid).ravel())
        if sel.size < 20:
            return
        if sel.size > self.anchor_samples:
            sel = self._rng.choice(sel, self.anchor_samples, replace=False)
        g = a.ravel()[sel]
        if self.kind == "disparity":
            g = 1.0 / g
        self._anchors.append(_AnchorSamples(cur.index, cur.disp.ravel()[sel].copy(), g.astype(np.float32), c.ravel()[sel].copy()))

    def _add_pair(self, prev: _Buffered, cur: _Buffered) -> None:
        flow, ok = consistent_flow(prev.gray, cur.gray)
        h, w = prev.gray.shape
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        mx, my = xs + flow[..., 0], ys + flow[..., 1]
        # a bilinear sample of the target frame is used only where all four neighbours are valid
        vmask = cv2.remap(cur.valid.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        ok &= prev.valid & (vmask > 0.999)
        # avoid depth discontinuities: there a small flow error samples the other surface
        smooth_i = _smooth_mask(prev.disp, prev.valid)
        smooth_j = cv2.remap(_smooth_mask(cur.disp, cur.valid).astype(np.float32), mx, my, cv2.INTER_NEAREST,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0.5
        ok &= smooth_i & smooth_j
        sel = np.flatnonzero(ok.ravel())
        if sel.size < 20:
            log.warning("ClipAligner: frames %d and %d share too few reliable correspondences", prev.index, cur.index)
            return
        if sel.size > self.samples_per_pair:
            sel = self._rng.choice(sel, self.samples_per_pair, replace=False)
        px, py = mx.ravel()[sel], my.ravel()[sel]
        vj = sample_at(cur.disp, px, py, border=cv2.BORDER_CONSTANT)
        vi = prev.disp.ravel()[sel]
        a, tz = None, 0.0
        if prev.pose is not None and cur.pose is not None and self.intrinsics is not None:
            K = self.intrinsics.scaled(w, h).K
            rel = np.linalg.inv(cur.pose) @ prev.pose  # frame i camera -> frame j camera
            u, v = xs.ravel()[sel], ys.ravel()[sel]
            rays = np.linalg.inv(K) @ np.stack([u, v, np.ones_like(u)]).astype(np.float64)
            a = (rel[2, :3] @ rays).astype(np.float32)
            tz = float(rel[2, 3])
        self._pairs.append(_PairSamples(prev.index, cur.index, vi.astype(np.float32), vj.astype(np.float32), a, tz))

    # ------------------------------------------------------------------ solve
    def solve(self) -> np.ndarray:
        """Solve for per-frame parameters: ``(T, 2)`` array of ``(scale, shift)`` in the units of
        the values given to :meth:`observe` (``shift`` is 0 for ``kind="depth"``).

        Method: every pair gets its own robust fit (Huber IRLS) of the map between the two
        frames' values on its correspondences (``y ~ a x + b``; the slope is the geometric
        mean of the two regressions, which removes the bias of noisy regressors). Pairs whose
        fit leaves a large residual (wrong flow) are dropped. The per-frame parameters are
        then synchronised over the pair graph: log-scales first (``log s_i - log s_j = log a``,
        linear, so no shrinkage towards a constant disparity), then shifts, each a sparse
        robust least-squares problem. Anchors add unary terms and fix the gauge; without
        anchors frame 0 is held at ``(1, 0)``. With poses the expected disparity change of each
        correspondence is recomputed from the current solution (a few outer iterations).
        """
        T = self.num_frames
        if T == 0:
            raise ReconstructionError("ClipAligner.solve: no frames were observed")
        norm = np.asarray(self._norm, np.float64)
        anchored = len(self._anchors) > 0
        use_poses = (anchored or self.depth_in_pose_units) and bool(self._pairs) and all(
            p.a is not None for p in self._pairs
        )
        G = float(np.median(np.concatenate([a.g for a in self._anchors]))) if anchored else 1.0
        s = np.ones(T)
        t = np.zeros(T)
        outer = 3 if use_poses else 1
        for _ in range(outer):
            pair_fits = self._gate_pairs(T, [self._fit_pair(p, s, t, G, use_poses) for p in self._pairs])
            anchor_fits = [self._fit_anchor(a, G) for a in self._anchors]
            s, t = self._synchronise(T, pair_fits, anchor_fits, anchored)
        good = sum(f is not None for f in pair_fits)
        self.stats = {
            "pairs": len(self._pairs), "pairs_used": good, "anchors": len(self._anchors),
            "gauge": "anchors" if anchored else "frame 0", "poses_used": bool(use_poses),
            "pair_residual_median": float(np.median([f[3] for f in pair_fits if f is not None])) if good else float("nan"),
        }
        connected = np.zeros(T, bool)
        if not anchored:
            connected[0] = True
        for f in pair_fits:
            if f is not None:
                connected[[f[0], f[1]]] = True
        for f in anchor_fits:
            if f is not None:
                connected[f[0]] = True
        if not connected.all():
            log.warning("ClipAligner: frames %s have no usable correspondence; they keep their neighbours' scale",
                        np.flatnonzero(~connected).tolist())
        log.info("ClipAligner solved %d frames: %s", T, self.stats)
        if self.kind == "disparity":
            if not anchored:  # hold frame 0 exactly at (1, 0) in the caller's units
                s, t = s * norm[0], t * norm[0]
            else:
                s, t = s * G, t * G
            params = np.stack([s / norm, t], axis=1)
        else:
            scale = s * (norm[0] if not anchored else G)
            params = np.stack([scale / norm, np.zeros(T)], axis=1)
        self._params = params
        return params.copy()

    def _fit_pair(self, p: _PairSamples, s: np.ndarray, t: np.ndarray, G: float, use_poses: bool):
        """Robust fit of the map between frames ``p.i`` and ``p.j``: ``(i, j, log_a, residual, b, rho_bar, weight)``."""
        x = p.vi.astype(np.float64)
        y = p.vj.astype(np.float64)
        rho = np.ones_like(x)
        if use_poses and p.a is not None:
            if self.kind == "disparity":
                depth_i = 1.0 / (G * np.maximum(s[p.i] * x + t[p.i], 1e-9))
            else:
                depth_i = G * s[p.i] * x
            zj = p.a * depth_i + p.tz
            rho = np.where(zj > 1e-9, depth_i / np.maximum(zj, 1e-9), 1.0)  # disparity_j / disparity_i
        if self.kind == "depth":
            r0 = np.log(y) - np.log(x) + np.log(rho)  # log(s_i / s_j) per sample
            la, res, w = _robust_location(r0)
            if not np.isfinite(la):
                return None
            return (p.i, p.j, -la, res, 0.0, 1.0, 1.0)
        rx = rho * x
        a, b, res = _robust_affine(rx, y, self.huber_k)
        spread = float(np.std(rx) / max(np.mean(rx), 1e-9))
        if a is None or a <= 0 or spread < 1e-3:
            log.debug("ClipAligner: pair (%d, %d) rejected (slope %s)", p.i, p.j, a)
            return None
        weight = min(1.0, (spread / 0.1) ** 2)
        return (p.i, p.j, float(np.log(a)), res, b, float(np.median(rho)), weight, rx, y)

    def _gate_pairs(self, T: int, fits: list) -> list:
        """Drop pairs whose fit residual exceeds ``max_pair_residual`` (wrong flow, mostly), but
        keep each frame's best pair when its residual is below twice that (a bad frame of the
        prior still gets aligned to its neighbours)."""
        out = [f if f is not None and f[3] <= self.max_pair_residual else None for f in fits]
        kept = np.zeros(T, bool)
        for f in out:
            if f is not None:
                kept[[f[0], f[1]]] = True
        for k in np.flatnonzero(~kept):
            cands = [(f[3], n) for n, f in enumerate(fits) if f is not None and k in (f[0], f[1])]
            if cands:
                res, n = min(cands)
                if res <= 2 * self.max_pair_residual:
                    out[n] = fits[n]
        dropped = sum(f is not None for f in fits) - sum(f is not None for f in out)
        if dropped:
            log.debug("ClipAligner: %d pairs dropped for residual above %.2f", dropped, self.max_pair_residual)
        return out

    def _fit_anchor(self, a: _AnchorSamples, G: float):
        x = a.vi.astype(np.float64)
        g = a.g.astype(np.float64) / G
        if self.kind == "depth":
            ls, res, _ = _robust_location(np.log(g) - np.log(x), a.w)
            return (a.i, ls, 0.0, res)
        sc, sh, res = _robust_affine(x, g, self.huber_k, a.w)
        if sc is None or sc <= 0:
            ls, res, _ = _robust_location(np.log(g) - np.log(x), a.w)
            return (a.i, ls, 0.0, res, x, g, a.w)
        return (a.i, float(np.log(sc)), sh, res, x, g, a.w)

    def _synchronise(self, T: int, pair_fits: list, anchor_fits: list, anchored: bool) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame (scale, shift) in normalised units from the pair maps and anchor fits."""
        pf = [f for f in pair_fits if f is not None]
        af = [f for f in anchor_fits if f is not None]
        fixed = None if anchored else 0
        # --- log scales: y = a x + b with a = s_i / s_j  ->  u_i - u_j = log a
        rows_i = np.array([f[0] for f in pf], int)
        rows_j = np.array([f[1] for f in pf], int)
        la = np.array([f[2] for f in pf])
        pw = np.array([f[6] for f in pf])
        ai = np.array([f[0] for f in af], int)
        als = np.array([f[1] for f in af])
        aw = np.full(len(af), self.anchor_weight)
        u = np.zeros(T)
        rw = np.ones(len(pf))
        rwa = np.ones(len(af))
        for _ in range(self.irls_iters):
            A, b = _graph_system(T, rows_i, rows_j, la, np.sqrt(pw * rw), ai, als, np.sqrt(aw * rwa))
            u = _solve_fixed(A, b, T, fixed, 0.0, u)
            rw = _huber_weights(u[rows_i] - u[rows_j] - la, self.huber_k, floor=0.01)
            if len(af):
                rwa = _huber_weights(u[ai] - als, self.huber_k, floor=0.02)
        s = np.exp(u)
        if self.kind == "depth":
            return s, np.zeros(T)
        # --- shifts, given the scales: s_j y + t_j = rho (s_i x + t_i) on every correspondence, so
        # rho_bar t_i - t_j = robust mean of (s_j y - s_i rho x); anchors: t_i = mean of (g - s_i x).
        # Rows are divided by s_j (relative to the aligned level).
        bb = np.array([_robust_location(s[f[1]] * f[8] - s[f[0]] * f[7])[0] for f in pf]) / np.maximum(
            s[rows_j], 1e-12) if pf else np.zeros(0)
        rb = np.array([f[5] for f in pf])
        ash = np.array([_robust_location(f[5] - s[f[0]] * f[4], f[6])[0] for f in af]) if af else np.zeros(0)
        n_p, n_a = len(pf), len(af)
        w_p = np.sqrt(pw * rw) / np.maximum(s[rows_j], 1e-12) if n_p else np.zeros(0)
        w_a = np.sqrt(aw * rwa) / np.maximum(s[ai], 1e-12) if n_a else np.zeros(0)
        rows = np.concatenate([np.arange(n_p), np.arange(n_p), n_p + np.arange(n_a)])
        cols = np.concatenate([rows_i, rows_j, ai])
        data = np.concatenate([w_p * rb, -w_p, w_a])
        A = sp.csr_matrix((data, (rows, cols)), shape=(n_p + n_a, T))
        b = np.concatenate([w_p * s[rows_j] * bb, w_a * ash]) if (n_p + n_a) else np.zeros(0)
        t = _solve_fixed(A, b, T, fixed, 0.0, np.zeros(T))
        return s, t

    # ------------------------------------------------------------------ second pass
    @property
    def params(self) -> np.ndarray:
        if self._params is None:
            self.solve()
        return self._params.copy()  # type: ignore[union-attr]

    def apply(self, index: int, values: np.ndarray) -> np.ndarray:
        """Aligned values of frame ``index``: ``s * d + t`` (disparity) or ``s * D`` (depth).

        Invalid input (0/NaN) and pixels whose aligned disparity is not positive are 0.
        """
        params = self.params
        if not 0 <= index < len(params):
            raise InputError(f"ClipAligner.apply: frame {index} was not observed (clip has {len(params)} frames)")
        s, t = params[index]
        values = np.asarray(values, np.float32)
        ok = np.isfinite(values) & (values > 0)
        out = np.where(ok, s * values + t, 0.0)
        out = np.where(out > 0, out, 0.0).astype(np.float32)
        return out

    def apply_depth(self, index: int, values: np.ndarray) -> np.ndarray:
        """Aligned z-depth of frame ``index`` (``1 / aligned disparity`` for ``kind="disparity"``)."""
        out = self.apply(index, values)
        if self.kind == "depth":
            return out
        return invert_valid(out)
