"""FlexiCubes: the generated table against Rules A and B, the extractor against hand-derived meshes
and an independent loop-based Dual Marching Cubes, closedness and orientation on random fields,
and gradients against finite differences.

The invariants follow kaolin's FlexiCubes tests, rebuilt from their setups rather than their data.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest
import torch
import trimesh

from recon.mesh import flexicubes_tables as tables
from recon.mesh.flexicubes import FlexiCubesGrid, activate_alpha_beta, activate_gamma, \
    sign_change_loss

# ------------------------------------------------------------ helpers


def corners_adjacent(a: int, b: int) -> bool:
    """Cube corners are joined by an edge when their (x, y, z) bits differ in exactly one place."""
    return bin(a ^ b).count("1") == 1


def components_by_merging(corners: set[int]) -> list[set[int]]:
    """Connected groups of corners, by repeatedly merging groups (unlike the table's flood fill)."""
    groups = [{c} for c in corners]
    merged = True
    while merged:
        merged = False
        for g1, g2 in itertools.combinations(groups, 2):
            if any(corners_adjacent(a, b) for a in g1 for b in g2):
                groups.remove(g2)
                g1 |= g2
                merged = True
                break
    return groups


def expected_patches(case: int) -> set[frozenset[int]]:
    """Rules A and B written out again: edge sets leaving each inside (or Rule B outside) group."""
    inside = {c for c in range(8) if case >> c & 1}
    outside = set(range(8)) - inside
    grouped = inside
    if len(outside) == 2 and all(bin(a ^ b).count("1") == 3 for a, b in [sorted(outside)]):
        grouped = outside
    patches = {frozenset(e for e, (a, b) in enumerate(tables.EDGE_CORNERS) if (a in g) != (b in g))
               for g in components_by_merging(grouped)}
    return patches - {frozenset()}  # all 8 corners inside: one group, no edge leaving it


def face_edges(face: int) -> frozenset[int]:
    corners = set(tables.FACES[face][2])
    return frozenset(e for e, (a, b) in enumerate(tables.EDGE_CORNERS)
                     if a in corners and b in corners)


def edge_use_counts(faces: torch.Tensor) -> tuple[Counter, Counter]:
    """How often each undirected edge, and each directed edge, occurs in the triangles."""
    directed = Counter(map(tuple, faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2).tolist()))
    undirected = Counter()
    for (a, b), n in directed.items():
        undirected[(min(a, b), max(a, b))] += n
    return undirected, directed


