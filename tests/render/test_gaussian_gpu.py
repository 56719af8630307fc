"""CUDA backend against the CPU backend on the same random scenes (skipped without a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon.cameras import Camera, look_at
from recon.primitives import Gaussians
from recon.render import render

pytestmark = pytest.mark.gpu

W, H = 67, 45  # partial edge tiles


def scene(seed: int, n: int, dtype):
    gen = torch.Generator().manual_seed(seed)
    g = Gaussians(
        means=torch.randn(n, 3, generator=gen, dtype=dtype) * 0.6,
        quats=torch.randn(n, 4, generator=gen, dtype=dtype),
        log_scales=torch.randn(n, 3, generator=gen, dtype=dtype) * 0.5 - 2.5,
        opacity_logits=torch.randn(n, generator=gen, dtype=dtype) + 1.0)
    cams = [Camera(W, H, 50.0, 50.0, W / 2, H / 2, look_at(np.array(eye), np.zeros(3)))
            for eye in ((0.0, -3.0, 0.8), (2.5, -1.5, 0.3))]
    features = torch.rand(n, 5, generator=gen, dtype=dtype)
    return g, cams, features


def run(g: Gaussians, cams, features, device: str):
    leaves = [t.detach().to(device).requires_grad_()
              for t in (g.means, g.quats, g.log_scales, g.opacity_logits)]
    moved = Gaussians(*leaves)
    r = render(moved, cams, features.to(device), backend="auto", absgrad=True)
    gen = torch.Generator().manual_seed(9)
    v = torch.randn(r.features.shape, generator=gen, dtype=r.features.dtype).to(device)
    loss = (r.features * v).sum() + r.depth.sum() + r.alpha.square().sum()
    grads = torch.autograd.grad(loss, leaves)
    outputs = [r.features, r.alpha, r.depth, r.median_depth, r.normals, r.max_weight, r.absgrad]
    return [t.detach().cpu() for t in outputs], [gr.cpu() for gr in grads]


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.float64, 1e-10)])
@pytest.mark.parametrize("n", [200, 3000])
def test_cuda_matches_cpu(dtype, tol, n):
    g, cams, features = scene(n, n, dtype)
    cpu_out, cpu_grads = run(g, cams, features, "cpu")
    gpu_out, gpu_grads = run(g, cams, features, "cuda")
    assert cpu_out[1].max() > 0.5
    for a, b in zip(gpu_out, cpu_out):
        assert (a - b).abs().max() <= tol * max(1.0, float(b.abs().max()))
    # GPU gradients are summed with atomics in another order than the CPU's: rounding only.
    for a, b in zip(gpu_grads, cpu_grads):
        assert (a - b).abs().max() <= 10 * tol * float(b.abs().max())
