"""``recon extract-mesh --method flexicubes``: the carved start, the closed boundary, and end to end
on a real (short) fit: a closed mesh on the ground truth in the input frame."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from recon.cli import main
from recon.errors import ReconError
from recon.mesh.extract import default_mesh_path, extract_run_mesh
from recon.mesh.flexicubes_extract import WORK_DIR, carved_sdf
from recon.mesh.io import load_mesh
from recon.mesh.metrics import compare_mesh_files
from recon.mesh.options import FlexiCubesExtractOptions

_spec = importlib.util.spec_from_file_location("tsdf_tests",
                                               Path(__file__).with_name("test_tsdf.py"))
tsdf_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tsdf_tests)
RADIUS = tsdf_tests.RADIUS  # exact depth maps of a sphere of this radius at the origin


def _grid_points(n: int = 15, half: float = 0.7) -> np.ndarray:
    """A grid over the region every orbit view sees (half width 0.73 at the origin)."""
    g = np.linspace(-half, half, n)
    return np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)


def _carve(views, votes=3, truncation=0.15):
    return carved_sdf(_grid_points(), [v.camera for v in views], [v.alpha for v in views],
                      [v.depth for v in views], alpha_min=0.5, truncation=truncation, votes=votes)


def test_carving_exact_views_gives_the_sphere_and_ignores_a_few_wrong_pixels():
    views = tsdf_tests.orbit_views(n=24, size=48)
    points = _grid_points()
    true = np.linalg.norm(points, axis=1) - RADIUS
    sdf = _carve(views)
    clear = np.abs(true) > 0.05  # one grid step is 0.1; a pixel is ~0.02 at the sphere
    assert np.array_equal(sdf[clear] < 0, true[clear] < 0)
    assert sdf.max() == pytest.approx(0.15) and sdf.min() == pytest.approx(-0.15)
    # Two views that wrongly see background through the centre (a speckle of the run's render)
    # do not empty it with three votes; a visual hull (one vote) would.
    centre = np.argmin(np.linalg.norm(points, axis=1))
    for view in views[:2]:
        uv, _ = view.camera.project(np.zeros((1, 3)))
        c, r = np.floor(uv[0]).astype(int)
        view.alpha[r - 1:r + 2, c - 1:c + 2] = 0.0
        view.depth[r - 1:r + 2, c - 1:c + 2] = 0.0
    assert _carve(views)[centre] < 0
    assert _carve(views, votes=1)[centre] > 0


def test_bad_flexicubes_options_are_refused_before_any_work(tmp_path):
    for options, flag in [(FlexiCubesExtractOptions(steps=0), "flexicubes.steps"),
                          (FlexiCubesExtractOptions(resolution=2), "flexicubes.resolution"),
                          (FlexiCubesExtractOptions(upsample_at=(1.0,)), "flexicubes.upsample-at"),
                          (FlexiCubesExtractOptions(init="cube"), "flexicubes.init"),
                          (FlexiCubesExtractOptions(max_size=4), "flexicubes.max-size")]:
        with pytest.raises(ReconError, match=flag):
            extract_run_mesh(tmp_path, "flexicubes", flexicubes=options, quiet=True)


def test_cli_refuses_to_overwrite_a_flexicubes_mesh_without_force(tmp_path, capsys):
    run = tmp_path / "run"
    existing = default_mesh_path(run, "flexicubes")
    existing.parent.mkdir(parents=True)
    existing.write_text("an earlier mesh")
    with pytest.raises(SystemExit) as exc:
        main(["extract-mesh", str(run), "--method", "flexicubes", "--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "mesh_flexicubes.ply already exists" in err and "--force" in err
    assert existing.read_text() == "an earlier mesh"
    assert not (run / WORK_DIR).exists()  # refused before any work


@pytest.mark.slow
def test_flexicubes_mesh_is_closed_and_on_the_ground_truth_in_the_input_frame(fitted):
    run, gt = fitted / "run", fitted / "scene" / "mesh.ply"
    small = ["--flexicubes.resolution", "20", "--quiet", "--force"]
    main(["extract-mesh", str(run), "--method", "flexicubes", "--flexicubes.steps", "200", *small])
    path = default_mesh_path(run, "flexicubes")
    mesh = load_mesh(path)
    assert mesh.is_watertight and mesh.volume > 0
    # The torus's hole is open: its largest piece has Euler number 0 (a sphere's is 2).
    assert max(mesh.split(only_watertight=False), key=lambda p: p.area).euler_number == 0
    m = compare_mesh_files(path, gt, samples=20_000, threshold=0.05)
    # Measured: Chamfer 1.6% of the diagonal, F-score 0.98 (tsdf on this run: 2.0%, not closed);
    # a mesh left in recon's normalised frame (scale ~0.3) would be off by ~25%.
    assert m.chamfer < 0.025
    assert m.fscore > 0.9
    # The model's own start, a sphere, scores 6.2%; the carved start before fitting 5.0%.
    sphere = fitted / "sphere.ply"
    main(["extract-mesh", str(run), "--method", "flexicubes", "--flexicubes.steps", "1",
          "--flexicubes.init", "sphere", "--out", str(sphere), *small])
    assert m.chamfer < 0.5 * compare_mesh_files(sphere, gt, samples=20_000, threshold=0.05).chamfer
    # The work folder: every rendered training view trains, with depth only where it is opaque.
    data = run / WORK_DIR / "data"
    meta = json.loads((data / "transforms.json").read_text())
    assert len(meta["frames"]) == 28 and meta["train_filenames"] == [
        f["file_path"] for f in meta["frames"]]
    depth = np.load(data / meta["frames"][0]["depth_file_path"])
    from PIL import Image

    alpha = np.asarray(Image.open(data / meta["frames"][0]["file_path"]))[..., 3] / 255.0
    assert (depth[alpha < 0.49] == 0).all() and (depth[alpha > 0.51] > 0).mean() > 0.99


def test_small_pieces_are_dropped_and_the_largest_always_stays():
    """A 1280-face sphere with a 20-face floater: at 5 % the floater goes (the result is the
    sphere alone, closed); at 0 both stay; a threshold above every piece keeps the largest."""
    import trimesh

    from recon.mesh.io import without_small_pieces

    big = trimesh.creation.icosphere(subdivisions=3)
    floater = trimesh.creation.icosphere(subdivisions=0, radius=0.1)
    floater.apply_translation([3.0, 0.0, 0.0])
    both = trimesh.util.concatenate([big, floater])
    kept = without_small_pieces(both, 0.05)
    assert len(kept.faces) == 1280 and kept.is_watertight
    assert len(without_small_pieces(both, 0.0).faces) == 1300
    assert len(without_small_pieces(both, 0.99).faces) == 1280