def random_field(res: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    """Uniform values in [-1, 1] inside, +1 on the boundary (a closed surface), as a volume."""
    generator = torch.Generator().manual_seed(seed)
    values = torch.rand((res + 1,) * 3, generator=generator, dtype=dtype) * 2 - 1
    boundary = torch.ones_like(values, dtype=torch.bool)
    boundary[1:-1, 1:-1, 1:-1] = False
    return torch.where(boundary, torch.ones_like(values), values)


def random_weights(grid: FlexiCubesGrid, seed: int, dtype=torch.float64) -> dict:
    generator = torch.Generator().manual_seed(seed)
    draw = lambda *shape: torch.randn(shape, generator=generator, dtype=dtype)  # noqa: E731
    return dict(deform=draw(grid.num_vertices, 3), alpha=draw(grid.num_cubes, 8),
                beta=draw(grid.num_cubes, 12), gamma=draw(grid.num_cubes))


def to_trimesh(mesh) -> trimesh.Trimesh:
    return trimesh.Trimesh(mesh.vertices.detach().numpy(), mesh.faces.numpy(), process=False)


def raw_for(weight: float) -> float:
    """The raw alpha/beta that activates to ``weight``."""
    return math.atanh((weight - 1.0) / 0.99)


# ------------------------------------------------------------ the table


def test_edge_numbering_follows_the_documented_convention():
    assert len(set(tables.EDGE_CORNERS)) == 12
    for e, (low, high) in enumerate(tables.EDGE_CORNERS):
        axis, slot = divmod(e, 4)
        assert high - low == 1 << axis
        u, w = [a for a in range(3) if a != axis]
        assert (low >> u & 1, low >> w & 1) == (slot & 1, slot >> 1)


def test_table_follows_rules_a_and_b_for_all_cases():
    for case in range(256):
        assert set(map(frozenset, tables.TABLE.patches[case])) == expected_patches(case), case
        # The patches partition the sign-change edges: each one in exactly one patch.
        crossing = [e for e, (a, b) in enumerate(tables.EDGE_CORNERS)
                    if (case >> a & 1) != (case >> b & 1)]
        assert sorted(e for p in tables.TABLE.patches[case] for e in p) == crossing
    rule_b = [c for c in range(256) if tables.is_rule_b_case(c)]
    assert rule_b == [126, 189, 219, 231]
    assert all(len(tables.TABLE.patches[c]) == 2 for c in rule_b)


def test_table_statistics_match_the_reference_table():
    # Dual vertices per case: 2 cases with none, 162 with one, 82 two, 8 three, 2 four.
    counts = Counter(len(p) for p in tables.TABLE.patches)
    assert counts == {0: 2, 1: 162, 2: 82, 3: 8, 4: 2}
    assert max(len(e) for p in tables.TABLE.patches for e in p) == 7
    padded = tables.padded_dmc_table()
    assert padded.shape == (256, 4, 7)
    assert int((padded >= 0).sum()) == sum(len(e) for p in tables.TABLE.patches for e in p)


def test_unambiguous_complementary_cases_have_the_same_patches():
    # Swapping inside and outside keeps the grouping unless a face is ambiguous (that is what
    # the ambiguity fix is for); Rule B is what makes it hold for 126/189/219/231 and 129 & co.
    unambiguous = [c for c in range(256) if not tables.ambiguous_faces(c)]
    assert len(unambiguous) == 136  # brute-force count: 120 cases have an ambiguous face
    for case in unambiguous:
        assert tables.TABLE.patches[case] == tables.TABLE.patches[255 - case], case
    ambiguous_differing = [c for c in range(256) if tables.ambiguous_faces(c)
                           and tables.TABLE.patches[c] != tables.TABLE.patches[255 - c]]
    assert len(ambiguous_differing) > 0


def test_flagged_cases_are_exactly_those_merging_an_ambiguous_face():
    flagged = [c for c in range(256) if tables.TABLE.flagged[c]]
    assert len(flagged) == 36
    assert Counter(bin(c).count("1") for c in flagged) == {5: 24, 6: 12}
    for case in range(256):
        merges = [f for f in tables.ambiguous_faces(case)
                  if any(face_edges(f) <= set(p) for p in tables.TABLE.patches[case])]
        assert bool(merges) == tables.TABLE.flagged[case], case
        if not merges:
            assert tables.TABLE.ambiguous_neighbour[case] == (0, 0, 0)
            continue
        (face,) = merges
        axis, side, _ = tables.FACES[face]
        step = tables.TABLE.ambiguous_neighbour[case]
        assert step[axis] == (1 if side else -1) and sum(map(abs, step)) == 1
        # The switched case splits that face's four edges into two patches of two.
        split = [set(p) & face_edges(face) for p in tables.TABLE.patches[255 - case]]
        assert sorted(len(s) for s in split if s) == [2, 2]


# ------------------------------------------------------------ the grid


def test_res2_grid_vertices_cubes_and_edges():
    grid = FlexiCubesGrid(2, (-0.5, 0.5))
    vertices = grid.vertices()
    assert vertices.shape == (27, 3)
    assert vertices.min() == -0.5 and vertices.max() == 0.5
    # z runs fastest, x slowest.
    assert vertices[1].tolist() == [-0.5, -0.5, 0.0]
    assert vertices[3].tolist() == [-0.5, 0.0, -0.5]
    assert vertices[9].tolist() == [0.0, -0.5, -0.5]
    corners = grid.cube_corners()
    assert corners.shape == (8, 8)
    # Corner c = x + 2y + 4z of cube (i, j, k) is vertex (i + x) * 9 + (j + y) * 3 + (k + z).
    assert corners[0].tolist() == [0, 9, 3, 12, 1, 10, 4, 13]
    assert corners[7].tolist() == [13, 22, 16, 25, 14, 23, 17, 26]
    edges = grid.grid_edges()
    assert edges.shape == (54, 2)  # 3 axes x 2 steps x 3 x 3 lines
    assert len({tuple(sorted(e)) for e in edges.tolist()}) == 54
    assert torch.allclose((vertices[edges[:, 0]] - vertices[edges[:, 1]]).norm(dim=1),
                          torch.full((54,), 0.5))


def test_deformation_stays_within_half_a_cell():
    grid = FlexiCubesGrid(3, ((0, 0, 0), (3, 6, 9)))  # cells 1 x 2 x 3
    moved = grid.deformed_vertices(torch.full((64, 3), 50.0, dtype=torch.float64))
    shift = moved - grid.vertices(dtype=torch.float64)
    # tanh(50) is 1 in float64, so the shift is exactly half of each axis' cell.
    assert torch.equal(shift, torch.tensor([0.5, 1.0, 1.5], dtype=torch.float64).expand(64, 3))


# ------------------------------------------------------------ hand-derived meshes


@pytest.fixture
def centre_field():
    """Kaolin's setup: res 4 on [-0.5, 0.5]^3 (cell 0.25), sdf = |x| - 0.2, negative only at the
    centre. Each axis neighbour holds 0.05, so every crossing is 0.2/0.25 = 0.8 of the way out,
    0.2 from the centre; each of the 8 cubes around it averages 3 such crossings: (+-0.2/3)^3."""
    grid = FlexiCubesGrid(4, (-0.5, 0.5))
    return grid, grid.vertices(dtype=torch.float64).norm(dim=1) - 0.2


def test_single_inside_vertex_gives_a_small_cube(centre_field):
    grid, sdf = centre_field
    mesh = grid.extract(sdf, training=False)
    signs = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=3)), dtype=torch.float64)
    # Vertices come cube by cube (x slowest), the same order as these sign triples.
    assert torch.allclose(mesh.vertices, signs / 15, rtol=0, atol=1e-15)
    assert mesh.faces.shape == (12, 3)
    closed = to_trimesh(mesh)
    assert closed.is_watertight and closed.is_winding_consistent
    # Positive volume = counter-clockwise seen from outside (normals point to positive SDF).
    assert closed.volume == pytest.approx((2 / 15) ** 3, rel=1e-12)
    # All 3 crossings of a vertex are equally far from it: no deviation beyond round-off.
    assert torch.allclose(mesh.l_dev, torch.zeros(8, dtype=torch.float64), rtol=0, atol=1e-15)


