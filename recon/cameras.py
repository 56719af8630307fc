"""Cameras in recon's convention, and the conversions from other conventions.

Inside recon every camera is an OpenCV pinhole camera: x right, y down, z forward, with a 4x4
world->camera matrix. Pixel centres sit at half-integer coordinates, so the centre of the first
pixel is (0.5, 0.5) and a principal point of (W/2, H/2) is the image centre (the convention of
COLMAP, nerfstudio and gsplat). Other conventions are converted once, at load time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

# OpenGL/Blender cameras look down -z with y up; OpenCV looks down +z with y down.
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])

# Distortion coefficient order (radial-tangential): k1 k2 p1 p2 k3 k4, with the polynomial radial
# factor 1 + k1 r^2 + k2 r^4 + k3 r^6 + k4 r^8 (nerfstudio's OPENCV convention; COLMAP's
# SIMPLE_RADIAL, RADIAL and OPENCV models are prefixes of it). Fisheye: k1 k2 k3 k4 on theta.
DISTORTION_NAMES = ("k1", "k2", "p1", "p2", "k3", "k4")


@dataclass(frozen=True)
class Camera:
    """One pinhole camera: intrinsics in pixels and an OpenCV world->camera pose."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    world_to_camera: np.ndarray = field(repr=False)
    """4x4 float64, OpenCV axes: maps world points into the camera frame."""
    distortion: np.ndarray | None = field(default=None, repr=False)
    """Radial-tangential coefficients in DISTORTION_NAMES order, or the four fisheye
    coefficients when ``fisheye``; None for an ideal pinhole (images already undistorted)."""
    fisheye: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        w2c = np.asarray(self.world_to_camera, dtype=np.float64)
        object.__setattr__(self, "world_to_camera", w2c)
        if self.distortion is not None:
            object.__setattr__(self, "distortion", np.asarray(self.distortion, dtype=np.float64))

    # -- intrinsics -------------------------------------------------------------------------
    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def is_distorted(self) -> bool:
        # A fisheye camera is never a pinhole, even with zero coefficients (equidistant model).
        return self.fisheye or (self.distortion is not None and bool(np.any(self.distortion != 0)))

    @property
    def fov_x(self) -> float:
        return 2.0 * float(np.arctan(self.width / (2.0 * self.fx)))

    # -- extrinsics -------------------------------------------------------------------------
    @property
    def camera_to_world(self) -> np.ndarray:
        return invert_rigid(self.world_to_camera)

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates."""
        return self.camera_to_world[:3, 3].copy()

    @property
    def forward(self) -> np.ndarray:
        """Viewing direction (+z of the camera) in world coordinates."""
        return self.world_to_camera[2, :3].copy()

    # -- operations -------------------------------------------------------------------------
    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project world points [N,3] to pixels [N,2] (ignoring distortion) and camera depths [N]."""
        pts = np.asarray(points, dtype=np.float64)
        cam = pts @ self.world_to_camera[:3, :3].T + self.world_to_camera[:3, 3]
        z = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = np.stack([self.fx * cam[:, 0] / z + self.cx, self.fy * cam[:, 1] / z + self.cy], -1)
        return uv, z

    def scaled(self, factor: float) -> Camera:
        """The same camera for an image resized by ``factor`` (0.5 = half resolution)."""
        width, height = round(self.width * factor), round(self.height * factor)
        sx, sy = width / self.width, height / self.height
        return replace(
            self, width=width, height=height,
            fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy,
        )

    def with_pose(self, world_to_camera: np.ndarray) -> Camera:
        return replace(self, world_to_camera=np.asarray(world_to_camera, dtype=np.float64))

    def transformed(self, sim: Similarity) -> Camera:
        """This camera after the world is mapped by ``sim`` (x' = s R x + t)."""
        c2w = self.camera_to_world
        new = np.eye(4)
        new[:3, :3] = sim.rotation @ c2w[:3, :3]
        new[:3, 3] = sim.apply(c2w[:3, 3][None])[0]
        return self.with_pose(invert_rigid(new))

    @staticmethod
    def from_opengl(c2w: np.ndarray, width: int, height: int, fx: float, fy: float,
                    cx: float, cy: float, **kwargs) -> Camera:
        """From an OpenGL/Blender camera->world matrix (y up, -z forward)."""
        c2w = np.asarray(c2w, dtype=np.float64)
        if c2w.shape == (3, 4):
            c2w = np.vstack([c2w, [0.0, 0.0, 0.0, 1.0]])
        w2c = invert_rigid(c2w @ OPENGL_TO_OPENCV)
        return Camera(width, height, fx, fy, cx, cy, w2c, **kwargs)

    def opengl_camera_to_world(self) -> np.ndarray:
        """The camera->world matrix in OpenGL/Blender axes (for writing transforms.json)."""
        return self.camera_to_world @ OPENGL_TO_OPENCV


