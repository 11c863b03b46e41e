"""``steadydepth view``: a 4D viewer of a run in the browser, built on viser.

viser ships its web client inside its Python package (nothing is fetched from a CDN) and
talks to it over a websocket on the same port. The scene uses the run's world frame
(OpenCV axes: y down, so the viewer's up direction is ``-y``). It shows the current frame's
coloured points (:class:`~steadydepth.viewer.run_data.RunData`), its camera frustum with the
image on it, a few frustums along the path and the camera path itself, and the fused scene
(``scene.glb`` / ``scene.ply`` / ``scene_points.ply``) when the run has one. The side panel
holds the time slider, play/pause, point size, colour by image or depth, the toggles, and
the frame's image and depth.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import logging
import threading
import time
from pathlib import Path

import numpy as np

from ..errors import InputError, require
from .run_data import RunData

__all__ = ["ViewerApp", "is_loopback", "open_viewer"]

log = logging.getLogger(__name__)

#: frustums drawn along the camera path (besides the current frame's)
PATH_FRUSTUMS = 12
#: width in pixels of the image and depth shown in the side panel
PANEL_WIDTH = 288


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host(host: str, what: str) -> None:
    """Log a warning when ``host`` exposes ``what`` beyond this machine."""
    if not is_loopback(host):
        log.warning("%s listens on %s: anyone who can reach this machine on that address can open it "
                    "(it has no login); the default 127.0.0.1 keeps it to this machine", what, host)


@contextlib.contextmanager
def _quiet():
    """Send what a library prints to stdout to the debug log instead."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        if buffer.getvalue().strip():
            log.debug("viser: %s", buffer.getvalue().strip())


def _undo_root_rotation(glb: bytes) -> tuple[float, float, float, float]:
    """The inverse (w, x, y, z) of the rotation of a GLB's single root node (identity when it has none)."""
    import json
    import struct

    try:
        magic, _version, _length, chunk_len, chunk_type = struct.unpack("<4sIIII", glb[:20])
        if magic != b"glTF" or chunk_type != 0x4E4F534A:  # "JSON"
            return (1.0, 0.0, 0.0, 0.0)
        doc = json.loads(glb[20:20 + chunk_len])
        roots = doc["scenes"][doc.get("scene", 0)]["nodes"]
        x, y, z, w = doc["nodes"][roots[0]].get("rotation", (0.0, 0.0, 0.0, 1.0)) if len(roots) == 1 else (0, 0, 0, 1)
    except (struct.error, ValueError, KeyError, IndexError, TypeError):
        return (1.0, 0.0, 0.0, 0.0)
    return (float(w), -float(x), -float(y), -float(z))


def _wxyz(R: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) of a rotation matrix."""
    import viser.transforms as vtf

    return vtf.SO3.from_matrix(np.asarray(R, dtype=np.float64)).wxyz


def _panel(image: np.ndarray, width: int = PANEL_WIDTH) -> np.ndarray:
    """``image`` resized to the side panel's width (nearest neighbour when enlarged: pixels stay visible)."""
    import cv2

    h, w = image.shape[:2]
    if w == width:
        return image
    height = max(1, round(h * width / w))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_NEAREST if width > w else cv2.INTER_AREA)


