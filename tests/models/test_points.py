"""Where a model's rows start: neighbour spacing, random points and the region the cameras view."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recon.cameras import Camera, look_at
from recon.models.points import mean_neighbour_distance, random_points, viewed_region


def grid(spacing: float) -> np.ndarray:
    axis = np.arange(4) * spacing
    return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)


def test_mean_neighbour_distance_on_a_lattice():
    # On a cubic lattice every point has at least 3 neighbours at exactly the spacing.
    assert np.allclose(mean_neighbour_distance(grid(0.25)), 0.25, atol=1e-12)


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
