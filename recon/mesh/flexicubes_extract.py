"""``recon extract-mesh RUN --method flexicubes``: a FlexiCubes mesh fitted to what a run renders.

The run's training views (colour, opacity, depth; :func:`recon.mesh.views.render_views`) become a
small nerfstudio dataset in ``RUN/flexicubes/data``:

* ``images/frame_NNNNN.png``: RGBA, the rendered colour with the rendered opacity as alpha (the
  FlexiCubes fit's mask target);
* ``depth/frame_NNNNN.npy``: float32 camera-z depth, 0 where the opacity is below
  ``--view.alpha-min`` (unknown: no depth loss there);
* ``transforms.json``: the cameras as they are, in the run's normalised frame, every frame in
  ``train_filenames`` (no test split: every view trains).

``recon fit --model flexicubes`` then fits an SDF grid to it in ``RUN/flexicubes/fit`` (an
ordinary run: ``recon view RUN/flexicubes/fit`` shows it). Both folders are scratch space owned by
the extraction and replaced each time. Unless ``--flexicubes.init sphere``, the fit starts from
the views' space carving (:func:`carved_sdf`) instead of the model's sphere: a short fit from a
sphere neither opens holes nor reaches thin parts, the carving already has the views' topology.

Frames: the fit normalises its dataset again (the training cameras are a subset of the run's, so
this is a similarity near, but not at, the identity); the final mesh is mapped back through its
inverse into the run's frame, where :func:`recon.mesh.extract.extract_run_mesh` maps it to the
input's frame like the other methods' meshes. The model reads its SDF as positive on the grid's
boundary, so a surface that closes inside the box is a closed (watertight) mesh, and one that
leaves the box is capped at it.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recon.mesh.options import FlexiCubesExtractOptions
from recon.mesh.views import View

WORK_DIR = "flexicubes"
"""The extraction's scratch folder inside the run: ``data/`` (the rendered views) and ``fit/``."""
CARVE_CELLS = 3.0
"""The carved initial SDF is truncated at this many grid cells."""


def fit_views(views: Sequence[View], work_dir: Path, options: FlexiCubesExtractOptions,
              alpha_min: float = 0.5, backend: str = "auto", seed: int = 0, quiet: bool = False):
    """The FlexiCubes mesh (``trimesh.Trimesh``, DC vertex colours) fitted to ``views``, in the
    frame of their cameras; pixels below ``alpha_min`` are background (as in
    :class:`recon.mesh.options.ViewOptions`). ``work_dir`` is replaced by ``data/`` and ``fit/``."""
    from recon.mesh.io import make_mesh, vertex_colors
    from recon.train.trainer import Trainer

    work_dir = Path(work_dir)
    if work_dir.exists():
        shutil.rmtree(work_dir)
    data = write_views(views, work_dir / "data")
    trainer = Trainer.open(fit_config(data, work_dir / "fit", options, backend, seed, quiet))
    if options.init == "carve":
        start_from_carved(trainer, alpha_min)
    trainer.train()
    mesh = trainer.model.browser_view(trainer.params)
    to_views = trainer.dataset.normalization.inverse()
    return make_mesh(to_views.apply(np.asarray(mesh.vertices)), np.asarray(mesh.faces),
                     vertex_colors(mesh))


def write_views(views: Sequence[View], folder: Path) -> Path:
    """Write ``views`` as a nerfstudio dataset in ``folder`` (see the module docstring)."""
    from PIL import Image

    from recon.data.transforms import write_transforms

    (folder / "images").mkdir(parents=True)
    (folder / "depth").mkdir()
    images, frames = [], []
    for i, view in enumerate(views):
        image, depth = f"images/frame_{i:05d}.png", f"depth/frame_{i:05d}.npy"
        rgba = np.concatenate([view.rgb, view.alpha[..., None]], axis=-1)
        Image.fromarray(np.round(np.clip(rgba, 0.0, 1.0) * 255).astype(np.uint8), "RGBA") \
            .save(folder / image)
        np.save(folder / depth, view.depth.astype(np.float32))
        images.append(image)
        frames.append({"depth_file_path": depth})
    write_transforms(folder / "transforms.json", [v.camera for v in views], images,
                     split={"train": images}, frame_extra=frames)
    return folder


