"""A tiny self-made dataset (an .npz of 10 RGBA views, 32x32, of a few coloured Gaussians) so the
trainer tests run in seconds and need no shared data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from recon.cameras import Camera, look_at


def _ring_cameras(n: int, size: int) -> list[Camera]:
    cams = []
    for i in range(n):
        a = 2 * np.pi * i / n
        eye = np.array([3.0 * np.cos(a), 3.0 * np.sin(a), 1.0])
        cams.append(Camera(size, size, 40.0, 40.0, size / 2, size / 2, look_at(eye, np.zeros(3))))
    return cams


@pytest.fixture(scope="session")
def tiny_npz(tmp_path_factory) -> Path:
    """10 views (every 8th a test view) of 6 opaque coloured blobs on a transparent background."""
    from recon.primitives.gaussians import Gaussians
    from recon.render import render

    g = torch.Generator().manual_seed(1)
    n = 6
    blobs = Gaussians(means=(torch.rand(n, 3, generator=g) - 0.5) * 1.2,
                      quats=torch.randn(n, 4, generator=g),
                      log_scales=torch.full((n, 3), -1.6),
                      opacity_logits=torch.full((n,), 4.0))
    colors = torch.rand(n, 3, generator=g)
    cams = _ring_cameras(10, 32)
    images, poses = [], []
    with torch.no_grad():
        for cam in cams:
            out = render(blobs, cam, colors, depth=False, normals=False)
            rgba = torch.cat([out.features, out.alpha[None]], 0).permute(1, 2, 0)
            images.append((rgba.clamp(0, 1) * 255).round().to(torch.uint8).numpy())
            poses.append(cam.opengl_camera_to_world())
    path = tmp_path_factory.mktemp("tiny") / "tiny.npz"
    np.savez(path, images_rgba=np.stack(images), poses=np.stack(poses), focal=np.float64(40.0))
    return path


@pytest.fixture(autouse=True)
def one_thread():
    """The runs here are tiny (32x32, a few hundred Gaussians): a second thread only adds
    fork/join overhead, and on a busy 2-core machine spinning OpenMP threads make each step
    ~10x slower. The previous setting is restored for other tests."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
