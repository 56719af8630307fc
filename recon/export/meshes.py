"""Mesh exports of a run: the mesh ``recon extract-mesh`` wrote, converted to .ply/.obj/.glb.

``recon export RUN --format F`` covers the model's own files and meshes in one place. What it
exports is chosen by ``--what``:

* ``auto`` (default): the formats the model exports itself (``Model.export_formats``: ply and
  splat for Gaussians, ply/glb/obj for convexes) export the model, the others the mesh;
* ``mesh``: the extracted mesh in any of ``ply``/``obj``/``glb``;
* ``splats``: the model's own file (splats, convexes, ...).

A mesh export converts ``RUN/export/mesh_<method>.ply`` (already in the input's world frame) and
never extracts: extraction takes minutes and has its own settings, so it stays the job of
``recon extract-mesh``. ``--method`` picks which extraction when there are several; without
it the newest one is used.
"""

from __future__ import annotations

from pathlib import Path

from recon.errors import OutputExistsError, ReconError
from recon.mesh.extract import METHODS, default_mesh_path
from recon.mesh.io import MESH_FORMATS

WHAT = ("auto", "splats", "mesh")


def wants_mesh(format: str, what: str, model) -> bool:
    """Whether ``recon export --format format --what what`` exports the mesh (else the model,
    a ``recon.models.base.Model`` class); a clear error for combinations that name no file
    type."""
    own = model.export_formats
    if what not in WHAT:
        raise ReconError(f"Unknown --what {what!r}; choose one of {', '.join(WHAT)}.")
    known = sorted(set(own) | set(MESH_FORMATS))
    if format not in known:
        raise ReconError(f"Unknown export format {format!r}; choose one of {', '.join(known)}.")
    if what == "splats" and format not in own:
        raise ReconError(f"{model.noun.capitalize()} export as {' or '.join(own)}, not {format}; "
                         f"for a .{format} mesh use --what mesh.")
    if what == "mesh" and format not in MESH_FORMATS:
        raise ReconError(f"Meshes export as {', '.join(MESH_FORMATS)}, not {format}.")
    return what == "mesh" or (what == "auto" and format not in own)


def export_mesh(run_dir: Path, format: str = "glb", out: Path | None = None,
                method: str | None = None, force: bool = False) -> Path:
    """Write the run's extracted mesh (``method``, else the newest) as ``format`` to ``out``
    (default ``RUN/export/mesh_<method>.<format>``); refuses to overwrite unless ``force``."""
    from recon.mesh.io import load_mesh, save_mesh

    if format not in MESH_FORMATS:
        raise ReconError(f"Meshes export as {', '.join(MESH_FORMATS)}, not {format}.")
    source = _extracted_mesh(Path(run_dir), method)
    path = Path(out) if out is not None else source.with_suffix(f".{format}")
    if path.resolve() == source.resolve():
        return source  # the extraction already wrote exactly this file
    if path.exists() and not force:
        raise OutputExistsError(f"{path} already exists. Pass --force to overwrite it, or choose "
                                "another --out.")
    if path.suffix.lower() != f".{format}":
        raise ReconError(f"--out {path} does not end in .{format}, the --format asked for.")
    return save_mesh(load_mesh(source), path, force=force)


def _extracted_mesh(run_dir: Path, method: str | None) -> Path:
    if method is not None and method not in METHODS:
        raise ReconError(f"Unknown mesh method {method!r}; choose one of {', '.join(METHODS)}.")
    if not run_dir.is_dir():
        raise ReconError(f"Run directory {run_dir} does not exist. Give a folder written by "
                         "`recon fit`.")
    wanted = [method] if method is not None else list(METHODS)
    found = [p for p in (default_mesh_path(run_dir, m) for m in wanted) if p.is_file()]
    if not found:
        hint = method or "sugar"
        raise ReconError(f"{run_dir} has no extracted mesh"
                         f"{f' for --method {method}' if method else ''}. Extract one first: "
                         f"recon extract-mesh {run_dir} --method {hint}")
    return max(found, key=lambda p: p.stat().st_mtime)


__all__ = ["WHAT", "export_mesh", "wants_mesh"]
