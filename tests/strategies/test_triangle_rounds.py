"""Triangle Splatting's densification rounds: counts, recycling of the dead, subdivision of big
and in-plane clones of small candidates, and the Adam moments following every row."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from recon.models.base import create_optimizers
from recon.models.triangles import TriangleModel
from recon.strategies import ops
from recon.strategies.triangle_rounds import TriangleRoundsStrategy
from recon.train.config import FitConfig

MOMENTS = ("exp_avg", "exp_avg_sq")


@pytest.fixture
def model() -> TriangleModel:
    return TriangleModel(FitConfig(data=Path("unused"), model="triangles"), scene_scale=1.0)


def soup(model: TriangleModel, n: int = 50, seed: int = 0):
    """``n`` triangles with primed Adam moments; sh0's first entry holds the row's index, so rows
    can be followed through an edit."""
    g = torch.Generator().manual_seed(seed)
    params = model.initialize((torch.rand(n, 3, generator=g) - 0.5).numpy(),
                              torch.rand(n, 3, generator=g).numpy(), g, "cpu")
    optimizers = create_optimizers(params, model.learning_rates(0))
    for name, p in params.items():
        p.grad = torch.randn(p.shape, generator=g)
        optimizers[name].step()
        p.grad = None
    params["sh0"].data[:, 0, 0] = torch.arange(n, dtype=torch.float32)
    params["opacities"].data.copy_(torch.logit(torch.rand(n, generator=g) * 0.6 + 0.2))
    return params, optimizers


def stats(n: int, dead: list[int], big: list[int]) -> dict:
    """A strategy state as after some steps: every triangle well seen, ``dead`` never blended
    visibly, ``big`` 30 px on screen (the others 5 px)."""
    state = TriangleRoundsStrategy().initialize_state()
    state["max_weight"] = torch.full((n,), 0.5)
    state["max_weight"][dead] = 0.0
    state["extent"] = torch.full((n,), 5.0)
    state["extent"][big] = 30.0
    state["views"] = torch.full((n,), 10, dtype=torch.int32)
    return state


def ids(params) -> torch.Tensor:
    return params["sh0"].detach()[:, 0, 0].round().long()


def test_a_round_grows_by_the_factor_and_replaces_the_dead(model):
    """50 triangles, 10 dead, a fifth of the rest big: the round removes the dead and adds
    up to 1.3 × 50 − 50 + 10 = 25 rows, in 4-way subdivisions (+3) and clones (+1), landing on
    65 (or up to 2 short of it, when the next subdivision would overshoot)."""
    torch.manual_seed(0)
    params, optimizers = soup(model)
    dead, big = list(range(10)), list(range(10, 50, 5))
    before = {name: {m: optimizers[name].state[params[name]][m].clone() for m in MOMENTS}
              for name in ("vertices", "opacities")}
    opacity_before = torch.sigmoid(params["opacities"].detach()).clone()
    vertices_before = params["vertices"].detach().clone()
    result = TriangleRoundsStrategy().grow(params, optimizers, stats(50, dead, big), 600, model)

    after = ids(params)
    counts = torch.bincount(after, minlength=50)
    assert (counts[dead] == 0).all() and result["removed"] == 10
    subdivided = torch.nonzero(counts == 4)[:, 0]
    cloned = torch.nonzero(counts == 2)[:, 0]
    assert set(subdivided.tolist()) <= set(big)
    assert not set(cloned.tolist()) & set(big)
    assert len(subdivided) == result["subdivided"] > 0 and len(cloned) == result["cloned"] > 0
    assert set(counts.tolist()) <= {0, 1, 2, 4}
    assert 63 <= ops.num_rows(params) <= 65
    assert ops.num_rows(params) == 40 + 3 * len(subdivided) + len(cloned)

    opacity = torch.sigmoid(params["opacities"].detach())
    halved = 1 - (1 - opacity_before) ** 0.5  # a clone pair composites to the parent's opacity
    expected = torch.where(counts == 2, halved, opacity_before)[after]
    assert torch.allclose(opacity, expected, rtol=1e-5)   # kept and children: the parent's
    # Subdivided: the four children are the parent's corner and middle triangles.
    for source in subdivided.tolist():
        children = params["vertices"].detach()[after == source]
        a, b, c = vertices_before[source]
        expected = torch.stack([a, b, c, (a + b) / 2, (b + c) / 2, (c + a) / 2])
        nearest = torch.cdist(children.reshape(-1, 3), expected).min(-1).values
        assert nearest.max() < 1e-6 and len(children.reshape(-1, 3).unique(dim=0)) == 6

    # Adam: rows kept untouched keep their moments; every new or rewritten row starts at zero.
    untouched = [s for s in range(50) if counts[s] == 1]
    for name in ("vertices", "opacities"):
        state = optimizers[name].state[params[name]]
        for m in MOMENTS:
            rows = [after.tolist().index(s) for s in untouched]
            assert torch.equal(state[m][rows], before[name][m][untouched])
            edited = [r for r, s in enumerate(after.tolist()) if counts[s] > 1]
            assert state[m][edited].abs().sum() == 0


def test_clones_move_within_their_plane(model):
    params, _ = soup(model, n=30, seed=2)
    picked = torch.arange(0, 30, 3)
    copies = model.in_plane_copies(params, picked, 1.5, torch.Generator().manual_seed(0))
    v = params["vertices"].detach()[picked]
    shift = copies["vertices"] - v
    # One translation for the three corners, perpendicular to the face normal, within the box.
    assert torch.allclose(shift, shift[:, :1].expand_as(shift))
    normal = torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    cos = (shift[:, 0] * normal).sum(-1) / (shift[:, 0].norm(dim=-1) * normal.norm(dim=-1))
    assert cos.abs().max() < 1e-4
    # Each axis moves by at most ± ¾ of the box; removing the normal part only shortens it.
    assert (shift[:, 0].norm(dim=-1) <= 0.75 * (v.amax(1) - v.amin(1)).norm(dim=-1) + 1e-6).all()
    assert shift[:, 0].norm(dim=-1).min() > 0


def test_dead_by_weight_opacity_and_views(model):
    params, _ = soup(model, n=6)
    strategy = TriangleRoundsStrategy(views_from=1000)
    state = stats(6, dead=[0], big=[])
    params["opacities"].data[1] = torch.logit(torch.tensor(0.01))  # ≤ 0.014
    state["views"][2] = 1                                          # seen resolved once
    assert strategy.dead(params, state, 900).tolist() == [True, True, False, False, False, False]
    assert strategy.dead(params, state, 1100).tolist() == [True, True, True, False, False, False]


def test_after_the_window_the_dead_are_only_removed(model):
    params, optimizers = soup(model, n=20)
    strategy = TriangleRoundsStrategy(refine_stop_iter=1000, refine_every=100)
    state = stats(20, dead=list(range(5)), big=[])

    class Info:  # the render result fields the strategy reads: one view, every triangle resolved
        radii = torch.full((1, 20), 3, dtype=torch.int32)
        max_weight = state["max_weight"][None].clone()

    strategy.step_post_backward(params, optimizers, state, 1200, Info, model)
    assert ops.num_rows(params) == 15 and (ids(params) >= 5).all()
    assert len(state["max_weight"]) == 15 and (state["max_weight"] == 0).all()


def test_a_soup_that_is_all_dead_is_left_alone(model):
    params, optimizers = soup(model, n=8)
    state = stats(8, dead=list(range(8)), big=[])
    before = params["vertices"].detach().clone()
    assert TriangleRoundsStrategy().grow(params, optimizers, state, 600, model)["removed"] == 0
    assert torch.equal(params["vertices"], before)


def test_no_round_while_the_model_finishes():
    """During the opaque finish (here the last half of 1000 steps) a round only removes the
    dead, as after the window."""
    import dataclasses

    config = FitConfig(data=Path("unused"), model="triangles", steps=1000)
    finishing = TriangleModel(dataclasses.replace(config, triangles=dataclasses.replace(
        config.triangles, opaque_finish=0.5)), scene_scale=1.0)
    params, optimizers = soup(finishing, n=20)
    state = stats(20, dead=[0, 1], big=[])

    class Info:
        radii = torch.full((1, 20), 3, dtype=torch.int32)
        max_weight = state["max_weight"][None].clone()

    strategy = TriangleRoundsStrategy(refine_every=100)
    strategy.step_post_backward(params, optimizers, state, 600, Info, finishing)
    assert ops.num_rows(params) == 18 and (ids(params) >= 2).all()
