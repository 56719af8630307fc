"""Settings of the mesh extraction methods (torch-free: the CLI parses them without loading torch).

Lengths are relative to the scene radius r: the radius of the surface the run renders (the
sphere around the median of the training views' depth points that holds 99% of them), so the
same settings suit a toy object and a room.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SugarOptions:
    """SuGaR extraction: level-set points along training rays -> screened Poisson."""

    level: float = 0.3
    """Density level λ of the surface (SuGaR's 0.3)."""
    rays: int = 100_000
    """Pixel rays sampled over all training views (foreground pixels, uniformly)."""
    samples_per_ray: int = 21
    """Density samples per ray around the rendered depth (SuGaR's 21)."""
    search_width: float = 0.1
    """Half-width of the sample window around the rendered depth, × the scene radius."""
    neighbors: int = 16
    """Gaussians (nearest centres) summed in the density at each point (SuGaR's 16)."""
    poisson_depth: int = 8
    """Octree depth of the screened Poisson solve (grid of 2^depth cells across the points)."""
    trim_quantile: float = 0.1
    """Remove the vertices with the lowest Poisson density: this fraction of them (SuGaR's 10%)."""
    decimate: int = 0
    """Quadric decimation to this many triangles (0: keep the Poisson mesh as it is)."""


@dataclass(frozen=True)
class TsdfOptions:
    """TSDF fusion of the rendered depth and colour of every training view."""

    voxels: int = 256
    """Voxels along each side of the fused cube (side 2 r × margin): voxel ≈ 2.2 r / voxels.
    Memory grows as voxels³ (256: ~1.3 GB)."""
    margin: float = 1.1
    """The cube's half-side as a multiple of the scene radius."""
    truncation: float = 4.0
    """Truncation distance of the signed distance, in voxels."""


@dataclass(frozen=True)
class ViewOptions:
    """Which rendered pixels count as surface, for both methods."""

    alpha_min: float = 0.5
    """Pixels whose rendered opacity is below this are background (no depth)."""


__all__ = ["SugarOptions", "TsdfOptions", "ViewOptions"]
