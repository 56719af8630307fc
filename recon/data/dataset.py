"""The one dataset type every loader produces, and the checks every loader shares."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from recon.cameras import Camera, Similarity, rotation_is_valid
from recon.errors import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
Split = Literal["train", "val", "test"]


@dataclass(frozen=True)
class DataConfig:
    """How a dataset folder is read."""

    downscale: int = 1
    """Integer downscale factor; an existing ``images_N`` folder is used when there is one."""
    max_size: int | None = None
    """Downscale further so the longer image side is at most this many pixels."""
    background: Literal["white", "black", "random"] = "white"
    """Background composited behind images that have alpha ("random" is resolved by the trainer)."""
    test_every: int = 8
    """Every N-th image goes to the test split unless the dataset declares its own split."""
    normalize: bool = True
    """Centre and scale the scene so the cameras fit in a unit sphere (undone on export)."""


@dataclass
class Dataset:
    """Posed images in recon's convention, in a normalised world frame.

    ``normalization`` maps the input's world frame to recon's; its inverse maps exports back.
    Images are decoded lazily and cached as uint8 arrays [H, W, 3 or 4] (alpha kept when given).
    """

    cameras: list[Camera]
    image_paths: list[Path]
    split: list[str]
    format: str
    root: Path
    mask_paths: list[Path | None] | None = None
    points: np.ndarray | None = None
    """Sparse points [N,3] (normalised frame), e.g. from SfM."""
    point_colors: np.ndarray | None = None
    """uint8 [N,3] colours of ``points``."""
    normalization: Similarity = field(default_factory=Similarity)
    config: DataConfig = field(default_factory=DataConfig)
    source_cameras: list[Camera | None] | None = None
    """Where an image file on disk is distorted: its distorted camera (same resolution as
    ``cameras[i]``); the image is undistorted to ``cameras[i]`` when decoded."""
    depth_paths: list[Path | None] | None = None
    """Per image, a depth map (camera z, 0 = unknown) in the input's units, or None."""
    _images: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.cameras)

    def indices(self, split: str) -> list[int]:
        return [i for i, s in enumerate(self.split) if s == split]

    def image(self, i: int) -> np.ndarray:
        """uint8 image i at the camera's resolution: [H, W, 3], or [H, W, 4] with alpha/mask."""
        if i not in self._images:
            cam = self.cameras[i]
            img = read_image(self.image_paths[i], (cam.width, cam.height))
            source = self.source_cameras[i] if self.source_cameras is not None else None
            if source is not None and source.is_distorted:
                from recon.data.undistort import undistort_image

                img = undistort_image(img, source, cam)
            if self.mask_paths is not None and self.mask_paths[i] is not None:
                mask = read_image(self.mask_paths[i], (cam.width, cam.height))
                alpha = mask[..., :1] if mask.ndim == 3 else mask[..., None]
                img = np.concatenate([img[..., :3], alpha], axis=-1)
            self._images[i] = img
        return self._images[i]

    @property
    def has_depth(self) -> bool:
        return self.depth_paths is not None and all(p is not None for p in self.depth_paths)

    def depth(self, i: int) -> np.ndarray | None:
        """float32 [H, W] camera-z depth of image i in the normalised frame (0 = unknown), at
        the camera's resolution (nearest sample), or None when the image has none.

        ``.npy`` holds float depth in the input's units; 16-bit PNG holds millimetres
        (nerfstudio's default ``depth_unit_scale_factor`` 1e-3)."""
        path = None if self.depth_paths is None else self.depth_paths[i]
        if path is None:
            return None
        path = Path(path)
        if path.suffix.lower() == ".npy":
            depth = np.load(path).astype(np.float32)
        else:
            from PIL import Image

            depth = np.asarray(Image.open(path), dtype=np.float32) * 1e-3
        cam = self.cameras[i]
        if depth.ndim != 2:
            raise DatasetError(f"The depth map {path} has shape {depth.shape}; expected [H, W].")
        if depth.shape != (cam.height, cam.width):  # nearest: never blend across silhouettes
            rows = (np.arange(cam.height) + 0.5) * depth.shape[0] / cam.height
            cols = (np.arange(cam.width) + 0.5) * depth.shape[1] / cam.width
            depth = depth[rows.astype(int)[:, None], cols.astype(int)[None, :]]
        return depth * np.float32(self.normalization.scale)

    @property
    def has_alpha(self) -> bool:
        return len(self) > 0 and self.image(0).shape[-1] == 4

    def camera_centers(self) -> np.ndarray:
        return np.stack([c.center for c in self.cameras])

    def scene_radius(self) -> float:
        """Radius of the sphere around the cameras' mean centre that holds every camera."""
        centers = self.camera_centers()
        return float(np.linalg.norm(centers - centers.mean(0), axis=1).max())

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned bounds of the sparse points if any, else of the camera centres."""
        pts = self.points if self.points is not None and len(self.points) else self.camera_centers()
        return pts.min(0), pts.max(0)


def build_dataset(
    cameras: list[Camera],
    image_paths: list[Path],
    *,
    format: str,
    root: Path,
    config: DataConfig,
    split: list[str] | None = None,
    mask_paths: list[Path | None] | None = None,
    points: np.ndarray | None = None,
    point_colors: np.ndarray | None = None,
    depth_paths: list[Path | None] | None = None,
) -> Dataset:
    """Validate what a loader read, apply downscaling, assign the split and normalise the scene.

    Loaders give cameras in the input's world frame at the resolution of ``image_paths``.
    Distorted cameras (``camera.is_distorted``) are kept as ``source_cameras`` and replaced by
    their ideal pinhole counterparts; images are undistorted when decoded.
    """
    if not cameras:
        raise DatasetError(f"No images found in the dataset at {root}. Check the folder and its format.")
    for cam, path in zip(cameras, image_paths):
        check_pose(cam, path)
    missing = [str(p) for p in image_paths if not Path(p).is_file()]
    for extra in (mask_paths, depth_paths):
        if extra is not None:
            missing += [str(p) for p in extra if p is not None and not Path(p).is_file()]
    if missing:
        listed = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DatasetError(
            f"The dataset at {root} references {len(missing)} missing file(s): {listed}. "
            "Restore the files or remove them from the dataset's camera file."
        )
    factor = 1.0 / config.downscale
    if config.max_size:
        longest = max(max(c.width, c.height) for c in cameras) * factor
        factor *= min(1.0, config.max_size / longest)
    if factor != 1.0:
        cameras = [c.scaled(factor) for c in cameras]
    source = [c if c.is_distorted else None for c in cameras]
    source_cameras = source if any(s is not None for s in source) else None
    cameras = [replace(c, distortion=None, fisheye=False) for c in cameras]
    if split is None:
        split = ["test" if i % config.test_every == 0 else "train" for i in range(len(cameras))]
    norm = normalizing_similarity(cameras) if config.normalize else Similarity()
    cameras = [c.transformed(norm) for c in cameras]
    if source_cameras is not None:
        source_cameras = [s.transformed(norm) if s is not None else None for s in source_cameras]
    if points is not None:
        points = norm.apply(points)
    return Dataset(
        cameras=cameras, image_paths=[Path(p) for p in image_paths], split=list(split),
        format=format, root=Path(root), mask_paths=mask_paths, points=points,
        point_colors=point_colors, normalization=norm, config=config,
        source_cameras=source_cameras, depth_paths=depth_paths,
    )


def check_pose(cam: Camera, path: Path) -> None:
    """Reject NaN, infinite or non-rigid poses and non-positive intrinsics with a clear message."""
    w2c = cam.world_to_camera
    ok = w2c.shape == (4, 4) and np.all(np.isfinite(w2c)) and rotation_is_valid(w2c[:3, :3])
    ok = ok and np.allclose(w2c[3], [0, 0, 0, 1])
    if not ok:
        raise DatasetError(
            f"The camera pose of {path} is degenerate (NaN, infinite or not a rotation). "
            "Fix or remove this frame in the dataset's camera file."
        )
    if not (cam.fx > 0 and cam.fy > 0 and np.isfinite([cam.cx, cam.cy]).all()):
        raise DatasetError(
            f"The intrinsics of {path} are invalid (fx={cam.fx}, fy={cam.fy}). "
            "Focal lengths must be positive numbers."
        )
    if cam.width <= 0 or cam.height <= 0:
        raise DatasetError(f"The image size of {path} is invalid ({cam.width}x{cam.height}).")


def normalizing_similarity(cameras: list[Camera]) -> Similarity:
    """Centre the camera centres at the origin and scale them into the unit sphere."""
    centers = np.stack([c.center for c in cameras])
    mean = centers.mean(0)
    radius = float(np.linalg.norm(centers - mean, axis=1).max())
    scale = 1.0 / radius if radius > 1e-8 else 1.0
    return Similarity(scale, np.eye(3), -scale * mean)


def list_images(folder: Path) -> list[Path]:
    """Image files in ``folder`` (sorted), warning about and skipping anything else."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"Image folder {folder} does not exist. Check the path.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    skipped = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    if skipped:
        warnings.warn(f"Skipping {len(skipped)} non-image file(s) in {folder}: {', '.join(skipped[:5])}",
                      stacklevel=2)
    if not images:
        raise DatasetError(f"Image folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    return images


def read_image(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode an image to uint8 [H,W,C] (C = 1, 3 or 4), resized to ``size`` = (W, H) if given."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "RGB", "RGBA"):
                im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
            if size is not None and im.size != tuple(size):
                im = im.resize(tuple(size), Image.Resampling.LANCZOS if im.mode != "RGBA" else Image.Resampling.BOX)
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DatasetError(f"Cannot read image {path}: {exc}. The file is corrupt or not an image.") from exc
    return arr[..., None] if arr.ndim == 2 else arr


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file without decoding its pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"Cannot read image {path}: {exc}. The file is corrupt or not an image.") from exc


def composite_background(image: np.ndarray, background: str) -> np.ndarray:
    """RGB float image in [0,1] with its alpha composited over a white or black background."""
    rgb = image[..., :3].astype(np.float32) / 255.0
    if image.shape[-1] < 4:
        return rgb
    a = image[..., 3:4].astype(np.float32) / 255.0
    bg = 1.0 if background == "white" else 0.0
    return rgb * a + bg * (1.0 - a)
