"""``recon extract-mesh RUN --method sugar|tsdf|flexicubes``: a fitted run's surface as a coloured
mesh.

Every method starts from what the run's model renders in its training views (colour, opacity,
depth); ``sugar`` and ``tsdf --tsdf.depth level`` also sample the model's density field
(``Model.density``), which only Gaussians have: for other models ``sugar`` stops with a clear
message and ``tsdf`` fuses the rendered depth. ``flexicubes`` fits a FlexiCubes SDF grid to the
rendered views (opacity as the mask, depth, colour; :mod:`recon.mesh.flexicubes_extract`), so
its mesh is closed. The run's model lives in recon's normalised frame; the views are rendered and
the mesh is extracted there, then mapped back to the input's world frame with the inverse of the
dataset's normalisation (a similarity, so the mesh keeps its shape and winding) before it is
written — the frame of the input cameras and of the ``mesh.ply`` that ``recon scene`` writes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon.cameras import Similarity
from recon.errors import OutputExistsError, ReconError
from recon.mesh.options import FlexiCubesExtractOptions, SugarOptions, TsdfOptions, ViewOptions

METHODS = ("sugar", "tsdf", "flexicubes")
RENDER_BACKENDS = ("auto", "cpu", "cuda", "torch")


def default_mesh_path(run_dir: Path, method: str) -> Path:
    """Where ``recon extract-mesh`` writes by default: ``RUN/export/mesh_<method>.ply``."""
    from recon.run import EXPORT_DIR

    return Path(run_dir) / EXPORT_DIR / f"mesh_{method}.ply"


def extract_run_mesh(run_dir: Path, method: str = "sugar", out: Path | None = None,
                     step: int | None = None, sugar: SugarOptions = SugarOptions(),
                     tsdf: TsdfOptions = TsdfOptions(), view: ViewOptions = ViewOptions(),
                     flexicubes: FlexiCubesExtractOptions = FlexiCubesExtractOptions(),
                     backend: str = "auto", seed: int = 0, force: bool = False,
                     quiet: bool = False) -> Path:
    """Extract the mesh of a run's checkpoint (the newest unless ``step``) and write it to ``out``
    (default :func:`default_mesh_path`; the suffix picks .ply/.obj/.glb). Returns the path.

    ``flexicubes`` works in ``RUN/flexicubes`` (replaced each time), see
    :mod:`recon.mesh.flexicubes_extract`."""
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
    for options in (sugar, tsdf, view, flexicubes):
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
    level = {"sugar": True, "tsdf": tsdf.depth == "level",
             "flexicubes": flexicubes.depth == "level"}
    density = model.density(params, sugar.neighbors) if level[method] else None
    if method == "sugar" and density is None:
        raise ReconError(f"--method sugar samples the density field of Gaussians, and this run "
                         f"fitted {model.noun}, which have none. Use --method tsdf (it fuses "
                         "the rendered depth).")
    cameras = [dataset.cameras[i] for i in (dataset.indices("train") or range(len(dataset)))]
    with _progress(quiet) as progress:
        views = render_views(model.primitives(params), model.colors(params, run.sh_degree),
                             cameras, run.sh_degree, backend, view.alpha_min, view.depth,
                             progress, **model.render_options())
    center, radius = surface_sphere(views, seed=seed)  # also: is anything rendered at all?
    if method == "flexicubes":  # outside the bar above: the fit shows its own
        from recon.mesh.flexicubes_extract import WORK_DIR, fit_views
        from recon.mesh.sugar import level_set_views

        if density is not None:  # every pixel of every view: the fit's views stay whole
            with _progress(quiet) as progress:
                views = level_set_views(density, views, radius, sugar, max_rays=10**12,
                                        progress=progress)
        mesh = fit_views(views, Path(run_dir) / WORK_DIR, flexicubes, view.alpha_min, backend,
                         seed, quiet)
    else:
        with _progress(quiet) as progress:
            mesh = _level_set_mesh(method, views, center, radius, density, sugar, tsdf, seed,
                                   progress)
    mesh = transform_mesh(mesh, dataset.normalization.inverse())
    return save_mesh(mesh, out, force=force)


def _level_set_mesh(method: str, views, center, radius: float, density, sugar: SugarOptions,
                    tsdf: TsdfOptions, seed: int, progress):
    """The ``sugar`` or ``tsdf`` mesh of the rendered ``views`` (normalised frame; ``center``,
    ``radius``: their surface sphere)."""
    if method == "sugar":
        from recon.mesh.sugar import extract_sugar

        return extract_sugar(density, views, radius, sugar, seed, progress)
    from recon.mesh.sugar import level_set_views
    from recon.mesh.tsdf import fuse_views

    if density is not None:
        views = level_set_views(density, views, radius, sugar, tsdf.rays, progress)
    return fuse_views(views, center, tsdf.margin * radius, tsdf.voxels, tsdf.truncation, progress)


def _progress(quiet: bool):
    """A rich progress display on stderr for the extraction's stages (disabled when quiet)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, \
        TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=Console(stderr=True), disable=quiet)


def transform_mesh(mesh, sim: Similarity):
    """A copy of ``mesh`` (``trimesh.Trimesh``) after the world is mapped by ``sim``
    (x' = s R x + t): vertices move, faces and vertex colours stay."""
    from recon.mesh.io import make_mesh, vertex_colors

    return make_mesh(sim.apply(np.asarray(mesh.vertices)), np.asarray(mesh.faces),
                     vertex_colors(mesh))


__all__ = ["METHODS", "default_mesh_path", "extract_run_mesh", "transform_mesh"]
