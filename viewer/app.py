"""The viewer: one viser server showing a scene, its cameras and controls, for a run or a file.

:class:`Viewer` owns the server, the shared GUI (how to draw, render mode, resolution, the
camera-path recorder, the clicked training photo) and one :class:`ClientRenderLoop` per browser.
The scene it draws is a :class:`SplatView` snapshot that can be replaced at any time (a fit
publishes new ones); :func:`view` opens a run directory, a 3DGS ``.ply`` or a mesh and serves it
until Ctrl-C (``recon view``).

Two ways to draw the model, chosen in the GUI:

* "recon render" (the default): recon renders on the server (view-dependent colour, the render
  modes RGB / depth / normal / alpha) and streams JPEGs, coarse while the camera moves;
* "browser": the browser draws it itself (DC colour only; viser's WebGL splats for Gaussians,
  each convex's hull mesh for convexes) for fast orbiting on slow servers.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from recon.cameras import Camera, Similarity
from recon.viewer.paths import CameraPath, CameraPathError, Keyframe, scene_up
from recon.viewer.render_loop import ClientRenderLoop, RenderSettings
from recon.viewer.scene import add_mesh, add_model, add_training_cameras, camera_scale, thumbnail
from recon.viewer.server import (DEFAULT_HOST, DEFAULT_PORT, ViewerError, start_server,
                                 wait_for_interrupt)
from recon.viewer.views import RENDER_MODES, SplatView

DRAW_SERVER = "recon render"
DRAW_BROWSER = "browser"
MESH_SUFFIXES = (".ply", ".obj", ".glb", ".gltf", ".stl", ".off")


class Viewer:
    """A running viewer. ``Viewer.start(host, port)`` prints the URL; :meth:`close` stops it."""

    def __init__(self, started, paths_dir: Path | None = None) -> None:
        self.server = started.server
        self.url = started.url
        self.port = started.port
        self.settings = RenderSettings()
        self.paths_dir = Path(paths_dir) if paths_dir is not None else Path("camera_paths")
        self._view: SplatView | None = None
        self._view_lock = threading.Lock()
        self._splat_handle = None
        self._browser_stale = False
        self._loops: dict[int, ClientRenderLoop] = {}
        self._loops_lock = threading.Lock()
        self._cameras: list[Camera] = []
        self._photos = None
        self._keyframes: list[Keyframe] = []
        self._home: tuple[np.ndarray, np.ndarray, float | None] | None = None
        self._build_gui()
        self.server.on_client_connect(self._connected)
        self.server.on_client_disconnect(self._disconnected)

    @staticmethod
    def start(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, paths_dir: Path | None = None,
              quiet: bool = False) -> Viewer:
        return Viewer(start_server(host, port, quiet=quiet), paths_dir=paths_dir)

    def close(self) -> None:
        with self._loops_lock:
            for loop in self._loops.values():
                loop.stop()
            self._loops.clear()
        self.server.stop()

    # -- what is shown ------------------------------------------------------------------------

    def set_view(self, view: SplatView) -> None:
        """Show ``view`` (a snapshot: the caller must not change its tensors afterwards)."""
        with self._view_lock:
            self._view = view
        self._browser_stale = True  # sent when the browser draws them (they are large)
        if self.draw_mode.value == DRAW_BROWSER:
            self._refresh_browser_splats()
        for loop in self.client_loops():
            loop.request_frame()

    def show_cameras(self, cameras: list[Camera], photos) -> None:
        """Training cameras as frustums; ``photos(i)`` is photo i (uint8 [H, W, C])."""
        self._cameras, self._photos = list(cameras), photos
        add_training_cameras(self.server.scene, self._cameras, photos, self.go_to_camera,
                             scale=camera_scale(self._cameras))
        up = scene_up(self._cameras)
        self.server.scene.set_up_direction(tuple(float(v) for v in up))
        # Start farther out and higher than the first training camera, looking at the scene
        # centre with its field of view: its frustum then sits below the view, not across it.
        first = Keyframe.from_camera(self._cameras[0])
        target = _look_at_point(self._cameras)
        offset = first.position - target
        self.set_home(target + 1.4 * offset + 0.6 * np.linalg.norm(offset) * up, target,
                      first.fov)

    def set_home(self, position: np.ndarray, look_at: np.ndarray, fov: float | None = None) -> None:
        """Where each browser's camera starts. It is also set on every client as it connects:
        the browser applies viser's initial camera without reporting it back, so the server
        would otherwise render the view it had before."""
        self._home = (np.asarray(position, float), np.asarray(look_at, float), fov)
        self.server.initial_camera.position = tuple(float(v) for v in position)
        self.server.initial_camera.look_at = tuple(float(v) for v in look_at)
        if fov is not None:
            self.server.initial_camera.fov = fov

    def show_mesh(self, path: Path, transform: Similarity | None = None) -> None:
        add_mesh(self.server.scene, path, transform, name=f"/meshes/{Path(path).stem}")

    def client_loops(self) -> list[ClientRenderLoop]:
        with self._loops_lock:
            return list(self._loops.values())

    @property
    def num_clients(self) -> int:
        return len(self._loops)

    def render(self, camera: Camera, mode: str) -> np.ndarray | None:
        """The current view rendered by recon (None before there is one)."""
        with self._view_lock:
            view = self._view
        return None if view is None else view.render(camera, mode)

    # -- clients ------------------------------------------------------------------------------

    def _connected(self, client) -> None:
        if self._home is not None:
            position, look_at, fov = self._home
            with client.atomic():
                if fov is not None:
                    client.camera.fov = fov
                client.camera.position = position
                client.camera.look_at = look_at
        loop = ClientRenderLoop(client, self.render, self.settings)
        with self._loops_lock:
            self._loops[client.client_id] = loop

    def _disconnected(self, client) -> None:
        with self._loops_lock:
            loop = self._loops.pop(client.client_id, None)
        if loop is not None:
            loop.stop()

    def go_to_camera(self, index: int, client) -> None:
        """Move the clicked client's view onto training camera ``index`` and show its photo."""
        key = Keyframe.from_camera(self._cameras[index])
        with client.atomic():
            client.camera.fov = key.fov
            client.camera.wxyz = key.wxyz
            client.camera.position = key.position
        self.photo.image = thumbnail(self._photos(index), size=512)
        self.photo.label = f"Training photo {index}"
        self.photo.visible = True

    # -- GUI ----------------------------------------------------------------------------------

    def _build_gui(self) -> None:
        gui = self.server.gui
        with gui.add_folder("View"):
            self.draw_mode = gui.add_dropdown("Draw", (DRAW_SERVER, DRAW_BROWSER),
                                              initial_value=DRAW_SERVER,
                                              hint="recon render: exact colours and render modes, "
                                                   "rendered here; browser: fast orbiting")
            self.render_mode = gui.add_dropdown("Render mode", RENDER_MODES, initial_value="rgb")
            self.max_side = gui.add_slider("Max resolution", 128, 2048, 64, 1024)
        self.draw_mode.on_update(lambda _: self._draw_mode_changed())
        self.render_mode.on_update(lambda _: self._settings_changed())
        self.max_side.on_update(lambda _: self._settings_changed())
        self.photo = gui.add_image(np.full((8, 8, 3), 255, np.uint8), label="Training photo",
                                   visible=False)
        with gui.add_folder("Camera path", expand_by_default=False):
            self.add_key = gui.add_button("Add keyframe (this view)")
            self.clear_keys = gui.add_button("Clear keyframes")
            self.path_loop = gui.add_checkbox("Loop", False)
            self.path_fps = gui.add_number("FPS", 30, min=1, max=120, step=1)
            self.path_seconds = gui.add_number("Seconds", 4.0, min=0.1, max=600.0, step=0.1)
            self.path_name = gui.add_text("File name", "path.json")
            self.save_path = gui.add_button("Save camera path")
            self.path_status = gui.add_markdown("0 keyframes")
        self.add_key.on_click(lambda event: self.add_keyframe(event.client))
        self.clear_keys.on_click(lambda _: self.clear_keyframes())
        self.save_path.on_click(lambda _: self.save_camera_path())

    def _draw_mode_changed(self) -> None:
        self.settings.enabled = self.draw_mode.value == DRAW_SERVER
        if not self.settings.enabled:
            self._refresh_browser_splats()
        if self._splat_handle is not None:
            self._splat_handle.visible = not self.settings.enabled
        for loop in self.client_loops():
            loop.request_frame()

    def _settings_changed(self) -> None:
        self.settings.mode = self.render_mode.value
        self.settings.max_side = int(self.max_side.value)
        for loop in self.client_loops():
            loop.request_frame()

    def _refresh_browser_splats(self) -> None:
        with self._view_lock:
            view = self._view
        if view is None or not self._browser_stale:
            return
        self._browser_stale = False
        self._splat_handle = add_model(self.server.scene, view,
                                        visible=self.draw_mode.value == DRAW_BROWSER)

    # -- camera path recorder -----------------------------------------------------------------

    def add_keyframe(self, client) -> Keyframe:
        camera = client.camera
        key = Keyframe(position=np.asarray(camera.position, float),
                       wxyz=np.asarray(camera.wxyz, float), fov=float(camera.fov))
        self._keyframes.append(key)
        self.server.scene.add_camera_frustum(
            f"/keyframes/{len(self._keyframes) - 1:03d}", fov=key.fov, aspect=camera.aspect,
            scale=camera_scale(self._cameras) if self._cameras else 0.1, wxyz=key.wxyz,
            position=key.position, color=(230, 120, 30))
        self.path_status.content = f"{len(self._keyframes)} keyframes"
        return key

    def clear_keyframes(self) -> None:
        for i in range(len(self._keyframes)):
            self.server.scene.remove_by_name(f"/keyframes/{i:03d}")
        self._keyframes.clear()
        self.path_status.content = "0 keyframes"

    def save_camera_path(self) -> Path | None:
        """Write the recorded keyframes as a camera path JSON (``recon render --path``)."""
        name = Path(self.path_name.value).name or "path.json"
        if not name.endswith(".json"):
            name += ".json"
        try:
            path = CameraPath(list(self._keyframes), loop=bool(self.path_loop.value),
                              fps=float(self.path_fps.value),
                              seconds=float(self.path_seconds.value))
        except CameraPathError as exc:  # fewer than two keyframes, or bad timing
            self.path_status.content = f"**Not saved:** {exc}"
            return None
        out = path.save(self.paths_dir / name)
        self.path_status.content = (f"{len(self._keyframes)} keyframes, saved to `{out}`. "
                                    f"Render it: `recon render RUN --path {out} --out video.mp4`")
        return out


