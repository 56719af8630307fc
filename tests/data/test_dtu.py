"""DTU (IDR/NeuS): world_mat/scale_mat decompose to the known cameras in the normalised frame,
masks become alpha, and inconsistent folders are DatasetErrors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recon.cameras import Camera, look_at
from recon.data import DataConfig, detect_format, load_dataset
from recon.data.dtu import decompose_projection
from recon.errors import DatasetError

RAW = DataConfig(normalize=False)  # compare cameras in the normalised (scale_mat) frame itself
W, H, N = 40, 30, 6
# scale_mat: normalised frame -> DTU world (the object sphere has radius 200 around (10, -5, 600)).
SCALE_MAT = np.array([[200.0, 0, 0, 10.0], [0, 200.0, 0, -5.0], [0, 0, 200.0, 600.0], [0, 0, 0, 1]])
# Overall scales of the stored 3x4 projections: any non-zero factor (even negative) is the same camera.
PROJECTION_SCALES = [1.0, 2.5, -1.3, 0.01, -40.0, 7.0]


def _cameras() -> list[Camera]:
    """Known cameras in the normalised frame, each with its own intrinsics."""
    return [Camera(W, H, 50.0 + i, 52.0 + i, 20.5 - 0.1 * i, 14.5 + 0.2 * i,
                   look_at([3.0 * np.cos(i), 3.0 * np.sin(i), 0.5 * i], [0, 0, 0]), name=f"{i:06d}.png")
            for i in range(N)]


def _write_dtu(root: Path, camera_file: str = "cameras_sphere.npz", masks: bool = True) -> None:
    matrices = {}
    for i, cam in enumerate(_cameras()):
        k = cam.K.copy()
        k[:2, 2] -= 0.5  # IDR/NeuS put pixel centres at integers
        world_mat = np.eye(4)
        # world_mat @ SCALE_MAT must project normalised points: world_mat = K [R|t] SCALE_MAT^-1.
        world_mat[:3] = PROJECTION_SCALES[i] * (k @ cam.world_to_camera[:3]) @ np.linalg.inv(SCALE_MAT)
        matrices[f"world_mat_{i}"] = world_mat
        matrices[f"scale_mat_{i}"] = SCALE_MAT
    np.savez(root / camera_file, **matrices)
    (root / "image").mkdir()
    for i in range(N):
        Image.new("RGB", (W, H), (10 * i, 20, 30)).save(root / "image" / f"{i:06d}.png")
    if masks:
        (root / "mask").mkdir()
        for i in range(N):
            mask = np.zeros((H, W, 3), np.uint8)
            mask[5 + i:20, 8:30] = 255  # DTU masks are 3-channel 0/255 images
            Image.fromarray(mask).save(root / "mask" / f"{i:03d}.png")


def _assert_matches_known(cameras: list[Camera]) -> None:
    """1e-9: one RQ decomposition and one 4x4 inverse of well-conditioned float64 matrices."""
    for got, want in zip(cameras, _cameras(), strict=True):
        assert (got.width, got.height, got.name) == (want.width, want.height, want.name)
        np.testing.assert_allclose([got.fx, got.fy, got.cx, got.cy], [want.fx, want.fy, want.cx, want.cy],
                                   rtol=0, atol=1e-9)
        np.testing.assert_allclose(got.world_to_camera, want.world_to_camera, rtol=0, atol=1e-9)


@pytest.mark.parametrize("camera_file", ["cameras_sphere.npz", "cameras.npz", "cameras_large.npz"])
def test_loaded_cameras_match_the_known_ones(tmp_path, camera_file):
    _write_dtu(tmp_path, camera_file)
    assert detect_format(tmp_path) == "dtu"
    data = load_dataset(tmp_path, RAW)
    assert data.format == "dtu"
    _assert_matches_known(data.cameras)


def test_decomposition_gives_positive_focals_and_proper_rotations():
    """Negative overall scales flip K's signs and R's determinant; both must be fixed."""
    rng = np.random.default_rng(0)
    for scale in (-3.0, 0.5):
        k = np.array([[60.0, 0.0, 20.0], [0, 61.0, 15.0], [0, 0, 1]])
        w2c = look_at(rng.normal(size=3) * 3, [0, 0, 0])
        got_k, got_w2c = decompose_projection(scale * k @ w2c[:3])
        np.testing.assert_allclose(got_k, k, atol=1e-9)
        np.testing.assert_allclose(got_w2c, w2c, atol=1e-12)


def test_masks_become_alpha(tmp_path):
    _write_dtu(tmp_path)
    data = load_dataset(tmp_path)
    assert data.has_alpha
    for i in (0, 4):
        image = data.image(i)
        assert image.shape == (H, W, 4)
        want = np.zeros((H, W), np.uint8)
        want[5 + i:20, 8:30] = 255
        np.testing.assert_array_equal(image[..., 3], want)
        assert image[0, 0, :3].tolist() == [10 * i, 20, 30]


def test_without_masks_images_stay_rgb(tmp_path):
    _write_dtu(tmp_path, masks=False)
    data = load_dataset(tmp_path)
    assert data.mask_paths is None and data.image(0).shape == (H, W, 3)


def test_image_without_world_mat_is_a_dataset_error(tmp_path):
    _write_dtu(tmp_path, masks=False)
    Image.new("RGB", (W, H)).save(tmp_path / "image" / "000099.png")
    with pytest.raises(DatasetError, match="no world_mat_6 for image 000099.png"):
        load_dataset(tmp_path)


def test_mask_count_mismatch_is_a_dataset_error(tmp_path):
    _write_dtu(tmp_path)
    (tmp_path / "mask" / "002.png").unlink()
    with pytest.raises(DatasetError, match="5 masks but .* 6 images"):
        load_dataset(tmp_path)


def test_corrupt_camera_file_is_a_dataset_error(tmp_path):
    _write_dtu(tmp_path)
    (tmp_path / "cameras_sphere.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(DatasetError, match="Cannot read"):
        load_dataset(tmp_path)


def test_the_monosdf_layout_loads_with_its_masks(tmp_path):
    """MonoSDF keeps NNNNNN_rgb.png and NNNNNN_mask.png beside cameras.npz in one folder: the
    same cameras and alpha as the image/ + mask/ layout."""
    _write_dtu(tmp_path, camera_file="cameras.npz")
    for i in range(N):
        (tmp_path / "image" / f"{i:06d}.png").rename(tmp_path / f"{i:06d}_rgb.png")
        (tmp_path / "mask" / f"{i:03d}.png").rename(tmp_path / f"{i:06d}_mask.png")
    (tmp_path / "image").rmdir()
    (tmp_path / "mask").rmdir()
    assert detect_format(tmp_path) == "dtu"
    data = load_dataset(tmp_path, RAW)
    for got, want in zip(data.cameras, _cameras(), strict=True):
        np.testing.assert_allclose([got.fx, got.cx], [want.fx, want.cx], rtol=0, atol=1e-9)
        np.testing.assert_allclose(got.world_to_camera, want.world_to_camera, rtol=0, atol=1e-9)
    image = data.image(4)
    assert image.shape == (H, W, 4) and image[0, 0, :3].tolist() == [40, 20, 30]
    assert image[5 + 4, 8, 3] == 255 and image[4, 8, 3] == 0
    (tmp_path / "000002_mask.png").unlink()
    with pytest.raises(DatasetError, match="5 \\*_mask.png but 6 \\*_rgb.png"):
        load_dataset(tmp_path)
