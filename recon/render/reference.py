"""The dense pure-torch rasterizer: the oracle for the native kernels (small images only).

Every pixel composites every visible primitive, sorted by depth, with exactly the native rules
(α = min(0.99, o·k), skip α < 1/255, stop before T would drop below 1e-4); gradients come from
torch autograd. Memory is O(B·H·W·N), so keep scenes tiny.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from recon.primitives.base import kernel_for

ALPHA_MAX = 0.99
ALPHA_MIN = 1.0 / 255.0
TRANSMITTANCE_MIN = 1e-4
MEDIAN_TRANSMITTANCE = 0.5


@dataclass
class DenseResult:
    features: Tensor   # [B, H, W, C]
    alpha: Tensor      # [B, H, W]
    median_prim: Tensor  # [B, H, W] int64: primitive index n where T first drops below ½, or -1
    max_weight: Tensor   # [B, N]


def rasterize_dense(kind: int, params: Tensor, opacities: Tensor, features: Tensor,
                    depths: Tensor, visible: Tensor, width: int, height: int) -> DenseResult:
    """params [B,N,P], opacities [B,N], features [B,N,V,C], depths [B,N], visible [B,N] bool."""
    kernel = kernel_for(kind)
    B, N = opacities.shape
    C = features.shape[-1]
    dtype, device = params.dtype, params.device
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=dtype) + 0.5,
                            torch.arange(width, device=device, dtype=dtype) + 0.5, indexing="ij")
    px, py = xs.reshape(-1, 1), ys.reshape(-1, 1)                            # [HW, 1]
    outs, alphas, medians, max_weights = [], [], [], []
    for b in range(B):
        # Visible primitives front to back; ties keep index order, as the stable native sort does.
        order = torch.nonzero(visible[b]).flatten()
        order = order[torch.sort(depths[b, order].to(torch.float32), stable=True).indices]
        k, w = kernel(params[b, order][None], px, py)                         # [HW,n], [HW,n,V]
        alpha = torch.clamp(opacities[b, order][None] * k, max=ALPHA_MAX)
        alpha = torch.where(alpha < ALPHA_MIN, torch.zeros_like(alpha), alpha)
        with torch.no_grad():  # the stop rule: the prefix whose running T stays >= 1e-4
            keep = torch.cumprod(1.0 - alpha, dim=1) >= TRANSMITTANCE_MIN
        alpha = alpha * keep
        one_minus = 1.0 - alpha
        trans_after = torch.cumprod(one_minus, dim=1)
        trans_before = torch.cat([torch.ones_like(trans_after[:, :1]), trans_after[:, :-1]], 1)
        weight = alpha * trans_before                                         # [HW, n]
        pix_feat = torch.einsum("pnv,nvc->pnc", w, features[b, order])
        outs.append(torch.einsum("pn,pnc->pc", weight, pix_feat).reshape(height, width, C))
        final = trans_after[:, -1] if order.numel() else torch.ones_like(px[:, 0])
        alphas.append((1.0 - final).reshape(height, width))
        with torch.no_grad():
            below = trans_after < MEDIAN_TRANSMITTANCE
            has = below.any(1)
            first = below.to(torch.int8).argmax(1)
            median = torch.where(has, order[first] if order.numel() else first,
                                 torch.full_like(first, -1))
            medians.append(median.reshape(height, width))
            mw = torch.zeros(N, dtype=dtype, device=device)
            if order.numel():
                mw[order] = weight.detach().amax(0)
            max_weights.append(mw)
    return DenseResult(torch.stack(outs), torch.stack(alphas), torch.stack(medians),
                       torch.stack(max_weights))
