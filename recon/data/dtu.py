"""DTU scenes as IDR, NeuS and VolSDF distribute them: ``cameras_sphere.npz`` (or ``cameras.npz`` /
``cameras_large.npz``), photos in ``image/`` and object masks in ``mask/``; or as MonoSDF does,
``NNNNNN_rgb.png`` (and ``NNNNNN_mask.png``) beside ``cameras.npz`` in one folder.

For image i the file holds ``world_mat_i`` = K [R | t] (a 4x4 whose top 3x4 is the projection)
and ``scale_mat_i``, which maps a normalised frame (the object inside the unit sphere) to the
world. We decompose P = (world_mat @ scale_mat)[:3, :4], so the cameras -- and the Dataset's input
frame, which exports map back to -- are in that **normalised** frame, the one IDR/NeuS train and
mesh in. Its ``scale_mat`` maps results to DTU's original world frame for the official evaluation.

IDR/NeuS cast rays through integer pixel coordinates with K, i.e. pixel centres at integers;
recon puts them at +0.5, so half a pixel is added to the principal point.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import numpy as np

from recon.cameras import Camera
from recon.data.dataset import DataConfig, Dataset, build_dataset, image_size, list_images
from recon.errors import DatasetError

CAMERA_FILES = ("cameras_sphere.npz", "cameras.npz", "cameras_large.npz")
# Skew is dropped (recon's cameras have none); warn when it would move a pixel 1000 px off-axis
# by more than one pixel.
_SKEW_WARNING = 1e-3


def detect(path: Path) -> bool:
    return Path(path).is_dir() and any((Path(path) / name).is_file() for name in CAMERA_FILES)


def decompose_projection(projection: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """K [3,3] (positive diagonal, K[2,2] = 1) and the world->camera 4x4 of a 3x4 projection P.

    RQ-decomposes P[:, :3] = K R, flips signs so K's diagonal is positive (K D, D R with D = D^-1),
    and negates R and t together if P came with an overall negative scale (det R = -1), so that
    points in front of the camera have positive depth.
    """
    import scipy.linalg  # here, not at import time: format detection imports every loader

    p = np.asarray(projection, dtype=np.float64)
    k, r = scipy.linalg.rq(p[:, :3])
    signs = np.diag(np.sign(np.diag(k)))
    k, r = k @ signs, signs @ r
    t = np.linalg.solve(k, p[:, 3])
    if np.linalg.det(r) < 0:
        r, t = -r, -t
    w2c = np.eye(4)
    w2c[:3, :3], w2c[:3, 3] = r, t
    return k / k[2, 2], w2c


def load(path: Path, config: DataConfig) -> Dataset:
    path = Path(path)
    camera_file = next(path / name for name in CAMERA_FILES if (path / name).is_file())
    matrices = _read_matrices(camera_file)
    files, masks = _photos_and_masks(path)
    width, height = image_size(files[0])
    cameras = []
    for i, file in enumerate(files):
        if f"world_mat_{i}" not in matrices:
            raise DatasetError(
                f"{camera_file} has no world_mat_{i} for image {file.name} ({len(files)} images in "
                f"{path / 'image'}). Remove the extra images or use the matching camera file."
            )
        scale_mat = matrices.get(f"scale_mat_{i}", np.eye(4))
        k, w2c = decompose_projection((matrices[f"world_mat_{i}"] @ scale_mat)[:3, :4])
        if abs(k[0, 1]) > _SKEW_WARNING * k[0, 0]:
            warnings.warn(f"{camera_file}: camera {i} has skew {k[0, 1]:.3g}, which recon ignores.",
                          stacklevel=2)
        cx, cy = k[0, 2] + 0.5, k[1, 2] + 0.5  # integer pixel centres -> recon's +0.5
        cameras.append(Camera(width, height, k[0, 0], k[1, 1], cx, cy, w2c, name=file.name))
    return build_dataset(cameras, files, format="dtu", root=path, config=config, mask_paths=masks)


def _photos_and_masks(path: Path) -> tuple[list[Path], list[Path] | None]:
    """The photos and (when present) masks, paired by sorted name: ``image/`` and ``mask/``
    (IDR, NeuS, VolSDF), or ``NNNNNN_rgb.png`` and ``NNNNNN_mask.png`` side by side with the
    camera file (MonoSDF)."""
    if (path / "image").is_dir():
        files = list_images(path / "image")
        masks = list_images(path / "mask") if (path / "mask").is_dir() else None
        where = f"{path / 'mask'} holds {{}} masks but {path / 'image'} holds {{}} images"
    else:
        files = sorted(path.glob("*_rgb.png"))
        masks = sorted(path.glob("*_mask.png")) or None
        where = f"{path} holds {{}} *_mask.png but {{}} *_rgb.png"
        if not files:
            raise DatasetError(f"No photos in {path}: expected an image/ folder (IDR, NeuS, "
                               "VolSDF) or *_rgb.png files (MonoSDF) beside the camera file.")
    if masks is not None and len(masks) != len(files):
        raise DatasetError(where.format(len(masks), len(files)) + ". Masks pair with images by "
                           "sorted name; give one per image or remove the masks.")
    return files, masks


def _read_matrices(file: Path) -> dict[str, np.ndarray]:
    """All 4x4 float64 matrices of a camera .npz, by name."""
    try:
        with np.load(file, allow_pickle=False) as data:
            matrices = {name: data[name].astype(np.float64) for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"Cannot read {file}: {exc}. It should be an IDR/NeuS camera .npz.") from exc
    bad = [name for name, m in matrices.items()
           if name.startswith(("world_mat", "scale_mat")) and m.shape != (4, 4)]
    if bad:
        raise DatasetError(f"{file}: {', '.join(bad[:5])} should be 4x4 matrices. The file is corrupt.")
    return matrices
