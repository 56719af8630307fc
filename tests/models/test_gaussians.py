"""Gaussian splats as a model: initialisation, conversion for render(), the model interface
(learning rates, sizes, moves, browser view) and 3DGS-MCMC's relocation correction and noise."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from recon.cameras import Camera, look_at
from recon.models.base import (OPACITY, create_optimizers, peak_preserving_opacity,
                               sh_coefficients)
from recon.models.gaussians import (NOISE_GATE_OPACITY, NOISE_GATE_SHARPNESS, GaussianModel,
                                    create_splats, relocation_correction, to_gaussians)
from recon.primitives.gaussians import covariances
from recon.render import render
from recon.render.sh import sh0_to_rgb
from recon.train.config import FitConfig, OptimOptions


def grid(spacing: float) -> np.ndarray:
    axis = np.arange(4) * spacing
    return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)


def model(scene_scale: float = 1.0, **config) -> GaussianModel:
    return GaussianModel(FitConfig(data=Path("x"), **config), scene_scale)


def test_scales_from_three_nearest_neighbours():
    # On a cubic lattice every point has at least 3 neighbours at exactly the spacing.
    pts = grid(0.25)
    splats = create_splats(pts, np.full((len(pts), 3), 0.2), max_sh_degree=3, init_scale=0.1,
                           init_opacity=0.5)
    assert torch.allclose(splats["scales"], torch.full((64, 3), math.log(0.025)), atol=1e-6)
    assert torch.allclose(torch.sigmoid(splats["opacities"]), torch.full((64,), 0.5))
    assert torch.allclose(splats["quats"].norm(dim=-1), torch.ones(64), atol=1e-6)
    assert splats["sh0"].shape == (64, 1, 3) and splats["shN"].shape == (64, 15, 3)
    assert torch.count_nonzero(splats["shN"]) == 0
    assert torch.allclose(sh0_to_rgb(splats["sh0"][:, 0]), torch.full((64, 3), 0.2), atol=1e-6)


def test_coincident_points_get_finite_scales():
    pts = np.zeros((5, 3))
    pts[4] = 1.0
    splats = create_splats(pts, np.zeros((5, 3)), max_sh_degree=0, init_scale=1.0,
                           init_opacity=0.1)
    assert torch.isfinite(splats["scales"]).all()
    assert splats["shN"].shape == (5, 0, 3)


def test_initial_colour_renders_as_given():
    """One big opaque Gaussian initialised with a colour renders that colour at its centre."""
    colour = np.array([[0.9, 0.3, 0.1]])
    splats = create_splats(np.zeros((1, 3)), colour, max_sh_degree=3, init_scale=1.0,
                           init_opacity=0.999)
    with torch.no_grad():
        splats["scales"].fill_(math.log(0.5))
    cam = Camera(32, 32, 30.0, 30.0, 16.0, 16.0, look_at(np.array([0.0, -3.0, 0.0]), np.zeros(3)))
    out = render(to_gaussians(splats), cam, sh_coefficients(splats), sh_degree=3, depth=False,
                 normals=False)
    centre = out.features[:, 15:17, 15:17].mean((1, 2))
    # Opacity 0.999 (capped at 0.99 by the rasterizer) over a black background.
    assert torch.allclose(centre, torch.tensor([0.9, 0.3, 0.1]) * 0.99, atol=5e-3)


def test_one_adam_per_parameter():
    splats = create_splats(grid(1.0), np.zeros((64, 3)), max_sh_degree=1, init_scale=1.0,
                           init_opacity=0.1)
    lrs = {"means": 1.0, "quats": 2.0, "scales": 3.0, "opacities": 4.0, "sh0": 5.0, "shN": 6.0}
    opts = create_optimizers(splats, lrs)
    assert set(opts) == set(splats.keys())
    for name, opt in opts.items():
        (group,) = opt.param_groups
        assert group["params"] == [splats[name]] and group["lr"] == lrs[name]
        assert group["eps"] == 1e-15


# -- the model interface ----------------------------------------------------------------------

def test_initialize_uses_the_configs_init_scale_and_opacity():
    """--strategy mcmc starts at scale 0.1 and opacity 0.5 (3DGS-MCMC), default at 1.0 / 0.1."""
    pts, colours = grid(0.25), np.full((64, 3), 0.2)
    for strategy, scale, opacity in (("default", 1.0, 0.1), ("mcmc", 0.1, 0.5)):
        params = model(strategy=strategy).initialize(pts, colours,
                                                     torch.Generator().manual_seed(0), "cpu")
        expected = create_splats(pts, colours, max_sh_degree=3, init_scale=scale,
                                 init_opacity=opacity, generator=torch.Generator().manual_seed(0))
        assert list(params.keys()) == list(expected.keys())
        for name in expected.keys():
            assert torch.equal(params[name], expected[name]), (strategy, name)


def test_learning_rates_scale_and_decay_the_means_only():
    optim = OptimOptions()
    m = model(scene_scale=2.5, steps=1000)
    first, last, beyond = m.learning_rates(0), m.learning_rates(1000), m.learning_rates(5000)
    assert set(first) == {"means", "quats", "scales", OPACITY, "sh0", "shN"}
    assert first["means"] == pytest.approx(optim.means_lr * 2.5, rel=1e-12)
    assert last["means"] == pytest.approx(optim.means_lr * 2.5 * optim.means_lr_final, rel=1e-12)
    assert beyond["means"] == last["means"]
    for name, lr in (("quats", optim.quats_lr), ("scales", optim.scales_lr),
                     (OPACITY, optim.opacities_lr), ("sh0", optim.sh0_lr), ("shN", optim.shN_lr)):
        assert first[name] == last[name] == lr


def test_colors_count_sizes_and_render_options():
    params = create_splats(grid(1.0), np.zeros((64, 3)), max_sh_degree=3, init_scale=1.0,
                           init_opacity=0.1)
    m = model(eps2d=0.2, antialiased=True)
    assert m.count(params) == 64
    assert m.colors(params, 0) is params["sh0"]
    assert torch.equal(m.colors(params, 1), sh_coefficients(params)[:, :4])
    assert torch.equal(m.colors(params, 3), sh_coefficients(params))
    with torch.no_grad():
        params["scales"][:, 1] += 0.5
    assert torch.allclose(m.sizes(params), params["scales"][:, 1].exp())
    assert torch.allclose(m.scale_penalty(params), params["scales"].exp().mean())
    assert m.render_options() == {"eps2d": 0.2, "antialiased": True}
    g = m.primitives(params)
    assert g.means is params["means"] and g.quats is params["quats"]


def test_split_children_and_relocation_overrides(splat_set):
    """Two children per row with the parent's scale / 1.6 (their means are checked, row edits
    included, in tests/strategies/test_strategy_ops.py); relocation overrides are the
    correction's opacity and log-scale."""
    splats = splat_set(10)
    m = model()
    picked = torch.tensor([2, 5, 7])
    children, values = m.split(splats, picked, torch.Generator().manual_seed(0))
    assert children == 2 and set(values) == {"means", "scales"}
    assert values["means"].shape == (6, 3)
    assert torch.allclose(values["scales"].exp(),
                          splats["scales"].detach()[picked].exp().repeat(2, 1) / 1.6)
    copies = torch.tensor([2, 3, 1])
    overrides = m.relocation_overrides(splats, picked, copies)
    o, s = relocation_correction(torch.sigmoid(splats[OPACITY].detach()[picked]),
                                 splats["scales"].detach()[picked].exp(), copies)
    assert set(overrides) == {OPACITY, "scales"}
    assert torch.equal(overrides[OPACITY], o) and torch.equal(overrides["scales"], s.log())


