"""``recon scene``: render a built-in scene (or a mesh file) to a posed RGBA dataset folder.

Folder layout (every per-view file is named after its frame, ``frame_00000``...):

* ``images/*.png`` - RGBA, straight alpha = sub-pixel coverage. Background pixels (the sky of
  ``default``/``sparse``, everything but the object in ``object``/``mesh``) are fully transparent
  (alpha 0, colour 0), so loaders composite whatever background the user picks.
* ``depth/*.npy`` - float32 [H,W], z in the camera frame at the pixel centre, 0 = no hit.
* ``normals/*.npy`` - float32 [H,W,3], world-space unit normals facing the camera, 0 = no hit.
* ``mesh.ply`` - the ground-truth triangles, in the same world frame as the cameras.
* ``transforms.json`` - nerfstudio format; frames carry ``depth_file_path``/``normal_file_path``;
  ``sparse`` declares its split with ``train_filenames``/``test_filenames``.
* ``scene.json`` - what produced the folder: scene, seed, light, render time, and for ``mesh`` the
  source file and the similarity that maps its coordinates into the scene's frame.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon.cameras import Camera, Similarity
from recon.errors import ReconError, prepare_output_dir
from recon.scenes.geometry import SceneMesh, default_scene, mesh_file_scene, object_scene
from recon.scenes.raycast import Light, Raycaster
from recon.scenes.views import fibonacci_directions, orbit_cameras, sparse_directions

SCENES = ("default", "object", "sparse", "mesh")
DEFAULT_VIEWS = {"default": 64, "object": 64, "mesh": 64, "sparse": 3}
DEFAULT_RESOLUTION = 256
SPARSE_TEST_VIEWS = 8


@dataclass(frozen=True)
class Orbit:
    """Where a scene's cameras stand: on a sphere around ``target``, looking at it."""

    target: tuple[float, float, float]
    distance: float
    fov_deg: float


# The ground scenes are seen from above (elevations 15-90°) from far enough that the 2-unit
# ground disc nearly fills the view; the single objects (unit sphere) from all around.
GROUND_ORBIT = Orbit((0.0, 0.0, 0.3), 4.5, 50.0)
GROUND_MIN_ELEVATION = 15.0
OBJECT_ORBIT = Orbit((0.0, 0.0, 0.0), 3.2, 45.0)


@dataclass(frozen=True)
class SceneSummary:
    """What ``render_scene`` wrote; prints as a short report for the command line."""

    scene: str
    out: Path
    views: int
    resolution: int
    seed: int
    seconds: float
    train_views: int
    test_views: int
    source_mesh: Path | None = None

    def __str__(self) -> str:
        out = self.out
        split = (f"{self.train_views} train / {self.test_views} test (declared)"
                 if self.test_views else "none declared (loaders hold out every 8th view)")
        source = f" from {self.source_mesh}" if self.source_mesh else ""
        return "\n".join([
            f"Rendered scene '{self.scene}'{source} (seed {self.seed}): {self.views} views at "
            f"{self.resolution}x{self.resolution} in {self.seconds:.1f} s",
            f"  images     {out / 'images'}/*.png  (RGBA; transparent background)",
            f"  depth      {out / 'depth'}/*.npy  (float32 camera z; 0 = no hit)",
            f"  normals    {out / 'normals'}/*.npy  (float32 world-space unit normals; 0 = no hit)",
            f"  mesh       {out / 'mesh.ply'}  (ground truth, same world frame as the cameras)",
            f"  cameras    {out / 'transforms.json'}  (nerfstudio; split: {split})",
            f"  metadata   {out / 'scene.json'}",
            f"Inspect it with: recon info {out}",
        ])


