"""The native compositor as a ``torch.autograd.Function`` (forward and backward are the ops
``recon::rasterize_fwd`` / ``recon::rasterize_bwd``; layouts are documented in
``cuda/include/rasterize.h``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from recon._ops.build import load_ops


@dataclass
class Rasterized:
    """Outputs of one native rasterization."""

    features: Tensor    # [B, H, W, C]  Σ α T f (no background)
    alpha: Tensor       # [B, H, W]     1 - final transmittance
    median_idx: Tensor  # [B, H, W] int32: sorted intersection where T first drops below ½, or -1
    max_weight: Tensor  # [B, N]        largest α T of each primitive over the image


class _Rasterize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, params, opacities, features, bounds, isect_prims, tile_ranges, kind, width,
                height, tile_size, absgrad_out):
        load_ops()
        out, final_T, last_idx, median_idx, max_weight = torch.ops.recon.rasterize_fwd(
            params, opacities, features, bounds, isect_prims, tile_ranges, kind, width, height,
            tile_size)
        ctx.save_for_backward(params, opacities, features, bounds, isect_prims, tile_ranges,
                              final_T, last_idx)
        ctx.config = (kind, width, height, tile_size)
        ctx.absgrad_out = absgrad_out
        ctx.mark_non_differentiable(median_idx, max_weight)
        return out, 1.0 - final_T, median_idx, max_weight

    @staticmethod
    def backward(ctx, v_out, v_alpha, _v_median, _v_max_weight):
        (params, opacities, features, bounds, isect_prims, tile_ranges, final_T,
         last_idx) = ctx.saved_tensors
        kind, width, height, tile_size = ctx.config
        want_abs = ctx.absgrad_out is not None
        v_params, v_opacities, v_features, abs_params = torch.ops.recon.rasterize_bwd(
            params, opacities, features, bounds, isect_prims, tile_ranges, kind, width, height,
            tile_size,
            final_T, last_idx, _dense(v_out, final_T, params.dtype, features.shape[-1]),
            _dense(v_alpha, final_T, params.dtype), want_abs)
        if want_abs:
            ctx.absgrad_out.add_(abs_params)
        return (v_params, v_opacities, v_features) + (None,) * 8


def _dense(grad: Tensor | None, like: Tensor, dtype: torch.dtype, channels: int | None = None):
    """Autograd passes None for an unused output; the op wants zeros of the full shape."""
    shape = like.shape if channels is None else (*like.shape, channels)
    if grad is None:
        return torch.zeros(shape, dtype=dtype, device=like.device)
    return grad.to(dtype).contiguous()


def rasterize(params: Tensor, opacities: Tensor, features: Tensor, isect_prims: Tensor,
              tile_ranges: Tensor, kind: int, width: int, height: int, tile_size: int = 16,
              absgrad_out: Tensor | None = None, bounds: Tensor | None = None) -> Rasterized:
    """Composite binned footprints front to back with the native kernels (CPU or CUDA by device).

    params [B,N,P], opacities [B,N], features [B,N,V,C]; ``isect_prims``/``tile_ranges`` come from
    ``recon.render.binning.bin_footprints``. With ``absgrad_out`` ([B,N,P], zeros), backward adds
    Σ_pixels |dL/dparams| into it (the AbsGS densification statistic). With ``bounds`` (the
    footprints' int32 [B,N,4] pixel boxes) only pixels inside a primitive's box are evaluated:
    the same image, much less work for primitives smaller than a tile.
    """
    if bounds is None:
        bounds = torch.empty(0, dtype=torch.int32, device=params.device)
    out, alpha, median_idx, max_weight = _Rasterize.apply(
        params.contiguous(), opacities.contiguous(), features.contiguous(),
        bounds.to(torch.int32).contiguous(), isect_prims.contiguous(), tile_ranges.contiguous(),
        int(kind), int(width), int(height), int(tile_size), absgrad_out)
    return Rasterized(out, alpha, median_idx, max_weight)
