"""Soft connectivity forces of a triangle soup (Radiant Triangle Soup, Burgdorfer & Mordohai).

A soup has no shared vertices, so neighbouring triangles leave cracks and overlaps that a mesh
export shows as open boundaries. This term finds edges of *different* triangles that nearly
coincide and draws them together without imposing a topology:

* **pairing** (every ``every`` steps, and after every edit of the rows by the strategy): each edge
  looks at the ``neighbors`` nearest edge midpoints; a candidate edge of another triangle is
  matched endpoint to endpoint in the orientation with the smaller largest gap, and accepted when
  both gaps are below ``tolerance`` × the two edges' mean length. Each edge keeps its closest
  accepted partner; a pair is kept once however many of its edges chose it.
* **loss** = ``pull_weight`` · mean over pairs of (|a₀ − b₀|² + |a₁ − b₁|²) / ℓ², with ℓ the
  pair's mean edge length (held fixed: the pull is scale-free and cannot be lowered by
  growing the triangles), + ``normal_weight`` · mean (1 − |n_a · n_b|) of the paired faces'
  unit normals (unsigned: a soup's winding means nothing).

The paper publishes no code, weights or radius; the rules above are recon's reading of its
description (k-NN over edge midpoints, matched-vertex L2 pull, normal alignment).
"""

from __future__ import annotations

import weakref

import numpy as np
import torch
from torch import Tensor

from recon.models.triangles import corners, face_normals
from recon.regularizers.base import Regularizer, RunContext, StepContext
from recon.regularizers.options import ConnectivityOptions

EDGE_START = (0, 1, 2)
EDGE_END = (1, 2, 0)  # edge i runs from corner i to corner i + 1


def pair_edges(vertices: Tensor, neighbors: int, tolerance: float) -> Tensor:
    """[P, 6] long rows (triangle a, corner a₀, corner a₁, triangle b, corner b₀, corner b₁):
    edges a₀a₁ and b₀b₁ of different triangles whose matched endpoints (a₀↔b₀, a₁↔b₁) are each
    within ``tolerance`` × the edges' mean length; each unordered pair once."""
    from scipy.spatial import cKDTree

    v = vertices.detach().to("cpu", torch.float64).numpy()                  # [N, 3, 3]
    n = len(v)
    start, end = v[:, EDGE_START].reshape(-1, 3), v[:, EDGE_END].reshape(-1, 3)   # [3N, 3]
    if n < 2:
        return torch.zeros(0, 6, dtype=torch.long, device=vertices.device)
    length = np.linalg.norm(end - start, axis=-1)
    k = min(neighbors + 1, 3 * n)
    _, cand = cKDTree((start + end) / 2).query((start + end) / 2, k=k)      # [3N, k]
    edge = np.repeat(np.arange(3 * n), k)
    other = np.asarray(cand).reshape(-1)
    valid = (other // 3) != (edge // 3)                       # another triangle (not itself)
    edge, other = edge[valid], other[valid]
    straight = np.maximum(np.linalg.norm(start[edge] - start[other], axis=-1),
                          np.linalg.norm(end[edge] - end[other], axis=-1))
    crossed = np.maximum(np.linalg.norm(start[edge] - end[other], axis=-1),
                         np.linalg.norm(end[edge] - start[other], axis=-1))
    flip = crossed < straight
    gap = np.where(flip, crossed, straight)
    accept = gap < tolerance * 0.5 * (length[edge] + length[other])
    edge, other, flip, gap = edge[accept], other[accept], flip[accept], gap[accept]
    # The closest accepted partner of each edge, then each unordered pair once.
    order = np.lexsort((gap, edge))
    first = np.unique(edge[order], return_index=True)[1]
    edge, other, flip = edge[order][first], other[order][first], flip[order][first]
    lo, hi = np.minimum(edge, other), np.maximum(edge, other)
    _, unique = np.unique(lo * (3 * n) + hi, return_index=True)
    edge, other, flip = edge[unique], other[unique], flip[unique]
    ends = np.array(EDGE_END)
    starts = np.array(EDGE_START)
    a_tri, a_edge, b_tri, b_edge = edge // 3, edge % 3, other // 3, other % 3
    b0 = np.where(flip, ends[b_edge], starts[b_edge])
    b1 = np.where(flip, starts[b_edge], ends[b_edge])
    rows = np.stack([a_tri, starts[a_edge], ends[a_edge], b_tri, b0, b1], axis=1)
    return torch.from_numpy(rows.astype(np.int64)).to(vertices.device)


def pair_lengths(vertices: Tensor, pairs: Tensor) -> Tensor:
    """[P] the mean length of each pair's two edges (no gradient: the pull's fixed scale)."""
    v = vertices.detach()
    a = (v[pairs[:, 0], pairs[:, 2]] - v[pairs[:, 0], pairs[:, 1]]).norm(dim=-1)
    b = (v[pairs[:, 3], pairs[:, 5]] - v[pairs[:, 3], pairs[:, 4]]).norm(dim=-1)
    return (0.5 * (a + b)).clamp_min(1e-12)


def connectivity_loss(vertices: Tensor, pairs: Tensor, pull_weight: float,
                      normal_weight: float, lengths: Tensor | None = None) -> Tensor:
    """The term of the module docstring for ``pairs`` (:func:`pair_edges`) on ``vertices``;
    ``lengths`` [P] are the pull's scales (default: :func:`pair_lengths` of ``vertices``)."""
    if len(pairs) == 0:
        return vertices.sum() * 0.0
    a0, a1 = vertices[pairs[:, 0], pairs[:, 1]], vertices[pairs[:, 0], pairs[:, 2]]
    b0, b1 = vertices[pairs[:, 3], pairs[:, 4]], vertices[pairs[:, 3], pairs[:, 5]]
    scale = pair_lengths(vertices, pairs) if lengths is None else lengths
    gaps = ((a0 - b0).square().sum(-1) + (a1 - b1).square().sum(-1)) / scale.square()
    normals = face_normals(vertices)
    cos = (normals[pairs[:, 0]] * normals[pairs[:, 3]]).sum(-1)
    return pull_weight * gaps.mean() + normal_weight * (1.0 - cos.abs()).mean()


class ConnectivityRegularizer(Regularizer):
    """``--reg connectivity`` for triangle soups."""

    def __init__(self, options: ConnectivityOptions, run: RunContext) -> None:
        super().__init__(run)
        self.options = options
        self.pairs: Tensor | None = None
        # The vertices parameter the pairs index: strategies replace it when they edit rows.
        self._indexed: weakref.ref | None = None

    def loss(self, ctx: StepContext) -> Tensor:
        o = self.options
        vertices = corners(ctx.splats)
        edited = self._indexed is not None and self._indexed() is not vertices
        if self.pairs is None or edited or ctx.step % o.every == 0:
            self.pairs = pair_edges(vertices, o.neighbors, o.tolerance)
        self._indexed = weakref.ref(vertices)
        return connectivity_loss(vertices, self.pairs, o.pull_weight, o.normal_weight)

    def state_dict(self) -> dict:
        return {"pairs": self.pairs}

    def load_state_dict(self, state: dict) -> None:
        """The saved pairs index the saved rows: the resumed run uses them until the next
        re-pairing, as the uninterrupted run would."""
        self.pairs = state.get("pairs")
        self._indexed = None


__all__ = ["ConnectivityRegularizer", "connectivity_loss", "pair_edges", "pair_lengths"]
