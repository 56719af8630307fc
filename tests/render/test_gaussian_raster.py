"""The native Gaussian rasterizer (CPU backend) against the dense pure-torch reference."""

from __future__ import annotations

import pytest
import torch

from recon._ops import rasterize
from recon.primitives.base import KIND_GAUSSIAN
from recon.primitives.gaussians import Gaussians, project_native as project
from recon.render.binning import bin_footprints
from recon.render.reference import rasterize_dense


def random_scene(seed: int, n: int = 40, width: int = 37, height: int = 29, cameras: int = 2,
                 channels: int = 4, dtype=torch.float32, log_scale: float = -2.0,
                 opacity_logit: float = 0.0):
    """Gaussians in front of B cameras on a 37x29 image (not a multiple of the 16 px tile, so edge
    tiles are partial)."""
    gen = torch.Generator().manual_seed(seed)
    g = Gaussians(
        means=torch.randn(n, 3, generator=gen, dtype=dtype) * 0.6,
        quats=torch.randn(n, 4, generator=gen, dtype=dtype),
        log_scales=torch.randn(n, 3, generator=gen, dtype=dtype) * 0.5 + log_scale,
        opacity_logits=torch.randn(n, generator=gen, dtype=dtype) + opacity_logit,
    )
    viewmats = torch.eye(4, dtype=dtype).repeat(cameras, 1, 1)
    viewmats[:, 2, 3] = 3.0
    viewmats[:, 0, 3] = torch.linspace(-0.3, 0.3, cameras, dtype=dtype)
    Ks = torch.tensor([[40.0, 0, width / 2], [0, 40.0, height / 2], [0, 0, 1]],
                      dtype=dtype).repeat(cameras, 1, 1)
    fp = project(g, viewmats, Ks, width, height)
    features = torch.rand(cameras, n, 1, channels, generator=gen, dtype=dtype)
    return fp, features, width, height


def native(fp, params, opacities, features, width, height, tile_size=16, absgrad_out=None,
           use_bounds=True):
    bins = bin_footprints(fp.bounds, fp.depths, width, height, tile_size)
    out = rasterize(params, opacities, features, bins.isect_prims, bins.tile_ranges,
                    KIND_GAUSSIAN, width, height, tile_size, absgrad_out,
                    bounds=fp.bounds if use_bounds else None)
    return out, bins


def reference(fp, params, opacities, features, width, height):
    return rasterize_dense(KIND_GAUSSIAN, params, opacities, features, fp.depths, fp.visible,
                           width, height)


def leaves(fp, features):
    return [t.detach().clone().requires_grad_() for t in (fp.params, fp.opacities, features)]


@pytest.mark.parametrize("seed,use_bounds", [(0, True), (1, True), (0, False)])
def test_forward_matches_reference(seed, use_bounds):
    fp, features, width, height = random_scene(seed)
    out, bins = native(fp, fp.params, fp.opacities, features, width, height,
                       use_bounds=use_bounds)
    ref = reference(fp, fp.params, fp.opacities, features, width, height)
    assert ref.alpha.max() > 0.5  # the scene draws something substantial
    # float32 sums of a few dozen terms in the same order: agreement to rounding (~1e-7).
    assert (out.features - ref.features).abs().max() <= 1e-5
    assert (out.alpha - ref.alpha).abs().max() <= 1e-5
    assert (out.max_weight - ref.max_weight).abs().max() <= 1e-5
    n = fp.opacities.shape[1]
    idx = out.median_idx.long()
    median = torch.where(idx >= 0, bins.isect_prims.long()[idx.clamp_min(0)] % n, idx)
    assert torch.equal(median, ref.median_prim)


def test_saturated_pixels_stop_like_reference():
    # Many large opaque splats: most pixels hit the T < 1e-4 stop rule.
    fp, features, width, height = random_scene(3, n=60, log_scale=-1.0, opacity_logit=4.0)
    out, _ = native(fp, fp.params, fp.opacities, features, width, height)
    ref = reference(fp, fp.params, fp.opacities, features, width, height)
    assert (ref.alpha > 1 - 1e-3).float().mean() > 0.5
    assert (out.features - ref.features).abs().max() <= 1e-5
    assert (out.alpha - ref.alpha).abs().max() <= 1e-5


@pytest.mark.parametrize("seed,opacity_logit,use_bounds", [(0, 0.0, True), (4, 3.0, True),
                                                           (4, 3.0, False)])
