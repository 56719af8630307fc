"""SuGaR surface alignment: entropy and pruning, the ideal-SDF and normal terms on a plane of
splats, k-NN lists, and the regularizer inside a resumable fit."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from recon.cameras import Camera
from recon.models.base import create_optimizers
from recon.models.gaussians import create_splats, to_gaussians
from recon.regularizers.base import RunContext
from recon.regularizers.knn import nearest_neighbors
from recon.regularizers.options import SurfaceOptions
from recon.regularizers.surface import (SurfaceRegularizer, neighbour_density, opacity_entropy,
                                        surface_terms)
from recon.render import render
from recon.strategies import MCMCStrategy
from recon.train.config import FitConfig, InitOptions
from recon.train.trainer import Trainer

PLANE_Z = 2.0
SPACING = 0.1
FLAT = 1e-4  # the smallest scale of a flat splat


def run_context(total_steps: int = 100) -> RunContext:
    return RunContext(cameras=[], images=torch.zeros(0), dataset=None, scene_scale=1.0,
                      total_steps=total_steps, max_sh_degree=0, device=torch.device("cpu"),
                      generator=torch.Generator().manual_seed(0))


def plane_splats(normal_scale: float = FLAT) -> dict[str, torch.Tensor]:
    """Opaque splats on a square grid in the plane z = PLANE_Z (normal +z), wider than the
    camera's view, in-plane scales 0.6 × spacing."""
    ticks = torch.arange(-1.5, 1.5 + 1e-6, SPACING)
    x, y = torch.meshgrid(ticks, ticks, indexing="ij")
    means = torch.stack([x.flatten(), y.flatten(), torch.full_like(x.flatten(), PLANE_Z)], -1)
    n = len(means)
    scales = torch.tensor([0.6 * SPACING, 0.6 * SPACING, normal_scale]).log()
    return {"means": means, "quats": torch.tensor([1.0, 0, 0, 0]).repeat(n, 1),
            "scales": scales.repeat(n, 1), "opacities": torch.full((n,), 8.0)}


def frontal_camera() -> Camera:
    """At the origin looking along +z: the plane fills its 64×64 image (half-width 1 at z = 2)."""
    return Camera(64, 64, 64.0, 64.0, 32.0, 32.0, np.eye(4))


def rendered_depth(splats: dict, camera: Camera) -> torch.Tensor:
    with torch.no_grad():
        out = render(to_gaussians(splats), camera, torch.ones(len(splats["means"]), 3),
                     depth=True, normals=False)
    return out.depth


def terms(splats: dict, depth: torch.Tensor, camera: Camera, samples: int = 2000,
          band: float = 0.2) -> tuple[float, float]:
    g = torch.Generator().manual_seed(3)
    owners = torch.randint(len(splats["means"]), (samples,), generator=g)
    noise = torch.randn(samples, 3, generator=g)
    knn = nearest_neighbors(splats["means"], 16)
    sdf, normal = surface_terms(splats, knn, owners, noise, camera, depth, sample_std=1.5,
                                depth_band=band)
    return float(sdf), float(normal)


def test_opacity_entropy_values():
    logits = torch.tensor([0.0, 20.0, -20.0, math.log(0.9 / 0.1)])
    expected = [math.log(2), 0.0, 0.0, -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))]
    for logit, want in zip(logits, expected):
        assert opacity_entropy(logit[None]).item() == pytest.approx(want, abs=1e-6)
    # Its gradient pushes opacities away from ½: up above it, down below it.
    x = torch.tensor([0.5, -0.5], requires_grad=True)
    opacity_entropy(x).backward()
    assert x.grad[0] < 0 < x.grad[1]


def test_pruning_removes_transparent_gaussians_and_keeps_adam_aligned():
    g = torch.Generator().manual_seed(0)
    splats = create_splats(np.random.default_rng(0).normal(size=(50, 3)), np.full((50, 3), 0.5),
                           max_sh_degree=1, init_scale=1.0, init_opacity=0.5, generator=g)
    with torch.no_grad():
        splats["opacities"].copy_(torch.linspace(-3, 3, 50))  # opacity < 0.5 for the first 25
    optimizers = create_optimizers(splats, {k: 0.01 for k in splats.keys()})
    for p in splats.values():  # one step, so every row has distinct Adam moments
        p.grad = torch.randn(p.shape, generator=g)
    for opt in optimizers.values():
        opt.step()
    before = {k: p.detach().clone() for k, p in splats.items()}
    moments = {k: optimizers[k].state[p]["exp_avg"].clone() for k, p in splats.items()}
    strategy_state = {"grad2d": torch.arange(50.0)}

    reg = SurfaceRegularizer(SurfaceOptions(entropy_start=0.2, prune_at=0.3), run_context(100))
    assert (reg.entropy_start, reg.prune_step) == (20, 30)
    reg.after_step(splats, optimizers, strategy_state, step=28)  # not yet
    assert len(splats["means"]) == 50
    reg.after_step(splats, optimizers, strategy_state, step=29)  # right before step 30
    kept = torch.sigmoid(before["opacities"]) >= 0.5
    assert int(kept.sum()) == 25 and len(splats["means"]) == 25
    for k, p in splats.items():
        assert torch.equal(p.detach(), before[k][kept]), k
        assert torch.equal(optimizers[k].state[p]["exp_avg"], moments[k][kept]), k
    assert torch.equal(strategy_state["grad2d"], torch.arange(25.0, 50.0))


