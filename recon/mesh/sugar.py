"""SuGaR mesh extraction: level-set points along training rays, then screened Poisson.

1. Foreground pixels of the training views are drawn at random (``rays`` in all). Along each
   pixel's ray, ``samples_per_ray`` points span the rendered depth ± ``search_width`` × the scene
   radius.
2. The Gaussian density (:mod:`recon.models.density`) is evaluated at the samples; the first place
   where it rises through the level λ is a surface point: the two samples around it are bisected
   a few times, then interpolated linearly. Rays that never cross λ (a semi-transparent region)
   give none.
3. Its normal is -∇d / |∇d| at that point, its colour the rendered colour of the pixel.
4. open3d's screened Poisson reconstruction turns the oriented, coloured points into a mesh;
   vertices whose Poisson density (how many points support them) is in the lowest
   ``trim_quantile`` are removed, which cuts the surface Poisson invents far from any point.
5. Optionally a quadric decimation to ``decimate`` triangles.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from recon.errors import ReconError
from recon.models.density import GaussianDensity, outward_normals
from recon.mesh.options import SugarOptions
from recon.mesh.views import View, pixel_rays, track

RAY_BATCH = 16_384
BISECTIONS = 6  # refine each crossing to 1/64 of the sample spacing


def level_set_points(density: GaussianDensity, views: Sequence[View], radius: float,
                     options: SugarOptions, seed: int = 0,
                     progress=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Surface points [M,3], outward unit normals [M,3] and colours [M,3] where the training rays
    cross the density level ``options.level`` (see the module docstring)."""
    options.validate()
    counts = np.array([int((v.depth > 0).sum()) for v in views])
    total = int(counts.sum())
    keep = min(total, options.rays)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(total, keep, replace=False)) if keep < total else np.arange(total)
    starts = np.concatenate([[0], np.cumsum(counts)])
    offsets = np.linspace(-1.0, 1.0, options.samples_per_ray) * options.search_width * radius
    found = []
    for i in track(progress, range(len(views)), "level-set points"):
        local = chosen[(chosen >= starts[i]) & (chosen < starts[i + 1])] - starts[i]
        if len(local) == 0:
            continue
        view = views[i]
        rows, cols = np.nonzero(view.depth > 0)
        rows, cols = rows[local], cols[local]
        origin, dirs = pixel_rays(view.camera, rows, cols)
        depth = view.depth[rows, cols].astype(np.float64)
        for b in range(0, len(depth), RAY_BATCH):
            sl = slice(b, b + RAY_BATCH)
            hit = _crossings(density, origin, dirs[sl], depth[sl], offsets, options.level)
            if hit is not None:
                idx, points = hit
                found.append((points, view.rgb[rows[sl][idx], cols[sl][idx]]))
    if not found:
        raise ReconError(f"No training ray crosses the density level {options.level}: the fitted "
                         "Gaussians are too transparent for a level-set surface. Try a lower "
                         "--sugar.level, a wider --sugar.search-width, or --method tsdf.")
    points = np.concatenate([f[0] for f in found])
    colors = np.concatenate([f[1] for f in found])
    _, grad = density(torch.from_numpy(points))
    normals = outward_normals(grad.double()).cpu().numpy()
    ok = np.isfinite(normals).all(1) & (np.linalg.norm(grad.cpu().numpy(), axis=1) > 0)
    return points[ok], normals[ok], colors[ok]


def level_set_views(density: GaussianDensity, views: Sequence[View], radius: float,
                    options: SugarOptions, max_rays: int, progress=None) -> list[View]:
    """The views with their depth replaced by where each pixel's ray first rises through the
    density level ``options.level`` (searched around the rendered depth as the sugar points are;
    0 where the ray does not cross). When the views' foreground pixels exceed ``max_rays``, the
    maps come at a coarser pixel grid (the cameras scaled to match), colours from the nearest
    rendered pixel."""
    options.validate()
    total = sum(int((v.depth > 0).sum()) for v in views)
    stride = max(1, int(np.ceil(np.sqrt(total / max(max_rays, 1)))))
    offsets = np.linspace(-1.0, 1.0, options.samples_per_ray) * options.search_width * radius
    out = []
    for view in track(progress, views, "level-set depth"):
        cam = view.camera.scaled(1.0 / stride) if stride > 1 else view.camera
        src_r, src_c = (_nearest_source(n, m) for n, m in zip((cam.height, cam.width),
                                                            view.depth.shape))
        rendered = view.depth[np.ix_(src_r, src_c)]
        depth = np.zeros_like(rendered)
        rows, cols = np.nonzero(rendered > 0)
        origin, dirs = pixel_rays(cam, rows, cols)
        for b in range(0, len(rows), RAY_BATCH):
            sl = slice(b, b + RAY_BATCH)
            hit = _crossings(density, origin, dirs[sl], rendered[rows[sl], cols[sl]]
                             .astype(np.float64), offsets, options.level)
            if hit is not None:
                idx, points = hit
                # dirs have unit camera z, so the camera z of a point is its distance along
                # the camera's forward axis from the origin.
                depth[rows[sl][idx], cols[sl][idx]] = (points - origin) @ cam.camera_to_world[:3, 2]
        rgb = view.rgb[np.ix_(src_r, src_c)]
        alpha = view.alpha[np.ix_(src_r, src_c)]
        out.append(View(cam, rgb, alpha, depth.astype(np.float32)))
    return out


