"""Settings of the mesh extraction methods (torch-free: the CLI parses them without loading torch).

Lengths are relative to the scene radius r: the radius of the surface the run renders (the
sphere around the median of the training views' depth points that holds 99% of them), so the
same settings suit a toy object and a room.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from recon.errors import raise_first


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

    def validate(self) -> None:
        raise_first([
            (0.0 < self.level < 1.0, f"--sugar.level must be in (0, 1), got {self.level}."),
            (self.rays >= 1, f"--sugar.rays must be at least 1, got {self.rays}."),
            (self.samples_per_ray >= 2,
             f"--sugar.samples-per-ray must be at least 2, got {self.samples_per_ray}."),
            (self.search_width > 0,
             f"--sugar.search-width must be positive, got {self.search_width}."),
            (self.neighbors >= 1, f"--sugar.neighbors must be at least 1, got {self.neighbors}."),
            (4 <= self.poisson_depth <= 12,
             f"--sugar.poisson-depth must be 4..12, got {self.poisson_depth}."),
            (0.0 <= self.trim_quantile < 1.0,
             f"--sugar.trim-quantile must be in [0, 1), got {self.trim_quantile}."),
            (self.decimate >= 0, f"--sugar.decimate must be >= 0, got {self.decimate}."),
        ])


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
    depth: Literal["level", "rendered"] = "level"
    """Which depth maps are fused: level = where each pixel's ray first reaches the density level
    --sugar.level (the surface the sugar method meshes, searched like its points:
    --sugar.search-width, --sugar.samples-per-ray, --sugar.neighbors); rendered = the rendered
    --view.depth. On recon's test scenes the rendered depth of a fitted object sits 0.7-0.9 % of
    its bounding-box diagonal inside the true surface; the level set does not."""
    rays: int = 2_000_000
    """Most pixel rays searched for the level-set depth over all views; views with more
    foreground pixels are searched on a coarser pixel grid."""

    def validate(self) -> None:
        raise_first([
            (8 <= self.voxels <= 1024, f"--tsdf.voxels must be 8..1024, got {self.voxels}."),
            (self.truncation > 1.0,
             f"--tsdf.truncation must be more than one voxel, got {self.truncation}."),
            (self.margin >= 1.0, f"--tsdf.margin must be at least 1, got {self.margin}."),
            (self.depth in ("level", "rendered"),
             f"--tsdf.depth must be level or rendered, got {self.depth!r}."),
            (self.rays >= 1, f"--tsdf.rays must be at least 1, got {self.rays}."),
        ])


@dataclass(frozen=True)
class ViewOptions:
    """Which rendered pixels count as surface, for both methods."""

    alpha_min: float = 0.5
    """Pixels whose rendered opacity is below this are background (no depth)."""
    depth: Literal["median", "expected"] = "median"
    """Which rendered depth a pixel's surface is at: median (the depth of the Gaussian where the
    accumulated opacity passes 0.5: the first opaque layer, as 2DGS meshes bounded objects) or
    expected (Σ w z / Σ w, which the semi-transparent layers behind a surface drag inwards)."""

    def validate(self) -> None:
        raise_first([(0.0 < self.alpha_min <= 1.0,
                       f"--view.alpha-min must be in (0, 1], got {self.alpha_min}."),
                      (self.depth in ("median", "expected"),
                       f"--view.depth must be median or expected, got {self.depth!r}.")])


__all__ = ["SugarOptions", "TsdfOptions", "ViewOptions"]