def test_training_split_adds_quad_centres(centre_field):
    grid, sdf = centre_field
    mesh = grid.extract(sdf, training=True)
    assert mesh.vertices.shape == (8 + 6, 3) and mesh.faces.shape == (24, 3)
    # Each centre is the middle of one face of the small cube: +-1/15 on one axis.
    centres = mesh.vertices[8:]
    assert torch.allclose(centres.abs().sum(dim=1), torch.full((6,), 1 / 15, dtype=torch.float64),
                          rtol=0, atol=1e-15)
    assert torch.allclose(centres.abs().max(dim=1).values, centres.abs().sum(dim=1))
    closed = to_trimesh(mesh)
    assert closed.is_watertight and closed.volume == pytest.approx((2 / 15) ** 3, rel=1e-12)


def test_alpha_and_beta_move_a_vertex_as_derived(centre_field):
    grid, sdf = centre_field
    cube = (1 * 4 + 1) * 4 + 1  # cube (1, 1, 1) spans [-0.25, 0]^3; the centre is its corner 7
    alpha = torch.zeros(64, 8, dtype=torch.float64)
    alpha[cube, 7] = raw_for(1.5)
    # Centre value -0.2 * 1.5 against 0.05: crossing at 0.3 / 0.35 = 6/7 of 0.25 = 3/14 out,
    # so the vertex is (-1/14)^3; the other 7 cubes keep +-1/15.
    mesh = grid.extract(sdf, alpha=alpha, training=False)
    assert torch.allclose(mesh.vertices[0], torch.full((3,), -1 / 14, dtype=torch.float64),
                          rtol=0, atol=1e-15)
    assert torch.allclose(mesh.vertices[1:].abs(), torch.full((7, 3), 1 / 15, dtype=torch.float64),
                          rtol=0, atol=1e-15)
    beta = torch.zeros(64, 12, dtype=torch.float64)
    assert tables.EDGE_CORNERS[3] == (6, 7)  # the x edge reaching corner 7
    beta[cube, 3] = raw_for(1.5)
    # Crossings (-0.2, 0, 0), (0, -0.2, 0), (0, 0, -0.2) weighted 1.5, 1, 1: sum of weights 3.5.
    mesh = grid.extract(sdf, beta=beta, training=False)
    expected = torch.tensor([-0.3 / 3.5, -0.2 / 3.5, -0.2 / 3.5], dtype=torch.float64)
    assert torch.allclose(mesh.vertices[0], expected, rtol=0, atol=1e-15)


