"""Rendered training views (colour, opacity, depth) and the surface points they see.

Both extraction methods start from what the fitted scene renders into its training cameras:
SuGaR centres its ray samples on the rendered depth, TSDF fuses the depth maps. Depth is camera
z, the median (default) or expected depth of the pixel; pixels whose opacity is below
``alpha_min`` carry no surface and get depth 0 (as do pixels that never reach opacity 0.5 when the
median is asked for: they have no median).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from recon.cameras import Camera
from recon.errors import ReconError


@dataclass
class View:
    """One rendered view: rgb float32 [H,W,3] in [0,1], alpha [H,W], depth [H,W] (0: none)."""

    camera: Camera
    rgb: np.ndarray
    alpha: np.ndarray
    depth: np.ndarray


def render_views(primitives, colors, cameras: Sequence[Camera], sh_degree: int,
                 backend: str = "auto", alpha_min: float = 0.5,
                 depth: Literal["median", "expected"] = "median", progress=None,
                 **render_options) -> list[View]:
    """Render colour, opacity and depth of ``primitives`` (any renderable set; ``colors`` its SH
    coefficients) into ``cameras``.

    Colours are rendered over black and divided by alpha, so pixels keep their surface colour
    whatever background the run was fitted on.
    """
    from recon.render import render

    views = []
    for cam in track(progress, cameras, "rendering views"):
        with torch.no_grad():
            out = render(primitives, cam, colors, background=None, backend=backend,
                         sh_degree=sh_degree, depth=True, normals=False, **render_options)
        alpha = out.alpha.cpu().numpy()
        rgb = out.features.permute(1, 2, 0).cpu().numpy() / np.maximum(alpha, 1e-6)[..., None]
        z = (out.median_depth if depth == "median" else out.depth).cpu().numpy()
        z = np.where(alpha >= alpha_min, z, 0.0)
        views.append(View(cam, np.clip(rgb, 0.0, 1.0).astype(np.float32),
                          alpha.astype(np.float32), z.astype(np.float32)))
    return views


def pixel_rays(camera: Camera, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World-space origin [3] and directions [M,3] of pixels (rows, cols), scaled so that a
    point at camera depth z is origin + z · direction (pixel centres at +0.5)."""
    x = (cols + 0.5 - camera.cx) / camera.fx
    y = (rows + 0.5 - camera.cy) / camera.fy
    local = np.stack([x, y, np.ones_like(x)], -1)
    c2w = camera.camera_to_world
    return c2w[:3, 3], local @ c2w[:3, :3].T


def depth_points(view: View) -> tuple[np.ndarray, np.ndarray]:
    """World points [M,3] and colours [M,3] of the pixels of ``view`` that have depth."""
    rows, cols = np.nonzero(view.depth > 0)
    origin, dirs = pixel_rays(view.camera, rows, cols)
    return origin + dirs * view.depth[rows, cols, None], view.rgb[rows, cols]


def surface_sphere(views: Sequence[View], max_points: int = 200_000,
                   seed: int = 0) -> tuple[np.ndarray, float]:
    """Centre and radius of the rendered surface: the median of all depth points and the
    distance holding 99% of them (a robust bound: stray floaters do not inflate it)."""
    points = np.concatenate([depth_points(v)[0] for v in views]) if views else np.zeros((0, 3))
    if len(points) == 0:
        raise ReconError("The run renders no opaque pixel in its training views, so there is no "
                         "surface to extract. Check the fit (recon eval RUN) or lower "
                         "--view.alpha-min.")
    if len(points) > max_points:
        points = points[np.random.default_rng(seed).choice(len(points), max_points, replace=False)]
    center = np.median(points, axis=0)
    radius = float(np.quantile(np.linalg.norm(points - center, axis=1), 0.99))
    return center, max(radius, 1e-9)


def track(progress, items, description: str):
    """Iterate ``items``, advancing a task of the rich ``progress`` (if any)."""
    if progress is None:
        yield from items
        return
    task = progress.add_task(description, total=len(items))
    for item in items:
        yield item
        progress.advance(task)


__all__ = ["View", "depth_points", "pixel_rays", "render_views", "surface_sphere", "track"]
