"""COLMAP sparse models: exact write->read round trips, agreement with pycolmap (an independent
reader/writer and projector), loaded cameras that reproject the model's points onto its
observations, images_N, auto-detection, and one test per kind of bad input."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
import pycolmap
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from recon.cameras import look_at
from recon.data import DataConfig, detect_format, load_dataset
from recon.data.colmap import (
    CAMERA_MODELS, SUPPORTED_MODELS, ColmapCamera, ColmapImage, ColmapModel, ColmapPoint3D,
    camera_from_colmap, read_model, write_model,
)
from recon.data.dataset import read_image
from recon.data.undistort import distort_points, undistort_image
from recon.errors import DatasetError

RAW = DataConfig(normalize=False)  # compare cameras in the model's own world frame
SIZE = (64, 48)
# Plausible parameters (focal, principal point, small distortion) for each supported model.
PARAMS = {
    "SIMPLE_PINHOLE": [70.0, 32.0, 24.0],
    "PINHOLE": [70.0, 68.0, 31.0, 25.0],
    "SIMPLE_RADIAL": [70.0, 32.0, 24.0, -0.08],
    "RADIAL": [70.0, 32.0, 24.0, -0.08, 0.02],
    "OPENCV": [70.0, 68.0, 31.0, 25.0, -0.08, 0.02, 0.003, -0.002],
    "SIMPLE_FISHEYE": [50.0, 32.0, 24.0],
    "FISHEYE": [50.0, 52.0, 31.0, 25.0],
    "SIMPLE_RADIAL_FISHEYE": [50.0, 32.0, 24.0, 0.05],
    "RADIAL_FISHEYE": [50.0, 32.0, 24.0, 0.05, -0.01],
    "OPENCV_FISHEYE": [50.0, 52.0, 31.0, 25.0, 0.05, -0.01, 0.004, -0.001],
    "FULL_OPENCV": [70.0, 68.0, 31.0, 25.0, -0.08, 0.02, 0.003, -0.002, 0.001, 0.01, 0.0, 0.0],
}


def _qvec(w2c: np.ndarray) -> np.ndarray:
    """COLMAP's (w, x, y, z) quaternion of a rotation, computed with scipy (not with recon)."""
    x, y, z, w = Rotation.from_matrix(w2c[:3, :3]).as_quat()
    return np.array([w, x, y, z])


def _write_scene(root: Path, model_name: str = "PINHOLE", binary: bool = True, n: int = 8,
                 size: tuple[int, int] = SIZE, model_dir: str = "sparse/0") -> ColmapModel:
    """A COLMAP scene of n cameras (one COLMAP camera each) on a ring around 40 random points.

    The observations are the points projected by pycolmap, so they hold COLMAP's own convention.
    """
    rng = np.random.default_rng(0)
    xyz = rng.uniform(-0.5, 0.5, (40, 3))
    model = ColmapModel()
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    for i, a in enumerate(angles):
        w2c = look_at([3 * np.cos(a), 3 * np.sin(a), 1.0 + 0.2 * i], [0, 0, 0])
        params = np.array(PARAMS[model_name]) * (1 + 0.01 * i)  # a different camera per image
        model.cameras[i + 1] = ColmapCamera(i + 1, model_name, size[0], size[1], params)
        oracle = pycolmap.Camera(model=model_name, width=size[0], height=size[1], params=params)
        xys = oracle.img_from_cam(xyz @ w2c[:3, :3].T + w2c[:3, 3])
        name = f"view_{i:02d}.png"
        model.images[i + 10] = ColmapImage(i + 10, _qvec(w2c), w2c[:3, 3], i + 1, name, xys,
                                           np.arange(len(xyz), dtype=np.int64))
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / "images" / name)
    for j, p in enumerate(xyz):
        track = np.array([[im_id, j] for im_id in model.images], dtype=np.int64)
        model.points[j] = ColmapPoint3D(j, p, rng.integers(0, 256, 3).astype(np.uint8), 0.5, track)
    write_model(model, root / model_dir, binary=binary)
    return model


