"""transforms.json datasets: nerfstudio, Blender / NeRF-synthetic and instant-ngp.

All three share one layout: a JSON file with a ``frames`` list, each frame holding a ``file_path``
(relative to the JSON's folder) and a ``transform_matrix`` (camera->world, OpenGL axes: y up,
-z forward), plus intrinsics at the top level or per frame. They differ in how intrinsics are given:

* nerfstudio: ``camera_model`` (PINHOLE, SIMPLE_PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV,
  OPENCV_FISHEYE), ``fl_x fl_y cx cy w h`` and ``k1 k2 k3 k4 p1 p2``, at the top level or per frame
  (a frame's keys override the top level's); optional ``mask_path`` and ``depth_file_path``
  (camera-z depth: ``.npy`` floats in the file's units, or 16-bit PNG millimetres) per frame,
  ``ply_file_path`` (sparse points) and ``train_filenames`` / ``val_filenames`` /
  ``test_filenames``.
* Blender / NeRF-synthetic: ``camera_angle_x`` only (focal = W / 2 / tan(angle / 2), square
  pixels, centred principal point), one file per split (``transforms_{train,val,test}.json``) and
  file paths without an extension (``./train/r_0`` means ``train/r_0.png``).
* instant-ngp: ``fl_x`` (optionally ``fl_y``, ``camera_angle_x/y``), ``k1 k2 p1 p2`` and
  ``aabb_scale``; ``aabb_scale`` and instant-ngp's own ``scale``/``offset`` only tune that renderer
  and are ignored.

World frame. The frame of the file's poses is the input world frame: exports are mapped back to it.
nerfstudio's ``applied_transform`` records how ``ns-process-data`` rotated the SfM (COLMAP) frame
into the file's frame; the poses *and* the ``ply_file_path`` points are already written in the
file's frame, so recon has nothing to apply and does not read it. :func:`write_transforms` writes it
for the tools that map the file's frame back to the SfM one.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import numpy as np

from recon.cameras import DISTORTION_NAMES, Camera
from recon.data.dataset import IMAGE_SUFFIXES, DataConfig, Dataset, build_dataset, image_size
from recon.errors import DatasetError

SPLITS = ("train", "val", "test")
SPLIT_FILES = {split: f"transforms_{split}.json" for split in SPLITS}

# nerfstudio camera models recon reads. The perspective ones all use the radial-tangential model
# (SIMPLE_RADIAL and RADIAL are prefixes of OPENCV: their unused coefficients are simply absent).
PERSPECTIVE_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")
FISHEYE_MODEL = "OPENCV_FISHEYE"
FISHEYE_NAMES = ("k1", "k2", "k3", "k4")
# Folders of nerfstudio's processed datasets that have downscaled copies (images_2, masks_4, ...).
DOWNSCALED_FOLDERS = ("images", "masks")


def detect(path: Path) -> bool:
    """A folder holding transforms.json or transforms_train.json, or such a JSON file itself."""
    path = Path(path)
    if path.is_file():
        return path.suffix.lower() == ".json"
    return (path / "transforms.json").is_file() or (path / SPLIT_FILES["train"]).is_file()


def load(path: Path, config: DataConfig) -> Dataset:
    """Read a nerfstudio, Blender or instant-ngp dataset (see the module docstring).

    ``path`` is a folder (its transforms.json, else its transforms_{train,val,test}.json with the
    split their names declare) or one JSON file, read alone.
    """
    files = _json_files(Path(path))
    root = files[0][0].parent
    cameras: list[Camera] = []
    image_paths: list[Path] = []
    mask_paths: list[Path | None] = []
    depth_paths: list[Path | None] = []
    labels: list[str | None] = []  # a frame's declared split, None where nothing declares one
    plys: list[Path] = []
    for file, file_split in files:
        meta = _read_json(file)
        frames = _frames(meta, file)
        declared = _declared_split(meta, file.parent) if file_split is None else None
        for index, frame in enumerate(frames):
            image = _resolve_image(file.parent, _field(frame, "file_path", file, index))
            label = file_split
            if declared is not None:
                label = declared.get(image)
                if label is None:  # like nerfstudio, use only the frames the lists name
                    warnings.warn(f"{file}: {image.name} is in none of the split lists; skipped.",
                                  stacklevel=2)
                    continue
            cameras.append(_camera(meta, frame, image, file, index, config.downscale))
            image_paths.append(_downscaled(image, file.parent, config.downscale))
            mask = frame.get("mask_path")
            mask_paths.append(None if mask is None else
                              _downscaled(_resolve_image(file.parent, mask), file.parent, config.downscale))
            depth = frame.get("depth_file_path")
            depth_paths.append(None if depth is None else _resolve(file.parent, depth))
            labels.append(label)
        ply = meta.get("ply_file_path")
        if ply and _resolve(file.parent, ply) not in plys:
            plys.append(_resolve(file.parent, ply))
    points = colors = None
    if plys:
        read = [read_ply_points(p) for p in plys]
        points = np.concatenate([p for p, _ in read])
        colors = None if any(c is None for _, c in read) else np.concatenate([c for _, c in read])
    return build_dataset(
        cameras, image_paths, format="transforms", root=root, config=config,
        split=labels if labels and all(label is not None for label in labels) else None,
        mask_paths=mask_paths if any(m is not None for m in mask_paths) else None,
        points=points, point_colors=colors,
        depth_paths=depth_paths if any(d is not None for d in depth_paths) else None,
    )


# -- reading ------------------------------------------------------------------------------------
def _json_files(path: Path) -> list[tuple[Path, str | None]]:
    """The JSON files to read, each with the split it declares by its name (Blender) or None."""
    if path.is_file():
        return [(path, None)]
    if not path.is_dir():
        raise DatasetError(f"Dataset path {path} does not exist. Check the path.")
    if (path / "transforms.json").is_file():
        return [(path / "transforms.json", None)]
    found = [(path / name, split) for split, name in SPLIT_FILES.items() if (path / name).is_file()]
    if not found:
        raise DatasetError(
            f"{path} holds neither transforms.json nor transforms_train.json. "
            "Point recon at the folder that holds the dataset's camera file."
        )
    return found


def _read_json(file: Path) -> dict:
    try:
        meta = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{file} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}. "
            "Fix the file (a missing comma or bracket is the usual cause)."
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"Cannot read {file}: {exc}.") from exc
    if not isinstance(meta, dict):
        raise DatasetError(f"{file} must hold a JSON object with a 'frames' list.")
    return meta


def _frames(meta: dict, file: Path) -> list[dict]:
    frames = meta.get("frames")
    if not isinstance(frames, list) or not all(isinstance(f, dict) for f in frames):
        raise DatasetError(
            f"{file} has no 'frames' list. A transforms file lists its images under "
            "\"frames\": [{\"file_path\": ..., \"transform_matrix\": ...}, ...]."
        )
    return frames


def _field(frame: dict, key: str, file: Path, index: int):
    if key not in frame:
        raise DatasetError(f"Frame {index} of {file} has no '{key}'. Add it or remove the frame.")
    return frame[key]


def _number(value, key: str, file: Path, index: int | None) -> float:
    where = f"frame {index} of {file}" if index is not None else str(file)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DatasetError(f"'{key}' in {where} is {value!r}, not a number.") from None


def _camera(meta: dict, frame: dict, image: Path, file: Path, index: int, downscale: int) -> Camera:
    """The frame's camera in the input world frame, at the full (un-downscaled) resolution."""

    def get(key: str):  # a frame's own value overrides the file's
        value = frame.get(key, meta.get(key))
        return None if value is None else _number(value, key, file, index if key in frame else None)

    width, height = get("w"), get("h")
    if width is None or height is None:
        width, height = _full_size(image, file, downscale)
    fx, fy = get("fl_x"), get("fl_y")
    if fx is None and get("camera_angle_x") is not None:
        fx = 0.5 * width / math.tan(0.5 * get("camera_angle_x"))
    if fy is None and get("camera_angle_y") is not None:
        fy = 0.5 * height / math.tan(0.5 * get("camera_angle_y"))
    if fx is None:
        raise DatasetError(
            f"{file} gives no focal length for frame {index}. Add 'fl_x' (and 'fl_y') in pixels "
            "(nerfstudio / instant-ngp) or 'camera_angle_x' in radians (Blender)."
        )
    cx, cy = get("cx"), get("cy")
    model = str(meta.get("camera_model", "OPENCV")).upper()
    if model == FISHEYE_MODEL:
        names, fisheye = FISHEYE_NAMES, True
    elif model in PERSPECTIVE_MODELS:
        names, fisheye = DISTORTION_NAMES, False
    else:
        raise DatasetError(
            f"{file} uses camera_model {model}, which recon cannot read. Supported: "
            f"{', '.join(PERSPECTIVE_MODELS + (FISHEYE_MODEL,))}; convert the images to one of them."
        )
    coefficients = np.array([get(name) or 0.0 for name in names])
    try:
        pose = np.asarray(_field(frame, "transform_matrix", file, index), dtype=np.float64)
    except (TypeError, ValueError):
        pose = np.zeros(0)
    if pose.shape not in ((4, 4), (3, 4)):
        raise DatasetError(
            f"The transform_matrix of frame {index} of {file} is not a 4x4 (or 3x4) matrix of numbers."
        )
    return Camera.from_opengl(
        pose, round(width), round(height), fx, fy if fy is not None else fx,
        cx if cx is not None else width / 2, cy if cy is not None else height / 2,
        distortion=coefficients if fisheye or coefficients.any() else None, fisheye=fisheye,
        name=Path(os.path.relpath(image, file.parent)).as_posix(),
    )


