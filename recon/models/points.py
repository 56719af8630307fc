"""Where a new model's rows start: the dataset's sparse points, points triangulated from its
posed views when it has none, or random points where the cameras look, plus an optional far layer
for unbounded captures; and the neighbour spacing initial sizes are taken from."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from recon.errors import DatasetError

HORIZON_MARGIN = 0.1
"""How far below the horizon (the sine of ~6°) the far layer reaches: the ground there is far too."""
VIEW_MARGIN = 0.25
"""The far layer reaches this fraction of an image's size beyond each edge of the training views,
so a test view that looks a little higher or wider than every training view still has sky (on
lund, the top rows of test photo 16 were holes without it)."""
MIN_TRIANGULATED = 100
"""Fewer triangulated points than this (a textureless or tiny capture) start from random points
instead."""


def initial_points(dataset, cameras, init, data_path, generator: torch.Generator,
                   images: Sequence[np.ndarray] = (), cache: Path | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Points [N, 3] and RGB colours [N, 3] in [0, 1] a model starts from (``init`` is the
    config's ``InitOptions``): the dataset's sparse points (SfM) unless ``init.source`` is
    "random" or there are none; for "auto" without any, points triangulated from SIFT matches
    between the training ``images`` (uint8 [H, W, 3]) with their known ``cameras``
    (:func:`recon.data.matches.triangulated_points`, kept in ``cache`` once computed) when that
    gives at least MIN_TRIANGULATED, topped up with random points to ``init.num_random``; else
    ``init.num_random`` points uniform in the region ``cameras`` look at. With ``init.far_points``
    and ``images``, :func:`far_points` are added behind all of these."""
    points, colors = _scene_points(dataset, cameras, init, data_path, generator, images, cache)
    if init.far_points > 0 and len(images) > 0:
        far, far_colors = far_points(cameras, images, init.far_points, init.far_radius, points)
        points, colors = np.concatenate([points, far]), np.concatenate([colors, far_colors])
    return points, colors


def _scene_points(dataset, cameras, init, data_path, generator, images, cache):
    """What :func:`initial_points` starts the scene from, before any far layer."""
    has_points = dataset.points is not None and len(dataset.points) > 0
    if init.source == "sfm" and not has_points:
        raise DatasetError(f"--init.source sfm, but the dataset at {data_path} has no sparse "
                           "points. Use --init.source random (or auto).")
    if has_points and init.source != "random":
        colors = (dataset.point_colors / 255.0 if dataset.point_colors is not None
                  else np.full((len(dataset.points), 3), 0.5))
        return dataset.points, colors
    center, half = viewed_region(cameras)
    if init.source == "auto" and len(images) >= 2:
        points, colors = triangulated(cameras, images, cache)
        if len(points) >= MIN_TRIANGULATED:
            # Matches find the textured surfaces only: random points make up the count, so a
            # short run keeps the capacity of a random start (the object scene, 1000 MCMC steps:
            # 26.96 dB from its 1,376 triangulated points alone, 29.89 dB from 20k random).
            extra, extra_colors = random_points(max(0, init.num_random - len(points)), center,
                                                half * init.random_extent, generator)
            return (np.concatenate([points, extra]),
                    np.concatenate([colors / 255.0, extra_colors]))
    return random_points(init.num_random, center, half * init.random_extent, generator)


def far_points(cameras, images: Sequence[np.ndarray], num: int, radius_factor: float,
               scene_points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """About ``num`` points on a sphere around the cameras, for what lies beyond the scene in an
    unbounded capture (sky, distant buildings), and their RGB colours in [0, 1].

    Without them the sky of a street or landscape capture has nothing to show it but whatever
    Gaussians the optimiser drags in front of the cameras: holes and floaters. The sphere is
    centred on the cameras' mean centre with ``radius_factor`` times their radius, pushed out to
    behind 98 % of ``scene_points``; its points are a Fibonacci lattice over the directions some
    camera sees, widened by VIEW_MARGIN (``num`` of them there), each coloured by the median of
    the pixels (``images``: uint8 [H, W, C], one per camera) it projects to, or when it lies in
    the margin alone, by the colour of the nearest point that has pixels. When the cameras
    agree on which way is up, only the dome above the horizon (less HORIZON_MARGIN) is kept:
    below it the views see the ground, near them (on lund, a far layer under the street took
    over the road and left it translucent: 1.8 % of the test pixels less than half covered,
    against 0 without a layer).
    """
    centers = np.stack([c.center for c in cameras])
    center = centers.mean(0)
    spread = float(np.linalg.norm(centers - center, axis=1).max()) or 1.0
    radius = radius_factor * spread
    if len(scene_points):
        reach = np.percentile(np.linalg.norm(scene_points - center, axis=1), 98)
        radius = max(radius, 1.5 * float(reach))
    up = _shared_up(cameras)

    def kept(count: int) -> np.ndarray:  # directions some camera sees, above the horizon
        directions = fibonacci_sphere(count)
        if up is not None:
            directions = directions[directions @ up > -HORIZON_MARGIN]
        seen = _pixel_samples(cameras, center + radius * directions, VIEW_MARGIN)[1]
        return directions[seen.any(1)]

    directions = kept(num)
    if 0 < len(directions) < num:  # a denser lattice, so about ``num`` land where cameras look
        directions = kept(int(np.ceil(num * num / len(directions))))
    points = center + radius * directions
    pixels, inside = _pixel_samples(cameras, points)  # the image itself: for colours
    samples = np.full((len(points), len(cameras), 3), np.nan, dtype=np.float32)
    for j, image in enumerate(images):
        rows = inside[:, j]
        u, v = pixels[rows, j].astype(np.int64).T
        samples[rows, j] = image[v, u, :3] / 255.0
    colors = np.full((len(points), 3), 0.5, dtype=np.float32)
    sampled = inside.any(1)
    colors[sampled] = np.nanmedian(samples[sampled], axis=1)
    if sampled.any() and not sampled.all():  # the margin: the nearest sampled point's colour
        from scipy.spatial import cKDTree

        nearest = cKDTree(points[sampled]).query(points[~sampled])[1]
        colors[~sampled] = colors[sampled][nearest]
    return points.astype(np.float32), colors


def _shared_up(cameras) -> np.ndarray | None:
    """The world's up direction as the cameras hold it (the mean of their -y axes), or None when
    they disagree (a capture that rolls the camera freely)."""
    ups = -np.stack([c.world_to_camera[1, :3] for c in cameras])
    mean = ups.mean(0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0.7 else None


def fibonacci_sphere(num: int) -> np.ndarray:
    """[num, 3] unit vectors spread evenly over the sphere (the golden-angle spiral)."""
    i = np.arange(num) + 0.5
    z = 1.0 - 2.0 * i / num
    r = np.sqrt(1.0 - z * z)
    phi = np.pi * (3.0 - np.sqrt(5.0)) * i
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], -1)


