"""Exports of fitted runs, in the input's world frame: the model's own files (each model's
``export``: 3DGS ``.ply`` / ``.splat`` for Gaussians, ...) and the meshes ``recon extract-mesh``
wrote (:mod:`recon.export.meshes`)."""

from __future__ import annotations

from pathlib import Path

from recon.errors import OutputExistsError


def export_run(run_dir: Path, format: str = "ply", out: Path | None = None,
               step: int | None = None, force: bool = False, what: str = "auto",
               mesh_method: str | None = None) -> Path:
    """Export a run's checkpoint (the newest unless ``step``) as ``format`` to ``out`` (default
    ``RUN/export/<model>.<format>``; ``splats.<format>`` for Gaussians); refuses to overwrite
    unless ``force``. ``what`` picks the model or the extracted mesh (see ``wants_mesh``)."""
    from recon.export.meshes import export_mesh, wants_mesh
    from recon.models import model_class
    from recon.run import EXPORT_DIR, load_run

    model = model_class(_model_name(run_dir, step))
    if wants_mesh(format, what, model):
        return export_mesh(run_dir, format, out, method=mesh_method, force=force)
    default = Path(run_dir) / EXPORT_DIR / default_name(model, format)
    path = Path(out) if out is not None else default
    if path.exists() and not force:
        raise OutputExistsError(f"{path} already exists. Pass --force to overwrite it, or choose "
                                "another --out.")
    run = load_run(run_dir, step)
    return run.model.export(format, path, run.params, run.dataset.normalization, run.sh_degree)


def _model_name(run_dir: Path, step: int | None) -> str:
    """The run's model, read cheaply: from ``config.yaml`` (a mesh export needs no checkpoint,
    and a model export should not load a large one twice), else from the checkpoint; runs
    written before models existed, and folders with neither, are Gaussians."""
    import yaml

    from recon.run import CONFIG_FILE
    from recon.train.checkpoint import list_checkpoints, load_checkpoint

    config = Path(run_dir) / CONFIG_FILE
    if config.is_file():
        saved = yaml.safe_load(config.read_text()) or {}
        return str(saved.get("model", "gaussians"))
    if list_checkpoints(run_dir):
        return str(load_checkpoint(run_dir, step).get("model", "gaussians"))
    return "gaussians"


def default_name(model, format: str) -> str:
    """The file name of a model export in ``RUN/export/``."""
    # A FlexiCubes run's model is a mesh: named like the meshes `extract-mesh` writes there.
    stem = {"gaussians": "splats", "flexicubes": "mesh_flexicubes"}.get(model.name, model.name)
    return f"{stem}.{format}"


__all__ = ["default_name", "export_run"]
