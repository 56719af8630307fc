"""`recon process`: pose a folder of photos with structure-from-motion (pycolmap, on the CPU).

The pipeline is COLMAP's: SIFT features, exhaustive matching (sequential for long captures),
incremental mapping. The largest reconstruction is written as a posed dataset folder::

    out/images/          the registered photos, copied unchanged (alpha kept)
    out/sparse/0/        the COLMAP model (binary), camera model as estimated
    out/transforms.json  the same cameras in nerfstudio's format, referencing sparse_pc.ply
    out/sparse_pc.ply    the triangulated points (xyz + uint8 rgb)

Both camera files share COLMAP's world frame (no axis swap is applied).

Distortion: a distorted camera model (SIMPLE_RADIAL, RADIAL, OPENCV) is written as estimated and the
photos are copied untouched; recon's loaders undistort each image when it is decoded. Undistorting
here would resample the photos an extra time, change their size and drop their alpha channel.

Transparent photos (RGBA renders): SIFT runs on copies composited over ``SfMConfig.background``, so
the transparent region is one flat colour without features instead of whatever colour happens to be
stored under alpha = 0.

All work happens in a scratch folder inside ``out``; the final files are moved in only once mapping
succeeded, so a failed run leaves an empty ``out`` rather than something that looks like a result.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from recon.data.dataset import composite_background, image_size, list_images, read_image
from recon.errors import DatasetError, ReconError, SfMError, prepare_output_dir

EXIF_ORIENTATION = 0x0112
"""The EXIF tag of how a photo's stored pixels are turned or mirrored for display."""
EXIF_IFD = 0x8769
"""The EXIF sub-directory that holds the lens and sensor tags below."""
EXIF_FOCAL_MM, EXIF_FOCAL_35MM = 0x920A, 0xA405
"""FocalLength (mm) and FocalLengthIn35mmFilm (the same field of view on a 36 x 24 mm frame)."""
EXIF_PLANE_X_RESOLUTION, EXIF_PLANE_UNIT = 0xA20E, 0xA210
"""The sensor's pixels per unit along the image's x axis, and that unit (2 inch, 3 cm, 4 mm)."""
EXIF_SIZE = (0xA002, 0xA003)
"""The image width and height the sensor tags refer to (the size as the camera wrote it)."""
UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0}
MIN_IMAGES = 3
"""Fewer posed views than this cannot constrain a reconstruction."""
SEQUENTIAL_ABOVE = 300
"""The "auto" matcher pairs every image with every other up to this many images (quadratic cost),
and beyond it only neighbours in file-name order (video frames, walk-through captures)."""
ABS_POSE_MIN_INLIERS = 12
ABS_POSE_MIN_INLIER_RATIO = 0.1
"""A new image is registered from this many 2D-3D inliers, this fraction of its matches (COLMAP:
30 and 0.25). After a street corner (lund's photos 25-29) few of an image's matches see points
already in the model; with these 29 of 29 photos are posed instead of 24, at a lower mean
reprojection error (0.68 px against 0.74) and with even steps between consecutive cameras where
the last ten stretched to 2-4x the median; the skull poses 64 of 66 instead of 63 (0.349 px
against 0.347)."""
SCRATCH = ".recon-process"
"""Scratch folder inside ``out``; removed on success and on failure."""

CAMERA_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")
"""COLMAP camera models process fits: the perspective ones recon's loaders can undistort."""


@dataclass(frozen=True)
class SfMConfig:
    """How structure-from-motion is run."""

    matcher: Literal["auto", "exhaustive", "sequential"] = "auto"
    """Image pairing: exhaustive up to SEQUENTIAL_ABOVE images, sequential beyond (auto)."""
    single_camera: bool = True
    """All photos share one camera (its intrinsics are estimated from every view)."""
    camera_model: str = "SIMPLE_RADIAL"
    """COLMAP camera model, one of CAMERA_MODELS."""
    max_image_size: int = 1600
    """Longer side of the images SIFT sees (keypoints are mapped back to full resolution)."""
    affine_features: bool = True
    """Fit an affine shape to each SIFT feature (a CPU-only COLMAP option). Oblique and wide-baseline
    views then match where plain SIFT fails (on the default scene 16 of 16 views register instead of
    14), for about 1.5x the extraction and matching time."""
    seed: int = 0
    """Seed of COLMAP's RANSAC and mapper. Runs repeat exactly only with num_threads=1."""
    num_threads: int | None = None
    """CPU threads for extraction, matching and mapping; None uses every core this process may use."""
    background: Literal["white", "black"] = "white"
    """Colour composited behind transparent pixels before feature extraction."""


