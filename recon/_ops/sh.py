"""Spherical-harmonics colours as a native op (CPU and CUDA), an autograd Function over
``recon::sh_fwd`` / ``recon::sh_bwd``. Same values as the torch ``recon.render.sh.eval_sh``, several times faster
forward and backward for large N (no [N, K, C] temporaries)."""

from __future__ import annotations

import torch
from torch import Tensor

from recon._ops.build import load_ops


class _SphericalHarmonics(torch.autograd.Function):
    @staticmethod
    def forward(ctx, degree, dirs, coeffs):
        load_ops()
        ctx.degree = degree
        ctx.save_for_backward(dirs, coeffs)
        return torch.ops.recon.sh_fwd(degree, dirs, coeffs)

    @staticmethod
    def backward(ctx, v_colors):
        dirs, coeffs = ctx.saved_tensors
        v_dirs, v_coeffs = torch.ops.recon.sh_bwd(ctx.degree, dirs, coeffs, v_colors.contiguous())
        return None, v_dirs, v_coeffs


def spherical_harmonics(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """Σ_k Y_k(dirs/|dirs|) coeffs_k: dirs [B, N, 3], coeffs [N, K, C] (shared by the B cameras)
    or [B, N, K, C] -> [B, N, C], on the CPU or a CUDA device."""
    return _SphericalHarmonics.apply(int(degree), dirs.contiguous(), coeffs.contiguous())
