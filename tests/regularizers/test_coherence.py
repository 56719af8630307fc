"""Coherent per-pixel Gaussians: means on their pixel rays, depth from sparse points, the
disparity TV and the multi-view consistency term, triangulation, and a short fit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from recon.cameras import Camera, look_at
from recon.regularizers.base import RunContext
from recon.regularizers.coherence import (CoherenceError, CoherenceRegularizer, depth_layers,
                                          disparity_tv, interpolated_depth, match_consistency,
                                          pixel_rays)
from recon.data.matches import triangulate
from recon.regularizers.options import CoherenceOptions

SIZE = 32
FOCAL = 40.0


def frontal_cameras() -> list[Camera]:
    """Two cameras 0.4 apart along x at z = 0, both looking along +z (a rectified pair)."""
    cams = []
    for x in (0.0, 0.4):
        w2c = np.eye(4)
        w2c[0, 3] = -x
        cams.append(Camera(SIZE, SIZE, FOCAL, FOCAL, SIZE / 2, SIZE / 2, w2c, name=f"c{x}"))
    return cams


def context(cameras, images=None, steps: int = 100) -> RunContext:
    if images is None:
        images = torch.full((len(cameras), 4, SIZE, SIZE), 255, dtype=torch.uint8)
    return RunContext(cameras=cameras, images=images, dataset=None, scene_scale=1.0,
                      total_steps=steps, max_sh_degree=1, device=torch.device("cpu"),
                      generator=torch.Generator().manual_seed(0))


def test_means_lie_exactly_on_their_pixel_rays():
    cams = [Camera(SIZE, SIZE, FOCAL, FOCAL, 15.0, 17.0,
                   look_at(np.array(eye), np.zeros(3)), name=str(i))
            for i, eye in enumerate([(0.0, -3.0, 1.0), (2.0, -2.0, 1.5)])]
    images = torch.full((2, 4, SIZE, SIZE), 255, dtype=torch.uint8)
    images[:, 3, :5] = 0  # transparent rows own no Gaussians
    reg = CoherenceRegularizer(CoherenceOptions(stride=2, segments=3), context(cams, images))
    g = torch.Generator().manual_seed(0)
    grid = reg.grid
    reg.z0 = 2.5 + torch.rand(2, *grid, generator=g)
    reg.keep = reg.foreground[:, 1::2, 1::2]
    reg.labels = depth_layers(reg.z0, reg.keep, 3)
    reg.codes = torch.randn(2, 8, 2, 2, generator=g)
    reg.depth_decoder.reset(g)
    with torch.no_grad():  # a non-zero output layer, so the offsets are not zero
        reg.depth_decoder.last.weight.normal_(0.0, 0.3, generator=g)
        derived = reg._derived()
    assert (derived["depth"] - reg.z0).abs().max() > 0.05
    # Block centres sit on image rows 1, 3, 5, ...: rows 1 and 3 are transparent.
    assert len(derived["means"]) == int(reg.keep.sum()) == 2 * (grid[0] - 2) * grid[1]

    rows, cols = torch.nonzero(reg.keep[0], as_tuple=True)
    means = derived["means"][: len(rows)].double().numpy()
    uv, z = cams[0].project(means)
    # Exactly on the ray: the mean projects onto its block centre, at the decoded depth.
    expected_uv = np.stack([2 * cols.numpy() + 1.0, 2 * rows.numpy() + 1.0], -1)
    assert np.abs(uv - expected_uv).max() < 1e-4  # float32 geometry, 32 px image
    assert np.allclose(z, derived["depth"][0][rows, cols].double().numpy(), rtol=1e-5)


def test_decoders_start_at_the_initial_depth():
    reg = CoherenceRegularizer(CoherenceOptions(), context(frontal_cameras()))
    g = torch.Generator().manual_seed(1)
    reg.z0 = torch.full((2, SIZE, SIZE), 3.0)
    reg.keep = torch.ones(2, SIZE, SIZE, dtype=torch.bool)
    reg.labels = torch.zeros(2, SIZE, SIZE, dtype=torch.long)
    reg.codes = torch.randn(2, 8, 4, 4, generator=g)
    for decoder in (reg.depth_decoder, reg.opacity_decoder):
        decoder.reset(g)
    with torch.no_grad():
        derived = reg._derived()
    assert torch.equal(derived["depth"], reg.z0)
    assert torch.allclose(torch.sigmoid(derived["opacities"]), torch.tensor(0.5))


def test_tv_of_a_constant_disparity_is_zero_and_edges_count_by_segment():
    labels = torch.zeros(8, 10, dtype=torch.long)
    labels[:, 5:] = 1
    assert disparity_tv(torch.full((8, 10), 2.0), labels, gamma=0.3) == 0.0
    depth = torch.where(labels == 1, 3.0, 1.0)  # a jump exactly at the segment boundary
    jump = 1 / 2 - 1 / 4
    # Global TV: one of the 9 column differences per row jumps (vertical differences are 0).
    assert disparity_tv(depth, labels, gamma=0.0).item() == pytest.approx(jump / 9)
    assert disparity_tv(depth, labels, gamma=0.5).item() == pytest.approx(0.5 * jump / 9)
    assert disparity_tv(depth, labels, gamma=1.0).item() == 0.0
    valid = torch.ones(8, 10, dtype=torch.bool)
    valid[:, 5] = False  # the pairs touching a transparent column do not count
    assert disparity_tv(depth, labels, gamma=0.0, valid=valid).item() == 0.0


def plane_matches(cams, depth: float, count: int = 50):
    """Exact correspondences of random points on the plane z = ``depth``."""
    rng = np.random.default_rng(0)
    points = np.stack([rng.uniform(-0.3, 0.5, count), rng.uniform(-0.4, 0.4, count),
                       np.full(count, depth)], -1)
    xy = [c.project(points)[0] for c in cams]
    return {"first": torch.zeros(count, dtype=torch.long),
            "second": torch.ones(count, dtype=torch.long),
            "xy_first": torch.from_numpy(xy[0]).float(),
            "xy_second": torch.from_numpy(xy[1]).float()}, xy


def test_consistency_is_zero_for_the_true_depth_and_grows_with_an_offset():
    cams = frontal_cameras()
    rays, origins = pixel_rays(cams, 1, (SIZE, SIZE), torch.device("cpu"))
    matches, xy = plane_matches(cams, 2.0)
    depth = torch.full((2, SIZE, SIZE), 2.0)
    assert match_consistency(depth, rays, origins, matches, 1).item() < 1e-6
    ray_l1 = np.abs(np.concatenate([(xy[0] - SIZE / 2) / FOCAL, np.ones((len(xy[0]), 1))],
                                   -1)).sum(-1).mean()
    for offset in (0.05, 0.2):
        moved = depth.clone()
        moved[0] += offset
        # Only view 0's points move, by offset × their ray (camera z = 1): L1 = offset·|ray|₁.
        got = match_consistency(moved, rays, origins, matches, 1).item()
        assert got == pytest.approx(offset * ray_l1, rel=1e-4)


def test_interpolated_depth_is_exact_for_a_tilted_plane():
    cam = frontal_cameras()[0]
    rng = np.random.default_rng(2)
    x, y = rng.uniform(-3, 3, 400), rng.uniform(-3, 3, 400)  # their hull covers the image
    z = 3.0 + 0.4 * x - 0.2 * y  # a plane; its disparity is affine in the pixel coordinates
    depth = interpolated_depth(cam, np.stack([x, y, z], -1), 1, (SIZE, SIZE))
    u = np.arange(SIZE) + 0.5
    uu, vv = np.meshgrid(u, u)
    rx, ry = (uu - cam.cx) / cam.fx, (vv - cam.cy) / cam.fy
    truth = 3.0 / (1.0 - 0.4 * rx + 0.2 * ry)  # z = 3 + 0.4 z rx - 0.2 z ry
    assert np.allclose(depth, truth, rtol=1e-6)
    with pytest.raises(CoherenceError, match="at least 3"):
        interpolated_depth(cam, np.array([[0.0, 0.0, 2.0], [0.0, 0.0, -2.0]]), 1, (SIZE, SIZE))


def test_triangulation_with_known_poses():
    cams = frontal_cameras()
    rng = np.random.default_rng(3)
    points = np.stack([rng.uniform(-0.5, 0.5, 20), rng.uniform(-0.5, 0.5, 20),
                       rng.uniform(1.5, 3.0, 20)], -1)
    xy0, xy1 = (c.project(points)[0] for c in cams)
    xy1[0] += np.array([0.0, 5.0])  # an outlier: 5 px off its epipolar line
    found, good = triangulate(cams[0], cams[1], xy0, xy1)
    assert not good[0] and good[1:].all()
    assert np.abs(found[1:] - points[1:]).max() < 1e-8


def test_depth_layers_split_by_quantile():
    depth = torch.arange(1.0, 101.0).reshape(1, 10, 10)
    keep = torch.ones_like(depth, dtype=torch.bool)
    labels = depth_layers(depth, keep, 4)
    assert torch.equal(torch.bincount(labels.flatten()), torch.tensor([25, 25, 25, 25]))
    assert (labels.flatten().diff() >= 0).all()


@pytest.fixture(scope="module")
def sparse_scene(tmp_path_factory):
    """The built-in 3-view scene at 96 px (~10 s to ray-cast): the smallest size at which SIFT
    matches link every training view to another."""
    from recon.scenes import render_scene

    return render_scene("sparse", tmp_path_factory.mktemp("sparse") / "scene", resolution=96).out


def coherence_config(data, out, **changes):
    from recon.train.config import FitConfig

    base = FitConfig(data=data, out=out, steps=8, quiet=True, log_every=4, checkpoint_every=4,
                     keep_checkpoints=0, max_sh_degree=1, sh_degree_interval=4, reg="coherence",
                     coherence=CoherenceOptions(stride=2, scale_reset_every=3))
    return dataclasses.replace(base, **changes)


def test_coherence_fit_keeps_gaussians_on_rays_and_resumes_bit_identically(sparse_scene,
                                                                            tmp_path):
    from recon.train.trainer import Trainer

    straight = Trainer.open(coherence_config(sparse_scene, tmp_path / "a"))
    reg = straight.regularizer
    count = int(reg.keep.sum())
    assert 0 < count < 3 * 48 * 48  # the transparent sky owns no Gaussians
    straight.train()
    assert len(straight.params["means"]) == count  # no densification

    # The stored means are the decoded ones, and view 0's lie on their block centres' rays.
    with torch.no_grad():
        derived = reg._derived()
    assert torch.equal(straight.params["means"], derived["means"])
    assert (derived["depth"] - reg.z0).abs().max() > 0  # the decoder has moved the depth
    rows, cols = torch.nonzero(reg.keep[0], as_tuple=True)
    uv, _ = straight.cameras[0].project(derived["means"][: len(rows)].double().numpy())
    expected = np.stack([2 * cols.numpy() + 1.0, 2 * rows.numpy() + 1.0], -1)
    assert np.abs(uv - expected).max() < 1e-3

    first = Trainer.open(coherence_config(sparse_scene, tmp_path / "b"))
    first.train(until=4)
    del first
    resumed = Trainer.open(coherence_config(sparse_scene, tmp_path / "b", resume=True))
    assert resumed.step == 4
    resumed.train()
    for name, p in straight.params.items():
        assert torch.equal(p, resumed.params[name]), name
    for a, b in zip(straight.regularizer.parameters(), resumed.regularizer.parameters()):
        assert torch.equal(a, b)