def process_images(images: Path, out: Path, cfg: SfMConfig | None = None, *, force: bool = False,
                   quiet: bool = False) -> Path:
    """Pose the photos in ``images`` and write a posed dataset folder to ``out`` (returned).

    Raises DatasetError for an unusable image folder, SfMError when fewer than three images can be
    posed, OutputExistsError when ``out`` holds files and ``force`` is not given. The input is
    checked completely before ``out`` is touched, so ``force`` never deletes old results for nothing.
    """
    cfg = cfg or SfMConfig()
    images, out = Path(images), Path(out)
    if cfg.camera_model not in CAMERA_MODELS:
        raise ReconError(f"Unsupported camera model {cfg.camera_model!r}; choose one of "
                         f"{', '.join(CAMERA_MODELS)}.")
    if images.resolve().is_relative_to(out.resolve()):
        raise ReconError(f"The image folder {images} lies inside the output folder {out}, which "
                         "process would overwrite. Choose an --out outside the image folder.")
    with _progress(quiet) as progress, _colmap_log(quiet):
        paths = _check_images(images, progress)
        prepare_output_dir(out, force)
        scratch = out / SCRATCH
        try:
            upright = _upright_copies(paths, scratch / "photos")
            sift_dir = scratch / "sift_images"
            _stage_for_sift(upright, sift_dir, cfg.background)
            rec = _reconstruct(sift_dir, [p.name for p in paths], scratch, cfg, progress)
            result = scratch / "result"
            _write_result(rec, scratch / "photos", result)
            for item in sorted(result.iterdir()):
                os.replace(item, out / item.name)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return out


# -- input checks -------------------------------------------------------------------------------

def _check_images(folder: Path, progress) -> list[Path]:
    """The images of ``folder`` (sorted): at least three, all decodable, all the same size."""
    paths = list_images(folder)
    if len(paths) < MIN_IMAGES:
        raise DatasetError(f"Image folder {folder} holds {len(paths)} image(s); structure-from-motion "
                           f"needs at least {MIN_IMAGES} overlapping photos (a few dozen work best).")
    sizes = {p: upright_size(p) for p in paths}
    common = Counter(sizes.values()).most_common(1)[0][0]
    odd = [f"{p.name} ({w}x{h})" for p, (w, h) in sizes.items() if (w, h) != common]
    if odd:
        raise DatasetError(
            f"Images in {folder} differ in size: most are {common[0]}x{common[1]}, but "
            f"{_listing(odd)} (as shown upright, after their EXIF orientation). Resize them to "
            "one size, or split the folder into one folder per camera and orientation and process "
            "each."
        )
    task = progress.add_task("Checking images", total=len(paths))
    for p in paths:
        read_image(p)  # a full decode: a truncated or corrupt file raises a DatasetError naming it
        progress.advance(task)
    return paths


def upright_size(path: Path) -> tuple[int, int]:
    """(width, height) of a photo as shown: swapped when its EXIF orientation turns it by 90°."""
    from PIL import Image

    width, height = image_size(path)  # a DatasetError naming an unreadable file
    with Image.open(path) as im:
        try:
            turned = im.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)
        except Exception:  # broken EXIF: the full decode that follows names the broken file
            turned = False
    return (height, width) if turned else (width, height)


def _upright_copies(paths: list[Path], dest: Path) -> list[Path]:
    """The photos in ``dest`` as shown: those with an EXIF orientation other than 1 rotated or
    mirrored into their pixels (their other EXIF fields, the focal length among them, kept), the
    rest copied byte for byte. Everything after SfM reads these pixels as they are."""
    from PIL import Image, ImageOps

    dest.mkdir(parents=True)
    for p in paths:
        with Image.open(p) as im:
            if im.getexif().get(EXIF_ORIENTATION, 1) == 1:
                shutil.copyfile(p, dest / p.name)
                continue
            upright = ImageOps.exif_transpose(im)
            upright.save(dest / p.name, format=im.format, exif=upright.getexif(), quality=95,
                         lossless=True)
    return [dest / p.name for p in paths]


def _stage_for_sift(paths: list[Path], dest: Path, background: str) -> None:
    """Copy the photos to ``dest`` for COLMAP, compositing transparent ones over ``background``."""
    from PIL import Image

    dest.mkdir(parents=True)
    for p in paths:
        with Image.open(p) as im:
            transparent = "A" in im.getbands() or "transparency" in im.info
        if not transparent:
            shutil.copyfile(p, dest / p.name)
            continue
        rgb = composite_background(read_image(p), background)
        # Same name and format as the original (lossless where the format allows), so COLMAP's
        # image names match the photos copied to out/images.
        Image.fromarray(np.round(rgb * 255.0).astype(np.uint8)).save(dest / p.name, lossless=True,
                                                                      quality=100)


