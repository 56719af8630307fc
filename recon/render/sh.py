"""Real spherical harmonics up to degree 3 for view-dependent colour (the 3DGS basis and order).

``eval_sh(degree, dirs, coeffs)`` returns Σ_k Y_k(d) c_k; render() adds 0.5 and clamps at 0, the
3DGS convention that makes an all-zero SH a mid-grey.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from recon.errors import ReconError

C0 = 0.28209479177387814
C1 = 0.4886025119029199
C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792,
      0.5462742152960396)
C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
      -0.4570457994644658, 1.445305721320277, -0.5900435899266435)
MAX_DEGREE = 3


def rgb_to_sh0(rgb: Tensor) -> Tensor:
    """DC coefficient whose rendered colour (C0·c + 0.5) equals ``rgb`` in [0, 1]."""
    return (rgb - 0.5) / C0


def sh0_to_rgb(sh0: Tensor) -> Tensor:
    """The colour (C0·c + 0.5) a DC coefficient renders."""
    return sh0 * C0 + 0.5


def num_bases(degree: int) -> int:
    return (degree + 1) ** 2


def sh_bases(degree: int, dirs: Tensor) -> Tensor:
    """[..., 3] directions (normalised here) -> [..., (degree+1)²] basis values."""
    if not 0 <= degree <= MAX_DEGREE:
        raise ReconError(f"SH degree must be between 0 and {MAX_DEGREE}, got {degree}.")
    x, y, z = F.normalize(dirs, dim=-1).unbind(-1)
    out = [torch.full_like(x, C0)]
    if degree >= 1:
        out += [-C1 * y, C1 * z, -C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [C2[0] * x * y, C2[1] * y * z, C2[2] * (2 * zz - xx - yy), C2[3] * x * z,
                C2[4] * (xx - yy)]
    if degree >= 3:
        out += [C3[0] * y * (3 * xx - yy), C3[1] * x * y * z, C3[2] * y * (4 * zz - xx - yy),
                C3[3] * z * (2 * zz - 3 * xx - 3 * yy), C3[4] * x * (4 * zz - xx - yy),
                C3[5] * z * (xx - yy), C3[6] * x * (xx - 3 * yy)]
    return torch.stack(out, -1)


def eval_sh(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """Evaluate SH ``coeffs`` [..., K, C] (K >= (degree+1)²; extra bands ignored) along ``dirs``
    [..., 3] -> [..., C]."""
    k = num_bases(degree)
    if coeffs.shape[-2] < k:
        raise ReconError(
            f"SH degree {degree} needs {k} coefficients per channel, the features have "
            f"{coeffs.shape[-2]}; lower sh_degree or pass more coefficients.")
    return (sh_bases(degree, dirs)[..., None] * coeffs[..., :k, :]).sum(-2)