def render_scene(name: str, out: Path, *, mesh: Path | None = None, views: int | None = None,
                 resolution: int | None = None, seed: int = 0, force: bool = False) -> SceneSummary:
    """Render scene ``name`` into the folder ``out`` (see the module docstring for the layout).

    ``views`` is the number of views (for ``sparse``: of training views, at most 8, plus 8 test
    views); the same ``seed`` gives byte-identical images, depth and normal maps and mesh.
    """
    if name not in SCENES:
        raise ReconError(f"Unknown scene {name!r}; choose one of {', '.join(SCENES)}.")
    if name == "mesh" and mesh is None:
        raise ReconError("The 'mesh' scene renders a file: give it with --mesh FILE.")
    if mesh is not None and name != "mesh":
        raise ReconError(f"--mesh renders a mesh file; it cannot be combined with the '{name}' scene.")
    views = DEFAULT_VIEWS[name] if views is None else views
    resolution = DEFAULT_RESOLUTION if resolution is None else resolution
    if views < 1:
        raise ReconError(f"--views must be at least 1 (got {views}).")
    if name == "sparse" and views > 8:
        raise ReconError(f"The sparse scene's training views stand 45° apart: at most 8 (got {views}).")
    if resolution < 8:
        raise ReconError(f"--resolution must be at least 8 pixels (got {resolution}).")

    start = time.perf_counter()
    # Build everything before touching the output folder, so a bad --mesh never wipes old results.
    rng = np.random.default_rng(seed)
    source: Similarity | None = None
    if name == "mesh":
        geometry, source = mesh_file_scene(mesh, rng)
    elif name == "object":
        geometry = object_scene(rng)
    else:
        geometry = default_scene(rng)
    orbit = GROUND_ORBIT if name in ("default", "sparse") else OBJECT_ORBIT
    cameras, split = _cameras(name, orbit, views, resolution)

    light = Light()
    out = prepare_output_dir(Path(out), force)
    _write(out, geometry, cameras, split, light)
    seconds = time.perf_counter() - start
    meta = {"scene": name, "seed": seed, "views": len(cameras), "resolution": resolution,
            "light": light.to_dict(), "background": "transparent", "render_seconds": seconds,
            "cameras": {"target": list(orbit.target), "distance": orbit.distance,
                        "fov_deg": orbit.fov_deg}}
    if source is not None:
        meta["source_mesh"] = str(Path(mesh).resolve())
        meta["source_to_scene"] = source.to_dict()
    (out / "scene.json").write_text(json.dumps(meta, indent=2))
    return SceneSummary(
        scene=name, out=out, views=len(cameras), resolution=resolution, seed=seed, seconds=seconds,
        train_views=len(split["train"]) if split else 0,
        test_views=len(split["test"]) if split else 0,
        source_mesh=Path(mesh) if mesh is not None else None,
    )


def _cameras(name: str, orbit: Orbit, views: int,
             resolution: int) -> tuple[list[Camera], dict[str, list[int]] | None]:
    """The scene's cameras, and for ``sparse`` the frame indices of each split."""
    split = None
    if name == "sparse":
        train, test = sparse_directions(views, SPARSE_TEST_VIEWS)
        directions = np.vstack([train, test])
        split = {"train": list(range(views)), "test": list(range(views, len(directions)))}
    elif name == "default":
        directions = fibonacci_directions(views, np.sin(np.radians(GROUND_MIN_ELEVATION)))
    else:
        directions = fibonacci_directions(views)
    cameras = orbit_cameras(directions, np.array(orbit.target), orbit.distance, orbit.fov_deg,
                            resolution)
    return cameras, split


def _write(out: Path, geometry: SceneMesh, cameras: list[Camera],
           split: dict[str, list[int]] | None, light: Light) -> None:
    from PIL import Image

    from recon.data.transforms import write_transforms

    for folder in ("images", "depth", "normals"):
        (out / folder).mkdir()
    renderer = Raycaster(geometry, light)
    frame_extra = []
    for camera in cameras:
        view = renderer.render(camera)
        # Fast PNG compression: noisy textures barely compress, and level 6 took 10x longer.
        Image.fromarray(view.rgba, "RGBA").save(out / "images" / f"{camera.name}.png",
                                                 compress_level=1)
        np.save(out / "depth" / f"{camera.name}.npy", view.depth)
        np.save(out / "normals" / f"{camera.name}.npy", view.normals)
        frame_extra.append({"depth_file_path": f"depth/{camera.name}.npy",
                            "normal_file_path": f"normals/{camera.name}.npy"})
    geometry.save_ply(out / "mesh.ply")
    file_paths = [f"images/{c.name}.png" for c in cameras]
    named_split = ({key: [file_paths[i] for i in idx] for key, idx in split.items()}
                   if split else None)
    write_transforms(out / "transforms.json", cameras, file_paths, split=named_split,
                     frame_extra=frame_extra)
