"""Initialisation of the splat parameters and their conversion for render()."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recon.cameras import Camera, look_at
from recon.render import render
from recon.train.splats import (create_optimizers, create_splats, mean_neighbour_distance,
                                random_points, sh0_to_rgb, sh_coefficients, to_gaussians,
                                viewed_region)


def grid(spacing: float) -> np.ndarray:
    axis = np.arange(4) * spacing
    return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)


def test_scales_from_three_nearest_neighbours():
    # On a cubic lattice every point has at least 3 neighbours at exactly the spacing.
    pts = grid(0.25)
    assert np.allclose(mean_neighbour_distance(pts), 0.25, atol=1e-12)
    splats = create_splats(pts, np.full((len(pts), 3), 0.2), max_sh_degree=3, init_scale=0.1,
                           init_opacity=0.5)
    assert torch.allclose(splats["scales"], torch.full((64, 3), math.log(0.025)), atol=1e-6)
    assert torch.allclose(torch.sigmoid(splats["opacities"]), torch.full((64,), 0.5))
    assert torch.allclose(splats["quats"].norm(dim=-1), torch.ones(64), atol=1e-6)
    assert splats["sh0"].shape == (64, 1, 3) and splats["shN"].shape == (64, 15, 3)
    assert torch.count_nonzero(splats["shN"]) == 0
    assert torch.allclose(sh0_to_rgb(splats["sh0"][:, 0]), torch.full((64, 3), 0.2), atol=1e-6)


def test_coincident_points_get_finite_scales():
    pts = np.zeros((5, 3))
    pts[4] = 1.0
    splats = create_splats(pts, np.zeros((5, 3)), max_sh_degree=0, init_scale=1.0,
                           init_opacity=0.1)
    assert torch.isfinite(splats["scales"]).all()
    assert splats["shN"].shape == (5, 0, 3)


def test_initial_colour_renders_as_given():
    """One big opaque Gaussian initialised with a colour renders that colour at its centre."""
    colour = np.array([[0.9, 0.3, 0.1]])
    splats = create_splats(np.zeros((1, 3)), colour, max_sh_degree=3, init_scale=1.0,
                           init_opacity=0.999)
    with torch.no_grad():
        splats["scales"].fill_(math.log(0.5))
    cam = Camera(32, 32, 30.0, 30.0, 16.0, 16.0, look_at(np.array([0.0, -3.0, 0.0]), np.zeros(3)))
    out = render(to_gaussians(splats), cam, sh_coefficients(splats), sh_degree=3, depth=False,
                 normals=False)
    centre = out.features[:, 15:17, 15:17].mean((1, 2))
    # Opacity 0.999 (capped at 0.99 by the rasterizer) over a black background.
    assert torch.allclose(centre, torch.tensor([0.9, 0.3, 0.1]) * 0.99, atol=5e-3)


def test_random_points_stay_in_the_cube():
    g = torch.Generator().manual_seed(0)
    pts, colors = random_points(5000, np.array([1.0, -2.0, 0.5]), 0.3, g)
    assert pts.shape == (5000, 3) and colors.shape == (5000, 3)
    assert np.all(np.abs(pts - [1.0, -2.0, 0.5]) <= 0.3 + 1e-6)
    assert np.all(np.abs(pts - [1.0, -2.0, 0.5]).max(0) > 0.29)  # fills it
    assert colors.min() >= 0 and colors.max() <= 1


def test_viewed_region_of_an_orbit():
    target = np.array([0.3, -0.2, 0.1])
    cams = []
    for i in range(8):
        a = 2 * np.pi * i / 8
        eye = target + 4.0 * np.array([np.cos(a), np.sin(a), 0.5])
        cams.append(Camera(100, 80, 100.0, 100.0, 50.0, 40.0, look_at(eye, target)))
    center, half = viewed_region(cams)
    assert np.allclose(center, target, atol=1e-9)
    # Half field of view (the shorter, vertical side: 40 px / 100 px) at distance 4·√1.25.
    assert half == pytest.approx(4.0 * math.sqrt(1.25) * 0.4, rel=1e-9)


def test_viewed_region_on_lego(shared_data):
    from recon.data import load_dataset

    ds = load_dataset(shared_data / "lego_100.npz")
    center, half = viewed_region(ds.cameras)
    # The lego cameras orbit the input origin at radius ~4.03 with a 0.36 half-fov tangent.
    assert np.allclose(center, ds.normalization.apply(np.zeros((1, 3)))[0], atol=2e-3)
    assert half / ds.normalization.scale == pytest.approx(1.45, abs=0.03)


def test_one_adam_per_parameter():
    splats = create_splats(grid(1.0), np.zeros((64, 3)), max_sh_degree=1, init_scale=1.0,
                           init_opacity=0.1)
    lrs = {"means": 1.0, "quats": 2.0, "scales": 3.0, "opacities": 4.0, "sh0": 5.0, "shN": 6.0}
    opts = create_optimizers(splats, lrs)
    assert set(opts) == set(splats.keys())
    for name, opt in opts.items():
        (group,) = opt.param_groups
        assert group["params"] == [splats[name]] and group["lr"] == lrs[name]
        assert group["eps"] == 1e-15
