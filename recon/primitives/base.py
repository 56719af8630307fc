"""What every primitive type hands the shared tile rasterizer, and the registry render() uses.

A primitive module (gaussians, convexes, triangles) provides

* ``project(primitives, viewmats, Ks, width, height, **opts) -> Footprints``: differentiable
  (autograd) projection of the whole set into B cameras in torch (the reference);
* optionally ``project_native`` with the same signature and results: a fused native op for the
  cpu and cuda backends (it may fall back to ``project`` where it cannot serve a call);
* ``kernel_torch(params, px, py) -> (k, w)``: the torch twin of the native pixel kernel in
  ``cuda/include/<kind>.h`` (broadcasting; k in [0, 1], w the V interpolation weights), used by
  the dense reference rasterizer and to check the native VJP;
* optionally ``depth_slopes(primitives, viewmats, Ks) -> [B, N, 2]``: how the depth the
  primitive draws changes across its footprint (camera z per pixel in x and y), so depth maps
  follow tilted primitives instead of a constant depth per primitive;

and registers them with :func:`register`. render() looks the type up here, so it never names a
primitive type. Primitive classes also expose ``centers`` ([N, 3] world positions) for
view-dependent colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

from torch import Tensor

from recon.errors import ReconError

# Kind numbers; cuda/include/common.h holds the same values.
KIND_GAUSSIAN = 0
KIND_CONVEX = 1
KIND_TRIANGLE = 2


@dataclass
class Footprints:
    """Projected primitives for B cameras: the 2D footprints and what binning and stats need."""

    kind: int
    params: Tensor
    """[B, N, P] the footprint the pixel kernel reads (pixels; pixel centres at i + 0.5)."""
    opacities: Tensor
    """[B, N] opacity per camera (the Gaussians' antialiasing compensation is folded in)."""
    depths: Tensor
    """[B, N] sort key: camera z of the centre / centroid; > 0 for every visible primitive."""
    bounds: Tensor
    """[B, N, 4] int32 pixel box [xmin, ymin, xmax, ymax) that holds every pixel the primitive can
    reach with α ≥ 1/255; an empty box (xmax <= xmin or ymax <= ymin) means culled."""
    means2d: Tensor
    """[B, N, 2] 2D centre in pixels (strategies read its gradient)."""
    radii: Tensor
    """[B, N] screen size in pixels (0: not visible)."""
    normals: Tensor | None = None
    """[B, N, 3] unit normal in camera coordinates, facing the camera; None when undefined."""
    vertices: int = 1
    """V feature vertices per primitive (1, or 3 for triangles' per-vertex features)."""
    vertex_depths: Tensor | None = None
    """[B, N, V] camera z per feature vertex, for a depth map differentiable w.r.t. vertices
    (triangles); None: ``depths`` is used for every vertex."""

    @property
    def visible(self) -> Tensor:
        """[B, N] bool: the primitive touches at least one pixel of the camera."""
        b = self.bounds
        return (b[..., 2] > b[..., 0]) & (b[..., 3] > b[..., 1])


KernelTorch = Callable[[Tensor, Tensor, Tensor], "tuple[Tensor, Tensor]"]


class PrimitiveOps(NamedTuple):
    kind: int
    project: Callable[..., Footprints]
    kernel_torch: KernelTorch
    project_native: Callable[..., Footprints] | None = None
    depth_slopes: Callable[..., Tensor] | None = None


_BY_TYPE: dict[type, PrimitiveOps] = {}
_KERNELS: dict[int, KernelTorch] = {}


def register(primitive_type: type, kind: int, project: Callable[..., Footprints],
             kernel_torch: KernelTorch,
             project_native: Callable[..., Footprints] | None = None,
             depth_slopes: Callable[..., Tensor] | None = None) -> None:
    """Make ``primitive_type`` renderable (called once by each primitive module)."""
    _BY_TYPE[primitive_type] = PrimitiveOps(kind, project, kernel_torch, project_native,
                                            depth_slopes)
    _KERNELS[kind] = kernel_torch


def ops_for(primitives: object) -> PrimitiveOps:
    """The projection and kernel of a primitive set, by its type."""
    import recon.primitives  # noqa: F401  (imports every built-in module, which registers it)

    ops = _BY_TYPE.get(type(primitives))
    if ops is None:
        known = ", ".join(sorted(t.__name__ for t in _BY_TYPE)) or "none"
        raise ReconError(
            f"Cannot render {type(primitives).__name__}: not a registered primitive type "
            f"(known: {known}). Pass one of those, or register yours with "
            "recon.primitives.base.register()."
        )
    return ops


def kernel_for(kind: int) -> KernelTorch:
    """The torch pixel kernel of a footprint kind."""
    import recon.primitives  # noqa: F401

    if kind not in _KERNELS:
        raise ReconError(f"Unknown footprint kind {kind}; known kinds: {sorted(_KERNELS)}.")
    return _KERNELS[kind]
