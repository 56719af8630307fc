"""export_run: a run's checkpoint to RUN/export/splats.{ply,splat} in the input world frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from recon.cameras import Camera, Similarity, look_at
from recon.errors import OutputExistsError, ReconError
from recon.export.splats import export_run, read_ply, read_splat
from recon.render import render
from recon.train.checkpoint import save_checkpoint
from recon.train.splats import sh_coefficients, to_gaussians

N = 250
NORMALIZATION = Similarity(2.5, Rotation.from_rotvec([0.0, 0.5, 1.2]).as_matrix(),
                           np.array([0.3, 0.1, -0.4]))


@pytest.fixture
def run(tmp_path):
    g = torch.Generator().manual_seed(1)
    splats = {"means": torch.randn(N, 3, generator=g) * 0.3, "quats": torch.randn(N, 4, generator=g),
              "scales": torch.randn(N, 3, generator=g) * 0.2 - 2.5,
              "opacities": torch.randn(N, generator=g), "sh0": torch.randn(N, 1, 3, generator=g),
              "shN": 0.3 * torch.randn(N, 15, 3, generator=g)}
    save_checkpoint(tmp_path / "run", {"step": 700, "splats": splats, "sh_degree": 1,
                                       "max_sh_degree": 3,
                                       "normalization": NORMALIZATION.to_dict()})
    return tmp_path / "run", splats


def test_export_ply_renders_what_the_run_renders(run):
    run_dir, splats = run
    path = export_run(run_dir, "ply")
    assert path == run_dir / "export" / "splats.ply"
    loaded = read_ply(path, NORMALIZATION)
    # Bands above the active degree 1 are zeroed, so all 16 coefficients give the degree-1 colour.
    assert not loaded["shN"][:, 3:].any() and loaded["shN"][:, :3].abs().max() > 0.1
    cam = Camera(40, 30, 30.0, 30.0, 20.0, 15.0, look_at(np.array([0.2, -2.5, 0.9]), np.zeros(3)))
    run_image = render(to_gaussians(splats), cam, sh_coefficients(splats), sh_degree=1).features
    file_image = render(to_gaussians(loaded), cam, sh_coefficients(loaded), sh_degree=3).features
    assert run_image.amax(0).gt(0.05).float().mean() > 0.3  # the splats are in view
    # float32 round trip through a frame 2.5x smaller: rounding only (see test_splats).
    assert (run_image - file_image).abs().max() <= 1e-6
    world = read_ply(path)
    assert torch.allclose(world["means"], torch.as_tensor(
        NORMALIZATION.inverse().apply(splats["means"].double().numpy())).float(), atol=1e-6)


def test_export_splat_and_overwrite_rules(run, tmp_path):
    run_dir, _ = run
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
