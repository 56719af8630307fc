"""recon.render.render(): backends agree, result shapes, statistics, options and errors."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from recon.cameras import Camera, look_at
from recon.errors import ReconError
from recon.primitives import Gaussians
from recon.render import render

W, H = 40, 30


def camera(eye=(0.0, -3.0, 0.8)) -> Camera:
    return Camera(W, H, 35.0, 35.0, W / 2, H / 2, look_at(np.array(eye), np.zeros(3)))


def gaussians(seed: int = 0, n: int = 40, dtype=torch.float32) -> Gaussians:
    gen = torch.Generator().manual_seed(seed)
    return Gaussians(
        means=torch.randn(n, 3, generator=gen, dtype=dtype) * 0.5,
        quats=torch.randn(n, 4, generator=gen, dtype=dtype),
        log_scales=torch.randn(n, 3, generator=gen, dtype=dtype) * 0.4 - 2.3,
        opacity_logits=torch.randn(n, generator=gen, dtype=dtype) + 1.0)


def require_grad(g: Gaussians) -> list[torch.Tensor]:
    leaves = [g.means, g.quats, g.log_scales, g.opacity_logits]
    for t in leaves:
        t.requires_grad_()
    return leaves


def test_cpu_backend_matches_torch_reference_end_to_end():
    cams = [camera(), camera((2.0, -2.0, 1.0))]
    colors = torch.rand(40, 3, generator=torch.Generator().manual_seed(1))
    results, grads = [], []
    for backend in ("cpu", "torch"):
        g = gaussians()
        leaves = require_grad(g)
        r = render(g, cams, colors, background=torch.tensor([0.2, 0.3, 0.4]), backend=backend)
        loss = (r.features.square().sum() + r.depth.sum() + r.normals.sum() + r.alpha.sum())
        grads.append(torch.autograd.grad(loss, leaves))
        results.append(r)
    a, b = results
    assert a.features.shape == (2, 3, H, W) and a.normals.shape == (2, 3, H, W)
    assert b.alpha.max() > 0.9
    for name in ("features", "alpha", "normals", "max_weight"):
        assert (getattr(a, name) - getattr(b, name)).abs().max() <= 1e-5, name
    # Depth is a ratio Σwz/Σw: relative agreement where something was drawn. (The cpu backend
    # projects with the fused native op, the torch one with torch ops: float32 rounding differs,
    # and Σwz/Σw amplifies it where Σw is tiny, so nearly empty pixels are left out.)
    drawn = b.alpha > 1e-2
    assert ((a.depth - b.depth)[drawn].abs() / b.depth[drawn]).max() <= 1e-5
    # The same primitive sets each pixel's median depth; its z differs by rounding only.
    torch.testing.assert_close(a.median_depth, b.median_depth, rtol=1e-6, atol=0.0)
    for ga, gb in zip(*grads):
        assert (ga - gb).abs().max() <= 1e-3 * gb.abs().max()


def test_single_camera_drops_the_camera_axis_and_stats_are_per_camera():
    g = gaussians()
    r = render(g, camera(), torch.rand(40, 5))
    assert r.features.shape == (5, H, W)
    assert r.alpha.shape == r.depth.shape == r.median_depth.shape == (H, W)
    assert r.means2d.shape == (1, 40, 2) and r.radii.shape == (1, 40)
    assert torch.equal(r.visibility_count, r.visible[0].to(torch.int32))
    assert torch.all(r.radii[~r.visible] == 0) and torch.all(r.radii[r.visible] > 0)


def test_a_tilted_flat_splat_draws_its_plane_not_its_centre_depth():
    """A flat opaque splat in the plane z = z0 - tan θ x (its normal tilted by θ about y) is
    drawn at the first-order ray-plane depth z0 (1 - tan θ x'), x' = (u - cx) / fx, on every
    backend; a constant centre depth would be off by z0 tan θ |x'|."""
    theta, z0 = math.radians(40.0), 2.0
    splat = Gaussians(
        means=torch.tensor([[0.0, 0.0, z0]]),
        quats=torch.tensor([[math.cos(theta / 2), 0.0, math.sin(theta / 2), 0.0]]),
        log_scales=torch.tensor([[2.0, 2.0, math.log(1e-4)]]),
        opacity_logits=torch.tensor([6.0]))
    cam = Camera(W, H, 35.0, 35.0, W / 2, H / 2, np.eye(4))
    x = (torch.arange(W) + 0.5 - W / 2) / 35.0
    first_order = (z0 * (1 - math.tan(theta) * x)).expand(H, W)
    exact = (z0 / (1 + math.tan(theta) * x)).expand(H, W)
    near = (slice(10, 20), slice(14, 26))  # |x'| <= 0.17
    for backend in ("cpu", "torch"):
        r = render(splat, cam, torch.ones(1, 3), backend=backend)
        assert (r.alpha[near] > 0.95).all()
        for depth in (r.depth, r.median_depth):
            torch.testing.assert_close(depth[near], first_order[near], rtol=1e-5, atol=0.0)
            # What is left is second order: z0 (tan θ x')² / (1 + tan θ x') <= 16 % of the
            # tilt here (tan θ |x'| <= 0.14), where the centre depth would miss all of it.
            tilt = (first_order - z0).abs()[near]
            assert ((depth[near] - exact[near]).abs() <= 0.16 * tilt + 1e-6).all()


def test_background_and_depth_of_one_splat_covering_the_image():
    g = Gaussians(means=torch.zeros(1, 3), quats=torch.tensor([[1.0, 0, 0, 0]]),
                  log_scales=torch.full((1, 3), 2.0), opacity_logits=torch.tensor([0.0]))
    cam = camera()
    r = render(g, cam, torch.tensor([[1.0, 0.0]]), background=torch.tensor([0.0, 1.0]))
    # Opacity ½ and a Gaussian much wider than the view: α within a few % of ½ everywhere.
    assert torch.all((r.alpha - 0.5).abs() < 0.03)
    torch.testing.assert_close(r.features[0], r.alpha)
    torch.testing.assert_close(r.features[1], 1.0 - r.alpha)
    z = float(np.linalg.norm([0.0, -3.0, 0.8]))
    torch.testing.assert_close(r.depth, torch.full((H, W), z), rtol=1e-5, atol=0)
    assert torch.all(r.median_depth == 0)  # T never drops below ½ with a single α < ½


def test_statistics_after_backward():
    g = gaussians(2)
    require_grad(g)
    r = render(g, [camera(), camera((0.0, -3.0, -0.8))], torch.rand(40, 3), absgrad=True)
    r.features.sum().backward()
    assert r.means2d.grad is not None and r.means2d.grad.shape == (2, 40, 2)
    moved = r.means2d.grad.abs().sum(-1) > 0
    assert torch.all(moved <= r.visible) and moved.any()
    assert torch.all(r.absgrad[..., :2] >= r.means2d.grad.abs() - 1e-5)
    assert torch.all(r.max_weight[~r.visible] == 0) and r.max_weight.max() <= 0.99
    assert torch.equal(r.visibility_count, r.visible.sum(0).to(torch.int32))


def test_outputs_and_gradients_are_finite_for_degenerate_splats():
    g = gaussians(3, n=6)
    with torch.no_grad():
        g.means[0] = torch.tensor([0.0, -3.0, 0.8])    # at the camera centre
        g.means[1] = torch.tensor([0.0, -6.0, 1.6])    # behind the camera
        g.log_scales[2] = 5.0                          # huge
        g.log_scales[3] = -30.0                        # vanishingly small
        g.means[4] = torch.tensor([50.0, 0.0, 0.0])    # off-screen
    leaves = require_grad(g)
    r = render(g, camera(), torch.rand(6, 3))
    for t in (r.features, r.alpha, r.depth, r.median_depth, r.normals):
        assert torch.isfinite(t).all()
    grads = torch.autograd.grad(r.features.sum() + r.depth.sum(), leaves)
    assert all(torch.isfinite(gr).all() for gr in grads)
    assert not r.visible[0, 0] and not r.visible[0, 1] and not r.visible[0, 4]
    assert r.visible[0, 2] and r.visible[0, 3]


def test_sh_features():
    g = gaussians(4)
    coeffs = torch.zeros(40, 4, 3)
    coeffs[:, 0] = 1.0  # DC only: colour = C0 + 0.5 whatever the view
    r = render(g, camera(), coeffs, sh_degree=1)
    flat = render(g, camera(), torch.full((40, 3), 0.28209479177387814 + 0.5))
    torch.testing.assert_close(r.features, flat.features)


def test_per_camera_features():
    g = gaussians(5)
    cams = [camera(), camera((0.5, -3.0, 0.8))]
    per_cam = torch.stack([torch.zeros(40, 2), torch.ones(40, 2)])
    r = render(g, cams, per_cam)
    assert torch.all(r.features[0] == 0)
    torch.testing.assert_close(r.features[1], r.alpha[1][None].expand(2, -1, -1))


def test_user_errors():
    g = gaussians()
    with pytest.raises(ReconError, match="Unknown render backend"):
        render(g, camera(), torch.rand(40, 3), backend="vulkan")
    with pytest.raises(ReconError, match="on the cuda device"):
        render(g, camera(), torch.rand(40, 3), backend="cuda")
    with pytest.raises(ReconError, match="share the image size"):
        render(g, [camera(), camera().scaled(0.5)], torch.rand(40, 3))
    with pytest.raises(ReconError, match="do not fit 40 primitives"):
        render(g, camera(), torch.rand(39, 3))
    with pytest.raises(ReconError, match="one value per feature channel"):
        render(g, camera(), torch.rand(40, 3), background=torch.zeros(4))
    with pytest.raises(ReconError, match="not a registered primitive type"):
        render(object(), camera(), torch.rand(40, 3))


def test_importing_render_builds_nothing():
    code = ("import recon.render, recon._ops, recon.primitives, recon._ops.build as b; "
            "print(b._loaded)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"
