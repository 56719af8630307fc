"""The Dual Marching Cubes table of FlexiCubes, generated (never pasted) when this module loads.

Cube conventions (shared with :mod:`recon.mesh.flexicubes`):

* **Corners.** Corner ``c`` of a cube sits at offset ``(c & 1, c >> 1 & 1, c >> 2 & 1)`` from the
  cube's lowest grid vertex, i.e. ``c = x + 2y + 4z``.
* **Edges.** The 12 edges are numbered by axis: 0-3 run along x, 4-7 along y, 8-11 along z. Within
  an axis, edge ``4 * axis + m`` starts at the corner whose two other coordinates are
  ``(m & 1, m >> 1)``, taken in increasing axis order (for x edges: ``(y, z)``; for y edges:
  ``(x, z)``; for z edges: ``(x, y)``). The slot ``m`` therefore tells on which side of the edge the
  cube lies, which is what orders the four cubes around a grid edge into a quad.
* **Case id.** ``case = sum(2**c for inside corners c)``, where a corner is inside when its SDF is
  negative (zero counts as outside).

For every case, a *patch* is one dual vertex together with the sign-change edges whose crossings it
gathers. The patches come from two rules:

* **Rule A.** Split the inside corners into components connected along cube edges; each component
  is one patch, made of the edges with exactly one endpoint in it. Two inside corners that are only
  diagonal neighbours (on a face or through the body) thus get separate dual vertices.
* **Rule B.** When the only two *outside* corners are body-diagonal (cases 126, 189, 219, 231),
  Rule A would merge all six sign-change edges into one vertex, i.e. a tunnel squeezed through a
  single point. The outside components are used instead, giving two three-edge patches.

**Face ambiguity.** A cube face is ambiguous when its inside corners are one diagonal and its
outside corners the other. Two cubes sharing such a face must not *both* gather all four of its
sign-change edges into one vertex, or four quads meet at one mesh edge. Under Rule A a cube merges
an ambiguous face exactly when it has 5 or 6 inside corners and that is its only ambiguous face (the
paper's C16/C19 families; 36 cases: 24 with 5 inside corners, 12 with 6). Such cases are *flagged*
here with the offset of the neighbour across that face; the extractor replaces the case of every
flagged cube whose neighbour is also flagged by ``255 - case``, i.e. groups it by outside
components, which splits the face's four edges into two patches in both cubes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

NUM_CASES = 256
NUM_CORNERS = 8
NUM_EDGES = 12
MAX_PATCHES = 4          # the checkerboard cases have 4 isolated inside corners
MAX_EDGES_PER_PATCH = 7  # a chain of 5 inside corners enclosing no face: 15 edge ends - 2 x 4

CORNER_OFFSETS: tuple[tuple[int, int, int], ...] = tuple(
    (c & 1, c >> 1 & 1, c >> 2 & 1) for c in range(NUM_CORNERS))


def _other_axes(axis: int) -> tuple[int, int]:
    """The two axes perpendicular to ``axis``, in increasing order."""
    return tuple(a for a in range(3) if a != axis)  # type: ignore[return-value]


def _build_edges() -> tuple[tuple[int, int], ...]:
    """Corner pairs ``(low, high)`` of the 12 edges in the numbering of the module docstring."""
    edges = []
    for axis in range(3):
        u, w = _other_axes(axis)
        for m in range(4):
            low = (m & 1) << u | (m >> 1) << w
            edges.append((low, low | 1 << axis))
    return tuple(edges)


EDGE_CORNERS: tuple[tuple[int, int], ...] = _build_edges()
EDGE_AXIS: tuple[int, ...] = tuple(e // 4 for e in range(NUM_EDGES))


def _build_faces() -> tuple[tuple[int, int, tuple[int, int, int, int]], ...]:
    """The 6 faces as ``(axis, side, corners in cyclic order)``; side 0 is the low face.

    The cyclic order walks the face's square, so corners 0 and 2 (and 1 and 3) are diagonal.
    """
    faces = []
    for axis in range(3):
        u, w = _other_axes(axis)
        for side in range(2):
            square = [(0, 0), (1, 0), (1, 1), (0, 1)]
            corners = tuple(side << axis | bu << u | bw << w for bu, bw in square)
            faces.append((axis, side, corners))
    return tuple(faces)


FACES = _build_faces()


def inside_corners(case: int) -> frozenset[int]:
    """The corners whose bit is set in ``case`` (negative SDF)."""
    return frozenset(c for c in range(NUM_CORNERS) if case >> c & 1)


def corner_components(corners: frozenset[int]) -> list[frozenset[int]]:
    """``corners`` split into groups connected along cube edges (flood fill over the 12 edges)."""
    remaining = set(corners)
    components = []
    while remaining:
        frontier = [remaining.pop()]
        component = set(frontier)
        while frontier:
            corner = frontier.pop()
            for a, b in EDGE_CORNERS:
                other = b if a == corner else a if b == corner else None
                if other is not None and other in remaining:
                    remaining.discard(other)
                    component.add(other)
                    frontier.append(other)
        components.append(frozenset(component))
    return components


def boundary_edges(component: frozenset[int]) -> tuple[int, ...]:
    """The cube edges with exactly one endpoint in ``component``, ascending."""
    return tuple(e for e, (a, b) in enumerate(EDGE_CORNERS) if (a in component) != (b in component))


def is_rule_b_case(case: int) -> bool:
    """Whether the only two outside corners of ``case`` are body-diagonal (c and 7 - c)."""
    outside = sorted(inside_corners(NUM_CASES - 1 - case))
    return len(outside) == 2 and outside[0] + outside[1] == 7


def case_patches(case: int) -> tuple[tuple[int, ...], ...]:
    """Rules A and B: the edge lists of the dual vertices of ``case``, ordered by first edge."""
    grouped = inside_corners(case)
    if is_rule_b_case(case):
        grouped = inside_corners(NUM_CASES - 1 - case)
    patches = (boundary_edges(component) for component in corner_components(grouped))
    return tuple(sorted(patch for patch in patches if patch))


def ambiguous_faces(case: int) -> tuple[int, ...]:
    """Indices into :data:`FACES` of the faces whose inside corners are exactly one diagonal."""
    inside = inside_corners(case)
    found = []
    for index, (_, _, corners) in enumerate(FACES):
        signs = [corner in inside for corner in corners]
        if signs[0] == signs[2] and signs[1] == signs[3] and signs[0] != signs[1]:
            found.append(index)
    return tuple(found)


def neighbour_offset(face_index: int) -> tuple[int, int, int]:
    """The unit step from a cube to the cube across its face ``face_index``."""
    axis, side, _ = FACES[face_index]
    offset = [0, 0, 0]
    offset[axis] = 1 if side else -1
    return tuple(offset)  # type: ignore[return-value]


def is_flagged_case(case: int) -> bool:
    """Whether ``case`` merges its single ambiguous face into one dual vertex (C16/C19 types)."""
    return len(inside_corners(case)) in (5, 6) and len(ambiguous_faces(case)) == 1


@dataclass(frozen=True)
class DmcTable:
    """The generated table in Python form; see :func:`device_tables` for the tensor form."""

    patches: tuple[tuple[tuple[int, ...], ...], ...]  # [case][patch] -> edge indices
    flagged: tuple[bool, ...]                          # [case] C16/C19-type ambiguity
    ambiguous_neighbour: tuple[tuple[int, int, int], ...]  # [case] step across that face, or 0s


def build_dmc_table() -> DmcTable:
    """Generate the patches and the ambiguity flags of all 256 cases."""
    patches = tuple(case_patches(case) for case in range(NUM_CASES))
    flagged = tuple(is_flagged_case(case) for case in range(NUM_CASES))
    neighbour = tuple(neighbour_offset(ambiguous_faces(case)[0]) if flagged[case] else (0, 0, 0)
                      for case in range(NUM_CASES))
    return DmcTable(patches, flagged, neighbour)


TABLE: DmcTable = build_dmc_table()


def padded_dmc_table() -> torch.Tensor:
    """``[256, 4, 7]`` int64 edge indices of each case's patches, padded with -1."""
    table = torch.full((NUM_CASES, MAX_PATCHES, MAX_EDGES_PER_PATCH), -1, dtype=torch.long)
    for case, patches in enumerate(TABLE.patches):
        for index, edges in enumerate(patches):
            table[case, index, :len(edges)] = torch.tensor(edges)
    return table


