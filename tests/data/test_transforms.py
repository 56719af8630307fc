"""transforms.json: nerfstudio write->read round trip, Blender and instant-ngp fields, downscaled
folders, and one test per kind of bad input."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recon.cameras import Camera, look_at
from recon.data import DataConfig
from recon.data import transforms
from recon.data.transforms import read_ply_points, write_ply_points, write_transforms
from recon.errors import DatasetError

RAW = DataConfig(normalize=False)  # compare cameras in the file's own world frame


def _png(path: Path, size: tuple[int, int], value: int = 128, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    data = np.full((size[1], size[0], channels), value, np.uint8)
    Image.fromarray(data.squeeze(-1) if channels == 1 else data, mode).save(path)


def _ring(n: int, radius: float = 3.0) -> list[np.ndarray]:
    """World->camera matrices of n cameras on a tilted ring, looking at the origin."""
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return [look_at([radius * np.cos(a), radius * np.sin(a), 1.0 + 0.3 * i], [0, 0, 0])
            for i, a in enumerate(angles)]


def _assert_same_camera(a: Camera, b: Camera) -> None:
    """Equal to 1e-9: JSON keeps float64 digits exactly, so only the pose inversions round."""
    assert (a.width, a.height, a.fisheye) == (b.width, b.height, b.fisheye)
    np.testing.assert_allclose([a.fx, a.fy, a.cx, a.cy], [b.fx, b.fy, b.cx, b.cy], rtol=0, atol=1e-9)
    np.testing.assert_allclose(a.world_to_camera, b.world_to_camera, rtol=0, atol=1e-9)
    np.testing.assert_allclose(a.distortion, b.distortion, rtol=0, atol=1e-9)


def _tiny_blender(root: Path, angle: float = 0.8) -> None:
    """A Blender-style scene: one file per split, extension-less file paths, RGBA images."""
    poses = iter(_ring(6))
    for split, count in (("train", 3), ("val", 1), ("test", 2)):
        frames = []
        for i in range(count):
            _png(root / split / f"r_{i}.png", (10, 8), mode="RGBA")
            camera = Camera(10, 8, 1.0, 1.0, 5.0, 4.0, next(poses))
            frames.append({"file_path": f"./{split}/r_{i}",
                           "transform_matrix": camera.opengl_camera_to_world().tolist()})
        (root / f"transforms_{split}.json").write_text(
            json.dumps({"camera_angle_x": angle, "frames": frames}))


# -- nerfstudio round trip -----------------------------------------------------------------------
def test_round_trip_per_frame_intrinsics_distortion_masks_and_points(tmp_path):
    cameras = [
        Camera(12 + 2 * i, 10, 20.0 + i, 21.5 - i, 6.25 + 0.1 * i, 4.75, w2c,
               distortion=np.array([0.1, -0.02, 0.001 * i, -0.002, 0.003, -0.0004]), name=f"{i}")
        for i, w2c in enumerate(_ring(4))
    ]
    files = [f"images/frame_{i}.png" for i in range(4)]
    for cam, name in zip(cameras, files):
        _png(tmp_path / name, (cam.width, cam.height))
        _png(tmp_path / name.replace("images", "masks"), (cam.width, cam.height), 255, "L")
    points = np.random.default_rng(0).normal(size=(50, 3))
    colors = np.random.default_rng(1).integers(0, 256, size=(50, 3), dtype=np.uint8)
    write_ply_points(tmp_path / "sparse_pc.ply", points, colors)
    write_transforms(tmp_path / "transforms.json", cameras, files, ply_file_path="sparse_pc.ply",
                     frame_extra=[{"mask_path": f.replace("images", "masks")} for f in files])

    meta = json.loads((tmp_path / "transforms.json").read_text())
    assert meta["camera_model"] == "OPENCV" and "fl_x" not in meta and "fl_x" in meta["frames"][0]
    dataset = transforms.load(tmp_path, RAW)
    # The distorted cameras as written are the dataset's source cameras; its cameras are pinhole.
    for written, read in zip(cameras, dataset.source_cameras):
        _assert_same_camera(written, read)
    assert not any(c.is_distorted for c in dataset.cameras)
    assert dataset.mask_paths == [tmp_path / f.replace("images", "masks") for f in files]
    np.testing.assert_allclose(dataset.points, points, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(dataset.point_colors, colors)
    assert dataset.image(0).shape == (10, 12, 4)  # the mask became the alpha channel


def test_round_trip_shared_fisheye_intrinsics_and_normalization(tmp_path):
    cameras = [Camera(16, 12, 9.0, 9.5, 8.0, 6.0, w2c, distortion=np.array([0.05, -0.01, 0.002, 0.0]),
                      fisheye=True) for w2c in _ring(3)]
    files = [f"images/{i}.png" for i in range(3)]
    for name in files:
        _png(tmp_path / name, (16, 12))
    applied = np.eye(4)[[0, 2, 1, 3]]
    write_transforms(tmp_path / "transforms.json", cameras, files, applied_transform=applied,
                     extra={"aabb_scale": 16})

    meta = json.loads((tmp_path / "transforms.json").read_text())
    assert meta["camera_model"] == "OPENCV_FISHEYE" and meta["fl_x"] == 9.0 and "fl_x" not in meta["frames"][0]
    assert meta["k3"] == 0.002 and "p1" not in meta and meta["applied_transform"] == applied[:3].tolist()
    dataset = transforms.load(tmp_path / "transforms.json", DataConfig())
    # The default config normalises the (pinhole) cameras; the inverse gives back the written poses.
    # Intrinsics and distortion come from the source cameras (the files as written).
    back = dataset.normalization.inverse()
    for written, source, camera in zip(cameras, dataset.source_cameras, dataset.cameras):
        _assert_same_camera(written, replace(source, world_to_camera=camera.transformed(back).world_to_camera))


def test_ply_points_without_colours(tmp_path):
    write_ply_points(tmp_path / "p.ply", np.arange(6.0).reshape(2, 3))
    points, colors = read_ply_points(tmp_path / "p.ply")
    np.testing.assert_array_equal(points, [[0, 1, 2], [3, 4, 5]])
    assert colors is None


def test_nerfstudio_declared_split_by_filenames(tmp_path):
    cameras = [Camera(8, 8, 10.0, 10.0, 4.0, 4.0, w2c) for w2c in _ring(5)]
    files = [f"images/{i}.png" for i in range(5)]
    for name in files:
        _png(tmp_path / name, (8, 8))
    write_transforms(tmp_path / "transforms.json", cameras, files,
                     split={"train": files[:3], "val": [files[3]], "test": [files[4]]})
    dataset = transforms.load(tmp_path, RAW)
    assert dataset.split == ["train", "train", "train", "val", "test"]


# -- Blender / instant-ngp ------------------------------------------------------------------------
def test_blender_splits_extensionless_paths_and_focal(tmp_path):
    _tiny_blender(tmp_path, angle=0.8)
    assert transforms.detect(tmp_path)
    dataset = transforms.load(tmp_path, RAW)
    assert dataset.split == ["train"] * 3 + ["val"] + ["test"] * 2
    assert dataset.image_paths[3] == tmp_path / "val" / "r_0.png"
    focal = 0.5 * 10 / math.tan(0.4)
    assert [(c.fx, c.fy, c.cx, c.cy) for c in dataset.cameras] == [(focal, focal, 5.0, 4.0)] * 6
    assert dataset.image(0).shape == (8, 10, 4)


def test_instant_ngp_fields(tmp_path):
    _png(tmp_path / "images" / "a.jpg", (40, 30))
    w2c = _ring(1)[0]
    meta = {
        # fl_x wins over camera_angle_x (which instant-ngp also writes, rounded); no fl_y -> fy = fx.
        "camera_angle_x": 1.0, "fl_x": 33.0, "cx": 19.5, "cy": 15.25, "w": 40, "h": 30,
        "k1": 0.1, "k2": -0.05, "p1": 0.001, "p2": -0.002, "aabb_scale": 16,
        "frames": [{"file_path": "images/a.jpg", "sharpness": 50.0,
                    "transform_matrix": Camera(40, 30, 1, 1, 1, 1, w2c).opengl_camera_to_world().tolist()}],
    }
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    source = transforms.load(tmp_path, RAW).source_cameras[0]
    assert (source.fx, source.fy, source.cx, source.cy, source.width, source.height) == (33.0, 33.0, 19.5, 15.25, 40, 30)
    np.testing.assert_array_equal(source.distortion, [0.1, -0.05, 0.001, -0.002, 0.0, 0.0])
    np.testing.assert_allclose(source.world_to_camera, w2c, atol=1e-12)


def test_downscaled_images_folder_is_used(tmp_path):
    cameras = [Camera(20, 16, 30.0, 30.0, 10.0, 8.0, w2c) for w2c in _ring(3)]
    files = [f"images/{i}.png" for i in range(3)]
    for name in files:
        _png(tmp_path / name, (20, 16), value=10)
        _png(tmp_path / name.replace("images", "images_2"), (10, 8), value=200)
    write_transforms(tmp_path / "transforms.json", cameras, files)
    dataset = transforms.load(tmp_path, DataConfig(downscale=2, normalize=False))
    assert dataset.image_paths[1] == tmp_path / "images_2" / "1.png"
    cam = dataset.cameras[1]
    assert (cam.width, cam.height, cam.fx, cam.cx, cam.cy) == (10, 8, 15.0, 5.0, 4.0)
    assert dataset.image(1).shape == (8, 10, 3) and np.all(dataset.image(1) == 200)  # the copy, not a resize


# -- bad input -------------------------------------------------------------------------------------
def _one_frame_meta(folder: Path) -> dict:
    """A valid one-frame nerfstudio file's contents (its image written), for tests to break."""
    _png(folder / "a.png", (8, 8))
    return {"fl_x": 10.0, "frames": [{"file_path": "a.png", "transform_matrix": np.eye(4).tolist()}]}