def _pixel_samples(cameras, points: np.ndarray, margin: float = 0.0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Pixel indices [P, C, 2] (x, y) of the points in each camera and [P, C] whether they fall in
    front of it, inside its image widened by ``margin`` times its size on every side (the
    indices are only meant for points inside the image itself)."""
    pixels = np.zeros((len(points), len(cameras), 2))
    inside = np.zeros((len(points), len(cameras)), dtype=bool)
    for j, camera in enumerate(cameras):
        uv, z = camera.project(points)
        size = np.array([camera.width, camera.height])
        ok = (z > 0) & np.isfinite(uv).all(1)
        ok &= (uv >= -margin * size).all(1) & (uv < (1 + margin) * size).all(1)
        pixels[ok, j] = np.clip(np.floor(uv[ok]), 0, size - 1)
        inside[:, j] = ok
    return pixels, inside


def triangulated(cameras, images: Sequence[np.ndarray], cache: Path | None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`recon.data.matches.triangulated_points` of the views, read from ``cache`` (an .npz)
    when it is there, written to it when not."""
    from recon.data.matches import triangulated_points

    if cache is not None and cache.is_file():
        with np.load(cache) as saved:
            return saved["points"], saved["colors"]
    points, colors = triangulated_points(list(cameras), list(images))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, points=points, colors=colors)
    return points, colors


def mean_neighbour_distance(points: np.ndarray, k: int = 3) -> np.ndarray:
    """[N] mean distance of each point to its ``k`` nearest other points (3DGS's initial scale).

    Coincident points would give a zero (log -inf) scale, so distances are floored at a tiny
    fraction of the cloud's extent.
    """
    from scipy.spatial import cKDTree

    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    extent = float(np.ptp(points, axis=0).max()) if n > 1 else 1.0
    floor = 1e-7 * max(extent, 1e-12)
    if n < 2:
        return np.full(n, max(extent, 1e-2))
    kk = min(k, n - 1)
    dist, _ = cKDTree(points).query(points, k=kk + 1)
    return np.maximum(dist[:, 1:].mean(1), floor)


def random_points(num: int, center: np.ndarray, half_extent: float,
                  generator: torch.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``num`` points uniform in the cube ``center`` ± ``half_extent``, uniform random colours."""
    u = torch.rand(num, 3, generator=generator, dtype=torch.float64).numpy()
    colors = torch.rand(num, 3, generator=generator).numpy()
    points = np.asarray(center, dtype=np.float64) + (2.0 * u - 1.0) * half_extent
    return points.astype(np.float32), colors


def viewed_region(cameras) -> tuple[np.ndarray, float]:
    """Centre and half-width of the region every camera looks at, for random initialisation.

    The centre is the least-squares point nearest to all optical axes (the look-at point of an
    orbit). The half-width is the median over cameras of the half field of view at that point's
    depth, so the cube fills the images. When the axes are nearly parallel (a forward-facing
    capture) the centre falls back to one median depth-width in front of the cameras.
    """
    centers = np.stack([c.center for c in cameras])
    dirs = np.stack([c.forward for c in cameras])
    dirs = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
    # Σ (I - d dᵀ) x = Σ (I - d dᵀ) c: the point with the least squared distance to all axes.
    proj = np.eye(3)[None] - dirs[:, :, None] * dirs[:, None, :]
    a = proj.sum(0)
    b = (proj @ centers[:, :, None]).sum(0)[:, 0]
    radius = float(np.linalg.norm(centers - centers.mean(0), axis=1).max()) or 1.0
    center = None
    if np.linalg.cond(a) < 1e4:
        x = np.linalg.solve(a, b)
        depths = ((x - centers) * dirs).sum(1)
        if np.median(depths) > 0 and np.linalg.norm(x - centers.mean(0)) < 10 * radius:
            center = x
    if center is None:
        center = (centers + dirs * radius).mean(0)
    depths = np.abs(((center - centers) * dirs).sum(1))
    tan_half = np.array([min(c.width / (2 * c.fx), c.height / (2 * c.fy)) for c in cameras])
    return center, float(np.median(depths * tan_half))


__all__ = ["MIN_TRIANGULATED", "far_points", "fibonacci_sphere", "initial_points",
           "mean_neighbour_distance", "random_points", "triangulated", "viewed_region"]
