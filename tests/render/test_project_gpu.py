"""The CUDA fast paths against their references (skipped without a GPU): the CUDA SH op against
the CPU one, and the rasterizer's register kernels (3, 4, 7 channels) and partial-warp tiles
against the CPU backend. (The fused projection is checked on both devices in
test_fused_projection.py.)"""

from __future__ import annotations

import pytest
import torch

from recon._ops import spherical_harmonics
from recon.primitives import Gaussians
from recon.render import render

from recon.render.testing import random_gaussians as gaussians
from recon.render.testing import two_cameras

pytestmark = pytest.mark.gpu

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
        r = render(Gaussians(*leaves[:4]), two_cameras(), leaves[4], depth=depth, normals=normals,
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
