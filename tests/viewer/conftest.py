"""A tiny fitted run (12 views, 64x64, of a few coloured blobs; 80 steps) shared by the viewer
tests, so they need no shared data and build it in seconds."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from recon.cameras import Camera, look_at

SIZE = 64
STEPS = 150


def _ring(n: int, size: int = SIZE) -> list[Camera]:
    """n cameras on a circle of radius 3 at height 1, looking at the origin (z up)."""
    cams = []
    for i in range(n):
        a = 2 * np.pi * i / n
        eye = np.array([3.0 * np.cos(a), 3.0 * np.sin(a), 1.0])
        cams.append(Camera(size, size, 70.0, 70.0, size / 2, size / 2, look_at(eye, np.zeros(3))))
    return cams


@pytest.fixture
def ring_cameras():
    return _ring


@pytest.fixture(scope="session")
def blobs_npz(tmp_path_factory) -> Path:
    """12 RGBA views of 6 opaque coloured blobs around the origin on a transparent background."""
    from recon.primitives.gaussians import Gaussians
    from recon.render import render

    g = torch.Generator().manual_seed(3)
    n = 6
    blobs = Gaussians(means=(torch.rand(n, 3, generator=g) - 0.5) * 1.0,
                      quats=torch.randn(n, 4, generator=g),
                      log_scales=torch.full((n, 3), -1.4),
                      opacity_logits=torch.full((n,), 4.0))
    colors = torch.rand(n, 3, generator=g) * 0.8
    images, poses = [], []
    with torch.no_grad():
        for cam in _ring(12):
            out = render(blobs, cam, colors, depth=False, normals=False)
            rgba = torch.cat([out.features, out.alpha[None]], 0).permute(1, 2, 0)
            images.append((rgba.clamp(0, 1) * 255).round().to(torch.uint8).numpy())
            poses.append(cam.opengl_camera_to_world())
    path = tmp_path_factory.mktemp("blobs") / "blobs.npz"
    np.savez(path, images_rgba=np.stack(images), poses=np.stack(poses), focal=np.float64(70.0))
    return path


@pytest.fixture(scope="session")
def fitted_run(blobs_npz, tmp_path_factory) -> Path:
    """A run directory with one checkpoint after a short fit (enough to show the blobs)."""
    from recon.train.config import PRESETS, InitOptions
    from recon.train.trainer import fit

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = dataclasses.replace(
            PRESETS["default"], data=blobs_npz, out=tmp_path_factory.mktemp("runs") / "run",
            steps=STEPS, quiet=True, checkpoint_every=STEPS,
            init=InitOptions(num_random=2000), sh_degree_interval=50)
        return fit(config)
    finally:
        torch.set_num_threads(previous)
