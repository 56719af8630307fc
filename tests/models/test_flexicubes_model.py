"""The FlexiCubes model: its pieces (trilinear colour/SDF lookups, depth maps as points, the
coarse-to-fine upsampling) and a short fit of a rendered mesh scene from masks and depth."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import cKDTree

from recon.cameras import Camera, look_at
from recon.mesh.flexicubes import FlexiCubesGrid
from recon.models.flexicubes import depth_points, empty_points, trilinear
from recon.train.config import FitConfig
from recon.train.trainer import Trainer

SPOT = "meshes/spot/spot_triangulated.obj"


def test_trilinear_is_exact_on_affine_fields():
    """An affine field is reproduced exactly (to float64 rounding) anywhere in the box, and a
    field with several channels is interpolated channel by channel."""
    grid = FlexiCubesGrid(5, ((-1.0, -0.5, 0.0), (1.0, 0.5, 2.0)))
    at = grid.vertices(dtype=torch.float64)
    coefficients = torch.tensor([[0.3, -1.2], [2.0, 0.5], [-0.7, 0.1]], dtype=torch.float64)
    field = at @ coefficients + torch.tensor([0.25, -1.0], dtype=torch.float64)
    points = torch.rand(200, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    points = points * torch.tensor([2.0, 1.0, 2.0], dtype=torch.float64) \
        + torch.tensor([-1.0, -0.5, 0.0], dtype=torch.float64)
    expected = points @ coefficients + torch.tensor([0.25, -1.0], dtype=torch.float64)
    assert torch.allclose(trilinear(field, grid, points), expected, atol=1e-12)
    assert torch.allclose(trilinear(field, grid, at), field, atol=1e-12)


def test_depth_points_project_back_to_their_pixels():
    """Unprojected depth pixels land at the pixel centres and the camera z they were given
    (1e-5: float32 of values near 1); pixels without depth (0) give no point."""
    camera = Camera(width=24, height=16, fx=20.0, fy=21.0, cx=12.5, cy=7.5,
                    world_to_camera=look_at(np.array([0.3, -2.0, 0.5]), np.zeros(3)))
    depth = torch.rand(16, 24, generator=torch.Generator().manual_seed(1)) + 1.0
    depth[3:5, 7:11] = 0.0
    points = depth_points(depth, camera)
    assert len(points) == 16 * 24 - 8
    w2c = torch.as_tensor(camera.world_to_camera, dtype=torch.float32)
    local = points @ w2c[:3, :3].T + w2c[:3, 3]
    cols = local[:, 0] / local[:, 2] * camera.fx + camera.cx - 0.5
    rows = local[:, 1] / local[:, 2] * camera.fy + camera.cy - 0.5
    known_rows, known_cols = torch.nonzero(depth > 0, as_tuple=True)
    assert torch.allclose(cols, known_cols.float(), atol=1e-4)
    assert torch.allclose(rows, known_rows.float(), atol=1e-4)
    assert torch.allclose(local[:, 2], depth[depth > 0], atol=1e-5)


def test_empty_points_lie_before_the_surface_or_on_background_rays():
    """Points of the empty-space term: inside the grid's box, on the ray of a pixel that is
    background (alpha < 0.01) or knows its depth, and nearer than that depth less the margin;
    pixels with neither (here: alpha 0.5, no depth) give none."""
    camera = Camera(width=24, height=16, fx=20.0, fy=21.0, cx=12.5, cy=7.5,
                    world_to_camera=look_at(np.array([0.3, -3.0, 0.5]), np.zeros(3)))
    grid = FlexiCubesGrid(8, ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0)))
    alpha = torch.ones(16, 24)
    alpha[:, :8] = 0.0            # background
    alpha[:, 16:] = 0.5           # unknown: an antialiased edge, no depth
    depth = torch.zeros(16, 24)
    depth[:, 8:16] = 3.2          # the surface
    points = empty_points(camera, alpha, depth, grid, 0.25, 4000, torch.Generator().manual_seed(0))
    assert 2000 < len(points) < 3000                     # 2/3 of the pixels, all rays hit the box
    assert ((points >= -1 - 1e-5) & (points <= 1 + 1e-5)).all()
    w2c = torch.as_tensor(camera.world_to_camera, dtype=torch.float32)
    local = points @ w2c[:3, :3].T + w2c[:3, 3]
    cols = (local[:, 0] / local[:, 2] * camera.fx + camera.cx).floor().long()
    assert (cols < 16).all()                             # never on the unknown pixels
    on_surface_pixels = cols >= 8
    assert (local[on_surface_pixels, 2] <= 3.2 - 0.25 + 1e-5).all()
    # Background rays are sampled beyond where a surface pixel's would stop.
    assert local[~on_surface_pixels, 2].max() > 3.5


@pytest.fixture(scope="module")
def spot_scene(tmp_path_factory, shared_data):
    from recon.cli import main

    out = tmp_path_factory.mktemp("spot") / "scene"
    main(["scene", "--mesh", str(shared_data / SPOT), "--out", str(out), "--resolution", "64",
          "--views", "24", "--force"])
    return out


def flexicubes_config(data, out, **changes) -> FitConfig:
    config = FitConfig(data=data, out=out, model="flexicubes", steps=200, quiet=True,
                       checkpoint_every=10**6, max_sh_degree=0)
    options = dataclasses.replace(config.flexicubes, resolution=16)
    return dataclasses.replace(config, flexicubes=options, **changes)


def test_upsampling_keeps_the_surface_and_restarts_adam(spot_scene, tmp_path):
    """Doubling the grid keeps the extracted surface within a fine cell (the SDF is sampled
    trilinearly), gives every parameter (2R + 1)³ rows and empty Adam state."""
    trainer = Trainer.open(flexicubes_config(spot_scene, tmp_path / "run", steps=30))
    trainer.train()
    model, params = trainer.model, trainer.params
    coarse = model.browser_view(params)
    model.upsample(params, trainer.optimizers)
    fine = model.browser_view(params)
    grid = model.grid(params)
    assert grid.res == 32 and all(len(p) == 33 ** 3 for p in params.values())
    for name, optimizer in trainer.optimizers.items():
        assert optimizer.param_groups[0]["params"][0] is params[name]
        assert not optimizer.state
    # The fine surface lies on the coarse one, up to the DMC's own error: its vertices' distance
    # to the coarse surface, in fine cells (measured: median 0.19, max 1.01; a refined DMC
    # vertex sits nearer the trilinear field's zero level than the coarse one did).
    # (the coarse surface sampled densely: 200k points, ~0.05 fine cells apart)
    samples, _ = trimesh.sample.sample_surface(coarse, 200_000, seed=0)
    distance, _ = cKDTree(samples).query(fine.vertices)
    cell = max(grid.cell)
    assert np.median(distance) < 0.3 * cell
    assert distance.max() < 1.5 * cell
    trainer.strategy.check_sanity(params, trainer.optimizers)


def test_a_short_fit_recovers_the_mesh_from_masks_and_depth(spot_scene, tmp_path):
    """200 steps at 16³ take spot's Chamfer distance from the initial sphere's to a small
    fraction of a cell, watertight; the depth pixels' distance to the mesh does most of it
    (measured: sphere 6.58 %, fit 0.31 %, and 1.69 % without that term, masks only; a 16³ cell
    is 3.6 % of the box diagonal)."""
    from recon.mesh.metrics import compare_mesh_files

    truth = spot_scene / "mesh.ply"

    def chamfer(trainer, name):
        path = trainer.model.export("ply", tmp_path / f"{name}_{trainer.step}.ply",
                                    trainer.params, trainer.dataset.normalization, 0)
        return compare_mesh_files(path, truth, samples=20_000).chamfer, path

    trainer = Trainer.open(flexicubes_config(spot_scene, tmp_path / "run"))
    before, _ = chamfer(trainer, "fit")
    trainer.train()
    after, path = chamfer(trainer, "fit")
    assert trimesh.load(path).is_watertight
    assert after < before / 10
    assert after < 0.006

    config = flexicubes_config(spot_scene, tmp_path / "masks")
    masks_only = dataclasses.replace(config.flexicubes, depth_weight=0.0)
    trainer = Trainer.open(dataclasses.replace(config, flexicubes=masks_only))
    trainer.train()
    assert chamfer(trainer, "masks")[0] > 3 * after


def test_a_surface_that_leaves_the_box_is_capped_closed(spot_scene, tmp_path):
    """The SDF reads as positive on the grid's boundary, so a sphere around a corner of the box
    (cut by three faces) still extracts as a closed, outward-facing mesh, in training and final
    triangulations alike, and the parameters themselves are left as they are."""
    trainer = Trainer.open(flexicubes_config(spot_scene, tmp_path / "run", steps=1))
    model, params = trainer.model, trainer.params
    grid = model.grid(params)
    corner = torch.tensor(grid.lower)
    with torch.no_grad():
        params["sdf"].copy_((params["rest"] - corner).norm(dim=1) - 0.6 * (grid.upper[0]
                                                                           - grid.lower[0]))
    before = params["sdf"].detach().clone()
    final = model.browser_view(params)
    assert final.is_watertight and final.volume > 0
    vertices, faces, _ = model.mesh(params, training=True)
    training = trimesh.Trimesh(vertices.detach().numpy(), faces.numpy(), process=False)
    assert training.is_watertight and training.volume > 0
    assert torch.equal(params["sdf"], before)
