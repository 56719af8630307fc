"""The photometric fitting loss (the MCMC regularisers live with the strategy)."""

from __future__ import annotations

import torch
from torch import Tensor

from recon.metrics import ssim


def photometric_loss(image: Tensor, target: Tensor, ssim_lambda: float) -> Tensor:
    """(1 - λ)·L1 + λ·(1 - SSIM) between [C, H, W] images (3DGS / gsplat, λ = 0.2).

    SSIM uses 'valid' windows, like gsplat's fused-SSIM loss; images smaller than the window
    fall back to zero padding.
    """
    l1 = (image - target).abs().mean()
    if ssim_lambda == 0.0:
        return l1
    padding = "valid" if min(image.shape[-2:]) >= 11 else "same"
    d_ssim = 1.0 - ssim(image[None], target[None], padding=padding)
    return torch.lerp(l1, d_ssim, ssim_lambda)


__all__ = ["photometric_loss"]
