"""Smooth convexes (3D Convex Splatting, Held et al. 2025): parameters, projection, torch kernel.

A convex is the hull of K free 3D points (3 <= K <= 8, default 6) with a smoothness δ, a
sharpness σ and an opacity. Projection never builds the 3D hull: it projects the points, takes
their 2D hull and hands the rasterizer the hull's lines L_j(q) = n_j·q + c_j with *unnormalised*
outward normals (|n_j| = edge length in pixels, as 3DCS does) plus δ and σ scaled by the camera
depth d of the point centroid (3DCS's perspective compensation: d beats √d and d² in its
ablation). The pixel kernel (``cuda/include/convex.h``, twin :func:`kernel_torch`) is

    φ(q) = log Σ_j exp(dδ L_j(q)),    I(q) = sigmoid(−dσ φ(q)).

Features (colours, SH, …) are supplied to ``render`` separately, one row per convex.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from recon.errors import ReconError
from recon.primitives.base import KIND_CONVEX, Footprints, register

MAX_POINTS = 8
"""Most points per convex; also the most hull lines the footprint holds (cuda CONVEX_MAX_LINES)."""
FOOTPRINT_SIZE = 3 + 3 * MAX_POINTS
"""[num_lines, dδ, dσ, then MAX_POINTS × (nx, ny, c)] (cuda ConvexKernel::P)."""
MAX_RADIUS = 10000.0
"""Screen radius (px) above which a convex is culled (3DCS's limit)."""
HULL_TOLERANCE = 1e-3
"""Pixels: points closer than this are one point; a point this close to a line lies on it."""
_MASKED_LINE = -1e30  # stands in for a missing line inside the log-sum-exp: exp() of it is 0
# The kernel can reach α ≥ 1/255 only where sigmoid(−dσ φ) ≥ 1/255, i.e. φ ≤ log(254)/(dσ).
_VISIBLE_LOGIT = math.log(254.0)


@dataclass
class Convexes:
    """A set of N smooth convexes (activated quantities are exp / sigmoid of these)."""

    points: Tensor
    """[N, K, 3] world positions, 3 <= K <= 8; interior points are allowed (no geometric grad)."""
    log_delta: Tensor
    """[N] log smoothness δ: large δ gives crisp corners, small δ rounds them."""
    log_sigma: Tensor
    """[N] log sharpness σ: large σ gives a dense hard-edged body, small σ a diffuse one."""
    opacity_logit: Tensor
    """[N] opacity before the sigmoid."""

    def __post_init__(self) -> None:
        p = self.points
        if p.ndim != 3 or p.shape[-1] != 3 or not 3 <= p.shape[1] <= MAX_POINTS:
            raise ReconError(
                f"Convexes.points must have shape [N, K, 3] with 3 <= K <= {MAX_POINTS}; got "
                f"{tuple(p.shape)}. Give each convex between 3 and {MAX_POINTS} points."
            )
        n = p.shape[0]
        for name in ("log_delta", "log_sigma", "opacity_logit"):
            t = getattr(self, name)
            if t.shape != (n,):
                raise ReconError(
                    f"Convexes.{name} must have shape [{n}] (one value per convex); got "
                    f"{tuple(t.shape)}."
                )

    def __len__(self) -> int:
        return self.points.shape[0]

    @property
    def centers(self) -> Tensor:
        """[N, 3] point centroids (where view-dependent colour is evaluated)."""
        return self.points.mean(dim=1)

    @property
    def opacities(self) -> Tensor:
        return torch.sigmoid(self.opacity_logit)


def project(convexes: Convexes, viewmats: Tensor, Ks: Tensor, width: int, height: int, *,
            near_plane: float = 0.01) -> Footprints:
    """Project N convexes into B cameras (viewmats [B,4,4] world->camera, Ks [B,3,3]).

    Differentiable w.r.t. points, δ, σ and opacity. Culled (empty bounds, radius 0): any point
    behind the camera (z <= near_plane), a degenerate 2D hull (< 3 lines: collinear or coincident
    points), a screen radius above MAX_RADIUS, or a footprint entirely off-screen.
    """
    cam, q, in_front = project_point_sets(convexes.points, viewmats, Ks, near_plane)
    depth = cam[..., 2].mean(dim=-1)  # camera z of the point centroid
    d = torch.where(in_front, depth, torch.ones_like(depth))
    a = d * torch.exp(convexes.log_delta)
    b = d * torch.exp(convexes.log_sigma)

    # The lines are built from q re-expressed as means2d + offsets: same values and point
    # gradients, but means2d.grad then holds the footprint's translation gradient (the
    # densification signal, like a Gaussian's 2D mean).
    means2d = q.mean(dim=-2)
    normals, offsets, used = hull_lines(means2d[..., None, :] + (q - q.mean(dim=-2, keepdim=True)))
    num_lines = used.sum(dim=-1)
    params = torch.cat([
        num_lines.to(q.dtype)[..., None], a[..., None], b[..., None],
        torch.cat([normals, offsets[..., None]], dim=-1).flatten(-2),
    ], dim=-1)

    with torch.no_grad():
        box, radius = _support_box(normals, offsets, used, a * b, means2d)
        visible = in_front & (num_lines >= 3) & (radius <= MAX_RADIUS)
        bounds = pixel_bounds(box, visible, width, height)
        on_screen = (bounds[..., 2] > bounds[..., 0]) & (bounds[..., 3] > bounds[..., 1])
        radii = torch.where(on_screen, torch.ceil(radius), torch.zeros_like(radius))

    opacities = torch.sigmoid(convexes.opacity_logit).expand(viewmats.shape[0], -1)
    return Footprints(
        kind=KIND_CONVEX, params=params, opacities=opacities, depths=depth, bounds=bounds,
        means2d=means2d, radii=radii.to(torch.int32), normals=None, vertices=1,
    )


def project_native(convexes: Convexes, viewmats: Tensor, Ks: Tensor, width: int, height: int, *,
                   near_plane: float = 0.01) -> Footprints:
    """:func:`project` in one fused native op per direction (OpenMP on the CPU, one CUDA kernel on
    a GPU; ``cuda/include/convex_project.h``): the same footprints, boxes, input gradients and
    means2d gradient. Calls the native op cannot serve get :func:`project`: cameras that need
    gradients, dtypes other than float32/float64, other devices, and machines where the
    extension cannot be built."""
    points = convexes.points
    if (viewmats.requires_grad or Ks.requires_grad or points.device.type not in ("cpu", "cuda")
            or points.dtype not in (torch.float32, torch.float64)):
        return project(convexes, viewmats, Ks, width, height, near_plane=near_plane)
    from recon._ops.build import NativeBuildError
    from recon._ops.convex_project import project_convexes

    try:
        p = project_convexes(points, convexes.log_delta, convexes.log_sigma,
                             convexes.opacity_logit, viewmats, Ks, width, height,
                             near_plane=near_plane)
    except NativeBuildError:
        return project(convexes, viewmats, Ks, width, height, near_plane=near_plane)
    return Footprints(
        kind=KIND_CONVEX, params=p.params, opacities=p.opacities, depths=p.depths,
        bounds=p.bounds, means2d=p.means2d, radii=p.radii, normals=None, vertices=1,
    )


def hull_lines(q: Tensor, tol: float = HULL_TOLERANCE) -> tuple[Tensor, Tensor, Tensor]:
    """The 2D convex hull of point sets q [..., K, 2] as outward lines n·x + c (n unnormalised).

    Vectorised over every ordered pair (i, j): the edge i->j is on the hull, oriented with the
    hull on its left (n = edge rotated by -90° points out), iff no point lies outside its line and
    every point on the line lies within the segment — the second rule keeps one edge for
    collinear points, and points closer than ``tol`` to an earlier point are dropped so coincident
    points give one edge. Returns normals [..., 8, 2], offsets [..., 8] and ``used`` [..., 8]
    (lines packed first, the rest zero). All points collinear gives 2 lines (both orientations of
    the segment): projection culls that.
    """
    K = q.shape[-2]
    with torch.no_grad():  # which pairs are hull edges: a discrete choice, no gradient
        order, used = _hull_edge_slots(q.detach(), tol)
    def take(idx: Tensor) -> Tensor:
        return torch.gather(q, -2, idx[..., None].expand(*idx.shape, 2))

    start = take(order // K)
    e = take(order % K) - start
    normals = torch.stack([e[..., 1], -e[..., 0]], dim=-1)
    offsets = -(normals * start).sum(-1)
    zero = torch.zeros((), dtype=q.dtype, device=q.device)
    normals = torch.where(used[..., None], normals, zero)
    offsets = torch.where(used, offsets, zero)
    return normals, offsets, used


def _hull_edge_slots(q: Tensor, tol: float) -> tuple[Tensor, Tensor]:
    """Flat pair indices i*K + j [..., 8] of the hull edges i->j, packed first, and their mask."""
    K = q.shape[-2]
    edge = q[..., None, :, :] - q[..., :, None, :]  # [..., i, j, 2] = q_j - q_i
    # cross[i, j, k] = (q_j - q_i) × (q_k - q_i): > 0 when k is on the hull side of i->j
    cross = (edge[..., :, :, None, 0] * edge[..., :, None, :, 1]
             - edge[..., :, :, None, 1] * edge[..., :, None, :, 0])
    along = (edge[..., :, :, None, :] * edge[..., :, None, :, :]).sum(-1)  # (q_j-q_i)·(q_k-q_i)
    length2 = (edge * edge).sum(-1)
    length = length2.sqrt()
    band = tol * length[..., None]
    outside = cross < -band
    on_line = cross.abs() <= band
    beyond = (along < -band) | (along > length2[..., None] + band)
    edge_ok = ~(outside | (on_line & beyond)).any(dim=-1)

    close = length < tol
    earlier = torch.ones(K, K, dtype=torch.bool, device=q.device).tril(-1)  # [k, k'] k' < k
    keep = ~(close & earlier).any(dim=-1)  # not a duplicate of an earlier point
    valid = edge_ok & ~close & keep[..., :, None] & keep[..., None, :]
    flat = valid.flatten(-2)  # K >= 3 gives K² >= 9 > MAX_POINTS candidate slots
    order = torch.sort((~flat).to(torch.uint8), dim=-1, stable=True).indices[..., :MAX_POINTS]
    return order, torch.gather(flat, -1, order)


def _support_box(normals: Tensor, offsets: Tensor, used: Tensor, ab: Tensor,
                 centre: Tensor) -> tuple[Tensor, Tensor]:
    """Pixel-space box [..., 4] (x0, y0, x1, y1) and radius about ``centre`` of the region where
    the kernel can reach 1/255.

    Since φ ≥ dδ·max_j L_j, I ≥ 1/255 needs L_j ≤ M = log(254)/(dδ·dσ) for every j: the hull
    with each line pushed out by M/|n_j| pixels. That region is a convex polygon whose corners are
    pairwise intersections of pushed lines satisfying all constraints; its box is exact for the
    hard bound (3DCS uses a cheaper, non-conservative mean distance). Computed in float64.
    """
    n = normals.double()
    c = offsets.double()
    margin = (_VISIBLE_LOGIT / ab.double().clamp_min(1e-300))[..., None]
    rhs = margin - c  # n·x = rhs on each pushed line
    i, j = torch.triu_indices(MAX_POINTS, MAX_POINTS, 1, device=n.device)
    ni, nj, ri, rj = n[..., i, :], n[..., j, :], rhs[..., i], rhs[..., j]
    det = ni[..., 0] * nj[..., 1] - ni[..., 1] * nj[..., 0]
    scale = ni.norm(dim=-1) * nj.norm(dim=-1)
    pair_ok = used[..., i] & used[..., j] & (det.abs() > 1e-9 * scale)
    det_safe = torch.where(pair_ok, det, torch.ones_like(det))
    corner = torch.stack([(ri * nj[..., 1] - rj * ni[..., 1]) / det_safe,
                          (ni[..., 0] * rj - nj[..., 0] * ri) / det_safe], dim=-1)
    # Distance (px) by which each corner violates each pushed line; allow rounding slack.
    lhs = torch.einsum("...pd,...ld->...pl", corner, n)
    slack = 1e-6 * (lhs.abs() + rhs[..., None, :].abs()) + 1e-9
    feasible = ((lhs <= rhs[..., None, :] + slack) | ~used[..., None, :]).all(dim=-1)
    ok = pair_ok & feasible & torch.isfinite(corner).all(dim=-1)
    inf = torch.full_like(corner[..., 0], math.inf)
    xs, ys = corner[..., 0], corner[..., 1]
    box = torch.stack([
        torch.where(ok, xs, inf).amin(-1), torch.where(ok, ys, inf).amin(-1),
        torch.where(ok, xs, -inf).amax(-1), torch.where(ok, ys, -inf).amax(-1),
    ], dim=-1)
    dist = (corner - centre.double()[..., None, :]).norm(dim=-1)
    radius = torch.where(ok, dist, torch.zeros_like(dist)).amax(-1)
    radius = torch.where(ok.any(-1), radius, torch.full_like(radius, math.inf))
    return box, radius.to(normals.dtype)


def project_point_sets(points: Tensor, viewmats: Tensor, Ks: Tensor,
                       near_plane: float) -> tuple[Tensor, Tensor, Tensor]:
    """Pinhole-project point sets [N, K, 3] into B cameras.

    Returns camera coordinates [B, N, K, 3], pixels [B, N, K, 2] and ``in_front`` [B, N] (every
    point beyond ``near_plane``). Points behind it are projected as if at z = 1 so culled sets
    stay finite (their footprints are never drawn).
    """
    R, t = viewmats[:, :3, :3], viewmats[:, :3, 3]
    cam = torch.einsum("bij,nkj->bnki", R, points) + t[:, None, None, :]
    z = cam[..., 2]
    in_front = (z > near_plane).all(dim=-1)
    z_safe = torch.where(z > near_plane, z, torch.ones_like(z))
    fx, fy = Ks[:, 0, 0, None, None], Ks[:, 1, 1, None, None]
    cx, cy = Ks[:, 0, 2, None, None], Ks[:, 1, 2, None, None]
    q = torch.stack([fx * cam[..., 0] / z_safe + cx, fy * cam[..., 1] / z_safe + cy], dim=-1)
    return cam, q, in_front


def pixel_bounds(box: Tensor, visible: Tensor, width: int, height: int) -> Tensor:
    """Continuous box [..., (x0, y0, x1, y1)] of pixel-centre positions -> int32 pixel box
    [xmin, ymin, xmax, ymax) clipped to the image (pixel i has its centre at i + 0.5); rows not
    ``visible`` or with a non-finite box get an empty box."""
    lo = torch.ceil(box[..., :2] - 0.5)
    hi = torch.floor(box[..., 2:] - 0.5) + 1
    limit = torch.tensor([width, height], dtype=box.dtype, device=box.device)
    bounds = torch.cat([torch.minimum(lo.clamp_min(0), limit),
                        torch.minimum(hi.clamp_min(0), limit)], dim=-1)
    ok = visible[..., None] & torch.isfinite(bounds)
    return torch.where(ok, bounds, torch.zeros_like(bounds)).to(torch.int32)


def kernel_torch(params: Tensor, px: Tensor, py: Tensor) -> tuple[Tensor, Tensor]:
    """Torch twin of ConvexKernel::eval (broadcasting params[..., P] against px, py).

    Returns I [...] and the single interpolation weight [..., 1] (= 1). Lines past num_lines
    enter the log-sum-exp as -1e30 so they vanish without the NaN gradients -inf would give.
    """
    num = params[..., 0].round()
    a = params[..., 1, None]
    b = params[..., 2]
    lines = params[..., 3:].unflatten(-1, (MAX_POINTS, 3))
    L = lines[..., 0] * px[..., None] + lines[..., 1] * py[..., None] + lines[..., 2]
    used = torch.arange(MAX_POINTS, device=params.device) < num[..., None]
    phi = torch.logsumexp(torch.where(used, a * L, _MASKED_LINE), dim=-1)
    k = torch.where(num >= 3, torch.sigmoid(-b * phi), torch.zeros_like(phi))
    return k, torch.ones_like(k)[..., None]


register(Convexes, KIND_CONVEX, project, kernel_torch, project_native)
