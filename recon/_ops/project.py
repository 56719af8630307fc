"""The fused CUDA Gaussian projection as a ``torch.autograd.Function`` over
``recon::project_gaussians_fwd`` / ``_bwd`` (kernels in ``cuda/gpu/project.cu``). Same outputs as
``recon.primitives.gaussians.project_torch``, which stays the reference and the CPU path."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from recon._ops.build import load_ops


class ProjectedGaussians(NamedTuple):
    means2d: Tensor    # [B, N, 2]
    conics: Tensor     # [B, N, 3]
    opacities: Tensor  # [B, N]
    depths: Tensor     # [B, N] camera z
    bounds: Tensor     # [B, N, 4] int32 (no gradient)
    radii: Tensor      # [B, N] int32 (no gradient)
    normals: Tensor    # [B, N, 3]


class _ProjectGaussians(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means, quats, log_scales, opacity_logits, viewmats, Ks, options):
        load_ops()
        outs = torch.ops.recon.project_gaussians_fwd(means, quats, log_scales, opacity_logits,
                                                     viewmats, Ks, *options)
        ctx.save_for_backward(means, quats, log_scales, opacity_logits, viewmats, Ks)
        ctx.options = options
        ctx.mark_non_differentiable(outs[4], outs[5])
        return outs

    @staticmethod
    def backward(ctx, v_means2d, v_conics, v_opacities, v_depths, _v_bounds, _v_radii,
                 v_normals):
        grads = torch.ops.recon.project_gaussians_bwd(
            *ctx.saved_tensors, *ctx.options, v_means2d.contiguous(), v_conics.contiguous(),
            v_opacities.contiguous(), v_depths.contiguous(), v_normals.contiguous())
        return (*grads, None, None, None)


def project_gaussians(means: Tensor, quats: Tensor, log_scales: Tensor, opacity_logits: Tensor,
                      viewmats: Tensor, Ks: Tensor, width: int, height: int, *, eps2d: float,
                      near_plane: float, far_plane: float, antialiased: bool,
                      radius_clip: float) -> ProjectedGaussians:
    """EWA-project N Gaussians into B cameras on the GPU (see project_torch for the math and the
    culling rules). Gradients flow to means, quats, log_scales and opacity_logits; viewmats and
    Ks are constants (the caller uses the torch projection when they need gradients)."""
    options = (int(width), int(height), float(eps2d), float(near_plane), float(far_plane),
               float(radius_clip), bool(antialiased))
    dtype = means.dtype
    outs = _ProjectGaussians.apply(
        means.contiguous(), quats.to(dtype).contiguous(), log_scales.to(dtype).contiguous(),
        opacity_logits.to(dtype).contiguous(), viewmats.to(dtype).contiguous(),
        Ks.to(dtype).contiguous(), options)
    return ProjectedGaussians(*outs)
