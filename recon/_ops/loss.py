"""The trainer's photometric loss (1 - λ)·L1 + λ·(1 - SSIM) as one native op with its gradient
(``recon::photometric_loss_fwd`` / ``_bwd``): the values of ``recon.train.losses``'s torch
expression, without its ten image-sized temporaries and the autograd graph of two convolutions.
"""

from __future__ import annotations

import torch
from torch import Tensor

from recon._ops.build import load_ops


class _PhotometricLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, image, target, ssim_lambda):
        load_ops()
        loss, partials = torch.ops.recon.photometric_loss_fwd(image, target, ssim_lambda)
        ctx.ssim_lambda = ssim_lambda
        ctx.save_for_backward(image, target, partials)
        return loss

    @staticmethod
    def backward(ctx, v_loss):
        image, target, partials = ctx.saved_tensors
        v_image = torch.ops.recon.photometric_loss_bwd(image, target, partials, ctx.ssim_lambda,
                                                       v_loss)
        return v_image, None, None


def fused_photometric_loss(image: Tensor, target: Tensor, ssim_lambda: float) -> Tensor:
    """(1 - λ)·mean|image - target| + λ·(1 - SSIM) of [C, H, W] or [B, C, H, W] images at least
    11x11 ('valid' SSIM windows), differentiable in ``image`` only; on the CPU."""
    planes = image.reshape(-1, *image.shape[-2:]).contiguous()
    return _PhotometricLoss.apply(planes, target.reshape(planes.shape).to(planes.dtype)
                                  .contiguous(), float(ssim_lambda))
