"""Mesh files: vertex colours survive a trimesh round trip through .ply, .obj and .glb."""

import numpy as np
import pytest
import trimesh

from recon.errors import OutputExistsError, ReconError
from recon.mesh.io import load_mesh, make_mesh, save_mesh, vertex_colors


def _coloured_mesh():
    sphere = trimesh.creation.icosphere(subdivisions=2)
    rng = np.random.default_rng(0)
    colors = rng.integers(0, 256, size=(len(sphere.vertices), 3), dtype=np.uint8)
    return make_mesh(sphere.vertices, sphere.faces, colors), colors


@pytest.mark.parametrize("fmt", ["ply", "obj", "glb"])
def test_round_trip_keeps_geometry_and_vertex_colours(tmp_path, fmt):
    mesh, colors = _coloured_mesh()
    path = save_mesh(mesh, tmp_path / f"mesh.{fmt}")
    back = load_mesh(path)
    assert len(back.faces) == len(mesh.faces)
    # Formats may reorder vertices (glTF) but not move them: match by position.
    order = np.argsort(np.lexsort(np.round(back.vertices, 5).T))
    ref = np.argsort(np.lexsort(np.round(mesh.vertices, 5).T))
    assert np.allclose(back.vertices[order], mesh.vertices[ref], atol=1e-5)  # float32 files
    got = vertex_colors(back)
    assert got is not None
    # .obj stores colours as floats with a few decimals: allow one step of rounding.
    assert np.abs(got[order, :3].astype(int) - colors[ref].astype(int)).max() <= 1


def test_save_refuses_to_overwrite_without_force(tmp_path):
    mesh, _ = _coloured_mesh()
    path = save_mesh(mesh, tmp_path / "mesh.ply")
    with pytest.raises(OutputExistsError, match="--force"):
        save_mesh(mesh, path)
    save_mesh(mesh, path, force=True)


def test_unknown_suffix_and_missing_file_are_user_errors(tmp_path):
    mesh, _ = _coloured_mesh()
    with pytest.raises(ReconError, match=".ply, .obj, .glb"):
        save_mesh(mesh, tmp_path / "mesh.fbx")
    with pytest.raises(ReconError, match="does not exist"):
        load_mesh(tmp_path / "nope.ply")
