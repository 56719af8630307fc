"""Server-side renders streamed to each browser: coarse while the camera moves, sharp at rest.

One :class:`ClientRenderLoop` per connected browser runs in its own thread. A camera message
from that browser asks for a *preview* (longer side at most ``PREVIEW_MAX_SIDE`` pixels, JPEG
quality ``PREVIEW_QUALITY``: cheap enough to follow a drag) and, once the camera has rested for
``REST_SECONDS``, for a *final* frame at the browser's viewport size (capped by the viewer's
max-resolution setting) and high JPEG quality, as nerfstudio's viewer does. Messages that
arrive while a frame renders collapse into one request, so a slow renderer skips stale views
instead of queueing them. Frames go to viser's ``set_background_image``, which fills the
viewport behind the scene's own objects (frustums, meshes).
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from recon.viewer.paths import Keyframe

PREVIEW_MAX_SIDE = 256
PREVIEW_QUALITY = 50
FINAL_QUALITY = 90
REST_SECONDS = 0.3


@dataclass
class RenderSettings:
    """Shared by every client loop; the GUI writes these, the loops read them per frame."""

    enabled: bool = True
    """Server-side rendering on (off when the browser draws the splats itself)."""
    mode: str = "rgb"
    max_side: int = 1024
    """Longest side of a final frame in pixels."""


@dataclass(frozen=True)
class FrameInfo:
    kind: str
    """"preview" or "final"."""
    width: int
    height: int
    jpeg_quality: int
    seconds: float
    """Render time."""
    pose: Keyframe
    """The browser camera the frame was rendered for."""


class ClientRenderLoop:
    """Renders for one browser; ``render(camera, mode)`` returns uint8 [H, W, 3] or None when
    there is nothing to show yet."""

    def __init__(self, client, render: Callable[[object, str], np.ndarray | None],
                 settings: RenderSettings) -> None:
        self.client = client
        self.settings = settings
        self.camera_updates = 0
        self.frames_sent = 0
        self.last_frame: FrameInfo | None = None
        self._render = render
        self._cond = threading.Condition()
        self._preview_pending = False
        self._final_pending = True  # a first frame as soon as the client is there
        self._last_move = 0.0
        self._stopped = False
        self.cleared = False
        """True once the server's image was taken away (the browser draws the splats)."""
        client.camera.on_update(self._on_camera)
        self._thread = threading.Thread(target=self._run, name=f"viewer-render-{client.client_id}",
                                        daemon=True)
        self._thread.start()

    def _on_camera(self, _camera) -> None:
        with self._cond:
            self.camera_updates += 1
            self._preview_pending = self._final_pending = True
            self._last_move = time.monotonic()
            self._cond.notify()

    def request_frame(self) -> None:
        """Render again at full quality (the scene, the mode or the settings changed)."""
        with self._cond:
            self._final_pending = True
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _next_job(self) -> str | None:
        with self._cond:
            while True:
                if self._stopped:
                    return None
                if self._preview_pending:
                    self._preview_pending = False
                    return "preview"
                if self._final_pending:
                    wait = self._last_move + REST_SECONDS - time.monotonic()
                    if wait <= 0:
                        self._final_pending = False
                        return "final"
                    self._cond.wait(wait)
                else:
                    self._cond.wait()

    def _run(self) -> None:
        while (kind := self._next_job()) is not None:
            try:
                self._draw(kind)
            except Exception:  # keep serving this client; show what went wrong once per frame
                traceback.print_exc()

    def _draw(self, kind: str) -> None:
        scene = self.client.scene
        if not self.settings.enabled:
            if not self.cleared:
                scene.set_background_image(None)
                self.cleared = True
            return
        camera = self.client.camera
        max_side = PREVIEW_MAX_SIDE if kind == "preview" else self.settings.max_side
        width, height = frame_size(camera.image_width, camera.image_height, max_side)
        pose = Keyframe(position=np.asarray(camera.position, float),
                        wxyz=np.asarray(camera.wxyz, float), fov=float(camera.fov))
        start = time.perf_counter()
        image = self._render(pose.to_camera(width, height), self.settings.mode)
        if image is None:
            return
        quality = PREVIEW_QUALITY if kind == "preview" else FINAL_QUALITY
        scene.set_background_image(image, format="jpeg", jpeg_quality=quality)
        self.cleared = False
        self.frames_sent += 1
        self.last_frame = FrameInfo(kind, width, height, quality, time.perf_counter() - start,
                                    pose)


def frame_size(viewport_width: int, viewport_height: int, max_side: int) -> tuple[int, int]:
    """The viewport's aspect ratio with the longer side at most ``max_side`` (at least 8 px)."""
    w, h = max(int(viewport_width), 1), max(int(viewport_height), 1)
    scale = min(1.0, max_side / max(w, h))
    return max(8, round(w * scale)), max(8, round(h * scale))


__all__ = ["FINAL_QUALITY", "PREVIEW_MAX_SIDE", "PREVIEW_QUALITY", "REST_SECONDS",
           "ClientRenderLoop", "FrameInfo", "RenderSettings", "frame_size"]
