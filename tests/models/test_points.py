"""Where a model's rows start: neighbour spacing, random points and the region the cameras view."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recon.cameras import Camera, look_at
from recon.models.points import (HORIZON_MARGIN, VIEW_MARGIN, far_points, fibonacci_sphere,
                                  mean_neighbour_distance, random_points, viewed_region)


def grid(spacing: float) -> np.ndarray:
    axis = np.arange(4) * spacing
    return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)


def test_mean_neighbour_distance_on_a_lattice():
    # On a cubic lattice every point has at least 3 neighbours at exactly the spacing.
    assert np.allclose(mean_neighbour_distance(grid(0.25)), 0.25, atol=1e-12)


def test_random_points_stay_in_the_cube():
    g = torch.Generator().manual_seed(0)
    pts, colors = random_points(5000, np.array([1.0, -2.0, 0.5]), 0.3, g)
    assert pts.shape == (5000, 3) and colors.shape == (5000, 3)
    assert np.all(np.abs(pts - [1.0, -2.0, 0.5]) <= 0.3 + 1e-6)
    assert np.all(np.abs(pts - [1.0, -2.0, 0.5]).max(0) > 0.29)  # fills it
    assert colors.min() >= 0 and colors.max() <= 1


def test_viewed_region_of_an_orbit():
    target = np.array([0.3, -0.2, 0.1])
    cams = []
    for i in range(8):
        a = 2 * np.pi * i / 8
        eye = target + 4.0 * np.array([np.cos(a), np.sin(a), 0.5])
        cams.append(Camera(100, 80, 100.0, 100.0, 50.0, 40.0, look_at(eye, target)))
    center, half = viewed_region(cams)
    assert np.allclose(center, target, atol=1e-9)
    # Half field of view (the shorter, vertical side: 40 px / 100 px) at distance 4·√1.25.
    assert half == pytest.approx(4.0 * math.sqrt(1.25) * 0.4, rel=1e-9)


def test_viewed_region_on_lego(shared_data):
    from recon.data import load_dataset

    ds = load_dataset(shared_data / "lego_100.npz")
    center, half = viewed_region(ds.cameras)
    # The lego cameras orbit the input origin at radius ~4.03 with a 0.36 half-fov tangent.
    assert np.allclose(center, ds.normalization.apply(np.zeros((1, 3)))[0], atol=2e-3)
    assert half / ds.normalization.scale == pytest.approx(1.45, abs=0.03)


def test_fibonacci_sphere_is_even():
    dirs = fibonacci_sphere(2000)
    assert np.allclose(np.linalg.norm(dirs, axis=1), 1.0, atol=1e-12)
    assert np.abs(dirs.mean(0)).max() < 2e-3  # balanced: no pole or side favoured
    # Every point's nearest neighbour lies near the even spacing √(4π/N) (uniform density).
    from scipy.spatial import cKDTree

    nearest = cKDTree(dirs).query(dirs, k=2)[0][:, 1]
    assert nearest.min() > 0.6 * math.sqrt(4 * math.pi / 2000)
    assert nearest.max() < 1.3 * math.sqrt(4 * math.pi / 2000)


def street_cameras(count: int = 6) -> list[Camera]:
    """A forward-moving sequence along +x, every camera looking down the street (+x)."""
    return [Camera(64, 48, 40.0, 40.0, 32.0, 24.0,
                   look_at(np.array([0.2 * i, 0.0, 0.0]), np.array([0.2 * i + 1.0, 0.0, 0.0])))
            for i in range(count)]


def test_far_points_cover_what_the_cameras_see_behind_the_scene():
    cams = street_cameras()
    # Every photo: sky (200) above the middle row, road (50) below. The cameras stand level at
    # height 0, so a far point above 0 shows in the sky rows of every camera that sees it.
    image = np.full((48, 64, 3), 50, dtype=np.uint8)
    image[:24] = 200
    images = [image] * len(cams)
    points, colors = far_points(cams, images, 500, 10.0, np.zeros((0, 3)))
    center = np.stack([c.center for c in cams]).mean(0)
    distances = np.linalg.norm(points - center, axis=1)
    assert np.allclose(distances, 10.0 * 0.5, rtol=1e-6)  # spread: the end cameras, 0.5 away
    # About `num` points, all where some camera looks or within VIEW_MARGIN of its image (here,
    # ahead: a field of view of ±39° widened to ±50°), most of them inside an image.
    assert 450 <= len(points) <= 550
    seen = np.zeros(len(points), dtype=bool)
    near = np.zeros(len(points), dtype=bool)
    for c in cams:
        uv, z = c.project(points)
        seen |= (z > 0) & (uv >= 0).all(1) & (uv[:, 0] < 64) & (uv[:, 1] < 48)
        low, high = -VIEW_MARGIN * np.array([64, 48]), (1 + VIEW_MARGIN) * np.array([64, 48])
        near |= (z > 0) & (uv >= low).all(1) & (uv < high).all(1)
    assert near.all() and not seen.all() and seen.mean() > 0.5
    # Ahead only: the widened images' corners are 56.3° off the axis (tan: 1.2 and 0.9, 1.5
    # together), and the cameras stand up to 0.5 from the centre.
    assert (points[:, 0] - center[0]).min() > 5.0 * math.cos(math.atan(1.5)) - 0.5 - 1e-6
    # The cameras agree that +z is up: the dome above the horizon (less the margin) is kept.
    height = points[:, 2] - center[2]
    assert height.min() > -HORIZON_MARGIN * 5.0 - 1e-6
    # Rows 23 and 24 straddle the horizon; points clearly above or below it take sky or road.
    assert np.allclose(colors[height > 0.2], 200 / 255, atol=1e-6)
    assert np.allclose(colors[height < -0.2], 50 / 255, atol=1e-6)
    assert (height > 0.2).sum() > 100 and (height < -0.2).sum() > 10


def test_far_points_cover_the_whole_view_of_cameras_that_roll():
    # Cameras turned about their axis by 0°, 90°, 180° and 270° agree on no up: the full sphere.
    roll = [np.array([[np.cos(a), -np.sin(a), 0, 0], [np.sin(a), np.cos(a), 0, 0],
                      [0, 0, 1, 0], [0, 0, 0, 1]]) for a in np.radians([0, 90, 180, 270])]
    cams = [Camera(64, 48, 40.0, 40.0, 32.0, 24.0, r @ street_cameras(1)[0].world_to_camera)
            for r in roll]
    points, _ = far_points(cams, [np.zeros((48, 64, 3), np.uint8)] * 4, 300, 10.0,
                           np.zeros((0, 3)))
    assert (points[:, 2] < -1.0).sum() > 30  # well below the horizon too


def test_far_points_lie_behind_the_scene_points():
    cams = street_cameras()
    scene = np.random.default_rng(0).normal(size=(1000, 3)) * 20.0
    points, _ = far_points(cams, [np.zeros((48, 64, 3), np.uint8)] * len(cams), 200, 10.0, scene)
    center = np.stack([c.center for c in cams]).mean(0)
    reach = np.percentile(np.linalg.norm(scene - center, axis=1), 98)
    assert np.allclose(np.linalg.norm(points - center, axis=1), 1.5 * reach, rtol=1e-6)


@pytest.fixture(scope="module")
def object_scene(tmp_path_factory):
    """The built-in object scene (a textured torus) at 128², 48 views: poses, no points (at 96²
    SIFT finds too few features on it to match)."""
    from recon.cli import main

    out = tmp_path_factory.mktemp("object") / "scene"
    main(["scene", "object", "--out", str(out), "--resolution", "128", "--views", "48", "--force"])
    return out


def test_posed_views_without_points_start_from_triangulated_matches(object_scene, tmp_path,
                                                                    monkeypatch):
    """--init.source auto on a dataset without points: SIFT matches between neighbouring views,
    triangulated with the known poses, lie on the true surface (measured: 558 points, median
    0.21 %, 90th percentile 1.7 % of the bounding-box diagonal), are cached, and are read back
    from the cache; random points make up --init.num-random."""
    import open3d as o3d
    import trimesh

    import recon.data.matches as matches
    from recon.data import DataConfig, load_dataset
    from recon.models.points import MIN_TRIANGULATED, initial_points
    from recon.train.config import InitOptions
    from recon.train.trainer import _MatchImages

    dataset = load_dataset(object_scene, DataConfig(normalize=False))
    assert dataset.points is None
    train = dataset.indices("train")
    cameras = [dataset.cameras[i] for i in train]
    images = _MatchImages(torch.from_numpy(np.stack([dataset.image(i) for i in train]))
                          .permute(0, 3, 1, 2))
    cache = tmp_path / "sfm" / "triangulated.npz"
    generator = torch.Generator().manual_seed(0)
    init = InitOptions(num_random=2000)
    points, colors = initial_points(dataset, cameras, init, object_scene, generator,
                                    images=images, cache=cache)
    matched = len(np.load(cache)["points"])
    assert matched >= MIN_TRIANGULATED
    # Random points make up the count (the matched ones come first).
    assert len(points) == 2000 and colors.shape == points.shape
    assert 0 <= colors.min() and colors.max() <= 1
    random_part = points[matched:]
    center, half = viewed_region(cameras)
    assert np.all(np.abs(random_part - center) <= half * init.random_extent + 1e-5)
    points = points[:matched]
    truth = trimesh.load(object_scene / "mesh.ply")
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(truth.vertices.astype(np.float32)),
                        o3d.core.Tensor(truth.faces.astype(np.uint32)))
    distance = scene.compute_distance(o3d.core.Tensor(points.astype(np.float32))).numpy()
    distance /= np.linalg.norm(truth.extents)
    assert np.median(distance) < 0.01 and np.percentile(distance, 90) < 0.04

    monkeypatch.setattr(matches, "triangulated_points", lambda *a, **k: 1 / 0)
    again, _ = initial_points(dataset, cameras, init, object_scene, generator,
                              images=images, cache=cache)
    assert np.array_equal(again[:matched], points)
    # A far layer goes behind whatever the scene starts from, coloured from the images.
    with_far, far_colors = initial_points(dataset, cameras, InitOptions(num_random=2000,
                                          far_points=300), object_scene, generator,
                                          images=images, cache=cache)
    assert np.array_equal(with_far[:matched], points)
    far = with_far[2000:]
    assert 250 <= len(far) <= 350 and far_colors.shape == with_far.shape
    centre = np.stack([c.center for c in cameras]).mean(0)
    assert np.linalg.norm(far - centre, axis=1).min() > np.linalg.norm(
        with_far[:2000] - centre, axis=1).max()
    # random and a capture with one view skip the matching
    ones = initial_points(dataset, cameras, InitOptions(source="random", num_random=50),
                          object_scene, generator, images=images, cache=cache)[0]
    assert len(ones) == 50
    assert len(initial_points(dataset, cameras[:1], InitOptions(num_random=50), object_scene,
                              generator, images=[images[0]],
                              cache=None)[0]) == 50


def test_neighbour_pairs_join_nearby_views_that_face_the_same_way():
    from recon.data.matches import neighbour_pairs

    target = np.zeros(3)
    ring = [Camera(64, 48, 50.0, 50.0, 32.0, 24.0,
                   look_at(4.0 * np.array([np.cos(a), np.sin(a), 0.3]), target))
            for a in np.linspace(0, 2 * np.pi, 12, endpoint=False)]
    pairs = neighbour_pairs(ring, 2)
    # Each view's two nearest are its ring neighbours (30° apart): the 12 edges of the ring.
    assert pairs == sorted({(min(i, (i + 1) % 12), max(i, (i + 1) % 12)) for i in range(12)})
    # Opposite views (optical axes 180° apart) are never paired, however near.
    assert (0, 6) not in neighbour_pairs(ring, 11)
