"""Mesh files through trimesh: ``.ply``, ``.obj`` and ``.glb``, each with per-vertex colours.

recon keeps meshes as ``trimesh.Trimesh`` (vertices float64, faces int, ``visual.vertex_colors``
uint8 RGBA). The three formats store vertex colours differently: ``.ply`` as red/green/blue/alpha
vertex properties, ``.obj`` as the non-standard but widely read ``v x y z r g b`` extension, and
``.glb`` as the glTF ``COLOR_0`` attribute; trimesh reads each back into ``vertex_colors``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon.errors import OutputExistsError, ReconError

MESH_FORMATS = ("ply", "obj", "glb")
READABLE_SUFFIXES = (".ply", ".obj", ".glb", ".gltf", ".off", ".stl")


def make_mesh(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray | None = None):
    """A ``trimesh.Trimesh`` from arrays, kept exactly as given (no vertex merging).

    ``colors`` are per-vertex RGB(A), floats in [0, 1] or uint8.
    """
    import trimesh

    mesh = trimesh.Trimesh(np.asarray(vertices, np.float64), np.asarray(faces, np.int64),
                           process=False)
    if colors is not None:
        mesh.visual.vertex_colors = _to_rgba8(colors)
    return mesh


def without_small_pieces(mesh, min_fraction: float):
    """``mesh`` without its connected pieces of fewer than ``min_fraction`` of its faces (the
    largest always stays)."""
    import trimesh

    if min_fraction <= 0 or len(mesh.faces) == 0:
        return mesh
    pieces = mesh.split(only_watertight=False)
    if len(pieces) < 2:
        return mesh
    largest = max(len(p.faces) for p in pieces)
    kept = [p for p in pieces
            if len(p.faces) >= min_fraction * len(mesh.faces) or len(p.faces) == largest]
    return trimesh.util.concatenate(kept)


def save_mesh(mesh, path: Path, force: bool = False) -> Path:
    """Write ``mesh`` to ``path``; the suffix (.ply/.obj/.glb) picks the format."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in MESH_FORMATS:
        raise ReconError(f"Cannot write a mesh as {path.name!r}: the file name must end in "
                         f"{', '.join('.' + f for f in MESH_FORMATS)}.")
    if path.exists() and not force:
        raise OutputExistsError(f"{path} already exists. Pass --force to overwrite it, or choose "
                                "another --out.")
    if len(mesh.faces) == 0:
        raise ReconError(f"The mesh for {path} has no triangles, so there is nothing to write. "
                         "The extraction found no surface: check that the run is fitted "
                         "(recon eval RUN) and try the other --method.")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "obj":
        # trimesh writes vertex colours into `v` lines only when asked; no normals keeps the
        # file small and every reader recomputes them from the faces.
        data = mesh.export(file_type="obj", include_color=True, include_normals=False,
                           include_texture=False)
        path.write_text(data)
    else:
        mesh.export(str(path), file_type=fmt)
    return path


def load_mesh(path: Path):
    """A ``trimesh.Trimesh`` from a mesh file (a glTF scene is merged into one mesh)."""
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise ReconError(f"Mesh file {path} does not exist. Check the path.")
    if path.suffix.lower() not in READABLE_SUFFIXES:
        raise ReconError(f"Cannot read {path.name}: recon reads meshes ending in "
                         f"{', '.join(READABLE_SUFFIXES)}.")
    try:
        loaded = trimesh.load(str(path), process=False)
    except Exception as exc:  # trimesh raises many types for malformed files
        raise ReconError(f"Cannot read a mesh from {path}: {exc}") from exc
    if isinstance(loaded, trimesh.Scene):
        loaded = loaded.to_mesh() if loaded.geometry else None
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise ReconError(f"{path} holds no triangles (a point cloud or an empty file); "
                         "give a triangle mesh.")
    return loaded


def vertex_colors(mesh) -> np.ndarray | None:
    """uint8 [V, 4] per-vertex colours of ``mesh``, or None when it has none."""
    if mesh.visual.kind != "vertex":
        return None
    return np.asarray(mesh.visual.vertex_colors, np.uint8)


def _to_rgba8(colors: np.ndarray) -> np.ndarray:
    colors = np.asarray(colors)
    if colors.dtype != np.uint8:
        colors = np.clip(np.rint(colors * 255.0), 0, 255).astype(np.uint8)
    if colors.shape[1] == 3:
        colors = np.concatenate([colors, np.full((len(colors), 1), 255, np.uint8)], 1)
    return colors


__all__ = ["MESH_FORMATS", "load_mesh", "make_mesh", "save_mesh", "vertex_colors",
           "without_small_pieces"]
