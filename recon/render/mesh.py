"""A plain mesh renderer: opaque triangles with per-vertex colours through recon's rasterizer.

Each face becomes an opaque triangle primitive (``project(..., opaque=True)``: solid inside, a
``band``-pixel linear ramp outside its edges so silhouettes stay differentiable); colours are
interpolated by barycentrics and faces composite front to back by centroid depth, which equals a
z-buffer wherever faces do not interpenetrate.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from recon.cameras import Camera
from recon.primitives.triangles import Triangles
from recon.render import RenderResult, render


def render_mesh(vertices: Tensor, faces: Tensor, colours: Tensor,
                cameras: Camera | Sequence[Camera], background: Tensor | None = None,
                backend: str = "auto", band: float = 1.0, **options) -> RenderResult:
    """Render a mesh (``vertices`` [V, 3], ``faces`` [F, 3] long, ``colours`` [V, C]) into
    ``cameras``; ``options`` go to :func:`recon.render.render` (depth, normals, ...)."""
    corners = vertices[faces]
    zeros = torch.zeros(len(faces), dtype=vertices.dtype, device=vertices.device)
    triangles = Triangles(vertices=corners, log_sigma=zeros, opacity_logit=zeros)
    return render(triangles, cameras, colours[faces], background=background, backend=backend,
                  opaque=True, band=band, **options)


__all__ = ["render_mesh"]
