"""Settings of the models beyond Gaussians (torch-free: ``FitConfig`` nests them).

The Gaussian model's settings are the config's ``init`` and ``optim`` (gsplat's names, which
`recon fit` has always had).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from recon.errors import raise_first
from recon.strategies.convex_split import ConvexSplitStrategy
from recon.strategies.grid_schedule import GridSchedule
from recon.strategies.triangle_rounds import TriangleRoundsStrategy


@dataclass(frozen=True)
class ConvexOptions:
    """Smooth convexes (3D Convex Splatting): initialisation, learning rates, loss, densification.

    Defaults are the 3DCS paper's and code's unless a comment says otherwise.
    """

    points: int = 6
    """Points per convex K (3..8; 3DCS: 6 beats 3-5 and equals 7)."""
    size: float = 1.2
    """Initial radius of the points' Fibonacci sphere = this × the mean 3-NN distance."""
    delta: float = 0.1
    """Initial smoothness δ₀ before dividing by the local point spacing (δ = δ₀ / spacing)."""
    sigma: float = 0.00095
    """Initial sharpness σ₀."""
    opacity: float = 0.1
    """Initial opacity."""
    points_lr: float = 5e-4
    """Point learning rate (× the scene scale), decaying exponentially..."""
    points_lr_final: float = 0.01
    """... to this fraction of itself by the last step (3DCS: 5e-4 -> 5e-6)."""
    delta_lr: float = 0.005
    """log δ learning rate."""
    sigma_lr: float = 0.0045
    """log σ learning rate."""
    opacities_lr: float = 0.01
    """Opacity-logit learning rate."""
    sh0_lr: float = 0.0025
    """DC colour learning rate."""
    shN_lr: float = 0.0025 / 20
    """Higher SH bands learning rate."""
    mask_lr: float = 0.01
    """Mask-logit learning rate."""
    mask_weight: float = 0.0005
    """β of the mask term β·mean(sigmoid(mask)) in the loss (Compact-3DGS's mask, as 3DCS)."""
    densify: ConvexSplitStrategy = field(default_factory=ConvexSplitStrategy)
    """Settings of --strategy default (3DCS's split into K children)."""

    def validate(self) -> None:
        checks = [
            (3 <= self.points <= 8, f"--convexes.points must be 3..8, got {self.points}."),
            (self.size > 0, f"--convexes.size must be positive, got {self.size}."),
            (self.delta > 0 and self.sigma > 0,
             f"--convexes.delta and --convexes.sigma must be positive, got {self.delta} and "
             f"{self.sigma}."),
            (0.0 < self.opacity < 1.0,
             f"--convexes.opacity must be in (0, 1), got {self.opacity}."),
            (self.mask_weight >= 0,
             f"--convexes.mask-weight must be >= 0, got {self.mask_weight}."),
        ]
        raise_first(checks)


@dataclass(frozen=True)
class TriangleOptions:
    """Triangle soups (Triangle Splatting): initialisation and learning rates (the reference's)."""

    size: float = 2.23
    """Corners at this × the mean 3-NN distance from the point, along random directions."""
    sigma: float = 1.16
    """Initial window smoothness σ₀ (0: solid; larger peaks at the incenter)."""
    opacity: float = 0.28
    """Initial opacity."""
    vertices_lr: float = 0.0018
    """Corner learning rate (× the scene scale), decaying exponentially..."""
    vertices_lr_final: float = 0.01
    """... to this fraction of itself by the last step (Triangle Splatting: 1/100)."""
    sigma_lr: float = 0.0008
    """log σ learning rate."""
    opacities_lr: float = 0.014
    """Opacity-logit learning rate."""
    sh0_lr: float = 0.0025
    """DC colour learning rate."""
    shN_lr: float = 0.0025 / 20
    """Higher SH bands learning rate."""
    opacity_weight: float = 0.0055
    """Weight of the opacity L1 term, mean(opacity), in the loss (Triangle Splatting's
    λ_opacity; removing it cost the reference 0.016 LPIPS)."""
    vertex_colors: bool = False
    """One SH colour per corner, interpolated across the triangle by barycentrics (Radiant
    Triangle Soup), instead of one per triangle."""
    size_weight: float = 1e-8
    """λ_size of the term λ_size / mean(area) while densifying (world units; the reference's)."""
    normal_weight: float = 1e-4
    """λ_normal of the normal-consistency term (rendered normals vs the rendered depth's)."""
    normal_start: float = 5 / 30
    """Fraction of the steps after which the normal term is on (the reference: 5k of 30k)."""
    opaque_finish: float = 0.0
    """Fraction of the steps at the end over which σ anneals to 0, transparent triangles are
    pruned and the rest turn opaque, so the soup renders (and exports) as a plain opaque mesh;
    densification stops when it starts. 0: off."""
    weld: float = 0.1
    """Mesh exports merge corners closer than this × the median edge length (spot, finished
    soup: 7,694 open edges at 0.02, 6,730 at 0.1, Chamfer 1.66 / 1.68 %)."""
    densify: TriangleRoundsStrategy = field(default_factory=TriangleRoundsStrategy)
    """Settings of --strategy mcmc (Triangle Splatting's growth rounds)."""

    def validate(self) -> None:
        checks = [
            (self.opacity_weight >= 0,
             f"--triangles.opacity-weight must be >= 0, got {self.opacity_weight}."),
            (self.size > 0 and self.sigma > 0,
             f"--triangles.size and --triangles.sigma must be positive, got {self.size} and "
             f"{self.sigma}."),
            (0.0 < self.opacity < 1.0,
             f"--triangles.opacity must be in (0, 1), got {self.opacity}."),
            (0.0 <= self.opaque_finish < 1.0,
             f"--triangles.opaque-finish must be in [0, 1), got {self.opaque_finish}."),
            (self.weld >= 0, f"--triangles.weld must be >= 0, got {self.weld}."),
            (self.normal_weight >= 0 and self.size_weight >= 0,
             "--triangles.normal-weight and --triangles.size-weight must be >= 0."),
        ]
        raise_first(checks)


