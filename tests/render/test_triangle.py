"""Triangles: projection, the window kernel, opaque mesh mode, native against the torch reference."""

from __future__ import annotations

import math

import pytest
import torch

from recon._ops import rasterize
from recon.cameras import Camera
from recon.primitives.base import KIND_TRIANGLE
from recon.primitives.triangles import Triangles, kernel_torch, project
from recon.render import render
from recon.render.binning import bin_footprints
from recon.render.reference import ALPHA_MIN
from recon.render.testing import cameras, leaves, native, reference


def as_cameras(viewmats, Ks, width, height):
    return [Camera(width, height, float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]),
                   m.double().numpy()) for m, K in zip(viewmats, Ks)]


def random_triangles(seed: int, n: int = 30, dtype=torch.float32, size: float = 0.4,
                     log_sigma: float = 0.0, opacity_logit: float = 0.0) -> Triangles:
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(n, 1, 3, generator=gen, dtype=dtype) * 0.5
    return Triangles(
        vertices=centres + size * torch.randn(n, 3, 3, generator=gen, dtype=dtype),
        log_sigma=log_sigma + 0.5 * torch.randn(n, generator=gen, dtype=dtype),
        opacity_logit=opacity_logit + torch.randn(n, generator=gen, dtype=dtype),
    )


def random_scene(seed: int, n: int = 30, width: int = 37, height: int = 29, count: int = 2,
                 channels: int = 4, dtype=torch.float32, opaque: bool = False,
                 opacity_logit: float = 1.0, **kwargs):
    """37x29 is not a multiple of the 16 px tile, so edge tiles are partial."""
    triangles = random_triangles(seed, n, dtype=dtype, opacity_logit=opacity_logit, **kwargs)
    viewmats, Ks = cameras(count, width, height, dtype)
    fp = project(triangles, viewmats, Ks, width, height, opaque=opaque)
    gen = torch.Generator().manual_seed(1000 + seed)
    features = torch.rand(count, n, 3, channels, generator=gen, dtype=dtype)
    return fp, features, width, height


def screen_triangle(corners, width, height, log_sigma=0.0, opaque=False, dtype=torch.float32):
    """Project a triangle given by pixel corners (placed at depth 2 in front of a focal-20
    camera) so tests can reason in pixels."""
    f, z = 20.0, 2.0
    viewmats, Ks = cameras(1, width, height, dtype, focal=f)
    viewmats[:, :3, 3] = torch.tensor([0.0, 0.0, 0.0], dtype=dtype)
    px = torch.tensor(corners, dtype=dtype)
    xyz = torch.stack([(px[:, 0] - width / 2) * z / f, (px[:, 1] - height / 2) * z / f,
                       torch.full((3,), z, dtype=dtype)], -1)
    tri = Triangles(xyz[None], torch.tensor([log_sigma], dtype=dtype),
                    torch.tensor([0.0], dtype=dtype))
    return tri, viewmats, Ks, project(tri, viewmats, Ks, width, height, opaque=opaque)


def probe(fp, width, height, opacity=0.5):
    """Native kernel value at every pixel of one footprint: feature 1 composites to o·I."""
    bounds = torch.tensor([[[0, 0, width, height]]], dtype=torch.int32)
    bins = bin_footprints(bounds, torch.ones(1, 1), width, height)
    out = rasterize(fp.params, torch.full((1, 1), opacity), torch.ones(1, 1, 3, 1),
                    bins.isect_prims, bins.tile_ranges, KIND_TRIANGLE, width, height)
    return out.features[0, ..., 0] / opacity


def pixel_grid(width, height):
    return torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")


# -- kernel values ---------------------------------------------------------------------------

