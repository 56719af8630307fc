"""The fused native convex projection (OpenMP on the CPU, CUDA on a GPU) against the torch
projection it replaces: same footprints (line order included), boxes, radii, input gradients and
means2d gradient, on convexes that exercise every culling rule."""

from __future__ import annotations

import pytest
import torch

from recon._ops import project_convexes
from recon.cameras import cameras_to_tensors
from recon.primitives.base import _BY_TYPE
from recon.primitives.convexes import (MAX_RADIUS, Convexes, _support_box, hull_lines, project,
                                       project_native, project_point_sets)
from recon.render import render
from recon.render.testing import leaves, two_cameras

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
W, H = 67, 45  # odd sizes: partial tiles
OUTPUTS = ("params", "opacities", "depths", "means2d")


def scene(n: int, k: int, dtype=torch.float64, seed: int = 0) -> Convexes:
    """n random convexes of k points about the origin, most in view of :func:`two_cameras`, plus
    one of each special case: behind the cameras, straddling the near plane, collinear points,
    coincident points, far off-screen, and one so close and diffuse that its radius is culled."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(n, 1, 3, generator=gen, dtype=dtype) * 1.2
    points = centres + 0.25 * torch.randn(n, k, 3, generator=gen, dtype=dtype)
    line = torch.linspace(0, 1, k, dtype=dtype)[:, None] * torch.tensor([0.3, 0.1, 0.2],
                                                                       dtype=dtype)
    blob = 0.2 * torch.randn(k, 3, generator=gen, dtype=dtype)
    eye = torch.tensor([0.0, -3.0, 0.8], dtype=dtype)  # the first camera's centre
    special = torch.stack([
        blob + 2.5 * eye,             # behind the first camera
        blob * 5.0 + eye,             # around the first camera: straddles its near plane
        line,                         # collinear
        torch.zeros(k, 3, dtype=dtype) + 0.1,  # coincident
        blob + torch.tensor([60.0, 0.0, 0.0], dtype=dtype),  # off-screen
        blob * 0.2 + 0.97 * eye,      # close to the camera
    ])
    points = torch.cat([points, special])
    count = points.shape[0]
    log_delta = torch.randn(count, generator=gen, dtype=dtype) * 0.5 - 1.5
    log_sigma = torch.randn(count, generator=gen, dtype=dtype) * 0.5 - 1.0
    log_sigma[-1] = -12.0  # the close one: diffuse enough to reach past MAX_RADIUS
    return Convexes(points, log_delta, log_sigma,
                    torch.randn(count, generator=gen, dtype=dtype))


def camera_tensors(dtype, device):
    return tuple(t.to(dtype).to(device) for t in cameras_to_tensors(two_cameras(W, H)))


def project_both(convexes: Convexes, device: str, seed: int = 3):
    """Footprints, input gradients and means2d.grad of the torch and the native projection, with
    one random cotangent for every differentiable output."""
    viewmats, Ks = camera_tensors(convexes.points.dtype, device)
    results = []
    for fn in (project, project_native):
        inputs = [t.detach().to(device).requires_grad_() for t in vars(convexes).values()]
        fp = fn(Convexes(*inputs), viewmats, Ks, W, H)
        fp.means2d.retain_grad()
        gen = torch.Generator().manual_seed(seed)
        outs = {name: getattr(fp, name) for name in OUTPUTS}
        loss = sum((o * torch.randn(o.shape, generator=gen, dtype=o.dtype).to(device)).sum()
                   for o in outs.values())
        loss.backward()
        results.append(dict(
            outs={k: v.detach().cpu() for k, v in outs.items()}, bounds=fp.bounds.cpu(),
            radii=fp.radii.cpu(), grads=[t.grad.cpu() for t in inputs],
            means2d_grad=fp.means2d.grad.cpu()))
    return results


def row_close(got, want, rtol):
    """|got - want| <= rtol x the largest entry of the same footprint row: offsets c = -n·q
    cancel, so their rounding is relative to the row's scale, not to their own size."""
    scale = want.abs().amax(-1, keepdim=True).clamp_min(1e-300)
    return bool(((got - want).abs() <= rtol * scale).all())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k", [3, 4, 5, 6, 7, 8])
