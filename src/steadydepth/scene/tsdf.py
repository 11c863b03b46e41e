"""A sparse, bounded-memory TSDF volume (numpy): depth maps with cameras in, a coloured mesh out.

The volume is a hash of blocks of ``8 x 8 x 8`` voxels, allocated only where a depth map
puts a surface (its truncation band), so memory follows the surface seen, not the clip
length; ``max_blocks`` caps it (past the cap no block is added and :attr:`TSDFVolume.full`
says so). Conventions: world coordinates of the cameras (camera-to-world 4x4, OpenCV axes),
z-depth maps with 0 = invalid, pixel centres at integer coordinates, pinhole ``K`` (undistort
first: :meth:`steadydepth.cameras.lens.RadialLens.undistort_depth`). Voxel ``(i, j, k)`` (global
integer index) has its centre at ``(i, j, k) * voxel_size``; the stored value is the truncated
signed distance along the optical axis in units of the truncation, positive in front of the
surface, in ``[-1, 1]``.

Per frame (:meth:`TSDFVolume.integrate`): pixels below ``min_confidence`` are left out; the
blocks the remaining pixels' truncation bands cross are allocated; every voxel of those blocks
is projected into the frame (nearest pixel) and its running weighted mean updated with the
observed ``clip((d - z) / trunc, -1, 1)`` where ``d - z > -trunc``, weight = the pixel's
confidence. Colour is averaged only from observations within the band.

Pixels that disagree across views (a moving object, a wrong depth) are removed by a
free-space test (:meth:`TSDFVolume.carve`, a second pass over frames): a surface voxel that
more frames see *through* (it lies more than the truncation in front of the observed depth)
than see it on their surface is cleared before meshing.

:meth:`TSDFVolume.extract_mesh` runs scikit-image's marching cubes per block on the block and
its one-voxel overlap with the next blocks, keeps only faces whose edge ends are all observed
(weight >= ``min_weight``) and not both truncated, and welds the shared vertices.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

__all__ = ["BLOCK", "TSDFSettings", "TSDFVolume", "Mesh"]

log = logging.getLogger(__name__)

#: voxels per block side
BLOCK = 8
_VPB = BLOCK ** 3
_OFF = 1 << 20  # block keys are packed into one int64: 21 bits per axis, offset to be non-negative


@dataclass
class TSDFSettings:
    """``voxel_size`` in world units; ``truncation`` in voxels; ``min_confidence``: pixels below
    are not fused; ``min_weight``: a voxel counts as observed from this summed confidence on;
    ``max_blocks``: the memory cap (each block is 512 voxels of 18 bytes); ``reference_depth``:
    when set, an observation's weight is its confidence times ``(reference_depth / depth)^2``
    (depth from motion errs in proportion to depth squared, so nearer views count more);
    ``max_depth``: pixels deeper than this are left out (far depth is coarse and would spend blocks)."""

    voxel_size: float
    truncation: float = 4.0
    min_confidence: float = 0.3
    min_weight: float = 1.0
    max_blocks: int = 20000
    reference_depth: float | None = None
    max_depth: float | None = None

    def __post_init__(self) -> None:
        if not (np.isfinite(self.voxel_size) and self.voxel_size > 0):
            raise ValueError(f"voxel_size must be a positive finite number, got {self.voxel_size}")
        if self.truncation < 1.0:
            raise ValueError(f"truncation must be at least 1 voxel, got {self.truncation}")
        if self.max_blocks < 1:
            raise ValueError(f"max_blocks must be >= 1, got {self.max_blocks}")


@dataclass
class Mesh:
    """A triangle mesh: ``vertices`` ``(N, 3)`` float32 world coordinates, ``faces`` ``(M, 3)``
    int32 (counter-clockwise seen from the free side), ``colors`` ``(N, 3)`` uint8, ``normals``
    ``(N, 3)`` float32 unit vectors pointing to the free side (towards the cameras)."""

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray
    normals: np.ndarray

    @classmethod
    def empty(cls) -> Mesh:
        return cls(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32), np.zeros((0, 3), np.uint8),
                   np.zeros((0, 3), np.float32))


def _pack(keys: np.ndarray) -> np.ndarray:
    k = keys.astype(np.int64) + _OFF
    return (k[:, 0] << 42) | (k[:, 1] << 21) | k[:, 2]


def _unpack(packed: np.ndarray) -> np.ndarray:
    mask = (1 << 21) - 1
    return np.stack([(packed >> 42) & mask, (packed >> 21) & mask, packed & mask], axis=1) - _OFF


_LOCAL = np.stack(np.meshgrid(np.arange(BLOCK), np.arange(BLOCK), np.arange(BLOCK), indexing="ij"),
                  axis=-1).reshape(-1, 3)  # (512, 3): local voxel index of each slot, x-major


class TSDFVolume:
    """The sparse volume (see module docstring). Storage grows in chunks up to ``max_blocks``."""

    def __init__(self, settings: TSDFSettings) -> None:
        self.settings = settings
        self.voxel = float(settings.voxel_size)
        self.trunc = float(settings.truncation) * self.voxel
        self.slots: dict[int, int] = {}   # packed block key -> slot
        self.keys = np.zeros((0, 3), np.int64)
        self.tsdf = np.zeros(0, np.float32)
        self.weight = np.zeros(0, np.float32)
        self.color = np.zeros((0, 3), np.float16)
        self.cweight = np.zeros(0, np.float32)
        self.full = False
        self.frames = 0
        self._carve: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ storage
    @property
    def num_blocks(self) -> int:
        return len(self.slots)

    @property
    def nbytes(self) -> int:
        """Bytes held by the voxel arrays (capacity, not just the used part)."""
        return sum(a.nbytes for a in (self.keys, self.tsdf, self.weight, self.color, self.cweight))

    def _grow(self, needed: int) -> None:
        cap = self.keys.shape[0]
        if needed <= cap:
            return
        new = min(max(needed, 2 * cap, 256), self.settings.max_blocks)
        pad = new - cap
        self.keys = np.concatenate([self.keys, np.zeros((pad, 3), np.int64)])
        self.tsdf = np.concatenate([self.tsdf, np.ones(pad * _VPB, np.float32)])
        self.weight = np.concatenate([self.weight, np.zeros(pad * _VPB, np.float32)])
        self.color = np.concatenate([self.color, np.zeros((pad * _VPB, 3), np.float16)])
        self.cweight = np.concatenate([self.cweight, np.zeros(pad * _VPB, np.float32)])

    def _allocate(self, block_keys: np.ndarray) -> np.ndarray:
        """Slots of the unique ``block_keys`` ``(B, 3)``, adding new blocks while the cap allows
        (blocks beyond it are left out of the result)."""
        packed = _pack(block_keys)
        slots = np.fromiter((self.slots.get(int(p), -1) for p in packed), np.int64, len(packed))
        new = np.flatnonzero(slots < 0)
        if new.size:
            room = self.settings.max_blocks - len(self.slots)
            if new.size > room:
                if not self.full:
                    log.warning("scene: the volume reached its cap of %d blocks; surfaces seen after this "
                                "are left out", self.settings.max_blocks)
                self.full = True
                new = new[:max(room, 0)]
            first = len(self.slots)
            self._grow(first + new.size)
            for j, idx in enumerate(new):
                self.slots[int(packed[idx])] = first + j
            slots[new] = first + np.arange(new.size)
            self.keys[first:first + new.size] = block_keys[new]
        return slots[slots >= 0]

    # ------------------------------------------------------------------ fusion
    def _visible_blocks(self, depth: np.ndarray, valid: np.ndarray, K: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """Unique block keys ``(B, 3)`` crossed by the truncation bands of the ``valid`` pixels."""
        v, u = np.nonzero(valid)
        z = depth[v, u].astype(np.float64)
        rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(z)], axis=1) @ pose[:3, :3].T
        side = BLOCK * self.voxel
        steps = np.arange(-self.trunc, self.trunc + 1e-9, min(self.trunc, 0.5 * side))
        t = pose[:3, 3]
        keys = [_pack(np.floor((rays * (z + s)[:, None] + t) / side)) for s in steps]
        return _unpack(np.unique(np.concatenate(keys)))

    def _project(self, slots: np.ndarray | None, pts: np.ndarray | None, K: np.ndarray, pose: np.ndarray,
                 shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nearest pixel (flat row-major index) and z of the voxels of ``slots`` (all 512 each, in
        slot order) or of world points ``pts``; ``inside`` marks those in front and in the image."""
        R, t = pose[:3, :3].astype(np.float32), pose[:3, 3]
        if slots is not None:  # camera coordinates of block origins + those of the local offsets
            origin = ((self.keys[slots] * BLOCK * self.voxel - t) @ pose[:3, :3]).astype(np.float32).T
            offs = ((_LOCAL * self.voxel) @ pose[:3, :3]).astype(np.float32).T
            x, y, z = ((origin[k][:, None] + offs[k][None]).reshape(-1) for k in range(3))
        else:  # pts (3, N) float32: one contiguous array per axis (strided columns are many times slower)
            d = [pts[k] - np.float32(t[k]) for k in range(3)]
            x, y, z = (d[0] * R[0, k] + d[1] * R[1, k] + d[2] * R[2, k] for k in range(3))
        h, w = shape
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            inv = np.float32(1.0) / z
            uu = np.rint(x * inv * np.float32(K[0, 0]) + np.float32(K[0, 2]))
            vv = np.rint(y * inv * np.float32(K[1, 1]) + np.float32(K[1, 2]))
        inside = (z > 1e-6) & (uu >= 0) & (uu < w) & (vv >= 0) & (vv < h)
        pix = np.where(inside, vv * w + uu, 0).astype(np.intp)
        return pix, z, inside

    def _pixels(self, depth: np.ndarray, confidence: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        d = np.asarray(depth, np.float32)
        c = np.ones_like(d) if confidence is None else np.asarray(confidence, np.float32)
        valid = np.isfinite(d) & (d > 0) & (c >= self.settings.min_confidence)
        if self.settings.max_depth is not None:
            valid &= d <= self.settings.max_depth
        return np.where(valid, d, 0.0).astype(np.float32), np.where(valid, c, 0.0).astype(np.float32)

    def integrate(self, depth: np.ndarray, confidence: np.ndarray | None, image: np.ndarray | None,
                  K: np.ndarray, pose_c2w: np.ndarray) -> int:
        """Fuse one z-depth map ``(H, W)`` (0 = invalid) with its confidence ``(H, W)`` in [0, 1]
        (None = all 1), colours ``(H, W, 3)`` uint8 (None = grey), pinhole ``K`` for ``W x H`` and
        camera-to-world ``pose_c2w``. Returns the number of voxels updated."""
        K = np.asarray(K, np.float64)
        pose = np.asarray(pose_c2w, np.float64)
        d, c = self._pixels(depth, confidence)
        valid = d > 0
        if not valid.any():
            return 0
        slots = self._allocate(self._visible_blocks(d, valid, K, pose))
        if slots.size == 0:
            return 0
        self.frames += 1
        pix, z, inside = self._project(slots, None, K, pose, d.shape)
        obs = d.reshape(-1)[pix]
        sdf = obs - z
        keep = np.flatnonzero(inside & (obs > 0) & (sdf > -self.trunc))
        flat = (slots[:, None] * _VPB + np.arange(_VPB)[None]).reshape(-1)[keep]
        pk = pix[keep]
        sdf = sdf[keep]
        w_obs = c.reshape(-1)[pk]
        if self.settings.reference_depth is not None:
            w_obs = w_obs * np.square(np.float32(self.settings.reference_depth) / obs[keep])
        t_obs = np.minimum(sdf * np.float32(1.0 / self.trunc), np.float32(1.0))
        w_old = self.weight[flat]
        w_new = w_old + w_obs
        self.tsdf[flat] = (self.tsdf[flat] * w_old + t_obs * w_obs) / w_new
        self.weight[flat] = w_new
        near = sdf < self.trunc
        if image is not None and near.any():
            fn, wn = flat[near], w_obs[near]
            rgb = np.asarray(image).reshape(-1, 3)[pk[near]].astype(np.float32)
            cw_old = self.cweight[fn]
            cw_new = cw_old + wn
            self.color[fn] = ((self.color[fn].astype(np.float32) * cw_old[:, None] + rgb * wn[:, None])
                              / cw_new[:, None]).astype(np.float16)
            self.cweight[fn] = cw_new
        return int(flat.size)

    # ------------------------------------------------------------------ consistency
    def begin_carving(self) -> int:
        """Start the free-space test on the voxels within 1.5 voxels of a surface; returns how many are tested."""
        n = self.num_blocks * _VPB
        near = 1.5 / self.settings.truncation
        cand = np.flatnonzero((self.weight[:n] >= self.settings.min_weight) & (np.abs(self.tsdf[:n]) < near))
        slot, local = np.divmod(cand, _VPB)
        pts = np.ascontiguousarray(((self.keys[slot] * BLOCK + _LOCAL[local]) * self.voxel).astype(np.float32).T)
        self._carve = (cand, pts, np.zeros(cand.size, np.uint16), np.zeros(cand.size, np.uint16))
        return int(cand.size)

    def carve(self, depth: np.ndarray, confidence: np.ndarray | None, K: np.ndarray, pose_c2w: np.ndarray) -> None:
        """Count, for each tested voxel, whether this frame sees it on its surface (within the
        truncation of the observed depth) or sees through it (more than the truncation in front)."""
        if self._carve is None:
            raise RuntimeError("begin_carving() first")
        _, pts, seen, free = self._carve
        d, _ = self._pixels(depth, confidence)
        pix, z, inside = self._project(None, pts, np.asarray(K, np.float64), np.asarray(pose_c2w, np.float64),
                                       d.shape)
        obs = d.reshape(-1)[pix]
        ok = inside & (obs > 0)
        diff = obs - z
        seen += (ok & (np.abs(diff) <= self.trunc)).astype(np.uint16)
        free += (ok & (diff > self.trunc)).astype(np.uint16)

    def end_carving(self) -> int:
        """Clear the voxels more frames saw through than on a surface; returns how many."""
        if self._carve is None:
            return 0
        cand, _, seen, free = self._carve
        drop = cand[free > seen]
        self.weight[drop] = 0.0
        self._carve = None
        return int(drop.size)

    # ------------------------------------------------------------------ meshing
    def _neighbour_slots(self) -> np.ndarray:
        """``(B, 8)`` slot of the block at offset ``(dx, dy, dz)`` in {0, 1}^3 (index 4dx+2dy+dz), -1 if absent."""
        n = self.num_blocks
        out = np.full((n, 8), -1, np.int64)
        keys = self.keys[:n]
        for o in range(8):
            off = np.array([(o >> 2) & 1, (o >> 1) & 1, o & 1])
            if o == 0:
                out[:, 0] = np.arange(n)
                continue
            packed = _pack(keys + off)
            out[:, o] = np.fromiter((self.slots.get(int(p), -1) for p in packed), np.int64, n)
        return out

    def extract_mesh(self, *, batch: int = 512) -> Mesh:
        """The zero level set as a welded, coloured triangle mesh (see module docstring)."""
        from skimage.measure import marching_cubes

        n = self.num_blocks
        if n == 0:
            return Mesh.empty()
        nb = self._neighbour_slots()
        g = np.arange(BLOCK + 1)
        gi, gj, gk = np.meshgrid(g, g, g, indexing="ij")
        which = 4 * (gi // BLOCK) + 2 * (gj // BLOCK) + (gk // BLOCK)            # (9, 9, 9) neighbour id
        local = ((gi % BLOCK) * BLOCK + (gj % BLOCK)) * BLOCK + (gk % BLOCK)   # (9, 9, 9) voxel in it
        min_w = self.settings.min_weight
        verts, faces, cols = [], [], []
        offset = 0
        for start in range(0, n, batch):
            sl = np.arange(start, min(start + batch, n))
            src = nb[sl][:, which]                                   # (b, 9, 9, 9) slots
            present = src >= 0
            idx = np.where(present, src, 0) * _VPB + local[None]
            w = np.where(present, self.weight[idx], 0.0)
            obs = w >= min_w
            val = np.where(obs, self.tsdf[idx], 1.0)
            crossing = (np.where(obs, val, 1.0).reshape(len(sl), -1).min(1) < 0) & \
                       (np.where(obs, val, -1.0).reshape(len(sl), -1).max(1) > 0)
            for b in np.flatnonzero(crossing):
                vol = val[b]
                try:
                    v, f, _, _ = marching_cubes(vol, level=0.0, gradient_direction="ascent", allow_degenerate=False)
                except (ValueError, RuntimeError):
                    continue
                if len(f) == 0:
                    continue
                lo = np.floor(v).astype(np.intp)
                hi = np.minimum(np.ceil(v).astype(np.intp), BLOCK)
                ob, vb = obs[b], vol
                good = ob[lo[:, 0], lo[:, 1], lo[:, 2]] & ob[hi[:, 0], hi[:, 1], hi[:, 2]]
                good &= ~((np.abs(vb[lo[:, 0], lo[:, 1], lo[:, 2]]) >= 0.999)
                          & (np.abs(vb[hi[:, 0], hi[:, 1], hi[:, 2]]) >= 0.999))
                f = f[good[f].all(axis=1)]
                if len(f) == 0:
                    continue
                near = np.rint(v).astype(np.intp)
                vidx = idx[b][near[:, 0], near[:, 1], near[:, 2]]
                verts.append(v + self.keys[sl[b]] * BLOCK)
                cols.append(self.color[vidx].astype(np.float32))
                faces.append(f + offset)
                offset += len(v)
        if not faces:
            return Mesh.empty()
        return _weld(np.concatenate(verts), np.concatenate(faces), np.concatenate(cols), self.voxel)


def _weld(grid_verts: np.ndarray, faces: np.ndarray, colors: np.ndarray, voxel: float) -> Mesh:
    """Merge vertices at one position (in voxel units), drop unused ones and degenerate faces,
    and compute area-weighted vertex normals."""
    q = np.rint(grid_verts * 4096.0).astype(np.int64)
    uniq, first, inverse = np.unique(q, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    f = inverse[faces]
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]
    used, f_new = np.unique(f, return_inverse=True)
    f = f_new.reshape(-1, 3).astype(np.int32)
    verts = (grid_verts[first][used] * voxel).astype(np.float64)
    cols = colors[first][used]
    a, b, c = verts[f[:, 0]], verts[f[:, 1]], verts[f[:, 2]]
    fn = np.cross(b - a, c - a)
    normals = np.zeros_like(verts)
    for k in range(3):
        np.add.at(normals, f[:, k], fn)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.where(length > 0, normals / np.maximum(length, 1e-30), 0.0)
    return Mesh(vertices=verts.astype(np.float32), faces=f,
                colors=np.clip(np.rint(cols), 0, 255).astype(np.uint8), normals=normals.astype(np.float32))