def test_window_is_one_at_incenter_and_zero_on_and_outside_edges():
    # Right triangle with legs on the pixel-centre lines x = 4.5 and y = 4.5: its incenter
    # (4.5 + r, 4.5 + r), r = (a + b - c)/2, is placed on a pixel centre by choosing the legs.
    W = H = 24
    leg = 12.0 / (2 - 2 ** 0.5)  # r = leg (2 - √2)/2 = 6 -> incenter (10.5, 10.5)
    tri, *_, fp = screen_triangle([[4.5, 4.5], [4.5 + leg, 4.5], [4.5, 4.5 + leg]], W, H,
                                  log_sigma=0.7)
    I = probe(fp, W, H)
    assert abs(I[10, 10] - 1.0) < 1e-5
    ys, xs = pixel_grid(W, H)
    on_or_out = (xs <= 4.5) | (ys <= 4.5) | (xs + ys >= 9.0 + leg)
    assert torch.all(I[on_or_out] == 0)
    k, _ = kernel_torch(fp.params[0, 0], xs, ys)
    assert torch.all(k[~on_or_out] > 0)
    # Natively the same, except where α = 0.5 k < 1/255 is skipped.
    assert (I - torch.where(0.5 * k >= ALPHA_MIN, k, 0.0)).abs().max() < 1e-6
    # Between: ReLU(φ/φ(s))^σ with φ the distance to the nearest edge; at (6.5, 10.5) it is 2/6.
    assert abs(I[10, 6] - (1 / 3) ** math.exp(0.7)) < 1e-5


def test_small_sigma_is_solid_and_large_sigma_peaks():
    W = H = 24
    corners = [[3.0, 3.0], [21.0, 4.0], [8.0, 20.0]]
    ys, xs = pixel_grid(W, H)
    _, *_, solid = screen_triangle(corners, W, H, log_sigma=-12.0)
    _, *_, peaked = screen_triangle(corners, W, H, log_sigma=2.0)
    I_solid, I_peaked = probe(solid, W, H), probe(peaked, W, H)
    inside = I_solid > 0
    assert inside.sum() > 80
    assert I_solid[inside].min() > 0.999  # r^σ with σ = 6e-6
    assert I_peaked[inside].mean() < 0.3  # σ = 7.4 concentrates the window on the incenter


def test_opaque_ramp_is_solid_inside_and_linear_outside():
    W = H = 24
    tri, *_, fp = screen_triangle([[5.0, 5.0], [20.0, 5.0], [5.0, 20.0]], W, H, opaque=True)
    I = probe(fp, W, H, opacity=0.9)
    ys, xs = pixel_grid(W, H)
    assert torch.all(I[(xs > 5) & (ys > 5) & (xs + ys < 25)] == 1.0)
    # Pixel centres 0.5 px left of the left edge: I = 1 - 0.5/band = 0.5; 1 px or more: 0.
    torch.testing.assert_close(I[6:18, 4], torch.full((12,), 0.5), atol=1e-5, rtol=0)
    assert torch.all(I[:, :4] == 0)
    assert torch.equal(fp.opacities, torch.ones(1, 1))


def test_opaque_ramp_is_bevelled_at_sharp_corners():
    """A sliver's ramp would reach band / sin(θ/2) past its sharp corner (here θ ≈ 2.9°: ~40 px);
    the bevel ends it MITRE_LIMIT = 2 bands past the corner along the bisector. Native and torch
    kernels agree pixel for pixel, and the 90° corner of a right triangle is untouched."""
    W, H = 40, 12
    corners = [[4.0, 6.0], [34.0, 5.25], [34.0, 6.75]]  # sharp corner at (4, 6), bisector -x
    tri, *_, fp = screen_triangle(corners, W, H, opaque=True)
    I = probe(fp, W, H, opacity=0.9)
    ys, xs = pixel_grid(W, H)
    reference, _ = kernel_torch(fp.params[0, 0], xs, ys)
    torch.testing.assert_close(I, reference, atol=1e-5, rtol=0)
    row = I[5]  # pixel centres y = 5.5, just above the sliver's axis
    assert row[3] > 0                      # x = 3.5: 0.5 px past the corner, inside the ramp
    assert torch.all(row[:2] == 0)         # x ≤ 1.5: 2.5 px past it, cut by the bevel
    # Without the bevel the ramp (1 − φ) is still > 0 there: φ at (1.5, 5.5) is about 0.4 px.
    lines = fp.params[0, 0, :9].reshape(3, 3)
    phi = (lines[:, 0] * 1.5 + lines[:, 1] * 5.5 + lines[:, 2]).max()
    assert phi < 1.0
    _, *_, right = screen_triangle([[5.0, 5.0], [20.0, 5.0], [5.0, 20.0]], 24, 24, opaque=True)
    ys, xs = pixel_grid(24, 24)
    I_right = probe(right, 24, 24, opacity=0.9)
    lines = right.params[0, 0, :9].reshape(3, 3)
    phi = torch.stack([lines[i, 0] * xs + lines[i, 1] * ys + lines[i, 2] for i in range(3)]).amax(0)
    torch.testing.assert_close(I_right, (1.0 - phi).clamp(0.0, 1.0), atol=1e-5, rtol=0)