def test_native_projection_matches_torch_float64(k, device):
    ref, out = project_both(scene(300, k), device)
    visible = (ref["bounds"][..., 2] > ref["bounds"][..., 0]) \
        & (ref["bounds"][..., 3] > ref["bounds"][..., 1])
    assert 0.2 < visible.float().mean() < 0.95  # both drawn and culled convexes
    assert not visible[:, -6:].any(), "every special case is culled in both cameras"
    # Same float64 formulas in another order: only rounding differs (1e-10 relative leaves ~1e6
    # ulps; a wrong or reordered line would be off by O(1)). The line count and order must match
    # exactly, since the footprint layout is compared slot by slot.
    assert torch.equal(out["outs"]["params"][..., 0], ref["outs"]["params"][..., 0])
    assert row_close(out["outs"]["params"], ref["outs"]["params"], 1e-10)
    for name in ("opacities", "depths", "means2d"):
        assert torch.allclose(out["outs"][name], ref["outs"][name], rtol=1e-10, atol=0), name
    # Boxes and radii are float64 floor/ceil of the same values: equal.
    assert torch.equal(out["bounds"], ref["bounds"]) and torch.equal(out["radii"], ref["radii"])
    # Gradients: sums of the same products in another order; 1e-9 of the largest entry (the
    # behind-camera convexes project to huge pixels, so their line gradients are the scale).
    for name, a, b in zip(("points", "log_delta", "log_sigma", "opacity_logit"), out["grads"],
                          ref["grads"]):
        assert (a - b).abs().max() <= 1e-9 * b.abs().max(), name
    # means2d.grad holds the translation gradient in both (the _TranslationLink path).
    a, b = out["means2d_grad"], ref["means2d_grad"]
    assert (a - b).abs().max() <= 1e-9 * b.abs().max()


@pytest.mark.parametrize("device", DEVICES)
def test_native_projection_matches_torch_float32(device):
    ref, out = project_both(scene(3000, 6, torch.float32, seed=1), device)
    # float32 hulls are decided on values that may differ by an ulp near the tolerance band; in
    # this scene they do not, so line counts still match everywhere.
    assert torch.equal(out["outs"]["params"][..., 0], ref["outs"]["params"][..., 0])
    # float32 rounding of the same formulas (~1e-7 relative per op, a few ops deep; CUDA also
    # contracts multiply-adds into FMAs, and convexes near the camera plane project far out,
    # which amplifies it). Measured over seeds 1-4 on an H200 machine (its CPU and its GPU):
    # lines ≤ 2.4e-5 of their row's scale, centres ≤ 6.8e-5 (relative to 1 + |x|), gradients
    # ≤ 4.8e-5 of their largest entry; the bounds below leave 3-4x of margin, and a wrong or
    # reordered term is off by O(1).
    assert row_close(out["outs"]["params"], ref["outs"]["params"], 1e-4)
    for name in ("opacities", "depths", "means2d"):
        assert torch.allclose(out["outs"][name], ref["outs"][name], rtol=2e-4, atol=2e-4), name
    # The boxes are computed in float64 from float32 lines that may differ in the last ulp: an
    # edge may move by one pixel, rarely.
    diff = (out["bounds"] - ref["bounds"]).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-3
    for a, b in zip(out["grads"] + [out["means2d_grad"]], ref["grads"] + [ref["means2d_grad"]]):
        assert (a - b).abs().max() <= 2e-4 * b.abs().max()