def _assert_models_equal(a: ColmapModel, b: ColmapModel) -> None:
    """Every field of every record identical (exact: the files keep every float64 bit)."""
    for group in ("cameras", "images", "points"):
        records_a, records_b = getattr(a, group), getattr(b, group)
        assert list(records_a) == list(records_b)
        for key in records_a:
            for f in fields(records_a[key]):
                va, vb = getattr(records_a[key], f.name), getattr(records_b[key], f.name)
                if isinstance(va, np.ndarray):
                    assert va.shape == vb.shape and np.array_equal(va, vb), (group, key, f.name)
                else:
                    assert va == vb, (group, key, f.name)


# -- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "text"])
def test_write_read_round_trip_is_exact(tmp_path, binary):
    """Every COLMAP model id, awkward names, empty observation lists and tracks, extreme floats."""
    rng = np.random.default_rng(1)
    model = ColmapModel()
    for i, (name, (_, n_params)) in enumerate(CAMERA_MODELS.items()):
        params = rng.normal(size=n_params) * 10.0**i
        model.cameras[i + 1] = ColmapCamera(i + 1, name, 100 + i, 50 + i, params)
    names = ["a.png", "sub dir/b c.jpg", "ü.png"]
    for i, name in enumerate(names):
        n_obs = [5, 0, 3][i]
        model.images[i * 7 + 1] = ColmapImage(
            i * 7 + 1, rng.normal(size=4), rng.normal(size=3) * 1e-7, i + 1, name,
            rng.normal(size=(n_obs, 2)) * 1000.0, rng.integers(-1, 50, n_obs).astype(np.int64))
    model.points[3] = ColmapPoint3D(3, np.array([1e-300, -2.5, np.pi]), np.array([0, 128, 255], np.uint8),
                                    -1.0, np.array([[1, 0], [15, 2]], np.int64))
    model.points[2**40] = ColmapPoint3D(2**40, rng.normal(size=3), np.array([1, 2, 3], np.uint8), 0.123,
                                        np.zeros((0, 2), np.int64))
    write_model(model, tmp_path, binary=binary)
    _assert_models_equal(read_model(tmp_path), model)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "text"])
def test_reads_files_written_by_pycolmap(tmp_path, binary):
    """pycolmap (COLMAP's own C++ writer) is an independent check of the file layouts."""
    model = _write_scene(tmp_path / "ours", "OPENCV", n=3)
    recon = pycolmap.Reconstruction()
    for cam in model.cameras.values():
        recon.add_camera_with_trivial_rig(pycolmap.Camera(
            model=cam.model, width=cam.width, height=cam.height, params=cam.params, camera_id=cam.id))
    for im in model.images.values():
        x, y, z = im.qvec[1:]
        pose = pycolmap.Rigid3d(pycolmap.Rotation3d(np.array([x, y, z, im.qvec[0]])), im.tvec)
        points2d = [pycolmap.Point2D(xy) for xy in im.xys]
        recon.add_image_with_trivial_frame(
            pycolmap.Image(name=im.name, camera_id=im.camera_id, image_id=im.id, points2D=points2d), pose)
    for pt in list(model.points.values())[:5]:
        track = pycolmap.Track()
        for image_id, idx in pt.track:
            track.add_element(int(image_id), int(idx))
        recon.add_point3D(pt.xyz, track, pt.rgb)
    out = tmp_path / "pycolmap"
    out.mkdir()
    recon.write_binary(str(out)) if binary else recon.write_text(str(out))

    ours = read_model(out)
    for cam in model.cameras.values():
        assert ours.cameras[cam.id].model == cam.model
        np.testing.assert_array_equal(ours.cameras[cam.id].params, cam.params)
    for im in model.images.values():
        got = ours.images[im.id]
        assert (got.name, got.camera_id) == (im.name, im.camera_id)
        # pycolmap stores the rotation normalised and sign-fixed, so compare rotations to 1e-12.
        np.testing.assert_allclose(np.abs(got.qvec @ im.qvec), 1.0, atol=1e-12)
        np.testing.assert_allclose(got.tvec, im.tvec, atol=1e-12)
        np.testing.assert_allclose(got.xys, im.xys, atol=1e-12)
    assert len(ours.points) == 5
    for got in ours.points.values():
        # pycolmap renumbers points and fills in the observations' point ids.
        source = next(p for p in model.points.values() if np.allclose(p.xyz, got.xyz, atol=1e-12))
        np.testing.assert_array_equal(got.rgb, source.rgb)
        np.testing.assert_array_equal(got.track, source.track)
        for image_id, idx in got.track:
            assert ours.images[image_id].point3D_ids[idx] == got.id