def fit_config(data: Path, out: Path, options: FlexiCubesExtractOptions, backend: str,
               seed: int, quiet: bool):
    """The ``recon fit --model flexicubes`` settings of the extraction: the grid and the depth
    weight from ``options``, the model's other loss weights and learning rates, DC colour only
    (the mesh keeps one colour per vertex), one checkpoint at the end."""
    from recon.models.options import FlexiCubesOptions
    from recon.strategies.grid_schedule import GridSchedule
    from recon.train.config import DataOptions, FitConfig

    return FitConfig(
        data=Path(data), out=Path(out), model="flexicubes", strategy="default",
        steps=options.steps, seed=seed, backend=backend, max_sh_degree=0,
        flexicubes=FlexiCubesOptions(resolution=options.resolution, extent=options.extent,
                                     depth_weight=options.depth_weight,
                                     min_component=options.min_component,
                                     empty_weight=options.empty_weight,
                                     schedule=GridSchedule(upsample_at=tuple(options.upsample_at))),
        data_options=DataOptions(max_size=options.max_size),
        checkpoint_every=options.steps, keep_checkpoints=1, force=True, quiet=quiet)


def start_from_carved(trainer, alpha_min: float) -> None:
    """Replace the initial sphere of a fresh FlexiCubes ``trainer`` by the carved SDF of its
    training views (:func:`carved_sdf`), in the model's units (the box's half width), positive
    on the grid's boundary."""
    import torch

    from recon.models.flexicubes import closed_boundary

    dataset, params = trainer.dataset, trainer.params
    grid = trainer.model.grid(params)
    half = 0.5 * min(hi - lo for lo, hi in zip(grid.lower, grid.upper))
    indices = dataset.indices("train")
    sdf = carved_sdf(grid.vertices(dtype=torch.float64).numpy(),
                     [dataset.cameras[i] for i in indices],
                     [dataset.image(i)[..., 3] / 255.0 for i in indices],
                     [dataset.depth(i) for i in indices], alpha_min, CARVE_CELLS * max(grid.cell))
    with torch.no_grad():
        params["sdf"].copy_(closed_boundary(torch.from_numpy(sdf / half), grid.res))


def carved_sdf(points: np.ndarray, cameras, alphas, depths, alpha_min: float,
               truncation: float, votes: int = 3) -> np.ndarray:
    """A truncated signed distance (negative inside) at ``points`` [P, 3] from views' opacity
    and depth: space carving with depth, robust to a few wrong pixels.

    Each view that sees a point (in front of the camera, inside the image) tells how far in
    front of its surface the point is along the pixel's ray: ``depth - z``; ``truncation`` where
    the pixel is background (opacity below ``alpha_min``: empty all the way) and
    ``-truncation`` where it is foreground without depth. A positive value is a vote for free
    space; a negative one is behind the surface, which the view cannot tell from occluded. A
    point is outside when ``votes`` views vote free, or half of the views that see it (so one
    background speckle does not cut a tunnel through the object, as it would through a visual
    hull, and the box's corners that few views see still empty); points no view sees are
    outside. An outside point is as far out as its ``votes``-th freest view says (or its least
    free voter, with fewer votes), an inside one as the value nearest zero among the views that
    do not vote free; all clamped to ±``truncation``."""
    top = np.full((len(points), votes), -np.inf)  # each point's largest values, ascending
    inside = np.full(len(points), -truncation)    # the largest value <= 0
    free = np.zeros(len(points), np.int64)
    seen_by = np.zeros(len(points), np.int64)
    for camera, alpha, depth in zip(cameras, alphas, depths):
        uv, z = camera.project(points)
        col, row = np.floor(uv[:, 0]).astype(np.int64), np.floor(uv[:, 1]).astype(np.int64)
        seen = (z > 0) & (col >= 0) & (col < camera.width) & (row >= 0) & (row < camera.height)
        rows, cols = row[seen], col[seen]
        surface = depth[rows, cols] if depth is not None else np.zeros(len(rows))
        value = np.clip(np.where(alpha[rows, cols] < alpha_min, truncation,
                                 np.where(surface > 0, surface - z[seen], -truncation)),
                        -truncation, truncation)
        top[seen] = np.sort(np.concatenate([top[seen], value[:, None]], axis=1), axis=1)[:, 1:]
        inside[seen] = np.maximum(inside[seen], np.where(value > 0, -truncation, value))
        free[seen] += value > 0
        seen_by[seen] += 1
    outside = free >= np.minimum(votes, (seen_by + 1) // 2)
    rank = np.clip(np.minimum(votes, free), 1, votes)  # the rank-th largest value
    freest = np.take_along_axis(top, (votes - rank)[:, None], axis=1)[:, 0]
    sdf = np.where(seen_by == 0, truncation, np.where(outside, freest, inside))
    return sdf.astype(np.float32)


__all__ = ["CARVE_CELLS", "WORK_DIR", "carved_sdf", "fit_config", "fit_views", "start_from_carved",
           "write_views"]
