"""The single-file .npz dataset: images straight from the archive, OpenGL poses, split, errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from recon.cameras import Camera, look_at
from recon.data import DataConfig, npz
from recon.errors import DatasetError

RAW = DataConfig(normalize=False)


def _archive(path: Path, n: int = 3, size: tuple[int, int] = (8, 6), **arrays) -> dict:
    """Write a small .npz dataset with distinct images and cameras looking at the origin."""
    rng = np.random.default_rng(0)
    w2c = [look_at([3 * math.cos(a), 3 * math.sin(a), 1.0], [0, 0, 0])
           for a in np.linspace(0, 2 * np.pi, n, endpoint=False)]
    content = {
        "images_rgba": rng.integers(0, 256, size=(n, size[1], size[0], 4), dtype=np.uint8),
        "poses": np.stack([Camera(1, 1, 1, 1, 0, 0, m).opengl_camera_to_world() for m in w2c]),
        "focal": np.float64(7.5),
        **arrays,
    }
    np.savez(path, **{k: v for k, v in content.items() if v is not None})
    return content | {"w2c": w2c}


def test_cameras_images_and_split(tmp_path):
    content = _archive(tmp_path / "s.npz", split=np.array(["train", "test", "val"]))
    assert npz.detect(tmp_path / "s.npz")
    dataset = npz.load(tmp_path / "s.npz", RAW)
    assert dataset.split == ["train", "test", "val"]
    assert dataset.image_paths[2] == Path(f"{tmp_path / 's.npz'}#2")
    assert [c.name for c in dataset.cameras] == ["s_0", "s_1", "s_2"]
    for i, camera in enumerate(dataset.cameras):
        assert (camera.width, camera.height, camera.fx, camera.fy, camera.cx, camera.cy) == (8, 6, 7.5, 7.5, 4.0, 3.0)
        np.testing.assert_allclose(camera.world_to_camera, content["w2c"][i], atol=1e-12)
        np.testing.assert_array_equal(dataset.image(i), content["images_rgba"][i])


def test_downscale_resizes_cached_images(tmp_path):
    _archive(tmp_path / "s.npz", size=(8, 6))
    dataset = npz.load(tmp_path / "s.npz", DataConfig(downscale=2, normalize=False))
    assert dataset.image(0).shape == (3, 4, 4) and dataset.cameras[0].fx == 3.75
    assert dataset.split == ["test", "train", "train"]  # no split stored: every 8th is a test image


def test_focal_from_camera_angle_x(tmp_path):
    _archive(tmp_path / "s.npz", focal=None, camera_angle_x=np.float64(0.9))
    dataset = npz.load(tmp_path / "s.npz", RAW)
    assert dataset.cameras[0].fx == pytest.approx(4.0 / math.tan(0.45), rel=1e-15)


def test_nan_pose_names_the_image(tmp_path):
    poses = _archive(tmp_path / "s.npz")["poses"]
    poses[1, 2, 2] = np.nan
    _archive(tmp_path / "s.npz", poses=poses)
    with pytest.raises(DatasetError, match=r"s.npz#1 is degenerate"):
        npz.load(tmp_path / "s.npz", RAW)


@pytest.mark.parametrize(("arrays", "message"), [
    ({"poses": None}, "has no poses array"),
    ({"poses": np.zeros((2, 4, 4))}, r"with 3 images it must be \[3,4,4\]"),
    ({"split": np.array(["train", "holdout", "test"])}, "including holdout"),
    ({"images_rgba": np.zeros((3, 6, 8, 4), np.float32)}, "must be uint8"),
])
def test_bad_archives(tmp_path, arrays, message):
    _archive(tmp_path / "s.npz", **arrays)
    with pytest.raises(DatasetError, match=message):
        npz.load(tmp_path / "s.npz", RAW)


def test_detect_rejects_other_files(tmp_path):
    np.savez(tmp_path / "cameras.npz", world_mat_0=np.eye(4))  # a DTU camera file
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    assert not npz.detect(tmp_path / "cameras.npz")
    assert not npz.detect(tmp_path / "broken.npz")
    assert not npz.detect(tmp_path)
    with pytest.raises(DatasetError, match="Cannot read .*broken.npz"):
        npz.load(tmp_path / "broken.npz", RAW)