def test_gamma_picks_the_inference_diagonal(centre_field):
    grid, sdf = centre_field
    cube = (1 * 4 + 1) * 4 + 1
    for raw, expected_faces in [(4.0, 6), (-4.0, 3)]:
        gamma = torch.zeros(64, dtype=torch.float64)
        gamma[cube] = raw
        mesh = grid.extract(sdf, gamma=gamma, training=False)
        # Vertex 0 (cube (1, 1, 1)) sits in 3 quads. A large gamma puts the split diagonal
        # through it (2 triangles per quad), a small one away from it (1 triangle per quad).
        assert int((mesh.faces == 0).any(dim=1).sum()) == expected_faces
        assert to_trimesh(mesh).is_watertight


def test_gamma_weights_the_training_centre(centre_field):
    grid, sdf = centre_field
    generator = torch.Generator().manual_seed(3)
    alpha = torch.randn(64, 8, generator=generator, dtype=torch.float64)  # makes quads uneven
    gamma = torch.randn(64, generator=generator, dtype=torch.float64)
    mesh = grid.extract(sdf, alpha=alpha, gamma=gamma, training=True)
    quads = mesh.faces.reshape(-1, 4, 3)[:, :, 0]  # layout: faces 4q..4q+3 start at quad corners
    dual = mesh.vertices[:8]
    # Each dual vertex lies inside its own cube: find the cube, then its activated gamma.
    cube_ijk = torch.floor((dual + 0.5) / 0.25).long()
    g = activate_gamma(gamma[(cube_ijk[:, 0] * 4 + cube_ijk[:, 1]) * 4 + cube_ijk[:, 2]])[quads]
    p = dual[quads]
    g02, g13 = (g[:, 0] * g[:, 2])[:, None], (g[:, 1] * g[:, 3])[:, None]
    expected = (g02 * (p[:, 0] + p[:, 2]) / 2 + g13 * (p[:, 1] + p[:, 3]) / 2) / (g02 + g13)
    assert torch.allclose(mesh.vertices[8:], expected, rtol=0, atol=1e-15)
    assert not torch.allclose(expected, p.mean(dim=1), atol=1e-4)  # gamma really mattered


# ------------------------------------------------------------ independent DMC