def _write(folder: Path, meta: dict) -> Path:
    (folder / "transforms.json").write_text(json.dumps(meta))
    return folder


def test_malformed_json_names_the_line(tmp_path):
    (tmp_path / "transforms.json").write_text('{\n  "fl_x": 10,\n  "frames": [\n    {"file_path": "a.png",}\n  ]\n}')
    with pytest.raises(DatasetError, match=r"transforms.json is not valid JSON.*line 4"):
        transforms.load(tmp_path, RAW)


def test_missing_image_is_reported(tmp_path):
    meta = _one_frame_meta(tmp_path)
    meta["frames"].append({**meta["frames"][0], "file_path": "images/gone.png"})
    with pytest.raises(DatasetError, match=r"images/gone.png named in .*transforms.json is missing"):
        transforms.load(_write(tmp_path, meta), RAW)  # Blender style: the image gives the size
    with pytest.raises(DatasetError, match=r"references 1 missing file\(s\): .*images/gone.png"):
        transforms.load(_write(tmp_path, {**meta, "w": 8, "h": 8}), RAW)


def test_missing_frames(tmp_path):
    with pytest.raises(DatasetError, match="has no 'frames' list"):
        transforms.load(_write(tmp_path, {"fl_x": 10.0}), RAW)


def test_frame_without_transform_matrix(tmp_path):
    meta = _one_frame_meta(tmp_path)
    del meta["frames"][0]["transform_matrix"]
    with pytest.raises(DatasetError, match="Frame 0 of .* has no 'transform_matrix'"):
        transforms.load(_write(tmp_path, meta), RAW)


