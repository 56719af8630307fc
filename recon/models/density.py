"""The density field of a Gaussian mixture and its analytic gradient (SuGaR's level-set field).

    d(p) = Σ_g α_g exp(-½ (p - μ_g)ᵀ Σ_g⁻¹ (p - μ_g)),      ∇d(p) = -Σ_g w_g(p) Σ_g⁻¹ (p - μ_g)

with α_g the opacity and w_g the g-th term of the sum. As in SuGaR the sum runs over the k nearest
Gaussian centres of each query point (a kd-tree over the means): a point gets almost nothing from
Gaussians farther away, and the full N-term sum over millions of points would not fit in memory.
Points are evaluated in chunks so memory stays bounded whatever their number. The outward surface
normal at a level set is -∇d / |∇d| (density falls off outside the surface).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from recon.primitives.gaussians import quat_to_rotmat

DEFAULT_NEIGHBORS = 16
CHUNK = 32_768


class GaussianDensity:
    """d(p) and ∇d(p) of fixed Gaussians (means [N,3], quats [N,4] wxyz, log-scales [N,3],
    opacities [N] in (0, 1)), summed over each point's ``neighbors`` nearest centres."""

    def __init__(self, means: Tensor, quats: Tensor, log_scales: Tensor, opacities: Tensor,
                 neighbors: int = DEFAULT_NEIGHBORS):
        from scipy.spatial import cKDTree

        self.means = means.detach()
        rot = quat_to_rotmat(quats.detach())
        inv_var = torch.exp(-2.0 * log_scales.detach())
        # Σ⁻¹ = R diag(1/s²) Rᵀ: precomputed once, gathered per neighbour.
        self.precisions = (rot * inv_var[..., None, :]) @ rot.transpose(-1, -2)
        self.opacities = opacities.detach()
        self.neighbors = max(1, min(int(neighbors), len(self.means)))
        self._tree = cKDTree(self.means.double().cpu().numpy())

    def __call__(self, points: Tensor, gradient: bool = True) -> tuple[Tensor, Tensor | None]:
        """Density [M] at ``points`` [M,3] and, with ``gradient``, ∇d [M,3]."""
        points = points.to(self.means)
        dens, grads = [], []
        for start in range(0, len(points), CHUNK):
            d, g = self._chunk(points[start:start + CHUNK], gradient)
            dens.append(d)
            grads.append(g)
        if not dens:
            empty = points.new_zeros(0)
            return empty, points.new_zeros(0, 3) if gradient else None
        return torch.cat(dens), torch.cat(grads) if gradient else None

    def _chunk(self, p: Tensor, gradient: bool) -> tuple[Tensor, Tensor | None]:
        _, idx = self._tree.query(p.double().cpu().numpy(), k=self.neighbors, workers=-1)
        idx = torch.from_numpy(np.asarray(idx, np.int64).reshape(len(p), -1)).to(p.device)
        diff = p[:, None, :] - self.means[idx]                                   # [m,k,3]
        q = torch.einsum("mkij,mkj->mki", self.precisions[idx], diff)            # Σ⁻¹ (p - μ)
        w = self.opacities[idx] * torch.exp(-0.5 * (diff * q).sum(-1))           # [m,k]
        grad = -(w[..., None] * q).sum(1) if gradient else None
        return w.sum(1), grad


def outward_normals(gradient: Tensor) -> Tensor:
    """Unit normals -∇d / |∇d| (pointing to lower density, out of the surface)."""
    return -gradient / gradient.norm(dim=-1, keepdim=True).clamp_min(1e-20)


__all__ = ["DEFAULT_NEIGHBORS", "GaussianDensity", "outward_normals"]
