"""Normals of a depth map (the normal-consistency target)."""

from __future__ import annotations

import numpy as np
import torch

from recon.cameras import Camera
from recon.render.normals import depth_normals


def test_a_tilted_plane_gives_its_normal_facing_the_camera():
    cam = Camera(40, 30, 35.0, 33.0, 19.0, 16.0, np.eye(4))
    n = torch.tensor([0.3, -0.2, -1.0], dtype=torch.float64)
    n = n / n.norm()
    d = float(n @ torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64))   # plane through (0, 0, 3)
    v, u = torch.meshgrid(torch.arange(30, dtype=torch.float64) + 0.5,
                          torch.arange(40, dtype=torch.float64) + 0.5, indexing="ij")
    rays = torch.stack([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, torch.ones_like(u)])
    depth = d / (n[:, None, None] * rays).sum(0)
    depth[:, :12] = 0.0                                       # nothing drawn on the left
    normals = depth_normals(depth, cam)
    inside = normals[:, 1:-1, 14:-1]
    assert torch.allclose(inside, n[:, None, None].expand_as(inside), atol=1e-9)
    # Undefined: the border, the empty pixels and their neighbours.
    assert normals[:, :, :13].abs().max() == 0 and normals[:, 0].abs().max() == 0
    assert normals[:, :, -1].abs().max() == 0
