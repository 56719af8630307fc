"""The `recon` command line: tyro subcommands over config dataclasses.

This module stays thin and cheap to import: each command parses its config and calls a library
function, importing the heavy modules (torch, open3d, pycolmap) only when it runs, so
`recon --help` answers at once. Field docstrings become the help text.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import tyro

from recon.errors import ReconError


@dataclass(frozen=True)
class DataOptions:
    """How a dataset folder is read (mirrors recon.data.DataConfig)."""

    downscale: int = 1
    """Integer downscale factor; an existing images_N folder is used when there is one."""
    max_size: int | None = None
    """Downscale further so the longer image side is at most this many pixels."""
    background: Literal["white", "black", "random"] = "white"
    """Background composited behind images that have alpha."""
    test_every: int = 8
    """Every N-th image is held out for testing unless the dataset declares a split."""

    def to_config(self):
        from recon.data import DataConfig

        return DataConfig(downscale=self.downscale, max_size=self.max_size,
                          background=self.background, test_every=self.test_every)


@dataclass(frozen=True)
class Scene:
    """Render a built-in procedural scene (or any mesh) to a posed RGBA dataset.

    Writes images, depth and normal maps, the ground-truth mesh and a nerfstudio transforms.json.
    """

    name: tyro.conf.Positional[Literal["default", "object", "sparse", "mesh"]] = "default"
    """Which scene: default (objects on a ground), object (one object, transparent background),
    sparse (3 views of default), mesh (the file given with --mesh)."""
    out: Path = Path("scenes/default")
    """Folder to write the dataset to."""
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

    def run(self) -> None:
        from recon.scenes import render_scene

        name = "mesh" if self.mesh is not None else self.name
        summary = render_scene(name, self.out, mesh=self.mesh, views=self.views,
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

    def run(self) -> None:
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

    def run(self) -> None:
        from recon.data.info import describe, format_description

        desc = describe(self.dataset, self.data.to_config())
        if self.json:
            import json

            print(json.dumps(desc, indent=2))
        else:
            print(format_description(desc))


@dataclass(frozen=True)
class Demo:
    """The main job on the built-in default scene (what `make demo` runs)."""

    out: Path = Path("runs/demo")
    """Folder for the demo's results."""
    force: bool = True
    """Replace an earlier demo's results."""

    def run(self) -> None:
        from recon.demo import run_demo

        run_demo(self.out, force=self.force)


COMMANDS = {
    "scene": Scene,
    "process": Process,
    "info": Info,
    "demo": Demo,
}


def main(argv: list[str] | None = None) -> None:
    command = tyro.extras.subcommand_cli_from_dict(
        COMMANDS, prog="recon", args=argv,
        description="recon: differentiable 3D reconstruction from photos.",
    )
    try:
        command.run()
    except ReconError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
