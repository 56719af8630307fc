"""Triangle soups as meshes: welding corners that (nearly) coincide, and the topology left.

A soup stores three private corners per triangle. Welding merges every group of corners linked by
distances below the tolerance (transitively: the connected components of the "closer than
tolerance" graph), places the merged vertex at the group's mean and averages its colour; faces
that lose a corner to the merge (two corners in one group) are dropped, and so are exact
duplicates. What stays open is reported as boundary edges (edges used by one face only).
"""

from __future__ import annotations

import numpy as np


def weld(corners: np.ndarray, colours: np.ndarray, tolerance: float):
    """A ``trimesh.Trimesh`` of the soup ``corners`` [F, 3, 3] with per-corner ``colours``
    [F, 3, C] (uint8 RGB or RGBA), corners within ``tolerance`` merged (0: exact duplicates
    only)."""
    import trimesh
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    points = np.asarray(corners, dtype=np.float64).reshape(-1, 3)
    n = len(points)
    pairs = (cKDTree(points).query_pairs(max(tolerance, 0.0), output_type="ndarray")
             if n else np.zeros((0, 2), dtype=np.int64))
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, group = connected_components(graph, directed=False)
    count = np.bincount(group)
    merged = np.zeros((len(count), 3))
    np.add.at(merged, group, points)
    merged /= count[:, None]
    flat = np.asarray(colours, dtype=np.float64).reshape(n, -1)
    colour = np.zeros((len(count), flat.shape[1]))
    np.add.at(colour, group, flat)
    colour = np.round(colour / count[:, None]).astype(np.uint8)

    faces = group.reshape(-1, 3)
    proper = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) \
        & (faces[:, 2] != faces[:, 0])
    faces = faces[proper]
    _, first = np.unique(np.sort(faces, axis=1), axis=0, return_index=True)
    faces = faces[np.sort(first)]
    mesh = trimesh.Trimesh(merged, faces, vertex_colors=colour, process=False)
    mesh.remove_unreferenced_vertices()
    return mesh


def topology(mesh) -> dict[str, int]:
    """Faces, vertices, connected components (by shared edges) and open boundary edges."""
    import trimesh

    faces = len(mesh.faces)
    if faces == 0:
        return {"faces": 0, "vertices": len(mesh.vertices), "components": 0,
                "boundary_edges": 0}
    components = trimesh.graph.connected_components(mesh.face_adjacency, nodes=np.arange(faces),
                                                    min_len=1)
    boundary = trimesh.grouping.group_rows(mesh.edges_sorted, require_count=1)
    return {"faces": faces, "vertices": len(mesh.vertices), "components": len(components),
            "boundary_edges": len(boundary)}


__all__ = ["topology", "weld"]
