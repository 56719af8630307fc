"""Dataset loading: one module per input format, auto-detected from the folder's contents."""

from __future__ import annotations

import importlib
from pathlib import Path

from recon.data.dataset import DataConfig, Dataset
from recon.errors import DatasetError

# Format name -> module in recon.data with `detect(path) -> bool` and `load(path, config) -> Dataset`.
# Order matters: the first format whose `detect` accepts the folder wins.
FORMATS = {
    "transforms": "recon.data.transforms",  # nerfstudio / Blender / instant-ngp transforms*.json
    "colmap": "recon.data.colmap",  # sparse/0 (binary or text)
    "llff": "recon.data.llff",  # poses_bounds.npy
    "dtu": "recon.data.dtu",  # cameras*.npz (IDR / NeuS)
    "npz": "recon.data.npz",  # a single .npz of RGBA images and OpenGL poses (lego_100.npz)
}


def detect_format(path: Path) -> str:
    """Name of the format of the dataset at ``path``; raises a DatasetError naming what is expected."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"Dataset path {path} does not exist. Check the path.")
    for name, module in FORMATS.items():
        if importlib.import_module(module).detect(path):
            return name
    raise DatasetError(
        f"Cannot tell the dataset format of {path}. Expected one of: transforms.json "
        "(nerfstudio/Blender/instant-ngp), sparse/0 (COLMAP), poses_bounds.npy (LLFF), "
        "cameras.npz (DTU), or a .npz of images and poses. For a plain folder of photos run "
        "`recon process IMAGES --out DIR` first."
    )


def load_dataset(path: Path, config: DataConfig | None = None, format: str | None = None) -> Dataset:
    """Load the dataset at ``path`` (format auto-detected unless given)."""
    config = config or DataConfig()
    format = format or detect_format(Path(path))
    if format not in FORMATS:
        raise DatasetError(f"Unknown dataset format {format!r}; choose one of {', '.join(FORMATS)}.")
    return importlib.import_module(FORMATS[format]).load(Path(path), config)


__all__ = ["DataConfig", "Dataset", "FORMATS", "detect_format", "load_dataset"]
