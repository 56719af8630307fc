"""An independent ground-truth renderer: open3d's ``RaycastingScene`` plus textured Lambert shading.

Independent of recon's own rasterizer on purpose: images rendered here are the reference that the
reconstruction is judged against, so no code is shared with what is being tested.

Per pixel: ``samples`` x ``samples`` stratified sub-pixel rays give antialiased colour and a coverage
alpha; one more ray through the pixel centre gives the depth and normal maps, so those stay exact
values of one surface point (never an average across an edge). Shading is deterministic:
albedo x (ambient + diffuse x max(0, n.l) x unshadowed), with one fixed directional light.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from recon.cameras import Camera
from recon.scenes.geometry import SceneMesh


@dataclass(frozen=True)
class Light:
    """A fixed directional light with ambient fill; ``direction`` points from surfaces to the light."""

    direction: tuple[float, float, float] = (0.45, -0.3, 0.85)
    ambient: float = 0.4
    diffuse: float = 0.7
    shadows: bool = True

    def unit_direction(self) -> np.ndarray:
        d = np.asarray(self.direction, dtype=np.float64)
        return d / np.linalg.norm(d)

    def to_dict(self) -> dict:
        return {"direction": self.unit_direction().tolist(), "ambient": self.ambient,
                "diffuse": self.diffuse, "shadows": self.shadows}


@dataclass(frozen=True)
class View:
    """One rendered view."""

    rgba: np.ndarray
    """uint8 [H,W,4]: straight (not premultiplied) colour; alpha = fraction of sub-pixel rays
    that hit geometry; colour and alpha 0 where nothing was hit."""
    depth: np.ndarray
    """float32 [H,W]: z of the surface in the camera frame at the pixel centre; 0 = no hit."""
    normals: np.ndarray
    """float32 [H,W,3]: world-space unit normal at the pixel centre, turned towards the camera;
    0 = no hit."""


@dataclass(frozen=True)
class _Hits:
    """The rays of one cast that struck a triangle."""

    ray: np.ndarray
    """[N] index of the ray."""
    t: np.ndarray
    """[N] hit distance in units of the ray direction's length."""
    point: np.ndarray
    """[N,3] world position."""
    normal: np.ndarray
    """[N,3] unit triangle normal, turned towards the ray's origin."""
    face: np.ndarray
    """[N] triangle id."""
    bary: np.ndarray
    """[N,3] barycentric weights of the triangle's corners (open3d's u, v are corners 1 and 2)."""


