"""The plain mesh renderer: opaque faces, interpolated vertex colours, nearest face in front."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon.cameras import Camera, look_at
from recon.render.mesh import render_mesh

W = H = 48


def camera() -> Camera:
    # Looking down -z at the origin from z = 3: world x -> image right, world y -> image down.
    return Camera(W, H, 40.0, 40.0, W / 2, H / 2, look_at(np.array([0.0, 0.0, 3.0]), np.zeros(3)))


def quad(z: float, half: float) -> tuple[torch.Tensor, torch.Tensor]:
    v = torch.tensor([[-half, -half, z], [half, -half, z], [half, half, z], [-half, half, z]])
    return v, torch.tensor([[0, 1, 2], [0, 2, 3]])


def test_a_quad_is_solid_with_interpolated_colours_and_background_around_it():
    v, f = quad(0.0, 0.5)
    colours = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 1.0]])
    r = render_mesh(v, f, colours, camera(), background=torch.zeros(3), backend="cpu")
    image, alpha = r.features, r.alpha
    # The quad spans ±0.5 at distance 3: ±6.7 px about the centre; the shared diagonal leaves
    # no seam (the edge ramp lies outside each face, so both cover it fully). The compositor caps
    # one primitive's α at 0.99 (as 3DGS), so an opaque face covers 0.99 of a pixel.
    inside = alpha[H // 2 - 5:H // 2 + 5, W // 2 - 5:W // 2 + 5]
    assert float(inside.min()) >= 0.99 - 1e-6
    assert float(alpha[:8].max()) == 0.0 and float(image[:, :8].abs().max()) == 0.0
    # The centre lies on the diagonal 0-2: halfway between corners 0 and 2 (red and blue), at 0.99.
    centre = image[:, H // 2, W // 2]
    assert torch.allclose(centre, torch.tensor([0.495, 0.0, 0.495]), atol=0.04)
    assert float(centre.sum()) == pytest.approx(0.99, abs=1e-5)


def test_the_nearer_face_hides_the_farther():
    near, f = quad(0.5, 0.3)
    far, _ = quad(-0.5, 0.6)
    v = torch.cat([far, near])
    faces = torch.cat([f, f + 4])
    colours = torch.cat([torch.tensor([[0.0, 0, 1.0]]).expand(4, 3),
                         torch.tensor([[1.0, 0, 0]]).expand(4, 3)])
    image = render_mesh(v, faces, colours, camera(), background=torch.zeros(3),
                        backend="cpu").features
    # In front: red at α 0.99. The hidden face would take T from 0.01 to 1e-4, which ends the
    # pixel (the 3DGS rule), so nothing behind the first opaque face shows.
    assert torch.allclose(image[:, H // 2 - 3, W // 2], torch.tensor([0.99, 0, 0]), atol=1e-5)
    # Beyond the near quad (±4.8 px) but on the far one (±6.9 px): blue.
    assert torch.allclose(image[:, H // 2, W // 2 + 6], torch.tensor([0, 0, 0.99]), atol=1e-5)