@dataclass(frozen=True)
class FlexiCubesOptions:
    """FlexiCubes meshes: the grid, its initial sphere, learning rates and the loss weights
    (the reference's ``examples/optimize.py`` unless a comment says otherwise)."""

    resolution: int = 64
    """Cubes per axis of the SDF grid."""
    extent: float = 1.0
    """The grid's box: this × the half width of the region the cameras look at, around it."""
    radius: float = 0.45
    """The initial sphere's radius as a fraction of the box's half width (0.5 would put grid
    vertices exactly on the surface at even resolutions, where the SDF has no sign)."""
    sdf_lr: float = 0.01
    """SDF learning rate (SDF in units of the box's half width, as the reference's [-1, 1]^3)."""
    deform_lr: float = 0.01
    """Raw deformation learning rate (the reference's)."""
    weights_lr: float = 0.01
    """Raw α, β, γ learning rate (the reference's)."""
    lr_final: float = 0.3
    """The three rates above decay exponentially to this fraction by the last step (the
    reference: 10^(−0.0002 step), 0.63 after its 1000 steps)."""
    sh0_lr: float = 0.01
    """Colour field DC learning rate."""
    shN_lr: float = 0.01 / 20
    """Colour field higher SH bands learning rate."""
    mask_weight: float = 1.0
    """Weight of the mask L1 (rendered coverage vs the image's alpha, where it has one)."""
    depth_weight: float = 10.0
    """Weight of the depth term on the mesh: mean distance from the depth maps' pixels (as
    points) to the mesh, in units of the box's half width."""
    empty_weight: float = 1.0
    """Weight of the empty-space term: mean max(0, -SDF) at points the view sees as empty (on
    background pixels' rays, and before each depth pixel's surface). The masks and depth act on
    the mesh only where it shows: a membrane across a hole (the initial sphere over a torus's)
    covers its pixels whole and gets no gradient from them; this carves it."""
    empty_samples: int = 4096
    """Points of the empty-space term per view (one on each of as many random pixels' rays)."""
    empty_margin: float = 2.0
    """Cells before a depth pixel's surface where the empty space ends."""
    sign_start: float = 0.2
    """L_sign weight at the start ..."""
    sign_end: float = 0.01
    """... falling linearly to this ..."""
    sign_fraction: float = 0.25
    """... over this fraction of the steps."""
    dev_weight: float = 0.5
    """Weight of L_dev (dual vertices away from their crossings' mean)."""
    weights_l1: float = 0.1
    """Weight of the mean |raw α, β, γ| (keeps the weights near plain Dual Marching Cubes)."""
    band: float = 1.0
    """Pixels of the edge ramp outside each rendered face (silhouette gradients)."""
    min_component: float = 0.01
    """The exported (and viewed) mesh drops closed pieces with fewer than this fraction of its
    faces: the specks of a cell or two that sub-pixel coverage leaves in empty space (the object
    scene, 64³ at 128²: 17 such pieces, each of 12-36 faces, 0.07-0.43 units off the surface);
    0 keeps all."""
    schedule: GridSchedule = field(default_factory=GridSchedule)
    """Coarse to fine (e.g. --flexicubes.schedule.upsample-at 0.5: 64³ then 128³)."""

    def validate(self) -> None:
        checks = [
            (self.resolution >= 2, f"--flexicubes.resolution must be at least 2, got "
             f"{self.resolution}."),
            (self.extent > 0 and 0 < self.radius < 1,
             f"--flexicubes.extent must be positive and --flexicubes.radius in (0, 1), got "
             f"{self.extent} and {self.radius}."),
            (self.band > 0, f"--flexicubes.band must be positive, got {self.band}."),
            (0 <= self.min_component < 1,
             f"--flexicubes.min-component must be in [0, 1), got {self.min_component}."),
            (all(0 < f < 1 for f in self.schedule.upsample_at),
             "--flexicubes.schedule.upsample-at takes fractions of the run in (0, 1), got "
             f"{self.schedule.upsample_at}."),
        ]
        raise_first(checks)


__all__ = ["ConvexOptions", "FlexiCubesOptions", "TriangleOptions"]
