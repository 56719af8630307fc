"""LLFF scenes: ``poses_bounds.npy`` next to ``images/`` (and the pre-shrunk ``images_N``).

Each row of ``poses_bounds.npy`` holds 17 numbers: a 3x5 matrix flattened row-major, then the
near and far depth bounds of that view. The matrix is ``[R | t | hwf]``: a camera->world rotation
whose columns are the camera's (down, right, backwards) axes in the world, the camera centre, and
(height, width, focal) of the full-resolution photos. The principal point is the image centre.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon.cameras import Camera, invert_rigid
from recon.data.colmap import image_folder
from recon.data.dataset import DataConfig, Dataset, build_dataset, image_size, list_images
from recon.errors import DatasetError

POSES_FILE = "poses_bounds.npy"


def detect(path: Path) -> bool:
    return (Path(path) / POSES_FILE).is_file()


def read_poses_bounds(file: Path) -> tuple[np.ndarray, np.ndarray]:
    """The [N,3,5] pose matrices and [N,2] (near, far) depth bounds of an LLFF poses file."""
    try:
        data = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DatasetError(
            f"Cannot read {file}: {exc}. It should be a numpy array saved by LLFF's imgs2poses."
        ) from exc
    if data.ndim != 2 or data.shape[1] != 17 or len(data) == 0:
        raise DatasetError(
            f"{file} has shape {data.shape}; LLFF poses must be [N, 17] (a 3x5 pose and near/far per "
            "image). Regenerate it with LLFF's imgs2poses.py."
        )
    data = data.astype(np.float64)
    return data[:, :15].reshape(-1, 3, 5), data[:, 15:]


def camera_from_llff(pose: np.ndarray, width: int, height: int, name: str = "") -> Camera:
    """The recon Camera of one 3x5 LLFF pose, for photos of ``width`` x ``height`` pixels.

    The focal length in the file is for the full-resolution photos; it is scaled to the photos read.
    """
    full_h, full_w, focal = pose[:, 4]
    down, right, back = pose[:, 0], pose[:, 1], pose[:, 2]
    c2w = np.eye(4)
    c2w[:3, :3] = np.stack([right, down, -back], axis=1)  # OpenCV: x right, y down, z forward
    c2w[:3, 3] = pose[:, 3]
    fx, fy = focal * width / full_w, focal * height / full_h
    return Camera(
        width, height, float(fx), float(fy), width / 2.0, height / 2.0, invert_rigid(c2w), name=name
    )


def load(path: Path, config: DataConfig) -> Dataset:
    """An LLFF scene; the near/far bounds are available from :func:`read_poses_bounds`."""
    path = Path(path)
    poses, _ = read_poses_bounds(path / POSES_FILE)
    folder, config = image_folder(path, config)
    files = list_images(folder)
    if len(files) != len(poses):
        raise DatasetError(
            f"{folder} holds {len(files)} images but {POSES_FILE} has {len(poses)} poses. LLFF pairs "
            "them by sorted file name, so the folder must hold exactly the posed photos."
        )
    width, height = image_size(files[0])
    full_h, full_w = poses[0, 0, 4], poses[0, 1, 4]
    if abs(width / height - full_w / full_h) > 0.01 * full_w / full_h:
        raise DatasetError(
            f"The photos in {folder} are {width}x{height} but {POSES_FILE} was made for "
            f"{full_w:g}x{full_h:g} photos (a different aspect ratio). Use the photos the poses belong to."
        )
    cameras = [camera_from_llff(pose, width, height, name=f.name) for pose, f in zip(poses, files)]
    return build_dataset(cameras, files, format="llff", root=path, config=config)
