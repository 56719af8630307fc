"""Closest points on a triangle mesh, differentiable in its vertices.

The search (which face, which barycentrics) runs without gradients: a k-d tree over the face
centroids proposes ``candidates`` faces per point, and the closest point on each is found by the
Voronoi regions of the triangle (its corners, edges and interior; Ericson, *Real-Time Collision
Detection* §5.1.5). The returned points are the barycentric combinations of the face corners
with those barycentrics held fixed, so gradients reach the vertices only. That is the exact
gradient of the distance: by the envelope theorem, moving the barycentrics of a minimiser does
not change the distance to first order.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def closest_points(points: Tensor, vertices: Tensor, faces: Tensor,
                   candidates: int = 8) -> Tensor:
    """[P, 3] the closest point on the mesh (``vertices`` [V, 3], ``faces`` [F, 3]) to each of
    ``points`` [P, 3], searched among the faces of the ``candidates`` nearest centroids."""
    from scipy.spatial import cKDTree

    corners = vertices[faces]                                                     # [F, 3, 3]
    with torch.no_grad():
        centroids = corners.mean(1).detach().cpu().double().numpy()
        k = min(candidates, len(faces))
        _, nearest = cKDTree(centroids).query(points.detach().cpu().double().numpy(), k=k)
        nearest = torch.as_tensor(np.asarray(nearest).reshape(len(points), k),
                                  device=points.device)                          # [P, k]
        tri = corners.detach()[nearest]                                           # [P, k, 3, 3]
        bary = triangle_barycentrics(points.detach()[:, None].expand(-1, k, -1), tri)
        on = (bary[..., None] * tri).sum(-2)                                      # [P, k, 3]
        best = (on - points.detach()[:, None]).square().sum(-1).argmin(-1)        # [P]
        rows = torch.arange(len(points), device=points.device)
        face, weights = nearest[rows, best], bary[rows, best]
    return (weights[..., None] * corners[face]).sum(-2)


def triangle_barycentrics(p: Tensor, tri: Tensor) -> Tensor:
    """[..., 3] barycentrics of the closest point to ``p`` [..., 3] on the triangles ``tri``
    [..., 3, 3] (Voronoi regions: a corner, an edge, else the interior)."""
    a, b, c = tri.unbind(-2)
    ab, ac = b - a, c - a

    def dot(x, y):
        return (x * y).sum(-1)

    ap, bp, cp = p - a, p - b, p - c
    d1, d2 = dot(ab, ap), dot(ac, ap)
    d3, d4 = dot(ab, bp), dot(ac, bp)
    d5, d6 = dot(ab, cp), dot(ac, cp)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2

    # The interior first; each region below overrides it where it holds (they are disjoint).
    denom = (va + vb + vc).clamp_min(torch.finfo(p.dtype).tiny)
    v, w = vb / denom, vc / denom
    t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6)).clamp_min(torch.finfo(p.dtype).tiny)
    t_ab = d1 / (d1 - d3).clamp_min(torch.finfo(p.dtype).tiny)
    t_ac = d2 / (d2 - d6).clamp_min(torch.finfo(p.dtype).tiny)
    zero, one = torch.zeros_like(v), torch.ones_like(v)
    regions = [  # (where, v, w): Ericson's order reversed, so later entries win
        ((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), 1 - t_bc, t_bc),  # edge bc
        ((vb <= 0) & (d2 >= 0) & (d6 <= 0), zero, t_ac),                 # edge ac
        ((d6 >= 0) & (d5 <= d6), zero, one),                             # corner c
        ((vc <= 0) & (d1 >= 0) & (d3 <= 0), t_ab, zero),                 # edge ab
        ((d3 >= 0) & (d4 <= d3), one, zero),                             # corner b
        ((d1 <= 0) & (d2 <= 0), zero, zero),                             # corner a
    ]
    for where, rv, rw in regions:
        v, w = torch.where(where, rv, v), torch.where(where, rw, w)
    return torch.stack([1 - v - w, v, w], -1)


__all__ = ["closest_points", "triangle_barycentrics"]
