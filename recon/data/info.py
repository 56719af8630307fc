"""``recon info``: what a dataset holds, as a JSON-ready dict and as aligned text."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from recon.cameras import DISTORTION_NAMES, Camera
from recon.data.dataset import DataConfig, Dataset
from recon.data.transforms import FISHEYE_NAMES

SPLITS = ("train", "val", "test")


def describe(path: Path, config: DataConfig | None = None) -> dict:
    """Format, images per split, resolutions, camera models, intrinsics, distortion and bounds.

    Intrinsics and resolutions are those of the loaded cameras (after ``config``'s downscaling);
    the camera model and distortion are those of the files on disk (distorted images are
    undistorted to pinhole cameras when decoded). Bounds cover the sparse points when there are
    any, else the camera centres, in recon's normalised frame and in the input's world frame.
    """
    from recon.data import load_dataset

    dataset = load_dataset(Path(path), config)
    on_disk = [s if s is not None else c
               for s, c in zip(dataset.source_cameras or [None] * len(dataset), dataset.cameras)]
    normalized_points, bounds_of = _bounded_points(dataset)
    to_input = dataset.normalization.inverse()
    return {
        "path": str(path),
        "format": dataset.format,
        "images": len(dataset),
        "splits": {split: len(dataset.indices(split)) for split in SPLITS},
        "resolutions": dict(Counter(f"{c.width}x{c.height}" for c in dataset.cameras)),
        "camera_models": dict(Counter(_model(c) for c in on_disk)),
        "intrinsics": _intrinsics(dataset.cameras),
        "distortion": _distortion(on_disk),
        "alpha": dataset.has_alpha,
        "sparse_points": 0 if dataset.points is None else len(dataset.points),
        "bounds_of": bounds_of,
        "normalized": _extent(normalized_points, dataset.camera_centers()),
        "input": _extent(to_input.apply(normalized_points), to_input.apply(dataset.camera_centers())),
        "normalization": dataset.normalization.to_dict(),
    }


def format_description(desc: dict) -> str:
    """The description as aligned ``label  value`` lines."""
    splits = ", ".join(f"{name} {count}" for name, count in desc["splits"].items() if count)
    rows = [
        ("Dataset", desc["path"]),
        ("Format", desc["format"]),
        ("Images", f"{desc['images']} ({splits})"),
        ("Resolution", _counts(desc["resolutions"])),
        ("Camera model", _counts(desc["camera_models"])),
        ("Intrinsics", "  ".join(f"{k} {_value(v)}" for k, v in desc["intrinsics"].items())),
        ("Distortion", _distortion_text(desc["distortion"])),
        ("Alpha", "yes" if desc["alpha"] else "no"),
        ("Sparse points", str(desc["sparse_points"])),
    ]
    for frame, label in (("normalized", "normalised frame"), ("input", "input frame")):
        extent = desc[frame]
        rows.append((f"Bounds ({label})",
                     f"min {_vector(extent['min'])}  max {_vector(extent['max'])}  "
                     f"camera radius {extent['camera_radius']:.4g}"))
    rows.append(("Bounds of", desc["bounds_of"]))
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def _model(camera: Camera) -> str:
    if camera.fisheye:
        return "OPENCV_FISHEYE"
    return "OPENCV" if camera.is_distorted else "PINHOLE"


def _intrinsics(cameras: list[Camera]) -> dict:
    """fx fy cx cy: one value each when every camera shares it, else min / max / mean."""
    out = {}
    for key in ("fx", "fy", "cx", "cy"):
        values = np.array([getattr(c, key) for c in cameras])
        if np.all(values == values[0]):
            out[key] = float(values[0])
        else:
            out[key] = {"min": float(values.min()), "max": float(values.max()), "mean": float(values.mean())}
    return out


def _distortion(cameras: list[Camera]) -> dict | None:
    """None for pinhole images; else the shared coefficients, or how many cameras are distorted."""
    distorted = [c for c in cameras if c.is_distorted]
    if not distorted:
        return None
    first = distorted[0].distortion
    shared = len(distorted) == len(cameras) and all(
        c.distortion is not None and np.array_equal(c.distortion, first) for c in distorted)
    return {"cameras": len(distorted), "fisheye": any(c.fisheye for c in distorted),
            "coefficients": [float(v) for v in first] if shared else None}


def _bounded_points(dataset: Dataset) -> tuple[np.ndarray, str]:
    if dataset.points is not None and len(dataset.points):
        return dataset.points, "sparse points"
    return dataset.camera_centers(), "camera centres"


def _extent(points: np.ndarray, centers: np.ndarray) -> dict:
    """Axis-aligned bounds of ``points`` and the radius of the sphere around the cameras' mean."""
    radius = float(np.linalg.norm(centers - centers.mean(0), axis=1).max())
    return {"min": points.min(0).tolist(), "max": points.max(0).tolist(), "camera_radius": radius}


def _counts(counts: dict) -> str:
    if len(counts) == 1:
        return next(iter(counts))
    return ", ".join(f"{key} ({n})" for key, n in counts.items())


def _value(value) -> str:
    if isinstance(value, dict):
        return f"{value['min']:.6g}..{value['max']:.6g} (mean {value['mean']:.6g})"
    return f"{value:.6g}"


def _vector(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


def _distortion_text(distortion: dict | None) -> str:
    if distortion is None:
        return "none"
    kind = "fisheye" if distortion["fisheye"] else "radial-tangential"
    if distortion["coefficients"] is None:
        return f"{kind}, varies ({distortion['cameras']} distorted cameras); undistorted on load"
    names = FISHEYE_NAMES if distortion["fisheye"] else DISTORTION_NAMES
    values = "  ".join(f"{n} {v:.6g}" for n, v in zip(names, distortion["coefficients"]))
    return f"{kind}: {values}; undistorted on load"