def test_barycentric_weights_interpolate_vertex_features():
    W = H = 24
    corners = [[3.0, 3.0], [21.0, 4.0], [8.0, 20.0]]
    tri, *_, fp = screen_triangle(corners, W, H, log_sigma=-12.0)
    ys, xs = pixel_grid(W, H)
    _, w = kernel_torch(fp.params[0, 0], xs, ys)
    c = torch.tensor(corners)
    torch.testing.assert_close((w[..., None] * c).sum(-2), torch.stack([xs, ys], -1),
                               atol=1e-4, rtol=0)
    # Through the native rasterizer: feature = pixel x coordinate, composited as o·I·x.
    bounds = torch.tensor([[[0, 0, W, H]]], dtype=torch.int32)
    bins = bin_footprints(bounds, torch.ones(1, 1), W, H)
    out = rasterize(fp.params, torch.full((1, 1), 0.5), c[None, None, :, :1], bins.isect_prims,
                    bins.tile_ranges, KIND_TRIANGLE, W, H)
    I = probe(fp, W, H)
    inside = I > 0
    torch.testing.assert_close(out.features[0, ..., 0][inside] / (0.5 * I[inside]), xs[inside],
                               atol=1e-4, rtol=0)


# -- native rasterizer against the dense reference ---------------------------------------------

@pytest.mark.parametrize("seed,opaque", [(0, False), (1, False), (2, True)])
def test_forward_matches_reference(seed, opaque):
    fp, features, width, height = random_scene(seed, opaque=opaque)
    out = native(fp, fp.params, fp.opacities, features, width, height)
    ref = reference(fp, fp.params, fp.opacities, features, width, height)
    assert ref.alpha.max() > 0.9 and (ref.alpha == 0).any()
    assert (out.features - ref.features).abs().max() <= 1e-5
    assert (out.alpha - ref.alpha).abs().max() <= 1e-5
    assert (out.max_weight - ref.max_weight).abs().max() <= 1e-5


@pytest.mark.parametrize("seed,opaque", [(0, False), (3, True)])
def test_footprint_gradients_match_reference(seed, opaque):
    fp, features, width, height = random_scene(seed, opaque=opaque)
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
        # Relative to the largest entry (see the Gaussian tests: T is divided back out).
        assert (g - w).abs().max() / scale <= 1e-3, name


