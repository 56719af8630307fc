"""bench/opensplat.py's nerfstudio writer: OpenSplat gets lego_200's views and the start points in
the dataset's input frame, in a .ply its reader takes, and recon's own loader reads them back."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from recon.data import DataConfig, load_dataset
from recon.data.dataset import composite_background

BENCH = Path(__file__).resolve().parents[2] / "bench" / "opensplat.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_opensplat", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_written_dataset_reads_back_as_the_input_cameras_points_and_images(shared_data,
                                                                           tmp_path):
    from plyfile import PlyData

    data = shared_data / "nerf_synthetic_lego_200"
    if not data.is_dir():
        pytest.skip(f"{data} not found")
    dataset = load_dataset(data, DataConfig())
    views = dataset.indices("train")[:3]
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.3, 0.3, (50, 3))  # recon's normalised frame
    colors = rng.integers(0, 256, (50, 3), dtype=np.uint8)

    _bench().write_nerfstudio(tmp_path, dataset, views, points, colors)

    raw = load_dataset(data, DataConfig(normalize=False))
    back = load_dataset(tmp_path, DataConfig(normalize=False))
    assert len(back) == len(views)
    for j, i in enumerate(views):
        got, want = back.cameras[j], raw.cameras[i]
        np.testing.assert_allclose(got.world_to_camera, want.world_to_camera, atol=1e-5)
        assert (got.width, got.height) == (want.width, want.height)
        np.testing.assert_allclose([got.fx, got.fy, got.cx, got.cy],
                                   [want.fx, want.fy, want.cx, want.cy], rtol=1e-9)
        white = np.rint(composite_background(dataset.image(i), "white") * 255.0)
        assert back.image(j).shape == white.shape  # RGB: OpenSplat reads three channels
        assert np.array_equal(back.image(j), white.astype(np.uint8))
    # OpenSplat's binary reader takes float32 x y z then uchar colours, whatever the header says.
    vertex = PlyData.read(str(tmp_path / "points3D.ply"))["vertex"].data
    assert [vertex.dtype[name].str for name in vertex.dtype.names] == ["<f4"] * 3 + ["|u1"] * 3
    np.testing.assert_allclose(back.points, dataset.normalization.inverse().apply(points),
                               atol=1e-5)
    assert np.array_equal(back.point_colors, colors)