def reference_dmc(values: np.ndarray, lower: float, cell: float, resolve_ambiguity: bool = True):
    """Plain Dual Marching Cubes with Python loops over cubes and grid (i, j, k) tuples.

    Returns the dual vertex positions, the quads (lists of 4 vertex ids, counter-clockwise seen
    from the positive end of their grid edge) and how many cubes the ambiguity fix switched.
    """
    res = values.shape[0] - 1
    cubes = list(itertools.product(range(res), repeat=3))
    cube_corners = {c: [tuple(c[a] + (n >> a & 1) for a in range(3)) for n in range(8)]
                    for c in cubes}

    def is_inside(v):
        return values[v] < 0

    def patches(cube, use_outside):
        corners = cube_corners[cube]
        grouped = {n for n in range(8) if is_inside(corners[n]) != use_outside}
        outside = set(range(8)) - grouped
        body_diagonal = len(outside) == 2 and bin(min(outside) ^ max(outside)).count("1") == 3
        if not use_outside and body_diagonal:
            grouped = outside  # Rule B
        result = []
        for group in components_by_merging(grouped):
            edges = frozenset(frozenset((corners[a], corners[b]))
                              for a, b in itertools.combinations(range(8), 2)
                              if corners_adjacent(a, b) and (a in group) != (b in group))
            if edges:  # a cube entirely inside has one group and no surface
                result.append(edges)
        return result

    def merged_face(cube, cube_patches):
        """The face whose four edges one patch gathers, as a frozenset of its 4 corners."""
        corners = cube_corners[cube]
        for axis, side in itertools.product(range(3), range(2)):
            face = [v for v in corners if v[axis] == cube[axis] + side]
            inside = [v for v in face if is_inside(v)]
            diagonal = len(inside) == 2 and sum(a != b for a, b in zip(*inside)) == 2
            edges = {frozenset((a, b)) for a, b in itertools.combinations(face, 2)
                     if sum(x != y for x, y in zip(a, b)) == 1}
            if diagonal and any(edges <= p for p in cube_patches):
                return frozenset(face)
        return None

    grouping = {c: patches(c, False) for c in cubes}
    merged = {c: merged_face(c, grouping[c]) for c in cubes}
    switched = [c for c in cubes if resolve_ambiguity and merged[c] is not None and any(
        merged[n] == merged[c] for n in cubes if n != c)]
    for c in switched:
        grouping[c] = patches(c, True)

    vertices, vertex_of = [], {}
    for c in cubes:
        for edges in grouping[c]:
            crossings = []
            for a, b in edges:
                t = values[a] / (values[a] - values[b])
                crossings.append(lower + cell * ((1 - t) * np.array(a) + t * np.array(b)))
            for edge in edges:
                vertex_of[c, edge] = len(vertices)
            vertices.append(np.mean(crossings, axis=0))

    quads = []
    for low in itertools.product(range(res + 1), repeat=3):
        for axis in range(3):
            high = tuple(low[a] + (a == axis) for a in range(3))
            if high[axis] > res or is_inside(low) == is_inside(high):
                continue
            edge = frozenset((low, high))
            around = [c for c in cubes if low in cube_corners[c] and high in cube_corners[c]]
            if len(around) < 4:
                continue
            # Order the cubes by angle about the edge pointing from its inside to outside end.
            direction = 1 if is_inside(low) else -1
            u, w = [a for a in range(3) if a != axis]
            if direction * (1 if (u, w) != (0, 2) else -1) < 0:  # keep (u, w, dir) right-handed
                u, w = w, u
            angle = lambda c: math.atan2(c[w] + 0.5 - low[w], c[u] + 0.5 - low[u])  # noqa: E731
            quads.append([vertex_of[c, edge] for c in sorted(around, key=angle)])
    return np.array(vertices), quads, len(switched)


def canonical_triangles(triangles) -> set[tuple[int, int, int]]:
    """Triangles rotated to start at their smallest id, keeping their winding."""
    out = set()
    for t in triangles:
        k = t.index(min(t))
        out.add(tuple(t[k:] + t[:k]))
    return out


def test_neutral_weights_reproduce_an_independent_dual_marching_cubes():
    res, total_switched = 5, 0
    grid = FlexiCubesGrid(res, (-1.0, 1.0))
    for seed in range(6):
        field = random_field(res, seed)
        reference, quads, switched = reference_dmc(field.numpy(), -1.0, 2.0 / res)
        total_switched += switched
        zeros = random_weights(grid, 0)
        zeros = {k: torch.zeros_like(v) for k, v in zeros.items()}
        for weights in ({}, zeros):  # None and raw zeros are both plain DMC
            mesh = grid.extract(field, training=False, **weights)
            assert mesh.vertices.shape == reference.shape
            # Match vertices by position: the two computations differ only by float64 round-off
            # of a few operations on O(1) values (~1e-16), so 1e-12 leaves room but no slack.
            distance = torch.cdist(mesh.vertices, torch.from_numpy(reference),
                                   compute_mode="donot_use_mm_for_euclid_dist")
            nearest = distance.argmin(dim=1)
            assert distance.min(dim=1).values.max() < 1e-12
            assert len(set(nearest.tolist())) == len(reference)
            mapped = nearest[mesh.faces].tolist()
            assert len(mapped) == 2 * len(quads)
            ours = canonical_triangles(mapped)
            for a, b, c, d in quads:
                splits = (canonical_triangles([[a, b, c], [a, c, d]]),
                          canonical_triangles([[b, c, d], [b, d, a]]))
                assert any(s <= ours for s in splits), (seed, (a, b, c, d))
    # The fields must exercise the ambiguity fix, or this test would not cover it.
    assert total_switched > 0