def _resolve(base: Path, file_path) -> Path:
    """A path from the JSON, relative to the JSON's folder unless absolute."""
    return Path(os.path.normpath(base / str(file_path)))


def _resolve_image(base: Path, file_path) -> Path:
    """The image a frame names; Blender's extension-less paths (``./train/r_0``) get theirs."""
    path = _resolve(base, file_path)
    if path.is_file() or path.suffix.lower() in IMAGE_SUFFIXES:
        return path
    for suffix in IMAGE_SUFFIXES:
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    return path.with_name(path.name + ".png")  # missing: build_dataset reports it


def _downscaled(path: Path, base: Path, factor: int) -> Path:
    """``images/x.png`` -> ``images_N/x.png`` when ``factor`` is N > 1 and that copy exists.

    Cameras stay at the full resolution: build_dataset scales them by 1/N, which is the size of
    the copy (any rounding difference is resized away when the image is decoded).
    """
    if factor <= 1:
        return path
    try:
        parts = path.relative_to(base).parts
    except ValueError:
        return path
    if len(parts) < 2 or parts[0] not in DOWNSCALED_FOLDERS:
        return path
    candidate = base.joinpath(f"{parts[0]}_{factor}", *parts[1:])
    return candidate if candidate.is_file() else path


def _full_size(image: Path, file: Path, factor: int) -> tuple[int, int]:
    """(width, height) of a frame's image at full resolution, for files that give no w/h."""
    if image.is_file():
        return image_size(image)
    smaller = _downscaled(image, file.parent, factor)
    if smaller != image:
        width, height = image_size(smaller)
        return width * factor, height * factor
    raise DatasetError(
        f"The image {image} named in {file} is missing (and the file gives no 'w'/'h' to size "
        "its camera). Restore the image or remove its frame from the camera file."
    )


