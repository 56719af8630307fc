"""Settings of the ``--reg`` regularizers (torch-free, so the fit config embeds them).

Each field's docstring is its ``--help`` text. Schedules are fractions of ``--steps`` so that a
run of the paper's length (SuGaR's coarse stage: 15k steps) lands on the paper's step numbers and a
short CPU run keeps the same proportions.
"""

from __future__ import annotations

from dataclasses import dataclass

from recon.errors import raise_first


@dataclass(frozen=True)
class SurfaceOptions:
    """Surface alignment (SuGaR): opacity entropy, pruning, then ideal-SDF and normal terms."""

    entropy_start: float = 7 / 15
    """Fraction of the steps after which densification stops and the opacity entropy term
    -o log o - (1-o) log(1-o) pushes opacities to 0 or 1 (SuGaR: step 7k of 15k)."""
    prune_at: float = 9 / 15
    """Fraction of the steps at which Gaussians with opacity below ``prune_opacity`` are removed,
    the entropy term ends and the surface terms start (SuGaR: step 9k of 15k)."""
    entropy_weight: float = 0.1
    """Weight of the opacity entropy term."""
    prune_opacity: float = 0.5
    """Opacity threshold of the pruning step."""
    sdf_weight: float = 0.2
    """Weight of |ideal SDF (from the splat density) - SDF estimated from the rendered depth|."""
    normal_weight: float = 0.2
    """Weight of |splat normal - density-weighted normal of its neighbours|²."""
    num_samples: int = 5_000
    """Points sampled from the visible Gaussians per step (SuGaR: 1M on a GPU; the loss is a
    mean, so fewer samples only make it noisier; 5k cost ~0.2 s per CPU step)."""
    sample_std: float = 1.5
    """Samples are drawn from N(μ, (this × scales)²) of their Gaussian."""
    neighbors: int = 16
    """The density at a sample sums over this many nearest Gaussians of its own Gaussian."""
    knn_every: int = 500
    """Recompute the nearest-neighbour lists every this many steps."""
    sdf_scale: float = 0.1
    """SDF errors are divided by this × the scene scale (SuGaR: a tenth of the camera extent)."""
    depth_band: float = 0.05
    """Samples farther than this × the scene scale from the rendered depth along their ray are
    skipped: they belong to surfaces hidden behind the visible one."""

    def validate(self) -> None:
        checks = [
            (0.0 <= self.entropy_start <= self.prune_at <= 1.0 and self.prune_at > 0.0,
             "--surface.entropy-start and --surface.prune-at must satisfy 0 <= start <= prune <= 1 "
             f"and prune > 0 (fractions of --steps), got {self.entropy_start} and "
             f"{self.prune_at}."),
            (0.0 < self.prune_opacity < 1.0,
             f"--surface.prune-opacity must be in (0, 1), got {self.prune_opacity}."),
            (self.num_samples >= 1, f"--surface.num-samples must be >= 1, got {self.num_samples}."),
            (self.neighbors >= 1, f"--surface.neighbors must be >= 1, got {self.neighbors}."),
            (self.knn_every >= 1, f"--surface.knn-every must be >= 1, got {self.knn_every}."),
            (self.sample_std > 0 and self.sdf_scale > 0 and self.depth_band > 0,
             "--surface.sample-std, --surface.sdf-scale and --surface.depth-band must be "
             "positive."),
        ]
        raise_first(checks)


