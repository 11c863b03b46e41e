"""The synthetic room: boxes and planes (:class:`Primitive`), their ray intersection, and
:func:`build_scene` (optionally a moving object and a textureless far wall).

World coordinates in metres; rotations are 3x3 matrices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..errors import InputError
from .textures import TextureAtlas, _TEX_SIZE, _texture_bank

__all__ = ["MOVERS", "Primitive", "Scene", "build_scene", "moving_object_centre"]

#: kinds of moving object: ``"box"`` (small, one-coloured, sliding in front of the objects) and
#: ``"person"`` (person-sized, 0.7 x 1.7 x 0.4 m, textured, standing on the floor and walking
#: across close to the camera: 15-20 % of the frame once it is in view)
MOVERS = ("box", "person")


#: room bounds (metres, world frame, y down)
ROOM_MIN = np.array([-4.0, -1.5, -3.0])


ROOM_MAX = np.array([4.0, 1.5, 3.0])


_EPS = 1e-9


@dataclass
class Primitive:
    """One solid of the scene.

    ``kind`` is ``"room"`` (seen from inside: an axis-aligned box whose faces are hit on
    the way out), ``"box"`` (oriented box: ``centre``, ``half`` extents, ``rotation`` =
    box-to-world 3x3) or ``"sphere"`` (``centre``, ``radius``). ``textures[f]`` is the
    texture index of face ``f`` (faces ``2 * axis + (side > 0)``; a sphere has face 0);
    ``tex_offset`` shifts texture coordinates (metres) so faces do not repeat;
    ``tex_scale`` is the size in metres one texture tile covers; ``dynamic`` marks the
    moving object.
    """

    kind: Literal["room", "box", "sphere"]
    centre: np.ndarray
    half: np.ndarray = field(default_factory=lambda: np.zeros(3))
    radius: float = 0.0
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    textures: tuple[int, ...] = (0,)
    tex_offset: np.ndarray = field(default_factory=lambda: np.zeros((6, 2)))
    tex_scale: float = 2.0
    dynamic: bool = False
    name: str = ""

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """Signed distance (metres) of world ``points`` ``(N, 3)`` to this surface.

        Negative inside the solid (for the room: negative inside the room's free space).
        Used by tests to check that unprojected depth lies on the geometry.
        """
        p = (np.asarray(points, dtype=np.float64) - self.centre) @ self.rotation
        if self.kind == "sphere":
            return np.linalg.norm(p, axis=1) - self.radius
        q = np.abs(p) - self.half
        outside = np.linalg.norm(np.maximum(q, 0.0), axis=1)
        inside = np.minimum(q.max(axis=1), 0.0)
        d = outside + inside
        return -d if self.kind == "room" else d


@dataclass
class Scene:
    """Primitives plus textures (a :class:`TextureAtlas`, RGB in [0, 1]) and a static point light."""

    primitives: list[Primitive]
    textures: TextureAtlas
    light: np.ndarray = field(default_factory=lambda: np.array([0.5, -1.2, -0.5]))
    flat_faces: frozenset[tuple[int, int]] = frozenset()   # (primitive, face) drawn untextured
    flat_colour: np.ndarray = field(default_factory=lambda: np.array([0.80, 0.76, 0.70], dtype=np.float32))

    # -- geometry ---------------------------------------------------------------------
    def raycast(self, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """First hit of rays ``origin + t * dirs`` (``origin`` (3,), ``dirs`` (N, 3), any length).

        Returns ``t`` (N,) in units of ``dirs`` (with camera rays whose z component is 1 in
        camera coordinates, ``t`` is the z-depth), the primitive index and face index (N,).
        """
        o = np.asarray(origin, dtype=np.float64)
        d = np.asarray(dirs, dtype=np.float64)
        n = d.shape[0]
        dd = np.einsum("ij,ij->i", d, d)
        best_t = np.full(n, np.inf)
        best_p = np.full(n, -1, dtype=np.int32)
        best_f = np.zeros(n, dtype=np.int8)
        for k, prim in enumerate(self.primitives):
            idx, t, face = _intersect(prim, o, d, dd)
            tb = best_t if idx is None else best_t[idx]
            closer = t < tb
            rows = np.flatnonzero(closer) if idx is None else idx[closer]
            best_t[rows] = t[closer]
            best_p[rows] = k
            best_f[rows] = face[closer]
        if np.any(best_p < 0):  # pragma: no cover - the room is closed
            raise InputError("synthetic scene: a ray left the room (camera outside the room?)")
        return best_t, best_p, best_f

    # -- appearance -------------------------------------------------------------------
    def shade(self, origin: np.ndarray, dirs: np.ndarray, t: np.ndarray, prim: np.ndarray,
              face: np.ndarray, pixel_footprint: np.ndarray) -> np.ndarray:
        """RGB (N, 3) float32 in [0, 1] of the hits; ``pixel_footprint`` (N,) is the size (metres)
        a sample covers on a fronto-parallel surface at the hit (selects the mip level)."""
        n = dirs.shape[0]
        pts = origin[None, :] + t[:, None] * dirs
        uv = np.empty((n, 2))
        normal = np.empty((n, 3))
        tex_ids = np.empty(n, dtype=np.int64)
        texel = np.empty(n)
        for k, p in enumerate(self.primitives):
            sel = np.flatnonzero(prim == k)
            if sel.size == 0:
                continue
            local = (pts[sel] - p.centre) @ p.rotation
            faces = face[sel]
            if p.kind == "sphere":
                nl = local / p.radius
                uv[sel, 0] = p.radius * np.arctan2(nl[:, 0], -nl[:, 2]) + p.tex_offset[0, 0]
                uv[sel, 1] = p.radius * np.arccos(np.clip(nl[:, 1], -1.0, 1.0)) + p.tex_offset[0, 1]
                tex_ids[sel] = p.textures[0]
            else:
                axis = faces.astype(np.int64) // 2
                side = np.where(faces % 2 == 1, 1.0, -1.0)
                rows = np.arange(sel.size)
                nl = np.zeros_like(local)
                nl[rows, axis] = side * (-1.0 if p.kind == "room" else 1.0)
                a1 = np.where(axis == 0, 2, 0)         # two tangent axes of each face
                a2 = np.where(axis == 1, 2, 1)
                uv[sel, 0] = local[rows, a1] + p.half[a1] + p.tex_offset[faces, 0]
                uv[sel, 1] = local[rows, a2] + p.half[a2] + p.tex_offset[faces, 1]
                ids = np.asarray(p.textures)[faces]
                for pk, fk in self.flat_faces:
                    if pk == k:
                        ids = np.where(faces == fk, -1, ids)
                tex_ids[sel] = ids
            normal[sel] = nl @ p.rotation.T
            texel[sel] = p.tex_scale / _TEX_SIZE
        cos_view = np.abs(np.einsum("ij,ij->i", normal, dirs)) / np.sqrt(np.einsum("ij,ij->i", dirs, dirs))
        stretch = 1.0 / np.clip(cos_view, 0.25, 1.0)
        lod = np.log2(np.maximum(pixel_footprint * stretch / texel, 1.0))
        flat = tex_ids < 0
        colour = self.textures.sample(np.maximum(tex_ids, 0), uv / texel[:, None], lod)
        if flat.any():
            # weakly textured: one colour and a faint smooth gradient (nothing to match)
            q = pts[flat]
            grad = 1.0 + 0.03 * np.sin(0.6 * q[:, 0]) * np.cos(0.5 * q[:, 1])
            colour[flat] = self.flat_colour[None, :] * grad[:, None].astype(np.float32)
        # static Lambertian light: ambient + diffuse from a point light (view independent)
        to_light = self.light[None, :] - pts
        dist = np.sqrt(np.einsum("ij,ij->i", to_light, to_light))
        lam = np.clip(np.einsum("ij,ij->i", normal, to_light) / dist, 0.0, 1.0)
        shade = 0.55 + 0.45 * lam * np.clip(3.0 / (1.0 + 0.15 * dist), 0.0, 1.0)
        return colour * shade[:, None].astype(np.float32)


def _safe(d: np.ndarray) -> np.ndarray:
    """Direction components with exact zeros replaced by a tiny value (slab tests)."""
    return np.where(d == 0.0, 1e-300, d)


def _intersect(prim: Primitive, o: np.ndarray, d: np.ndarray,
               dd: np.ndarray) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """First hits of rays ``o + t d`` with one primitive.

    Returns ``(idx, t, face)``: ``idx`` the ray indices tested (``None`` = all rays),
    ``t`` their hit parameter (``inf`` = miss) and face index. Boxes and spheres are
    culled with their bounding sphere first (exact arithmetic is unchanged).
    """
    if prim.kind == "room":
        lo = prim.centre - prim.half
        hi = prim.centre + prim.half
        ds = _safe(d)
        tfar = (np.where(ds > 0, hi, lo) - o) / ds
        axis = np.argmin(tfar, axis=1)
        rows = np.arange(d.shape[0])
        t = tfar[rows, axis]
        side = ds[rows, axis] > 0
        return None, t, (2 * axis + side).astype(np.int8)
    radius = prim.radius if prim.kind == "sphere" else float(np.linalg.norm(prim.half))
    oc = o - prim.centre
    b = d @ oc
    c = float(oc @ oc) - radius ** 2
    disc = b * b - dd * c
    cand = disc >= 0.0
    cand &= (-b + np.sqrt(np.maximum(disc, 0.0))) > 0.0        # sphere not entirely behind
    idx = np.flatnonzero(cand)
    if prim.kind == "sphere":
        t0 = (-b[idx] - np.sqrt(disc[idx])) / dd[idx]
        t = np.where(t0 > _EPS, t0, np.inf)
        return idx, t, np.zeros(idx.size, dtype=np.int8)
    R = prim.rotation
    ol = R.T @ oc
    dl = _safe(d[idx] @ R)
    inv = 1.0 / dl
    t1 = (-prim.half - ol) * inv
    t2 = (prim.half - ol) * inv
    tmin = np.minimum(t1, t2)
    tmax = np.maximum(t1, t2)
    axis = np.argmax(tmin, axis=1)
    rows = np.arange(idx.size)
    tnear = tmin[rows, axis]
    tfar = tmax.min(axis=1)
    hit = (tnear <= tfar) & (tnear > _EPS)
    side = dl[rows, axis] < 0          # moving towards -axis: entering through the +side face
    return idx, np.where(hit, tnear, np.inf), (2 * axis + side).astype(np.int8)


def _rot_y(deg: float) -> np.ndarray:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_x(deg: float) -> np.ndarray:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_z(deg: float) -> np.ndarray:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def moving_object_centre(frame: int, num_frames: int, kind: str = "box") -> np.ndarray:
    """World centre of the moving object of ``kind`` (:data:`MOVERS`) in ``frame``: both move
    along x at a constant speed over the clip, the box in front of the objects, the person
    nearer the camera."""
    s = frame / max(num_frames - 1, 1)
    if kind == "person":
        return np.array([-1.4 + 2.8 * s, 0.65, -0.5])
    return np.array([-1.6 + 3.2 * s, 1.15, -0.35])


def build_scene(*, moving_object: bool = False, textureless_wall: bool = False, seed: int = 0,
                mover: str = "box") -> Scene:
    """The room and its objects (see module docstring); ``seed`` shifts texture placement.

    The moving object (when asked for; ``mover`` is its kind, one of :data:`MOVERS`) is the
    last primitive; :func:`render_clip` sets its ``centre`` to :func:`moving_object_centre`
    before rendering each frame.
    """
    if mover not in MOVERS:
        raise InputError(f"unknown moving object '{mover}': choose one of {', '.join(MOVERS)}")
    rng = np.random.default_rng(seed)
    bank = _texture_bank()

    def offsets() -> np.ndarray:
        return rng.uniform(0.0, 4.0, size=(6, 2))

    room_min, room_max = ROOM_MIN, ROOM_MAX
    # faces: 0 = x-, 1 = x+, 2 = y- (ceiling), 3 = y+ (floor), 4 = z- (behind), 5 = z+ (far wall)
    # texture indices follow _PHOTOS: 0 astronaut 1 coffee 2 rocket 3 chelsea 4 immuno 5 motorcycle
    # 6 gravel 7 brick 8 grass 9 camera
    room = Primitive("room", (room_min + room_max) / 2, half=(room_max - room_min) / 2,
                     textures=(1, 2, 9, 6, 5, 0), tex_offset=offsets(), tex_scale=2.5, name="room")
    prims = [
        room,
        Primitive("box", np.array([-2.0, 0.9, 1.5]), half=np.array([0.6, 0.6, 0.6]),
                  textures=(3,) * 6, tex_offset=offsets(), tex_scale=1.2, name="crate"),
        Primitive("box", np.array([-2.0, 0.1, 1.5]), half=np.array([0.2, 0.2, 0.2]), rotation=_rot_y(25.0),
                  textures=(4,) * 6, tex_offset=offsets(), tex_scale=0.8, name="small box"),
        Primitive("box", np.array([1.6, 0.7, 1.0]), half=np.array([0.5, 0.8, 0.4]), rotation=_rot_y(35.0),
                  textures=(7,) * 6, tex_offset=offsets(), tex_scale=1.2, name="cabinet"),
        Primitive("box", np.array([-0.6, 0.0, 2.3]), half=np.array([0.25, 1.5, 0.25]), rotation=_rot_y(15.0),
                  textures=(4,) * 6, tex_offset=offsets(), tex_scale=1.0, name="column"),
        Primitive("sphere", np.array([0.4, 1.05, 0.6]), radius=0.45, rotation=_rot_x(20.0),
                  textures=(8,), tex_offset=offsets(), tex_scale=0.9, name="ball"),
        Primitive("sphere", np.array([2.4, -0.5, 2.2]), radius=0.5, rotation=_rot_z(30.0),
                  textures=(1,), tex_offset=offsets(), tex_scale=1.0, name="floating ball"),
    ]
    if moving_object and mover == "person":
        prims.append(Primitive("box", moving_object_centre(0, 2, mover), half=np.array([0.35, 0.85, 0.2]),
                               rotation=_rot_y(10.0), textures=(3,) * 6, tex_offset=offsets(),
                               tex_scale=0.8, dynamic=True, name="walking person"))
    elif moving_object:
        prims.append(Primitive("box", moving_object_centre(0, 2), half=np.array([0.3, 0.35, 0.2]),
                               rotation=_rot_y(10.0), textures=(2,) * 6, tex_offset=offsets(),
                               tex_scale=0.9, dynamic=True, name="moving box"))
    flat: frozenset[tuple[int, int]] = frozenset()
    if textureless_wall:
        flat = frozenset({(0, 5)})
    return Scene(primitives=prims, textures=bank, flat_faces=flat)
