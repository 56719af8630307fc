"""Helpers shared by the rasterizer tests of every primitive type (as kaolin's utils/testing).

They live in the package so test modules of different primitives can share them without
importing each other.
"""

from __future__ import annotations

import math

import torch

from recon._ops import rasterize
from recon.render.binning import bin_footprints
from recon.render.reference import rasterize_dense


def filled_cube(n: int, seed: int = 0) -> list[torch.Tensor]:
    """n Gaussians filling a 2-unit cube about the origin, sized like a fitted scene (spacing
    ~ n^-1/3), with SH degree 3 colours: [means, quats, log-scales, opacity logits, sh], CPU."""
    gen = torch.Generator().manual_seed(seed)
    spacing = 2.0 / n ** (1 / 3)
    return [torch.rand(n, 3, generator=gen) * 2 - 1, torch.randn(n, 4, generator=gen),
            torch.randn(n, 3, generator=gen) * 0.3 + math.log(0.5 * spacing),
            torch.randn(n, generator=gen), torch.randn(n, 16, 3, generator=gen) * 0.2]


def cameras(count: int, width: int, height: int, dtype=torch.float32, focal: float = 40.0):
    """``count`` pinhole cameras 3 units in front of the origin, spread along x: (viewmats, Ks)."""
    viewmats = torch.eye(4, dtype=dtype).repeat(count, 1, 1)
    viewmats[:, 2, 3] = 3.0
    viewmats[:, 0, 3] = torch.linspace(-0.3, 0.3, count, dtype=dtype)
    Ks = torch.tensor([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]],
                      dtype=dtype).repeat(count, 1, 1)
    return viewmats, Ks


def native(fp, params, opacities, features, width, height, tile_size=16):
    """The native rasterizer on footprints ``fp`` (binning included)."""
    bins = bin_footprints(fp.bounds, fp.depths, width, height, tile_size)
    return rasterize(params, opacities, features, bins.isect_prims, bins.tile_ranges,
                     fp.kind, width, height, tile_size)


def reference(fp, params, opacities, features, width, height):
    """The dense pure-torch reference on the same inputs as :func:`native`."""
    return rasterize_dense(fp.kind, params, opacities, features, fp.depths, fp.visible,
                           width, height)


def leaves(*tensors):
    """Detached copies that require grad (fresh autograd leaves)."""
    return [t.detach().clone().requires_grad_() for t in tensors]


def random_gaussians(n: int, dtype=torch.float32, seed: int = 0):
    """``n`` random Gaussians around the origin, some behind or beside the cameras of
    :func:`two_cameras` (so culling is exercised too)."""
    from recon.primitives import Gaussians

    gen = torch.Generator().manual_seed(seed)
    return Gaussians(
        means=torch.randn(n, 3, generator=gen, dtype=dtype) * 1.5,
        quats=torch.randn(n, 4, generator=gen, dtype=dtype),
        log_scales=torch.randn(n, 3, generator=gen, dtype=dtype) * 0.7 - 2.5,
        opacity_logits=torch.randn(n, generator=gen, dtype=dtype))


def two_cameras(width: int = 67, height: int = 45):
    """Two posed cameras looking at the origin, with a non-centred principal point."""
    import numpy as np

    from recon.cameras import Camera, look_at

    return [Camera(width, height, 50.0, 48.0, 30.0, 25.0, look_at(np.array(eye), np.zeros(3)))
            for eye in ((0.0, -3.0, 0.8), (2.0, -1.0, 0.3))]