def test_density_is_the_gaussian_mixture():
    from recon.models.density import GaussianDensity

    params = create_splats(grid(0.5), np.zeros((64, 3)), max_sh_degree=0, init_scale=1.0,
                           init_opacity=0.3)
    points = torch.rand(50, 3, generator=torch.Generator().manual_seed(0)) * 1.5
    field = model().density(params, 8)
    expected = GaussianDensity(params["means"], params["quats"], params["scales"],
                               torch.full((64,), 0.3), 8)
    (d, grad), (d_ref, grad_ref) = field(points), expected(points)
    assert torch.allclose(d, d_ref, rtol=1e-6) and torch.allclose(grad, grad_ref, rtol=1e-6)


def test_browser_view_covariance_colour_opacity():
    angle = math.pi / 2  # 90° about z: the x and y axes swap
    splats = {"means": torch.tensor([[1.0, 2.0, 3.0]]),
              "quats": torch.tensor([[math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2)]]),
              "scales": torch.log(torch.tensor([[0.5, 0.1, 0.2]])),
              "opacities": torch.tensor([0.0]),
              "sh0": torch.zeros(1, 1, 3), "shN": torch.zeros(1, 15, 3)}
    out = model().browser_view(splats)
    np.testing.assert_allclose(out["covariances"][0], np.diag([0.01, 0.25, 0.04]), atol=1e-7)
    np.testing.assert_allclose(out["rgbs"][0], 0.5)        # SH DC 0 is mid grey
    np.testing.assert_allclose(out["opacities"][0], [0.5])  # sigmoid(0)
    np.testing.assert_allclose(out["centers"][0], [1, 2, 3])


