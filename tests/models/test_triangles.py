"""The triangle-soup model: Triangle Splatting's initialisation, midpoint subdivision that keeps
the image, and the soup exported as a mesh in the input frame."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from recon.cameras import Camera, Similarity, look_at
from recon.models.base import create_optimizers
from recon.models.points import mean_neighbour_distance
from recon.models.triangles import TriangleModel, soup_mesh
from recon.render import render
from recon.strategies import ops
from recon.train.config import FitConfig


@pytest.fixture
def model() -> TriangleModel:
    return TriangleModel(FitConfig(data=Path("unused"), model="triangles"), scene_scale=1.0)


def camera() -> Camera:
    return Camera(64, 64, 64.0, 64.0, 32, 32, look_at(np.array([0.0, 0.0, -4.0]), np.zeros(3)))


def test_initialisation_follows_triangle_splatting(model):
    g = torch.Generator().manual_seed(0)
    points = torch.rand(40, 3, generator=g).numpy()
    params = model.initialize(points, np.full((40, 3), 0.5), g, "cpu")
    spacing = torch.as_tensor(mean_neighbour_distance(points), dtype=torch.float32)
    corners = params["vertices"].detach() - torch.as_tensor(points)[:, None]
    assert torch.allclose(corners.norm(dim=-1), 2.23 * spacing[:, None].expand(40, 3), rtol=1e-5)
    assert torch.allclose(params["sigmas"].exp(), torch.full((40,), 1.16))
    assert torch.allclose(torch.sigmoid(params["opacities"]), torch.full((40,), 0.28))
    assert set(model.learning_rates(0)) == set(params.keys())
    # The loss: λ_opacity = 0.0055 times the mean opacity, plus (while densifying) the size term
    # λ_size = 1e-8 over the mean area.
    v = params["vertices"].detach()
    area = 0.5 * torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]).norm(dim=-1).mean()
    expected = 0.0055 * 0.28 + 1e-8 / float(area)
    assert float(model.loss(params).detach()) == pytest.approx(expected, rel=1e-6)
    assert float(model.loss(params, step=10**6).detach()) == pytest.approx(0.0055 * 0.28,
                                                                          rel=1e-6)


def vertex_colored() -> TriangleModel:
    config = FitConfig(data=Path("unused"), model="triangles")
    return TriangleModel(dataclasses.replace(config, triangles=dataclasses.replace(
        config.triangles, vertex_colors=True)), scene_scale=1.0)


@pytest.mark.parametrize("per_corner", [False, True])
def test_midpoint_subdivision_keeps_the_image(model, per_corner):
    """Splitting every triangle into its 4 midpoint triangles covers the same area with the same
    colour: with σ → 0 (solid triangles) the image changes by a mean absolute 0.0016 (the
    children's shared edges, where two soft borders meet; tolerance 0.003), against 0.082 when
    the triangles are removed. With a colour per corner the midpoints take the edge's mean, which
    is what barycentric interpolation gives there, so the gradient is kept too."""
    model = vertex_colored() if per_corner else model
    g = torch.Generator().manual_seed(1)
    params = model.initialize((torch.rand(20, 3, generator=g) - 0.5).numpy(),
                              torch.rand(20, 3, generator=g).numpy(), g, "cpu")
    params["sigmas"].data.fill_(-6.0)   # solid: the window is ~1 inside
    params["opacities"].data.fill_(1.0)
    if per_corner:  # a different colour at every corner
        params["sh0"].data.copy_(torch.randn(params["sh0"].shape, generator=g))
    optimizers = create_optimizers(params, model.learning_rates(0))
    cam = camera()

    def image(p):
        with torch.no_grad():
            return render(model.primitives(p), cam, model.colors(p, 0), backend="cpu",
                          sh_degree=0, depth=False, normals=False).features

    before = image(params)
    area = torch.linalg.cross(*(params["vertices"].detach()[:, 1:] -
                                params["vertices"].detach()[:, :1]).unbind(1)).norm(dim=-1)
    assert ops.split(params, optimizers, torch.ones(20, dtype=torch.bool), model) == 20
    assert ops.num_rows(params) == 80
    v = params["vertices"].detach()
    child_area = torch.linalg.cross(*(v[:, 1:] - v[:, :1]).unbind(1)).norm(dim=-1)
    assert torch.allclose(child_area.reshape(4, 20).sum(0), area, rtol=1e-4)
    change = float((image(params) - before).abs().mean())
    removed = float(before.abs().mean())  # removing them leaves the black background
    assert change < 3e-3 and removed > 10 * change


def test_the_soup_exports_as_a_mesh_in_the_input_frame(model, tmp_path):
    import trimesh

    g = torch.Generator().manual_seed(2)
    params = model.initialize(torch.rand(10, 3, generator=g).numpy(),
                              torch.rand(10, 3, generator=g).numpy(), g, "cpu")
    sim = Similarity(scale=2.0, rotation=np.eye(3), translation=np.array([0.0, 1.0, 0.0]))
    path = model.export("ply", tmp_path / "soup.ply", params, sim, 0)
    mesh = trimesh.load(path, force="mesh", process=False)
    assert len(mesh.faces) == 10
    expected = (params["vertices"].detach().reshape(-1, 3).numpy() - [0.0, 1.0, 0.0]) / 2.0
    np.testing.assert_allclose(np.asarray(mesh.vertices), expected, atol=1e-6)


def test_the_opaque_finish_ends_with_solid_opaque_triangles():
    """Over the last 20 % of 100 steps: σ capped at σ₀ (1 − t), a loss term pushing towards solid
    and opaque, over the second half the triangles below an opacity rising 0.1 -> 0.7 pruned
    (their Adam rows with them), and after the last step the survivors opaque. Untouched before
    step 79; at step 89 (t = ½) σ = 0.58 and nothing is below 0.1; after step 99 the faint half
    is gone and the rest is solid (σ = 0.001) and opaque."""
    config = FitConfig(data=Path("unused"), model="triangles", steps=100)
    config = dataclasses.replace(config, triangles=dataclasses.replace(config.triangles,
                                                                       opaque_finish=0.2))
    model = TriangleModel(config, scene_scale=1.0)
    assert model.finishing(78) is None and model.finishing(79) == pytest.approx(0.0)
    g = torch.Generator().manual_seed(3)
    params = model.initialize(torch.rand(10, 3, generator=g).numpy(), np.full((10, 3), 0.5), g,
                              "cpu")
    params["opacities"].data.copy_(torch.logit(torch.tensor([0.9, 0.2] * 5)))
    optimizers = create_optimizers(params, model.learning_rates(0))
    push = model.loss(params, 85) - model.loss(params, 10)
    assert float(push.detach()) == pytest.approx(1.16 + 0.02 / 0.55, rel=1e-5)
    before = {k: v.detach().clone() for k, v in params.items()}
    model.after_step(params, optimizers, 78)
    assert all(torch.equal(params[k], before[k]) for k in before)
    model.after_step(params, optimizers, 89)
    assert ops.num_rows(params) == 10
    assert torch.allclose(params["sigmas"].exp(), torch.full((10,), 0.58), rtol=1e-5)
    model.after_step(params, optimizers, 99)
    assert ops.num_rows(params) == 5
    assert torch.equal(params["vertices"], before["vertices"][0::2])
    assert torch.allclose(params["sigmas"].exp(), torch.full((5,), 1e-3), rtol=1e-5)
    assert (torch.sigmoid(params["opacities"]) >= 0.9999 - 1e-6).all()
    assert optimizers["vertices"].param_groups[0]["params"][0] is params["vertices"]


def test_the_normal_term_joins_the_loss_after_its_start():
    """Before normal_start · steps only the opacity term; after it, λ_normal · mean(1 − n·n_depth)
    over the image, here for a soup whose depth map is bumpy, so the rendered normals disagree
    with it and the term has a gradient on the corners."""
    config = FitConfig(data=Path("unused"), model="triangles", steps=300)
    model = TriangleModel(config, scene_scale=1.0)
    g = torch.Generator().manual_seed(4)
    params = model.initialize((torch.rand(60, 3, generator=g) - 0.5).numpy(),
                              torch.rand(60, 3, generator=g).numpy(), g, "cpu")
    cam = camera()
    assert not model.needs_normals(49) and model.needs_normals(50)    # 5/30 of 300 steps
    result = render(model.primitives(params), cam, model.colors(params, 0), backend="cpu",
                    sh_degree=0, depth=True, normals=True)
    opacity_only = model.loss(params, 10, result, cam)
    both = model.loss(params, 60, result, cam)
    normal_term = float((both - opacity_only).detach())
    assert 0 < normal_term <= 1e-4 * 2     # 1 − n·n_depth lies in [0, 2]
    both.backward()
    assert params["vertices"].grad.abs().sum() > 0


def test_vertex_colours_are_interpolated_across_the_triangle():
    """Red, green and blue corners: near each corner its own colour, at the centroid the mean
    (solid triangle, SH degree 0, the view direction does not matter)."""
    model = vertex_colored()
    params = model.initialize(np.zeros((1, 3)), np.full((1, 3), 0.5), torch.Generator(), "cpu")
    params["vertices"].data.copy_(torch.tensor([[[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0],
                                                 [0.0, 1.2, 0.0]]]))
    params["sigmas"].data.fill_(-6.0)
    params["opacities"].data.fill_(9.0)
    rgb = torch.eye(3)                                                 # corner i: primary i
    params["sh0"].data.copy_(((rgb - 0.5) / 0.28209479177387814).reshape(1, 1, 9))
    assert model.colors(params, 0).shape == (1, 3, 1, 3)
    cam = camera()
    with torch.no_grad():
        image = render(model.primitives(params), cam, model.colors(params, 0), backend="cpu",
                       sh_degree=0, depth=False, normals=False).features
    mesh = soup_mesh(params)
    assert (mesh.visual.vertex_colors[:, :3] == (rgb * 255).numpy()).all()
    corners_px, _ = cam.project(params["vertices"].detach()[0].numpy())
    centroid_px = corners_px.mean(0)
    for corner_px, colour in zip(corners_px, rgb):
        x, y = (corner_px + 0.15 * (centroid_px - corner_px)).astype(int)  # just inside
        pixel = image[:, y, x]
        assert int(pixel.argmax()) == int(colour.argmax()) and float(pixel.max()) > 0.6
    x, y = centroid_px.astype(int)
    assert torch.allclose(image[:, y, x], torch.full((3,), 0.99 / 3), atol=0.05)