def _declared_split(meta: dict, base: Path) -> dict[Path, str] | None:
    """Image path -> split from nerfstudio's ``{train,val,test}_filenames``, or None if absent."""
    lists = {split: meta.get(f"{split}_filenames") for split in SPLITS}
    if all(names is None for names in lists.values()):
        return None
    return {_resolve_image(base, name): split
            for split, names in lists.items() for name in (names or [])}


# -- sparse points ------------------------------------------------------------------------------
def read_ply_points(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Points [N,3] float64 and uint8 colours [N,3] (None when the file has none) of a .ply."""
    from plyfile import PlyData, PlyParseError

    path = Path(path)
    if not path.is_file():
        raise DatasetError(
            f"The point cloud {path} named by ply_file_path is missing. Restore it or remove "
            "'ply_file_path' from the camera file."
        )
    try:
        vertex = PlyData.read(str(path))["vertex"]
        points = np.stack([vertex[axis] for axis in "xyz"], axis=-1).astype(np.float64)
    except (KeyError, ValueError, OSError, PlyParseError) as exc:
        raise DatasetError(f"Cannot read points from {path}: {exc}. It must be a .ply point cloud.") from exc
    names = vertex.data.dtype.names
    if not all(c in names for c in ("red", "green", "blue")):
        return points, None
    colors = np.stack([vertex[c] for c in ("red", "green", "blue")], axis=-1)
    return points, colors.astype(np.uint8)


def write_ply_points(path: Path, points: np.ndarray, colors: np.ndarray | None = None) -> None:
    """Write points [N,3] (float64, so a round trip is exact) and optional uint8 colours [N,3]."""
    from plyfile import PlyData, PlyElement

    points = np.asarray(points, dtype=np.float64)
    fields = [("x", "f8"), ("y", "f8"), ("z", "f8")]
    if colors is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vertex = np.empty(len(points), dtype=fields)
    for i, axis in enumerate("xyz"):
        vertex[axis] = points[:, i]
    if colors is not None:
        for i, channel in enumerate(("red", "green", "blue")):
            vertex[channel] = np.asarray(colors)[:, i]
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(path))


# -- writing ------------------------------------------------------------------------------------
def write_transforms(
    path: Path,
    cameras: list[Camera],
    file_paths: list[str],
    *,
    ply_file_path: str | None = None,
    applied_transform: np.ndarray | None = None,
    split: dict[str, list[str]] | None = None,
    extra: dict | None = None,
    frame_extra: list[dict] | None = None,
) -> None:
    """Write a nerfstudio transforms.json that :func:`load` (and nerfstudio) read back.

    ``file_paths`` are relative to the JSON's folder. Intrinsics go to the top level when every
    camera shares them, else into each frame. ``camera_model`` is OPENCV_FISHEYE for fisheye
    cameras, OPENCV when any camera is distorted, else PINHOLE. ``split`` maps "train"/"val"/"test"
    to file paths (written as ``*_filenames``); ``extra`` adds top-level keys (``aabb_scale``, ...)
    and ``frame_extra`` per-frame ones (``mask_path``, ``depth_file_path``, ...).
    """
    if len(cameras) != len(file_paths):
        raise ValueError(f"{len(cameras)} cameras but {len(file_paths)} file paths")
    if frame_extra is not None and len(frame_extra) != len(cameras):
        raise ValueError(f"{len(cameras)} cameras but {len(frame_extra)} frame_extra entries")
    if len({c.fisheye for c in cameras}) > 1:
        raise ValueError("nerfstudio's camera_model is global: cameras cannot mix fisheye and perspective")
    fisheye = bool(cameras) and cameras[0].fisheye
    distorted = any(c.is_distorted for c in cameras)
    model = FISHEYE_MODEL if fisheye else "OPENCV" if distorted else "PINHOLE"
    intrinsics = [_intrinsic_fields(c, model) for c in cameras]
    shared = all(i == intrinsics[0] for i in intrinsics)
    out: dict = {"camera_model": model}
    if shared and intrinsics:
        out.update(intrinsics[0])
    if applied_transform is not None:
        out["applied_transform"] = np.asarray(applied_transform, dtype=np.float64)[:3].tolist()
    if ply_file_path is not None:
        out["ply_file_path"] = ply_file_path
    for name, names in (split or {}).items():
        out[f"{name}_filenames"] = list(names)
    clash = set(extra or {}) & (set(out) | {"frames"})
    if clash:
        raise ValueError(f"extra keys {sorted(clash)} would overwrite keys write_transforms sets")
    out.update(extra or {})
    out["frames"] = [
        {"file_path": file_path,
         "transform_matrix": camera.opengl_camera_to_world().tolist(),
         **({} if shared else intrinsics[i]),
         **(frame_extra[i] if frame_extra is not None else {})}
        for i, (camera, file_path) in enumerate(zip(cameras, file_paths))
    ]
    Path(path).write_text(json.dumps(out, indent=2))


def _intrinsic_fields(camera: Camera, model: str) -> dict:
    fields = {"w": int(camera.width), "h": int(camera.height), "fl_x": float(camera.fx),
              "fl_y": float(camera.fy), "cx": float(camera.cx), "cy": float(camera.cy)}
    if model == "PINHOLE":
        return fields
    names = FISHEYE_NAMES if model == FISHEYE_MODEL else DISTORTION_NAMES
    # recon's coefficient arrays may be prefixes (COLMAP's SIMPLE_RADIAL gives k1 only).
    coefficients = np.zeros(len(names))
    if camera.distortion is not None:
        coefficients[: len(camera.distortion)] = camera.distortion
    return fields | {name: float(v) for name, v in zip(names, coefficients)}