# -- structure-from-motion ----------------------------------------------------------------------

def _reconstruct(image_dir: Path, names: list[str], work: Path, cfg: SfMConfig, progress):
    """Run extraction, matching and mapping; the largest reconstruction, with at least 3 images."""
    import pycolmap

    threads = cfg.num_threads or _available_cores()
    pycolmap.set_random_seed(cfg.seed)
    database = work / "database.db"

    task = progress.add_task("Extracting SIFT features", total=None)
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.use_gpu = False
    extraction.num_threads = threads
    extraction.max_image_size = cfg.max_image_size
    extraction.sift.estimate_affine_shape = cfg.affine_features
    pycolmap.extract_features(
        database, image_dir, image_names=names,
        camera_mode=pycolmap.CameraMode.SINGLE if cfg.single_camera else pycolmap.CameraMode.PER_IMAGE,
        reader_options=pycolmap.ImageReaderOptions(camera_model=cfg.camera_model),
        extraction_options=extraction, device=pycolmap.Device.cpu,
    )
    _exif_focal_priors(database, image_dir)
    keypoints, _, _ = _database_counts(database)
    progress.update(task, total=len(names), completed=len(names),
                    description=f"SIFT features: {keypoints:,} keypoints")

    sequential = cfg.matcher == "sequential" or (cfg.matcher == "auto" and len(names) > SEQUENTIAL_ABOVE)
    pairing = "sequential" if sequential else "exhaustive"
    task = progress.add_task(f"Matching features ({pairing})", total=None)
    matching = pycolmap.FeatureMatchingOptions()
    matching.use_gpu = False
    matching.num_threads = threads
    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.random_seed = cfg.seed
    match = pycolmap.match_sequential if sequential else pycolmap.match_exhaustive
    match(database, matching_options=matching, verification_options=verification,
          device=pycolmap.Device.cpu)
    _, pairs, verified = _database_counts(database)
    progress.update(task, total=pairs, completed=pairs,
                    description=f"Matched image pairs ({pairing}): {verified:,} verified")

    task = progress.add_task("Registering images", total=len(names))
    mapping = pycolmap.IncrementalPipelineOptions()
    mapping.num_threads = threads
    mapping.random_seed = cfg.seed
    mapping.min_model_size = MIN_IMAGES  # keep small models too: the error below names what failed
    mapping.mapper.abs_pose_min_num_inliers = ABS_POSE_MIN_INLIERS
    mapping.mapper.abs_pose_min_inlier_ratio = ABS_POSE_MIN_INLIER_RATIO
    registered = 0

    def on_initial_pair() -> None:  # a new model starts (the first, or one after a failed attempt)
        nonlocal registered
        registered = 2
        progress.update(task, completed=registered)

    def on_next_image() -> None:
        nonlocal registered
        registered += 1
        progress.update(task, completed=registered)

    models = pycolmap.incremental_mapping(database, image_dir, work / "sparse", mapping,
                                          initial_image_pair_callback=on_initial_pair,
                                          next_image_callback=on_next_image)
    best = max(models.values(), key=lambda r: r.num_reg_images(), default=None)
    posed = {best.image(i).name for i in best.reg_image_ids()} if best is not None else set()
    progress.update(task, completed=len(posed))
    failed = [n for n in names if n not in posed]
    if len(posed) < MIN_IMAGES:
        raise SfMError(
            f"Structure-from-motion posed only {len(posed)} of {len(names)} images (at least "
            f"{MIN_IMAGES} are needed). Not registered: {_listing(failed)}. The photos must overlap "
            "(each part of the scene seen in several photos from nearby viewpoints), show textured, "
            "static surfaces and be sharp: add photos between the views, avoid plain walls and "
            "reflections, or raise --max-image-size for small or distant detail."
            + (" For an unordered collection use --matcher exhaustive." if sequential else "")
        )
    if failed:
        warnings.warn(f"{len(failed)} of {len(names)} images could not be posed and are left out: "
                      f"{_listing(failed)}. Add overlapping photos near them to include them.",
                      stacklevel=3)
    return best