@dataclass(frozen=True)
class DeviceTables:
    """The table as lookup tensors on one device, indexed by case id."""

    patch_of_edge: torch.Tensor        # [256, 12] int64: patch gathering the edge, -1 if none
    num_patches: torch.Tensor          # [256] int64
    flagged: torch.Tensor              # [256] bool
    ambiguous_neighbour: torch.Tensor  # [256, 3] int64
    edge_corners: torch.Tensor         # [12, 2] int64
    corner_offsets: torch.Tensor       # [8, 3] int64


@lru_cache(maxsize=None)
def device_tables(device: torch.device) -> DeviceTables:
    """The lookup tensors on ``device``, built once per device."""
    patch_of_edge = torch.full((NUM_CASES, NUM_EDGES), -1, dtype=torch.long)
    for case, patches in enumerate(TABLE.patches):
        for index, edges in enumerate(patches):
            patch_of_edge[case, list(edges)] = index
    tables = DeviceTables(
        patch_of_edge=patch_of_edge,
        num_patches=torch.tensor([len(p) for p in TABLE.patches], dtype=torch.long),
        flagged=torch.tensor(TABLE.flagged, dtype=torch.bool),
        ambiguous_neighbour=torch.tensor(TABLE.ambiguous_neighbour, dtype=torch.long),
        edge_corners=torch.tensor(EDGE_CORNERS, dtype=torch.long),
        corner_offsets=torch.tensor(CORNER_OFFSETS, dtype=torch.long),
    )
    return DeviceTables(**{name: value.to(device) for name, value in vars(tables).items()})