def test_schedule_switches_strategy_and_terms():
    reg = SurfaceRegularizer(SurfaceOptions(), run_context(15_000))
    assert (reg.entropy_start, reg.prune_step) == (7000, 9000)  # SuGaR's step numbers
    assert reg.strategy_active(6999) and not reg.strategy_active(7000)
    assert not reg.needs_depth(8999) and reg.needs_depth(9000)


def test_ideal_sdf_is_zero_on_a_plane_of_flat_splats_and_measures_a_displacement():
    camera = frontal_camera()
    splats = plane_splats()
    depth = rendered_depth(splats, camera)
    assert torch.allclose(depth, torch.full_like(depth, PLANE_Z), atol=1e-4)
    sdf, normal = terms(splats, depth, camera)
    # Samples lie within 1.5·FLAT·|ε| of the plane and f = FLAT·√(-2 ln d) is of that size too.
    assert sdf < 5 * FLAT
    assert normal < 1e-8  # all normals parallel

    shift = 0.05
    moved = dict(splats, means=splats["means"] + torch.tensor([0.0, 0.0, shift]))
    sdf_moved, _ = terms(moved, depth, camera)
    # f̂ = |D - z| is the displacement, f stays ~0: the term is the displacement (±5 %).
    assert sdf_moved == pytest.approx(shift, rel=0.05)


def test_estimated_sdf_is_measured_across_a_tilted_plane_and_leaves_the_depth_alone():
    """A plane of flat splats tilted 40° to the view, moved along its normal by ``shift`` from
    the plane the depth map shows: the term is the shift, not the depth gap shift / cos 40°; and
    no gradient reaches the depth map (it is the target)."""
    camera = frontal_camera()
    theta = math.radians(40.0)
    flat = plane_splats()
    rot = torch.tensor([[1.0, 0, 0], [0, math.cos(theta), -math.sin(theta)],
                        [0, math.sin(theta), math.cos(theta)]])
    centre = torch.tensor([0.0, 0.0, PLANE_Z])
    tilted = dict(flat, means=(flat["means"] - centre) @ rot.T + centre,
                  quats=rotation_about_x(theta).repeat(len(flat["means"]), 1))
    depth = rendered_depth(tilted, camera).requires_grad_()
    shift = 0.05
    moved = dict(tilted, means=tilted["means"] + shift * rot[:, 2])
    sdf_moved, _ = terms(moved, depth, camera)
    assert sdf_moved == pytest.approx(shift, rel=0.05)  # shift / cos 40° would be 1.31 × shift
    g = torch.Generator().manual_seed(3)
    owners = torch.randint(len(moved["means"]), (500,), generator=g)
    sdf, _ = surface_terms(moved, nearest_neighbors(moved["means"], 16), owners,
                           torch.randn(500, 3, generator=g), camera, depth, sample_std=1.5,
                           depth_band=0.2)
    assert not sdf.requires_grad and depth.grad is None


def test_ideal_sdf_penalises_thick_splats():
    """Splats as thick as they are wide, on the plane: f counts in-plane offsets scaled by the
    (now large) smallest scale, which the depth map does not see."""
    camera = frontal_camera()
    flat, thick = plane_splats(), plane_splats(normal_scale=0.6 * SPACING)
    sdf_flat, _ = terms(flat, rendered_depth(flat, camera), camera)
    sdf_thick, _ = terms(thick, rendered_depth(thick, camera), camera)
    assert sdf_thick > 0.02 > 100 * sdf_flat  # seen: ~0.04 vs ~1e-4


def rotation_about_x(angle: float) -> torch.Tensor:
    return torch.tensor([math.cos(angle / 2), math.sin(angle / 2), 0.0, 0.0])


