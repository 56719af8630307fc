"""`recon info`: the description of a dataset, its text form, and the CLI's error path."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from PIL import Image

from recon.cameras import Camera, look_at
from recon.cli import main
from recon.data import DataConfig
from recon.data.info import describe, format_description
from recon.data.transforms import write_ply_points, write_transforms

LEGO_FOCAL_200 = 100.0 / math.tan(0.5 * 0.6911112070083618)  # 0.5 W / tan(camera_angle_x / 2)


@pytest.fixture(scope="module")
def lego_200_desc(shared_data):
    return describe(shared_data / "nerf_synthetic_lego_200", DataConfig())


def test_lego_200_counts_resolution_and_focal(lego_200_desc):
    desc = lego_200_desc
    assert desc["format"] == "transforms" and desc["images"] == 400
    assert desc["splits"] == {"train": 100, "val": 100, "test": 200}
    assert desc["resolutions"] == {"200x200": 400}
    assert desc["camera_models"] == {"PINHOLE": 400} and desc["distortion"] is None
    assert desc["intrinsics"]["fx"] == pytest.approx(LEGO_FOCAL_200, rel=1e-7)
    assert desc["intrinsics"]["fy"] == desc["intrinsics"]["fx"]
    assert (desc["intrinsics"]["cx"], desc["intrinsics"]["cy"]) == (100.0, 100.0)
    assert desc["alpha"] is True and desc["sparse_points"] == 0


def test_lego_200_bounds_in_both_frames(lego_200_desc):
    desc = lego_200_desc
    scale = desc["normalization"]["scale"]
    # Normalisation puts the cameras in the unit sphere; float32 poses give 1e-7 relative slack.
    assert desc["normalized"]["camera_radius"] == pytest.approx(1.0, rel=1e-6)
    assert desc["input"]["camera_radius"] == pytest.approx(1.0 / scale, rel=1e-6)
    # Lego's cameras sit on a hemisphere of radius 4.03 above z = 0 (the lowest at z = 0.5).
    assert desc["input"]["max"][2] == pytest.approx(4.03, abs=0.01)
    assert desc["input"]["min"][2] == pytest.approx(0.5, abs=0.01)
    assert desc["bounds_of"] == "camera centres"


def test_text_form(lego_200_desc):
    text = format_description(lego_200_desc)
    lines = {line.split("  ")[0]: line for line in text.splitlines()}
    assert "400 (train 100, val 100, test 200)" in lines["Images"]
    assert lines["Resolution"].endswith("200x200")
    assert "fx 277.778" in lines["Intrinsics"]
    # Every value starts in the same column (labels end two or more spaces before it).
    assert len({re.match(r".*?\S\s{2,}", line).end() for line in text.splitlines()}) == 1


def test_differing_intrinsics_distortion_and_points(tmp_path):
    cameras = [Camera(16, 12, 10.0 + i, 10.0 + i, 8.0, 6.0, look_at([3, i, 1], [0, 0, 0]),
                      distortion=np.array([0.1, 0.0, 0.0, 0.0, 0.0, 0.0])) for i in range(3)]
    for i in range(3):
        Image.new("RGB", (16, 12), (90, 90, 90)).save(tmp_path / f"{i}.png")
    write_ply_points(tmp_path / "points.ply", np.array([[0.0, 0, 0], [1, 2, 3]]))
    write_transforms(tmp_path / "transforms.json", cameras, [f"{i}.png" for i in range(3)],
                     ply_file_path="points.ply")
    desc = describe(tmp_path, DataConfig())
    assert desc["intrinsics"]["fx"] == {"min": 10.0, "max": 12.0, "mean": 11.0}
    assert desc["camera_models"] == {"OPENCV": 3}
    assert desc["distortion"] == {"cameras": 3, "fisheye": False, "coefficients": [0.1, 0, 0, 0, 0, 0]}
    assert desc["sparse_points"] == 2 and desc["bounds_of"] == "sparse points"
    # Input-frame bounds are the points as written; normalised ones are scaled by the normalisation.
    np.testing.assert_allclose(desc["input"]["min"], [0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(desc["input"]["max"], [1, 2, 3], atol=1e-12)
    extent = np.subtract(desc["normalized"]["max"], desc["normalized"]["min"])
    np.testing.assert_allclose(extent, np.array([1, 2, 3]) * desc["normalization"]["scale"], rtol=1e-12)
    assert "radial-tangential: k1 0.1" in format_description(desc)


def test_cli_json(shared_data, capsys):
    main(["info", str(shared_data / "lego_100.npz"), "--json"])
    desc = json.loads(capsys.readouterr().out)
    assert desc["format"] == "npz" and desc["splits"] == {"train": 100, "val": 0, "test": 6}


def test_cli_missing_folder_exits_2_without_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["info", str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"error: Dataset path {tmp_path / 'nowhere'} does not exist" in err
    assert "Traceback" not in err