def invert_rigid(m: np.ndarray) -> np.ndarray:
    """Inverse of a 4x4 rigid (rotation + translation) transform."""
    m = np.asarray(m, dtype=np.float64)
    out = np.eye(4)
    rt = m[:3, :3].T
    out[:3, :3] = rt
    out[:3, 3] = -rt @ m[:3, 3]
    return out


def rotation_is_valid(r: np.ndarray, tol: float = 1e-3) -> bool:
    """True when ``r`` is a finite proper rotation (orthonormal, determinant +1)."""
    r = np.asarray(r, dtype=np.float64)
    if r.shape != (3, 3) or not np.all(np.isfinite(r)):
        return False
    return bool(np.allclose(r @ r.T, np.eye(3), atol=tol) and abs(np.linalg.det(r) - 1.0) < tol)


@dataclass(frozen=True)
class Similarity:
    """A similarity transform x' = scale * R x + t between two world frames.

    Datasets keep the one that normalised their scene so exports can be mapped back to the
    input's world frame with :meth:`inverse`.
    """

    scale: float = 1.0
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def apply(self, points: np.ndarray) -> np.ndarray:
        pts = np.asarray(points, dtype=np.float64)
        return self.scale * pts @ self.rotation.T + self.translation

    def apply_directions(self, dirs: np.ndarray) -> np.ndarray:
        return np.asarray(dirs, dtype=np.float64) @ self.rotation.T

    def inverse(self) -> Similarity:
        rt = self.rotation.T
        return Similarity(1.0 / self.scale, rt, -(rt @ self.translation) / self.scale)

    def compose(self, first: Similarity) -> Similarity:
        """The transform that applies ``first`` and then ``self``."""
        return Similarity(
            self.scale * first.scale,
            self.rotation @ first.rotation,
            self.scale * self.rotation @ first.translation + self.translation,
        )

    def matrix(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] = self.scale * self.rotation
        m[:3, 3] = self.translation
        return m

    def to_dict(self) -> dict:
        return {"scale": float(self.scale), "rotation": self.rotation.tolist(),
                "translation": self.translation.tolist()}

    @staticmethod
    def from_dict(d: dict) -> Similarity:
        return Similarity(float(d["scale"]), np.asarray(d["rotation"], float),
                          np.asarray(d["translation"], float))


def align_similarity(src: np.ndarray, dst: np.ndarray) -> Similarity:
    """Least-squares similarity mapping points ``src`` [N,3] onto ``dst`` [N,3] (Umeyama 1991)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    u, d, vt = np.linalg.svd(cov)
    s = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        s[2, 2] = -1.0
    rot = u @ s @ vt
    var_s = (xs**2).sum() / len(src)
    scale = float(np.trace(np.diag(d) @ s) / var_s)
    return Similarity(scale, rot, mu_d - scale * rot @ mu_s)


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = (0.0, 0.0, 1.0)) -> np.ndarray:
    """OpenCV world->camera matrix of a camera at ``eye`` looking at ``target`` (world up ``up``)."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:  # looking along `up`: pick any perpendicular axis
        x = np.cross(z, [1.0, 0.0, 0.0] if abs(z[0]) < 0.9 else [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)  # y points down in the image when `up` points up in the world
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, eye
    return invert_rigid(c2w)


def cameras_to_tensors(cameras, device="cpu"):
    """Stack cameras into torch tensors: viewmats [B,4,4] and Ks [B,3,3] (float32)."""
    import torch

    # One host->device copy for both (this runs once per render call).
    packed = np.concatenate([np.stack([c.world_to_camera for c in cameras]).reshape(-1, 16),
                             np.stack([c.K for c in cameras]).reshape(-1, 9)], axis=1)
    packed = torch.from_numpy(packed.astype(np.float32)).to(device)
    return packed[:, :16].reshape(-1, 4, 4), packed[:, 16:].reshape(-1, 3, 3)
