"""3D Gaussian splats: parameters, EWA projection to 2D footprints, and the torch pixel kernel.

Projection follows 3DGS / gsplat: Σ = R S Sᵀ Rᵀ, camera-space Σ' = W Σ Wᵀ, screen Σ₂ = J Σ' Jᵀ with
the perspective Jacobian J evaluated at the mean clamped to 1.3× the field of view (so splats far
off-screen do not get absurd footprints), then a dilation of eps2d on the diagonal. With
``antialiased`` the opacity is scaled by sqrt(det Σ₂ / det(Σ₂ + eps2d I)) (Mip-Splatting).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from recon.primitives.base import KIND_GAUSSIAN, Footprints, register

ALPHA_MIN = 1.0 / 255.0  # as cuda/include/common.h
MAX_EXTENT = 3.33        # footprint half-size in standard deviations (gsplat's and 3DGS's choice)
MAX_TILT = 10.0          # steepest drawn depth slope: tan 84° to the view plane


@dataclass
class Gaussians:
    """N Gaussians in their optimisation parameterisation (as 3DGS stores them)."""

    means: Tensor           # [N, 3] world positions
    quats: Tensor           # [N, 4] rotation quaternions (w, x, y, z); need not be normalised
    log_scales: Tensor      # [N, 3] log standard deviations along the rotated axes
    opacity_logits: Tensor  # [N]    opacity = sigmoid(logit)

    @property
    def scales(self) -> Tensor:
        return self.log_scales.exp()

    @property
    def opacities(self) -> Tensor:
        return torch.sigmoid(self.opacity_logits)

    @property
    def centers(self) -> Tensor:
        return self.means

    def __len__(self) -> int:
        return self.means.shape[0]


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """[..., 4] (w, x, y, z) quaternions -> [..., 3, 3] rotation matrices (normalised first)."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, -1).reshape(*quats.shape[:-1], 3, 3)


def covariances(quats: Tensor, scales: Tensor) -> Tensor:
    """World covariances R S Sᵀ Rᵀ [..., 3, 3]."""
    m = quat_to_rotmat(quats) * scales[..., None, :]
    return m @ m.transpose(-1, -2)


def project_native(gaussians: Gaussians, viewmats: Tensor, Ks: Tensor, width: int, height: int,
                   *, eps2d: float = 0.3, near_plane: float = 0.01, far_plane: float = 1e10,
                   antialiased: bool = False, radius_clip: float = 0.0) -> Footprints:
    """:func:`project_torch` in one fused native op per direction (OpenMP on the CPU, one CUDA
    kernel on a GPU) instead of ~100 small torch ops each way. Cameras that need gradients, and
    machines where the native extension cannot be built, get the torch projection."""
    options = dict(eps2d=eps2d, near_plane=near_plane, far_plane=far_plane,
                   antialiased=antialiased, radius_clip=radius_clip)
    if viewmats.requires_grad or Ks.requires_grad:
        return project_torch(gaussians, viewmats, Ks, width, height, **options)
    from recon._ops import project_gaussians
    from recon._ops.build import NativeBuildError

    try:
        p = project_gaussians(gaussians.means, gaussians.quats, gaussians.log_scales,
                              gaussians.opacity_logits, viewmats, Ks, width, height, **options)
    except NativeBuildError:
        return project_torch(gaussians, viewmats, Ks, width, height, **options)
    return Footprints(kind=KIND_GAUSSIAN, params=torch.cat([p.means2d, p.conics], -1),
                      opacities=p.opacities, depths=p.depths, bounds=p.bounds,
                      means2d=p.means2d, radii=p.radii, normals=p.normals, vertices=1)


