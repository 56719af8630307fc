"""PSNR and SSIM against known answers and an independent scipy implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from recon.errors import ReconError
from recon.metrics import masked_psnr, psnr, ssim


def scipy_ssim(x: np.ndarray, y: np.ndarray, padding: str) -> float:
    """Wang et al. SSIM of two [C,H,W] images written with scipy's Gaussian filter.

    truncate = 5/1.5 gives scipy a radius-5 (11-tap) window; mode="constant" is zero padding.
    """
    c1, c2 = 0.01**2, 0.03**2

    def blur(a):
        return np.stack([gaussian_filter(ch, 1.5, truncate=5 / 1.5, mode="constant") for ch in a])

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    m = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    if padding == "valid":
        m = m[:, 5:-5, 5:-5]
    return float(m.mean())


def images(seed: int, shape=(3, 40, 52)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(shape, generator=g, dtype=torch.float64)
    gt = torch.nn.functional.avg_pool2d(gt[None], 3, 1, 1)[0]  # some local structure
    pred = (gt + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    return pred, gt


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_ssim_matches_scipy_oracle(padding):
    pred, gt = images(0)
    ours = ssim(pred, gt, padding=padding).item()
    oracle = scipy_ssim(pred.numpy(), gt.numpy(), padding)
    # Same formula in float64 by two different filter implementations: only rounding differs.
    assert ours == pytest.approx(oracle, abs=1e-10)
    assert 0.3 < ours < 0.95  # a non-trivial value, not a degenerate 0 or 1


def test_ssim_float32_close_to_float64():
    pred, gt = images(1)
    # float32 accumulation error of an 11x11 blur of values <= 1 stays far below 1e-5.
    assert ssim(pred.float(), gt.float()).item() == pytest.approx(ssim(pred, gt).item(), abs=1e-5)


def test_ssim_known_answers():
    pred, gt = images(2)
    assert ssim(gt, gt).item() == pytest.approx(1.0, abs=1e-12)
    # Constant images a and b: variances and covariance vanish, leaving the luminance term.
    a, b = 0.3, 0.5
    ca, cb = torch.full((1, 3, 20, 20), a, dtype=torch.float64), torch.full((1, 3, 20, 20), b,
                                                                           dtype=torch.float64)
    expected = (2 * a * b + 1e-4) / (a * a + b * b + 1e-4)
    assert ssim(ca, cb).item() == pytest.approx(expected, abs=1e-12)
    # A brightness shift of a textured image lowers SSIM below 1 but keeps the structure term 1.
    assert ssim((gt + 0.05).clamp(max=1), gt).item() < 1.0


def test_ssim_of_noise_of_known_variance():
    # Constant grey vs. grey + white noise of std s: the contrast-structure term is
    # c2 / (var_x + c2) with var_x the window-weighted variance s² (1 - Σw²); luminance ~ 1.
    s = 0.05
    g = torch.Generator().manual_seed(3)
    gt = torch.full((1, 1, 400, 400), 0.5, dtype=torch.float64)
    pred = gt + s * torch.randn(gt.shape, generator=g, dtype=torch.float64)
    w = torch.exp(-0.5 * (torch.arange(11.0) - 5) ** 2 / 1.5**2)
    w2 = ((w / w.sum())[:, None] * (w / w.sum())[None]).square().sum().item()
    expected = 0.03**2 / (s * s * (1 - w2) + 0.03**2)
    # The mean of a ratio over 150k windows differs from the ratio of means by a few per cent.
    assert ssim(pred, gt).item() == pytest.approx(expected, rel=0.05)


def test_psnr_known_answers():
    gt = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    assert psnr(gt + 0.1, gt).item() == pytest.approx(20.0, abs=1e-4)  # MSE 0.01
    per_image = psnr(torch.stack([gt[0] + 0.1, gt[1] + 0.01]), gt, reduction="none")
    assert per_image.tolist() == pytest.approx([20.0, 40.0], abs=1e-3)
    assert psnr(gt[0] + 0.1, gt[0]).dim() == 0
    assert psnr(gt, gt).item() == float("inf")


def test_masked_psnr_scores_the_masked_pixels_only():
    gt = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(5))
    pred = gt.clone()
    pred[:, :, :8] += 0.1          # error 0.1 on the left half (MSE 0.01: 20 dB) ...
    pred[:, :, 8:] += 0.5          # ... and 0.5 on the right
    left = torch.zeros(16, 16, dtype=torch.bool)
    left[:, :8] = True
    assert masked_psnr(pred, gt, left).item() == pytest.approx(20.0, abs=1e-4)
    assert masked_psnr(pred, gt, torch.ones(16, 16, dtype=torch.bool)).item() == pytest.approx(
        psnr(pred, gt).item(), abs=1e-5)


def test_batch_reduction_is_mean_of_images():
    p1, g1 = images(5)
    p2, g2 = images(6)
    batch = ssim(torch.stack([p1, p2]), torch.stack([g1, g2]), reduction="none")
    assert batch.tolist() == pytest.approx([ssim(p1, g1).item(), ssim(p2, g2).item()], abs=1e-12)


def test_metrics_are_differentiable():
    pred, gt = images(7, shape=(2, 13, 14))
    for padding in ("valid", "same"):
        x = pred.clone().requires_grad_(True)
        # fast_mode checks the Jacobian along random directions: one pass instead of one per pixel.
        assert torch.autograd.gradcheck(lambda p: ssim(p, gt, padding=padding), (x,), fast_mode=True)
    x = pred.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: psnr(p, gt), (x,), fast_mode=True)


def test_bad_inputs_raise_recon_errors():
    with pytest.raises(ReconError, match="same shape"):
        ssim(torch.zeros(3, 20, 20), torch.zeros(3, 20, 21))
    with pytest.raises(ReconError, match="at least 11x11"):
        ssim(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8))
    assert ssim(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8), padding="same").item() == 1.0