def test_gradcheck_float64():
    # Generic points (no hull decision within the 1e-6 step), two cameras, K = 5; the checked
    # outputs include means2d, so its translation link and the native spread must agree.
    c = scene(3, 5)
    viewmats, Ks = camera_tensors(torch.float64, "cpu")

    def f(points, log_delta, log_sigma, logit):
        p = project_convexes(points, log_delta, log_sigma, logit, viewmats, Ks, W, H,
                             near_plane=0.01)
        return p.params, p.opacities, p.depths, p.means2d

    assert torch.autograd.gradcheck(f, leaves(c.points[:3], c.log_delta[:3], c.log_sigma[:3],
                                              c.opacity_logit[:3]), eps=1e-6, atol=1e-6,
                                    rtol=1e-5)


@pytest.fixture
def torch_projection_only(monkeypatch):
    """render() without the native convex projection (the torch one, native compositing)."""
    def use():
        monkeypatch.setitem(_BY_TYPE, Convexes, _BY_TYPE[Convexes]._replace(project_native=None))
    return use


def render_both(convexes: Convexes, use_torch_projection, seed: int = 0):
    """Images, depth, input gradients and means2d.grad of a CPU render (SH colours, depth)
    through the native and through the torch projection."""
    dtype = convexes.points.dtype
    gen = torch.Generator().manual_seed(seed)
    sh = torch.randn(len(convexes), 4, 3, generator=gen, dtype=dtype) * 0.3
    v_img = torch.randn(2, 3, H, W, generator=gen, dtype=dtype)
    results = []
    for torch_proj in (False, True):
        if torch_proj:
            use_torch_projection()
        inputs = leaves(*vars(convexes).values(), sh)
        r = render(Convexes(*inputs[:4]), two_cameras(W, H), inputs[4], sh_degree=1,
                   backend="cpu")
        (r.features * v_img).sum().add(r.depth.sum()).add(r.alpha.square().sum()).backward()
        results.append(([r.features.detach(), r.alpha.detach(), r.depth.detach()],
                        [t.grad for t in inputs], r.means2d.grad))
    return results


