"""The CUDA fast paths against their references (skipped without a GPU): the fused Gaussian
projection against the torch projection, the CUDA SH op against the CPU one, and the rasterizer's
register kernels (3, 4, 7 channels) and partial-warp tiles against the CPU backend."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon._ops import project_gaussians, spherical_harmonics
from recon.cameras import Camera, cameras_to_tensors, look_at
from recon.primitives import Gaussians
from recon.primitives.gaussians import project_torch
from recon.render import render

pytestmark = pytest.mark.gpu

W, H = 67, 45
OUTPUTS = ("means2d", "conics", "opacities", "depths", "normals")


def gaussians(n: int, dtype, seed: int = 0) -> Gaussians:
    gen = torch.Generator().manual_seed(seed)
    return Gaussians(
        means=torch.randn(n, 3, generator=gen, dtype=dtype) * 1.5,  # some behind / off-screen
        quats=torch.randn(n, 4, generator=gen, dtype=dtype),
        log_scales=torch.randn(n, 3, generator=gen, dtype=dtype) * 0.7 - 2.5,
        opacity_logits=torch.randn(n, generator=gen, dtype=dtype))


def cameras():
    return [Camera(W, H, 50.0, 48.0, 30.0, 25.0, look_at(np.array(eye), np.zeros(3)))
            for eye in ((0.0, -3.0, 0.8), (2.0, -1.0, 0.3))]


def project_both(g: Gaussians, antialiased: bool):
    """Footprints and input gradients of the torch and the fused projection (one random
    cotangent for every differentiable output)."""
    viewmats, Ks = (t.to(g.means.dtype).cuda() for t in cameras_to_tensors(cameras()))
    results = []
    for fused in (False, True):
        leaves = [t.detach().cuda().requires_grad_() for t in
                  (g.means, g.quats, g.log_scales, g.opacity_logits)]
        opts = dict(eps2d=0.3, near_plane=0.01, far_plane=1e10, antialiased=antialiased,
                    radius_clip=0.0)
        if fused:
            p = project_gaussians(*leaves, viewmats, Ks, W, H, **opts)
            outs = dict(zip(OUTPUTS, (p.means2d, p.conics, p.opacities, p.depths, p.normals)))
            bounds, radii = p.bounds, p.radii
        else:
            fp = project_torch(Gaussians(*leaves), viewmats, Ks, W, H, **opts)
            outs = dict(zip(OUTPUTS, (fp.means2d, fp.params[..., 2:], fp.opacities, fp.depths,
                                      fp.normals)))
            bounds, radii = fp.bounds, fp.radii
        gen = torch.Generator().manual_seed(3)
        loss = sum((o * torch.randn(o.shape, generator=gen, dtype=o.dtype).cuda()).sum()
                   for o in outs.values())
        grads = torch.autograd.grad(loss, leaves)
        results.append(({k: v.detach().cpu() for k, v in outs.items()}, bounds.cpu(),
                         radii.cpu(), [gr.cpu() for gr in grads]))
    return results


@pytest.mark.parametrize("antialiased", [False, True])
def test_fused_projection_matches_torch_float64(antialiased):
    (ref, ref_bounds, ref_radii, ref_grads), (out, bounds, radii, grads) = project_both(
        gaussians(2000, torch.float64), antialiased)
    visible = (ref_bounds[..., 2] > ref_bounds[..., 0]) & (ref_bounds[..., 3] > ref_bounds[..., 1])
    assert 0.2 < visible.float().mean() < 0.95  # the scene exercises both culled and drawn
    for name in OUTPUTS:
        # Same float64 formulas in another order: only rounding differs.
        assert torch.allclose(out[name], ref[name], rtol=1e-10, atol=1e-12), name
    assert torch.equal(bounds, ref_bounds) and torch.equal(radii, ref_radii)
    for a, b in zip(grads, ref_grads):
        assert (a - b).abs().max() <= 1e-9 * b.abs().max()


def test_fused_projection_matches_torch_float32():
    (ref, ref_bounds, _, ref_grads), (out, bounds, _, grads) = project_both(
        gaussians(20000, torch.float32, seed=1), antialiased=False)
    for name in OUTPUTS:
        scale = ref[name].abs().max()
        assert (out[name] - ref[name]).abs().max() <= 1e-4 * scale, name
    # Pixel boxes are floor/ceil of float32 values: a rounding difference may move an edge by
    # one pixel, rarely.
    diff = (bounds - ref_bounds).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-3
    for a, b in zip(grads, ref_grads):
        assert (a - b).abs().max() <= 1e-3 * b.abs().max()


@pytest.mark.parametrize("shared", [True, False])
def test_cuda_sh_matches_cpu(shared):
    gen = torch.Generator().manual_seed(5)
    B, N, C = 2, 1000, 3
    dirs = torch.randn(B, N, 3, generator=gen, dtype=torch.float64)
    coeffs = torch.randn(*(() if shared else (B,)), N, 16, C, generator=gen, dtype=torch.float64)
    v = torch.randn(B, N, C, generator=gen, dtype=torch.float64)
    results = []
    for device in ("cpu", "cuda"):
        d, c = (t.to(device).requires_grad_() for t in (dirs, coeffs))
        colors = spherical_harmonics(3, d, c)
        grads = torch.autograd.grad((colors * v.to(device)).sum(), (d, c))
        results.append([colors.detach().cpu(), *(g.cpu() for g in grads)])
    for a, b in zip(*results):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("depth,normals,tile_size", [(False, False, 16), (True, False, 16),
                                                     (True, True, 16), (False, False, 4)])
def test_register_kernels_match_cpu(depth, normals, tile_size):
    """RGB features composite with 3, 4 or 7 channels (the CUDA kernels that keep per-pixel sums
    in registers and sum gradients over warps); tile_size 4 leaves half of each warp idle."""
    g = gaussians(3000, torch.float32, seed=2)
    g.means = g.means * 0.4
    gen = torch.Generator().manual_seed(7)
    colors = torch.rand(3000, 3, generator=gen)
    results = []
    for device in ("cpu", "cuda"):
        leaves = [t.detach().to(device).requires_grad_() for t in
                  (g.means, g.quats, g.log_scales, g.opacity_logits, colors)]
        r = render(Gaussians(*leaves[:4]), cameras(), leaves[4], depth=depth, normals=normals,
                   absgrad=True, tile_size=tile_size)
        v = torch.randn(r.features.shape, generator=torch.Generator().manual_seed(9)).to(device)
        loss = (r.features * v).sum() + r.alpha.square().sum() + r.depth.sum()
        if normals:
            loss = loss + r.normals.sum()
        grads = torch.autograd.grad(loss, leaves)
        outs = [r.features, r.alpha, r.depth, r.median_depth, r.max_weight, r.absgrad]
        results.append(([t.detach().cpu() for t in outs], [gr.cpu() for gr in grads]))
    (cpu_out, cpu_grads), (gpu_out, gpu_grads) = results
    assert cpu_out[1].max() > 0.5
    for a, b in zip(gpu_out, cpu_out):
        assert (a - b).abs().max() <= 1e-4 * max(1.0, float(b.abs().max()))
    # Atomics sum in another order than the CPU: float32 rounding only.
    for a, b in zip(gpu_grads, cpu_grads):
        assert (a - b).abs().max() <= 1e-3 * float(b.abs().max())
