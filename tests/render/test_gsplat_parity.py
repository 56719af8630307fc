"""recon's CUDA rasterizer against gsplat's `rasterization` on the same Gaussians (GPU only).

Both follow 3DGS: EWA projection with a 0.3 px low-pass, SH degree 3 (+0.5, clamped at 0), 16 px
tiles, α ≥ 1/255, front-to-back compositing stopped at transmittance 1e-4. Images agree to float32
rounding (1e-4 max abs, on values in [0, 1.5]); gradients are sums over many pixels accumulated with
atomics in a different order (and gsplat differentiates through ``exp(log_scale)`` and
``sigmoid(logit)`` itself), so they are compared by norm: relative error ≤ 1e-3 per tensor.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon.cameras import Camera, look_at
from recon.primitives import Gaussians
from recon.render import render
from recon.render.testing import filled_cube

pytestmark = pytest.mark.gpu
gsplat = pytest.importorskip("gsplat")

NAMES = ("means", "quats", "log_scales", "opacity_logits", "sh")


def scene(n: int, seed: int):
    return [t.cuda() for t in filled_cube(n, seed)]


def camera(width: int, height: int, eye) -> Camera:
    f = 0.8 * max(width, height)
    return Camera(width, height, f, f, width / 2 + 3.3, height / 2 - 2.1,
                  look_at(np.array(eye, dtype=float), np.zeros(3)))


def recon_render(tensors, cam, weights):
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    means, quats, log_scales, logits, sh = leaves
    r = render(Gaussians(means, quats, log_scales, logits), cam, sh, sh_degree=3,
               backend="cuda", depth=False, normals=False)
    image = r.features.permute(1, 2, 0)                                      # [H, W, 3]
    (image * weights).sum().backward()
    return image.detach(), [t.grad for t in leaves]


def gsplat_render(tensors, cam, weights):
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    means, quats, log_scales, logits, sh = leaves
    viewmat = torch.tensor(cam.world_to_camera, dtype=torch.float32, device="cuda")[None]
    K = torch.tensor(cam.K, dtype=torch.float32, device="cuda")[None]
    colors, _, _ = gsplat.rasterization(means, quats, log_scales.exp(), torch.sigmoid(logits), sh,
                                        viewmat, K, cam.width, cam.height, sh_degree=3,
                                        packed=False)
    image = colors[0]
    (image * weights).sum().backward()
    return image.detach(), [t.grad for t in leaves]


@pytest.mark.parametrize("n,width,height,eye", [
    (2_000, 97, 61, (0.0, -3.5, 1.0)),        # partial edge tiles, few Gaussians per tile
    (50_000, 320, 240, (2.5, -2.5, 0.8)),     # dense: long per-tile lists, early termination
])
def test_recon_cuda_matches_gsplat(n, width, height, eye):
    tensors = scene(n, seed=n)
    cam = camera(width, height, eye)
    gen = torch.Generator().manual_seed(1)
    weights = torch.randn(height, width, 3, generator=gen).cuda()
    ours, our_grads = recon_render(tensors, cam, weights)
    theirs, their_grads = gsplat_render(tensors, cam, weights)
    assert theirs.max() > 0.5, "the scene must cover the image"
    image_error = float((ours - theirs).abs().max())
    assert image_error <= 1e-4, f"max abs image difference {image_error:.3g}"
    for name, a, b in zip(NAMES, our_grads, their_grads):
        relative = float((a - b).norm() / b.norm())
        assert relative <= 1e-3, f"{name}: relative gradient error {relative:.3g}"
