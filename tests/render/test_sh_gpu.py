"""The CUDA SH op's staged kernels (each point with its own coefficient row: one camera, or
per-camera coefficients; rows staged through shared memory) against the CPU op, over degrees,
padded bases above the degree, odd channel counts and a partial last block. Skipped without a GPU."""

from __future__ import annotations

import pytest
import torch

from recon._ops import spherical_harmonics

pytestmark = pytest.mark.gpu


def sh_and_grads(device: str, degree: int, dirs, coeffs, v):
    d, c = (t.to(device).requires_grad_() for t in (dirs, coeffs))
    colors = spherical_harmonics(degree, d, c)
    grads = torch.autograd.grad((colors * v.to(device)).sum(), (d, c))
    return [colors.detach().cpu(), *(g.cpu() for g in grads)]


@pytest.mark.parametrize("B,shared,degree,K,C", [
    (1, True, 3, 16, 3),   # the training case: one camera, shared rows
    (1, True, 1, 16, 3),   # bands above the degree get zero gradient
    (1, True, 0, 1, 5),
    (2, False, 2, 9, 5),   # per-camera rows
    (3, False, 3, 16, 4),
])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_staged_sh_matches_cpu(B, shared, degree, K, C, dtype):
    gen = torch.Generator().manual_seed(degree * 10 + C)
    N = 1037  # not a multiple of the block size
    dirs = torch.randn(B, N, 3, generator=gen, dtype=dtype)
    coeffs = torch.randn(*(() if shared else (B,)), N, K, C, generator=gen, dtype=dtype)
    v = torch.randn(B, N, C, generator=gen, dtype=dtype)
    got = sh_and_grads("cuda", degree, dirs, coeffs, v)
    want = sh_and_grads("cpu", degree, dirs, coeffs, v)
    # Same operations in the same order as the CPU loop: float64 agrees to rounding; float32 may
    # differ by FMA contraction only (a few ulps of values of order 1-10).
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    for g, w in zip(got, want):
        assert torch.allclose(g, w, rtol=tol, atol=tol), (g - w).abs().max()
    if degree < 3 and K > (degree + 1) ** 2:
        assert int(torch.count_nonzero(got[2][..., (degree + 1) ** 2:, :])) == 0