@dataclass(frozen=True)
class CoherenceOptions:
    """Coherent per-pixel Gaussians for 2-8 input views (CoherentGS, without monocular depth)."""

    stride: int = 1
    """One Gaussian per stride × stride pixel block of every training view (CoherentGS: 1)."""
    segments: int = 5
    """Depth layers of the initial depth; each has its own decoder channel, so depth may jump
    between layers (CoherentGS: 5)."""
    depth_range: float = 0.3
    """Largest depth offset the decoder can add, × the scene scale (tanh-bounded)."""
    opacity_range: float = 4.0
    """Largest opacity-logit offset the opacity decoder can add (tanh-bounded)."""
    init_opacity: float = 0.5
    """Initial opacity (CoherentGS: 0.6 / 0.5 / 0.35 for 2 / 3 / 4 views)."""
    scale_factor: float = 1.2
    """Isotropic scale = this × the pixel footprint at the Gaussian's depth."""
    scale_reset_every: int = 100
    """Reset the scales to the footprint rule every this many steps (CoherentGS: 100)."""
    decoder_lr: float = 1e-3
    """Adam learning rate of the depth and opacity decoders."""
    code_channels: int = 8
    """Channels of each view's fixed latent code (at 1/8 of the image size)."""
    width: int = 16
    """Feature channels of the decoders' hidden layers."""
    tv_weight: float = 5.0
    """Weight of the total variation of the rendered disparity 1 / (depth + 1)."""
    consistency_weight: float = 0.01
    """Weight of the multi-view term: L1 distance (/ scene scale) between the 3D points of SIFT
    matches (CoherentGS uses flow with an effective weight of 0.01)."""
    max_matches: int = 4000
    """Keep at most this many matches per image pair (the best-scoring are not known, so a
    seeded random subset)."""

    def validate(self) -> None:
        checks = [
            (self.stride >= 1, f"--coherence.stride must be >= 1, got {self.stride}."),
            (self.segments >= 1, f"--coherence.segments must be >= 1, got {self.segments}."),
            (0.0 < self.init_opacity < 1.0,
             f"--coherence.init-opacity must be in (0, 1), got {self.init_opacity}."),
            (self.scale_reset_every >= 1,
             f"--coherence.scale-reset-every must be >= 1, got {self.scale_reset_every}."),
            (self.code_channels >= 1 and self.width >= 1,
             "--coherence.code-channels and --coherence.width must be >= 1."),
            (self.depth_range > 0 and self.scale_factor > 0 and self.decoder_lr > 0,
             "--coherence.depth-range, --coherence.scale-factor and --coherence.decoder-lr must "
             "be positive."),
        ]
        raise_first(checks)


@dataclass(frozen=True)
class ConnectivityOptions:
    """Soft connectivity forces of a triangle soup (Radiant Triangle Soup): edges of different
    triangles that nearly coincide are paired, and the term pulls their endpoints together and
    turns the two faces parallel. The paper gives no weights or radii; these are recon's."""

    every: int = 100
    """Re-pair the edges every this many steps (and after every densification edit)."""
    neighbors: int = 8
    """Candidate partners of an edge: this many nearest edge midpoints."""
    tolerance: float = 0.3
    """Pair two edges when both matched endpoint pairs lie within this × their mean length."""
    pull_weight: float = 1.0
    """Weight of the mean squared endpoint gap, divided by the pair's squared edge length."""
    normal_weight: float = 0.1
    """Weight of the mean 1 − |n_a · n_b| over the paired faces. (Chosen on spot, 1000 steps,
    welded at 0.1: open edges 6,730 -> 4,305 and Chamfer 1.68 -> 1.72 %, against 0.1 / 0.01:
    weaker, and 10 / 0.1 at τ 0.5: 3,813 edges but 2.05 %; lego_100 3000 steps: 28.33 dB,
    28.44 with 0.1 / 0.01.)"""

    def validate(self) -> None:
        checks = [
            (self.every >= 1 and self.neighbors >= 2,
             f"--connectivity.every must be >= 1 and --connectivity.neighbors >= 2, got "
             f"{self.every} and {self.neighbors}."),
            (self.tolerance > 0,
             f"--connectivity.tolerance must be positive, got {self.tolerance}."),
            (self.pull_weight >= 0 and self.normal_weight >= 0,
             "--connectivity.pull-weight and --connectivity.normal-weight must be >= 0."),
        ]
        raise_first(checks)


__all__ = ["CoherenceOptions", "ConnectivityOptions", "SurfaceOptions"]
