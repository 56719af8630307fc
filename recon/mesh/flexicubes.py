"""FlexiCubes isosurface extraction (Shen et al., SIGGRAPH 2023) in pure, device-agnostic PyTorch.

The surface is the zero level of a signed distance field sampled on a regular grid of
``(res + 1)^3`` vertices over a box; **negative values are inside**. It is a Dual Marching Cubes
mesh whose vertex positions are differentiable in the SDF, in a per-vertex deformation and in three
sets of per-cube weights:

1. **Grid.** Vertex ``(i, j, k)`` has flat index ``(i * (res + 1) + j) * (res + 1) + k`` (x slowest,
   z fastest, as ``torch.meshgrid(..., indexing="ij")``); cube ``(i, j, k)`` has flat index
   ``(i * res + j) * res + k``. A deformation ``d`` moves vertex ``x`` to
   ``x + cell / 2 * tanh(d)``, so a vertex never leaves the half cell around its rest position.
2. **Cases.** A cube's case id has bit ``c`` set when its corner ``c`` is inside (corner and edge
   numbering in :mod:`recon.mesh.flexicubes_tables`). Only cubes with mixed signs are processed,
   so memory follows the surface, not the volume (besides a few dense ``res^3`` integer volumes).
3. **Ambiguity fix.** A cube whose case merges its one ambiguous face into a single dual vertex
   (C16/C19 types) and whose neighbour across that face does the same is switched to
   ``255 - case`` (both cubes are), so four quads never meet at one mesh edge.
4. **Crossings.** Each surface cube places its own crossing on each of its sign-change edges,
   ``u = (s_a a_a x_b - s_b a_b x_a) / (s_a a_a - s_b a_b)``, marching-cubes interpolation with
   the corner values reweighted by the cube's ``alpha`` (8 per cube).
5. **Dual vertices.** Each patch of the case (see the tables) gives one vertex, the mean of its
   crossings weighted by the cube's ``beta`` (12 per cube, one per edge). Alpha and beta are
   activated as ``1 + 0.99 tanh(raw)`` in (0.01, 1.99), so every vertex is a convex combination
   of points of its cube; raw zeros give plain Dual Marching Cubes.
6. **Quads.** Every sign-change grid edge shared by four cubes gives the quad of the four dual
   vertices gathering it, in cyclic order around the edge. **Orientation convention: faces wind
   counter-clockwise seen from outside, so normals point from negative SDF (inside) to positive
   (outside)** and a closed mesh has positive signed volume. Sign-change edges on the grid boundary
   have fewer than four cubes and give no quad: keep the SDF positive on the boundary for a closed
   surface.
7. **Triangles.** ``gamma`` (1 per cube, activated as ``0.99 sigmoid(raw) + 0.005``) is carried
   by each dual vertex. While training each quad ``(v0, v1, v2, v3)`` gets a centre vertex
   ``(g02 (v0 + v2) / 2 + g13 (v1 + v3) / 2) / (g02 + g13)`` with ``gij = g_i g_j`` and four
   triangles around it, which makes gamma differentiable; at inference it is split along the
   diagonal with the larger product (``v0 v2`` on a strict win, else ``v1 v3``).

Regularisers: the extraction returns ``l_dev`` (paper Eq. 8), per dual vertex the mean absolute
deviation of its distances to the *unweighted* crossings of its edges; :func:`sign_change_loss`
is L_sign, a BCE pushing both ends of every sign-changing grid edge toward the other end's sign.

Output layout (tests and callers may rely on it): vertices ``[0, num_dual)`` are the dual vertices
(each surface cube's patches in table order, cubes ascending; a patch whose edges all lie on the
grid boundary stays unreferenced), then, when training, one centre per quad. Training faces
``4q .. 4q + 3`` are ``(v_i, v_{i+1}, centre_q)`` of quad ``q``; inference faces ``2q, 2q + 1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from recon.mesh.flexicubes_tables import (CORNER_OFFSETS, NUM_CASES, NUM_EDGES, DeviceTables,
                                         device_tables)

WEIGHT_SPREAD = 0.99  # alpha, beta in 1 +- 0.99 and gamma in (0.005, 0.995): never 0, never 1
GAMMA_FLOOR = 0.005

# The four cubes around a grid edge sit in slots m = 0..3 (the edge's index within its axis in
# each cube), a 2 x 2 raster; this order walks them around the edge.
CYCLIC_SLOTS = (0, 1, 3, 2)
# Walking CYCLIC_SLOTS winds counter-clockwise about +x and +z but about -y, because the slot bits
# are the other two axes in increasing order: (y, z) for x, (x, z) for y, (x, y) for z.
SLOT_WINDING_SIGN = (1, -1, 1)

Bounds = tuple[float | Sequence[float], float | Sequence[float]]


class FlexiCubesMesh(NamedTuple):
    """A triangle mesh extracted by :meth:`FlexiCubesGrid.extract`, unpackable as a 3-tuple."""

    vertices: torch.Tensor  # [V, 3], dtype of the SDF
    faces: torch.Tensor     # [F, 3] int64, counter-clockwise seen from outside
    l_dev: torch.Tensor     # [num_dual] deviation regulariser of each dual vertex

    def deviation_loss(self) -> torch.Tensor:
        """Mean of ``l_dev`` (the paper adds it with weight 0.5); zero for an empty mesh."""
        if self.l_dev.numel() == 0:
            return self.l_dev.sum()
        return self.l_dev.mean()


def activate_alpha_beta(raw: torch.Tensor) -> torch.Tensor:
    """Raw alpha or beta to a weight in (0.01, 1.99); raw 0 gives 1 (plain DMC)."""
    return 1.0 + WEIGHT_SPREAD * torch.tanh(raw)


def activate_gamma(raw: torch.Tensor) -> torch.Tensor:
    """Raw gamma to a weight in (0.005, 0.995); raw 0 gives 0.5."""
    return WEIGHT_SPREAD * torch.sigmoid(raw) + GAMMA_FLOOR


def sign_change_loss(sdf: torch.Tensor, res: int) -> torch.Tensor:
    """L_sign: mean over grid edges whose ends differ in sign of ``BCE(s_a, [s_b >= 0]) +
    BCE(s_b, [s_a >= 0])``, with the SDF values as logits.

    It removes floaters and inner sheets where the images say nothing. ``sdf`` holds the
    ``(res + 1)^3`` grid values (flat or as a cube); zero when no edge changes sign.
    """
    values = _as_grid_field(sdf, res + 1, 1, "sdf").reshape(res + 1, res + 1, res + 1)
    first, second = [], []
    for axis in range(3):
        low, high = values.narrow(axis, 0, res), values.narrow(axis, 1, res)
        changes = (low < 0) != (high < 0)
        first.append(low[changes])
        second.append(high[changes])
    first, second = torch.cat(first), torch.cat(second)
    if first.numel() == 0:
        return values.sum() * 0.0
    return (F.binary_cross_entropy_with_logits(first, (second >= 0).to(first.dtype))
            + F.binary_cross_entropy_with_logits(second, (first >= 0).to(second.dtype)))


def _as_grid_field(field: torch.Tensor, side: int, channels: int, name: str) -> torch.Tensor:
    """``field`` as ``[side^3, channels]``, from flat rows or a ``[side, side, side(, c)]`` cube."""
    count = side ** 3
    if field.numel() != count * channels:
        raise ValueError(f"{name} must hold {side}^3 x {channels} values (flat or as a "
                         f"{side}^3 volume); got shape {tuple(field.shape)}.")
    return field.reshape(count, channels)


class FlexiCubesGrid:
    """A regular grid of ``res^3`` cubes over an axis-aligned box, and FlexiCubes extraction on it.

    ``bounds = (lower, upper)``, each a number or three numbers; the default is ``[-1, 1]^3``.
    The grid holds no tensors: vertex positions and cube corners are computed on demand, so one
    grid serves any device and dtype.
    """

    def __init__(self, res: int, bounds: Bounds = (-1.0, 1.0)):
        if res < 1:
            raise ValueError(f"FlexiCubes needs at least one cube per axis; got res={res}.")
        lower, upper = (_three_floats(b) for b in bounds)
        if any(hi <= lo for lo, hi in zip(lower, upper)):
            raise ValueError(f"bounds must have lower < upper on every axis; got {bounds}.")
        self.res = int(res)
        self.lower = lower
        self.upper = upper
        self.cell = tuple((hi - lo) / res for lo, hi in zip(lower, upper))

    @property
    def num_vertices(self) -> int:
        return (self.res + 1) ** 3

    @property
    def num_cubes(self) -> int:
        return self.res ** 3

    # ---------------------------------------------------------------- grid topology and fields

    def vertices(self, device=None, dtype=torch.float32) -> torch.Tensor:
        """``[(res + 1)^3, 3]`` rest positions of the grid vertices."""
        ids = torch.arange(self.num_vertices, device=device)
        return self._rest_positions(ids, dtype)

    def deformed_vertices(self, deform: torch.Tensor) -> torch.Tensor:
        """``[(res + 1)^3, 3]`` grid vertices moved by the raw deformation (half a cell at most)."""
        deform = _as_grid_field(deform, self.res + 1, 3, "deform")
        ids = torch.arange(self.num_vertices, device=deform.device)
        return self._positions(ids, deform, deform.dtype)

    def cube_corners(self, device=None) -> torch.Tensor:
        """``[res^3, 8]`` vertex indices of every cube's corners (corner ``c = x + 2y + 4z``)."""
        return self._corner_ids(torch.arange(self.num_cubes, device=device))

    def grid_edges(self, device=None) -> torch.Tensor:
        """``[3 res (res + 1)^2, 2]`` vertex index pairs of all grid edges, x, then y, then z."""
        side = self.res + 1
        ids = torch.arange(self.num_vertices, device=device).reshape(side, side, side)
        steps = (side * side, side, 1)
        lows = [ids.narrow(axis, 0, self.res).reshape(-1) for axis in range(3)]
        return torch.cat([torch.stack([low, low + step], 1) for low, step in zip(lows, steps)])

    def sphere_sdf(self, radius: float | None = None, center: Sequence[float] | None = None,
                   device=None, dtype=torch.float32) -> torch.Tensor:
        """``[(res + 1)^3]`` signed distance to a sphere, a fracture-free initial field.

        Defaults: the box centre, and half the box's smallest half-extent as radius.
        """
        if center is None:
            center = [(lo + hi) / 2 for lo, hi in zip(self.lower, self.upper)]
        if radius is None:
            radius = min(hi - lo for lo, hi in zip(self.lower, self.upper)) / 4
        offset = self.vertices(device, dtype) - torch.tensor(center, device=device, dtype=dtype)
        return offset.norm(dim=1) - radius

    def sign_loss(self, sdf: torch.Tensor) -> torch.Tensor:
        """:func:`sign_change_loss` on this grid."""
        return sign_change_loss(sdf, self.res)

    # ---------------------------------------------------------------- extraction

    def extract(self, sdf: torch.Tensor, deform: torch.Tensor | None = None,
                alpha: torch.Tensor | None = None, beta: torch.Tensor | None = None,
                gamma: torch.Tensor | None = None, training: bool = True) -> FlexiCubesMesh:
        """The FlexiCubes mesh of the zero level of ``sdf``.

        Shapes (flat rows or the matching volume): ``sdf`` ``[(res + 1)^3]``, ``deform``
        ``[(res + 1)^3, 3]``, ``alpha`` ``[res^3, 8]``, ``beta`` ``[res^3, 12]``, ``gamma``
        ``[res^3]``; the last four are raw parameters (``None`` means zeros: no deformation,
        neutral weights). Alpha columns follow the corner numbering ``c = x + 2y + 4z``, beta
        columns the edge numbering of :mod:`recon.mesh.flexicubes_tables`. ``training`` inserts
        quad centres (4 triangles per quad) so gamma gets gradients; use ``training=False`` for
        the final mesh and for metrics.
        """
        sdf = _as_grid_field(sdf, self.res + 1, 1, "sdf")[:, 0]
        deform = None if deform is None else _as_grid_field(deform, self.res + 1, 3, "deform")
        tables = device_tables(sdf.device)
        cubes, cases = self._surface_cubes(sdf, tables)
        if cubes.numel() == 0:
            return _empty_mesh(sdf)
        alpha = self._cube_weights(alpha, cubes, 8, "alpha", sdf, activate_alpha_beta)
        beta = self._cube_weights(beta, cubes, NUM_EDGES, "beta", sdf, activate_alpha_beta)
        gamma = self._cube_weights(gamma, cubes, 1, "gamma", sdf, activate_gamma)[:, 0]

        # One row per (surface cube, sign-change edge) pair: the patch gathering it.
        patch_of_edge = tables.patch_of_edge[cases]
        pair_cube, pair_edge = torch.nonzero(patch_of_edge >= 0, as_tuple=True)
        patches_per_cube = tables.num_patches[cases]
        first_vertex = torch.cumsum(patches_per_cube, 0) - patches_per_cube
        pair_vertex = first_vertex[pair_cube] + patch_of_edge[pair_cube, pair_edge]
        num_dual = int(patches_per_cube.sum())

        corner_ids = self._corner_ids(cubes)
        ends = tables.edge_corners[pair_edge]                     # [M, 2] corner numbers
        end_ids = corner_ids[pair_cube.unsqueeze(1), ends]        # [M, 2] grid vertex ids
        end_positions = self._positions(end_ids.reshape(-1), deform, sdf.dtype).reshape(-1, 2, 3)
        end_sdf = sdf[end_ids]
        end_alpha = alpha[pair_cube.unsqueeze(1), ends]

        crossings = _edge_crossings(end_sdf * end_alpha, end_positions)
        weights = beta[pair_cube, pair_edge]
        dual = _scatter_weighted_mean(crossings, weights, pair_vertex, num_dual)
        l_dev = _deviation_loss(dual, _edge_crossings(end_sdf, end_positions), pair_vertex,
                                num_dual)

        quads = self._quads(sdf, pair_cube, pair_edge, pair_vertex, corner_ids, tables)
        vertex_gamma = torch.repeat_interleave(gamma, patches_per_cube)
        if training:
            vertices, faces = _fan_triangulation(dual, quads, vertex_gamma)
        else:
            vertices, faces = dual, _diagonal_triangulation(quads, vertex_gamma)
        return FlexiCubesMesh(vertices, faces, l_dev)

    # ---------------------------------------------------------------- extraction steps

    def _surface_cubes(self, sdf: torch.Tensor, tables: DeviceTables
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat ids and (ambiguity-fixed) case ids of the cubes with mixed corner signs."""
        res, side = self.res, self.res + 1
        inside = (sdf < 0).reshape(side, side, side)
        case_volume = torch.zeros((res, res, res), dtype=torch.long, device=sdf.device)
        for corner, (dx, dy, dz) in enumerate(CORNER_OFFSETS):
            case_volume |= inside[dx:dx + res, dy:dy + res, dz:dz + res].long() << corner
        case_volume = case_volume.reshape(-1)
        cubes = torch.nonzero((case_volume != 0) & (case_volume != NUM_CASES - 1))[:, 0]
        cases = case_volume[cubes]
        return cubes, self._resolve_ambiguity(cubes, cases, case_volume, tables)

    def _resolve_ambiguity(self, cubes: torch.Tensor, cases: torch.Tensor,
                           case_volume: torch.Tensor, tables: DeviceTables) -> torch.Tensor:
        """``cases`` with every flagged cube whose neighbour across its ambiguous face is also
        flagged switched to ``255 - case``; neighbours are looked up in the original cases."""
        flagged = torch.nonzero(tables.flagged[cases])[:, 0]
        if flagged.numel() == 0:
            return cases
        res = self.res
        neighbour = self._unravel(cubes[flagged], res) + tables.ambiguous_neighbour[cases[flagged]]
        in_grid = ((neighbour >= 0) & (neighbour < res)).all(dim=1)
        neighbour = neighbour.clamp(0, res - 1)
        neighbour_case = case_volume[(neighbour[:, 0] * res + neighbour[:, 1]) * res
                                     + neighbour[:, 2]]
        switch = flagged[in_grid & tables.flagged[neighbour_case]]
        cases = cases.clone()
        cases[switch] = NUM_CASES - 1 - cases[switch]
        return cases

    def _quads(self, sdf, pair_cube, pair_edge, pair_vertex, corner_ids,
               tables: DeviceTables) -> torch.Tensor:
        """``[Q, 4]`` dual vertex ids of the quads, counter-clockwise seen from outside."""
        side = self.res + 1
        axis = pair_edge // 4
        slot = pair_edge % 4
        low_corner = tables.edge_corners[pair_edge, 0]
        low_vertex = corner_ids[pair_cube, low_corner]
        edge_key = axis * side ** 3 + low_vertex   # unique id of the grid edge
        keys, which_edge = torch.unique(edge_key, return_inverse=True)
        around = torch.full((keys.numel(), 4), -1, dtype=torch.long, device=sdf.device)
        around[which_edge, slot] = pair_vertex
        complete = (around >= 0).all(dim=1)        # boundary edges have fewer than 4 cubes
        quads = around[complete][:, list(CYCLIC_SLOTS)]
        keys = keys[complete]
        edge_axis, edge_low = keys // side ** 3, keys % side ** 3
        winding = torch.tensor(SLOT_WINDING_SIGN, device=sdf.device)[edge_axis]
        # Outward means toward the outside end: +axis when the low end is inside.
        wanted = torch.where(sdf[edge_low] < 0, 1, -1)
        return torch.where((winding == wanted).unsqueeze(1), quads, quads[:, [0, 3, 2, 1]])

    def _cube_weights(self, raw, cubes, width, name, like, activate) -> torch.Tensor:
        """Activated per-cube weights of the surface cubes, ``[S, width]``, in ``like``'s dtype;
        ``raw=None`` stands for raw zeros, which activate to the neutral (plain DMC) weights."""
        if raw is None:
            raw_rows = torch.zeros((cubes.numel(), width), dtype=like.dtype, device=like.device)
        else:
            raw_rows = _as_grid_field(raw, self.res, width, name)[cubes].to(like.dtype)
        return activate(raw_rows)

    def _corner_ids(self, cubes: torch.Tensor) -> torch.Tensor:
        """``[N, 8]`` grid vertex ids of the corners of the cubes with flat ids ``cubes``."""
        side = self.res + 1
        base = self._unravel(cubes, self.res)
        lowest = (base[:, 0] * side + base[:, 1]) * side + base[:, 2]
        offsets = device_tables(cubes.device).corner_offsets
        corner_step = (offsets[:, 0] * side + offsets[:, 1]) * side + offsets[:, 2]
        return lowest.unsqueeze(1) + corner_step

    def _rest_positions(self, vertex_ids: torch.Tensor, dtype) -> torch.Tensor:
        ijk = self._unravel(vertex_ids, self.res + 1).to(dtype)
        lower = torch.tensor(self.lower, dtype=dtype, device=vertex_ids.device)
        cell = torch.tensor(self.cell, dtype=dtype, device=vertex_ids.device)
        return lower + ijk * cell

    def _positions(self, vertex_ids: torch.Tensor, deform: torch.Tensor | None,
                   dtype) -> torch.Tensor:
        """Deformed positions of the grid vertices ``vertex_ids``."""
        positions = self._rest_positions(vertex_ids, dtype)
        if deform is None:
            return positions
        half_cell = torch.tensor(self.cell, dtype=dtype, device=vertex_ids.device) / 2
        return positions + half_cell * torch.tanh(deform[vertex_ids])

    @staticmethod
    def _unravel(flat: torch.Tensor, side: int) -> torch.Tensor:
        """``[N, 3]`` (i, j, k) of flat ids in a ``side^3`` block, x slowest."""
        return torch.stack([flat // (side * side), flat // side % side, flat % side], dim=1)


def _three_floats(value) -> tuple[float, float, float]:
    if isinstance(value, (int, float)):
        return (float(value),) * 3
    values = tuple(float(v) for v in value)
    if len(values) != 3:
        raise ValueError(f"a bound must be a number or three numbers; got {value}.")
    return values  # type: ignore[return-value]


def _edge_crossings(end_values: torch.Tensor, end_positions: torch.Tensor) -> torch.Tensor:
    """``[M, 3]`` zeros of the linear interpolation of ``end_values`` ``[M, 2]`` along the edges.

    The ends have opposite signs (one strictly negative), so the denominator never vanishes.
    """
    first, second = end_values[:, :1], end_values[:, 1:]
    return (first * end_positions[:, 1] - second * end_positions[:, 0]) / (first - second)


def _scatter_weighted_mean(values, weights, index, count) -> torch.Tensor:
    """Per target ``i < count``: the ``weights``-weighted mean of the ``values`` rows sent to i."""
    weights = weights.unsqueeze(1)
    total = values.new_zeros((count, values.shape[1])).index_add_(0, index, weights * values)
    weight_sum = weights.new_zeros((count, 1)).index_add_(0, index, weights)
    return total / weight_sum


def _deviation_loss(dual, plain_crossings, pair_vertex, count) -> torch.Tensor:
    """L_dev per dual vertex: mean absolute deviation of its distances to its edges' crossings.

    Counts are at least 1 (each patch has an edge), so the means are finite.
    """
    distance = (plain_crossings - dual[pair_vertex]).norm(dim=1)
    ones = torch.ones_like(distance)
    edges_per_vertex = distance.new_zeros(count).index_add_(0, pair_vertex, ones)
    distance_sum = distance.new_zeros(count).index_add_(0, pair_vertex, distance)
    mean_distance = distance_sum / edges_per_vertex
    deviation = (distance - mean_distance[pair_vertex]).abs()
    return distance.new_zeros(count).index_add_(0, pair_vertex, deviation) / edges_per_vertex


def _fan_triangulation(dual, quads, vertex_gamma) -> tuple[torch.Tensor, torch.Tensor]:
    """Training split: a gamma-weighted centre per quad and the 4 triangles around it."""
    corners = dual[quads]                                   # [Q, 4, 3]
    g = vertex_gamma[quads]
    g02, g13 = (g[:, 0] * g[:, 2]).unsqueeze(1), (g[:, 1] * g[:, 3]).unsqueeze(1)
    mid02 = (corners[:, 0] + corners[:, 2]) / 2
    mid13 = (corners[:, 1] + corners[:, 3]) / 2
    centres = (g02 * mid02 + g13 * mid13) / (g02 + g13)
    centre_ids = dual.shape[0] + torch.arange(quads.shape[0], device=quads.device)
    following = quads[:, [1, 2, 3, 0]]
    faces = torch.stack([quads, following, centre_ids.unsqueeze(1).expand(-1, 4)], dim=2)
    return torch.cat([dual, centres]), faces.reshape(-1, 3)


def _diagonal_triangulation(quads, vertex_gamma) -> torch.Tensor:
    """Inference split of each quad along the diagonal whose gamma product is larger."""
    g = vertex_gamma[quads]
    split_02 = (g[:, 0] * g[:, 2] > g[:, 1] * g[:, 3]).unsqueeze(1)
    along_02 = quads[:, [0, 1, 2, 0, 2, 3]]
    along_13 = quads[:, [1, 2, 3, 1, 3, 0]]
    return torch.where(split_02, along_02, along_13).reshape(-1, 3)


def _empty_mesh(sdf: torch.Tensor) -> FlexiCubesMesh:
    """No surface: empty vertices and faces, and an empty ``l_dev`` still tied to ``sdf``."""
    return FlexiCubesMesh(sdf.new_zeros((0, 3)), sdf.new_zeros((0, 3), dtype=torch.long),
                          sdf[:0] * 0.0)