# -- the relocation correction ----------------------------------------------------------------

@pytest.mark.parametrize("opacity", [0.05, 0.3, 0.7, 0.95])
@pytest.mark.parametrize("copies", [1, 2, 3, 5, 51])
def test_correction_preserves_peak_and_area_of_the_1d_profile(opacity, copies):
    """N copies composite to 1 − (1 − o' g')^N; it must equal o at the centre and have the area
    of o·g. Float64 quadrature on a fine grid: both match to 1e-12 (measured ≤ 4e-15)."""
    o = torch.tensor([opacity], dtype=torch.float64)
    new_o, new_s = relocation_correction(o, torch.ones(1, 3, dtype=torch.float64),
                                         torch.tensor([copies]))
    x = torch.linspace(-12.0, 12.0, 200_001, dtype=torch.float64)
    profile = 1.0 - (1.0 - new_o * torch.exp(-0.5 * (x / new_s[0, 0]) ** 2)) ** copies
    assert float(profile[100_000]) == pytest.approx(opacity, abs=1e-12)
    area = float(torch.trapezoid(profile, x))
    assert area == pytest.approx(opacity * math.sqrt(2.0 * math.pi), rel=1e-12)
    assert torch.allclose(new_s, new_s[:, :1].expand(1, 3))  # one factor for all three axes


def test_peak_preserving_opacity():
    """n copies of opacity 1 − (1 − o)^(1/n) composite to o; for a split's two children (an int)
    it is exactly 1 − √(1 − o), bit for bit what 3DGS's revised split opacity always was."""
    o = torch.rand(10_000, generator=torch.Generator().manual_seed(0)) * 0.998 + 0.001
    assert torch.equal(peak_preserving_opacity(o, 2), 1.0 - torch.sqrt(1.0 - o))
    copies = torch.randint(1, 52, (10_000,), generator=torch.Generator().manual_seed(1))
    per_copy = peak_preserving_opacity(o.double(), copies)
    assert torch.allclose(1.0 - (1.0 - per_copy) ** copies, o.double(), rtol=0, atol=1e-12)


def test_correction_is_identity_for_one_copy_and_clamps_at_51():
    o = torch.tensor([0.2, 0.6, 0.6])
    s = torch.tensor([[0.1, 0.2, 0.3]]).repeat(3, 1)
    new_o, new_s = relocation_correction(o, s, torch.tensor([1, 51, 80]))
    assert torch.allclose(new_o[0], o[0]) and torch.allclose(new_s[0], s[0])
    assert torch.equal(new_o[1], new_o[2]) and torch.equal(new_s[1], new_s[2])


@torch.no_grad()
def _render(splats, cam):
    return render(to_gaussians(splats), cam, sh_coefficients(splats), backend="cpu", sh_degree=1,
                  depth=False, normals=False).features


def _clone_rows(splats, picked, copies, opacity_logits, log_scales):
    """Splats where row picked[i] has copies[i] co-located copies with the given values."""
    n = len(splats["means"])
    source = torch.cat([torch.arange(n)] + [torch.full((int(k) - 1,), int(i))
                                            for i, k in zip(picked, copies)])
    values = {k: v.detach().clone() for k, v in splats.items()}
    values["opacities"][picked] = opacity_logits
    values["scales"][picked] = log_scales
    return torch.nn.ParameterDict({k: torch.nn.Parameter(v[source]) for k, v in values.items()})


def test_relocation_correction_keeps_the_rendered_image(splat_set, test_camera):
    """Replace 14 of 40 Gaussians by 2–5 co-located copies. With the corrected opacity and
    scale, the image's mean abs difference is 8.1e-4 (tolerance 1.5e-3: the rule matches a 1D
    profile, not the 2D footprint, so it is close but not exact); plain copies give 1.4e-2 and
    the opacity rule without the scale factor 1.9e-3, so a wrong correction fails."""
    splats, cam = splat_set(40), test_camera(64)
    reference = _render(splats, cam)
    picked = torch.arange(0, 40, 3)
    copies = torch.tensor([2, 3, 5, 2, 3, 4, 2, 3, 5, 2, 3, 4, 2, 3])
    o = torch.sigmoid(splats["opacities"].detach()[picked])
    scales = splats["scales"].detach()[picked].exp()
    new_o, new_s = relocation_correction(o, scales, copies)

    def error(opacity_logits, log_scales):
        cloned = _clone_rows(splats, picked, copies, opacity_logits, log_scales)
        return float((_render(cloned, cam) - reference).abs().mean())

    corrected = error(torch.logit(new_o), new_s.log())
    plain = error(torch.logit(o), scales.log())
    opacity_only = error(torch.logit(new_o), scales.log())
    assert corrected < 1.5e-3
    assert plain > 10 * corrected
    assert opacity_only > 1.5 * corrected


