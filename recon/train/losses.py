"""The photometric fitting loss (the MCMC regularisers live with the strategy)."""

from __future__ import annotations

import torch
from torch import Tensor

from recon.metrics import ssim


def photometric_loss(image: Tensor, target: Tensor, ssim_lambda: float) -> Tensor:
    """(1 - λ)·L1 + λ·(1 - SSIM) between [C, H, W] images, or its mean over [B, C, H, W]
    batches (3DGS / gsplat, λ = 0.2).

    SSIM uses 'valid' windows, like gsplat's fused-SSIM loss; images smaller than the window
    fall back to zero padding. On the CPU the native fused op computes it (the same values to
    float rounding; forward + backward 5x faster than the torch expression at 100², 7x at
    400² on 2 cores); elsewhere, and for a target that needs a gradient, the torch expression
    :func:`photometric_loss_torch`.
    """
    if (image.device.type == "cpu" and ssim_lambda != 0.0 and min(image.shape[-2:]) >= 11
            and image.dtype in (torch.float32, torch.float64) and not target.requires_grad):
        from recon._ops.loss import fused_photometric_loss

        return fused_photometric_loss(image, target, ssim_lambda)
    return photometric_loss_torch(image, target, ssim_lambda)


def photometric_loss_torch(image: Tensor, target: Tensor, ssim_lambda: float) -> Tensor:
    """The torch expression of :func:`photometric_loss` (the native op's reference)."""
    l1 = (image - target).abs().mean()
    if ssim_lambda == 0.0:
        return l1
    padding = "valid" if min(image.shape[-2:]) >= 11 else "same"
    d_ssim = 1.0 - ssim(image, target, padding=padding)  # [C,H,W] or the mean over [B,C,H,W]
    return torch.lerp(l1, d_ssim, ssim_lambda)


__all__ = ["photometric_loss", "photometric_loss_torch"]