def test_gradients_match_reference(seed, opacity_logit, use_bounds):
    fp, features, width, height = random_scene(seed, opacity_logit=opacity_logit)
    gen = torch.Generator().manual_seed(100 + seed)
    v_out = torch.randn(2, height, width, features.shape[-1], generator=gen)
    v_alpha = torch.randn(2, height, width, generator=gen)

    def grads(run):
        inputs = leaves(fp, features)
        res = run(fp, *inputs, width, height)
        loss = (res.features * v_out).sum() + (res.alpha * v_alpha).sum()
        return torch.autograd.grad(loss, inputs)

    got = grads(lambda *a: native(*a, use_bounds=use_bounds)[0])
    want = grads(reference)
    for name, g, w in zip(("params", "opacities", "features"), got, want):
        scale = w.abs().max()
        assert scale > 0, name
        # Relative to the largest entry: the native backward divides T back out (1 - α), which
        # loses a few float32 ulps per layer; 1e-3 leaves room without hiding a wrong term.
        assert ((g - w).abs().max() / scale) <= 1e-3, name


def test_gradcheck_float64():
    # Tiny scene, 4 px tiles so several tiles and partial edge tiles are crossed. Opacities stay
    # away from the 0.99 clamp so finite differences see a smooth function.
    fp, features, width, height = random_scene(7, n=5, width=11, height=9, cameras=1,
                                               channels=2, dtype=torch.float64, log_scale=-1.5,
                                               opacity_logit=-0.5)
    fp.opacities = fp.opacities.clamp_max(0.9)
    bins = bin_footprints(fp.bounds, fp.depths, width, height, 4)
    assert bins.isect_prims.numel() >= 5

    def f(params, opacities, feats):
        out = rasterize(params, opacities, feats, bins.isect_prims, bins.tile_ranges,
                        KIND_GAUSSIAN, width, height, 4, bounds=fp.bounds)
        return out.features, out.alpha

    assert torch.autograd.gradcheck(f, leaves(fp, features), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_absgrad_sums_per_pixel_magnitudes():
    fp, features, width, height = random_scene(5)
    params, opacities, feats = leaves(fp, features)
    absgrad = torch.zeros_like(params)
    out, _ = native(fp, params, opacities, feats, width, height, absgrad_out=absgrad)
    v_out = torch.randn_like(out.features)
    (out.features * v_out).sum().backward()
    # |Σ_p g_p| <= Σ_p |g_p|, strictly somewhere because per-pixel gradients cancel.
    assert torch.all(absgrad >= params.grad.abs() - 1e-6)
    assert (absgrad - params.grad.abs()).max() > 1e-3
    # With one pixel's cotangent there is nothing to cancel: absgrad == |grad|.
    params.grad = None
    absgrad.zero_()
    out, _ = native(fp, params, opacities, feats, width, height, absgrad_out=absgrad)
    one = torch.zeros_like(out.features)
    one[0, height // 2, width // 2] = 1.0
    (out.features * one).sum().backward()
    torch.testing.assert_close(absgrad, params.grad.abs(), atol=1e-7, rtol=0)


def test_backward_is_deterministic():
    fp, features, width, height = random_scene(6)
    v_out = torch.randn(2, height, width, features.shape[-1])

    def grad():
        inputs = leaves(fp, features)
        out, _ = native(fp, *inputs, width, height)
        return torch.autograd.grad((out.features * v_out).sum(), inputs)

    for a, b in zip(grad(), grad()):
        assert torch.equal(a, b)


def test_empty_scene():
    fp, features, width, height = random_scene(0, n=0)
    params, opacities, feats = leaves(fp, features)
    out, bins = native(fp, params, opacities, feats, width, height)
    assert bins.isect_prims.numel() == 0
    assert torch.all(out.features == 0) and torch.all(out.alpha == 0)
    assert torch.all(out.median_idx == -1)
    out.features.sum().backward()  # no primitives: gradients are empty, not an error
    assert params.grad.shape == (2, 0, 5)


def test_shape_errors_are_clear():
    fp, features, width, height = random_scene(0)
    bins = bin_footprints(fp.bounds, fp.depths, width, height)
    with pytest.raises(RuntimeError, match=r"features must be \[B, N, V, C\]"):
        rasterize(fp.params, fp.opacities, features[:, :3], bins.isect_prims, bins.tile_ranges,
                  KIND_GAUSSIAN, width, height)
    with pytest.raises(RuntimeError, match=r"bounds must be a contiguous int32 \[B, N, 4\]"):
        rasterize(fp.params, fp.opacities, features, bins.isect_prims, bins.tile_ranges,
                  KIND_GAUSSIAN, width, height, bounds=fp.bounds[:, :, :2])
    with pytest.raises(RuntimeError, match="unknown primitive kind"):
        rasterize(fp.params, fp.opacities, features, bins.isect_prims, bins.tile_ranges, 17,
                  width, height)