def _nearest_source(coarse: int, fine: int) -> np.ndarray:
    """Index of the fine pixel under each of ``coarse`` pixel centres along one image axis."""
    return np.minimum(((np.arange(coarse) + 0.5) * fine / coarse).astype(int), fine - 1)


def _crossings(density: GaussianDensity, origin: np.ndarray, dirs: np.ndarray, depth: np.ndarray,
               offsets: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Rays (indices into ``dirs``) whose density first rises through ``level`` within the sample
    window, and the interpolated crossing points; None when no ray crosses."""
    z = depth[:, None] + offsets[None, :]                                      # [m, S] camera z
    samples = origin + z[..., None] * dirs[:, None, :]                         # [m, S, 3]
    d, _ = density(torch.from_numpy(samples.reshape(-1, 3)), gradient=False)
    d = d.double().cpu().numpy().reshape(z.shape)
    rising = (d[:, :-1] < level) & (d[:, 1:] >= level)
    rays = np.nonzero(rising.any(1))[0]
    if len(rays) == 0:
        return None
    k = rising[rays].argmax(1)                                                 # first crossing
    lo, hi = z[rays, k], z[rays, k + 1]
    d_lo, d_hi = d[rays, k], d[rays, k + 1]
    # The window's samples can be coarser than a flat Gaussian's thickness, and a linear
    # interpolation across its steep profile would land near the outer sample: bisect the
    # bracket first, then interpolate inside the last, nearly linear, interval.
    for _ in range(BISECTIONS):
        mid = 0.5 * (lo + hi)
        d_mid = _density_on_rays(density, origin, dirs[rays], mid)
        inside = d_mid >= level
        hi, d_hi = np.where(inside, mid, hi), np.where(inside, d_mid, d_hi)
        lo, d_lo = np.where(inside, lo, mid), np.where(inside, d_lo, d_mid)
    z_hit = lo + (level - d_lo) / (d_hi - d_lo) * (hi - lo)
    return rays, origin + z_hit[:, None] * dirs[rays]


def _density_on_rays(density: GaussianDensity, origin: np.ndarray, dirs: np.ndarray,
                     z: np.ndarray) -> np.ndarray:
    d, _ = density(torch.from_numpy(origin + z[:, None] * dirs), gradient=False)
    return d.double().cpu().numpy()


def poisson_surface(points: np.ndarray, normals: np.ndarray, colors: np.ndarray,
                    options: SugarOptions):
    """Screened Poisson mesh of oriented coloured points, trimmed and optionally decimated
    (a ``trimesh.Trimesh`` with vertex colours)."""
    import open3d as o3d

    from recon.mesh.io import make_mesh

    options.validate()
    cloud = o3d.geometry.PointCloud()
    cloud.points = o3d.utility.Vector3dVector(np.asarray(points, np.float64))
    cloud.normals = o3d.utility.Vector3dVector(np.asarray(normals, np.float64))
    cloud.colors = o3d.utility.Vector3dVector(np.clip(np.asarray(colors, np.float64), 0.0, 1.0))
    mesh, support = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(
        cloud, depth=options.poisson_depth)
    support = np.asarray(support)
    if options.trim_quantile > 0 and len(support):
        mesh.remove_vertices_by_mask(support < np.quantile(support, options.trim_quantile))
    if options.decimate and len(mesh.triangles) > options.decimate:
        mesh = mesh.simplify_quadric_decimation(target_number_of_triangles=options.decimate)
    mesh.remove_unreferenced_vertices()
    return make_mesh(np.asarray(mesh.vertices), np.asarray(mesh.triangles),
                     np.asarray(mesh.vertex_colors) if mesh.has_vertex_colors() else None)


def extract_sugar(density: GaussianDensity, views: Sequence[View], radius: float,
                  options: SugarOptions = SugarOptions(), seed: int = 0, progress=None):
    """The SuGaR mesh of a Gaussian density seen by ``views`` (views' world frame)."""
    points, normals, colors = level_set_points(density, views, radius, options, seed, progress)
    return poisson_surface(points, normals, colors, options)


__all__ = ["extract_sugar", "level_set_points", "level_set_views", "poisson_surface"]
