"""Differentiable image metrics: PSNR and SSIM on float images in [0, 1].

Both take [C, H, W] or [B, C, H, W] tensors (any float dtype, any device) and are differentiable,
so the trainer uses ``ssim`` in its loss and the evaluator uses both for the test split.

SSIM follows Wang et al. 2004 with the constants every 3DGS paper reports: an 11x11 Gaussian
window with sigma 1.5, C1 = (0.01 L)^2 and C2 = (0.03 L)^2 for data range L = 1. The local
statistics are computed per channel and the SSIM map is averaged over channels and pixels.

Padding: ``"valid"`` (the default) averages only over windows that lie fully inside the image,
i.e. a map 10 pixels smaller in each dimension. This is what gsplat's evaluation computes
(torchmetrics' SSIM pads by reflection and then crops the padded border away, which leaves exactly
the valid windows) and what gsplat's trainer uses for its fused-SSIM loss. ``"same"`` zero-pads
the image by 5 pixels and keeps a full-size map, which is the original 3DGS code's SSIM
(``utils/loss_utils.py``, used both for its loss and its ``metrics.py``); the two differ only
near the border, so scores differ slightly (typically in the third decimal).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from recon.errors import ReconError

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03

Padding = Literal["valid", "same"]
Reduction = Literal["mean", "none"]


def psnr(pred: Tensor, gt: Tensor, reduction: Reduction = "mean") -> Tensor:
    """Peak signal-to-noise ratio in dB for data range 1: -10 log10(MSE).

    The MSE is taken per image (over channels and pixels); ``reduction="mean"`` averages the
    per-image PSNRs (not the MSEs), ``"none"`` returns them as [B]. Identical images give +inf.
    """
    pred, gt = _check_pair(pred, gt, "psnr")
    mse = (pred - gt).square().flatten(1).mean(1)
    value = -10.0 * torch.log10(mse)
    return value.mean() if reduction == "mean" else value


def masked_psnr(pred: Tensor, gt: Tensor, mask: Tensor) -> Tensor:
    """PSNR in dB over the pixels where ``mask`` [H, W] is true only (the object of a masked
    dataset, as DTU novel-view evaluations report it) for one image [C, H, W]; +inf for
    identical pixels, nan for an empty mask."""
    pred, gt = _check_pair(pred, gt, "masked_psnr")
    inside = mask.reshape(-1).bool()
    error = (pred - gt).square().flatten(2)[0][:, inside]
    return -10.0 * torch.log10(error.mean())


def ssim(pred: Tensor, gt: Tensor, padding: Padding = "valid",
         reduction: Reduction = "mean") -> Tensor:
    """Structural similarity (11x11 Gaussian window, sigma 1.5) for data range 1.

    ``reduction="mean"`` averages over the batch, ``"none"`` returns one value per image [B].
    See the module docstring for the meaning of ``padding``.
    """
    pred, gt = _check_pair(pred, gt, "ssim")
    if padding not in ("valid", "same"):
        raise ReconError(f"Unknown SSIM padding {padding!r}; choose 'valid' or 'same'.")
    if padding == "valid" and min(pred.shape[-2:]) < SSIM_WINDOW:
        raise ReconError(f"SSIM with 'valid' padding needs images of at least {SSIM_WINDOW}x"
                         f"{SSIM_WINDOW} pixels, got {pred.shape[-1]}x{pred.shape[-2]}; "
                         "use padding='same' for smaller images.")
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    # One pass of the blur over the five stacked statistics (x, y, x², y², xy).
    stats = torch.cat([pred, gt, pred * pred, gt * gt, pred * gt], dim=1)
    mu_x, mu_y, e_xx, e_yy, e_xy = _gaussian_blur(stats, padding).chunk(5, dim=1)
    var_x = e_xx - mu_x * mu_x
    var_y = e_yy - mu_y * mu_y
    cov = e_xy - mu_x * mu_y
    num = (2.0 * mu_x * mu_y + c1) * (2.0 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    value = (num / den).flatten(1).mean(1)
    return value.mean() if reduction == "mean" else value


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA,
                    dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """The normalised 1D Gaussian [size] sampled at integer offsets from the centre."""
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2.0
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def _gaussian_blur(x: Tensor, padding: Padding) -> Tensor:
    """Separable depthwise Gaussian filter of [B, C, H, W] (zero padding for "same")."""
    channels = x.shape[1]
    g = gaussian_window(dtype=x.dtype, device=x.device)
    pad = SSIM_WINDOW // 2 if padding == "same" else 0
    rows = g.view(1, 1, 1, -1).expand(channels, 1, 1, SSIM_WINDOW)
    cols = g.view(1, 1, -1, 1).expand(channels, 1, SSIM_WINDOW, 1)
    x = F.conv2d(x, rows, padding=(0, pad), groups=channels)
    return F.conv2d(x, cols, padding=(pad, 0), groups=channels)


def _check_pair(pred: Tensor, gt: Tensor, name: str) -> tuple[Tensor, Tensor]:
    """Both images as [B, C, H, W] of one floating dtype; a clear error on mismatched shapes."""
    if pred.shape != gt.shape or pred.dim() not in (3, 4):
        raise ReconError(f"{name} needs two images of the same shape [C,H,W] or [B,C,H,W], got "
                         f"{tuple(pred.shape)} and {tuple(gt.shape)}.")
    if pred.dim() == 3:
        pred, gt = pred[None], gt[None]
    if not pred.is_floating_point():
        raise ReconError(f"{name} needs float images in [0, 1], got dtype {pred.dtype}.")
    return pred, gt.to(pred.dtype)


__all__ = ["SSIM_SIGMA", "SSIM_WINDOW", "gaussian_window", "masked_psnr", "psnr", "ssim"]
