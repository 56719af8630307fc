"""Camera paths for fly-through videos: keyframes, smooth interpolation, orbit and training paths.

A path is a list of keyframes (camera centre, camera->world rotation, vertical field of view) in
the viewer's world frame, which for a run is the run's normalised frame. Between keyframes the
centre follows a uniform Catmull-Rom spline (it passes through every keyframe and has a
continuous tangent, so the camera does not jerk at a keyframe), the rotation is slerped (it
stays a rotation, and hits each keyframe's rotation exactly) and the field of view is linear.
A looping path joins its last keyframe back to its first; an orbit is a looping path.

The JSON file (``recon render --path FILE.json``, written by the viewer's path recorder)::

    {"version": 1, "frame": "run", "loop": false, "fps": 30, "seconds": 4,
     "keyframes": [{"position": [x, y, z], "wxyz": [w, x, y, z], "fov_degrees": 50.0}, ...]}

Rotations use the OpenCV camera axes (x right, y down, z forward), as everywhere in recon and in
viser; "frame": "run" says the coordinates are the run's normalised frame.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from recon.cameras import Camera, invert_rigid
from recon.errors import ReconError

PATH_FORMAT_VERSION = 1


class CameraPathError(ReconError):
    """A camera path file or request that cannot be used."""


@dataclass(frozen=True)
class Keyframe:
    """One camera pose: centre, camera->world rotation (w, x, y, z; OpenCV axes), vertical fov."""

    position: np.ndarray
    wxyz: np.ndarray
    fov: float
    """Vertical field of view in radians."""

    @staticmethod
    def from_camera(camera: Camera) -> Keyframe:
        c2w = camera.camera_to_world
        return Keyframe(position=c2w[:3, 3].copy(), wxyz=matrix_to_wxyz(c2w[:3, :3]),
                        fov=2.0 * float(np.arctan(camera.height / (2.0 * camera.fy))))

    def rotation(self) -> np.ndarray:
        """The 3x3 camera->world rotation."""
        return Rotation.from_quat(self.wxyz, scalar_first=True).as_matrix()

    def to_camera(self, width: int, height: int) -> Camera:
        """A pinhole camera with this pose, square pixels and the principal point centred."""
        c2w = np.eye(4)
        c2w[:3, :3] = self.rotation()
        c2w[:3, 3] = self.position
        f = height / (2.0 * np.tan(self.fov / 2.0))
        return Camera(width, height, f, f, width / 2.0, height / 2.0, invert_rigid(c2w))


@dataclass
class CameraPath:
    """Keyframes plus timing; :meth:`frames` samples it for a video."""

    keyframes: list[Keyframe]
    loop: bool = False
    fps: float = 30.0
    seconds: float = 4.0
    _quats: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.keyframes) < 2:
            raise CameraPathError(f"A camera path needs at least 2 keyframes, got "
                                  f"{len(self.keyframes)}. Add more keyframes in the viewer.")
        if not (self.fps > 0 and self.seconds > 0):
            raise CameraPathError(f"fps and seconds must be positive, got fps={self.fps}, "
                                  f"seconds={self.seconds}.")
        # Neighbouring quaternions in the same hemisphere, so each slerp takes the short way.
        quats = [np.asarray(k.wxyz, float) / np.linalg.norm(k.wxyz) for k in self.keyframes]
        for i in range(1, len(quats)):
            if np.dot(quats[i], quats[i - 1]) < 0:
                quats[i] = -quats[i]
        self._quats = np.stack(quats)

    @property
    def num_segments(self) -> int:
        return len(self.keyframes) if self.loop else len(self.keyframes) - 1

    @property
    def num_frames(self) -> int:
        return max(2, int(round(self.fps * self.seconds)))

    def pose_at(self, s: float) -> Keyframe:
        """The pose at path parameter ``s`` in [0, num_segments]; s = i is keyframe i."""
        n_key, segments = len(self.keyframes), self.num_segments
        s = float(np.clip(s, 0.0, segments))
        i = min(int(np.floor(s)), segments - 1)
        u = s - i

        def key(j: int) -> int:  # neighbour index: wraps on a loop, clamps at the ends
            return j % n_key if self.loop else int(np.clip(j, 0, n_key - 1))

        p = [np.asarray(self.keyframes[key(j)].position, float) for j in (i - 1, i, i + 1, i + 2)]
        position = _catmull_rom(*p, u)
        q0, q1 = self._quats[key(i)], self._quats[key(i + 1)]
        if np.dot(q0, q1) < 0:  # only the loop's closing segment can need this
            q1 = -q1
        wxyz = _slerp(q0, q1, u)
        fov = (1 - u) * self.keyframes[key(i)].fov + u * self.keyframes[key(i + 1)].fov
        return Keyframe(position=position, wxyz=wxyz, fov=float(fov))

    def frames(self, num_frames: int | None = None) -> list[Keyframe]:
        """Evenly spaced poses: both ends for an open path; for a loop the end (which equals
        the start) is left out, so a looping video repeats without a doubled frame."""
        n = self.num_frames if num_frames is None else num_frames
        if n < 2:
            raise CameraPathError(f"A camera path video needs at least 2 frames, got {n}.")
        params = (np.arange(n) * self.num_segments / n if self.loop
                  else np.linspace(0.0, self.num_segments, n))
        return [self.pose_at(s) for s in params]

    # -- JSON ---------------------------------------------------------------------------------

    def to_json(self) -> dict:
        return {"version": PATH_FORMAT_VERSION, "frame": "run", "loop": self.loop,
                "fps": self.fps, "seconds": self.seconds,
                "keyframes": [{"position": [float(v) for v in k.position],
                               "wxyz": [float(v) for v in k.wxyz],
                               "fov_degrees": float(np.degrees(k.fov))} for k in self.keyframes]}

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path

    @staticmethod
    def from_json(data: dict) -> CameraPath:
        try:
            if data.get("version") != PATH_FORMAT_VERSION:
                raise CameraPathError(f"Unsupported camera path version {data.get('version')!r} "
                                      f"(this recon reads version {PATH_FORMAT_VERSION}).")
            keys = [Keyframe(position=np.asarray(k["position"], float).reshape(3),
                             wxyz=np.asarray(k["wxyz"], float).reshape(4),
                             fov=float(np.radians(k["fov_degrees"])))
                    for k in data["keyframes"]]
            return CameraPath(keys, loop=bool(data.get("loop", False)),
                              fps=float(data.get("fps", 30.0)),
                              seconds=float(data.get("seconds", 4.0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise CameraPathError(f"Not a recon camera path ({exc!r}); expected keys version, "
                                  "keyframes[{position, wxyz, fov_degrees}], loop, fps, seconds. "
                                  "Record one with the viewer's camera path panel.") from exc

    @staticmethod
    def load(path: Path) -> CameraPath:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise CameraPathError(f"Cannot read the camera path {path}: {exc}.") from exc
        except json.JSONDecodeError as exc:
            raise CameraPathError(f"{path} is not valid JSON ({exc}). Record a camera path with "
                                  "the viewer, or use --path orbit / train.") from exc
        if not isinstance(data, dict):
            raise CameraPathError(f"{path} does not hold a camera path object.")
        return CameraPath.from_json(data)


# -- paths made from a run's cameras ----------------------------------------------------------


def scene_up(cameras: list[Camera]) -> np.ndarray:
    """The world's up direction as the cameras see it: the mean of their "up" axes (-y in
    OpenCV), which is right for any capture where the photographer held the camera level."""
    ups = np.stack([-c.camera_to_world[:3, 1] for c in cameras])
    up = ups.mean(0)
    norm = np.linalg.norm(up)
    return up / norm if norm > 1e-6 else np.array([0.0, 0.0, 1.0])


def orbit_path(cameras: list[Camera], *, fps: float = 30.0, seconds: float = 6.0,
               num_keyframes: int = 24) -> CameraPath:
    """A level circle around the point the cameras look at, at their mean distance and height,
    with their median field of view; it starts at the first camera's azimuth and loops."""
    from recon.models.points import viewed_region

    center, _ = viewed_region(cameras)
    up = scene_up(cameras)
    offsets = np.stack([c.center for c in cameras]) - center
    heights = offsets @ up
    flat = offsets - heights[:, None] * up
    radius = float(np.linalg.norm(flat, axis=1).mean())
    if radius < 1e-6:
        raise CameraPathError("The cameras all sit above the scene centre, so there is no orbit "
                              "to follow; record a path in the viewer instead.")
    x_axis = flat[0] / np.linalg.norm(flat[0])
    y_axis = np.cross(up, x_axis)
    fov = float(np.median([2.0 * np.arctan(c.height / (2.0 * c.fy)) for c in cameras]))
    height = float(heights.mean())
    keys = []
    for angle in 2.0 * np.pi * np.arange(num_keyframes) / num_keyframes:
        eye = center + radius * (np.cos(angle) * x_axis + np.sin(angle) * y_axis) + height * up
        keys.append(Keyframe(position=eye, wxyz=matrix_to_wxyz(look_at_rotation(eye, center, up)),
                             fov=fov))
    return CameraPath(keys, loop=True, fps=fps, seconds=seconds)


