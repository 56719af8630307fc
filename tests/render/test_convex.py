"""Smooth convexes: 2D hull, projection, and the native convex kernel against the torch reference."""

from __future__ import annotations

import pytest
import torch

from recon._ops import rasterize
from recon.cameras import Camera
from recon.primitives.base import KIND_CONVEX
from recon.primitives.convexes import (
    FOOTPRINT_SIZE, Convexes, hull_lines, kernel_torch, project,
)
from recon.render import render
from recon.render.binning import bin_footprints
from recon.render.reference import ALPHA_MIN
from recon.render.testing import cameras, leaves, native, reference


def random_convexes(seed: int, n: int = 30, k: int = 6, dtype=torch.float32, size: float = 0.35,
                    log_delta: float = -2.3, log_sigma: float = -1.2,
                    opacity_logit: float = 0.0) -> Convexes:
    """Convexes of K random points about random centres; the default δ, σ give corners and edges
    a few pixels soft on a 37x29 image at focal 40, depth 3."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(n, 1, 3, generator=gen, dtype=dtype) * 0.5
    return Convexes(
        points=centres + size * torch.randn(n, k, 3, generator=gen, dtype=dtype),
        log_delta=log_delta + 0.3 * torch.randn(n, generator=gen, dtype=dtype),
        log_sigma=log_sigma + 0.3 * torch.randn(n, generator=gen, dtype=dtype),
        opacity_logit=opacity_logit + torch.randn(n, generator=gen, dtype=dtype),
    )


def random_scene(seed: int, n: int = 30, width: int = 37, height: int = 29, count: int = 2,
                 channels: int = 4, dtype=torch.float32, **kwargs):
    """37x29 is not a multiple of the 16 px tile, so edge tiles are partial."""
    convexes = random_convexes(seed, n, dtype=dtype, **kwargs)
    viewmats, Ks = cameras(count, width, height, dtype)
    fp = project(convexes, viewmats, Ks, width, height)
    gen = torch.Generator().manual_seed(1000 + seed)
    features = torch.rand(count, n, 1, channels, generator=gen, dtype=dtype)
    return fp, features, width, height


def probe(params: torch.Tensor, width: int, height: int, opacity: float = 0.5) -> torch.Tensor:
    """Native kernel value I at every pixel of one hand-made footprint, read back through the
    rasterizer: one primitive of feature 1 composites to o·I (where o·I >= 1/255)."""
    params = params.reshape(1, 1, FOOTPRINT_SIZE)
    bounds = torch.tensor([[[0, 0, width, height]]], dtype=torch.int32)
    bins = bin_footprints(bounds, torch.ones(1, 1), width, height)
    out = rasterize(params, torch.full((1, 1), opacity), torch.ones(1, 1, 1, 1),
                    bins.isect_prims, bins.tile_ranges, KIND_CONVEX, width, height)
    return out.features[0, ..., 0] / opacity


def square_footprint(x0, y0, x1, y1, a, b) -> torch.Tensor:
    """Axis-aligned rectangle hull with unnormalised outward normals (|n| = edge length)."""
    w, h = x1 - x0, y1 - y0
    lines = [(0.0, -w, w * y0), (h, 0.0, -h * x1), (0.0, w, -w * y1), (-h, 0.0, h * x0)]
    fp = torch.zeros(FOOTPRINT_SIZE)
    fp[:3] = torch.tensor([4.0, a, b])
    fp[3:15] = torch.tensor(lines).flatten()
    return fp


# -- the 2D hull -------------------------------------------------------------------------------

def test_hull_of_square_with_interior_collinear_and_duplicate_points():
    q = torch.tensor([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0],
                      [5.0, 5.0],     # interior
                      [5.0, 0.0],     # on the bottom edge
                      [10.0, 10.0],   # duplicate of a corner
                      [0.0, 10.0 + 1e-5]])  # within HULL_TOLERANCE of a corner
    normals, offsets, used = hull_lines(q)
    assert used.sum() == 4 and torch.all(used[:4])
    n, c = normals[used], offsets[used]
    # Outward, unnormalised: the centre is inside by exactly |n|·5 = 50 for every 10 px edge.
    centre_value = n @ torch.tensor([5.0, 5.0]) + c
    torch.testing.assert_close(centre_value, torch.full((4,), -50.0))
    torch.testing.assert_close(n.norm(dim=-1), torch.full((4,), 10.0))
    # Every corner lies on exactly two lines and inside the other two.
    values = q[:4] @ n.T + c
    assert torch.all((values.abs() < 1e-4).sum(-1) == 2)
    assert torch.all(values < 1e-4)


@pytest.mark.parametrize("points", [
    [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0], [5.0, 5.0]],  # collinear
    [[3.0, 4.0]] * 6,                                                           # coincident
    [[3.0, 4.0], [3.0, 4.0], [7.0, 1.0], [7.0, 1.0], [7.0, 1.0], [3.0, 4.0]],   # two points
])
def test_degenerate_hulls_have_fewer_than_three_lines(points):
    _, _, used = hull_lines(torch.tensor(points))
    assert used.sum() < 3


def test_triangle_hull_with_k3():
    _, _, used = hull_lines(torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 3.0]]))
    assert used.sum() == 3


# -- kernel values ---------------------------------------------------------------------------

def test_kernel_is_half_where_phi_is_zero_and_saturates_inside():
    W = H = 24
    fp = square_footprint(4.0, 4.0, 20.0, 20.0, a=0.05, b=2.0)
    # Shift every line by the same amount so that φ = 0 exactly at the pixel centre (4.5, 12.5).
    a = fp[1]
    phi0 = torch.logsumexp(a * (fp[3:15].view(4, 3) @ torch.tensor([4.5, 12.5, 1.0])), 0)
    fp[5:15:3] -= phi0 / a
    I = probe(fp, W, H)
    assert abs(I[12, 4].item() - 0.5) < 1e-5
    # Deep inside (8 px from every edge, φ ≈ -4.6): I = sigmoid(-b φ) ≈ 0.9999.
    assert I[12, 12] > 0.9998
    k, _ = kernel_torch(fp, torch.tensor(12.5), torch.tensor(12.5))
    assert abs(I[12, 12] - k) < 1e-6


def test_zero_sharpness_gives_half_everywhere():
    # b = dσ = 0: I = sigmoid(0) = 1/2 for any lines (the soft body has no edge at all).
    I = probe(square_footprint(4.0, 4.0, 10.0, 9.0, a=0.3, b=0.0), 20, 18)
    torch.testing.assert_close(I, torch.full_like(I, 0.5))


def test_log_sum_exp_is_stable_for_huge_smoothness():
    # a·L reaches ~1e7: a naive exp overflows; the stable form tends to the hard max.
    W = H = 24
    fp = square_footprint(4.0, 4.0, 20.0, 20.0, a=1e4, b=1e-5)
    I = probe(fp, W, H)
    assert torch.isfinite(I).all()
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    hard = (fp[3:15].view(4, 3) @ torch.stack([xs, ys, torch.ones_like(xs)]).flatten(1)).amax(0)
    want = torch.sigmoid(-fp[2] * fp[1] * hard).view(H, W)
    want = torch.where(0.5 * want >= ALPHA_MIN, want, 0.0)
    assert (I - want).abs().max() < 1e-4  # LSE − max ≤ log(2)/a at edges: tiny here


def test_fewer_than_three_lines_draw_nothing():
    fp = square_footprint(4.0, 4.0, 20.0, 20.0, a=0.05, b=2.0)
    fp[0] = 2.0
    assert torch.all(probe(fp, 24, 24) == 0)
    k, _ = kernel_torch(fp, torch.tensor(12.5), torch.tensor(12.5))
    assert k == 0


# -- native rasterizer against the dense reference ---------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
def test_forward_matches_reference(seed):
    fp, features, width, height = random_scene(seed)
    out = native(fp, fp.params, fp.opacities, features, width, height)
    ref = reference(fp, fp.params, fp.opacities, features, width, height)
    assert ref.alpha.max() > 0.9 and (ref.alpha < 0.1).any()  # solid bodies and soft edges
    # Same float32 operations in the same order except the LSE sum: rounding-level agreement.
    assert (out.features - ref.features).abs().max() <= 1e-5
    assert (out.alpha - ref.alpha).abs().max() <= 1e-5
    assert (out.max_weight - ref.max_weight).abs().max() <= 1e-5


@pytest.mark.parametrize("seed", [0, 2])
def test_footprint_gradients_match_reference(seed):
    fp, features, width, height = random_scene(seed)
    gen = torch.Generator().manual_seed(100 + seed)
    v_out = torch.randn(2, height, width, features.shape[-1], generator=gen)
    v_alpha = torch.randn(2, height, width, generator=gen)

    def grads(run):
        inputs = leaves(fp.params, fp.opacities, features)
        res = run(fp, *inputs, width, height)
        loss = (res.features * v_out).sum() + (res.alpha * v_alpha).sum()
        return torch.autograd.grad(loss, inputs)

    for name, g, w in zip(("params", "opacities", "features"), grads(native), grads(reference)):
        scale = w.abs().max()
        assert scale > 0, name
        # Relative to the largest entry: the native backward divides T back out (1 - α), which
        # loses a few float32 ulps per layer; 1e-3 leaves room without hiding a wrong term.
        assert (g - w).abs().max() / scale <= 1e-3, name


def test_gradients_of_3d_parameters_match_reference():
    width, height = 37, 29
    convexes = random_convexes(3, n=20)
    viewmats, Ks = cameras(2, width, height)
    cams = [Camera(width, height, 40.0, 40.0, width / 2, height / 2, m.double().numpy())
            for m in viewmats]
    colours = torch.rand(20, 3, generator=torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(4)
    v_img = torch.randn(2, 3, height, width, generator=gen)
    v_depth = torch.randn(2, height, width, generator=gen)

    def grads(backend):
        inputs = leaves(convexes.points, convexes.log_delta, convexes.log_sigma,
                        convexes.opacity_logit, colours)
        res = render(Convexes(*inputs[:4]), cams, inputs[4], backend=backend)
        loss = ((res.features * v_img).sum() + (res.alpha * v_img[:, 0]).sum()
                + (res.depth * v_depth).sum())
        return torch.autograd.grad(loss, inputs)

    names = ("points", "log_delta", "log_sigma", "opacity_logit", "features")
    for name, g, w in zip(names, grads("cpu"), grads("torch")):
        scale = w.abs().max()
        assert scale > 0 and torch.isfinite(g).all(), name
        assert (g - w).abs().max() / scale <= 1e-3, name


def test_gradcheck_float64():
    # Tiny scene in 4 px tiles; opacities kept below the 0.99 clamp so the function is smooth.
    fp, features, width, height = random_scene(7, n=4, width=13, height=11, count=1, channels=2,
                                               dtype=torch.float64, opacity_logit=-0.5)
    opacities = fp.opacities.clamp_max(0.9)
    bins = bin_footprints(fp.bounds, fp.depths, width, height, 4)
    assert bins.isect_prims.numel() >= 4

    def f(params, opac, feats):
        out = rasterize(params, opac, feats, bins.isect_prims, bins.tile_ranges, KIND_CONVEX,
                        width, height, 4)
        return out.features, out.alpha

    assert torch.autograd.gradcheck(f, leaves(fp.params, opacities, features), eps=1e-6,
                                    atol=1e-6, rtol=1e-4)


# -- projection --------------------------------------------------------------------------------

def test_bounds_hold_every_visible_pixel():
    # The box must contain every pixel where α = o·I could reach 1/255 (with o = 1, the most).
    fp, _, width, height = random_scene(5, n=40)
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    k, _ = kernel_torch(fp.params[..., None, None, :], xs, ys)  # [B, N, H, W]
    reach = k >= ALPHA_MIN
    b = fp.bounds.long()
    inside = ((xs >= b[..., 0, None, None]) & (xs < b[..., 2, None, None])
              & (ys >= b[..., 1, None, None]) & (ys < b[..., 3, None, None]))
    assert reach.any() and not (reach & ~inside).any()
    # ... and is not wildly loose: on average the box is at most ~3x the reached pixel count.
    assert inside.sum() <= 3 * reach.sum()


def test_depth_scaling_and_layout():
    convexes = random_convexes(0, n=5)
    viewmats, Ks = cameras(1, 37, 29)
    fp = project(convexes, viewmats, Ks, 37, 29)
    depth = (convexes.points.mean(1)[:, 2] + 3.0)
    torch.testing.assert_close(fp.depths[0], depth)
    torch.testing.assert_close(fp.params[0, :, 1], depth * convexes.log_delta.exp())
    torch.testing.assert_close(fp.params[0, :, 2], depth * convexes.log_sigma.exp())
    assert fp.params.shape == (1, 5, FOOTPRINT_SIZE) and fp.vertices == 1


def test_culling_behind_offscreen_and_degenerate_without_nans():
    dtype = torch.float64
    base = torch.tensor([[0.0, 0.0, 0.0], [0.2, 0.0, 0.0], [0.0, 0.2, 0.0], [0.0, 0.0, 0.2],
                         [0.2, 0.2, 0.1], [0.1, 0.1, 0.1]], dtype=dtype)
    points = torch.stack([
        base,                                                     # visible
        base + torch.tensor([0.0, 0.0, -3.5], dtype=dtype),       # behind the camera
        base + torch.tensor([0.0, 0.0, -3.05], dtype=dtype),      # straddles the near plane
        base + torch.tensor([40.0, 0.0, 0.0], dtype=dtype),       # off-screen
        torch.linspace(0, 1, 6, dtype=dtype)[:, None] * torch.tensor([0.3, 0.1, 0.0],
                                                                     dtype=dtype),  # collinear
        torch.zeros(6, 3, dtype=dtype),                           # coincident
    ])
    n = len(points)
    convexes = Convexes(*leaves(points, torch.full((n,), -2.0, dtype=dtype),
                                torch.full((n,), -1.0, dtype=dtype), torch.zeros(n, dtype=dtype)))
    viewmats, Ks = cameras(1, 37, 29, dtype)
    fp = project(convexes, viewmats, Ks, 37, 29)
    assert fp.visible[0].tolist() == [True, False, False, False, False, False]
    assert fp.radii[0, 1:].eq(0).all() and fp.radii[0, 0] > 0
    assert torch.isfinite(fp.params).all()
    features = torch.rand(n, 3, dtype=dtype)
    cam = Camera(37, 29, 40.0, 40.0, 18.5, 14.5, viewmats[0].numpy())
    res = render(convexes, cam, features, backend="cpu")
    (res.features.sum() + res.depth.sum() + fp.params.sum()).backward()
    for t in (convexes.points, convexes.log_delta, convexes.log_sigma, convexes.opacity_logit):
        assert torch.isfinite(t.grad).all()
    assert convexes.points.grad[0].abs().sum() > 0


def test_one_convex_covering_the_whole_image():
    width, height = 40, 30
    big = torch.tensor([[-5.0, -5.0, 0.0], [5.0, -5.0, 0.0], [5.0, 5.0, 0.0], [-5.0, 5.0, 0.0],
                        [0.0, 0.0, 0.5], [0.0, 0.0, -0.5]])
    convexes = Convexes(big[None], torch.tensor([-4.0]), torch.tensor([0.0]), torch.tensor([1.0]))
    viewmats, Ks = cameras(1, width, height)
    fp = project(convexes, viewmats, Ks, width, height)
    assert fp.bounds[0, 0].tolist() == [0, 0, width, height]
    features = torch.rand(1, 1, 1, 3)
    out = native(fp, fp.params, fp.opacities, features, width, height)
    ref = reference(fp, fp.params, fp.opacities, features, width, height)
    torch.testing.assert_close(out.alpha, torch.full_like(out.alpha, torch.sigmoid(
        torch.tensor(1.0)).item()), atol=1e-5, rtol=0)
    assert (out.features - ref.features).abs().max() <= 1e-5


def test_empty_scene_renders_background():
    convexes = Convexes(torch.zeros(0, 6, 3, requires_grad=True), torch.zeros(0), torch.zeros(0),
                        torch.zeros(0))
    cam = Camera(16, 12, 20.0, 20.0, 8.0, 6.0, cameras(1, 16, 12)[0][0].numpy())
    res = render(convexes, cam, torch.zeros(0, 3), background=torch.tensor([0.2, 0.3, 0.4]),
                 backend="cpu")
    assert torch.all(res.alpha == 0)
    torch.testing.assert_close(res.features[:, 0, 0], torch.tensor([0.2, 0.3, 0.4]))


def test_means2d_gradient_is_the_translation_gradient():
    # means2d.grad must be Σ_k dL/dq_k; check it against moving every 2D point at once by
    # finite differences of the (float64) reference render.
    width, height = 24, 20
    convexes = random_convexes(9, n=3, dtype=torch.float64)
    convexes.points.requires_grad_()
    viewmats, Ks = cameras(1, width, height, torch.float64)
    gen = torch.Generator().manual_seed(9)
    features = torch.rand(1, 3, 1, 1, generator=gen, dtype=torch.float64)
    # A loss that changes when the image shifts (a plain sum barely does for interior shapes).
    ramp = torch.linspace(0.0, 1.0, width, dtype=torch.float64) + torch.linspace(
        0.0, 2.0, height, dtype=torch.float64)[:, None]

    def loss(result):
        return (result.features * ramp[..., None]).sum()  # features are [B, H, W, C]

    fp = project(convexes, viewmats, Ks, width, height)
    fp.means2d.retain_grad()
    ref = reference(fp, fp.params, fp.opacities, features, width, height)
    loss(ref).backward()
    # Moving the principal point by (dx, dy) translates every projected point by (dx, dy).
    h = 1e-4
    for axis in range(2):
        plus, minus = Ks.clone(), Ks.clone()
        plus[:, axis, 2] += h
        minus[:, axis, 2] -= h
        vals = []
        for K in (plus, minus):
            f = project(convexes, viewmats, K, width, height)
            vals.append(loss(reference(f, f.params, f.opacities, features, width, height)))
        fd = (vals[0] - vals[1]) / (2 * h)
        total = fp.means2d.grad[0, :, axis].sum()
        assert abs(total - fd) <= 1e-5 * max(1.0, abs(fd))
        assert abs(total) > 1e-3