class ViewerApp:
    """A running viewer of one run (the server runs in background threads).

    ``url`` is where to open it; :meth:`close` stops it. ``max_points`` bounds the points
    per frame, ``max_frames`` the frames kept for playback (see :class:`RunData`).
    """

    def __init__(self, run: RunData, *, host: str = "127.0.0.1", port: int = 8080) -> None:
        viser = require("viser", "viewer", "steadydepth view")
        check_host(host, "the viewer")
        self.run = run
        self._lock = threading.RLock()
        self._playing = threading.Event()
        self._stop = threading.Event()
        if logging.getLogger("websockets").level == logging.NOTSET:  # its connection lines are not ours to show
            logging.getLogger("websockets").setLevel(logging.WARNING)
        with _quiet():  # viser prints a banner with rich whatever ``verbose`` says; the CLI prints the URL
            self.server = viser.ViserServer(host=host, port=port, label="steadydepth", verbose=False)
        if port and self.server.get_port() != port:
            log.warning("port %d is busy; the viewer uses port %d", port, self.server.get_port())
        self.host = host
        self._build_scene()
        self._build_gui()
        self.show(0)
        self._player = threading.Thread(target=self._play_loop, name="steadydepth-viewer-play", daemon=True)
        self._player.start()

    @property
    def port(self) -> int:
        return self.server.get_port()

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}/"

    # -- scene ------------------------------------------------------------------------
    def _build_scene(self) -> None:
        run, scene = self.run, self.server.scene
        scene.set_up_direction("-y")
        self.scale = run.scene_scale()
        w, h = run.size
        intr = run.intrinsics
        self.fov = float(2.0 * np.arctan2(h / 2.0, intr.fy))
        self.aspect = w / h
        self.frustum_scale = 0.08 * self.scale
        # a pixel's footprint at the typical depth, times the stride: points touch without overlapping much
        self.base_point_size = float(self.scale * run.stride / intr.fx)
        self.camera_nodes: list = []  # the path and the frustums along it (one toggle)
        centres = run.camera_centres()
        if len(centres) >= 2:
            segments = np.stack([centres[:-1], centres[1:]], axis=1).astype(np.float32)
            self.camera_nodes.append(scene.add_line_segments("/path", segments, colors=(230, 80, 20), thickness=2.0, thickness_units="screen"))
        posed = [p for p in run.shown if run.poses[p] is not None]
        for k, position in enumerate(posed[:: max(1, len(posed) // PATH_FRUSTUMS)]):
            pose = run.poses[position]
            self.camera_nodes.append(scene.add_camera_frustum(f"/cameras/{k:03d}", fov=self.fov, aspect=self.aspect,
                                     scale=0.5 * self.frustum_scale, color=(120, 120, 120), thickness=1.0,
                                     thickness_units="screen", wxyz=_wxyz(pose[:3, :3]), position=pose[:3, 3]))
        self.frustum = scene.add_camera_frustum("/current", fov=self.fov, aspect=self.aspect, scale=self.frustum_scale,
                                                color=(20, 110, 230), thickness=2.0, thickness_units="screen")
        self.cloud = scene.add_point_cloud("/points", np.zeros((1, 3), np.float32), np.zeros((1, 3), np.uint8),
                                           point_size=self.base_point_size, point_shape="square",
                                           precision="float32", point_shading="flat")
        self.fused = self._add_fused_scene()
        first = next((run.poses[p] for p in run.shown if run.poses[p] is not None), None)
        if first is not None:  # start behind the first camera, looking where it looks
            forward, down = first[:3, 2], first[:3, 1]
            self.server.initial_camera.position = first[:3, 3] - 0.3 * self.scale * forward - 0.1 * self.scale * down
            self.server.initial_camera.look_at = first[:3, 3] + self.scale * forward
            self.server.initial_camera.up = -down

    def _add_fused_scene(self):
        """The fused scene, hidden at first: the GLB mesh, else the PLY mesh, else the fused points."""
        files = self.run.scene_files()
        scene = self.server.scene
        try:
            if "scene.glb" in files:
                data = files["scene.glb"].read_bytes()
                # glTF is y-up: a GLB made from the run's OpenCV world turns it with its root node's rotation;
                # the viewer's world is the run's own, so that turn is undone here
                return scene.add_glb("/scene", data, wxyz=_undo_root_rotation(data), visible=False,
                                     cast_shadow=False, receive_shadow=False)
            if "scene.ply" in files:
                trimesh = require("trimesh", "viewer", "showing scene.ply")
                mesh = trimesh.load(files["scene.ply"], force="mesh")
                if len(getattr(mesh, "faces", [])):
                    return scene.add_mesh_trimesh("/scene", mesh, visible=False, cast_shadow=False, receive_shadow=False)
            if "scene_points.ply" in files:
                from ..io.ply import read_ply

                pts, colors = read_ply(files["scene_points.ply"])
                if len(pts) > 2_000_000:  # keep the browser responsive
                    pts, colors = pts[:: len(pts) // 2_000_000 + 1], None if colors is None else colors[:: len(pts) // 2_000_000 + 1]
                return scene.add_point_cloud("/scene", pts, colors if colors is not None else (160, 160, 160),
                                             point_size=self.base_point_size, point_shading="flat", visible=False)
        except (OSError, ValueError, InputError) as exc:
            log.warning("%s: the fused scene cannot be shown (%s)", self.run.folder, exc)
        return None

    # -- GUI --------------------------------------------------------------------------
    def _build_gui(self) -> None:
        gui, run = self.server.gui, self.run
        gui.add_markdown(f"**{run.folder.name}**: {run.num_frames} frames, {run.units} units")
        last = max(0, len(run.shown) - 1)
        self.slider = gui.add_slider("frame", min=0, max=max(1, last), step=1, initial_value=0, disabled=last == 0)
        self.play = gui.add_button("play")
        self.fps = gui.add_slider("playback fps", min=1, max=60, step=1, initial_value=int(min(60, max(1, round(run.fps)))))
        self.point_size = gui.add_slider("point size", min=0.25, max=8.0, step=0.25, initial_value=1.0)
        self.color_by = gui.add_dropdown("colour by", ("image", "depth") if run.has_images else ("depth",),
                                         initial_value="image" if run.has_images else "depth")
        self.show_points = gui.add_checkbox("frame points", initial_value=True)
        self.show_cameras = gui.add_checkbox("cameras and path", initial_value=True)
        self.show_scene = gui.add_checkbox("fused scene", initial_value=False, disabled=self.fused is None,
                                           hint=None if self.fused is not None else "this run has no scene.glb / scene.ply")
        self.info = gui.add_markdown("")
        blank = _panel(np.zeros((*run.grid_size[::-1], 3), np.uint8))
        self.image_panel = gui.add_image(blank, label="image", format="jpeg")
        self.depth_panel = gui.add_image(blank, label="depth", format="jpeg")

        @self.slider.on_update
        def _(_event) -> None:
            self.show(int(self.slider.value))

        @self.play.on_click
        def _(_event) -> None:
            self.set_playing(not self._playing.is_set())

        @self.point_size.on_update
        def _(_event) -> None:
            self.cloud.point_size = self.base_point_size * float(self.point_size.value)
            if self.fused is not None and hasattr(self.fused, "point_size"):
                self.fused.point_size = self.base_point_size * float(self.point_size.value)

        @self.color_by.on_update
        def _(_event) -> None:
            self.show(int(self.slider.value))

        @self.show_points.on_update
        def _(_event) -> None:
            self.cloud.visible = bool(self.show_points.value)

        @self.show_cameras.on_update
        def _(_event) -> None:
            for node in (*self.camera_nodes, self.frustum):
                node.visible = bool(self.show_cameras.value)

        @self.show_scene.on_update
        def _(_event) -> None:
            if self.fused is not None:
                self.fused.visible = bool(self.show_scene.value)

    def set_playing(self, playing: bool) -> None:
        if playing:
            self._playing.set()
            self.play.label = "pause"
        else:
            self._playing.clear()
            self.play.label = "play"

    def _play_loop(self) -> None:
        while not self._stop.is_set():
            if not self._playing.wait(0.2):
                continue
            started = time.perf_counter()
            last = len(self.run.shown) - 1
            self.slider.value = 0 if int(self.slider.value) >= last else int(self.slider.value) + 1  # on_update shows it
            delay = 1.0 / max(1.0, float(self.fps.value)) - (time.perf_counter() - started)
            self._stop.wait(max(0.0, delay))

    # -- one frame --------------------------------------------------------------------
    def show(self, index: int) -> None:
        """Show the ``index``-th shown frame (position ``run.shown[index]`` of the run)."""
        run = self.run
        index = int(np.clip(index, 0, len(run.shown) - 1))
        position = run.shown[index]
        with self._lock:
            frame = run.points(position, str(self.color_by.value))
            depth = run.depth(position)
            image = run.image(position)
            depth_rgb = run.depth_rgb(position, depth)
            pose = run.poses[position]
            with self.server.atomic():
                if frame is not None and len(frame.points):
                    self.cloud.points = frame.points
                    self.cloud.colors = frame.colors
                    self.cloud.visible = bool(self.show_points.value)
                else:
                    self.cloud.visible = False
                if pose is not None:
                    self.frustum.wxyz = _wxyz(pose[:3, :3])
                    self.frustum.position = pose[:3, 3]
                    self.frustum.image = image if image is not None else depth_rgb
                self.image_panel.image = _panel(image if image is not None else depth_rgb)
                self.depth_panel.image = _panel(depth_rgb)
                valid = float((np.isfinite(depth) & (depth > 0)).mean())
                self.info.content = (f"frame {position} of {run.num_frames} · {0 if frame is None else len(frame.points)} "
                                     f"points · {100 * valid:.0f} % valid depth" + ("" if pose is not None else " · no pose"))
        self.current = index

    def close(self) -> None:
        self._stop.set()
        self._playing.set()
        self._player.join(timeout=2.0)
        with _quiet():
            self.server.stop()


def open_viewer(folder: str | Path, *, host: str = "127.0.0.1", port: int = 8080, max_points: int = 40_000,
                max_frames: int = 600) -> ViewerApp:
    """Open the run in ``folder`` and start its viewer (returns at once; :meth:`ViewerApp.close` stops it).

    Raises :class:`~steadydepth.errors.InputError` when the folder is not a run and
    :class:`~steadydepth.errors.DependencyError` when viser is not installed.
    """
    require("viser", "viewer", "steadydepth view")
    run = RunData(folder, max_points=max_points, max_frames=max_frames)
    return ViewerApp(run, host=host, port=port)
