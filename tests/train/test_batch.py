"""--batch-size B: B training images per step in one render() call, their mean loss, gsplat's
learning-rate and Adam rule, per-image model and regularizer terms averaged."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from recon.errors import DatasetError
from recon.models import MODEL_NAMES
from recon.render import camera_result, render
from recon.strategies import DefaultStrategy
from recon.train.config import FitConfig, InitOptions
from recon.train.losses import photometric_loss
from recon.train.trainer import Trainer

from .test_model_conformance import mean_loss, model_config


def small_config(data, out, **changes) -> FitConfig:
    return FitConfig(data=data, out=out, steps=12, quiet=True, log_every=4,
                     checkpoint_every=100, init=InitOptions(num_random=300), max_sh_degree=1,
                     sh_degree_interval=6, keep_checkpoints=0, **changes)


def test_camera_result_is_the_one_camera_render(tiny_npz, tmp_path):
    trainer = Trainer.open(small_config(tiny_npz, tmp_path / "run"))
    g = trainer.model.primitives(trainer.params)
    colors = trainer.model.colors(trainer.params, 0)
    both = render(g, trainer.cameras[:2], colors, sh_degree=0)
    for b in range(2):
        one = render(g, trainer.cameras[b], colors, sh_degree=0)
        view = camera_result(both, b)
        for field in ("features", "alpha", "depth", "median_depth"):
            assert torch.allclose(getattr(view, field), getattr(one, field), atol=1e-6), field
        assert torch.equal(view.radii, one.radii) and view.means2d.shape == one.means2d.shape


def test_a_batch_gradient_is_the_sum_of_its_cameras_gradients_to_the_bit(tiny_npz, tmp_path):
    """What two ranks all-reduce (each camera's gradient, then their sum) is what one process's
    batch computes, bit for bit: the projection's backward finishes each camera's gradient
    (through the quaternion normalisation and the sigmoid) before adding it to the others'.
    (With the old per-row running sums this fails: scales and rotations differ.) DC colours
    only: view-dependent colours add the view directions' gradient to the means in another
    order (a few ulps)."""
    trainer = Trainer.open(small_config(tiny_npz, tmp_path / "run"))
    generator = torch.Generator().manual_seed(5)
    v_image = torch.randn(2, 3, 32, 32, generator=generator)
    v_alpha = torch.randn(2, 32, 32, generator=generator)

    def gradients(views: list[int], weight: float) -> dict:
        for p in trainer.params.values():
            p.grad = None
        cameras = ([trainer.cameras[i] for i in views] if len(views) > 1
                   else trainer.cameras[views[0]])
        drawn = trainer.draw(trainer.params, cameras, trainer.model.colors(trainer.params, 0), 0,
                             torch.ones(3), False)
        ((drawn.features * v_image[views].squeeze(0)).sum()
         + (drawn.alpha * v_alpha[views].squeeze(0)).sum()).mul(weight).backward()
        return {k: p.grad.clone() for k, p in trainer.params.items() if p.grad is not None}

    batch = gradients([0, 1], 0.5)
    first, second = gradients([0], 1.0), gradients([1], 1.0)
    assert {"means", "scales", "quats", "opacities", "sh0"} <= set(batch)
    for name, value in batch.items():
        assert torch.equal(value, (first[name] + second[name]) / 2), name


def test_a_batch_renders_b_views_scales_the_rates_and_averages_the_loss(tiny_npz, tmp_path):
    trainer = Trainer.open(small_config(tiny_npz, tmp_path / "run", batch_size=3))
    views = trainer._batch_views(0)
    assert views == [trainer._image_index(j) for j in range(3)]
    assert trainer._batch_views(1) == [trainer._image_index(3 + j) for j in range(3)]
    out = trainer.train_step()
    assert out["image"].shape == (3, 3, 32, 32) and out["target"].shape == (3, 3, 32, 32)
    # The step's loss (no MCMC terms: --strategy default) is the mean of the per-image losses.
    per_image = [photometric_loss(out["image"][j], out["target"][j], 0.2) for j in range(3)]
    assert abs(float(out["loss"]) - float(torch.stack(per_image).mean())) < 1e-6
    # √B learning rates and betas 1 - B(1 - β) (gsplat's rule).
    base = trainer.model.learning_rates(0)
    for name, optimizer in trainer.optimizers.items():
        group = optimizer.param_groups[0]
        assert group["lr"] == pytest.approx(base[name] * math.sqrt(3), rel=1e-12)
        assert group["betas"] == pytest.approx((1 - 3 * 0.1, 1 - 3 * 0.001), rel=1e-12)


def test_one_image_batches_keep_torch_adams_defaults(tiny_npz, tmp_path):
    trainer = Trainer.open(small_config(tiny_npz, tmp_path / "run"))
    trainer.train_step()
    base = trainer.model.learning_rates(0)
    for name, optimizer in trainer.optimizers.items():
        assert optimizer.param_groups[0]["betas"] == (0.9, 0.999)
        assert optimizer.param_groups[0]["lr"] == base[name]


def test_default_strategy_counts_every_view_of_the_batch(tiny_npz, tmp_path):
    strategy = DefaultStrategy(refine_start_iter=10**6)
    trainer = Trainer.open(small_config(tiny_npz, tmp_path / "run", batch_size=2,
                                        default_strategy=strategy))
    trainer.train_step()
    # The statistic counts views, not steps: Gaussians both views see have count 2 after one step.
    counts = trainer.strategy_state["count"]
    assert float(counts.max()) == 2.0 and int((counts == 2).sum()) > 0


def test_a_batch_larger_than_the_training_set_is_refused(tiny_npz, tmp_path):
    with pytest.raises(DatasetError, match="--batch-size 50"):
        Trainer.open(small_config(tiny_npz, tmp_path / "run", batch_size=50))


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_every_model_learns_with_batches_of_two(model, tiny_npz, tmp_path):
    """The per-image terms of each model (the convexes' and FlexiCubes' masks, the triangles'
    own terms) run per view of the batch; 10 steps of 2 images lower the loss over all views."""
    config = dataclasses.replace(model_config(model, tiny_npz, tmp_path / "run"), steps=10,
                                 batch_size=2)
    trainer = Trainer.open(config)
    before = mean_loss(trainer)
    trainer.train()
    assert mean_loss(trainer) < 0.97 * before
