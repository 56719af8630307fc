"""A whole dataset in one ``.npz`` file (the layout of ``lego_100.npz``).

Keys: ``images_rgba`` uint8 [N,H,W,3 or 4], ``poses`` camera->world in OpenGL axes [N,4,4] or
[N,3,4], ``focal`` in pixels (one value or one per image; else ``camera_angle_x`` in radians),
optional ``split`` (one of train/val/test per image; else every N-th image is a test image).

The images are already decoded, so the loader puts them straight into the dataset's image cache
(resized when the config downscales) and no file is read after loading. Their ``image_paths`` are
the virtual members ``<file>.npz#<i>``: they name the source in messages but are not files, so
code that names outputs per image should use ``camera.name`` (``<stem>_<i>``), which is unique.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from recon.cameras import Camera
from recon.data.dataset import DataConfig, Dataset, build_dataset, check_pose
from recon.errors import DatasetError

IMAGES_KEY = "images_rgba"
POSES_KEY = "poses"
SPLITS = ("train", "val", "test")


def detect(path: Path) -> bool:
    """A .npz file holding images and poses (reads only the archive's table of contents)."""
    path = Path(path)
    if not (path.is_file() and path.suffix.lower() == ".npz"):
        return False
    try:
        with np.load(path, allow_pickle=False) as data:
            return IMAGES_KEY in data.files and POSES_KEY in data.files
    except (OSError, ValueError, zipfile.BadZipFile):
        return False


def load(path: Path, config: DataConfig) -> Dataset:
    """Read the images, cameras and split of a .npz dataset (see the module docstring)."""
    path = Path(path)
    images, poses, focals, split = _read_arrays(path)
    n, height, width = images.shape[:3]
    cameras = [
        Camera.from_opengl(poses[i], width, height, float(focals[i]), float(focals[i]), width / 2, height / 2,
                           name=f"{path.stem}_{i}")
        for i in range(n)
    ]
    members = [Path(f"{path}#{i}") for i in range(n)]
    for camera, member in zip(cameras, members):
        check_pose(camera, member)  # here, so a bad pose is reported with its index
    # build_dataset checks that image files exist: the archive itself stands in for its members.
    dataset = build_dataset(cameras, [path] * n, format="npz", root=path.parent, config=config,
                            split=split)
    dataset.image_paths = members
    dataset._images = {i: _fit(images[i], cam) for i, cam in enumerate(dataset.cameras)}
    return dataset


def _read_arrays(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str] | None]:
    """Validated (images, poses [N,4,4] or [N,3,4], focal per image, split or None)."""
    if not path.is_file():
        raise DatasetError(f"Dataset file {path} does not exist. Check the path.")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"Cannot read {path} as a .npz archive: {exc}.") from exc
    missing = [key for key in (IMAGES_KEY, POSES_KEY) if key not in arrays]
    if missing:
        raise DatasetError(
            f"{path} has no {' or '.join(missing)} array (it holds: {', '.join(arrays) or 'nothing'}). "
            f"A .npz dataset needs {IMAGES_KEY} [N,H,W,4] uint8, {POSES_KEY} [N,4,4] and focal."
        )
    images, poses = arrays[IMAGES_KEY], arrays[POSES_KEY]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (3, 4):
        raise DatasetError(
            f"{IMAGES_KEY} in {path} is {images.dtype} {list(images.shape)}; it must be uint8 [N,H,W,3 or 4]."
        )
    n = len(images)
    if poses.shape not in ((n, 4, 4), (n, 3, 4)):
        raise DatasetError(
            f"{POSES_KEY} in {path} has shape {list(poses.shape)}; with {n} images it must be "
            f"[{n},4,4] or [{n},3,4] (camera->world, OpenGL axes)."
        )
    return images, poses.astype(np.float64), _focals(arrays, path, n, images.shape[2]), _split(arrays, path, n)


def _focals(arrays: dict, path: Path, n: int, width: int) -> np.ndarray:
    if "focal" in arrays:
        focal = np.asarray(arrays["focal"], dtype=np.float64).reshape(-1)
    elif "camera_angle_x" in arrays:
        focal = 0.5 * width / np.tan(0.5 * np.asarray(arrays["camera_angle_x"], dtype=np.float64).reshape(-1))
    else:
        raise DatasetError(f"{path} gives no focal length: add 'focal' (pixels) or 'camera_angle_x' (radians).")
    if len(focal) not in (1, n):
        raise DatasetError(f"{path} holds {len(focal)} focal lengths for {n} images; give one or one per image.")
    return np.broadcast_to(focal, (n,))


def _split(arrays: dict, path: Path, n: int) -> list[str] | None:
    if "split" not in arrays:
        return None
    split = [str(s) for s in np.asarray(arrays["split"]).reshape(-1)]
    unknown = sorted(set(split) - set(SPLITS))
    if len(split) != n or unknown:
        raise DatasetError(
            f"'split' in {path} must give one of {', '.join(SPLITS)} for each of the {n} images "
            f"(it has {len(split)} entries{', including ' + ', '.join(unknown) if unknown else ''})."
        )
    return split


def _fit(image: np.ndarray, camera: Camera) -> np.ndarray:
    """The image at the camera's resolution (the config may have downscaled the cameras)."""
    if image.shape[1::-1] == (camera.width, camera.height):
        return image
    from PIL import Image

    # A box filter averages whole source pixels: right for integer downscales, no ringing at alpha edges.
    resized = Image.fromarray(image).resize((camera.width, camera.height), Image.Resampling.BOX)
    return np.asarray(resized)