@pytest.mark.parametrize("dtype,rtol", [
    # float64: rounding only. float32: the native and torch lines differ by float32 ulps, and the
    # compositor's division by 1 - α amplifies them a little; 1e-4 still catches any wrong term.
    (torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_render_matches_torch_projection(torch_projection_only, dtype, rtol):
    c = scene(400, 6, dtype, seed=4)
    (imgs, grads, m2d), (ref_imgs, ref_grads, ref_m2d) = render_both(c, torch_projection_only)
    assert ref_imgs[1].max() > 0.5 and (ref_imgs[1] == 0).any()
    for a, b in zip(imgs, ref_imgs):
        assert (a - b).abs().max() <= rtol * b.abs().max()
    for name, a, b in zip(("points", "log_delta", "log_sigma", "opacity_logit", "sh"), grads,
                          ref_grads):
        assert b.abs().max() > 0, name
        assert (a - b).abs().max() <= rtol * b.abs().max(), name
    # Densification reads means2d.grad: the translation gradient of every footprint.
    assert ref_m2d.abs().max() > 0
    assert (m2d - ref_m2d).abs().max() <= rtol * ref_m2d.abs().max()


def test_falls_back_to_torch_where_the_op_cannot_serve():
    c = scene(20, 4, torch.float64)
    viewmats, Ks = camera_tensors(torch.float64, "cpu")
    viewmats.requires_grad_()  # camera gradients: only the torch projection gives them
    fp = project_native(c, viewmats, Ks, W, H)
    fp.params.sum().backward()
    assert viewmats.grad is not None and viewmats.grad.abs().sum() > 0
    half = Convexes(*(t.to(torch.bfloat16) for t in vars(c).values()))
    fp = project_native(half, viewmats.detach().to(torch.bfloat16), Ks.to(torch.bfloat16), W, H)
    assert fp.params.dtype == torch.bfloat16


def test_near_plane_option():
    c = scene(200, 6)
    viewmats, Ks = camera_tensors(torch.float64, "cpu")
    depth = torch.einsum("bij,nkj->bnki", viewmats[:, :3, :3], c.points)[..., 2] \
        + viewmats[:, None, None, 2, 3]
    near = float(depth.amin(-1).median())  # culls about half of the convexes
    ref = project(c, viewmats, Ks, W, H, near_plane=near)
    out = project_native(c, viewmats, Ks, W, H, near_plane=near)
    assert 0 < ref.visible.sum() < ref.visible.numel() // 2 + 10
    assert torch.equal(out.bounds, ref.bounds)
    assert row_close(out.params, ref.params, 1e-10)


def test_empty_set():
    c = Convexes(torch.zeros(0, 6, 3, dtype=torch.float64, requires_grad=True),
                 *(torch.zeros(0, dtype=torch.float64) for _ in range(3)))
    viewmats, Ks = camera_tensors(torch.float64, "cpu")
    fp = project_native(c, viewmats, Ks, W, H)
    assert fp.params.shape == (2, 0, 27) and fp.bounds.shape == (2, 0, 4)
    fp.params.sum().backward()
    assert c.points.grad.shape == (0, 6, 3)


@pytest.mark.gpu
def test_cuda_matches_cpu_float64():
    """The CUDA kernels run the same header as the OpenMP loops: equal up to the device's fused
    multiply-adds (nvcc contracts a*b + c; 1e-12 relative)."""
    c = scene(2000, 7, seed=5)
    results = []
    for device in ("cpu", "cuda"):
        viewmats, Ks = camera_tensors(torch.float64, device)
        inputs = [t.detach().to(device).requires_grad_() for t in vars(c).values()]
        fp = project_native(Convexes(*inputs), viewmats, Ks, W, H)
        fp.means2d.retain_grad()
        gen = torch.Generator().manual_seed(8)
        outs = [fp.params, fp.opacities, fp.depths, fp.means2d]
        sum((o * torch.randn(o.shape, generator=gen, dtype=o.dtype).to(device)).sum()
            for o in outs).backward()
        results.append(([o.detach().cpu() for o in outs], [fp.bounds.cpu(), fp.radii.cpu()],
                        [t.grad.cpu() for t in inputs] + [fp.means2d.grad.cpu()]))
    (cpu_out, cpu_int, cpu_grads), (gpu_out, gpu_int, gpu_grads) = results
    assert row_close(gpu_out[0], cpu_out[0], 1e-12)
    for a, b in zip(gpu_out[1:], cpu_out[1:]):
        assert torch.allclose(a, b, rtol=1e-12, atol=0)
    # An FMA may move a box edge across a pixel centre only for a corner on it: not here.
    for a, b in zip(gpu_int, cpu_int):
        assert torch.equal(a, b)
    for a, b in zip(gpu_grads, cpu_grads):
        assert (a - b).abs().max() <= 1e-10 * b.abs().max()


@pytest.mark.parametrize("k", [3, 8])
def test_special_cases_are_culled_for_their_reason(k):
    """Guard for :func:`scene`: each special convex is culled in the first camera by the rule it
    is meant to exercise, not by another one."""
    c = scene(10, k)
    viewmats, Ks = camera_tensors(torch.float64, "cpu")
    fp = project(c, viewmats, Ks, W, H)
    _, q, in_front = project_point_sets(c.points, viewmats, Ks, 0.01)
    normals, offsets, used = hull_lines(q)
    _, radius = _support_box(normals, offsets, used, fp.params[..., 1] * fp.params[..., 2],
                             fp.means2d)
    behind, straddling, collinear, coincident, off_screen, close = range(-6, 0)
    lines = fp.params[0, :, 0]
    assert not in_front[0, behind] and not in_front[0, straddling]
    assert lines[collinear] == 2 and lines[coincident] == 0
    assert in_front[0, off_screen] and lines[off_screen] >= 3 and radius[0, off_screen] < 1e3
    assert in_front[0, close] and lines[close] >= 3 and radius[0, close] > MAX_RADIUS
    assert not fp.visible[0, -6:].any()