def exif_focal_px(path: Path) -> float | None:
    """The focal length in pixels a photo's EXIF gives, or None.

    From the focal length in mm and the sensor's pixel pitch (FocalPlaneXResolution, scaled by
    the longer side now over the longer side the camera wrote, for a photo resized since), else
    from the 35 mm equivalent (36 mm across the longer side). Pixels are square, so the value does
    not depend on the orientation.
    """
    from PIL import Image

    with Image.open(path) as im:
        try:
            exif = im.getexif().get_ifd(EXIF_IFD)
        except Exception:  # broken EXIF: no prior
            return None
        width, height = im.size
    focal_mm = float(exif.get(EXIF_FOCAL_MM) or 0)
    per_unit = float(exif.get(EXIF_PLANE_X_RESOLUTION) or 0)
    unit_mm = UNIT_MM.get(int(exif.get(EXIF_PLANE_UNIT, 2)))
    if focal_mm > 0 and per_unit > 0 and unit_mm:
        written = max(float(exif.get(tag) or 0) for tag in EXIF_SIZE) or max(width, height)
        return focal_mm * per_unit / unit_mm * max(width, height) / written
    focal_35mm = float(exif.get(EXIF_FOCAL_35MM) or 0)
    if focal_35mm > 0:
        return focal_35mm / 36.0 * max(width, height)
    return None


def _exif_focal_priors(database: Path, image_dir: Path) -> None:
    """Give each camera COLMAP found no focal length for (a body missing from its sensor table)
    the one its first photo's EXIF gives, marked as a prior, so mapping starts from it rather
    than from COLMAP's guess of 1.2 x the longer side."""
    import pycolmap

    db = pycolmap.Database.open(database)
    try:
        first = {}
        for image in db.read_all_images():
            first.setdefault(image.camera_id, image.name)
        for camera in db.read_all_cameras():
            if camera.has_prior_focal_length or camera.camera_id not in first:
                continue
            focal = exif_focal_px(image_dir / first[camera.camera_id])
            if focal is not None:
                params = np.array(camera.params)
                params[list(camera.focal_length_idxs())] = focal
                camera.params = params
                camera.has_prior_focal_length = True
                db.update_camera(camera)
    finally:
        db.close()


def _database_counts(database: Path) -> tuple[int, int, int]:
    """Keypoints, matched image pairs, and pairs that passed geometric verification."""
    import pycolmap

    db = pycolmap.Database.open(database)
    try:
        # Every matched pair has a two-view geometry entry; verified ones have inliers.
        verified = sum(len(g.inlier_matches) > 0 for g in db.read_two_view_geometries()[1])
        return db.num_keypoints(), db.num_matched_image_pairs(), verified
    finally:
        db.close()


# -- output -------------------------------------------------------------------------------------

def _write_result(rec, images: Path, dest: Path) -> None:
    """Write images/, sparse/0, transforms.json and sparse_pc.ply for ``rec`` into ``dest``.

    The cameras and points of transforms.json and sparse_pc.ply are read back from the written
    sparse/0 with recon's own COLMAP reader, so both camera files agree by construction.
    """
    from recon.data.colmap import camera_from_colmap, read_model
    from recon.data.transforms import write_ply_points, write_transforms

    model_dir = dest / "sparse" / "0"
    model_dir.mkdir(parents=True)
    rec.write(model_dir)
    model = read_model(model_dir)
    posed = sorted(model.images.values(), key=lambda im: im.name)
    (dest / "images").mkdir()
    for im in posed:
        shutil.copyfile(images / im.name, dest / "images" / im.name)
    points = list(model.points.values())
    write_ply_points(dest / "sparse_pc.ply", np.array([p.xyz for p in points]).reshape(-1, 3),
                     np.array([p.rgb for p in points], dtype=np.uint8).reshape(-1, 3))
    cameras = [camera_from_colmap(model.cameras[im.camera_id], im) for im in posed]
    write_transforms(dest / "transforms.json", cameras, [f"images/{im.name}" for im in posed],
                     ply_file_path="sparse_pc.ply")


# -- helpers ------------------------------------------------------------------------------------

def _available_cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's core count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _listing(names: list[str], limit: int = 10) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


@contextlib.contextmanager
def _progress(quiet: bool) -> Iterator:
    """A rich progress display on stderr (one line per stage), or a silent one when ``quiet``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, \
        TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=Console(stderr=True),
                  disable=quiet) as progress:
        yield progress


@contextlib.contextmanager
def _colmap_log(quiet: bool) -> Iterator[None]:
    """Keep COLMAP's log to errors, and silent when ``quiet``: its INFO lines are replaced by the
    progress display, its warnings are internal retries ("discarding reconstruction"), and the
    failures it logs are reported by recon's own errors as well."""
    import pycolmap

    before = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = pycolmap.logging.FATAL if quiet else pycolmap.logging.ERROR
    try:
        yield
    finally:
        pycolmap.logging.minloglevel = before
