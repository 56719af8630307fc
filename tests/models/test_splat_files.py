"""Gaussian splat files: 3DGS .ply layout, frame mapping, render-identical round trips, and .splat."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from plyfile import PlyData
from scipy.spatial.transform import Rotation

from recon.cameras import Camera, Similarity, look_at
from recon.errors import ReconError
from recon.models.base import sh_coefficients
from recon.models.gaussians import to_gaussians
from recon.models.splat_files import (
    read_ply, read_splat, rotate_sh, transform_splats, write_ply, write_splat,
)
from recon.render import render
from recon.render.sh import eval_sh

W, H = 48, 36
SH_DEGREE = 3
# A scene normalisation with every part non-trivial: scale, rotation and translation.
SIM = Similarity(0.37, Rotation.from_rotvec([0.4, -0.9, 0.3]).as_matrix(), np.array([1.5, -2.0, 0.7]))


def make_splats(n: int = 300, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "means": torch.randn(n, 3, generator=g) * 0.4,
        "quats": torch.randn(n, 4, generator=g) * 1.7,  # unnormalised on purpose
        "scales": torch.randn(n, 3, generator=g) * 0.3 - 2.2,
        "opacities": torch.randn(n, generator=g) + 0.5,
        "sh0": torch.randn(n, 1, 3, generator=g) * 0.8,
        "shN": torch.randn(n, 15, 3, generator=g) * 0.15,
    }


def cameras() -> list[Camera]:
    eyes = [(0.0, -3.0, 0.8), (2.2, -1.5, 1.2), (-1.0, 2.5, -0.5)]
    return [Camera(W, H, 40.0, 40.0, W / 2, H / 2, look_at(np.array(e), np.zeros(3))) for e in eyes]


def draw(splats, cams) -> torch.Tensor:
    return render(to_gaussians(splats), cams, sh_coefficients(splats), sh_degree=SH_DEGREE,
                  depth=False, normals=False).features


def test_ply_header_is_the_standard_3dgs_layout(tmp_path):
    path = write_ply(tmp_path / "s.ply", make_splats(n=10), SIM)
    ply = PlyData.read(str(path))
    assert ply.byte_order == "<" and not ply.text
    assert [e.name for e in ply.elements] == ["vertex"] and len(ply["vertex"].data) == 10
    props = ply["vertex"].properties
    expected = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
                + [f"f_rest_{i}" for i in range(45)]
                + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])
    assert [p.name for p in props] == expected
    assert {p.val_dtype for p in props} == {"f4"}
    assert path.read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\n")


def test_ply_values_follow_the_3dgs_conventions(tmp_path):
    s = make_splats(n=7)
    v = PlyData.read(str(write_ply(tmp_path / "s.ply", s)))["vertex"].data
    # f_rest is grouped by channel: the first 15 values are red, coefficients 1..15 in order.
    assert np.array_equal(v["f_rest_0"], s["shN"][:, 0, 0].numpy())
    assert np.array_equal(v["f_rest_14"], s["shN"][:, 14, 0].numpy())
    assert np.array_equal(v["f_rest_15"], s["shN"][:, 0, 1].numpy())
    assert np.array_equal(v["f_rest_44"], s["shN"][:, 14, 2].numpy())
    assert np.array_equal(v["f_dc_1"], s["sh0"][:, 0, 1].numpy())
    assert np.array_equal(v["opacity"], s["opacities"].numpy())  # logit, as stored
    assert np.array_equal(v["scale_2"], s["scales"][:, 2].numpy())  # log scale
    assert np.array_equal(v["rot_0"], s["quats"][:, 0].numpy())  # w first
    assert not np.any(v["nx"]) and not np.any(v["nz"])


@pytest.mark.parametrize("normalization", [None, Similarity(), SIM],
                         ids=["none", "identity", "similarity"])
def test_ply_round_trip_renders_identically(tmp_path, normalization):
    exact = normalization is not SIM
    s = make_splats()
    loaded = read_ply(write_ply(tmp_path / "s.ply", s, normalization), normalization)
    assert set(loaded) == set(s) and loaded["shN"].shape == (300, 15, 3)
    before, after = draw(s, cameras()), draw(loaded, cameras())
    assert (before.amax(1) > 0.05).float().mean() > 0.5  # most pixels see splats
    if exact:
        assert torch.equal(before, after)  # the identity map is exact
    else:
        # float32 storage of the mapped parameters (|x| up to ~7) and back: ~1e-7 relative
        # rounding of the means, which moves pixels of 1-3 pixel splats by < 1e-6 (measured 6.6e-7).
        assert (before - after).abs().max() <= 1e-6


def test_ply_is_in_the_input_world_frame(tmp_path):
    """Rendering the file as-is with the input-frame cameras gives the normalised-frame image."""
    s = make_splats()
    world = read_ply(write_ply(tmp_path / "s.ply", s, SIM))
    to_input = SIM.inverse()
    expected_means = to_input.apply(s["means"].double().numpy())
    # float32 storage of |x| <= ~7: half an ulp is 4.8e-7.
    assert torch.allclose(world["means"], torch.as_tensor(expected_means).float(), atol=1e-6)
    world_cams = [c.transformed(to_input) for c in cameras()]
    before, after = draw(s, cameras()), draw(world, world_cams)
    # Same images up to float32 rounding of poses and parameters in a frame 2.7x larger
    # (measured 1.1e-6; a wrong SH or quaternion rotation is off by > 1e-2).
    assert (before - after).abs().max() <= 5e-6


def test_rotated_sh_keep_colour_along_rotated_directions():
    g = torch.Generator().manual_seed(3)
    coeffs = torch.randn(5, 16, 3, generator=g, dtype=torch.float64)
    rot = Rotation.from_rotvec([1.1, 0.2, -2.0]).as_matrix()
    rotated = torch.cat([coeffs[:, :1], rotate_sh(coeffs[:, 1:], rot)], 1)
    dirs = torch.randn(5, 3, generator=g, dtype=torch.float64)
    along = eval_sh(3, dirs, coeffs)
    along_rotated = eval_sh(3, dirs @ torch.as_tensor(rot).T, rotated)
    assert (along - along_rotated).abs().max() <= 1e-12  # exact band rotation, float64
    assert (along - eval_sh(3, dirs, rotated)).abs().max() > 0.1  # and it did change the SH


def test_improper_normalisation_is_refused():
    mirror = Similarity(1.0, np.diag([1.0, 1.0, -1.0]), np.zeros(3))
    with pytest.raises(ReconError, match="proper similarity"):
        transform_splats(make_splats(n=3), mirror)


def test_splat_file_size_values_and_order(tmp_path):
    s = make_splats(n=200, seed=4)
    path = write_splat(tmp_path / "s.splat", s, SIM)
    assert path.stat().st_size == 32 * 200
    got = read_splat(path)
    world = transform_splats(s, SIM.inverse())
    # Rows are reordered: match them back through the exactly stored float32 positions.
    index = {tuple(p): i for i, p in enumerate(world["means"].numpy())}
    order = np.array([index[tuple(p)] for p in got["means"]])
    assert sorted(order) == list(range(200))
    scales = world["scales"].exp().numpy()[order]
    assert np.allclose(got["scales"], scales, rtol=1e-6, atol=0)
    alpha = torch.sigmoid(world["opacities"]).numpy()[order]
    rgb = np.clip(0.5 + 0.28209479177387814 * world["sh0"][:, 0].numpy()[order], 0, 1)
    # Colours are rounded to bytes: at most half a step off.
    assert np.abs(got["rgba"] - np.concatenate([rgb, alpha[:, None]], 1)).max() <= 0.5 / 255 + 1e-6
    q = torch.nn.functional.normalize(world["quats"], dim=1).numpy()[order]
    # q·128+128 rounded (and 1.0 saturating at 255/256): within ~1/128 after renormalising.
    assert np.abs(got["quats"] - q).max() <= 1.0 / 128
    key = scales.prod(1) * alpha
    assert np.all(np.diff(key) <= 0)  # descending volume × opacity


def test_corrupt_files_raise_recon_errors(tmp_path):
    bad = tmp_path / "bad.splat"
    bad.write_bytes(b"\0" * 33)
    with pytest.raises(ReconError, match="multiple of 32"):
        read_splat(bad)
    s = make_splats(n=3)
    s["shN"] = s["shN"][:, :5]  # 5 rest coefficients is no full set of SH bands
    with pytest.raises(ReconError, match="full set of bands"):
        write_ply(tmp_path / "x.ply", s, SIM)
    (tmp_path / "junk.ply").write_text("not a ply")
    with pytest.raises(ReconError, match="Cannot read"):
        read_ply(tmp_path / "junk.ply")
