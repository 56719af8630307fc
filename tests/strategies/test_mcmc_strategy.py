"""MCMCStrategy: 5 % growth up to the cap, relocation of every dead Gaussian, the noise driven by
the means' learning rate, the regularization term, and a torch-free import of the settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from recon.models.gaussians import GaussianModel
from recon.strategies import MCMCStrategy
from recon.train.config import FitConfig

MODEL = GaussianModel(FitConfig(data=Path("x")), 1.0)


def test_growth_is_five_percent_floored_and_capped():
    strategy = MCMCStrategy(cap_max=103)
    assert [strategy.growth(n) for n in (19, 20, 39, 40, 60)] == [0, 1, 1, 2, 3]
    assert strategy.growth(100) == 3  # 5 would pass the cap
    assert strategy.growth(103) == 0 and strategy.growth(150) == 0
    assert MCMCStrategy().growth(100_000) == 5000


def test_steps_grow_the_set_to_the_cap_and_no_further(splat_set, optimizers_for):
    torch.manual_seed(0)
    splats = splat_set(60)
    optimizers = optimizers_for(splats)
    strategy = MCMCStrategy(cap_max=70)
    state = strategy.initialize_state(1.0)
    counts = {}
    for step in (400, 500, 600, 650, 700, 800, 900, 1000, 25_000):
        strategy.step_post_backward(splats, optimizers, state, step, None, MODEL, lr=1e-4)
        counts[step] = len(splats["means"])
        strategy.check_sanity(splats, optimizers)
    # No growth at or before refine_start_iter (500), off the 100-step interval, or at the stop.
    assert counts == {400: 60, 500: 60, 600: 63, 650: 63, 700: 66, 800: 69, 900: 70, 1000: 70,
                      25_000: 70}


def test_refinement_relocates_every_dead_gaussian(splat_set, optimizers_for):
    torch.manual_seed(0)
    splats = splat_set(40)
    splats["opacities"].data[::5] = torch.logit(torch.tensor(0.002))  # 8 dead
    optimizers = optimizers_for(splats)
    strategy = MCMCStrategy(cap_max=40)  # no growth: the count must stay 40
    state = strategy.initialize_state(1.0)
    dead_means = splats["means"].detach()[::5].clone()
    strategy.step_post_backward(splats, optimizers, state, 600, None, MODEL, lr=1e-4)
    opacity = torch.sigmoid(splats["opacities"].detach())
    assert len(opacity) == 40
    assert int((opacity <= strategy.min_opacity).sum()) == 0
    # The dead slots now sit on live Gaussians (up to the noise, which is ~0 for opaque ones).
    assert (splats["means"].detach()[::5] - dead_means).norm(dim=-1).min() > 1e-3
    # Adam still steps on the edited set.
    for name, p in splats.items():
        p.grad = torch.ones_like(p)
        optimizers[name].step()
        assert torch.isfinite(p).all()


def test_noise_uses_the_means_learning_rate(splat_set, optimizers_for):
    """lr=None reads the means' lr from its optimizer; the displacement is linear in the lr;
    opaque Gaussians do not move."""
    splats = splat_set(20)
    splats["opacities"].data[10:] = torch.logit(torch.tensor(0.001))
    optimizers = optimizers_for(splats)
    optimizers["means"].param_groups[0]["lr"] = 2e-5
    strategy = MCMCStrategy()
    start = splats["means"].detach().clone()

    def displacement(lr):
        splats["means"].data.copy_(start)
        torch.manual_seed(0)
        strategy.step_post_backward(splats, optimizers, {}, 1, None, MODEL, lr=lr)
        return splats["means"].detach() - start

    from_optimizer = displacement(None)
    assert torch.equal(from_optimizer, displacement(2e-5))
    # atol: float32 rounding of means ≈ 1 (the displacement is read back as a difference).
    assert torch.allclose(displacement(4e-5), 2 * from_optimizer, rtol=0, atol=2e-7)
    assert float(from_optimizer[:10].abs().max()) < 1e-30
    assert (from_optimizer[10:].norm(dim=-1) > 0).all()


def test_regularization_is_the_weighted_opacity_and_scale_means(splat_set):
    splats = splat_set(10)
    strategy = MCMCStrategy(opacity_reg=0.01, scale_reg=0.02)
    value = strategy.regularization(splats, MODEL)
    expected = (0.01 * torch.sigmoid(splats["opacities"]).mean()
                + 0.02 * splats["scales"].exp().mean())
    assert float(value.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    value.backward()
    assert (splats["opacities"].grad > 0).all() and (splats["scales"].grad > 0).all()


def test_settings_import_without_torch():
    """The CLI's configs embed the strategies and must not pay for importing torch."""
    code = ("import sys, recon.strategies as s; s.MCMCStrategy(cap_max=5); s.DefaultStrategy(); "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
