"""Triangle soups (Triangle Splatting, Held et al. 2025): parameters, projection, torch kernel.

Each triangle has three free vertices, a window smoothness σ (exp-activated), an opacity, and
per-vertex features ([N, 3, C], supplied to ``render``) interpolated by barycentrics. Projection
hands the rasterizer the three edge lines with unit outward normals, 1/φ(s) at the incenter s
(φ(s) = −inradius), σ, and the affine pixel -> barycentric map; the pixel kernel
(``cuda/include/triangle.h``, twin :func:`kernel_torch`) is the window

    I(p) = ReLU(φ(p) / φ(s))^σ,    φ(p) = max_i (n_i·p + c_i),

which is 1 at the incenter and exactly 0 on and outside the edges.

Opaque mesh mode (``project(..., opaque=True)``, used to render meshes such as FlexiCubes
output): opacity 1 and σ replaced by the flag −band, for which the kernel is solid inside with a
linear ramp over ``band`` pixels outside each edge, so masks and depth maps get gradients w.r.t.
vertex positions at silhouettes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from recon.errors import ReconError
from recon.primitives.base import KIND_TRIANGLE, Footprints, register
from recon.primitives.convexes import pixel_bounds, project_point_sets

FOOTPRINT_SIZE = 17
"""[3 × (nx, ny, c), 1/φ(s), σ, b00, b01, b02, b10, b11, b12] (cuda TriangleKernel::P)."""
MIN_EXTENT = 1.0
"""Pixels: triangles whose (band-grown) screen box is smaller are culled (Triangle Splatting)."""
MAX_EXTENT = 1600.0
"""Pixels: soup triangles whose screen box is larger are culled (Triangle Splatting). Opaque
meshes are exempt: a big triangle close to the camera is part of the surface, not an outlier."""
MITRE_LIMIT = 2.0
"""Opaque mode: pixels more than this many bands beyond a corner are outside (triangle.h)."""
MIN_COS = 1e-3
"""|cos| between the face normal and the view ray below which a triangle is edge-on and culled."""
MIN_AREA = 1e-6
"""Twice the projected area (px²) below which a triangle is degenerate and culled."""


@dataclass
class Triangles:
    """A soup of N triangles (activated quantities are exp / sigmoid of these)."""

    vertices: Tensor
    """[N, 3, 3] world positions of the three corners."""
    log_sigma: Tensor
    """[N] log window smoothness σ: σ -> 0 is a solid triangle, larger σ peaks at the incenter."""
    opacity_logit: Tensor
    """[N] opacity before the sigmoid."""

    def __post_init__(self) -> None:
        v = self.vertices
        if v.ndim != 3 or v.shape[1:] != (3, 3):
            raise ReconError(
                f"Triangles.vertices must have shape [N, 3, 3] (three xyz corners per triangle); "
                f"got {tuple(v.shape)}."
            )
        n = v.shape[0]
        for name in ("log_sigma", "opacity_logit"):
            t = getattr(self, name)
            if t.shape != (n,):
                raise ReconError(
                    f"Triangles.{name} must have shape [{n}] (one value per triangle); got "
                    f"{tuple(t.shape)}."
                )

    def __len__(self) -> int:
        return self.vertices.shape[0]

    @property
    def centers(self) -> Tensor:
        """[N, 3] vertex centroids (where view-dependent colour is evaluated)."""
        return self.vertices.mean(dim=1)

    @property
    def opacities(self) -> Tensor:
        return torch.sigmoid(self.opacity_logit)


def project(triangles: Triangles, viewmats: Tensor, Ks: Tensor, width: int, height: int, *,
            near_plane: float = 0.01, opaque: bool = False, band: float = 1.0) -> Footprints:
    """Project N triangles into B cameras (viewmats [B,4,4] world->camera, Ks [B,3,3]).

    ``opaque``: opaque mesh mode with an edge ramp ``band`` pixels wide (opacity 1, σ unused).
    Culled (empty bounds, radius 0): a vertex behind ``near_plane``, edge-on (|cos| < MIN_COS),
    zero projected area, a screen box below MIN_EXTENT or (soups only) above MAX_EXTENT pixels,
    or entirely off-screen. Normals are unit, in camera coordinates, flipped to face the camera.
    """
    if opaque and not band > 0:
        raise ReconError(f"Opaque triangle band must be a positive pixel width; got {band}.")
    cam, q, in_front = project_point_sets(triangles.vertices, viewmats, Ks, near_plane)
    # Footprint built from q re-expressed as means2d + offsets: same values and vertex gradients,
    # but means2d.grad then holds the translation gradient strategies read.
    means2d = q.mean(dim=-2)
    q = means2d[..., None, :] + (q - q.mean(dim=-2, keepdim=True))

    nxt = q.roll(-1, dims=-2)  # edge i runs from vertex i to vertex i + 1
    edge = nxt - q
    area2 = _cross(q[..., 1, :] - q[..., 0, :], q[..., 2, :] - q[..., 0, :])  # signed, 2 × area
    degenerate = area2.abs() < MIN_AREA
    area2_safe = torch.where(degenerate, torch.ones_like(area2), area2)
    length = (edge * edge).sum(-1).clamp_min(1e-30).sqrt()
    # Rotating the edge by -90° points out of a counter-clockwise (area2 > 0) triangle.
    orient = torch.where(area2 < 0, -1.0, 1.0).to(q.dtype)[..., None, None]
    normals2d = orient * torch.stack([edge[..., 1], -edge[..., 0]], dim=-1) / length[..., None]
    offsets = -(normals2d * q).sum(-1)
    # φ(s) = −inradius = −2·area / perimeter: no need to locate the incenter itself.
    inv_phi_s = torch.where(degenerate, torch.zeros_like(area2),
                            -length.sum(-1) / area2_safe.abs())
    n_tri = q.shape[:-2]
    sigma = (torch.full(n_tri, -band, dtype=q.dtype, device=q.device) if opaque
             else torch.exp(triangles.log_sigma).expand(n_tri))
    params = torch.cat([
        torch.cat([normals2d, offsets[..., None]], dim=-1).flatten(-2),
        inv_phi_s[..., None], sigma[..., None], _barycentric_map(q, area2_safe),
    ], dim=-1)

    # Face normal in camera coordinates, turned towards the camera (at the origin).
    centroid = cam.mean(dim=-2)
    face = torch.linalg.cross(cam[..., 1, :] - cam[..., 0, :], cam[..., 2, :] - cam[..., 0, :])
    face = face / face.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    toward = (face * centroid).sum(-1, keepdim=True)
    normals = torch.where(toward > 0, -face, face)

    with torch.no_grad():
        cos = toward.squeeze(-1).abs() / centroid.norm(dim=-1).clamp_min(1e-30)
        grow = band if opaque else 0.0
        box = _grown_box(q, normals2d, grow)
        extent = (box[..., 2:] - box[..., :2]).amax(-1)
        visible = (in_front & ~degenerate & (cos >= MIN_COS) & (extent >= MIN_EXTENT)
                   & torch.isfinite(box).all(-1))
        if not opaque:
            visible &= extent <= MAX_EXTENT
        bounds = pixel_bounds(box, visible, width, height)
        on_screen = (bounds[..., 2] > bounds[..., 0]) & (bounds[..., 3] > bounds[..., 1])
        radii = torch.where(on_screen, torch.ceil(0.5 * extent), torch.zeros_like(extent))

    base_opacity = (torch.ones_like(triangles.opacity_logit) if opaque
                    else torch.sigmoid(triangles.opacity_logit))
    return Footprints(
        kind=KIND_TRIANGLE, params=params, opacities=base_opacity.expand(n_tri),
        depths=centroid[..., 2], bounds=bounds, means2d=means2d, radii=radii.to(torch.int32),
        normals=normals, vertices=3, vertex_depths=cam[..., 2],
    )


def _cross(u: Tensor, v: Tensor) -> Tensor:
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def _barycentric_map(q: Tensor, area2: Tensor) -> Tensor:
    """Rows [b00, b01, b02, b10, b11, b12] with λ_i(p) = b_i0 px + b_i1 py + b_i2, the pixel's
    barycentric weight of vertex i (λ_2 = 1 − λ_0 − λ_1).

    These are screen-space barycentrics, not perspective-correct ones (which interpolate f/z and
    1/z and divide). Triangle splats are small on screen, where the two differ to second order in
    the depth range across the triangle, and an affine map keeps the kernel and its VJP linear in
    the footprint; for large opaque triangles close to the camera, depth and features are
    interpolated linearly in the image instead of on the surface.
    """
    a, b, c = q[..., 0, :], q[..., 1, :], q[..., 2, :]
    # λ_a(p) = cross(b − p, c − p) / area2, linear in p; likewise λ_b with (c, a).
    row_a = torch.stack([b[..., 1] - c[..., 1], c[..., 0] - b[..., 0], _cross(b, c)], dim=-1)
    row_b = torch.stack([c[..., 1] - a[..., 1], a[..., 0] - c[..., 0], _cross(c, a)], dim=-1)
    return torch.cat([row_a, row_b], dim=-1) / area2[..., None]


def _grown_box(q: Tensor, normals2d: Tensor, grow: float) -> Tensor:
    """Box [x0, y0, x1, y1] of the triangle with each edge pushed out by ``grow`` pixels.

    The pushed corner at vertex i (between edges i−1 and i, unit normals u, v) is
    q_i + grow·(u + v)/(1 + u·v): exact, and long for sharp corners, where the opaque kernel's
    bevel cuts the support within (MITRE_LIMIT + 1) × grow of the corners' box.
    """
    if grow > 0:
        u, v = normals2d.roll(1, dims=-2), normals2d
        denom = (1.0 + (u * v).sum(-1, keepdim=True)).clamp_min(1e-12)
        box = torch.cat([q.amin(dim=-2), q.amax(dim=-2)], dim=-1)
        q = q + grow * (u + v) / denom
        # The bevel ends every spike within MITRE_LIMIT bands of its corner (plus a band aside).
        reach = (MITRE_LIMIT + 1.0) * grow
        pushed = torch.cat([q.amin(dim=-2), q.amax(dim=-2)], dim=-1)
        return torch.cat([torch.maximum(pushed[..., :2], box[..., :2] - reach),
                          torch.minimum(pushed[..., 2:], box[..., 2:] + reach)], dim=-1)
    return torch.cat([q.amin(dim=-2), q.amax(dim=-2)], dim=-1)


def kernel_torch(params: Tensor, px: Tensor, py: Tensor) -> tuple[Tensor, Tensor]:
    """Torch twin of TriangleKernel::eval (broadcasting params[..., 17] against px, py).

    Returns I [...] and the barycentric weights [..., 3]. Each branch is fed safe values where the
    other is selected (log of r > 0 only, σ = 0 in opaque rows) so no gradient is NaN.
    """
    lines = params[..., :9].unflatten(-1, (3, 3))
    L = lines[..., 0] * px[..., None] + lines[..., 1] * py[..., None] + lines[..., 2]
    phi = L.max(dim=-1).values
    inv_phi_s, sigma = params[..., 9], params[..., 10]
    opaque = sigma < 0
    band = torch.where(opaque, -sigma, torch.ones_like(sigma))
    k_opaque = (1.0 - phi / band).clamp(0.0, 1.0)
    bary = params[..., 11:17].unflatten(-1, (2, 3))
    w01 = bary[..., 0] * px[..., None] + bary[..., 1] * py[..., None] + bary[..., 2]
    w = torch.cat([w01, 1.0 - w01.sum(-1, keepdim=True)], dim=-1)
    # The bevel: more than MITRE_LIMIT bands beyond a corner along its bisector (a hard cut).
    # Corner i joins lines i−1 and i: |n_{i−1} + n_i| m·(p − q_i) = L_{i−1}(p) + L_i(p).
    normal_sums = (lines[..., :2] + lines.roll(1, dims=-2)[..., :2]).detach()
    along = (L + L.roll(1, dims=-1)).detach()
    limit_sq = (MITRE_LIMIT * band[..., None]) ** 2
    past_bevel = ((along > 0) & (along ** 2 > limit_sq * (normal_sums ** 2).sum(-1))).any(-1)
    past_bevel &= phi > 0
    k_opaque = torch.where(past_bevel, torch.zeros_like(k_opaque), k_opaque)
    r = phi * inv_phi_s
    inside = r > 0
    log_r = torch.log(torch.where(inside, r, torch.ones_like(r)))
    window_sigma = torch.where(opaque, torch.zeros_like(sigma), sigma)
    k_window = torch.where(inside, torch.exp(window_sigma * log_r), torch.zeros_like(r))
    k = torch.where(opaque, k_opaque, k_window)
    return k, w


register(Triangles, KIND_TRIANGLE, project, kernel_torch)