# -- `recon view` -----------------------------------------------------------------------------


def view(target: Path, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
         step: int | None = None, backend: str = "auto") -> None:
    """Serve a run directory, a 3DGS ``.ply`` or a mesh file until Ctrl-C."""
    viewer = open_viewer(target, host=host, port=port, step=step, backend=backend)
    print("Open the URL in a browser; Ctrl-C stops the viewer.", flush=True)
    try:
        wait_for_interrupt()
    finally:
        viewer.close()


def open_viewer(target: Path, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                step: int | None = None, backend: str = "auto", quiet: bool = False) -> Viewer:
    """Start a viewer showing ``target`` (see :func:`view`) and return it."""
    target = Path(target)
    if not target.exists():
        raise ViewerError(f"{target} does not exist. Give a run directory (recon fit --out), a "
                          "3DGS .ply or a mesh file.")
    if target.is_dir():
        return _open_run(target, host, port, step, backend, quiet)
    if target.suffix.lower() not in MESH_SUFFIXES:
        raise ViewerError(f"Cannot view {target}: expected a run directory, a 3DGS .ply or a "
                          f"mesh ({', '.join(MESH_SUFFIXES)}).")
    if target.suffix.lower() == ".ply" and _is_splat_ply(target):
        from recon.models.base import sh_degree_of
        from recon.models.gaussians import GaussianModel
        from recon.models.splat_files import read_ply
        from recon.train.config import FitConfig

        splats = read_ply(target)
        viewer = Viewer.start(host, port, paths_dir=target.parent, quiet=quiet)
        model = GaussianModel(FitConfig(data=target), scene_scale=1.0)  # default projection
        viewer.set_view(SplatView(model, splats, sh_degree_of(splats),
                                  backend=_cpu_or_auto(backend)))
        _aim_at(viewer, model.primitives(splats).centers.numpy())
        return viewer
    viewer = Viewer.start(host, port, paths_dir=target.parent, quiet=quiet)
    viewer.show_mesh(target)
    return viewer