def ambiguous_pair_field() -> torch.Tensor:
    """Cubes (1,1,1) and (2,1,1) of a res-4 grid, each with 6 inside corners and its 2 outside
    corners diagonal on the shared face x = 2: both merge that face (C19-type) unless fixed."""
    field = torch.ones((5, 5, 5), dtype=torch.float64)
    field[1:4, 1:3, 1:3] = -1.0
    field[2, 2, 1] = field[2, 1, 2] = 0.5
    return field


def test_ambiguity_fix_keeps_two_merging_neighbours_manifold():
    field = ambiguous_pair_field()
    _, unfixed_quads, _ = reference_dmc(field.numpy(), -1.0, 0.5, resolve_ambiguity=False)
    quad_edges = Counter(frozenset(e) for q in unfixed_quads for e in zip(q, q[1:] + q[:1]))
    assert max(quad_edges.values()) == 4  # without the fix four quads share one edge
    _, _, switched = reference_dmc(field.numpy(), -1.0, 0.5)
    assert switched == 2
    for training in (False, True):
        mesh = FlexiCubesGrid(4).extract(field, training=training)
        undirected, directed = edge_use_counts(mesh.faces)
        assert set(undirected.values()) == {2} and set(directed.values()) == {1}
        closed = to_trimesh(mesh)
        assert closed.is_watertight and closed.is_winding_consistent and closed.volume > 0


# ------------------------------------------------------------ random fields


@pytest.mark.parametrize("training", [False, True])
def test_random_fields_give_closed_consistently_oriented_meshes(training):
    res = 8
    grid = FlexiCubesGrid(res)
    for seed in range(4):
        field = random_field(res, seed)
        mesh = grid.extract(field, training=training, **random_weights(grid, seed))
        undirected, directed = edge_use_counts(mesh.faces)
        # Every edge in exactly two triangles, walked once each way: closed and oriented.
        assert set(undirected.values()) == {2}
        assert set(directed.values()) == {1}
        closed = to_trimesh(mesh)
        assert closed.is_watertight and closed.is_winding_consistent
        assert closed.volume > 0  # outward normals
        assert torch.isfinite(mesh.vertices).all() and torch.isfinite(mesh.l_dev).all()
        assert (mesh.l_dev >= 0).all() and mesh.l_dev.max() > 0  # weights pull vertices off


def test_sphere_mesh_is_a_closed_genus_zero_surface_near_the_sphere():
    res, radius = 32, 0.7
    grid = FlexiCubesGrid(res)
    sdf = grid.sphere_sdf(radius, dtype=torch.float64)
    mesh = grid.extract(sdf, training=False)
    closed = to_trimesh(mesh)
    assert closed.is_watertight and closed.euler_number == 2
    # Dual vertices of an exact distance field sit within a small fraction of a cell of it
    # (measured 0.03 cells at res 32; chords of the curved surface are the error).
    cell = 2.0 / res
    assert (mesh.vertices.norm(dim=1) - radius).abs().max() < 0.1 * cell
    # Flat faces between points on the sphere cut inside it: measured -0.9 % of the volume.
    volume_error = closed.volume / (4 / 3 * math.pi * radius ** 3) - 1
    assert -0.015 < volume_error < 0
    assert grid.sphere_sdf().min() == pytest.approx(-0.5)  # default: radius half of [-1, 1]'s


def test_empty_field_gives_an_empty_mesh():
    grid = FlexiCubesGrid(3)
    mesh = grid.extract(torch.ones(64), training=True)
    assert mesh.vertices.shape == (0, 3) and mesh.faces.shape == (0, 3)
    assert mesh.faces.dtype == torch.int64 and mesh.deviation_loss().item() == 0.0


