"""Small Gaussian sets with primed Adam optimizers and a camera to render them (strategy tests)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon.cameras import Camera, look_at
from recon.models.base import create_optimizers

LRS = {"means": 1.6e-4, "quats": 1e-3, "scales": 5e-3, "opacities": 5e-2, "sh0": 2.5e-3,
       "shN": 2.5e-3 / 20}


def random_splats(n: int, seed: int = 0, opacity: tuple[float, float] = (0.3, 0.8),
                  scale: tuple[float, float] = (0.06, 0.18)) -> torch.nn.ParameterDict:
    """``n`` Gaussians in front of :func:`camera`: means in a 1.8 × 1.8 × 1 box, scales and
    opacities uniform in the given ranges, SH degree 1."""
    g = torch.Generator().manual_seed(seed)
    u = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    lo, hi = opacity
    slo, shi = scale
    values = {
        "means": (u(n, 3) * 2 - 1) * torch.tensor([0.9, 0.9, 0.5]),
        "quats": torch.randn(n, 4, generator=g),
        "scales": torch.log(u(n, 3) * (shi - slo) + slo),
        "opacities": torch.logit(u(n) * (hi - lo) + lo),
        "sh0": (u(n, 1, 3) - 0.5) / 0.28209479177387814,
        "shN": 0.1 * torch.randn(n, 3, 3, generator=g),
    }
    return torch.nn.ParameterDict({k: torch.nn.Parameter(v) for k, v in values.items()})


def primed_optimizers(splats: torch.nn.ParameterDict, seed: int = 0) -> dict:
    """One Adam per parameter after one step on random gradients, so every moment row is
    non-zero and distinct (a moved row is then recognisable)."""
    optimizers = create_optimizers(splats, LRS)
    g = torch.Generator().manual_seed(seed + 1)
    for name, p in splats.items():
        p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)
        optimizers[name].step()
        p.grad = None
    return optimizers


def camera(size: int = 64) -> Camera:
    """A pinhole camera 4 units in front of the origin, looking at it."""
    w2c = look_at(np.array([0.0, 0.0, -4.0]), np.zeros(3), up=(0.0, -1.0, 0.0))
    return Camera(size, size, float(size), float(size), size / 2, size / 2, w2c)


@pytest.fixture
def splat_set():
    return random_splats


@pytest.fixture
def optimizers_for():
    return primed_optimizers


@pytest.fixture
def test_camera():
    return camera
