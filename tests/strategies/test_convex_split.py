"""3DCS densification of convexes (split into K, prune, reset) and MCMC relocation of convexes:
the image is kept, counts and caps hold, and Adam's moments follow every edit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from recon.models.base import create_optimizers
from recon.models.convexes import ConvexModel
from recon.render import RenderResult, render
from recon.strategies import ops
from recon.strategies.convex_split import ConvexSplitStrategy
from recon.train.config import FitConfig

MOMENTS = ("exp_avg", "exp_avg_sq")


@pytest.fixture
def model() -> ConvexModel:
    return ConvexModel(FitConfig(data=Path("unused")), scene_scale=1.0)


def convex_set(model: ConvexModel, camera, n: int = 40, seed: int = 0,
               opacity: float = 0.6) -> tuple[torch.nn.ParameterDict, dict]:
    """``n`` convexes as `recon fit` starts them, about points in a 1.2-unit box in front of
    ``camera``, made fairly opaque, with primed Adam moments (every row distinct)."""
    g = torch.Generator().manual_seed(seed)
    points = ((torch.rand(n, 3, generator=g) * 2 - 1) * 0.6).numpy()
    colors = torch.rand(n, 3, generator=g).numpy()
    params = model.initialize(points, colors, g, "cpu", cameras=[camera])
    optimizers = create_optimizers(params, model.learning_rates(0))
    for name, p in params.items():
        p.grad = torch.randn(p.shape, generator=g)
        optimizers[name].step()
        p.grad = None
    params["opacities"].data.fill_(float(np.log(opacity / (1 - opacity))))
    return params, optimizers


def image(model: ConvexModel, params, camera) -> torch.Tensor:
    with torch.no_grad():
        return render(model.primitives(params), camera, model.colors(params, 0), backend="cpu",
                      sh_degree=0, depth=False, normals=False).features


def moments(optimizers, params, name: str) -> dict[str, torch.Tensor]:
    return {m: optimizers[name].state[params[name]][m].clone() for m in MOMENTS}


def test_split_makes_k_children_that_keep_the_image(model, test_camera):
    """Splitting a quarter of the convexes: each becomes K = 6 children inside it (shrunk by
    0.63 about its points), and the image changes by a mean absolute 0.0023 (tolerance 0.004),
    against 0.0074 when those convexes are just removed: the children redraw most of what their
    parents drew."""
    cam = test_camera(64)
    params, optimizers = convex_set(model, cam)
    before = image(model, params, cam)
    parents = params["points"].detach()[:10].clone()
    picked = torch.zeros(40, dtype=torch.bool)
    picked[:10] = True
    kept_moments = moments(optimizers, params, "points")

    assert ops.split(params, optimizers, picked, model) == 10
    assert ops.num_rows(params) == 30 + 10 * 6
    split_change = float((image(model, params, cam) - before).abs().mean())

    children = params["points"].detach()[30:].reshape(6, 10, 6, 3)
    # Child j of parent m is the parent shrunk about its point j: it keeps point j, and every
    # point is a convex combination of the parent's (inside its hull).
    assert torch.allclose(children[torch.arange(6), :, torch.arange(6)],
                          parents.transpose(0, 1), atol=1e-6)
    spread = (children - children.mean(2, keepdim=True)).norm(dim=-1).mean()
    parent_spread = (parents - parents.mean(1, keepdim=True)).norm(dim=-1).mean()
    assert torch.isclose(spread, 0.63 * parent_spread, rtol=1e-4)
    opacity = torch.sigmoid(params["opacities"].detach())
    assert torch.allclose(opacity[30:], torch.full((60,), 0.3), atol=1e-6)
    # Kept rows keep their moments (in order), children start at zero.
    now = moments(optimizers, params, "points")
    for m in MOMENTS:
        assert torch.equal(now[m][:30], kept_moments[m][10:])
        assert float(now[m][30:].abs().max()) == 0.0

    removed, _ = convex_set(model, cam)
    ops.remove(removed, {}, picked)
    remove_change = float((image(model, removed, cam) - before).abs().mean())
    assert split_change < 0.004 and remove_change > 2 * split_change


def test_strategy_splits_high_gradients_under_the_cap_and_prunes(model, test_camera):
    cam = test_camera(32)
    params, optimizers = convex_set(model, cam, n=20)
    strategy = ConvexSplitStrategy(grow_grad=1e-3, refine_start_iter=0, refine_every=10,
                                   cap_max=20 + 2 * 5, prune_opa=0.03)
    state = strategy.initialize_state(1.0)
    info = RenderResult(features=None, alpha=None, depth=None, median_depth=None, normals=None,
                        means2d=None, radii=torch.ones(1, 20, dtype=torch.int32),
                        visible=None, visibility_count=None, max_weight=None, absgrad=None)
    grad = torch.zeros(20)
    grad[[1, 5, 9]] = torch.tensor([5e-3, 4e-3, 2e-3])  # three above the threshold
    model._sigma_grad = grad * params["sigmas"].detach().exp()  # ∂L/∂log σ = σ ∂L/∂σ
    params["opacities"].data[7] = -8.0  # transparent: pruned
    strategy.step_post_backward(params, optimizers, state, 10, info, model)
    # The cap leaves room for two splits (each adds K - 1 = 5): the two highest gradients.
    assert ops.num_rows(params) == 20 - 2 + 2 * 6 - 1
    assert float(state["sigma_grad"].abs().sum()) == 0.0  # restarted for the next round
    strategy.check_sanity(params, optimizers)
    # Nothing above the threshold: no change but pruning.
    info.radii = torch.ones(1, ops.num_rows(params), dtype=torch.int32)
    model._sigma_grad = torch.zeros(ops.num_rows(params))
    strategy.step_post_backward(params, optimizers, state, 20, info, model)
    assert ops.num_rows(params) == 29


def test_mcmc_relocation_keeps_the_image_of_convexes(model, test_camera):
    """Dead convexes (behind the camera) are moved onto live ones with the peak-preserving
    opacity 1 − (1 − o)^(1/n): the image changes by a mean absolute 3e-6 (the convexes are
    nearly flat-topped, so stacked copies match almost exactly), against 1.0e-2 for copies that
    keep the full opacity; tolerance 1e-4."""
    torch.manual_seed(0)
    cam = test_camera(64)
    params, optimizers = convex_set(model, cam, n=40)
    params["opacities"].data[30:] = -7.0
    params["points"].data[30:, :, 2] = -10.0
    before = image(model, params, cam)
    dead = torch.sigmoid(params["opacities"].detach()) <= 0.005
    targets_moments = moments(optimizers, params, "sh0")
    assert ops.relocate(params, optimizers, dead, model, min_opacity=0.005) == 10
    assert ops.num_rows(params) == 40
    assert float((image(model, params, cam) - before).abs().mean()) < 1e-4
    # Untouched rows keep their moments.
    now = moments(optimizers, params, "sh0")
    moved = (now["exp_avg"].flatten(1) == 0).all(-1)
    assert 10 <= int(moved.sum()) <= 20
    assert torch.equal(now["exp_avg"][~moved], targets_moments["exp_avg"][~moved])
    noise = model.position_noise(params, 1.0)
    assert noise.shape == params["points"].shape
    assert torch.equal(noise[:, 0], noise[:, 5])  # a translation of the whole convex
