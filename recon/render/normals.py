"""Surface normals of a depth map, in camera coordinates (2DGS's "surface normal").

Each pixel's depth is lifted to its camera-space point X(u, v) = z · K⁻¹ (u + ½, v + ½, 1); the
normal is the unit cross product of the central differences X(u+1) − X(u−1) and X(v+1) − X(v−1),
turned to face the camera. Pixels on the image border, or with an empty neighbour (depth 0), have
no normal (zero).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from recon.cameras import Camera


def depth_normals(depth: Tensor, camera: Camera) -> Tensor:
    """[3, H, W] unit normals (zero where undefined) of a [H, W] camera-z depth map."""
    h, w = depth.shape
    v, u = torch.meshgrid(torch.arange(h, dtype=depth.dtype, device=depth.device) + 0.5,
                          torch.arange(w, dtype=depth.dtype, device=depth.device) + 0.5,
                          indexing="ij")
    points = torch.stack([(u - camera.cx) / camera.fx * depth,
                          (v - camera.cy) / camera.fy * depth, depth])             # [3, H, W]
    du = points[:, 1:-1, 2:] - points[:, 1:-1, :-2]
    dv = points[:, 2:, 1:-1] - points[:, :-2, 1:-1]
    normal = torch.linalg.cross(du, dv, dim=0)
    normal = normal / normal.norm(dim=0, keepdim=True).clamp_min(1e-12)
    facing = torch.where((normal * points[:, 1:-1, 1:-1]).sum(0) > 0, -1.0, 1.0)
    valid = ((depth[1:-1, 2:] > 0) & (depth[1:-1, :-2] > 0) & (depth[2:, 1:-1] > 0)
             & (depth[:-2, 1:-1] > 0) & (depth[1:-1, 1:-1] > 0))
    normal = normal * (facing * valid).to(depth.dtype)
    return F.pad(normal, (1, 1, 1, 1))


__all__ = ["depth_normals"]
