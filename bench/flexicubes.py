"""Benchmark: FlexiCubes against marching cubes and Dual Marching Cubes on the same fitted SDF.

For each shape — the built-in ``object`` scene and meshes from ../shared/data/meshes rendered with
``recon scene --mesh`` at 128² (default views) — it fits FlexiCubes once from the images, masks
and depth maps (FIT_ARGS: ``--resolution``/2 for the first half of the steps, then
``--resolution``), then extracts three meshes from that one fit, all on the final grid:

* ``flexicubes``: the model's own mesh (fitted deformation and α/β/γ weights, the inference
  triangulation), as ``recon export`` writes it;
* ``mc``: scikit-image's marching cubes (``skimage.measure.marching_cubes``, Lewiner et al.,
  default settings) of the same SDF values on the undeformed grid, no weights;
* ``dmc``: plain Dual Marching Cubes (``FlexiCubesGrid.extract`` without deformation or
  weights), the ablation: what the fitted deformation and weights add.

All three read the SDF the model extracts from (``closed_boundary``: positive on the box's
boundary, so every surface is closed), and all are mapped to the input frame exactly as
``FlexiCubesModel.export`` does (grid indices -> the grid box -> the inverse of the dataset
normalisation) before they are scored against the scene's ``mesh.ply``. Per mesh: Chamfer,
normal consistency and F-score (``recon.mesh.metrics.compare_mesh_files``: fractions of the GT
bounding-box diagonal, F-score at 1 %), edge Chamfer (below), the share of triangles whose
smallest angle is under 10° (slivers), vertex/face/component counts, watertightness and the
extraction seconds; the fit seconds once per shape (null with --reuse). One JSON line per
(shape, method), then one summary line per shape with the ratios flexicubes / mc (and
flexicubes / dmc) of Chamfer, edge Chamfer and sliver %.

Each of the three drops its pieces under ``--flexicubes.min-component`` of its faces (1 %), as
``recon export`` does: the specks of a cell or two that the views leave in empty space.

Edge Chamfer (after NMC/NDC's ECD, written from its description): EDGE_SAMPLES points are
sampled uniformly by area on each mesh, each with its face normal; a point is sharp when the
largest unsigned angle between its normal and the normals of its EDGE_NEIGHBOURS nearest samples
exceeds EDGE_ANGLE (0.2 rad, 11.5°). The edge Chamfer is the mean of both directions'
mean nearest-neighbour distance between the two sharp subsets, as a fraction of the GT diagonal
(null when either subset is empty). A faceted extraction makes sharp points of its own, away from
the GT's edges: the metric counts those as errors too, as the original does. Its floor is the
width of the sharp band: a unit cube against itself scores 0.24 % (5 % of its samples are
sharp). The GT meshes' own facets count where they turn by more than 0.2 rad (about 30 % of
spot's samples), so on spot and bunny edge Chamfer mostly measures faceting; on the CAD shapes it
measures the edges.

    python bench/flexicubes.py [--shapes object,spot,bunny,fandisk,featuretype,box]
                               [--steps 1000] [--resolution 64] [--work DIR] [--reuse]

Needs scikit-image: ``make bench`` installs it (the ``bench`` extra), or
``.venv/bin/python -m pip install -c constraints.txt -e '.[bench]'``.

CPU cost: one fit per shape, a few minutes each at 1000 steps and 32³ -> 64³ on two cores
(the 64³ half costs most), plus a few seconds of extraction and scoring per mesh.

Shapes and licences: ``object`` is recon's procedural scene; spot (spot/spot_triangulated.obj)
is Keenan Crane's, public domain; bunny, fandisk, featuretype and box are trimesh's test models
(trimesh_models/, MIT: see LICENSE_trimesh.md there). fandisk, featuretype and box are CAD
shapes with sharp edges, where edge Chamfer matters.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
# Shared with the mesh benchmark (this folder is on sys.path when a script here runs): JSON
# lines, recon commands, scene rendering and the shared data folder.
from meshes import MESHES, emit, make_scene, run
SHAPE_MESHES = {
    "spot": MESHES / "spot" / "spot_triangulated.obj",
    "bunny": MESHES / "trimesh_models" / "bunny.ply",
    "fandisk": MESHES / "trimesh_models" / "fandisk.obj",
    "featuretype": MESHES / "trimesh_models" / "featuretype.STL",
    "box": MESHES / "trimesh_models" / "box.STL",
}
SHAPES = ("object", *SHAPE_MESHES)
METHODS = ("flexicubes", "mc", "dmc")
# The flexicubes recipe of bench/meshes.py (half the resolution for the first half of the run:
# a fine grid straight from the sphere gets too few pixels per cell at 128²).
FIT_ARGS = ("--preset fast --model flexicubes --strategy default "
            "--flexicubes.schedule.upsample-at 0.5")
SCENE_RESOLUTION = 128
EDGE_SAMPLES = 100_000
EDGE_NEIGHBOURS = 10
EDGE_ANGLE = 0.2
"""Radians: a sample is on an edge when a neighbour's normal is turned by more than this."""
SLIVER_ANGLE = 10.0
"""Degrees: a triangle whose smallest angle is below this is a sliver."""