def test_normal_term_ignores_normal_signs_and_grows_with_tilt():
    camera = frontal_camera()
    splats = plane_splats()
    depth = rendered_depth(splats, camera)
    every_other = torch.arange(len(splats["means"])) % 2 == 0

    flipped = dict(splats, quats=splats["quats"].clone())
    flipped["quats"][every_other] = rotation_about_x(math.pi)  # normal -z: the same surface
    assert terms(flipped, depth, camera)[1] < 1e-8

    # Splats a third as thick as wide, so tilted neighbours still overlap the samples.
    splats = plane_splats(normal_scale=0.2 * SPACING)
    angles = (10, 30, 60, 90)
    losses = []
    for degrees in angles:
        tilted = dict(splats, quats=splats["quats"].clone())
        tilted["quats"][every_other] = rotation_about_x(math.radians(degrees))
        losses.append(terms(tilted, depth, camera, band=1.0)[1])
    # |n* - Σ w n|² is at most |n* - n_other|² = 2 (1 - cos θ) (about a quarter of it when
    # half the weight is the other orientation's; seen 0.006, 0.065, 0.24, 0.45) and grows.
    assert all(a < b for a, b in zip(losses, losses[1:]))
    for loss, degrees in zip(losses, angles):
        bound = 2 * (1 - math.cos(math.radians(degrees)))
        assert 0.1 * bound < loss < 0.5 * bound


def test_density_of_a_single_gaussian_matches_its_formula():
    splats = {"means": torch.zeros(1, 3), "quats": rotation_about_x(0.7)[None],
              "scales": torch.tensor([[0.5, 0.2, 0.1]]).log(), "opacities": torch.tensor([1.0])}
    point = torch.tensor([[0.1, -0.2, 0.05]])
    field = neighbour_density(point, torch.zeros(1, 1, dtype=torch.long), splats["means"],
                              splats["quats"], splats["scales"], splats["opacities"])
    from recon.primitives.gaussians import covariances

    cov = covariances(splats["quats"], splats["scales"].exp())[0]
    want = torch.sigmoid(torch.tensor(1.0)) * torch.exp(-0.5 * point[0] @ torch.linalg.solve(
        cov, point[0]))
    assert field.density.item() == pytest.approx(want.item(), rel=1e-5)
    assert field.ideal_sdf.item() == pytest.approx(0.1 * math.sqrt(-2 * math.log(want)), rel=1e-5)


def test_knn_matches_brute_force():
    points = torch.from_numpy(np.random.default_rng(1).normal(size=(400, 3))).float()
    knn = nearest_neighbors(points, 8)
    assert knn.shape == (400, 8)
    assert torch.equal(knn[:, 0], torch.arange(400))
    brute = torch.cdist(points.double(), points.double()).topk(8, largest=False)
    got = (points.double()[knn] - points.double()[:, None]).norm(dim=-1)
    assert torch.allclose(got, brute.values, atol=1e-12)
    assert nearest_neighbors(points[:5], 16).shape == (5, 5)  # k capped at N


def surface_config(data, out, **changes) -> FitConfig:
    """A 30-step MCMC fit of the tiny dataset: entropy from step 9, pruning after step 14, the
    surface terms from step 15 with k-NN refreshes every 3 steps."""
    base = FitConfig(
        data=data, out=out, steps=30, quiet=True, log_every=5, checkpoint_every=10,
        strategy="mcmc", mcmc=MCMCStrategy(cap_max=420, refine_start_iter=4, refine_every=5),
        init=InitOptions(num_random=300), sh_degree_interval=10, max_sh_degree=1,
        keep_checkpoints=0, reg="surface",
        surface=SurfaceOptions(entropy_start=0.3, prune_at=0.5, num_samples=500, knn_every=3,
                               depth_band=0.5))
    return dataclasses.replace(base, **changes)


def test_surface_fit_prunes_and_resumes_bit_identically(tiny_npz, tmp_path):
    straight = Trainer.open(surface_config(tiny_npz, tmp_path / "a"))
    straight.train(until=14)
    before_prune = len(straight.params["means"])
    straight.train(until=15)
    assert len(straight.params["means"]) < before_prune  # transparent ones removed
    assert (torch.sigmoid(straight.params["opacities"]) >= 0.5).all()
    straight.train()

    first = Trainer.open(surface_config(tiny_npz, tmp_path / "b"))
    first.train(until=20)  # mid-way between k-NN refreshes (15, 18, 21)
    first.save_checkpoint()
    del first
    resumed = Trainer.open(surface_config(tiny_npz, tmp_path / "b", resume=True))
    assert resumed.step == 20
    resumed.train()
    for name, p in straight.params.items():
        assert torch.equal(p, resumed.params[name]), name
        assert torch.equal(straight.optimizers[name].state[p]["exp_avg_sq"],
                           resumed.optimizers[name].state[resumed.params[name]]["exp_avg_sq"])
    assert torch.equal(straight.regularizer.knn, resumed.regularizer.knn)