def test_pycolmap_reads_our_binary_files(tmp_path):
    model = _write_scene(tmp_path, "OPENCV", n=3)
    recon = pycolmap.Reconstruction(str(tmp_path / "sparse" / "0"))
    assert recon.num_images() == 3 and recon.num_points3D() == len(model.points)
    for im in model.images.values():
        got = recon.image(im.id)
        assert got.name == im.name
        np.testing.assert_allclose(got.cam_from_world().matrix(), np.c_[_rotation(im), im.tvec], atol=1e-12)
        np.testing.assert_allclose(recon.camera(im.camera_id).params, model.cameras[im.camera_id].params)


def _rotation(im: ColmapImage) -> np.ndarray:
    w, x, y, z = im.qvec
    return Rotation.from_quat([x, y, z, w]).as_matrix()


def test_binary_and_text_load_to_the_same_cameras(tmp_path):
    _write_scene(tmp_path / "bin", "OPENCV", binary=True)
    _write_scene(tmp_path / "txt", "OPENCV", binary=False)
    a, b = load_dataset(tmp_path / "bin"), load_dataset(tmp_path / "txt")
    assert [c.name for c in a.cameras] == [c.name for c in b.cameras]
    for ca, cb, sa, sb in zip(a.cameras, b.cameras, a.source_cameras, b.source_cameras):
        np.testing.assert_array_equal(ca.world_to_camera, cb.world_to_camera)
        assert (ca.fx, ca.fy, ca.cx, ca.cy) == (cb.fx, cb.fy, cb.cx, cb.cy)
        np.testing.assert_array_equal(sa.distortion, sb.distortion)
    np.testing.assert_array_equal(a.points, b.points)
    np.testing.assert_array_equal(a.point_colors, b.point_colors)


# -- conventions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("model_name", SUPPORTED_MODELS)
def test_camera_models_project_like_colmap(model_name):
    """Our intrinsics + lens model agree with COLMAP's projection for every supported model.

    1e-9 px: both evaluate the same polynomial in float64 on ~1e2 px values.
    """
    params = np.array(PARAMS[model_name])
    cam = ColmapCamera(1, model_name, *SIZE, params)
    image = ColmapImage(1, np.array([1.0, 0, 0, 0]), np.zeros(3), 1, "x.png")
    ours = camera_from_colmap(cam, image)
    rng = np.random.default_rng(2)
    points = np.c_[rng.uniform(-0.6, 0.6, (200, 2)), np.ones(200)] * rng.uniform(0.5, 3.0, (200, 1))
    oracle = pycolmap.Camera(model=model_name, width=SIZE[0], height=SIZE[1], params=params)
    expected = oracle.img_from_cam(points)
    xy = distort_points(points[:, :2] / points[:, 2:], ours)
    got = xy * [ours.fx, ours.fy] + [ours.cx, ours.cy]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    assert ours.is_distorted == (model_name not in ("SIMPLE_PINHOLE", "PINHOLE"))


