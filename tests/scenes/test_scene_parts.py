"""The scenes' building blocks: camera placement, textures and the ray caster on a known plane."""

from __future__ import annotations

import numpy as np
import pytest

from recon.cameras import Camera, look_at
from recon.scenes.geometry import SceneMesh, ScenePart, default_scene
from recon.scenes.raycast import Light, Raycaster
from recon.scenes.textures import (
    ImageTextureMaterial,
    NoiseMaterial,
    VertexColorMaterial,
    random_lattice,
    value_noise,
)
from recon.scenes.views import fibonacci_directions, sparse_directions


def angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip(np.einsum("ij,ij->i", a, b), -1.0, 1.0)))


def test_fibonacci_directions_cover_the_cap_evenly():
    """Unit vectors above min_z whose nearest neighbours are all about equally far: for 64 points
    on a cap of area A the mean spacing is ~sqrt(A/64); the spiral keeps every nearest-neighbour
    angle within a factor ~1.5 of the others (a random layout would reach 5x)."""
    min_z = np.sin(np.radians(15.0))
    dirs = fibonacci_directions(64, min_z)
    np.testing.assert_allclose(np.linalg.norm(dirs, axis=1), 1.0, atol=1e-12)
    assert dirs[:, 2].min() >= min_z
    cos = dirs @ dirs.T
    np.fill_diagonal(cos, -1.0)
    nearest = np.degrees(np.arccos(cos.max(1)))
    assert nearest.max() / nearest.min() < 1.6
    assert 12.0 < nearest.mean() < 22.0  # sqrt(2*pi*(1 - sin 15°)/64) = 15.7°


def test_sparse_training_views_are_30_to_60_degrees_apart():
    train, test = sparse_directions(3, 8)
    assert train.shape == (3, 3) and test.shape == (8, 3)
    gaps = angles_deg(train[:-1], train[1:])
    assert ((gaps >= 30.0) & (gaps <= 60.0)).all()
    # Test views are not copies of training views.
    assert min(angles_deg(np.repeat(test, 3, 0), np.tile(train, (8, 1)))) > 3.0


def test_value_noise_is_continuous_bounded_and_seeded():
    lattice = random_lattice(np.random.default_rng(0))
    points = np.random.default_rng(1).uniform(-20, 20, (20000, 3)).astype(np.float32)
    n = value_noise(points, lattice)
    assert n.min() >= 0.0 and n.max() <= 1.0 and n.std() > 0.1
    # Smoothstep-trilinear noise has gradient at most 1.5 per unit along each axis per unit of
    # value range, so a 1e-3 step moves it by at most ~3 * 1.5e-3.
    moved = value_noise(points + np.float32(1e-3), lattice)
    assert np.abs(moved - n).max() < 5e-3
    # Integer lattice points take exactly the table's values (wrapped every 64 cells).
    assert value_noise(np.array([[3.0, 5.0, 7.0]]), lattice)[0] == \
        value_noise(np.array([[67.0, -59.0, 71.0]]), lattice)[0]
    other = random_lattice(np.random.default_rng(2))
    assert not np.allclose(value_noise(points, other), n)


def test_noise_material_on_a_plane_at_z0_is_not_speckled():
    """Flat faces on integer planes (the ground, z = 0) must not flicker between pattern cells when
    rounding puts hits at z = +-1e-7: the colour is the same on either side of the plane."""
    material = NoiseMaterial(np.eye(3, dtype=np.float32), random_lattice(np.random.default_rng(0)),
                             pattern="checker", pattern_frequency=4.0)
    xy = np.random.default_rng(0).uniform(-2, 2, (5000, 2))
    above = np.column_stack([xy, np.full(5000, 1e-7)]).astype(np.float32)
    below = np.column_stack([xy, np.full(5000, -1e-7)]).astype(np.float32)
    unused = np.zeros(5000, int), np.full((5000, 3), 1 / 3)
    np.testing.assert_allclose(material.albedo(above, *unused), material.albedo(below, *unused),
                               atol=1e-5)


def test_vertex_and_image_materials_interpolate_with_barycentrics():
    faces = np.array([[0, 1, 2]])
    colors = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    bary = np.array([[1.0, 0, 0], [0.2, 0.3, 0.5]])
    out = VertexColorMaterial(faces, colors).albedo(None, np.zeros(2, int), bary)
    np.testing.assert_allclose(out, bary)
    # A 2x2 image: uv at texel centres returns the texels (v = 0 is the bottom row).
    image = np.array([[[1, 0, 0], [0, 1, 0]], [[0, 0, 1], [1, 1, 1]]], np.float32)
    uv = np.array([[0.25, 0.75], [0.75, 0.75], [0.25, 0.25]])
    corners = np.eye(3)
    texels = ImageTextureMaterial(faces, uv, image).albedo(None, np.zeros(3, int), corners)
    np.testing.assert_allclose(texels, [[1, 0, 0], [0, 1, 0], [0, 0, 1]], atol=1e-6)


def test_raycaster_renders_a_lit_plane_exactly():
    """A square of constant albedo 0.5 at z = 0, seen from straight above at height 2: depth 2
    everywhere it is hit, normal +z, colour 0.5 * (ambient + diffuse * light_z) - all closed form."""
    vertices = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], float)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    grey = VertexColorMaterial(faces, np.full((4, 3), 0.5))
    mesh = SceneMesh.from_parts([ScenePart(vertices, faces, grey)])
    light = Light()
    camera = Camera(32, 32, 16.0, 16.0, 16.0, 16.0, look_at([0, 0, 2.0], [0, 0, 0], up=[0, 1, 0]))
    view = Raycaster(mesh, light).render(camera)
    # The square spans +-1 at distance 2 with f = 16: pixels 8..23 are inside.
    inside = np.zeros((32, 32), bool)
    inside[8:24, 8:24] = True
    np.testing.assert_array_equal(view.depth > 0, inside)
    np.testing.assert_allclose(view.depth[inside], 2.0, rtol=1e-6)
    np.testing.assert_allclose(view.normals[inside], np.tile([0, 0, 1.0], (inside.sum(), 1)), atol=1e-6)
    expected = 0.5 * (light.ambient + light.diffuse * light.unit_direction()[2])
    assert np.abs(view.rgba[inside][:, :3] / 255.0 - expected).max() <= 0.5 / 255 + 1e-6
    assert (view.rgba[inside][:, 3] == 255).all() and (view.rgba[~inside] == 0).all()


def test_default_scene_objects_stand_on_the_ground_without_overlap():
    for seed in range(5):
        scene = default_scene(np.random.default_rng(seed))
        assert len(scene.materials) == 6  # ground + 5 objects
        boxes = []
        for k in range(1, 6):
            used = np.unique(scene.faces[scene.starts[k]:scene.starts[k + 1]])
            v = scene.vertices[used]
            assert v[:, 2].min() == pytest.approx(0.0, abs=1e-9)
            boxes.append((v[:, :2].mean(0), np.linalg.norm(v[:, :2] - v[:, :2].mean(0), axis=1).max()))
        for i in range(5):
            for j in range(i + 1, 5):
                (ci, ri), (cj, rj) = boxes[i], boxes[j]
                assert np.linalg.norm(ci - cj) > ri + rj  # footprints apart (placement gap 0.12)
