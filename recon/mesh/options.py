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
    """Which rendered pixels count as surface (have depth), for every method."""

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


@dataclass(frozen=True)
class FlexiCubesExtractOptions:
    """FlexiCubes fitted to the rendered views: recon fit --model flexicubes on the colour,
    opacity (as the mask) and depth that the run renders in its training views."""

    steps: int = 1000
    """Optimisation steps of the FlexiCubes fit (one view each)."""
    resolution: int = 64
    """Cubes per axis of the SDF grid (doubled at each --flexicubes.upsample-at)."""
    upsample_at: tuple[float, ...] = ()
    """Fractions of the steps (in (0, 1)) after which the grid doubles its resolution, e.g. 0.5:
    64³ then 128³; empty: one resolution."""
    extent: float = 1.0
    """The grid's box: this × the half width of the region the training cameras look at, around
    it (raise it when the object pokes out of the images: the box caps what leaves it)."""
    init: Literal["carve", "sphere"] = "carve"
    """The SDF the fit starts from: carve (space carving with the rendered depth: a point that 3
    views see as background or in front of their surface is outside; it opens the holes the
    views see) or sphere (the model's own start, which a short fit cannot open holes in)."""
    depth_weight: float = 0.0
    """Weight of the fit's depth term (the model's --flexicubes.depth-weight: the mean distance
    from the views' depth pixels to the mesh; --model flexicubes uses 10); the depth always
    shapes the carved start. On spot (a Gaussian --preset mesh run of bench/meshes.py, 1000
    steps at 128², 64³): Chamfer 0.92 % of the diagonal with 0; with 10 (and an empty-space
    weight of 1), 0.79 % on the level-set depth (--flexicubes.depth level) and 1.48 % on the
    rendered median depth, which sits inside the surface, against the silhouettes: the mesh
    grows inner sheets. On recon's torus run
    (300 steps at 64 px; 20³, 200 steps) 10 with the level-set depth leaves 31 handles (Euler
    number -60; the torus: 0), so 0 stays the default."""
    empty_weight: float = 0.0
    """Weight of the model's empty-space term (--model flexicubes uses 1): rendered views' alpha
    is soft, and on recon's torus run (64 px) the term bores a second handle through the torus
    (Euler number -2); on spot it changed the Chamfer distance from 0.92 % to 0.94 %."""
    depth: Literal["level", "rendered"] = "rendered"
    """The views' depth the fit reads (its depth term and the carving): rendered (--view.depth)
    or level = where each pixel's ray first reaches the density level (Gaussian runs; as
    --tsdf.depth level)."""
    max_size: int | None = None
    """Fit on views downscaled so their longer side is at most this many pixels (None: the
    run's training resolution)."""
    min_component: float = 0.01
    """Drop closed pieces with fewer than this fraction of the mesh's faces (the floaters a few
    wrong pixels leave; 0 keeps all). spot, a Gaussian --reg surface run: 166 pieces, Chamfer
    1.20 % of the diagonal with all, 0.92 % with the largest."""

    def validate(self) -> None:
        raise_first([
            (0.0 <= self.min_component < 1.0,
             f"--flexicubes.min-component must be in [0, 1), got {self.min_component}."),
            (self.steps >= 1, f"--flexicubes.steps must be at least 1, got {self.steps}."),
            (4 <= self.resolution <= 512,
             f"--flexicubes.resolution must be 4..512, got {self.resolution}."),
            (all(0.0 < f < 1.0 for f in self.upsample_at),
             "--flexicubes.upsample-at takes fractions of the steps in (0, 1), got "
             f"{self.upsample_at}."),
            (self.extent > 0, f"--flexicubes.extent must be positive, got {self.extent}."),
            (self.depth_weight >= 0,
             f"--flexicubes.depth-weight must be >= 0, got {self.depth_weight}."),
            (self.empty_weight >= 0,
             f"--flexicubes.empty-weight must be >= 0, got {self.empty_weight}."),
            (self.depth in ("level", "rendered"),
             f"--flexicubes.depth must be level or rendered, got {self.depth!r}."),
            (self.init in ("carve", "sphere"),
             f"--flexicubes.init must be carve or sphere, got {self.init!r}."),
            (self.max_size is None or self.max_size >= 8,
             f"--flexicubes.max-size must be at least 8 pixels, got {self.max_size}."),
        ])


__all__ = ["FlexiCubesExtractOptions", "SugarOptions", "TsdfOptions", "ViewOptions"]