def project_torch(gaussians: Gaussians, viewmats: Tensor, Ks: Tensor, width: int, height: int, *,
                  eps2d: float = 0.3, near_plane: float = 0.01, far_plane: float = 1e10,
                  antialiased: bool = False, radius_clip: float = 0.0) -> Footprints:
    """EWA-project the Gaussians into B pinhole cameras (viewmats [B,4,4] world->camera, OpenCV
    axes; Ks [B,3,3]) with torch ops (autograd). Culls behind the near plane, beyond the far
    plane, off-screen, below α = 1/255 everywhere, and with screen radius <= ``radius_clip``."""
    rot_w = quat_to_rotmat(gaussians.quats)                                   # [N,3,3]
    R, t = viewmats[:, :3, :3], viewmats[:, None, :3, 3]                     # [B,3,3], [B,1,3]
    # einsum turns these into one matrix product per camera (not N tiny 3x3 products).
    mean_c = torch.einsum("bij,nj->bni", R, gaussians.means) + t             # [B,N,3]
    # Camera-space covariance is A Aᵀ with A = R_view R S; the screen covariance J A Aᵀ Jᵀ is
    # then built from the two rows of J A, without forming any 3x3 covariance.
    A = torch.einsum("bij,njk->bnik", R, rot_w) * gaussians.scales[None, :, None, :]
    x, y, z = mean_c.unbind(-1)
    in_depth = (z > near_plane) & (z < far_plane)
    # Culled splats still flow through the math (their outputs are masked), so keep them finite.
    zs = torch.where(in_depth, z, torch.ones_like(z))

    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]                            # [B,1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    lim_x_pos = (width - cx) / fx + 0.3 * (0.5 * width / fx)
    lim_x_neg = cx / fx + 0.3 * (0.5 * width / fx)
    lim_y_pos = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    lim_y_neg = cy / fy + 0.3 * (0.5 * height / fy)
    tx = zs * torch.minimum(torch.maximum(x / zs, -lim_x_neg), lim_x_pos)
    ty = zs * torch.minimum(torch.maximum(y / zs, -lim_y_neg), lim_y_pos)
    # Rows of J A, with J = [[fx/z, 0, -fx tx/z²], [0, fy/z, -fy ty/z²]] (tx, ty clamped).
    ja0 = (fx / zs)[..., None] * (A[..., 0, :] - (tx / zs)[..., None] * A[..., 2, :])
    ja1 = (fy / zs)[..., None] * (A[..., 1, :] - (ty / zs)[..., None] * A[..., 2, :])
    means2d = torch.stack([fx * x / zs + cx, fy * y / zs + cy], -1)

    a, b, c = (ja0 * ja0).sum(-1), (ja0 * ja1).sum(-1), (ja1 * ja1).sum(-1)
    det_raw = a * c - b * b
    a, c = a + eps2d, c + eps2d
    det_dilated = a * c - b * b
    det = det_dilated.clamp_min(1e-10)
    conics = torch.stack([c / det, -b / det, a / det], -1)
    opacities = gaussians.opacities[None].expand_as(zs)
    if antialiased:
        opacities = opacities * (det_raw / det).clamp_min(0.0).sqrt()

    with torch.no_grad():
        sx, sy = a.clamp_min(0).sqrt(), c.clamp_min(0).sqrt()
        radius_x, radius_y = torch.ceil(MAX_EXTENT * sx), torch.ceil(MAX_EXTENT * sy)
        # Opacity-aware extent: beyond sqrt(2 ln(255 o)) std devs, α < 1/255 and nothing is drawn.
        extent = (2.0 * torch.log((opacities.detach() / ALPHA_MIN).clamp_min(1.0))).sqrt()
        extent = extent.clamp_max(MAX_EXTENT)
        mx, my = means2d[..., 0].detach(), means2d[..., 1].detach()
        box = torch.stack([torch.floor(mx - extent * sx), torch.floor(my - extent * sy),
                           torch.ceil(mx + extent * sx), torch.ceil(my + extent * sy)], -1)
        limit = torch.tensor([width, height, width, height], dtype=box.dtype, device=box.device)
        box = torch.minimum(box.clamp_min(0), limit)
        radii = torch.maximum(radius_x, radius_y)
        keep = (in_depth & (det_dilated > 0) & (extent > 0) & (radii > radius_clip)
                & torch.isfinite(box).all(-1))
        box = torch.where(keep[..., None], box, torch.zeros_like(box))
        bounds = box.to(torch.int32)
        visible = (bounds[..., 2] > bounds[..., 0]) & (bounds[..., 3] > bounds[..., 1])
        radii = torch.where(visible, radii, torch.zeros_like(radii)).to(torch.int32)

    # Normal: the shortest axis, in camera coordinates, turned to face the camera.
    shortest = gaussians.log_scales.argmin(-1)                                 # [N]
    axis_w = torch.gather(rot_w, 2, shortest[:, None, None].expand(-1, 3, 1))[..., 0]
    axis_c = torch.einsum("bij,nj->bni", R, axis_w)                          # [B,N,3]
    facing = torch.where((axis_c * mean_c).sum(-1, keepdim=True) > 0, -1.0, 1.0).to(axis_c.dtype)
    normals = axis_c * facing

    params = torch.cat([means2d, conics], -1)
    return Footprints(kind=KIND_GAUSSIAN, params=params, opacities=opacities, depths=z,
                      bounds=bounds, means2d=means2d, radii=radii, normals=normals, vertices=1)


