"""The tests that catch a wrong camera convention, on the real lego data.

Every lego camera was rendered by Blender with a track-to constraint on the world origin, so the
origin must project to the image centre in every view, in front of the camera, and the world's up
(+z) must point up in every image. A wrong axis flip puts the origin behind the camera or mirrors
the image; a half-pixel principal-point slip or a wrong focal breaks the other checks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from recon.data import DataConfig, load_dataset

# Measured: 7e-4 px (lego_200) and 3.5e-4 px (lego_100) -- the float32 rounding of the stored poses.
# 0.01 px is far below any convention slip (half a pixel for the pixel-centre one, hundreds of
# pixels or a negative depth for an axis flip).
CENTRE_TOLERANCE_PX = 0.01
LEGO_CAMERA_ANGLE_X = 0.6911112070083618  # from the json files and the npz alike


@pytest.fixture(scope="module")
def lego_200(shared_data):
    return load_dataset(shared_data / "nerf_synthetic_lego_200", DataConfig(), format="transforms")


@pytest.fixture(scope="module")
def lego_100(shared_data):
    return load_dataset(shared_data / "lego_100.npz", DataConfig(), format="npz")


@pytest.fixture(params=["lego_200", "lego_100"])
def lego(request):
    return request.getfixturevalue(request.param)


def test_origin_projects_to_the_image_centre(lego):
    centre = lego.normalization.apply(np.zeros((1, 3)))
    for camera in lego.cameras:
        uv, depth = camera.project(centre)
        assert depth[0] > 0, f"{camera.name}: the scene centre is behind the camera"
        np.testing.assert_allclose(uv[0], [camera.width / 2, camera.height / 2], atol=CENTRE_TOLERANCE_PX,
                                   err_msg=camera.name)


def test_world_up_points_up_in_every_image(lego):
    # The cameras are upright (no roll): the image's down axis (+y in OpenCV) points downwards in
    # the world, by at least the sine of the lowest camera elevation (measured: 0.017).
    up = lego.normalization.apply_directions(np.array([0.0, 0.0, 1.0]))
    down_dot_up = np.array([camera.world_to_camera[1, :3] @ up for camera in lego.cameras])
    assert down_dot_up.max() < -0.01


def test_focal_matches_camera_angle_x(lego):
    for camera in lego.cameras:
        expected = 0.5 * camera.width / math.tan(0.5 * LEGO_CAMERA_ANGLE_X)
        # lego_100 stores its focal in float64 from the same angle; both agree to 1e-7 relative.
        assert camera.fx == pytest.approx(expected, rel=1e-7) and camera.fy == camera.fx


def test_lego_200_splits_match_the_folders(lego_200, shared_data):
    root = shared_data / "nerf_synthetic_lego_200"
    for split in ("train", "val", "test"):
        on_disk = sorted(p.name for p in (root / split).glob("r_*.png"))
        assert len(lego_200.indices(split)) == len(on_disk)
        assert sorted(lego_200.image_paths[i].name for i in lego_200.indices(split)) == on_disk
    assert [len(lego_200.indices(s)) for s in ("train", "val", "test")] == [100, 100, 200]


def test_lego_100_splits(lego_100):
    assert [len(lego_100.indices(s)) for s in ("train", "val", "test")] == [100, 0, 6]


def test_images_are_rgba_uint8_at_camera_size(lego):
    # One image per split keeps this fast; all images of a split share one size and format.
    for split in ("train", "val", "test"):
        for i in lego.indices(split)[:1]:
            image, camera = lego.image(i), lego.cameras[i]
            assert image.dtype == np.uint8 and image.shape == (camera.height, camera.width, 4)
            assert image[..., 3].min() == 0 and image[..., 3].max() == 255  # object on a clear background
    side = {"transforms": 200, "npz": 100}[lego.format]
    assert {(c.width, c.height) for c in lego.cameras} == {(side, side)}