@pytest.mark.parametrize("model_name", ["PINHOLE", "OPENCV", "OPENCV_FISHEYE"])
def test_loaded_cameras_reproject_points_onto_observations(tmp_path, model_name):
    """The loaded (normalised) scene reprojects its sparse points onto the 2D observations.

    A transposed rotation, an xyzw quaternion or a half-pixel shift would miss by pixels; the only
    error left is float64 rounding through normalisation, hence 1e-6 px.
    """
    model = _write_scene(tmp_path, model_name)
    data = load_dataset(tmp_path)
    assert data.format == "colmap" and len(data) == len(model.images)
    by_name = {im.name: im for im in model.images.values()}
    for i, cam in enumerate(data.cameras):
        assert cam.distortion is None
        source = data.source_cameras[i] if data.source_cameras is not None else cam
        assert source.is_distorted == (model_name != "PINHOLE")
        cam_points = data.points @ cam.world_to_camera[:3, :3].T + cam.world_to_camera[:3, 3]
        xy = distort_points(cam_points[:, :2] / cam_points[:, 2:], source)
        uv = xy * [cam.fx, cam.fy] + [cam.cx, cam.cy]
        np.testing.assert_allclose(uv, by_name[cam.name].xys, rtol=0, atol=1e-6)
    expected_colors = np.stack([p.rgb for p in model.points.values()])
    np.testing.assert_array_equal(data.point_colors, expected_colors)


def test_distorted_photos_are_undistorted_when_decoded(tmp_path):
    _write_scene(tmp_path, "OPENCV", n=2)
    data = load_dataset(tmp_path, DataConfig(test_every=100))
    raw = read_image(data.image_paths[0])
    expected = undistort_image(raw, data.source_cameras[0], data.cameras[0])
    np.testing.assert_array_equal(data.image(0), expected)
    assert np.abs(data.image(0).astype(int) - raw).mean() > 10  # the random pixels really moved


@pytest.mark.parametrize("downscaled_size", [(32, 24), (33, 25)], ids=["exact", "rounded-up"])
def test_images_n_folder_is_used_for_downscale(tmp_path, downscaled_size):
    """images_2 is read as it is; the cameras follow its actual size (some tools round up)."""
    model = _write_scene(tmp_path, "PINHOLE")
    (tmp_path / "images_2").mkdir()
    for im in model.images.values():
        Image.new("RGB", downscaled_size, (1, 2, 3)).save(tmp_path / "images_2" / im.name)
    data = load_dataset(tmp_path, DataConfig(downscale=2, normalize=False))
    assert all(p.parent.name == "images_2" for p in data.image_paths)
    assert data.image(0).shape == (downscaled_size[1], downscaled_size[0], 3)
    assert data.image(0)[0, 0].tolist() == [1, 2, 3]  # the images_2 photo, not a resized images/ one
    sx, sy = downscaled_size[0] / SIZE[0], downscaled_size[1] / SIZE[1]
    full = load_dataset(tmp_path, RAW)
    for small, big in zip(data.cameras, full.cameras):
        assert (small.width, small.height) == downscaled_size
        np.testing.assert_allclose([small.fx, small.cx, small.fy, small.cy],
                                   [big.fx * sx, big.cx * sx, big.fy * sy, big.cy * sy], rtol=1e-12)
    # Without images_3 the photos come from images/ and are shrunk on decode.
    third = load_dataset(tmp_path, DataConfig(downscale=3, normalize=False))
    assert third.image_paths[0].parent.name == "images" and third.cameras[0].width == round(SIZE[0] / 3)


# -- detection ------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_dir", ["sparse/0", "sparse", "."])
def test_detects_and_loads_model_folders(tmp_path, model_dir):
    _write_scene(tmp_path, "PINHOLE", n=3, model_dir=model_dir)
    assert detect_format(tmp_path) == "colmap"
    assert len(load_dataset(tmp_path)) == 3


def test_loads_a_model_folder_given_directly(tmp_path):
    """`recon train scene/sparse/0` finds the photos in scene/images."""
    _write_scene(tmp_path, "PINHOLE", n=3)
    assert detect_format(tmp_path / "sparse" / "0") == "colmap"
    data = load_dataset(tmp_path / "sparse" / "0")
    assert data.root == tmp_path and data.image(0).shape == (SIZE[1], SIZE[0], 3)


# -- bad input ------------------------------------------------------------------------------------


def test_missing_images_are_named(tmp_path):
    _write_scene(tmp_path, "PINHOLE")
    (tmp_path / "images" / "view_03.png").unlink()
    (tmp_path / "images" / "view_06.png").unlink()
    with pytest.raises(DatasetError, match="2 missing") as err:
        load_dataset(tmp_path)
    assert "view_03.png" in str(err.value) and "view_06.png" in str(err.value)