def kernel_torch(params: Tensor, px: Tensor, py: Tensor) -> tuple[Tensor, Tensor]:
    """Torch twin of GaussianKernel::eval (cuda/include/gaussian.h); broadcasts params [..., 5]
    against pixel centres px, py [...]. Returns k [...] and the single weight w [..., 1]."""
    dx = px - params[..., 0]
    dy = py - params[..., 1]
    sigma = 0.5 * (params[..., 2] * dx * dx + params[..., 4] * dy * dy) + params[..., 3] * dx * dy
    k = torch.exp(-sigma.clamp_min(0.0))
    return k, torch.ones_like(k)[..., None]


def depth_slopes(gaussians: Gaussians, viewmats: Tensor, Ks: Tensor,
                 max_tilt: float = MAX_TILT) -> Tensor:
    """[B, N, 2] change of each Gaussian's drawn depth per pixel in x and y (camera z).

    A pixel's ray is X = z r, r = (x', y', 1) in normalised image coordinates; along it the
    density of a Gaussian (μ, Σ in camera coordinates) peaks at z*(r) = rᵀΣ⁻¹μ / rᵀΣ⁻¹r. At the
    centre's ray r = μ / μ_z, z* = μ_z and ∂z*/∂(x', y') = -μ_z² (Σ⁻¹μ)_xy / μᵀΣ⁻¹μ; dividing by
    fx, fy gives per-pixel slopes. For a flat Gaussian this is the tilt of its plane (RaDe-GS's
    first-order depth), so the depth map of a surface made of large flat splats is the surface,
    not a staircase of centre depths. The tilt is capped at ``max_tilt`` (tan of the angle to the
    view plane): near grazing the peak runs off to infinity."""
    rot = torch.einsum("bij,njk->bnik", viewmats[:, :3, :3], quat_to_rotmat(gaussians.quats))
    mean_c = torch.einsum("bij,nj->bni", viewmats[:, :3, :3], gaussians.means) \
        + viewmats[:, None, :3, 3]
    local = torch.einsum("bnji,bnj->bni", rot, mean_c)                     # μ in the axes frame
    # Σ⁻¹ = rot diag(1/s²) rotᵀ up to the factor 1/s_min², which cancels in z*'s gradient and
    # keeps very flat Gaussians finite.
    log_scales = gaussians.log_scales
    inv_var = torch.exp(2.0 * (log_scales.min(-1, keepdim=True).values - log_scales))
    weighted = inv_var * local
    inv_cov_mean = torch.einsum("bnij,bnj->bni", rot, weighted)             # ∝ Σ⁻¹μ
    quad = (local * weighted).sum(-1, keepdim=True).clamp_min(1e-20)       # ∝ μᵀΣ⁻¹μ
    z = mean_c[..., 2:3]
    slope = -z.square() * inv_cov_mean[..., :2] / quad                      # per unit of x', y'
    limit = max_tilt * z.abs()
    norm = slope.norm(dim=-1, keepdim=True)
    slope = slope * torch.where(norm > limit, limit / norm.clamp_min(1e-20), 1.0)
    focal = torch.stack([Ks[:, 0, 0], Ks[:, 1, 1]], -1)[:, None]           # [B,1,2]
    return slope / focal


register(Gaussians, KIND_GAUSSIAN, project_torch, kernel_torch, project_native, depth_slopes)

__all__ = ["Gaussians", "covariances", "depth_slopes", "kernel_torch", "project_native",
           "project_torch", "quat_to_rotmat"]