@pytest.mark.parametrize("opaque", [False, True])
def test_gradients_of_3d_parameters_match_reference(opaque):
    width, height = 37, 29
    triangles = random_triangles(3, n=20)
    viewmats, Ks = cameras(2, width, height)
    cams = as_cameras(viewmats, Ks, width, height)
    colours = torch.rand(20, 3, 3, generator=torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(4)
    v_img = torch.randn(2, 3, height, width, generator=gen)
    v_depth = torch.randn(2, height, width, generator=gen)
    v_normal = torch.randn(2, 3, height, width, generator=gen)

    def grads(backend):
        inputs = leaves(triangles.vertices, triangles.log_sigma, triangles.opacity_logit, colours)
        res = render(Triangles(*inputs[:3]), cams, inputs[3], backend=backend, opaque=opaque)
        loss = ((res.features * v_img).sum() + (res.alpha * v_img[:, 0]).sum()
                + (res.depth * v_depth).sum() + (res.normals * v_normal).sum())
        return torch.autograd.grad(loss, inputs, allow_unused=True)

    names = ("vertices", "log_sigma", "opacity_logit", "features")
    for name, g, w in zip(names, grads("cpu"), grads("torch")):
        if opaque and name in ("log_sigma", "opacity_logit"):
            assert g is None and w is None  # opaque mode ignores σ and opacity
            continue
        scale = w.abs().max()
        assert scale > 0 and torch.isfinite(g).all(), name
        assert (g - w).abs().max() / scale <= 1e-3, name


@pytest.mark.parametrize("opaque", [False, True])
def test_gradcheck_float64(opaque):
    fp, features, width, height = random_scene(7, n=4, width=13, height=11, count=1, channels=2,
                                               dtype=torch.float64, opaque=opaque,
                                               opacity_logit=-0.5, size=0.6)
    opacities = fp.opacities.clamp_max(0.9)  # below the 0.99 clamp: smooth in the opacity
    bins = bin_footprints(fp.bounds, fp.depths, width, height, 4)
    assert bins.isect_prims.numel() >= 4

    def f(params, opac, feats):
        out = rasterize(params, opac, feats, bins.isect_prims, bins.tile_ranges, KIND_TRIANGLE,
                        width, height, 4)
        return out.features, out.alpha

    assert torch.autograd.gradcheck(f, leaves(fp.params, opacities, features), eps=1e-6,
                                    atol=1e-6, rtol=1e-4)


# -- opaque mesh mode: silhouette gradients ----------------------------------------------------

def mesh_quad(dtype=torch.float64):
    """Two triangles sharing an edge (a tilted quad) in front of the camera."""
    v = torch.tensor([[-0.5, -0.4, 0.1], [0.6, -0.5, -0.1], [0.5, 0.5, 0.2], [-0.4, 0.45, 0.0]],
                     dtype=dtype)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    return v, faces


def render_mesh(v, faces, cams):
    tri = Triangles(v[faces], torch.zeros(len(faces), dtype=v.dtype),
                    torch.zeros(len(faces), dtype=v.dtype))
    return render(tri, cams, torch.ones(len(faces), 1, dtype=v.dtype), backend="cpu",
                  opaque=True)


def test_opaque_mesh_has_no_seam_on_shared_edges():
    width, height = 40, 32
    v, faces = mesh_quad(torch.float32)
    viewmats, Ks = cameras(1, width, height)
    res = render_mesh(v, faces, as_cameras(viewmats, Ks, width, height))
    # Along the shared diagonal the mask stays at the single-layer value 0.99 (α clamp) or more;
    # ramps centred on the edges would composite to 0.75 there.
    ys, xs = pixel_grid(width, height)
    fp = project(Triangles(v[faces], torch.zeros(2), torch.zeros(2)), viewmats, Ks, width, height,
                 opaque=True)
    k = torch.stack([kernel_torch(fp.params[0, i], xs, ys)[0] for i in range(2)])
    solid = (k == 1).any(0).float()
    # Interior of the quad: solid pixels whose 3x3 neighbourhood is solid too.
    interior = torch.nn.functional.max_pool2d(-solid[None, None], 3, 1, 1)[0, 0] == -1
    shared = fp.params[0, 1, :3]  # tri (0, 2, 3): edge 0 runs 0 -> 2, the shared diagonal
    near_diagonal = (shared[0] * xs + shared[1] * ys + shared[2]).abs() < 1.0
    band = interior & near_diagonal
    assert band.sum() > 10
    assert res.alpha[0][band].min() >= 0.99 - 1e-6


def test_opaque_mask_and_depth_gradients_match_central_differences():
    width, height = 40, 32
    v, faces = mesh_quad()
    viewmats, Ks = cameras(1, width, height, torch.float64)
    cams = as_cameras(viewmats, Ks, width, height)
    covered = render_mesh(v, faces, cams).alpha[0] > 0.9  # a fixed set of pixels for depth

    def losses(verts):
        res = render_mesh(verts, faces, cams)
        return res.alpha.sum(), res.depth[0][covered].sum()

    verts = v.clone().requires_grad_()
    mask_sum, depth_sum = losses(verts)
    g_mask = torch.autograd.grad(mask_sum, verts)[0]
    g_depth = torch.autograd.grad(losses(verts)[1], verts)[0]
    # Central differences in float64. A 1e-5 world step moves the silhouette by ~1e-4 px; between
    # the rare events of a pixel centre crossing the α = 1/255 cut or a ramp end (none occur for
    # this fixed geometry) mask and depth are smooth, so the match is tight (measured ~1e-9 rel;
    # a 1e-3 step does cross a cut and is off by 0.6 % for vertex 3).
    h = 1e-5
    for vertex, axis in [(1, 0), (2, 1), (3, 0)]:
        step = torch.zeros_like(v)
        step[vertex, axis] = h
        (mp, dp), (mm, dm) = losses(v + step), losses(v - step)
        fd_mask, fd_depth = (mp - mm) / (2 * h), (dp - dm) / (2 * h)
        assert abs(g_mask[vertex, axis]) > 1.0  # a silhouette vertex moves the mask
        assert abs(g_mask[vertex, axis] - fd_mask) <= 1e-6 * abs(fd_mask)
        assert abs(g_depth[vertex, axis]) > 1e-3
        assert abs(g_depth[vertex, axis] - fd_depth) <= 1e-6 * abs(fd_depth)
    # Moving a vertex along z moves the interpolated depth directly.
    step = torch.zeros_like(v)
    step[2, 2] = h
    fd = (losses(v + step)[1] - losses(v - step)[1]) / (2 * h)
    assert abs(g_depth[2, 2]) > 1.0 and abs(g_depth[2, 2] - fd) <= 1e-6 * abs(fd)


# -- projection ----------------------------------------------------------------------------------

@pytest.mark.parametrize("opaque", [False, True])
def test_bounds_hold_every_visible_pixel(opaque):
    fp, _, width, height = random_scene(5, n=40, opaque=opaque)
    ys, xs = pixel_grid(width, height)
    k, _ = kernel_torch(fp.params[..., None, None, :], xs, ys)  # [B, N, H, W]
    reach = k >= ALPHA_MIN
    b = fp.bounds.long()
    inside = ((xs >= b[..., 0, None, None]) & (xs < b[..., 2, None, None])
              & (ys >= b[..., 1, None, None]) & (ys < b[..., 3, None, None]))
    assert reach.any() and not (reach & ~inside & fp.visible[..., None, None]).any()


def test_normals_face_the_camera_and_depths_per_vertex():
    triangles = random_triangles(0, n=10)
    viewmats, Ks = cameras(2, 37, 29)
    fp = project(triangles, viewmats, Ks, 37, 29)
    cam = torch.einsum("bij,nkj->bnki", viewmats[:, :3, :3], triangles.vertices) \
        + viewmats[:, None, None, :3, 3]
    torch.testing.assert_close(fp.vertex_depths, cam[..., 2])
    torch.testing.assert_close(fp.normals.norm(dim=-1), torch.ones(2, 10))
    assert torch.all((fp.normals * cam.mean(-2)).sum(-1) < 0)
    # Perpendicular to both edges.
    e1, e2 = cam[..., 1, :] - cam[..., 0, :], cam[..., 2, :] - cam[..., 0, :]
    assert (fp.normals * e1).sum(-1).abs().max() < 1e-5
    assert (fp.normals * e2).sum(-1).abs().max() < 1e-5


def test_culling_without_nans():
    dtype = torch.float64
    ok = torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.0, 0.0], [0.0, 0.3, 0.0]], dtype=dtype)
    verts = torch.stack([
        ok,                                                             # visible
        ok + torch.tensor([0.0, 0.0, -3.5], dtype=dtype),               # behind the camera
        ok + torch.tensor([0.0, 0.0, -3.1], dtype=dtype) + torch.tensor(
            [[0, 0, 0], [0, 0, 0.3], [0, 0, 0]], dtype=dtype),          # crosses the near plane
        ok + torch.tensor([40.0, 0.0, 0.0], dtype=dtype),               # off-screen
        torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.1, 0.0], [0.2, 0.2, 0.0]], dtype=dtype),  # zero area
        torch.zeros(3, 3, dtype=dtype),                                 # a point
        torch.tensor([[0.3, 0.0, 0.0], [0.3, 0.3, 0.0], [0.3, 0.0, 0.3]], dtype=dtype),  # edge-on
        ok * 1e-3,                                                      # below 1 px
        ok * 1000 + torch.tensor([-160.0, -160.0, 0.0], dtype=dtype),   # above 1600 px
    ])
    n = len(verts)
    tri = Triangles(*leaves(verts, torch.zeros(n, dtype=dtype), torch.zeros(n, dtype=dtype)))
    viewmats, Ks = cameras(1, 37, 29, dtype)
    fp = project(tri, viewmats, Ks, 37, 29)
    assert fp.visible[0].tolist() == [True] + [False] * (n - 1)
    assert fp.radii[0, 0] > 0 and fp.radii[0, 1:].eq(0).all()
    assert torch.isfinite(fp.params).all() and torch.isfinite(fp.normals).all()
    res = render(tri, as_cameras(viewmats, Ks, 37, 29)[0], torch.rand(n, 3, 2, dtype=dtype),
                 backend="cpu")
    (res.features.sum() + res.depth.sum() + res.normals.sum() + fp.params.sum()).backward()
    for t in (tri.vertices, tri.log_sigma, tri.opacity_logit):
        assert torch.isfinite(t.grad).all()
    assert tri.vertices.grad[0].abs().sum() > 0
    # The big triangle is kept in opaque mesh mode (it is surface, not an outlier).
    fp_opaque = project(tri, viewmats, Ks, 37, 29, opaque=True)
    assert fp_opaque.visible[0, -1]


