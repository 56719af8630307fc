"""The Gaussian density field: values, gradients and normals against closed forms."""

import math

import torch

from recon.models.density import GaussianDensity, outward_normals
from recon.primitives.gaussians import quat_to_rotmat


def _single_gaussian(opacity=0.8):
    quat = torch.tensor([[0.9, 0.2, -0.3, 0.25]], dtype=torch.float64)
    scales = torch.tensor([[0.3, 0.1, 0.02]], dtype=torch.float64)  # a flat, SuGaR-like splat
    mean = torch.tensor([[0.1, -0.2, 0.3]], dtype=torch.float64)
    field = GaussianDensity(mean, quat, scales.log(), torch.tensor([opacity], dtype=torch.float64))
    return field, mean[0], quat_to_rotmat(quat)[0], scales[0]


def test_level_set_of_one_gaussian_has_the_ellipsoid_normals():
    field, mean, rot, scales = _single_gaussian(opacity=0.8)
    level = 0.3
    radius = math.sqrt(2.0 * math.log(0.8 / level))         # Mahalanobis radius of d = level
    u = torch.randn(500, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    u = u / u.norm(dim=1, keepdim=True)
    points = mean + (u * scales * radius) @ rot.T           # on the ellipsoid d(p) = level
    density, grad = field(points)
    assert torch.allclose(density, torch.full_like(density, level), atol=1e-12)
    # Ellipsoid normal: Σ⁻¹ (p - μ) = R diag(1/s) u · radius, normalised.
    expected = (u / scales) @ rot.T
    expected = expected / expected.norm(dim=1, keepdim=True)
    normals = outward_normals(grad)
    assert torch.allclose(normals, expected, atol=1e-10)
    # Outward: the normal points away from the centre.
    assert ((normals * (points - mean)).sum(1) > 0).all()


def test_gradient_matches_finite_differences_of_a_mixture():
    g = torch.Generator().manual_seed(1)
    n = 40
    means = torch.rand(n, 3, generator=g, dtype=torch.float64)
    quats = torch.randn(n, 4, generator=g, dtype=torch.float64)
    log_scales = torch.log(0.05 + 0.1 * torch.rand(n, 3, generator=g, dtype=torch.float64))
    opacities = torch.rand(n, generator=g, dtype=torch.float64)
    field = GaussianDensity(means, quats, log_scales, opacities, neighbors=n)  # exact sum
    points = torch.rand(200, 3, generator=g, dtype=torch.float64)
    _, grad = field(points)
    h = 1e-6
    fd = torch.stack([(field(points + h * e, gradient=False)[0]
                       - field(points - h * e, gradient=False)[0]) / (2 * h)
                      for e in torch.eye(3, dtype=torch.float64)], 1)
    # Central differences in float64 with h = 1e-6: truncation ~h² · d''' and rounding ~1e-10.
    assert torch.allclose(grad, fd, atol=1e-7)


def test_nearest_neighbour_sum_matches_the_full_sum_for_separated_gaussians():
    # Gaussians 1 apart with scales <= 0.05: beyond the 4 nearest centres each term is below
    # exp(-0.5 (0.5/0.05)²) ~ 2e-22, so the truncated and the full sums agree.
    grid = torch.stack(torch.meshgrid(*[torch.arange(4.0, dtype=torch.float64)] * 3,
                                      indexing="ij"), -1).reshape(-1, 3)
    g = torch.Generator().manual_seed(2)
    quats = torch.randn(len(grid), 4, generator=g, dtype=torch.float64)
    log_scales = torch.full((len(grid), 3), math.log(0.05), dtype=torch.float64)
    opacities = torch.full((len(grid),), 0.9, dtype=torch.float64)
    near = GaussianDensity(grid, quats, log_scales, opacities, neighbors=4)
    full = GaussianDensity(grid, quats, log_scales, opacities, neighbors=len(grid))
    points = grid + 0.1 * torch.randn(len(grid), 3, generator=g, dtype=torch.float64)
    assert torch.allclose(near(points)[0], full(points)[0], rtol=1e-12, atol=1e-20)
    assert float(near(points)[0].min()) > 0.0


def test_empty_query_returns_empty_tensors():
    field, *_ = _single_gaussian()
    density, grad = field(torch.zeros(0, 3, dtype=torch.float64))
    assert density.shape == (0,) and grad.shape == (0, 3)
