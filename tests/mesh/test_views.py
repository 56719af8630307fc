"""Rendered views for meshing: which depth a pixel's surface is at."""

import math

import numpy as np
import pytest
import torch

from recon.cameras import Camera
from recon.errors import ReconError
from recon.mesh.options import ViewOptions
from recon.mesh.views import render_views
from recon.models.base import sh_coefficients
from recon.models.gaussians import to_gaussians
from recon.render.sh import rgb_to_sh0

FRONT, BACK = 1.0, 1.5


def layer(z: float, opacity: float, spacing: float = 0.02) -> dict:
    """A square lattice of flat Gaussians (σ = spacing in the plane, 1e-3 of it across) in the
    plane at camera z: each is drawn at depth z exactly (a flat splat is drawn as its plane)."""
    g = np.arange(-0.6, 0.6 + 1e-9, spacing)
    x, y = np.meshgrid(g, g)
    n = x.size
    return {
        "means": torch.tensor(np.stack([x.ravel(), y.ravel(), np.full(n, z)], 1),
                              dtype=torch.float32),
        "quats": torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
        "scales": torch.tensor([math.log(spacing)] * 2 + [math.log(spacing * 1e-3)]).repeat(n, 1),
        "opacities": torch.full((n,), math.log(opacity / (1 - opacity))),
        "sh0": rgb_to_sh0(torch.tensor([0.5, 0.5, 0.5]))[None, None].repeat(n, 1, 1),
        "shN": torch.zeros(n, 0, 3),
    }


def views(splats, camera, **options):
    return render_views(to_gaussians(splats), sh_coefficients(splats), [camera], sh_degree=0,
                        backend="cpu", **options)


@pytest.fixture(scope="module")
def two_layers():
    """A translucent sheet (accumulated opacity ≈ 0.6) in front of an opaque one."""
    front, back = layer(FRONT, 0.1), layer(BACK, 0.99)
    splats = {k: torch.cat([front[k], back[k]]) for k in front}
    camera = Camera(32, 32, 40.0, 40.0, 16.0, 16.0, np.eye(4))  # looks down +z from the origin
    return splats, camera, front, back


def test_median_depth_is_the_first_layer_that_hides_what_is_behind(two_layers):
    splats, camera, front, back = two_layers
    a, b = (views(s, camera)[0].alpha for s in (front, back))
    median = views(splats, camera, depth="median")[0]
    expected = views(splats, camera, depth="expected")[0]
    centre = (slice(8, 24), slice(8, 24))
    assert (a[centre] > 0.55).all() and (median.alpha[centre] > 0.99).all()
    # Every Gaussian of the front sheet is at z = 1 exactly, and it passes T = 0.5 on its own.
    np.testing.assert_allclose(median.depth[centre], FRONT, atol=1e-6)
    # Σ w z / Σ w mixes in the back sheet seen through the front one: front weight a, back
    # weight (1 - a) b, with a and b each sheet's own opacity (to ~5e-4: blending stops once
    # T < 1e-4, which cuts the back sheet's tail at a different place when it is seen alone).
    w_back = (1 - a) * b
    mix = (a * FRONT + w_back * BACK) / (a + w_back)
    np.testing.assert_allclose(expected.depth[centre], mix[centre], rtol=1e-3)
    assert (expected.depth[centre] > FRONT + 0.15).all()


def test_view_options_name_the_depth():
    with pytest.raises(ReconError, match="--view.depth"):
        ViewOptions(depth="mean").validate()