@functools.lru_cache(maxsize=4)
def sample_grid(width: int, height: int, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Image coordinates (x, y) of every ray of a view: first the pixel centres (row-major), then
    ``samples`` x ``samples`` stratified sub-pixel points per pixel (pixel-major). Cached: every
    view at one resolution shares it."""
    offsets = (np.arange(samples, dtype=np.float32) + 0.5) / samples
    sub_x = np.arange(width, dtype=np.float32)[None, :, None, None] + offsets[None, None, None, :]
    sub_y = np.arange(height, dtype=np.float32)[:, None, None, None] + offsets[None, None, :, None]
    sub_x, sub_y = np.broadcast_arrays(sub_x, sub_y)  # [H,W,s,s]
    centre_x, centre_y = np.meshgrid(np.arange(width, dtype=np.float32) + 0.5,
                                     np.arange(height, dtype=np.float32) + 0.5)
    xs = np.concatenate([centre_x.ravel(), sub_x.ravel()])
    ys = np.concatenate([centre_y.ravel(), sub_y.ravel()])
    xs.flags.writeable = ys.flags.writeable = False  # shared by the cache
    return xs, ys


class Raycaster:
    """Renders views of one ``SceneMesh`` (built once; each view is a few batched ray casts)."""

    def __init__(self, mesh: SceneMesh, light: Light = Light(), samples: int = 2) -> None:
        import open3d as o3d

        self.mesh = mesh
        self.light = light
        self.samples = samples
        self._scene = o3d.t.geometry.RaycastingScene()
        self._scene.add_triangles(
            o3d.core.Tensor(mesh.vertices.astype(np.float32)),
            o3d.core.Tensor(mesh.faces.astype(np.uint32)),
        )
        # Shadow rays start this far off the surface so they do not hit their own triangle.
        extent = float(np.ptp(mesh.vertices, axis=0).max())
        self._shadow_offset = 1e-4 * extent

    def render(self, camera: Camera) -> View:
        h, w, s = camera.height, camera.width, self.samples
        n_pix = h * w
        hits = self._cast(camera, *sample_grid(w, h, s))

        is_centre = hits.ray < n_pix
        pixel = hits.ray[is_centre]
        depth = np.zeros(n_pix, np.float32)
        depth[pixel] = hits.t[is_centre]
        normals = np.zeros((n_pix, 3), np.float32)
        normals[pixel] = hits.normal[is_centre]

        sub = ~is_centre
        pixel = (hits.ray[sub] - n_pix) // (s * s)
        color = self._shade(hits.point[sub], hits.normal[sub], hits.face[sub], hits.bary[sub])
        rgb_sum = np.zeros((n_pix, 3))
        for channel in range(3):
            rgb_sum[:, channel] = np.bincount(pixel, color[:, channel], minlength=n_pix)
        count = np.bincount(pixel, minlength=n_pix)
        rgb = rgb_sum / np.maximum(count, 1)[:, None]
        rgba = np.concatenate([rgb, (count / (s * s))[:, None]], -1)
        rgba = np.round(np.clip(rgba, 0.0, 1.0) * 255.0).astype(np.uint8)
        return View(rgba=rgba.reshape(h, w, 4), depth=depth.reshape(h, w),
                    normals=normals.reshape(h, w, 3))

    def _cast(self, camera: Camera, xs: np.ndarray, ys: np.ndarray) -> _Hits:
        """Cast rays through image points (xs, ys) of ``camera`` and describe the ones that hit."""
        import open3d as o3d

        # Directions with unit z in the camera frame make the hit distance t the camera z (depth).
        c2w = camera.camera_to_world.astype(np.float32)
        dirs_cam = np.empty((len(xs), 3), np.float32)
        dirs_cam[:, 0] = (xs - camera.cx) / camera.fx
        dirs_cam[:, 1] = (ys - camera.cy) / camera.fy
        dirs_cam[:, 2] = 1.0
        rays = np.empty((len(xs), 6), np.float32)
        origin = c2w[:3, 3]
        rays[:, :3] = origin
        np.matmul(dirs_cam, c2w[:3, :3].T, out=rays[:, 3:])  # all float32: numpy's fast path
        dirs = rays[:, 3:]
        result = self._scene.cast_rays(o3d.core.Tensor.from_numpy(rays))
        t = result["t_hit"].numpy()
        ray = np.flatnonzero(np.isfinite(t))
        t = t[ray]
        uv = result["primitive_uvs"].numpy()[ray]
        normal = result["primitive_normals"].numpy()[ray]
        dirs = dirs[ray]
        normal[np.einsum("ij,ij->i", normal, dirs) > 0.0] *= -1.0  # face the camera
        return _Hits(
            ray=ray, t=t, point=origin + dirs * t[:, None],
            normal=normal, face=result["primitive_ids"].numpy()[ray].astype(np.int64),
            bary=np.stack([1.0 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], -1),
        )

    def _shade(self, points: np.ndarray, normals: np.ndarray, faces: np.ndarray,
               bary: np.ndarray) -> np.ndarray:
        albedo = np.zeros((len(points), 3))
        part = self.mesh.part_of(faces)
        for k, material in enumerate(self.mesh.materials):
            sel = np.flatnonzero(part == k)
            if len(sel):
                local = faces[sel] - self.mesh.starts[k]
                albedo[sel] = material.albedo(points[sel], local, bary[sel])
        light = self.light.unit_direction().astype(np.float32)  # one dtype: numpy's fast matmul
        lit = np.clip(normals @ light, 0.0, None)
        if self.light.shadows:
            lit = lit * ~self._occluded(points + self._shadow_offset * normals, light)
        return albedo * (self.light.ambient + self.light.diffuse * lit)[:, None]

    def _occluded(self, points: np.ndarray, direction: np.ndarray) -> np.ndarray:
        import open3d as o3d

        rays = np.concatenate([points, np.broadcast_to(direction, points.shape)], -1)
        return self._scene.test_occlusions(o3d.core.Tensor(rays.astype(np.float32))).numpy()
