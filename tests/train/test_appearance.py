"""Per-image appearance correction (--appearance): an affine colour transform per training image
that absorbs exposure changes, so the model keeps one appearance; resumed bit for bit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from recon.train.appearance import Appearance
from recon.train.trainer import Trainer

from .test_trainer import full_state, tiny_config

DARK = 0.6
"""The exposure of every other training photo in the test dataset."""


def test_the_transform_starts_as_the_identity_and_learns():
    appearance = Appearance(3, lr=0.1, device="cpu")
    image = torch.rand(3, 4, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(appearance(image, 1), image)
    (appearance(image, 1) - 0.5 * image).square().mean().backward()
    assert appearance.affine.grad[1].abs().sum() > 0
    assert appearance.affine.grad[[0, 2]].abs().sum() == 0   # the other images' stay put
    appearance.step()
    assert appearance.affine.grad is None and not torch.equal(appearance.affine[1],
                                                              torch.eye(3, 4))


@pytest.fixture(scope="module")
def uneven_exposure(tiny_npz, tmp_path_factory):
    """The tiny blobs composited over grey (opaque photos), every other training image darkened
    to DARK of its exposure; the test images (every 8th) keep theirs."""
    data = np.load(tiny_npz)
    rgba = data["images_rgba"].astype(np.float64) / 255.0
    rgb = rgba[..., :3] * rgba[..., 3:] + 0.5 * (1 - rgba[..., 3:])
    dark = np.array([i % 2 == 1 and i % 8 != 0 for i in range(len(rgb))])
    rgb[dark] *= DARK
    path = tmp_path_factory.mktemp("exposure") / "uneven.npz"
    np.savez(path, images_rgba=np.round(rgb * 255).astype(np.uint8), poses=data["poses"],
             focal=data["focal"])
    return path, dark


def test_the_correction_absorbs_uneven_exposure(uneven_exposure, tmp_path):
    """With the DC colour only (no view-dependent colour to hide exposure in), the transforms
    learn the exposure: a darkened photo's transform dims the render by DARK of what a full
    one's does (measured 0.63: 0.82 against 1.30 on average after 300 steps); the evaluation
    scores the test renders as they are and colour-matched to each photo."""
    from recon.eval.evaluate import evaluate_run
    from recon.metrics import psnr
    from recon.train.appearance import colour_matched

    path, dark = uneven_exposure
    config = tiny_config(path, tmp_path / "run", steps=300, max_sh_degree=0, appearance=True,
                         checkpoint_every=300)
    config = dataclasses.replace(
        config, data_options=dataclasses.replace(config.data_options, background="white"),
        optim=dataclasses.replace(config.optim, appearance_lr=0.05))
    trainer = Trainer.open(config)
    trainer.train()
    colors = trainer.model.colors(trainer.params, 0)

    def render(camera):
        with torch.no_grad():
            return trainer.draw(trainer.params, camera, colors, 0, torch.ones(3),
                                False).features.clamp(0, 1)

    dims = []
    for k, camera in enumerate(trainer.cameras):
        raw = render(camera)
        with torch.no_grad():
            dims.append(float(trainer.appearance(raw, k).mean() / raw.mean()))
    dims, darkened = np.array(dims), dark[trainer.train_indices]
    assert abs(dims[darkened].mean() / dims[~darkened].mean() - DARK) < 0.1

    result = evaluate_run(trainer.run_dir)
    for entry in result["per_image"]:
        photo = torch.from_numpy(trainer.dataset.image(entry["index"])[..., :3] / 255.0)
        photo = photo.permute(2, 0, 1).float()
        raw = render(trainer.dataset.cameras[entry["index"]])
        assert entry["psnr"] == pytest.approx(float(psnr(raw, photo)), abs=1e-4)
        matched = colour_matched(raw, photo).clamp(0, 1)
        assert entry["corrected_psnr"] == pytest.approx(float(psnr(matched, photo)), abs=1e-4)
        assert entry["corrected_psnr"] >= entry["psnr"] - 1e-6  # a transform can only help


def test_resume_with_the_correction_is_bit_identical(tiny_npz, tmp_path):
    straight = Trainer.open(tiny_config(tiny_npz, tmp_path / "a", appearance=True))
    straight.train()
    first = Trainer.open(tiny_config(tiny_npz, tmp_path / "b", appearance=True))
    first.train(until=15)
    first.save_checkpoint()
    del first
    resumed = Trainer.open(tiny_config(tiny_npz, tmp_path / "b", resume=True))
    resumed.train()
    a, b = full_state(straight), full_state(resumed)
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert torch.equal(straight.appearance.affine, resumed.appearance.affine)
    assert not torch.equal(resumed.appearance.affine[0], torch.eye(3, 4))
