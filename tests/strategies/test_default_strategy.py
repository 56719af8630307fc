"""DefaultStrategy: the screen-gradient statistic, clone/split/prune counts on a hand-made state,
the world-size pruning after the first reset, the opacity reset, and a short training loop."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from recon.cameras import Camera, look_at
from recon.errors import ReconError
from recon.render import render
from recon.strategies import DefaultStrategy
from recon.models.base import sh_coefficients
from recon.models.gaussians import GaussianModel, to_gaussians
from recon.train.config import FitConfig

MODEL = GaussianModel(FitConfig(data=Path("x")), 1.0)


def _no_view_info(n: int):
    """A render result in which nothing was visible, so a step adds nothing to the statistic."""
    return SimpleNamespace(means2d=SimpleNamespace(grad=torch.zeros(1, n, 2)),
                           radii=torch.zeros(1, n, dtype=torch.int32), alpha=torch.zeros(1, 8, 8),
                           absgrad=None)


def _hand_made(splat_set, optimizers_for):
    """8 Gaussians whose fate at a refinement step is known (scene_scale 1, so clone below a
    max scale of 0.01, split above; mean gradient threshold 2e-4; prune below opacity 0.005)."""
    torch.manual_seed(0)  # split children are random samples
    splats = splat_set(8)
    optimizers = optimizers_for(splats)
    splats["means"].data = torch.arange(24.0).reshape(8, 3) / 10  # distinct, recognisable
    max_scale = torch.tensor([0.005, 0.05, 0.005, 0.2, 0.005, 0.005, 0.05, 0.05])
    splats["scales"].data = max_scale.log()[:, None] + torch.tensor([0.0, -0.5, -1.0])
    opacity = torch.tensor([0.5, 0.5, 0.5, 0.5, 0.5, 0.002, 0.5, 0.5])
    splats["opacities"].data = torch.logit(opacity)
    strategy = DefaultStrategy()
    state = strategy.initialize_state(scene_scale=1.0)
    # Mean gradients: 3e-4 (high) for 0, 1, 4 and 6 (6 via a sum over 3 views), 1e-4 elsewhere.
    state["grad2d"] = torch.tensor([3e-4, 3e-4, 1e-4, 1e-4, 3e-4, 1e-4, 9e-4, 3e-4])
    state["count"] = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 3.0, 3.0])
    state["radii"] = torch.zeros(8)
    return splats, optimizers, strategy, state


def test_refinement_clones_splits_and_prunes_the_expected_gaussians(splat_set, optimizers_for):
    splats, optimizers, strategy, state = _hand_made(splat_set, optimizers_for)
    before = splats["means"].detach().clone()
    strategy.step_post_backward(splats, optimizers, state, 600, _no_view_info(8), MODEL)
    # 0 and 4 cloned (+2), 1 and 6 split into two children each (+2), 5 pruned (−1).
    assert len(splats["means"]) == 11
    means = splats["means"].detach()
    # Kept in order, then the clones, then the children.
    assert torch.equal(means[:7], before[[0, 2, 3, 4, 7, 0, 4]])
    children = means[7:]
    parents = before[[1, 6, 1, 6]]
    assert ((children - parents).norm(dim=-1) < 5 * 0.05).all()
    assert torch.allclose(splats["scales"].detach()[7:].exp().amax(-1),
                          torch.tensor([0.05, 0.05, 0.05, 0.05]) / 1.6)
    # The statistic restarts, one entry per Gaussian; every optimizer follows the new count.
    assert torch.equal(state["grad2d"], torch.zeros(11))
    assert torch.equal(state["count"], torch.zeros(11))
    assert all(opt.state[splats[k]]["exp_avg"].shape == splats[k].shape
               for k, opt in optimizers.items())


def test_no_refinement_outside_the_window_or_off_the_interval(splat_set, optimizers_for):
    for step in (500, 650, 15_000):  # start is exclusive, 650 is off-interval, stop is exclusive
        splats, optimizers, strategy, state = _hand_made(splat_set, optimizers_for)
        strategy.step_post_backward(splats, optimizers, state, step, _no_view_info(8), MODEL)
        assert len(splats["means"]) == 8, step


def test_large_gaussians_are_pruned_only_after_the_first_reset(splat_set, optimizers_for):
    """Gaussian 3 (max scale 0.2 > 0.1 × scene_scale, low gradient) survives step 600 but not
    step 3100; nothing else changes when the gradients are low."""
    for step, expected, large in ((600, 8, 1), (3100, 7, 0)):
        splats, optimizers, strategy, state = _hand_made(splat_set, optimizers_for)
        splats["opacities"].data[5] = 0.0  # keep 5 alive here
        state["grad2d"].zero_()
        strategy.step_post_backward(splats, optimizers, state, step, _no_view_info(8), MODEL)
        assert len(splats["means"]) == expected
        assert int((splats["scales"].detach().exp().amax(-1) > 0.1).sum()) == large


def test_opacity_reset_every_3000_steps(splat_set, optimizers_for):
    splats, optimizers, strategy, state = _hand_made(splat_set, optimizers_for)
    splats["opacities"].data[5] = torch.logit(torch.tensor(0.007))  # below the reset value
    state["grad2d"].zero_()
    old = torch.sigmoid(splats["opacities"].detach().clone())
    strategy.step_post_backward(splats, optimizers, state, 3000, _no_view_info(8), MODEL)
    new = torch.sigmoid(splats["opacities"].detach())
    assert torch.allclose(new, old.clamp_max(0.01), rtol=1e-6, atol=0)  # 2 × prune_opa
    assert float(new.max()) == pytest.approx(0.01, rel=1e-6)
    moments = optimizers["opacities"].state[splats["opacities"]]
    assert float(moments["exp_avg"].abs().max()) == 0.0


def test_revised_opacity_children(splat_set, optimizers_for):
    splats, optimizers, _, state = _hand_made(splat_set, optimizers_for)
    DefaultStrategy(revised_opacity=True).step_post_backward(splats, optimizers, state, 600,
                                                             _no_view_info(8), MODEL)
    children = torch.sigmoid(splats["opacities"].detach()[7:])
    assert torch.allclose(children, torch.full((4,), 1 - 0.5 ** 0.5), rtol=1e-5)


def _two_cameras(size: int = 32) -> list[Camera]:
    eyes = (np.array([0.0, 0.0, -4.0]), np.array([2.5, 0.0, -3.0]))
    return [Camera(size, size, float(size), float(size), size / 2, size / 2,
                   look_at(eye, np.zeros(3), up=(0.0, -1.0, 0.0))) for eye in eyes]


@pytest.mark.parametrize("absgrad", [False, True])
def test_statistic_is_the_ndc_gradient_norm_summed_over_visible_views(splat_set, absgrad):
    """grad2d += ‖∂L/∂means2d ⊙ (W/2, H/2)‖ × (number of cameras) for each camera that sees a
    Gaussian, count += 1 per such camera; with absgrad the per-pixel |∂L| sums replace ∂L, and
    since Σ|g| ≥ |Σ g| every entry is at least the plain statistic."""
    splats = splat_set(30)
    splats["means"].data[0] = torch.tensor([0.0, 0.0, -3.0])  # 50° off the 2nd camera's axis
    cams = _two_cameras()
    strategy = DefaultStrategy(absgrad=absgrad)
    state = strategy.initialize_state(1.0)
    info = render(to_gaussians(splats), cams, sh_coefficients(splats), backend="cpu", sh_degree=1,
                  absgrad=absgrad)
    strategy.step_pre_backward(splats, {}, state, 1, info)
    target = torch.linspace(0, 1, 3 * 32 * 32).reshape(3, 32, 32)
    (info.features - target).abs().mean().backward()
    strategy.step_post_backward(splats, {}, state, 1, info, MODEL)

    seen = info.radii > 0
    assert seen[0, 0] and not seen[1, 0]
    assert torch.equal(state["count"], seen.sum(0).float())
    ndc = torch.tensor([16.0, 16.0]) * 2
    plain = ((info.means2d.grad * ndc).norm(dim=-1) * seen).sum(0)
    if absgrad:
        expected = ((info.absgrad[..., :2] * ndc).norm(dim=-1) * seen).sum(0)
        assert (expected >= plain * (1 - 1e-5)).all() and (expected > plain * 1.01).any()
    else:
        expected = plain
    assert (expected[seen.any(0)] > 0).all()
    assert torch.allclose(state["grad2d"], expected, rtol=1e-6, atol=0)


def test_absgrad_without_absgrad_render_is_refused(splat_set):
    splats = splat_set(5)
    info = render(to_gaussians(splats), _two_cameras(), sh_coefficients(splats), backend="cpu",
                  sh_degree=1)
    strategy = DefaultStrategy(absgrad=True)
    with pytest.raises(ReconError, match="absgrad=True"):
        strategy.step_post_backward(splats, {}, strategy.initialize_state(1.0), 1, info,
                                    MODEL)


def test_short_training_loop_densifies_and_keeps_adam_consistent(splat_set, optimizers_for):
    """Render → loss → backward → Adam → strategy, refining every step: the set grows, and every
    optimizer keeps matching its parameter through the edits."""
    torch.manual_seed(0)
    splats = splat_set(20)
    optimizers = optimizers_for(splats)
    strategy = DefaultStrategy(refine_start_iter=0, refine_every=1, grow_grad2d=0.0)
    strategy.check_sanity(splats, optimizers)
    state = strategy.initialize_state(scene_scale=1.0)
    cams = _two_cameras()
    target = torch.rand(3, 32, 32)
    counts = []
    for step in range(1, 4):
        info = render(to_gaussians(splats), cams, sh_coefficients(splats), backend="cpu",
                      sh_degree=1)
        strategy.step_pre_backward(splats, optimizers, state, step, info)
        (info.features - target).abs().mean().backward()
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        strategy.step_post_backward(splats, optimizers, state, step, info, MODEL)
        strategy.check_sanity(splats, optimizers)
        counts.append(len(splats["means"]))
    # Every visible Gaussian is cloned or split each step; the pruning threshold removes none.
    assert counts[0] > 20 and counts[1] > counts[0] and counts[2] > counts[1]
    for name, p in splats.items():
        assert torch.isfinite(p).all()
        assert optimizers[name].state[p]["exp_avg_sq"].shape == p.shape