@pytest.mark.parametrize("corruption, message", [
    (lambda b: b[:-5], "truncated"),
    (lambda b: b[:3], "truncated"),
    (lambda b: b + b"\0\0", "unexpected bytes"),
    (lambda b: b[:12] + (99).to_bytes(4, "little") + b[16:], "unknown COLMAP camera model 99"),
    (lambda b: (10**12).to_bytes(8, "little") + b[8:], "truncated"),
], ids=["cut-params", "cut-count", "trailing", "bad-model-id", "huge-count"])
def test_corrupt_cameras_bin_is_a_dataset_error(tmp_path, corruption, message):
    _write_scene(tmp_path, "PINHOLE", n=2)
    file = tmp_path / "sparse" / "0" / "cameras.bin"
    file.write_bytes(corruption(file.read_bytes()))
    with pytest.raises(DatasetError, match=message):
        load_dataset(tmp_path)


def test_malformed_text_line_names_file_and_line(tmp_path):
    _write_scene(tmp_path, "PINHOLE", n=2, binary=False)
    file = tmp_path / "sparse" / "0" / "cameras.txt"
    file.write_text(file.read_text().replace("PINHOLE 64 48", "PINHOLE 64 forty-eight", 1))
    with pytest.raises(DatasetError, match=r"cameras.txt, line 4"):
        load_dataset(tmp_path)


def test_unsupported_camera_model_is_a_dataset_error(tmp_path):
    _write_scene(tmp_path, "FULL_OPENCV", n=2)
    with pytest.raises(DatasetError, match="FULL_OPENCV camera model.*image_undistorter"):
        load_dataset(tmp_path)


def test_nan_pose_is_a_dataset_error(tmp_path):
    model = _write_scene(tmp_path, "PINHOLE", n=2, binary=False)
    file = tmp_path / "sparse" / "0" / "images.txt"
    im = model.images[11]
    line = f"{im.id} {float(im.qvec[0])!r} "
    assert file.read_text().count(line) == 1
    file.write_text(file.read_text().replace(line, f"{im.id} nan "))
    with pytest.raises(DatasetError, match="view_01.png.*degenerate"):
        load_dataset(tmp_path)


def test_image_with_undefined_camera_is_a_dataset_error(tmp_path):
    model = _write_scene(tmp_path, "PINHOLE", n=2)
    del model.cameras[2]
    write_model(model, tmp_path / "sparse" / "0")
    with pytest.raises(DatasetError, match=r"camera id\(s\) \[2\]"):
        load_dataset(tmp_path)


def test_a_scene_with_only_images_n_folders_loads(tmp_path):
    """No images/: downscale 1 reads the finest images_N as it is; downscale 4 reads images_2
    (the largest factor dividing 4) shrunk by 2 more; the cameras follow the photos' size."""
    import shutil

    model = _write_scene(tmp_path, "PINHOLE")
    for factor in (2, 8):
        (tmp_path / f"images_{factor}").mkdir()
        for im in model.images.values():
            size = (SIZE[0] // factor, SIZE[1] // factor)
            Image.new("RGB", size, (factor, 2, 3)).save(tmp_path / f"images_{factor}" / im.name)
    full = load_dataset(tmp_path, RAW)
    shutil.rmtree(tmp_path / "images")
    finest = load_dataset(tmp_path, RAW)
    assert all(p.parent.name == "images_2" for p in finest.image_paths)
    assert (finest.cameras[0].width, finest.cameras[0].height) == (SIZE[0] // 2, SIZE[1] // 2)
    np.testing.assert_allclose(finest.cameras[0].fx, full.cameras[0].fx / 2, rtol=1e-12)
    quarter = load_dataset(tmp_path, DataConfig(downscale=4, normalize=False))
    assert all(p.parent.name == "images_2" for p in quarter.image_paths)
    assert quarter.image(0).shape == (SIZE[1] // 4, SIZE[0] // 4, 3)
    assert load_dataset(tmp_path, DataConfig(downscale=8, normalize=False)).image(0)[0, 0, 0] == 8
