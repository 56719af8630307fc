"""The fused native Gaussian projection (OpenMP on the CPU, CUDA on a GPU) against the torch
projection it replaces: same footprints, boxes and input gradients."""

from __future__ import annotations

import pytest
import torch

from recon._ops import project_gaussians
from recon.cameras import cameras_to_tensors
from recon.primitives import Gaussians
from recon.primitives.gaussians import project_torch
from recon.render.testing import random_gaussians as gaussians
from recon.render.testing import two_cameras

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
W, H = 67, 45  # odd sizes: partial tiles
OUTPUTS = ("means2d", "conics", "opacities", "depths", "normals")


def project_both(g: Gaussians, antialiased: bool, device: str):
    """Footprints and input gradients of the torch and the fused projection (one random
    cotangent for every differentiable output)."""
    viewmats, Ks = (t.to(g.means.dtype).to(device) for t in cameras_to_tensors(two_cameras(W, H)))
    results = []
    for fused in (False, True):
        leaves = [t.detach().to(device).requires_grad_() for t in
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
        loss = sum((o * torch.randn(o.shape, generator=gen, dtype=o.dtype).to(device)).sum()
                   for o in outs.values())
        grads = torch.autograd.grad(loss, leaves)
        results.append(({k: v.detach().cpu() for k, v in outs.items()}, bounds.cpu(),
                         radii.cpu(), [gr.cpu() for gr in grads]))
    return results


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("antialiased", [False, True])
def test_fused_projection_matches_torch_float64(antialiased, device):
    (ref, ref_bounds, ref_radii, ref_grads), (out, bounds, radii, grads) = project_both(
        gaussians(2000, torch.float64), antialiased, device)
    visible = (ref_bounds[..., 2] > ref_bounds[..., 0]) & (ref_bounds[..., 3] > ref_bounds[..., 1])
    assert 0.2 < visible.float().mean() < 0.95  # the scene exercises both culled and drawn
    for name in OUTPUTS:
        # Same float64 formulas in another order: only rounding differs.
        assert torch.allclose(out[name], ref[name], rtol=1e-10, atol=1e-12), name
    assert torch.equal(bounds, ref_bounds) and torch.equal(radii, ref_radii)
    for a, b in zip(grads, ref_grads):
        assert (a - b).abs().max() <= 1e-9 * b.abs().max()


@pytest.mark.parametrize("device", DEVICES)
def test_fused_projection_matches_torch_float32(device):
    (ref, ref_bounds, _, ref_grads), (out, bounds, _, grads) = project_both(
        gaussians(20000, torch.float32, seed=1), antialiased=False, device=device)
    for name in OUTPUTS:
        scale = ref[name].abs().max()
        assert (out[name] - ref[name]).abs().max() <= 1e-4 * scale, name
    # Pixel boxes are floor/ceil of float32 values: a rounding difference may move an edge by
    # one pixel, rarely.
    diff = (bounds - ref_bounds).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-3
    for a, b in zip(grads, ref_grads):
        assert (a - b).abs().max() <= 1e-3 * b.abs().max()
