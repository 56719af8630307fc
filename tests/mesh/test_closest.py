"""Closest points on triangles and meshes (recon.mesh.closest)."""

import numpy as np
import torch

from recon.mesh.closest import closest_points, triangle_barycentrics


def dense_distance(p, tri, n=200):
    """Brute force: the smallest distance from each point to a (n+1)(n+2)/2-point lattice on its
    triangle (the lattice spacing, 1/n of an edge, bounds its error)."""
    i, j = torch.meshgrid(torch.arange(n + 1), torch.arange(n + 1), indexing="ij")
    keep = (i + j) <= n
    uv = torch.stack([i[keep], j[keep]], -1).double() / n
    weights = torch.cat([1 - uv.sum(-1, keepdim=True), uv], -1)                 # [M, 3]
    samples = torch.einsum("mk,pkd->pmd", weights, tri)                          # [P, M, 3]
    return (samples - p[:, None]).norm(dim=-1).min(-1).values


def test_barycentrics_give_the_closest_point_of_every_region():
    # Points up to 2 units from unit-scale random triangles fall in all seven Voronoi regions;
    # the exact closest point is never farther than the lattice's best, and at most a lattice
    # spacing (about 0.01 × the edge lengths here) nearer.
    g = torch.Generator().manual_seed(0)
    tri = torch.randn(1000, 3, 3, generator=g, dtype=torch.float64)
    p = 2 * torch.randn(1000, 3, generator=g, dtype=torch.float64)
    bary = triangle_barycentrics(p, tri)
    assert (bary >= -1e-12).all() and torch.allclose(bary.sum(-1), torch.ones(1000).double())
    exact = ((bary[..., None] * tri).sum(-2) - p).norm(dim=-1)
    lattice = dense_distance(p, tri)
    assert (exact <= lattice + 1e-12).all()
    assert (lattice - exact).max() < 0.03
    # Every region is exercised: corners (one barycentric 1), edges (one 0), the interior.
    ones, zeros = (bary > 1 - 1e-12).sum(-1), (bary < 1e-12).sum(-1)
    assert (ones == 1).any() and ((zeros == 1) & (ones == 0)).any() and (zeros == 0).any()


def test_closest_points_on_a_mesh_match_distances_and_move_the_vertices():
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=3)
    vertices = torch.tensor(sphere.vertices, requires_grad=True)
    faces = torch.tensor(sphere.faces)
    # Points near the surface (where the loss uses them): the distance to the closest point is
    # the distance to the polyhedron, within the polyhedron's own sag from the unit sphere.
    g = torch.Generator().manual_seed(1)
    directions = torch.nn.functional.normalize(torch.randn(500, 3, generator=g).double(), dim=-1)
    radii = 1 + 0.1 * torch.randn(500, 1, generator=g).double()
    points = directions * radii
    on = closest_points(points, vertices, faces)
    distance = (on - points).norm(dim=-1)
    assert torch.allclose(on.detach().norm(dim=-1), torch.ones(500).double(), atol=0.02)
    assert (distance - (radii[:, 0] - 1).abs()).abs().max() < 0.02
    # Exact against every face: the candidate search missed nothing here.
    all_faces = sphere.vertices[sphere.faces]
    tri = torch.tensor(all_faces)[None].expand(500, -1, -1, -1)
    bary = triangle_barycentrics(points[:, None].expand(-1, len(all_faces), -1), tri)
    brute = ((bary[..., None] * tri).sum(-2) - points[:, None]).norm(dim=-1).min(-1).values
    assert torch.allclose(distance.detach(), brute, atol=1e-12)
    # Points at radius 1.1 pull the vertices outward: descending the distance grows the sphere
    # at every vertex the gradient reaches (and only the vertices get gradients).
    outer = directions * 1.1
    (closest_points(outer, vertices, faces) - outer).norm(dim=-1).sum().backward()
    reached = vertices.grad.norm(dim=-1) > 0
    assert reached.sum() > 100
    assert ((-vertices.grad * vertices.detach()).sum(-1)[reached] > 0).all()


def test_distance_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(2)
    vertices = torch.randn(4, 3, generator=g, dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    points = torch.randn(6, 3, generator=g, dtype=torch.float64)

    def total(v):
        return (closest_points(points, v, faces) - points).norm(dim=-1).sum()

    v = vertices.clone().requires_grad_(True)
    total(v).backward()
    eps = 1e-6
    numeric = np.zeros((4, 3))
    for i in range(4):
        for a in range(3):
            plus, minus = vertices.clone(), vertices.clone()
            plus[i, a] += eps
            minus[i, a] -= eps
            numeric[i, a] = (total(plus) - total(minus)).item() / (2 * eps)
    # Central differences in float64: truncation O(eps²) and rounding ~1e-10 / eps.
    assert np.abs(v.grad.numpy() - numeric).max() < 1e-6
