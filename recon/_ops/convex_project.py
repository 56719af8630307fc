"""The fused convex projection as a ``torch.autograd.Function`` over ``recon::project_convexes_fwd``
/ ``_bwd`` (math in ``cuda/include/convex_project.h``; OpenMP on the CPU, CUDA on a GPU). Same
outputs and input gradients as ``recon.primitives.convexes.project``, which stays the reference.

One detail of the torch graph is kept on purpose: there the hull lines are built from
means2d + (q − mean q), so ``means2d.grad`` collects the footprint's translation gradient, which
densification reads. Here the lines do not pass through means2d, so :class:`_TranslationLink`
(an identity on the footprint) hands means2d that gradient, Σ_j −n_j v_c_j (moving every point
by t moves each line's offset by −n_j·t), and the native backward subtracts it again where it
spreads means2d's cotangent over the points, exactly as the torch graph does.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from recon._ops.build import load_ops

MAX_LINES = 8  # cuda CONVEX_MAX_LINES


class ProjectedConvexes(NamedTuple):
    params: Tensor     # [B, N, 3 + 3 * 8] footprints (cuda/include/convex.h)
    opacities: Tensor  # [B, N]
    depths: Tensor     # [B, N] camera z of the point centroid
    means2d: Tensor    # [B, N, 2] mean of the projected points
    bounds: Tensor     # [B, N, 4] int32 (no gradient)
    radii: Tensor      # [B, N] int32 (no gradient)


class _ProjectConvexes(torch.autograd.Function):
    @staticmethod
    def forward(ctx, points, log_delta, log_sigma, opacity_logit, viewmats, Ks, options):
        load_ops()
        *outs, edges = torch.ops.recon.project_convexes_fwd(
            points, log_delta, log_sigma, opacity_logit, viewmats, Ks, *options)
        ctx.save_for_backward(points, log_delta, log_sigma, opacity_logit, viewmats, Ks, edges)
        ctx.options = options
        ctx.mark_non_differentiable(outs[4], outs[5])
        return tuple(outs)

    @staticmethod
    def backward(ctx, v_params, v_opacities, v_depths, v_means2d, _v_bounds, _v_radii):
        *inputs, edges = ctx.saved_tensors
        grads = torch.ops.recon.project_convexes_bwd(
            *inputs, edges, *ctx.options, v_params.contiguous(), v_opacities.contiguous(),
            v_depths.contiguous(), v_means2d.contiguous())
        return (*grads, None, None, None)


class _TranslationLink(torch.autograd.Function):
    """params unchanged forward; backward also gives means2d Σ_j −n_j v_c_j (see the module
    docstring)."""

    @staticmethod
    def forward(ctx, params, means2d):
        ctx.save_for_backward(params)
        return params.view_as(params)

    @staticmethod
    def backward(ctx, v_params):
        (params,) = ctx.saved_tensors
        normals = params[..., 3:].unflatten(-1, (MAX_LINES, 3))[..., :2]
        v_offsets = v_params[..., 3:].unflatten(-1, (MAX_LINES, 3))[..., 2:]
        return v_params, -(normals * v_offsets).sum(-2)


def project_convexes(points: Tensor, log_delta: Tensor, log_sigma: Tensor,
                     opacity_logit: Tensor, viewmats: Tensor, Ks: Tensor, width: int,
                     height: int, *, near_plane: float) -> ProjectedConvexes:
    """Project N convexes (points [N, K, 3]) into B cameras with the native op (see
    ``recon.primitives.convexes.project`` for the math and the culling rules). float32 or
    float64 on the CPU or a CUDA device. Gradients flow to the four convex parameters; viewmats
    and Ks are constants (the caller uses the torch projection when they need gradients)."""
    dtype = points.dtype
    options = (int(width), int(height), float(near_plane))
    params, opacities, depths, means2d, bounds, radii = _ProjectConvexes.apply(
        points.contiguous(), *(t.to(dtype).contiguous() for t in (
            log_delta, log_sigma, opacity_logit, viewmats, Ks)), options)
    if torch.is_grad_enabled() and means2d.requires_grad:
        params = _TranslationLink.apply(params, means2d)
    return ProjectedConvexes(params, opacities, depths, means2d, bounds, radii)