def test_nan_pose(tmp_path):
    meta = _one_frame_meta(tmp_path)
    meta["frames"][0]["transform_matrix"][0][3] = float("nan")  # json writes NaN and reads it back
    with pytest.raises(DatasetError, match="camera pose of .*a.png is degenerate"):
        transforms.load(_write(tmp_path, meta), RAW)


def test_no_intrinsics(tmp_path):
    meta = _one_frame_meta(tmp_path)
    del meta["fl_x"]
    with pytest.raises(DatasetError, match="no focal length.*camera_angle_x"):
        transforms.load(_write(tmp_path, meta), RAW)


def test_unsupported_camera_model(tmp_path):
    meta = {**_one_frame_meta(tmp_path), "camera_model": "EQUIRECTANGULAR"}
    with pytest.raises(DatasetError, match="EQUIRECTANGULAR"):
        transforms.load(_write(tmp_path, meta), RAW)


def test_nonexistent_path(tmp_path):
    assert not transforms.detect(tmp_path / "nothing")
    with pytest.raises(DatasetError, match="does not exist"):
        transforms.load(tmp_path / "nothing", RAW)


def test_detect(tmp_path):
    assert not transforms.detect(tmp_path)  # an empty folder
    _write(tmp_path, _one_frame_meta(tmp_path))
    assert transforms.detect(tmp_path) and transforms.detect(tmp_path / "transforms.json")
    assert not transforms.detect(tmp_path / "a.png")
