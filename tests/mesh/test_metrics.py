"""Geometry metrics on analytic shapes whose answers are known in closed form."""

import numpy as np
import pytest
import trimesh

from recon.errors import ReconError
from recon.mesh.metrics import compare_meshes

R, D = 1.0, 0.05
GT_DIAGONAL = 2 * R * np.sqrt(3)  # bounding box of the radius-R sphere


@pytest.fixture(scope="module")
def spheres():
    # Subdivision 5: the flat facets lie within ~2e-4 of the true sphere, far below D.
    inner = trimesh.creation.icosphere(subdivisions=5, radius=R)
    outer = trimesh.creation.icosphere(subdivisions=5, radius=R + D)
    return inner, outer


def test_concentric_spheres_chamfer_is_their_gap(spheres):
    inner, outer = spheres
    m = compare_meshes(outer, inner, samples=50_000)
    # The closest surface point is straight along the radius, D away; the facets of the
    # icospheres (sagitta ~2e-4) change that by under 1%.
    assert m.chamfer == pytest.approx(D / GT_DIAGONAL, rel=0.01)
    assert m.accuracy == pytest.approx(D / GT_DIAGONAL, rel=0.01)
    assert m.completeness == pytest.approx(D / GT_DIAGONAL, rel=0.01)
    assert m.diagonal == pytest.approx(GT_DIAGONAL, rel=1e-3)
    # Radial normals of both spheres agree up to the facet tilt.
    assert m.normal_consistency > 0.995


def test_fscore_switches_at_the_gap(spheres):
    inner, outer = spheres
    above = compare_meshes(outer, inner, samples=50_000, threshold=1.4 * D / GT_DIAGONAL)
    below = compare_meshes(outer, inner, samples=50_000, threshold=0.7 * D / GT_DIAGONAL)
    assert above.fscore == 1.0
    assert below.fscore == 0.0


def test_identical_meshes_score_perfectly(spheres):
    inner, _ = spheres
    m = compare_meshes(inner, inner, samples=50_000)
    # Exact point-to-surface distances: only float32 rounding in the BVH is left.
    assert m.chamfer < 1e-6
    assert m.normal_consistency > 0.9999
    assert m.fscore == 1.0
    assert m.watertight and m.gt_watertight


def test_cube_with_a_missing_face_is_not_watertight():
    cube = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    top = cube.face_normals[:, 2] > 0.5
    open_box = trimesh.Trimesh(cube.vertices, cube.faces[~top], process=False)
    m = compare_meshes(open_box, cube, samples=100_000)
    assert not m.watertight and m.gt_watertight
    # The missing face is 1/6 of the area; of it only the band within tau of its edges (area
    # 1 - (1 - 2 tau)^2) is still near the open box, so recall = (5 + band) / 6. Sampling
    # noise (100k samples) is ~0.002.
    tau = 0.01 * np.sqrt(3)
    assert m.recall == pytest.approx((5 + 1 - (1 - 2 * tau) ** 2) / 6, abs=0.006)
    assert m.precision == 1.0  # every open-box point lies on the cube


def test_bad_threshold_is_a_user_error(spheres):
    inner, outer = spheres
    with pytest.raises(ReconError, match="threshold"):
        compare_meshes(outer, inner, threshold=0.0)