def _open_run(run_dir: Path, host: str, port: int, step: int | None, backend: str,
              quiet: bool) -> Viewer:
    from recon.run import load_run
    from recon.train.checkpoint import list_checkpoints

    if not list_checkpoints(run_dir):
        raise ViewerError(f"{run_dir} has no checkpoints/, so it is not a fitted run. Give a run "
                          "directory written by `recon fit`, a 3DGS .ply or a mesh file.")
    run = load_run(run_dir, step)
    viewer = Viewer.start(host, port, paths_dir=run_dir / "camera_paths", quiet=quiet)
    dataset = run.dataset
    train = dataset.indices("train") or list(range(len(dataset)))
    viewer.show_cameras([dataset.cameras[i] for i in train], lambda i: dataset.image(train[i]))
    background = (1.0,) * 3 if run.background == "white" else (0.0,) * 3
    viewer.set_view(SplatView(run.model, run.params, run.sh_degree, background=background,
                              backend=_cpu_or_auto(backend)))
    # The meshes `recon extract-mesh` wrote (and their conversions), not the model's own exports
    # (splats.ply, convexes.ply / .glb: the model is shown already).
    for mesh in sorted((run_dir / "export").glob("mesh_*")):
        if mesh.suffix.lower() in MESH_SUFFIXES:
            viewer.show_mesh(mesh, dataset.normalization)  # exports are in the input frame
    return viewer


def _cpu_or_auto(backend: str) -> str:
    """gsplat renders training steps only; the viewer uses recon's kernels on the same device."""
    return "auto" if backend == "gsplat" else backend


def _is_splat_ply(path: Path) -> bool:
    """A 3DGS .ply (Gaussian properties in its header) rather than a mesh."""
    if path.suffix.lower() != ".ply":
        return False
    with open(path, "rb") as f:
        header = f.read(4096)
    return b"f_dc_0" in header and b"rot_0" in header


def _look_at_point(cameras: list[Camera]) -> np.ndarray:
    from recon.models.points import viewed_region

    return viewed_region(cameras)[0]


def _aim_at(viewer: Viewer, points: np.ndarray) -> None:
    """Start the browser camera outside the points' bounding box, looking at its centre."""
    lo, hi = np.percentile(points, 2, axis=0), np.percentile(points, 98, axis=0)
    center = (lo + hi) / 2
    size = float(np.linalg.norm(hi - lo)) or 1.0
    viewer.set_home(center + size * np.array([0.8, -0.8, 0.6]), center)


__all__ = ["DRAW_BROWSER", "DRAW_SERVER", "Viewer", "open_viewer", "view"]
