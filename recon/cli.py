"""The `recon` command line: tyro subcommands over config dataclasses.

This module stays thin and cheap to import: each command parses its config and calls a library
function, importing the heavy modules (torch, open3d, pycolmap) only when it runs, so
`recon --help` answers at once. Field docstrings become the help text.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import tyro

from recon.errors import ReconError
from recon.mesh.options import FlexiCubesExtractOptions, SugarOptions, TsdfOptions, ViewOptions
from recon.train.config import DataOptions


@dataclass(frozen=True)
class Scene:
    """Render a built-in procedural scene (or any mesh) to a posed RGBA dataset.

    Writes images, depth and normal maps, the ground-truth mesh and a nerfstudio transforms.json.
    """

    name: tyro.conf.Positional[Literal["default", "object", "sparse", "mesh"]] = "default"
    """Which scene: default (objects on a ground), object (one object, transparent background),
    sparse (3 views of default), mesh (the file given with --mesh)."""
    out: Path | None = None
    """Folder to write the dataset to (default: data/NAME, or data/MESH-STEM with --mesh)."""
    mesh: Path | None = None
    """A mesh file (.obj/.ply/.glb/.off/.stl) to render; implies the 'mesh' scene."""
    views: int | None = None
    """Number of views (default: the scene's own)."""
    resolution: int | None = None
    """Image width and height in pixels (default: the scene's own, 256)."""
    seed: int = 0
    """Random seed: the same seed gives the same images."""
    force: bool = False
    """Overwrite the output folder if it exists."""

    def run_command(self) -> None:
        from recon.scenes import render_scene

        name = "mesh" if self.mesh is not None else self.name
        out = self.out or Path("data") / (Path(self.mesh).stem if self.mesh else name)
        summary = render_scene(name, out, mesh=self.mesh, views=self.views,
                               resolution=self.resolution, seed=self.seed, force=self.force)
        print(summary)


@dataclass(frozen=True)
class Process:
    """Pose a folder of photos with structure-from-motion (pycolmap, CPU).

    Writes images/, sparse/0 (COLMAP), a nerfstudio transforms.json and sparse_pc.ply.
    """

    images: tyro.conf.Positional[Path]
    """Folder of photos (all the same size)."""
    out: Path = Path("processed")
    """Folder to write the posed dataset to."""
    matcher: Literal["auto", "exhaustive", "sequential"] = "auto"
    """Image pairing: exhaustive for up to a few hundred images, sequential beyond (auto)."""
    single_camera: bool = True
    """All photos share one camera (the usual case for one device and zoom)."""
    camera_model: Literal["SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV"] = "SIMPLE_RADIAL"
    """COLMAP camera model fitted during mapping; distorted models are written as estimated and
    undistorted when the dataset is loaded."""
    max_image_size: int = 1600
    """Longer side of the images used for feature extraction."""
    seed: int = 0
    """Random seed for the mapper."""
    force: bool = False
    """Overwrite the output folder if it exists."""
    quiet: bool = False
    """No progress output."""

    def run_command(self) -> None:
        from recon.data.sfm import SfMConfig, process_images

        cfg = SfMConfig(matcher=self.matcher, single_camera=self.single_camera,
                        camera_model=self.camera_model, max_image_size=self.max_image_size,
                        seed=self.seed)
        out = process_images(self.images, self.out, cfg, force=self.force, quiet=self.quiet)
        print(f"Posed dataset written to {out}. Inspect it with: recon info {out}")


@dataclass(frozen=True)
class Info:
    """Describe a dataset: format, images per split, resolution, camera model, intrinsics, bounds."""

    dataset: tyro.conf.Positional[Path]
    """Dataset folder (or .npz file)."""
    data: DataOptions = field(default_factory=DataOptions)
    json: bool = False
    """Print JSON instead of a table."""

    def run_command(self) -> None:
        from recon.data.info import describe, format_description

        desc = describe(self.dataset, self.data.to_data_config())
        if self.json:
            import json

            print(json.dumps(desc, indent=2))
        else:
            print(format_description(desc))


@dataclass(frozen=True)
class Eval:
    """Evaluate a fitted run on its test split: PSNR/SSIM to eval.json, renders, report.md."""

    run: tyro.conf.Positional[Path]
    """Run directory written by `recon fit`."""
    step: int | None = None
    """Checkpoint step to evaluate (default: the newest)."""
    backend: Literal["auto", "cpu", "cuda", "torch", "gsplat"] = "auto"
    """Renderer used for the test images."""
    force: bool = False
    """Replace an earlier evaluation of this run."""

    def run_command(self) -> None:
        from recon.eval.evaluate import evaluate_run
        from recon.eval.report import write_report
        from recon.models import model_class

        result = evaluate_run(self.run, step=self.step, backend=self.backend, force=self.force)
        report = write_report(self.run, force=True)
        noun = model_class(result["model"]).noun
        print(f"step {result['step']}: test PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.4f} "
              f"over {len(result['per_image'])} images, {result['num_primitives']} {noun}")
        print(f"colour-matched to each photo (exposure, white balance; the measure of "
              f"--appearance runs): PSNR {result['corrected_psnr']:.2f} dB")
        if "masked_psnr" in result:
            print(f"object only (masked): PSNR {result['masked_psnr']:.2f} dB")
        if "holes" in result:
            print(f"holes (pixels less than half covered): {result['holes']:.2%}")
        if "floaters" in result:
            print(f"floaters (pixels nearer than the view's SfM points): {result['floaters']:.2%}")
        print(f"Wrote {Path(self.run) / 'eval.json'} and {report}")


@dataclass(frozen=True)
class Export:
    """Export a fitted run in the input's world frame: its model (Gaussians: .ply, standard 3DGS,
    or .splat; convexes: .ply, or .glb/.obj hull meshes) or its extracted mesh (.glb, .obj, or
    .ply with --what mesh)."""

    run: tyro.conf.Positional[Path]
    """Run directory written by `recon fit`."""
    format: Literal["ply", "splat", "glb", "obj"] = "ply"
    """ply: the model (Gaussians: the standard 3DGS layout every splat viewer reads; convexes: one
    row per convex), a mesh .ply with --what mesh; splat: 32 bytes per Gaussian; glb/obj: a convex
    run's hulls, else the mesh written by `recon extract-mesh`."""
    what: Literal["auto", "splats", "mesh"] = "auto"
    """auto: the formats the model writes export the model, the others the extracted mesh; mesh
    or splats (the model) to choose."""
    method: Literal["sugar", "tsdf", "flexicubes"] | None = None
    """Which extracted mesh to export (default: the newest)."""
    out: Path | None = None
    """Output file (default: RUN/export/splats.FORMAT or convexes.FORMAT, or
    RUN/export/mesh_METHOD.FORMAT)."""
    step: int | None = None
    """Checkpoint step of the model to export (default: the newest)."""
    force: bool = False
    """Overwrite an existing export."""

    def run_command(self) -> None:
        from recon.export import export_run

        path = export_run(self.run, format=self.format, out=self.out, step=self.step,
                          force=self.force, what=self.what, mesh_method=self.method)
        print(f"Wrote {path}")


@dataclass(frozen=True)
class ExtractMesh:
    """Extract a vertex-coloured mesh from a fitted run, in the input's world frame.

    sugar: level-set points (density λ = 0.3) along the training rays with density-gradient
    normals, screened Poisson, trimmed; tsdf: TSDF fusion of the depth where each training ray
    reaches that level (or of the rendered depth) and the rendered colour; flexicubes: a closed
    FlexiCubes mesh fitted (recon fit --model flexicubes, in RUN/flexicubes) to the opacity, depth
    and colour the run renders in its training views."""

    run: tyro.conf.Positional[Path]
    """Run directory written by `recon fit`."""
    method: Literal["sugar", "tsdf", "flexicubes"] = "sugar"
    """Extraction method."""
    out: Path | None = None
    """Mesh file, .ply/.obj/.glb (default: RUN/export/mesh_METHOD.ply)."""
    step: int | None = None
    """Checkpoint step (default: the newest)."""
    backend: Literal["auto", "cpu", "cuda", "torch"] = "auto"
    """Renderer of the training views."""
    sugar: SugarOptions = field(default_factory=SugarOptions)
    tsdf: TsdfOptions = field(default_factory=TsdfOptions)
    view: ViewOptions = field(default_factory=ViewOptions)
    flexicubes: FlexiCubesExtractOptions = field(default_factory=FlexiCubesExtractOptions)
    seed: int = 0
    """Random seed (which pixels SuGaR samples; the FlexiCubes fit's)."""
    force: bool = False
    """Overwrite an existing mesh file."""
    quiet: bool = False
    """No progress output."""

    def run_command(self) -> None:
        from recon.mesh.extract import extract_run_mesh

        path = extract_run_mesh(self.run, self.method, out=self.out, step=self.step,
                                sugar=self.sugar, tsdf=self.tsdf, view=self.view,
                                flexicubes=self.flexicubes, backend=self.backend,
                                seed=self.seed, force=self.force, quiet=self.quiet)
        print(f"Wrote {path}. Compare it with a ground truth: recon eval-mesh {path} GT_MESH")


@dataclass(frozen=True)
class EvalMesh:
    """Compare a mesh with a ground-truth mesh: Chamfer distance and F-score (as fractions of the
    GT bounding-box diagonal), normal consistency, watertightness."""

    pred: tyro.conf.Positional[Path]
    """The mesh to score (.ply/.obj/.glb/.off/.stl)."""
    gt: tyro.conf.Positional[Path]
    """The ground-truth mesh, in the same frame (e.g. the mesh.ply of `recon scene`)."""
    samples: int = 100_000
    """Points sampled on each surface."""
    threshold: float = 0.01
    """F-score distance threshold, as a fraction of the GT bounding-box diagonal."""
    seed: int = 0
    """Random seed of the surface samples."""
    json: bool = False
    """Print JSON instead of a table."""

    def run_command(self) -> None:
        from recon.mesh.metrics import compare_mesh_files, format_metrics

        metrics = compare_mesh_files(self.pred, self.gt, self.samples, self.threshold, self.seed)
        if self.json:
            import json

            print(json.dumps(metrics.to_dict()))
        else:
            print(format_metrics(metrics))


@dataclass(frozen=True)
class View:
    """Open the web viewer on a fitted run, a 3DGS .ply or a mesh; prints its URL."""

    target: tyro.conf.Positional[Path]
    """Run directory (recon fit --out), 3DGS .ply, or mesh (.ply/.obj/.glb/.stl/.off)."""
    host: str = "127.0.0.1"
    """Address to bind; anything but loopback exposes the viewer (it has no authentication)."""
    port: int = 8080
    """Port (the next free one when it is busy)."""
    step: int | None = None
    """Checkpoint step of a run (default: the newest)."""
    backend: Literal["auto", "cpu", "cuda", "torch"] = "auto"
    """Renderer of the server-side views."""

    def run_command(self) -> None:
        from recon.viewer.app import view

        view(self.target, host=self.host, port=self.port, step=self.step, backend=self.backend)


@dataclass(frozen=True)
class Render:
    """Render a fly-through video of a run along a camera path (mp4 plus PNG frames)."""

    run: tyro.conf.Positional[Path]
    """Run directory written by `recon fit`."""
    path: str = "orbit"
    """orbit (a circle around the scene), train (through the training cameras), or a camera
    path JSON recorded in the viewer."""
    out: Path = Path("video.mp4")
    """Video file; the frames go to <stem>_frames/ beside it."""
    mode: Literal["rgb", "depth", "normal", "alpha"] = "rgb"
    """What to render."""
    fps: float | None = None
    """Frames per second (default: the path's, 30 for orbit/train)."""
    seconds: float | None = None
    """Length (default: the path's; 6 s orbit, 0.5 s per training camera)."""
    width: int | None = None
    """Frame width (default: the training images')."""
    height: int | None = None
    """Frame height (default: the training images')."""
    step: int | None = None
    """Checkpoint step (default: the newest)."""
    backend: Literal["auto", "cpu", "cuda", "torch"] = "auto"
    """Renderer."""
    force: bool = False
    """Replace an existing video and frames."""
    quiet: bool = False
    """No progress bar."""

    def run_command(self) -> None:
        from recon.viewer.video import render_camera_path

        result = render_camera_path(self.run, self.path, self.out, mode=self.mode, fps=self.fps,
                                    seconds=self.seconds, width=self.width, height=self.height,
                                    step=self.step, backend=self.backend, force=self.force,
                                    quiet=self.quiet)
        print(f"Wrote {result['video']} ({result['num_frames']} frames, {result['width']}x"
              f"{result['height']} at {result['fps']:g} fps) and {result['frames_dir']}/")


@dataclass(frozen=True)
class Demo:
    """The main job on the built-in default scene (what `make demo` runs)."""

    out: Path = Path("runs/demo")
    """Folder for the demo's results."""
    steps: int | None = None
    """Training steps (default: the fast preset's)."""
    force: bool = True
    """Replace an earlier demo's results."""

    def run_command(self) -> None:
        from recon.demo import run_demo

        run_demo(self.out, force=self.force, steps=self.steps)


def _fit_command(preset: str):
    from recon.train.config import PRESETS, FitConfig

    if preset not in PRESETS:
        raise ReconError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")

    class Fit:
        @staticmethod
        def parse(args: list[str]) -> FitConfig:
            return tyro.cli(FitConfig, default=PRESETS[preset], args=args, prog="recon fit",
                            description=FIT_DESCRIPTION)

    return Fit


FIT_DESCRIPTION = (
    "Fit Gaussian splats (or --model convexes) to a dataset or a folder of photos (posed by SfM "
    "first). "
    "--preset fast|default|quality|mesh|unbounded (given first) sets every default below; flags "
    "override it."
)


def _split_preset(args: list[str]) -> tuple[str, list[str]]:
    """Take `--preset NAME` / `--preset=NAME` out of the fit arguments."""
    rest, preset, i = [], "default", 0
    while i < len(args):
        if args[i] == "--preset" and i + 1 < len(args):
            preset, i = args[i + 1], i + 2
            continue
        if args[i].startswith("--preset="):
            preset = args[i].split("=", 1)[1]
        else:
            rest.append(args[i])
        i += 1
    return preset, rest


def _run_fit(args: list[str]) -> None:
    from recon.train.trainer import fit

    # Before one grammar, fit spelled the dataset options --data-options.*; keep that working.
    args = ["--data." + a.removeprefix("--data-options.") if a.startswith("--data-options.")
            else a for a in args]
    preset, rest = _split_preset(args)
    config = _fit_command(preset).parse(rest)
    if config.viewer:
        from recon.viewer.training import fit_with_viewer

        run_dir = fit_with_viewer(config)
    else:
        run_dir = fit(config)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, once
        print(f"Run written to {run_dir}. Next: recon eval {run_dir}  |  recon export {run_dir}")


@dataclass(frozen=True)
class FitHelp:
    """Fit Gaussian splats or convexes to a dataset or a folder of photos (see `recon fit
    --help`)."""


COMMANDS = {
    "scene": Scene,
    "process": Process,
    "info": Info,
    "fit": FitHelp,
    "eval": Eval,
    "export": Export,
    "extract-mesh": ExtractMesh,
    "eval-mesh": EvalMesh,
    "view": View,
    "render": Render,
    "demo": Demo,
}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "fit":
            # `fit` is parsed on its own so that --preset can set the defaults of every other flag.
            _run_fit(argv[1:])
            return
        command = tyro.extras.subcommand_cli_from_dict(
            COMMANDS, prog="recon", args=argv,
            description="recon: differentiable 3D reconstruction from photos.",
        )
        command.run_command()
    except ReconError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