def training_path(cameras: list[Camera], *, fps: float = 30.0,
                  seconds: float | None = None) -> CameraPath:
    """Through the training cameras in dataset order (half a second per camera by default)."""
    keys = [Keyframe.from_camera(c) for c in cameras]
    return CameraPath(keys, loop=False, fps=fps,
                      seconds=seconds if seconds is not None else 0.5 * max(len(keys) - 1, 1))


# -- rotation helpers -------------------------------------------------------------------------


def look_at_rotation(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Camera->world rotation (OpenCV axes) of a camera at ``eye`` looking at ``target``."""
    forward = np.asarray(target, float) - np.asarray(eye, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-8:  # looking straight along up: any right vector will do
        right = np.cross(forward, np.array([1.0, 0.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=1)


def matrix_to_wxyz(rotation: np.ndarray) -> np.ndarray:
    return Rotation.from_matrix(np.asarray(rotation, float)).as_quat(scalar_first=True)


def _slerp(q0: np.ndarray, q1: np.ndarray, u: float) -> np.ndarray:
    dot = float(np.clip(np.dot(q0, q1), -1.0, 1.0))
    if dot > 0.9995:  # nearly equal: linear blend, renormalised, avoids dividing by sin(~0)
        q = (1 - u) * q0 + u * q1
        return q / np.linalg.norm(q)
    theta = np.arccos(dot)
    return (np.sin((1 - u) * theta) * q0 + np.sin(u * theta) * q1) / np.sin(theta)


def _catmull_rom(p0, p1, p2, p3, u: float) -> np.ndarray:
    """Uniform Catmull-Rom between p1 (u=0) and p2 (u=1)."""
    u2, u3 = u * u, u * u * u
    return 0.5 * ((2 * p1) + (-p0 + p2) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u2
                  + (-p0 + 3 * p1 - 3 * p2 + p3) * u3)


__all__ = ["CameraPath", "CameraPathError", "Keyframe", "look_at_rotation", "matrix_to_wxyz",
           "orbit_path", "scene_up", "training_path"]
