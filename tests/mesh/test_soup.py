"""Welding a triangle soup into a mesh, and the topology report (components, open edges)."""

from __future__ import annotations

import numpy as np

from recon.mesh.soup import topology, weld

RED, BLUE = (255, 0, 0), (0, 0, 255)


def two_triangles(gap: float) -> np.ndarray:
    """Two triangles across the diagonal of the unit square, the second's shared corners off by
    ``gap``."""
    return np.array([[[0, 0, 0], [1, 0, 0], [0, 1, 0]],
                     [[1 + gap, 0, 0], [1, 1, 0], [0, 1 + gap, 0]]], dtype=np.float64)


def colours(*rgb) -> np.ndarray:
    return np.array([[c] * 3 for c in rgb], dtype=np.uint8)


def test_welding_joins_the_cracked_edge_and_averages_colours():
    mesh = weld(two_triangles(1e-4), colours(RED, BLUE), tolerance=1e-3)
    assert topology(mesh) == {"faces": 2, "vertices": 4, "components": 1, "boundary_edges": 4}
    shared = np.isclose(mesh.vertices, [1 + 5e-5, 0, 0]).all(1)
    assert shared.sum() == 1                                # merged at the mean of the two
    assert tuple(mesh.visual.vertex_colors[shared][0][:3]) == (128, 0, 128)


def test_without_welding_a_soup_is_all_boundary():
    mesh = weld(two_triangles(1e-4), colours(RED, BLUE), tolerance=0.0)
    assert topology(mesh) == {"faces": 2, "vertices": 6, "components": 2, "boundary_edges": 6}


def test_a_closed_soup_welds_watertight_and_slivers_drop():
    g = np.random.default_rng(0)
    tip = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
    faces = [(0, 2, 1), (0, 1, 3), (1, 2, 3), (0, 3, 2)]
    soup = tip[np.array(faces)] + g.normal(scale=1e-5, size=(4, 3, 3))
    sliver = np.array([[[2, 0, 0], [2, 1e-5, 0], [3, 1, 0]]])   # two corners within tolerance
    mesh = weld(np.concatenate([soup, sliver]), colours(RED, RED, RED, RED, BLUE), 1e-3)
    assert topology(mesh) == {"faces": 4, "vertices": 4, "components": 1, "boundary_edges": 0}
    assert mesh.is_watertight
