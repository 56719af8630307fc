"""Soft connectivity forces (--reg connectivity): which edges pair, what the term does to a pair
under it alone, and its gradient against finite differences."""

from __future__ import annotations

import pytest
import torch

from recon.models.triangles import face_normals
from recon.regularizers.connectivity import connectivity_loss, pair_edges, pair_lengths


def two_triangles(gap: float = 0.05, tilt: float = 0.4) -> torch.Tensor:
    """A right triangle in z = 0 and a second one across its hypotenuse, its shared corners off
    by about ``gap`` and its far corner lifted by ``tilt`` (a crack and a crease)."""
    return torch.tensor([
        [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
        [[1.0 + gap, 0.5 * gap, 0.3 * gap], [0.4 * gap, 1.0 + gap, -0.2 * gap], [1.0, 1.0, tilt]],
    ], dtype=torch.float64)


def test_the_nearly_shared_edge_pairs_corner_to_corner():
    pairs = pair_edges(two_triangles(), neighbors=8, tolerance=0.3)
    # Triangle 0's edge 1 (corners 1 -> 2) meets triangle 1's edge 0 (corners 0 -> 1).
    assert pairs.tolist() == [[0, 1, 2, 1, 0, 1]]
    # With corners 0 and 1 swapped in both, the hypotenuse is triangle 0's edge 2 (corner 2 ->
    # 0), running the other way: the match still pairs the corners that touch.
    swapped = two_triangles()[:, [1, 0, 2]]
    assert pair_edges(swapped, 8, 0.3).tolist() == [[0, 2, 0, 1, 0, 1]]


def test_unrelated_triangles_are_not_paired():
    v = two_triangles()
    far = v.clone()
    far[1] += torch.tensor([5.0, 0.0, 0.0])
    assert len(pair_edges(far, 8, 0.3)) == 0
    # Close, but the second triangle's edges cross the first's hypotenuse instead of running
    # along it: each endpoint gap is about an edge length.
    crossing = v.clone()
    crossing[1] = torch.tensor([[0.5, 0.5, -0.5], [0.5, 0.5, 0.5], [1.2, 1.2, 0.0]],
                               dtype=torch.float64)
    assert len(pair_edges(crossing, 8, 0.3)) == 0
    # A crack of 0.42 of the edges' mean length is beyond the tolerance 0.3 (0.05 above: 0.04).
    assert len(pair_edges(two_triangles(gap=0.6), 8, 0.3)) == 0
    assert len(pair_edges(two_triangles(gap=0.6), 8, 0.5)) == 1


def test_the_term_alone_closes_the_gap_and_flattens_the_crease():
    v = two_triangles().clone().requires_grad_()
    pairs = pair_edges(v, 8, 0.3)
    optimizer = torch.optim.Adam([v], lr=0.01)
    for _ in range(300):
        optimizer.zero_grad()
        connectivity_loss(v, pairs, pull_weight=1.0, normal_weight=1.0).backward()
        optimizer.step()
    v = v.detach()
    gap = max(float((v[0, 1] - v[1, 0]).norm()), float((v[0, 2] - v[1, 1]).norm()))
    start_gap = float((two_triangles()[0, 1] - two_triangles()[1, 0]).norm())
    cos = float((face_normals(v)[0] * face_normals(v)[1]).sum().abs())
    start_cos = float((face_normals(two_triangles())[0] * face_normals(two_triangles())[1]).sum())
    assert start_gap > 0.05 and gap < 1e-3
    assert start_cos < 0.93 and cos > 0.999


def test_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(0)
    v = (two_triangles() + 0.02 * torch.randn(2, 3, 3, generator=g, dtype=torch.float64))
    pairs = pair_edges(v, 8, 0.3)
    assert len(pairs) == 1
    # Training holds each pair's length scale fixed (detached); so does the check.
    lengths = pair_lengths(v, pairs)
    v.requires_grad_()
    assert torch.autograd.gradcheck(lambda x: connectivity_loss(x, pairs, 0.7, 0.3, lengths),
                                    (v,), eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("n", [1, 0])
def test_too_few_triangles_give_no_pairs_and_a_zero_term(n):
    v = two_triangles()[:n].clone().requires_grad_()
    pairs = pair_edges(v, 8, 0.3)
    assert len(pairs) == 0
    loss = connectivity_loss(v, pairs, 1.0, 1.0)
    assert float(loss.detach()) == 0.0 and loss.requires_grad
