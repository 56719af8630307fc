"""Mesh extraction plumbing: the world-frame mapping, mesh exports and the CLI's errors."""

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from recon.cameras import Similarity
from recon.cli import main
from recon.errors import OutputExistsError, ReconError
from recon.export import export_run
from recon.export.meshes import export_mesh, wants_mesh
from recon.mesh.extract import default_mesh_path, extract_run_mesh, transform_mesh
from recon.mesh.io import load_mesh, make_mesh, save_mesh, vertex_colors
from recon.mesh.options import TsdfOptions
from recon.models.gaussians import GaussianModel


def _mesh():
    box = trimesh.creation.box(extents=(1.0, 2.0, 3.0))
    colors = np.random.default_rng(0).integers(0, 256, (len(box.vertices), 3), dtype=np.uint8)
    return make_mesh(box.vertices, box.faces, colors)


def test_similarity_moves_the_mesh_exactly():
    mesh = _mesh()
    sim = Similarity(2.5, Rotation.from_euler("xyz", [0.3, -1.1, 2.0]).as_matrix(),
                     np.array([1.0, -2.0, 0.5]))
    moved = transform_mesh(mesh, sim)
    assert np.allclose(moved.vertices, 2.5 * mesh.vertices @ sim.rotation.T + sim.translation,
                       atol=1e-12)
    assert np.array_equal(moved.faces, mesh.faces)
    assert np.array_equal(vertex_colors(moved), vertex_colors(mesh))
    # A similarity scales areas by s² and keeps the mesh closed and outward-facing.
    assert moved.area == pytest.approx(2.5**2 * mesh.area, rel=1e-12)
    assert moved.is_watertight and moved.volume > 0
    back = transform_mesh(moved, sim.inverse())
    assert np.allclose(back.vertices, mesh.vertices, atol=1e-12)


def test_export_converts_the_extracted_mesh(tmp_path):
    run = tmp_path / "run"
    save_mesh(_mesh(), default_mesh_path(run, "tsdf"))
    path = export_mesh(run, "glb")
    assert path == run / "export" / "mesh_tsdf.glb"
    assert len(load_mesh(path).faces) == 12
    with pytest.raises(OutputExistsError, match="--force"):
        export_mesh(run, "glb")
    # The mesh .ply is what extract-mesh wrote: exporting it again is a no-op.
    assert export_mesh(run, "ply") == default_mesh_path(run, "tsdf")
    # `recon export` dispatches mesh formats here (no checkpoint needed for a mesh).
    obj = export_run(run, "obj")
    assert obj == run / "export" / "mesh_tsdf.obj" and len(load_mesh(obj).faces) == 12


def test_export_without_an_extracted_mesh_says_what_to_run(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(ReconError, match="recon extract-mesh .* --method sugar"):
        export_mesh(tmp_path / "run", "obj")


def test_format_and_what_choose_splats_or_mesh():
    gaussians = GaussianModel
    assert not wants_mesh("ply", "auto", gaussians) and not wants_mesh("splat", "auto", gaussians)
    assert wants_mesh("glb", "auto", gaussians) and wants_mesh("obj", "auto", gaussians)
    assert wants_mesh("ply", "mesh", gaussians) and not wants_mesh("ply", "splats", gaussians)
    with pytest.raises(ReconError, match="--what mesh"):
        wants_mesh("glb", "splats", gaussians)
    with pytest.raises(ReconError, match="ply, obj, glb"):
        wants_mesh("splat", "mesh", gaussians)


def test_extract_refuses_bad_requests_before_any_work(tmp_path):
    with pytest.raises(ReconError, match="does not exist"):
        extract_run_mesh(tmp_path / "missing", "tsdf", quiet=True)
    with pytest.raises(ReconError, match="sugar, tsdf"):
        extract_run_mesh(tmp_path, "marching", quiet=True)
    with pytest.raises(ReconError, match=r"\.ply, \.obj, \.glb"):
        extract_run_mesh(tmp_path, "tsdf", out=tmp_path / "mesh.fbx", quiet=True)
    with pytest.raises(ReconError, match="tsdf.voxels"):
        extract_run_mesh(tmp_path, "tsdf", tsdf=TsdfOptions(voxels=2), quiet=True)
    existing = tmp_path / "mesh.ply"
    existing.write_text("old")
    with pytest.raises(OutputExistsError, match="--force"):
        extract_run_mesh(tmp_path, "tsdf", out=existing, quiet=True)
    assert existing.read_text() == "old"


@pytest.mark.parametrize("argv, message", [
    (["extract-mesh", "{tmp}/nope"], "does not exist"),
    (["eval-mesh", "{tmp}/a.ply", "{tmp}/b.ply"], "does not exist"),
    (["export", "{tmp}/run", "--format", "glb"], "recon extract-mesh"),
])
def test_cli_user_errors_exit_2_with_a_message(tmp_path, capsys, argv, message):
    (tmp_path / "run").mkdir()
    with pytest.raises(SystemExit) as exc:
        main([a.format(tmp=tmp_path) for a in argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_rejects_an_unknown_format(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["export", str(tmp_path), "--format", "fbx"])
    assert exc.value.code == 2
    assert "fbx" in capsys.readouterr().err


def test_eval_mesh_prints_json(tmp_path, capsys):
    import json

    a = save_mesh(_mesh(), tmp_path / "a.ply")
    main(["eval-mesh", str(a), str(a), "--json", "--samples", "5000"])
    result = json.loads(capsys.readouterr().out)
    assert result["chamfer"] < 1e-6 and result["fscore"] == 1.0 and result["watertight"]
