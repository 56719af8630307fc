"""render(): draw any registered primitive set (Gaussians, convexes, triangles) into cameras.

Pipeline: the primitive module projects to 2D footprints (torch autograd) -> tile binning
(torch.sort) -> native front-to-back compositing (``backend`` "cpu" / "cuda", an autograd
Function) or the dense torch reference (``backend="torch"``, small images only). Depth and
normal maps are extra feature channels composited with the user's features; a primitive with
depth slopes draws a plane z + s·(p - centre) instead of a constant z, which is composited as
three channels (the plane's value at the image centre and its two slopes) since Σ w (a + s·d) =
Σ w a + d·Σ w s for every pixel offset d.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from recon.cameras import Camera, cameras_to_tensors
from recon.errors import ReconError

BACKENDS = ("auto", "cpu", "cuda", "torch")


@dataclass
class RenderResult:
    """Images are [B, C, H, W] / [B, H, W], or without B when one Camera was given; per-primitive
    statistics are always [B, N, ...] (B = number of cameras)."""

    features: Tensor
    """[B, C, H, W] composited features, plus background where given."""
    alpha: Tensor
    """[B, H, W] accumulated opacity 1 - Π(1 - α)."""
    depth: Tensor
    """[B, H, W] expected depth Σ w z / Σ w (camera z; 0 where nothing was drawn). z is the
    primitive's depth at the pixel: Gaussians are drawn as their tilted planes (see
    ``gaussians.depth_slopes``), triangles interpolate their vertices, convexes use the centre."""
    median_depth: Tensor
    """[B, H, W] depth (as above) of the primitive where transmittance first drops below ½
    (0: never)."""
    normals: Tensor | None
    """[B, 3, H, W] Σ w n of camera-space unit normals (not renormalised), or None."""
    means2d: Tensor
    """[B, N, 2] projected centres; their .grad is kept after backward (densification)."""
    radii: Tensor
    """[B, N] int32 screen radius in pixels (0: not visible)."""
    visible: Tensor
    """[B, N] bool: touches the image of that camera."""
    visibility_count: Tensor
    """[N] number of cameras that see each primitive."""
    max_weight: Tensor
    """[B, N] largest blending weight α T of each primitive over the image (no gradient)."""
    absgrad: Tensor | None
    """[B, N, P] Σ_pixels |dL/d footprint| filled by backward (AbsGS; for Gaussians [..., :2] is
    the means2d absgrad); None unless ``absgrad=True``. Native backends only."""


def render(primitives, cameras: Camera | Sequence[Camera], features: Tensor,
           background: Tensor | None = None, backend: str = "auto", *,
           sh_degree: int | None = None, depth: bool = True, normals: bool = True,
           absgrad: bool = False, tile_size: int = 16, **project_options) -> RenderResult:
    """Render ``primitives`` into one camera or a list of cameras of the same size.

    features: [N, C] or per camera [B, N, C]; per vertex [N, V, C] / [B, N, V, C] for primitives
    with V > 1 (triangles); with ``sh_degree``, SH coefficients [N, K, C] (or [B, N, K, C], or
    per vertex [N, V, K, C]) evaluated along the camera->centre direction, +0.5 and clamped at 0
    (3DGS convention).
    background: [C] colour composited behind the features. ``project_options`` go to the
    primitive's projection (e.g. eps2d, antialiased, near_plane for Gaussians).
    """
    from recon.primitives.base import ops_for

    if backend not in BACKENDS:
        raise ReconError(f"Unknown render backend {backend!r}; "
                         f"choose one of {', '.join(BACKENDS)}.")
    single = isinstance(cameras, Camera)
    cams = [cameras] if single else list(cameras)
    if not cams:
        raise ReconError("render() needs at least one camera.")
    width, height = cams[0].width, cams[0].height
    if any((c.width, c.height) != (width, height) for c in cams):
        raise ReconError("All cameras of one render() call must share the image size; "
                         "render differently sized cameras in separate calls.")
    ops = ops_for(primitives)
    centers = primitives.centers
    device, dtype = centers.device, centers.dtype
    backend = _resolve_backend(backend, device)
    viewmats, Ks = (t.to(dtype) for t in cameras_to_tensors(cams, device))
    project = ops.project_native if ops.project_native and backend != "torch" else ops.project
    fp = project(primitives, viewmats, Ks, width, height, **project_options)
    B, N = fp.opacities.shape
    V = fp.vertices

    if sh_degree is not None:
        # Rigid world->camera: the centre is -Rᵀ t (linalg.inv would sync with a CUDA host).
        cam_centers = -torch.einsum("bji,bj->bi", viewmats[:, :3, :3], viewmats[:, :3, 3])
        dirs = centers[None] - cam_centers[:, None]                                 # [B,N,3]
        per_vertex = V > 1 and features.dim() == 4 and features.shape[:2] == (N, V)
        if per_vertex:  # [N, V, K, C] -> [N, K, V·C]: every vertex along the centre's direction
            features = features.transpose(1, 2).flatten(2)
        features = (_sh_colors(sh_degree, dirs, features, native=backend != "torch") + 0.5)
        features = features.clamp_min(0.0)
        if per_vertex:
            features = features.unflatten(-1, (V, -1))                              # [B,N,V,C]
    feats = _per_camera_vertex_features(features, B, N, V).to(dtype)
    C = feats.shape[-1]
    want_normals = normals and fp.normals is not None
    slopes = ops.depth_slopes(primitives, viewmats, Ks) if depth and ops.depth_slopes else None
    planes = _depth_planes(fp, slopes, width, height) if depth else None
    extra = _extra_channels(fp, planes, want_normals)
    all_feats = torch.cat([feats, *extra], -1) if extra else feats  # cat of one would copy
    if fp.means2d.requires_grad:
        fp.means2d.retain_grad()
    absgrad_buf = torch.zeros_like(fp.params) if absgrad and backend != "torch" else None
    image, alpha, max_weight, median_flat = _composite(backend, fp, all_feats, width, height,
                                                       tile_size, absgrad_buf, want_median=depth)

    # A full-width slice would still make autograd materialise a zero-filled gradient copy.
    color = (image[..., :C] if extra else image).permute(0, 3, 1, 2)
    if background is not None:
        bg = torch.as_tensor(background, dtype=dtype, device=device)
        if bg.shape != (C,):
            raise ReconError(f"background must have one value per feature channel ({C}), "
                             f"got shape {tuple(bg.shape)}.")
        color = color + (1.0 - alpha)[:, None] * bg[None, :, None, None]
    zero = torch.zeros((), dtype=dtype, device=device)
    if planes is not None:
        drawn = alpha > 0
        sums = image[..., C:C + planes.shape[-1]]
        depth_map = _plane_values(sums, width, height) / torch.where(drawn, alpha, 1.0)
        depth_map = torch.where(drawn, depth_map, zero)
        # The median primitive's plane (per primitive, not per vertex: V > 1 has no slopes).
        per_prim = planes[:, :, 0] if slopes is not None else fp.depths[..., None]
        median = _plane_values(_gather_or_missing(per_prim.flatten(0, 1), median_flat, 0.0),
                               width, height)
    else:
        depth_map = median = torch.zeros_like(alpha)
    normal_map = image[..., -3:].permute(0, 3, 1, 2) if want_normals else None
    visible = fp.visible
    result = RenderResult(
        features=color, alpha=alpha, depth=depth_map, median_depth=median, normals=normal_map,
        means2d=fp.means2d, radii=fp.radii, visible=visible,
        visibility_count=visible.sum(0).to(torch.int32), max_weight=max_weight,
        absgrad=absgrad_buf)
    return squeeze_camera(result) if single else result


def _depth_planes(fp, slopes: Tensor | None, width: int, height: int) -> Tensor:
    """Per-vertex depth planes [B, N, V, 1 or 3]: the depth at the image centre and, with
    ``slopes`` [B, N, 2], its change per pixel in x and y."""
    B, N = fp.opacities.shape
    if slopes is None:
        z = fp.vertex_depths if fp.vertex_depths is not None else fp.depths[..., None]
        return z.expand(B, N, fp.vertices)[..., None]
    centre = torch.tensor([0.5 * width, 0.5 * height], dtype=slopes.dtype, device=slopes.device)
    # Culled primitives are never composited, but their (arbitrary) centres must stay finite.
    offset = torch.where(fp.visible[..., None], centre - fp.means2d, 0.0)
    at_centre = fp.depths + (slopes * offset).sum(-1)
    return torch.cat([at_centre[..., None], slopes], -1)[:, :, None].expand(B, N, fp.vertices, 3)


def _plane_values(planes: Tensor, width: int, height: int) -> Tensor:
    """[B, H, W] a + s·(p - centre) at every pixel centre p from planes [B, H, W, 1 or 3]."""
    if planes.shape[-1] == 1:
        return planes[..., 0]
    dtype, device = planes.dtype, planes.device
    dx = torch.arange(width, dtype=dtype, device=device) + 0.5 - 0.5 * width
    dy = torch.arange(height, dtype=dtype, device=device) + 0.5 - 0.5 * height
    return planes[..., 0] + dx * planes[..., 1] + dy[:, None] * planes[..., 2]


def _extra_channels(fp, planes: Tensor | None, normals: bool) -> list[Tensor]:
    """Per-vertex depth planes (1 or 3 channels) and camera-space normal (3) as extra feature
    channels, so the compositor produces Σ w z and Σ w n with their gradients."""
    B, N = fp.opacities.shape
    V = fp.vertices
    extra = []
    if planes is not None:
        extra.append(planes)
    if normals:
        extra.append(fp.normals[:, :, None, :].expand(B, N, V, 3))
    return extra


def _composite(backend: str, fp, features: Tensor, width: int, height: int, tile_size: int,
               absgrad_buf: Tensor | None, want_median: bool = True):
    """Blend the footprints: images [B,H,W,C], alpha [B,H,W], max weight [B,N] and the flat
    primitive index (b * N + n) that sets each pixel's median depth (-1: none; None when not
    ``want_median``: the native path then skips its gathers)."""
    if backend == "torch":
        from recon.render.reference import rasterize_dense

        dense = rasterize_dense(fp.kind, fp.params, fp.opacities, features, fp.depths,
                                fp.visible, width, height)
        B, N = fp.opacities.shape
        offsets = N * torch.arange(B, device=features.device)[:, None, None]
        median = torch.where(dense.median_prim >= 0, dense.median_prim + offsets,
                             dense.median_prim)
        return dense.features, dense.alpha, dense.max_weight, median
    from recon._ops import rasterize
    from recon.render.binning import bin_footprints

    bins = bin_footprints(fp.bounds, fp.depths, width, height, tile_size)
    out = rasterize(fp.params, fp.opacities, features, bins.isect_prims, bins.tile_ranges,
                    fp.kind, width, height, tile_size, absgrad_buf, bounds=fp.bounds)
    median_prim = (_gather_or_missing(bins.isect_prims.long(), out.median_idx.long(), -1)
                   if want_median else None)
    return out.features, out.alpha, out.max_weight, median_prim


def _resolve_backend(backend: str, device: torch.device) -> str:
    if backend == "auto":
        return "cuda" if device.type == "cuda" else "cpu"
    if backend in ("cpu", "cuda") and device.type != backend:
        raise ReconError(f"backend={backend!r} needs the primitives on the {backend} device, but "
                         f"they are on {device}; move them with .to('{backend}') or use "
                         "backend='auto'.")
    return backend


def _sh_colors(degree: int, dirs: Tensor, coeffs: Tensor, native: bool) -> Tensor:
    """SH colours [B,N,C] from coefficients [N,K,C] or [B,N,K,C]; the native op on the CPU and
    CUDA backends (much faster for large N), the torch evaluation for backend="torch"."""
    from recon.render.sh import MAX_DEGREE, eval_sh, num_bases

    if not 0 <= degree <= MAX_DEGREE or coeffs.dim() not in (3, 4) \
            or coeffs.shape[-2] < num_bases(degree):
        raise ReconError(
            f"sh_degree={degree} needs SH features of shape [N, K, C] or [B, N, K, C] with "
            f"K >= {num_bases(min(max(degree, 0), MAX_DEGREE))} and degree <= {MAX_DEGREE}; got "
            f"features of shape {tuple(coeffs.shape)}.")
    if native:
        from recon._ops.sh import spherical_harmonics

        return spherical_harmonics(degree, dirs, coeffs.to(dirs.dtype))
    if coeffs.dim() == 3:
        coeffs = coeffs[None].expand(dirs.shape[0], -1, -1, -1)
    return eval_sh(degree, dirs, coeffs)


def _gather_or_missing(values: Tensor, index: Tensor, missing) -> Tensor:
    """Rows values[index] (values [M, ...]) where index >= 0, else ``missing`` (also when
    ``values`` is empty)."""
    padded = torch.cat([values, torch.full((1, *values.shape[1:]), missing, dtype=values.dtype,
                                           device=values.device)])
    return padded[torch.where(index >= 0, index, len(padded) - 1)]


def _per_camera_vertex_features(features: Tensor, B: int, N: int, V: int) -> Tensor:
    """Accept [N,C], [B,N,C], [N,V,C] or [B,N,V,C]; return [B,N,V,C]."""
    f = features
    if f.dim() == 2 and f.shape[0] == N:
        f = f[None, :, None]
    elif f.dim() == 3 and V > 1 and f.shape[:2] == (N, V):
        f = f[None]
    elif f.dim() == 3 and f.shape[:2] == (B, N):
        f = f[:, :, None]
    elif not (f.dim() == 4 and f.shape[:3] == (B, N, V)):
        raise ReconError(
            f"features of shape {tuple(features.shape)} do not fit {N} primitives, {B} cameras "
            f"and {V} feature vertices; expected [N, C], [B, N, C]"
            + (", [N, V, C]" if V > 1 else "") + " or [B, N, V, C].")
    return f.expand(B, N, V, f.shape[-1])


def squeeze_camera(r: RenderResult) -> RenderResult:
    """Drop the camera axis of the images when a single Camera was given."""
    return RenderResult(
        features=r.features[0], alpha=r.alpha[0], depth=r.depth[0], median_depth=r.median_depth[0],
        normals=None if r.normals is None else r.normals[0], means2d=r.means2d, radii=r.radii,
        visible=r.visible, visibility_count=r.visibility_count, max_weight=r.max_weight,
        absgrad=r.absgrad)


def camera_result(r: RenderResult, b: int) -> RenderResult:
    """Camera ``b`` of a render over several cameras, shaped as a one-camera render's result
    (images without the camera axis, per-primitive statistics [1, N, ...]); differentiable views
    of ``r``, for losses defined per image. Strategies read the batched ``r`` itself (its
    ``means2d.grad``)."""
    one = slice(b, b + 1)
    return RenderResult(
        features=r.features[b], alpha=r.alpha[b], depth=r.depth[b], median_depth=r.median_depth[b],
        normals=None if r.normals is None else r.normals[b], means2d=r.means2d[one],
        radii=r.radii[one], visible=r.visible[one], visibility_count=r.visible[b].to(torch.int32),
        max_weight=r.max_weight[one], absgrad=None if r.absgrad is None else r.absgrad[one])


__all__ = ["BACKENDS", "RenderResult", "camera_result", "render", "squeeze_camera"]