# -- the exploration noise --------------------------------------------------------------------

def test_noise_is_gated_by_opacity(splat_set):
    from recon.strategies import ops

    torch.manual_seed(0)
    splats = splat_set(20)
    splats["opacities"].data[:10] = torch.logit(torch.tensor(0.9))
    splats["opacities"].data[10:] = torch.logit(torch.tensor(0.001))
    m = model()
    noise = m.position_noise(splats, 80.0)  # 1.6e-4 × 5e5: the initial means lr × noise_lr
    # Opaque: gate σ(−100 · 0.895) ≈ 1e-39, so the noise vanishes; transparent: gate ≈ 0.6.
    assert float(noise[:10].abs().max()) < 1e-30
    assert (noise[10:].norm(dim=-1) > 1e-4).all()
    means = splats["means"].detach().clone()
    ops.inject_noise(splats, m, 80.0)
    moved = (splats["means"].detach() - means).norm(dim=-1)
    assert float(moved[:10].max()) < 1e-30 and (moved[10:] > 1e-4).all()


def test_noise_covariance_follows_the_gaussians_covariance():
    """Noise is c Σ η with c = scale · gate, so its covariance is c² Σ². 40 000 samples of one
    anisotropic Gaussian (axis scales 0.3, 0.1, 0.05): whitened by Σ⁻¹/c the noise has identity
    covariance to 0.03 (sampling error ≈ 0.01), and the empirical covariance's eigenvalues are
    c² s⁴ to 5 % (they span 1296×; noise ∝ Σ^½ η, covariance ∝ Σ, would span only 36×)."""
    torch.manual_seed(0)
    n = 40_000
    quat = torch.tensor([0.8, 0.3, -0.4, 0.33])
    axis_scales = torch.tensor([0.3, 0.1, 0.05])
    splats = torch.nn.ParameterDict({
        "means": torch.nn.Parameter(torch.zeros(n, 3)),
        "quats": torch.nn.Parameter(quat.repeat(n, 1)),
        "scales": torch.nn.Parameter(axis_scales.log().repeat(n, 1)),
        "opacities": torch.nn.Parameter(torch.full((n,), math.log(0.001 / 0.999))),
    })
    noise = model().position_noise(splats, 2.0).double()
    c = 2.0 * torch.sigmoid(torch.tensor(-NOISE_GATE_SHARPNESS * (0.001 - NOISE_GATE_OPACITY),
                                         dtype=torch.float64))
    cov = covariances(quat[None].double(), axis_scales[None].double())[0]
    whitened = noise @ torch.linalg.inv(cov) / c
    assert float((whitened.T @ whitened / n - torch.eye(3, dtype=torch.float64)).abs().max()) < 0.03
    eigenvalues = torch.linalg.eigvalsh(noise.T @ noise / n)
    expected = (c * axis_scales.double() ** 2) ** 2
    assert torch.allclose(eigenvalues, expected.sort().values, rtol=0.05, atol=0)


def test_noise_with_a_generator_is_reproducible(splat_set):
    splats = splat_set(20, opacity=(0.001, 0.004))
    m = model()
    a = m.position_noise(splats, 1.0, torch.Generator().manual_seed(4))
    b = m.position_noise(splats, 1.0, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and float(a.abs().max()) > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_native_noise_matches_the_torch_reference(dtype):
    """The fused CPU op and the torch expression from the same η: equal to float rounding
    (1e-6 of the largest entry in float32, 1e-12 in float64), unnormalised quaternions and
    every gate value included."""
    from recon.models.gaussians import position_noise_torch

    g = torch.Generator().manual_seed(5)
    n = 500
    splats = torch.nn.ParameterDict({
        "means": torch.nn.Parameter(torch.zeros(n, 3, dtype=dtype)),
        "quats": torch.nn.Parameter(torch.randn(n, 4, generator=g, dtype=dtype) * 3),
        "scales": torch.nn.Parameter(torch.randn(n, 3, generator=g, dtype=dtype) - 3),
        "opacities": torch.nn.Parameter(torch.linspace(-8, 2, n, dtype=dtype)),
    })
    native = model().position_noise(splats, 7.0, torch.Generator().manual_seed(6))
    eta = torch.randn(n, 3, generator=torch.Generator().manual_seed(6), dtype=dtype)
    reference = position_noise_torch(splats, eta, 7.0)
    tolerance = 1e-6 if dtype == torch.float32 else 1e-12
    assert float((native - reference).abs().max()) <= tolerance * float(reference.abs().max())
    assert float(reference.abs().max()) > 0