def require_skimage():
    """``skimage.measure.marching_cubes``, or exit saying how to install it."""
    try:
        from skimage.measure import marching_cubes
    except ImportError:
        raise SystemExit("bench/flexicubes.py needs scikit-image (the `bench` extra). Run "
                         "`make bench`, or: .venv/bin/python -m pip install -c constraints.txt "
                         "-e '.[bench]'") from None
    return marching_cubes


# -- the three extractions (each returns vertices in the model frame, faces) -------------------

def extract_flexicubes(model, params) -> tuple[np.ndarray, np.ndarray]:
    """The model's own final mesh (deformation, α/β/γ, inference triangulation)."""
    import torch

    with torch.no_grad():
        vertices, faces, _ = model.mesh(params, training=False)
    return vertices.double().numpy(), faces.numpy()


def extract_dmc(model, params) -> tuple[np.ndarray, np.ndarray]:
    """Dual Marching Cubes of the same SDF: the undeformed grid, neutral weights."""
    import torch

    from recon.models.flexicubes import closed_boundary

    grid = model.grid(params)
    with torch.no_grad():
        vertices, faces, _ = grid.extract(closed_boundary(params["sdf"], grid.res),
                                          training=False)
    return vertices.double().numpy(), faces.numpy()


def extract_mc(model, params, marching_cubes) -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's marching cubes of the same SDF values, mapped from grid indices to the
    grid's box. The flat vertex order is x slowest (see recon.mesh.flexicubes), so the reshaped
    volume is indexed [x, y, z]; the default gradient direction winds the faces outward for a
    negative-inside SDF."""
    from recon.models.flexicubes import closed_boundary

    grid = model.grid(params)
    side = grid.res + 1
    volume = closed_boundary(params["sdf"], grid.res).detach().double().numpy()
    vertices, faces, _, _ = marching_cubes(volume.reshape(side, side, side), level=0.0)
    return np.asarray(grid.lower) + vertices * np.asarray(grid.cell), faces.astype(np.int64)


# -- metrics of our own -------------------------------------------------------------------------

def sliver_percent(vertices: np.ndarray, faces: np.ndarray,
                   angle_deg: float = SLIVER_ANGLE) -> float:
    """% of triangles whose smallest interior angle is below ``angle_deg`` (degenerate
    triangles, with a zero angle, count as slivers)."""
    if len(faces) == 0:
        return 0.0
    corners = vertices[faces]                                         # [F, 3, 3]
    smallest = np.full(len(faces), np.inf)
    for i in range(3):
        a = corners[:, (i + 1) % 3] - corners[:, i]
        b = corners[:, (i + 2) % 3] - corners[:, i]
        angle = np.arctan2(np.linalg.norm(np.cross(a, b), axis=1), (a * b).sum(1))
        smallest = np.minimum(smallest, angle)
    return float(100.0 * (smallest < np.radians(angle_deg)).mean())


def sharp_samples(mesh, samples: int = EDGE_SAMPLES, neighbours: int = EDGE_NEIGHBOURS,
                  angle: float = EDGE_ANGLE, seed: int = 0) -> np.ndarray:
    """[S, 3] the area-uniform surface samples of ``mesh`` whose ``neighbours`` nearest samples
    include a normal turned by more than ``angle`` radians (unsigned) from their own."""
    import trimesh
    from scipy.spatial import cKDTree

    points, face = trimesh.sample.sample_surface(mesh, samples, seed=seed)
    points = np.asarray(points, np.float64)
    normals = np.asarray(mesh.face_normals, np.float64)[face]
    _, near = cKDTree(points).query(points, k=neighbours + 1)        # the point itself first
    cosine = np.abs((normals[near[:, 1:]] * normals[:, None]).sum(-1)).min(1)
    return points[cosine < np.cos(angle)]


def edge_chamfer(pred, gt, diagonal: float, **kw) -> dict:
    """Chamfer between the sharp samples of ``pred`` and ``gt`` (trimeshes), as a fraction of
    ``diagonal``, with the sharp counts; the Chamfer is None when either has none."""
    from scipy.spatial import cKDTree

    p, g = sharp_samples(pred, **kw), sharp_samples(gt, seed=1, **kw)
    out = {"edge_chamfer": None, "edge_points": len(p), "gt_edge_points": len(g)}
    if len(p) and len(g):
        d_pg, _ = cKDTree(g).query(p)
        d_gp, _ = cKDTree(p).query(g)
        out["edge_chamfer"] = float(0.5 * (d_pg.mean() + d_gp.mean()) / diagonal)
    return out


def ratio(a, b):
    return None if a is None or not b else a / b


# -- main ---------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--resolution", type=int, default=64,
                        help="final grid (cubes per axis): the fit starts at half of it and "
                             "doubles at half of the steps; mc and dmc run on it too")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for datasets, runs and meshes (default: a temporary one)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep datasets and finished fits already in --work")
    args = parser.parse_args()
    shapes = args.shapes.split(",")
    if unknown := [s for s in shapes if s not in SHAPES]:
        raise SystemExit(f"unknown shape(s) {unknown}; choose from {', '.join(SHAPES)}")
    if args.resolution < 4 or args.resolution % 2:
        raise SystemExit(f"--resolution must be even and at least 4, got {args.resolution}")
    marching_cubes = require_skimage()

    from recon.mesh.io import load_mesh, make_mesh, save_mesh, without_small_pieces
    from recon.mesh.metrics import compare_mesh_files
    from recon.mesh.soup import topology
    from recon.run import load_run

    work = args.work or Path(tempfile.mkdtemp(prefix="recon-bench-flexicubes-"))
    print(f"# work folder: {work}", file=sys.stderr)
    extractors = {"flexicubes": extract_flexicubes, "dmc": extract_dmc,
                  "mc": lambda m, p: extract_mc(m, p, marching_cubes)}
    for shape in shapes:
        data = work / shape / "data"
        if not (args.reuse and (data / "mesh.ply").is_file()):
            make_scene(shape, data, SCENE_RESOLUTION, SHAPE_MESHES)
        run_dir = work / shape / f"run_{args.resolution}"
        fit_s = None
        if not (args.reuse and (run_dir / "checkpoints" / f"step_{args.steps:06d}.pt").is_file()):
            fit_s = round(run(["fit", str(data), "--steps", str(args.steps), "--out",
                               str(run_dir), "--quiet", "--force", *FIT_ARGS.split(),
                               "--flexicubes.resolution", str(args.resolution // 2)]), 1)
        fitted = load_run(run_dir, args.steps)
        model, params = fitted.model, fitted.params
        if model.grid(params).res != args.resolution:
            raise SystemExit(f"{run_dir} holds a {model.grid(params).res}³ grid, not "
                             f"{args.resolution}³; run without --reuse")
        to_input = fitted.dataset.normalization.inverse()
        gt = load_mesh(data / "mesh.ply")
        rows = {}
        for method in METHODS:
            start = time.perf_counter()
            vertices, faces = extractors[method](model, params)
            extract_s = time.perf_counter() - start
            # The model's export drops the specks under --flexicubes.min-component; so do mc
            # and dmc, from the same SDF.
            mesh = without_small_pieces(make_mesh(to_input.apply(vertices), faces),
                                        model.options.min_component)
            path = save_mesh(mesh, work / shape / f"{method}_{args.resolution}.ply", force=True)
            m = compare_mesh_files(path, data / "mesh.ply")
            row = {"shape": shape, "method": method, "resolution": args.resolution,
                   **topology(mesh), "chamfer": m.chamfer,
                   **edge_chamfer(mesh, gt, m.diagonal),
                   "normal_consistency": m.normal_consistency, "fscore": m.fscore,
                   "fscore_threshold": m.threshold,
                   "sliver_percent": sliver_percent(np.asarray(mesh.vertices),
                                                    np.asarray(mesh.faces)),
                   "watertight": m.watertight, "extract_seconds": round(extract_s, 3),
                   "fit_seconds": fit_s, "steps": args.steps}
            rows[method] = row
            emit(row)
        summary = {"shape": shape, "resolution": args.resolution}
        for base in ("mc", "dmc"):
            for key, name in (("chamfer", "chamfer"), ("edge_chamfer", "edge_chamfer"),
                              ("sliver_percent", "sliver")):
                summary[f"{name}_ratio_flexicubes_vs_{base}"] = ratio(
                    rows["flexicubes"][key], rows[base][key])
        emit(summary)


if __name__ == "__main__":
    main()
