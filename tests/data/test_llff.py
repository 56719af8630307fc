"""LLFF poses_bounds.npy: known OpenCV cameras survive the (down, right, back) axes, the focal is
scaled to the photos on disk, images_N is honoured, and bad files are DatasetErrors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recon.cameras import Camera, look_at
from recon.data import DataConfig, detect_format, load_dataset
from recon.data.llff import read_poses_bounds
from recon.errors import DatasetError

RAW = DataConfig(normalize=False)  # compare cameras in the file's own world frame
FULL_W, FULL_H, FULL_FOCAL = 80, 60, 70.0  # the resolution the poses were computed at
N = 8


def _cameras(width: int, height: int) -> list[Camera]:
    """Forward-facing cameras on a small grid, all looking at a point 4 units ahead."""
    scale = width / FULL_W
    return [Camera(width, height, FULL_FOCAL * scale, FULL_FOCAL * scale, width / 2, height / 2,
                   look_at([0.3 * (i % 4), 0.2 * (i // 4), -4.0], [0.1 * i, 0, 0], up=[0, -1, 0]))
            for i in range(N)]


def _write_llff(root: Path, size: tuple[int, int] = (40, 30)) -> np.ndarray:
    """poses_bounds.npy for _cameras() written with LLFF's axes, and photos in images/."""
    rows = []
    for i, cam in enumerate(_cameras(FULL_W, FULL_H)):
        c2w = cam.camera_to_world
        right, down, forward = c2w[:3, 0], c2w[:3, 1], c2w[:3, 2]
        hwf = [FULL_H, FULL_W, FULL_FOCAL]
        pose = np.stack([down, right, -forward, c2w[:3, 3], hwf], axis=1)  # columns: down right back
        rows.append(np.r_[pose.ravel(), 2.0 + i, 10.0 + i])
    data = np.array(rows)
    np.save(root / "poses_bounds.npy", data)
    (root / "images").mkdir()
    for i in range(N):
        Image.new("RGB", size, (i, 0, 0)).save(root / "images" / f"IMG_{i:04d}.JPG")
    return data


def test_loaded_cameras_match_the_known_ones(tmp_path):
    """Exact inputs and one rigid inversion each way: 1e-9 leaves only float64 rounding."""
    _write_llff(tmp_path)
    data = load_dataset(tmp_path, RAW)
    assert data.format == "llff" and detect_format(tmp_path) == "llff"
    for got, want in zip(data.cameras, _cameras(40, 30)):
        assert (got.width, got.height) == (40, 30)
        np.testing.assert_allclose([got.fx, got.fy, got.cx, got.cy], [35.0, 35.0, 20.0, 15.0],
                                   rtol=0, atol=1e-12)
        np.testing.assert_allclose(got.world_to_camera, want.world_to_camera, rtol=0, atol=1e-9)
    assert [p.name for p in data.image_paths] == [f"IMG_{i:04d}.JPG" for i in range(N)]


def test_axes_agree_with_nerfs_llff_reader(tmp_path):
    """NeRF's load_llff turns the rows into OpenGL camera->world as [x, y, z] = [right, -down, back];
    our cameras must be the same cameras (checked through Camera.from_opengl, a separate path)."""
    rows = _write_llff(tmp_path)
    poses = rows[:, :15].reshape(-1, 3, 5)
    opengl = np.concatenate([poses[:, :, 1:2], -poses[:, :, 0:1], poses[:, :, 2:4]], axis=2)
    data = load_dataset(tmp_path, RAW)
    for got, c2w in zip(data.cameras, opengl):
        want = Camera.from_opengl(c2w, 40, 30, 35.0, 35.0, 20.0, 15.0)
        np.testing.assert_allclose(got.world_to_camera, want.world_to_camera, rtol=0, atol=1e-9)


def test_near_far_bounds_are_read(tmp_path):
    _write_llff(tmp_path)
    poses, bounds = read_poses_bounds(tmp_path / "poses_bounds.npy")
    assert poses.shape == (N, 3, 5)
    np.testing.assert_array_equal(bounds, np.stack([2.0 + np.arange(N), 10.0 + np.arange(N)], axis=1))


def test_images_n_folder_is_used_for_downscale(tmp_path):
    _write_llff(tmp_path)
    (tmp_path / "images_4").mkdir()
    for i in range(N):
        Image.new("RGB", (20, 15), (i, 1, 1)).save(tmp_path / "images_4" / f"IMG_{i:04d}.png")
    data = load_dataset(tmp_path, DataConfig(downscale=4, normalize=False))
    assert data.image_paths[0].parent.name == "images_4"
    assert data.image(3).shape == (15, 20, 3) and data.image(3)[0, 0].tolist() == [3, 1, 1]
    np.testing.assert_allclose([data.cameras[0].fx, data.cameras[0].cx], [FULL_FOCAL / 4, 10.0], rtol=1e-12)


@pytest.mark.parametrize("shape", [(N, 15), (N, 3, 5), (0, 17)])
def test_wrong_shape_is_a_dataset_error(tmp_path, shape):
    _write_llff(tmp_path)
    np.save(tmp_path / "poses_bounds.npy", np.zeros(shape))
    with pytest.raises(DatasetError, match=r"must be \[N, 17\]"):
        load_dataset(tmp_path)


def test_image_count_mismatch_is_a_dataset_error(tmp_path):
    _write_llff(tmp_path)
    (tmp_path / "images" / "IMG_0005.JPG").unlink()
    with pytest.raises(DatasetError, match="7 images but poses_bounds.npy has 8 poses"):
        load_dataset(tmp_path)


def test_photos_of_another_aspect_ratio_are_a_dataset_error(tmp_path):
    _write_llff(tmp_path, size=(30, 40))  # portrait photos for landscape poses
    with pytest.raises(DatasetError, match="aspect ratio"):
        load_dataset(tmp_path)


def test_unreadable_file_is_a_dataset_error(tmp_path):
    _write_llff(tmp_path)
    (tmp_path / "poses_bounds.npy").write_bytes(b"not numpy")
    with pytest.raises(DatasetError, match="Cannot read"):
        load_dataset(tmp_path)


def test_an_llff_scene_with_only_images_4_loads(tmp_path):
    """Scenes shipped with only images_4 (no full-size photos) load at that size."""
    import shutil

    _write_llff(tmp_path)
    (tmp_path / "images_4").mkdir()
    for i in range(N):
        Image.new("RGB", (20, 15), (i, 1, 1)).save(tmp_path / "images_4" / f"IMG_{i:04d}.png")
    shutil.rmtree(tmp_path / "images")
    data = load_dataset(tmp_path, DataConfig(normalize=False))
    assert data.image_paths[0].parent.name == "images_4"
    assert data.image(3).shape == (15, 20, 3)
    np.testing.assert_allclose(data.cameras[0].fx, FULL_FOCAL / 4, rtol=1e-12)
