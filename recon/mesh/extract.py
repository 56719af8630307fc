"""``recon extract-mesh RUN --method sugar|tsdf``: a fitted run's surface as a coloured mesh.

Both methods start from what the run's model renders (colour, opacity, depth); ``sugar`` and
``tsdf --tsdf.depth level`` also sample the model's density field (``Model.density``), which only
Gaussians have: for other models ``sugar`` stops with a clear message and ``tsdf`` fuses the
rendered depth. The run's model lives in recon's normalised frame; the views are rendered and
the mesh is extracted there, then mapped back to the input's world frame with the inverse of the
dataset's normalisation (a similarity, so the mesh keeps its shape and winding) before it is
written —
the frame of the input cameras and of the ``mesh.ply`` that ``recon scene`` writes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon.cameras import Similarity
from recon.errors import OutputExistsError, ReconError
from recon.mesh.options import SugarOptions, TsdfOptions, ViewOptions

METHODS = ("sugar", "tsdf")
RENDER_BACKENDS = ("auto", "cpu", "cuda", "torch")


def default_mesh_path(run_dir: Path, method: str) -> Path:
    """Where ``recon extract-mesh`` writes by default: ``RUN/export/mesh_<method>.ply``."""
    from recon.run import EXPORT_DIR

    return Path(run_dir) / EXPORT_DIR / f"mesh_{method}.ply"


def extract_run_mesh(run_dir: Path, method: str = "sugar", out: Path | None = None,
                     step: int | None = None, sugar: SugarOptions = SugarOptions(),
                     tsdf: TsdfOptions = TsdfOptions(), view: ViewOptions = ViewOptions(),
                     backend: str = "auto", seed: int = 0, force: bool = False,
                     quiet: bool = False) -> Path:
    """Extract the mesh of a run's checkpoint (the newest unless ``step``) and write it to ``out``
    (default :func:`default_mesh_path`; the suffix picks .ply/.obj/.glb). Returns the path."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, \
        TimeElapsedColumn

    from recon.mesh.io import MESH_FORMATS, save_mesh
    from recon.mesh.views import render_views, surface_sphere
    from recon.run import load_run
    from recon.train.backends import training_device

    if method not in METHODS:
        raise ReconError(f"Unknown mesh extraction method {method!r}; choose one of "
                         f"{', '.join(METHODS)}.")
    if backend not in RENDER_BACKENDS:
        raise ReconError(f"Unknown render backend {backend!r} for mesh extraction; choose one of "
                         f"{', '.join(RENDER_BACKENDS)}.")
    for options in (sugar, tsdf, view):
        options.validate()
    out = Path(out) if out is not None else default_mesh_path(run_dir, method)
    if out.suffix.lower().lstrip(".") not in MESH_FORMATS:
        raise ReconError(f"Cannot write a mesh as {out.name!r}: --out must end in "
                         f"{', '.join('.' + f for f in MESH_FORMATS)}.")
    if out.exists() and not force:  # before minutes of work, not after
        raise OutputExistsError(f"{out} already exists. Pass --force to overwrite it, or choose "
                                "another --out.")
    if not Path(run_dir).is_dir():
        raise ReconError(f"Run directory {run_dir} does not exist. Give a folder written by "
                         "`recon fit`.")
    run = load_run(run_dir, step)
    model, dataset = run.model, run.dataset
    device = training_device(backend)
    params = run.params_on(device)
    density = (model.density(params, sugar.neighbors)
               if method == "sugar" or tsdf.depth == "level" else None)
    if method == "sugar" and density is None:
        raise ReconError(f"--method sugar samples the density field of Gaussians, and this run "
                         f"fitted {model.noun}, which have none. Use --method tsdf (it fuses "
                         "the rendered depth).")
    cameras = [dataset.cameras[i] for i in (dataset.indices("train") or range(len(dataset)))]
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=Console(stderr=True), disable=quiet) as progress:
        views = render_views(model.primitives(params), model.colors(params, run.sh_degree),
                             cameras, run.sh_degree, backend, view.alpha_min, view.depth,
                             progress, **model.render_options())
        center, radius = surface_sphere(views, seed=seed)
        if method == "sugar":
            from recon.mesh.sugar import extract_sugar

            mesh = extract_sugar(density, views, radius, sugar, seed, progress)
        else:
            from recon.mesh.sugar import level_set_views
            from recon.mesh.tsdf import fuse_views

            if density is not None:
                views = level_set_views(density, views, radius, sugar, tsdf.rays, progress)
            mesh = fuse_views(views, center, tsdf.margin * radius, tsdf.voxels, tsdf.truncation,
                              progress)
    mesh = transform_mesh(mesh, dataset.normalization.inverse())
    return save_mesh(mesh, out, force=force)


def transform_mesh(mesh, sim: Similarity):
    """A copy of ``mesh`` (``trimesh.Trimesh``) after the world is mapped by ``sim``
    (x' = s R x + t): vertices move, faces and vertex colours stay."""
    from recon.mesh.io import make_mesh, vertex_colors

    return make_mesh(sim.apply(np.asarray(mesh.vertices)), np.asarray(mesh.faces),
                     vertex_colors(mesh))


__all__ = ["METHODS", "default_mesh_path", "extract_run_mesh", "transform_mesh"]