def test_one_triangle_covering_the_whole_image():
    width, height = 40, 30
    tri = Triangles(torch.tensor([[[-10.0, -10.0, 0.0], [10.0, -10.0, 0.0], [0.0, 10.0, 0.0]]]),
                    torch.tensor([-8.0]), torch.tensor([2.0]))
    viewmats, Ks = cameras(1, width, height)
    fp = project(tri, viewmats, Ks, width, height)
    assert fp.bounds[0, 0].tolist() == [0, 0, width, height]
    features = torch.rand(1, 1, 3, 3)
    out = native(fp, fp.params, fp.opacities, features, width, height)
    ref = reference(fp, fp.params, fp.opacities, features, width, height)
    o = torch.sigmoid(torch.tensor(2.0))
    assert (out.alpha - o).abs().max() < 1e-3  # σ = e^-8: solid
    assert (out.features - ref.features).abs().max() <= 1e-5


def test_bad_band_is_a_clear_error():
    from recon.errors import ReconError

    tri = random_triangles(0, n=2)
    viewmats, Ks = cameras(1, 16, 16)
    with pytest.raises(ReconError, match="band"):
        project(tri, viewmats, Ks, 16, 16, opaque=True, band=0.0)
    with pytest.raises(ReconError, match=r"\[N, 3, 3\]"):
        Triangles(torch.zeros(4, 4, 3), torch.zeros(4), torch.zeros(4))
