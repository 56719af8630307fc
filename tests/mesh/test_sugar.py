"""SuGaR extraction on Gaussians laid flat on a sphere: the level set and the Poisson mesh."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial.transform import Rotation

from recon.cameras import Camera, look_at
from recon.errors import ReconError
from recon.mesh.metrics import compare_meshes
from recon.mesh.options import SugarOptions
from recon.mesh.sugar import level_set_points, level_set_views, poisson_surface
from recon.mesh.views import depth_points, render_views, surface_sphere
from recon.models.base import sh_coefficients
from recon.models.density import DEFAULT_NEIGHBORS
from recon.models.gaussians import GaussianModel, to_gaussians
from recon.render.sh import rgb_to_sh0
from recon.train.config import FitConfig

RADIUS = 0.5
N = 4000
TANGENT, THICKNESS, OPACITY = 0.02, 0.002, 0.9
COLOR = torch.tensor([0.8, 0.3, 0.1])


def fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    r = np.sqrt(1 - z * z)
    phi = np.pi * (3 - np.sqrt(5)) * i
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], 1)


def sphere_splats() -> dict:
    """Flat Gaussians tangent to the sphere (thin axis = the normal), in the gsplat layout."""
    normals = fibonacci_sphere(N)
    helper = np.where(np.abs(normals[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])
    t1 = np.cross(normals, helper)
    t1 /= np.linalg.norm(t1, axis=1, keepdims=True)
    t2 = np.cross(normals, t1)
    x, y, z, w = Rotation.from_matrix(np.stack([t1, t2, normals], 2)).as_quat().T
    return {
        "means": torch.tensor(RADIUS * normals, dtype=torch.float32),
        "quats": torch.tensor(np.stack([w, x, y, z], 1), dtype=torch.float32),
        "scales": torch.tensor(np.log([[TANGENT, TANGENT, THICKNESS]] * N), dtype=torch.float32),
        "opacities": torch.full((N,), math.log(OPACITY / (1 - OPACITY))),
        "sh0": rgb_to_sh0(COLOR)[None, None, :].repeat(N, 1, 1),
        "shN": torch.zeros(N, 0, 3),
    }


def density_of(splats):
    """The Gaussian model's density field (SuGaR's 16 nearest centres)."""
    return GaussianModel(FitConfig(data=Path("x")), 1.0).density(splats, DEFAULT_NEIGHBORS)


@pytest.fixture(scope="module")
def views():
    cams = []
    for eye in 2.0 * fibonacci_sphere(16):
        f = 32 / math.tan(math.radians(20))
        cams.append(Camera(64, 64, f, f, 32, 32, look_at(eye, np.zeros(3))))
    splats = sphere_splats()
    return render_views(to_gaussians(splats), sh_coefficients(splats), cams, sh_degree=0,
                        backend="cpu")


def expected_offset() -> float:
    """Normal distance of the λ = 0.3 level from the sheet of Gaussians: the sheet's density is
    ~ α 2π σ_t² / (area per Gaussian) · exp(-x² / 2 σ_n²)."""
    peak = OPACITY * 2 * math.pi * TANGENT**2 / (4 * math.pi * RADIUS**2 / N)
    return THICKNESS * math.sqrt(2 * math.log(peak / 0.3))


@pytest.fixture(scope="module")
def level_set(views):
    _, radius = surface_sphere(views)
    density = density_of(sphere_splats())
    return level_set_points(density, views, radius, SugarOptions(rays=10_000), seed=0)


def test_level_set_points_sit_just_outside_the_sheet(level_set):
    points, normals, colors = level_set
    assert len(points) > 8_000  # nearly every foreground ray crosses the level
    r = np.linalg.norm(points, axis=1)
    # The sheet's density ripples with the Gaussian lattice and bends with the sphere: the
    # level moves by ~0.001 around the flat-sheet estimate.
    assert np.median(r) == pytest.approx(RADIUS + expected_offset(), abs=0.001)
    assert np.abs(r - RADIUS).max() < 0.02
    radial = points / r[:, None]
    assert np.median((normals * radial).sum(1)) > 0.999  # outward, along the radius
    assert np.allclose(np.median(colors, 0), COLOR.numpy(), atol=0.01)


@pytest.mark.parametrize("max_rays", [10**6, 4_000])
def test_level_set_views_put_every_pixel_on_the_level(views, max_rays):
    """Depth maps for TSDF fusion: each foreground pixel at the level set (as the sugar points),
    where the rendered median depth sits at the Gaussians' centres, on a coarser pixel grid
    (cameras scaled) once the foreground exceeds ``max_rays``."""
    _, radius = surface_sphere(views)
    density = density_of(sphere_splats())
    level = level_set_views(density, views, radius, SugarOptions(), max_rays)
    foreground = sum(int((v.depth > 0).sum()) for v in views)
    stride = 1 if max_rays >= foreground else math.ceil(math.sqrt(foreground / max_rays))
    assert all(v.camera.width == round(64 / stride) for v in level)
    points = np.concatenate([depth_points(v)[0] for v in level])
    assert 0.8 * foreground / stride**2 < len(points) <= foreground / stride**2 * 1.2
    r = np.linalg.norm(points, axis=1)
    assert np.median(r) == pytest.approx(RADIUS + expected_offset(), abs=0.001)
    # The rendered depth is the discs' tangent planes: on the sheet, not on the level outside it.
    rendered = np.linalg.norm(np.concatenate([depth_points(v)[0] for v in views]), axis=1)
    assert np.median(rendered) < RADIUS + 0.5 * expected_offset() < np.median(r)


@pytest.fixture(scope="module")
def untrimmed(level_set):
    return poisson_surface(*level_set, SugarOptions(poisson_depth=6, trim_quantile=0.0))


def test_poisson_mesh_is_the_sphere(untrimmed):
    mesh = untrimmed
    gt = trimesh.creation.icosphere(subdivisions=5, radius=RADIUS + expected_offset())
    m = compare_meshes(mesh, gt, samples=30_000)
    # A depth-6 Poisson grid (cell ~0.017) smooths the ~0.001 ripple of the points: within
    # 0.1% of the diagonal (~0.0017) of the offset sphere.
    assert m.chamfer < 0.001
    assert m.normal_consistency > 0.99
    assert m.watertight  # nothing trimmed: Poisson's closed surface
    colors = np.asarray(mesh.visual.vertex_colors)[:, :3] / 255.0
    assert np.allclose(np.median(colors, 0), COLOR.numpy(), atol=0.01)


def test_trimming_and_decimation(level_set, untrimmed):
    full = untrimmed
    trimmed = poisson_surface(*level_set, SugarOptions(poisson_depth=6, trim_quantile=0.2))
    # The lowest-support 20% of the vertices go (and the faces that used them).
    assert len(trimmed.vertices) == pytest.approx(0.8 * len(full.vertices), rel=0.02)
    small = poisson_surface(*level_set, SugarOptions(poisson_depth=6, decimate=500))
    assert 400 <= len(small.faces) <= 500


def test_transparent_gaussians_give_a_clear_error(views):
    splats = sphere_splats()
    splats["opacities"][:] = -6.0  # opacity 0.0025: the density never reaches 0.3
    _, radius = surface_sphere(views)
    with pytest.raises(ReconError, match="--method tsdf"):
        level_set_points(density_of(splats), views, radius,
                         SugarOptions(rays=2_000))


def test_bad_options_are_user_errors(views):
    with pytest.raises(ReconError, match="sugar.level"):
        level_set_points(density_of(sphere_splats()), views, 1.0,
                         SugarOptions(level=1.5))
