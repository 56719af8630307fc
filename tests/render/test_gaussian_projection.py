"""Gaussian EWA projection and SH colour against gsplat's pure-torch implementations."""

from __future__ import annotations

import pytest
import torch

from recon.primitives.gaussians import (Gaussians, covariances, kernel_torch, project_native,
                                        project_torch)
from recon.render.sh import eval_sh

torch_impl = pytest.importorskip("gsplat.cuda._torch_impl")
# The torch projection (the reference) and the fused native op must both pass every check.
PROJECTIONS = pytest.mark.parametrize("project", [project_torch, project_native],
                                      ids=["torch", "native"])

WIDTH, HEIGHT = 64, 48


def scene(seed: int, n: int = 200):
    gen = torch.Generator().manual_seed(seed)
    g = Gaussians(
        means=torch.randn(n, 3, generator=gen, dtype=torch.float64) * 1.5,
        quats=torch.randn(n, 4, generator=gen, dtype=torch.float64),
        log_scales=torch.randn(n, 3, generator=gen, dtype=torch.float64) - 2.0,
        opacity_logits=torch.full((n,), 8.0, dtype=torch.float64),  # opacity ~1: full 3.33σ box
    )
    viewmats = torch.eye(4, dtype=torch.float64).repeat(2, 1, 1)
    viewmats[:, 2, 3] = torch.tensor([2.5, 1.0], dtype=torch.float64)  # 2nd: many behind/near
    viewmats[1, :3, :3] = torch.tensor([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]], dtype=torch.float64)
    Ks = torch.tensor([[50.0, 0, 31.0], [0, 55.0, 25.0], [0, 0, 1]],
                      dtype=torch.float64).repeat(2, 1, 1)
    return g, viewmats, Ks


@PROJECTIONS
@pytest.mark.parametrize("antialiased", [False, True])
def test_projection_matches_gsplat(antialiased, project):
    g, viewmats, Ks = scene(0)
    fp = project(g, viewmats, Ks, WIDTH, HEIGHT, antialiased=antialiased)
    radii, means2d, depths, conics, comp = torch_impl._fully_fused_projection(
        g.means, covariances(g.quats, g.scales), viewmats, Ks, WIDTH, HEIGHT, eps2d=0.3,
        calc_compensations=antialiased)
    theirs_visible = (radii > 0).all(-1)
    v = fp.visible
    assert 20 < int(v.sum()) < v.numel()  # both kept and culled occur
    # gsplat keeps a splat whose integer 3.33σ box touches the image; recon's box is where
    # α >= 1/255 can hold, so it may cull a few more at the border — only ones that draw nothing.
    assert not (v & ~theirs_visible).any()
    extra = theirs_visible & ~v
    assert int(extra.sum()) <= 5
    ys, xs = torch.meshgrid(torch.arange(HEIGHT, dtype=torch.float64) + 0.5,
                            torch.arange(WIDTH, dtype=torch.float64) + 0.5, indexing="ij")
    k, _ = kernel_torch(fp.params[extra][:, None, None], xs, ys)
    assert torch.all(fp.opacities[extra][:, None, None] * k < 1 / 255)
    # Float64 on both sides: only rounding differences remain.
    torch.testing.assert_close(fp.means2d[v], means2d[v], rtol=1e-10, atol=1e-9)
    torch.testing.assert_close(fp.depths, depths, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fp.params[..., 2:][v], conics[v], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(fp.radii[v], radii.amax(-1)[v].to(torch.int32))
    if antialiased:
        torch.testing.assert_close(fp.opacities[v], g.opacities.expand_as(comp)[v] * comp[v],
                                   rtol=1e-10, atol=1e-12)


@PROJECTIONS
def test_projection_gradients_are_finite_for_culled_splats(project):
    # Splats behind the camera, at the camera centre and with huge/tiny scales must not poison
    # the gradients of the others with NaN/inf.
    g, viewmats, Ks = scene(1, n=50)
    g.means[0] = torch.tensor([0.0, 0.0, -2.5])  # exactly at the 1st camera's centre
    g.means[1] = torch.tensor([0.0, 0.0, -10.0])  # behind it
    g.log_scales[2] = torch.tensor([6.0, 6.0, 6.0])  # huge
    g.log_scales[3] = torch.tensor([-20.0, -20.0, -20.0])  # tiny
    leaves = [t.requires_grad_() for t in (g.means, g.quats, g.log_scales, g.opacity_logits)]
    fp = project(g, viewmats, Ks, WIDTH, HEIGHT)
    loss = (fp.params * fp.visible[..., None]).sum() + fp.opacities.sum() + fp.depths.sum()
    grads = torch.autograd.grad(loss, leaves)
    assert all(torch.isfinite(gr).all() for gr in grads)
    assert not fp.visible[0, 0] and not fp.visible[0, 1]
    assert fp.visible[0, 3]  # a tiny splat is still a dilated 0.3 px² blob
    assert int(fp.bounds[0, 2, 2] - fp.bounds[0, 2, 0]) == WIDTH  # huge: clipped to the image


@PROJECTIONS
def test_normals_face_the_camera_along_shortest_axis(project):
    g = Gaussians(means=torch.tensor([[0.0, 0.0, 0.0]], dtype=torch.float64),
                  quats=torch.tensor([[1.0, 0, 0, 0]], dtype=torch.float64),
                  log_scales=torch.tensor([[0.0, -3.0, 0.0]], dtype=torch.float64),
                  opacity_logits=torch.zeros(1, dtype=torch.float64))
    viewmats = torch.eye(4, dtype=torch.float64)[None]
    # Camera at z = -3 looking along +z, rotated so world y maps to camera -z.
    viewmats[0, :3, :3] = torch.tensor([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=torch.float64)
    viewmats[0, 2, 3] = 3.0
    Ks = torch.tensor([[[50.0, 0, 32], [0, 50, 24], [0, 0, 1]]], dtype=torch.float64)
    fp = project(g, viewmats, Ks, WIDTH, HEIGHT)
    torch.testing.assert_close(fp.normals[0, 0], torch.tensor([0.0, 0, -1], dtype=torch.float64))


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_matches_gsplat(degree):
    gen = torch.Generator().manual_seed(degree)
    dirs = torch.randn(100, 3, generator=gen, dtype=torch.float64)
    coeffs = torch.randn(100, 16, 3, generator=gen, dtype=torch.float64)
    ours = eval_sh(degree, dirs, coeffs)
    theirs = torch_impl._spherical_harmonics(degree, dirs, coeffs)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_native_sh_matches_torch_and_gradchecks(degree):
    from recon._ops.sh import spherical_harmonics

    gen = torch.Generator().manual_seed(10 + degree)
    dirs = torch.randn(2, 6, 3, generator=gen, dtype=torch.float64).requires_grad_()
    shared = torch.randn(6, 16, 2, generator=gen, dtype=torch.float64).requires_grad_()
    per_camera = torch.randn(2, 6, 16, 2, generator=gen, dtype=torch.float64).requires_grad_()
    want = eval_sh(degree, dirs, shared[None].expand(2, -1, -1, -1))
    torch.testing.assert_close(spherical_harmonics(degree, dirs, shared), want,
                               rtol=1e-12, atol=1e-12)
    # Coefficients shared by both cameras get the sum of both cameras' gradients.
    assert torch.autograd.gradcheck(lambda d, c: spherical_harmonics(degree, d, c),
                                    (dirs, shared))
    assert torch.autograd.gradcheck(lambda d, c: spherical_harmonics(degree, d, c),
                                    (dirs, per_camera))
