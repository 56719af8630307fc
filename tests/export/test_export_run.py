"""export_run: a run's checkpoint to RUN/export/splats.{ply,splat} in the input world frame, and
the Gaussian model's export in any (rotated, scaled, shifted) frame."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from scipy.spatial.transform import Rotation

from recon.cameras import Camera, Similarity, look_at
from recon.data import load_dataset
from recon.errors import OutputExistsError, ReconError
from recon.export import export_run
from recon.models.base import sh_coefficients
from recon.models.gaussians import GaussianModel, to_gaussians
from recon.models.splat_files import read_ply, read_splat
from recon.render import render
from recon.scenes import render_scene
from recon.train.checkpoint import save_checkpoint
from recon.train.config import FitConfig, to_dict

N = 250
NORMALIZATION = Similarity(2.5, Rotation.from_rotvec([0.0, 0.5, 1.2]).as_matrix(),
                           np.array([0.3, 0.1, -0.4]))


def random_splats() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {"means": torch.randn(N, 3, generator=g) * 0.3, "quats": torch.randn(N, 4, generator=g),
            "scales": torch.randn(N, 3, generator=g) * 0.2 - 2.5,
            "opacities": torch.randn(N, generator=g), "sh0": torch.randn(N, 1, 3, generator=g),
            "shN": 0.3 * torch.randn(N, 15, 3, generator=g)}


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    """The sparse scene at 32x32: the data a run was fitted on (its normalisation)."""
    out = tmp_path_factory.mktemp("data") / "sparse"
    render_scene("sparse", out, views=2, resolution=32, force=True)
    return out


@pytest.fixture
def run(tmp_path, scene):
    """A run directory as the trainer writes it (config.yaml and one checkpoint at SH degree 1
    of 3), holding random splats."""
    config = FitConfig(data=scene, out=tmp_path / "run")
    dataset = load_dataset(scene, config.data_options.to_data_config())
    splats = random_splats()
    save_checkpoint(tmp_path / "run", {
        "step": 700, "model": "gaussians", "params": splats, "sh_degree": 1, "max_sh_degree": 3,
        "config": to_dict(config), "normalization": dataset.normalization.to_dict(),
        "data_path": str(scene), "data_config": asdict(dataset.config)})
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(to_dict(config)))
    return tmp_path / "run", splats, dataset.normalization


def check_renders_as_the_run(path: Path, splats, normalization: Similarity) -> None:
    """The file, read back into the run's frame, renders what the run renders at SH degree 1
    (bands above it are zeroed), and its means are in the input's frame."""
    loaded = read_ply(path, normalization)
    # Bands above the active degree 1 are zeroed, so all 16 coefficients give the degree-1 colour.
    assert not loaded["shN"][:, 3:].any() and loaded["shN"][:, :3].abs().max() > 0.1
    cam = Camera(40, 30, 30.0, 30.0, 20.0, 15.0, look_at(np.array([0.2, -2.5, 0.9]), np.zeros(3)))
    run_image = render(to_gaussians(splats), cam, sh_coefficients(splats), sh_degree=1).features
    file_image = render(to_gaussians(loaded), cam, sh_coefficients(loaded), sh_degree=3).features
    assert run_image.amax(0).gt(0.05).float().mean() > 0.3  # the splats are in view
    # float32 round trip through a frame 2.5x smaller: rounding only (see test_splat_files).
    assert (run_image - file_image).abs().max() <= 1e-6
    world = read_ply(path)
    assert torch.allclose(world["means"], torch.as_tensor(
        normalization.inverse().apply(splats["means"].double().numpy())).float(), atol=1e-6)


def test_export_ply_renders_what_the_run_renders(run):
    run_dir, splats, normalization = run
    path = export_run(run_dir, "ply")
    assert path == run_dir / "export" / "splats.ply"
    check_renders_as_the_run(path, splats, normalization)


def test_model_export_in_a_rotated_frame(tmp_path):
    """A normalisation with every part non-trivial (scale, rotation, translation): the SH bands
    rotate with the splats."""
    splats = random_splats()
    model = GaussianModel(FitConfig(data=Path("x")), 1.0)
    path = model.export("ply", tmp_path / "s.ply", splats, NORMALIZATION, 1)
    check_renders_as_the_run(path, splats, NORMALIZATION)
    with pytest.raises(ReconError, match="cannot be exported as 'glb'"):
        model.export("glb", tmp_path / "s.glb", splats, NORMALIZATION, 1)


def test_export_splat_and_overwrite_rules(run, tmp_path):
    run_dir, _, _ = run
    path = export_run(run_dir, "splat")
    assert path == run_dir / "export" / "splats.splat" and path.stat().st_size == 32 * N
    assert len(read_splat(path)["means"]) == N
    with pytest.raises(OutputExistsError, match="--force"):
        export_run(run_dir, "splat")
    assert export_run(run_dir, "splat", force=True) == path
    custom = export_run(run_dir, "ply", out=tmp_path / "elsewhere" / "model.ply")
    assert custom.is_file()
    with pytest.raises(ReconError, match="ply, splat"):
        export_run(run_dir, "fbx")
    with pytest.raises(ReconError, match="No checkpoint"):
        export_run(tmp_path / "not_a_run", "ply")
