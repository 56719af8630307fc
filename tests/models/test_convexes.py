"""The convex model: 3DCS initialisation, the mask in the opacity, the σ gradient it hands
densification, and its files (.ply round trip in the input frame, hull meshes)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from recon.cameras import Camera, Similarity, look_at
from recon.models.convex_files import hull_faces, hull_mesh, read_ply, write_hulls, write_ply
from recon.models.convexes import ConvexModel, fibonacci_sphere, pixel_scale
from recon.models.points import mean_neighbour_distance
from recon.render import render
from recon.train.config import FitConfig


@pytest.fixture
def model() -> ConvexModel:
    return ConvexModel(FitConfig(data=Path("unused"), max_sh_degree=1), scene_scale=2.0)


def camera(focal: float = 100.0) -> Camera:
    return Camera(64, 64, focal, focal, 32, 32, look_at(np.array([0.0, 0.0, -4.0]), np.zeros(3)))


def test_initialisation_follows_3dcs(model):
    g = torch.Generator().manual_seed(0)
    points = torch.rand(50, 3, generator=g).numpy()
    params = model.initialize(points, np.full((50, 3), 0.25), g, "cpu", cameras=[camera(100.0)])
    spacing = torch.as_tensor(mean_neighbour_distance(points), dtype=torch.float32)
    offsets = params["points"].detach() - torch.as_tensor(points)[:, None]
    # K = 6 points on a sphere of radius 1.2 × the mean 3-NN distance, spread evenly.
    assert params["points"].shape == (50, 6, 3)
    assert torch.allclose(offsets.norm(dim=-1), 1.2 * spacing[:, None].expand(50, 6), rtol=1e-5)
    # δ₀ = 0.1 / spacing and σ₀ = 0.00095 at a 1000-px focal length, × (1000 / f)² here.
    scale = (1000.0 / 100.0) ** 2
    assert pixel_scale([camera(100.0)]) == pytest.approx(scale)
    assert torch.allclose(params["deltas"].exp(), 0.1 * scale / spacing, rtol=1e-5)
    assert torch.allclose(params["sigmas"].exp(), torch.full((50,), 0.00095 * scale), rtol=1e-5)
    assert torch.allclose(torch.sigmoid(params["opacities"]), torch.full((50,), 0.1))
    assert params["shN"].shape == (50, 3, 3) and float(params["shN"].detach().abs().max()) == 0.0
    assert set(model.learning_rates(0)) == set(params.keys())
    assert model.learning_rates(0)["points"] == pytest.approx(5e-4 * 2.0)  # × scene scale


def test_fibonacci_points_are_spread_evenly():
    dirs = fibonacci_sphere(6)
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(6), atol=1e-6)
    nearest = (dirs[:, None] - dirs[None]).norm(dim=-1).add(torch.eye(6) * 9).amin(-1)
    assert float(nearest.min()) > 1.0  # 6 points: every neighbour at least 60° away


def test_the_mask_switches_a_convex_off_and_catches_the_sigma_gradient(model):
    cam = camera(100.0)
    g = torch.Generator().manual_seed(1)
    params = model.initialize(np.zeros((1, 3)), np.full((1, 3), 0.8), g, "cpu", cameras=[cam])
    params["opacities"].data.fill_(2.0)
    colours = model.colors(params, 0)
    drawn = render(model.primitives(params), cam, colours, backend="cpu", sh_degree=0)
    assert float(drawn.alpha.detach().max()) > 0.5
    loss = drawn.features.sum() + model.loss(params)
    loss.backward()
    signal = model.densification_signal(params)
    sigma = params["sigmas"].detach().exp()
    # |∂L/∂σ| = |∂L/∂log σ| / σ, caught from the render's backward pass.
    assert signal is not None and torch.allclose(signal, params["sigmas"].grad.abs() / sigma)
    assert params["masks"].grad is not None and float(params["masks"].grad.abs()) > 0
    assert model.densification_signal(params) is None  # consumed
    params["masks"].data.fill_(math.log(0.009 / 0.991))  # below the 0.01 threshold
    off = render(model.primitives(params), cam, colours, backend="cpu", sh_degree=0)
    assert float(off.alpha.detach().max()) < 1 / 255


def test_ply_round_trip_in_the_input_frame(model, tmp_path):
    g = torch.Generator().manual_seed(2)
    params = model.initialize(torch.rand(30, 3, generator=g).numpy(),
                              torch.rand(30, 3, generator=g).numpy(), g, "cpu",
                              cameras=[camera()])
    params["shN"].data.normal_(generator=g)
    params["masks"].data[:5] = -10.0  # switched off: not written
    sim = Similarity(scale=0.5, rotation=np.eye(3), translation=np.array([1.0, -2.0, 0.5]))
    path = write_ply(tmp_path / "c.ply", params, sim, sh_degree=1)
    raw = read_ply(path)
    back = read_ply(path, sim)
    assert len(raw["points"]) == 25
    # Points are in the input frame (sim maps input -> normalised); δ, σ divide by its scale.
    expected = (params["points"].detach()[5:] - torch.tensor([1.0, -2.0, 0.5])) / 0.5
    assert torch.allclose(raw["points"], expected, atol=1e-5)
    assert torch.allclose(raw["deltas"], params["deltas"].detach()[5:] + math.log(0.5), atol=1e-6)
    for name in ("points", "deltas", "sigmas", "opacities", "sh0", "shN"):
        assert torch.allclose(back[name], params[name].detach()[5:], atol=1e-5), name


def test_hull_meshes_are_closed_and_match_scipy(model, tmp_path):
    from scipy.spatial import ConvexHull

    g = torch.Generator().manual_seed(3)
    points = torch.randn(200, 6, 3, generator=g)
    mesh = hull_mesh({"points": points, "sh0": torch.zeros(200, 1, 3)})
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume == pytest.approx(sum(ConvexHull(p.numpy()).volume for p in points),
                                        rel=1e-6)
    # Coplanar points: a unit cube's corners make 12 triangles, each face covered once.
    cube = torch.tensor([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)],
                        dtype=torch.float32)[None]
    _, used = hull_faces(cube)
    assert int(used.sum()) == 12
    cube_mesh = hull_mesh({"points": cube, "sh0": torch.zeros(1, 1, 3)})
    assert cube_mesh.is_watertight and cube_mesh.volume == pytest.approx(1.0)
    params = {"points": points, "masks": torch.zeros(200), "sh0": torch.zeros(200, 1, 3)}
    import trimesh

    loaded = trimesh.load(write_hulls(tmp_path / "h.glb", params, None), force="mesh")
    assert len(loaded.faces) == len(mesh.faces)