def test_flat_and_volume_inputs_agree_and_wrong_shapes_are_refused():
    grid = FlexiCubesGrid(4)
    field = random_field(4, 1)
    weights = random_weights(grid, 1)
    flat = grid.extract(field.reshape(-1), **weights)
    volume = grid.extract(field, deform=weights["deform"].reshape(5, 5, 5, 3),
                          alpha=weights["alpha"].reshape(4, 4, 4, 8),
                          beta=weights["beta"].reshape(4, 4, 4, 12),
                          gamma=weights["gamma"].reshape(4, 4, 4))
    assert torch.equal(flat.vertices, volume.vertices) and torch.equal(flat.faces, volume.faces)
    with pytest.raises(ValueError, match="alpha"):
        grid.extract(field, alpha=torch.zeros(64, 7))


# ------------------------------------------------------------ gradients


def test_gradients_match_finite_differences():
    # Float64 central differences (eps 1e-6) against autograd; gradcheck's default tolerances
    # (atol 1e-5, rtol 1e-3) are far above the O(eps^2) truncation error of these smooth maps.
    # The SDF stays at least 0.2 from zero so no sign flips within eps.
    res = 3
    grid = FlexiCubesGrid(res, (-1.0, 1.0))
    field = random_field(res, 7)
    field = torch.where(field.abs() < 0.2, field.sign() * 0.2 + field, field)
    weights = {k: v * 0.5 for k, v in random_weights(grid, 7).items()}
    names = ["sdf", "deform", "alpha", "beta", "gamma"]
    inputs = [field.reshape(-1)] + [weights[n] for n in names[1:]]
    inputs = [x.clone().requires_grad_(True) for x in inputs]

    def training_mesh(*args):
        mesh = grid.extract(**dict(zip(names, args)), training=True)
        return mesh.vertices, mesh.deviation_loss()

    def inference_vertices(*args):
        return grid.extract(**dict(zip(names, args)), training=False).vertices

    assert training_mesh(*inputs)[0].shape[0] > 8  # a real surface, centres included
    assert torch.autograd.gradcheck(training_mesh, inputs)
    assert torch.autograd.gradcheck(inference_vertices, inputs[:4])


def test_sign_change_loss_matches_its_definition():
    field = torch.full((8,), 2.0, dtype=torch.float64)
    field[0] = -1.0  # res 1: corner (0, 0, 0) inside, its 3 edges change sign
    # Per edge: BCE(-1, target 1) = softplus(1) plus BCE(2, target 0) = softplus(2).
    expected = math.log1p(math.e) + math.log1p(math.e ** 2)
    field.requires_grad_(True)
    loss = sign_change_loss(field, 1)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    loss.backward()
    assert field.grad[0] < 0 and (field.grad[[1, 2, 4]] > 0).all()  # each pushed to the other sign
    assert (field.grad[[3, 5, 6, 7]] == 0).all()  # no sign change on their edges
    assert sign_change_loss(torch.ones(27), 2).item() == 0.0
    grid = FlexiCubesGrid(1)
    assert grid.sign_loss(field.detach()).item() == pytest.approx(expected, rel=1e-12)


def test_activations_are_neutral_at_zero_and_bounded():
    assert activate_alpha_beta(torch.tensor(0.0)) == 1.0
    assert activate_gamma(torch.tensor(0.0)) == pytest.approx(0.5)
    big = torch.tensor([-1e3, 1e3], dtype=torch.float64)
    assert torch.allclose(activate_alpha_beta(big), torch.tensor([0.01, 1.99], dtype=torch.float64))
    assert torch.allclose(activate_gamma(big), torch.tensor([0.005, 0.995], dtype=torch.float64))


@pytest.mark.gpu
def test_cuda_matches_cpu():
    res = 16
    grid = FlexiCubesGrid(res)
    field = random_field(res, 2, torch.float32)
    weights = random_weights(grid, 2, torch.float32)
    for training in (False, True):
        cpu = grid.extract(field, training=training, **weights)
        gpu = grid.extract(field.cuda(), training=training,
                           **{k: v.cuda() for k, v in weights.items()})
        assert torch.equal(cpu.faces, gpu.faces.cpu())
        assert torch.allclose(cpu.vertices, gpu.vertices.cpu(), rtol=0, atol=1e-5)
