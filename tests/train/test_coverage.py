"""--coverage-weight: photos have no background, so the loss may ask every pixel to be covered."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from recon.train.trainer import Trainer

from .test_trainer import tiny_config


@pytest.fixture(scope="module")
def white_sky(tiny_npz, tmp_path_factory):
    """The tiny blobs composited over white and saved without alpha: photos whose 'sky' is the
    colour of a white training background, so no colour gradient asks for cover there."""
    data = np.load(tiny_npz)
    rgba = data["images_rgba"].astype(np.float64) / 255.0
    rgb = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])
    path = tmp_path_factory.mktemp("sky") / "white_sky.npz"
    np.savez(path, images_rgba=np.round(rgb * 255).astype(np.uint8), poses=data["poses"],
             focal=data["focal"])
    return path


def _trainer(data, out, weight: float, **changes) -> Trainer:
    config = tiny_config(data, out, coverage_weight=weight, **changes)
    return Trainer.open(dataclasses.replace(config, data_options=dataclasses.replace(
        config.data_options, background="white")))


def _uncovered(trainer: Trainer, view: int) -> float:
    with torch.no_grad():
        drawn = trainer.draw(trainer.params, trainer.cameras[view],
                             trainer.model.colors(trainer.params, 0), 0, torch.ones(3), False)
    return float((1.0 - drawn.alpha).mean())


@pytest.mark.parametrize("photos", [True, False])
def test_the_term_is_the_weighted_uncovered_fraction_of_photos_only(photos, white_sky, tiny_npz,
                                                                    tmp_path):
    """One step with weight 0.5 against weight 0 from the same start: the losses differ by
    0.5 × mean(1 - alpha) of the step's render for photos (no alpha), by nothing for RGBA
    images (their alpha is what the render is fitted to)."""
    data = white_sky if photos else tiny_npz
    losses = []
    for weight in (0.0, 0.5):
        trainer = _trainer(data, tmp_path / str(weight), weight)
        uncovered = _uncovered(trainer, trainer._batch_views(0)[0])
        losses.append(float(trainer.train_step()["loss"]))
    expected = 0.5 * uncovered if photos else 0.0
    assert uncovered > 0.2  # random points at the start leave much of each view uncovered
    assert losses[1] - losses[0] == pytest.approx(expected, abs=1e-6)


def test_a_fit_covers_a_sky_that_matches_the_background(white_sky, tmp_path):
    """300 steps over a white training background on photos with a white sky: without the term
    the sky stays uncovered (nothing there to fit), with it the views are covered (measured:
    mean uncovered fraction of the views 0.84 without, 0.06 with)."""
    results = {}
    for weight in (0.0, 0.5):
        trainer = _trainer(white_sky, tmp_path / str(weight), weight, steps=300)
        trainer.train()
        results[weight] = np.mean([_uncovered(trainer, v) for v in range(len(trainer.cameras))])
    assert results[0.5] < 0.2 * results[0.0]
