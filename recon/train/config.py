"""Typed configuration of `recon fit` (torch-free, so the CLI parses it without loading torch).

Nested frozen dataclasses; each field's docstring is its ``--help`` text. :data:`PRESETS` holds
one complete :class:`FitConfig` per ``--preset`` (with ``data`` left for the command line), e.g.
``tyro.cli(FitConfig, default=PRESETS["fast"])``. Defaults follow gsplat's ``simple_trainer``
(learning rates, loss weights) unless a comment says why not; the strategy settings are the
strategy dataclasses themselves (``recon.strategies``, also torch-free).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from recon.errors import ReconError, raise_first
from recon.models.options import ConvexOptions, FlexiCubesOptions, TriangleOptions
from recon.regularizers import CoherenceOptions, ConnectivityOptions, RegName, SurfaceOptions
from recon.strategies import DefaultStrategy, MCMCStrategy
from recon.strategies.triangle_rounds import TriangleRoundsStrategy

Backend = Literal["auto", "cpu", "cuda", "torch", "gsplat"]
StrategyName = Literal["default", "mcmc"]
ModelName = Literal["gaussians", "convexes", "triangles", "flexicubes"]  # recon.models.MODEL_NAMES


@dataclass(frozen=True)
class DataOptions:
    """How the dataset is read."""

    downscale: int = 1
    """Integer downscale factor; an existing images_N folder is used when there is one."""
    max_size: int | None = None
    """Downscale further so the longer image side is at most this many pixels."""
    background: Literal["white", "black", "random"] = "white"
    """Background behind images with alpha: fixed white/black, or a random colour per step
    (the render and the ground truth share it, so transparent regions learn zero opacity)."""
    test_every: int = 8
    """Every N-th image is held out for testing unless the dataset declares a split."""

    def to_data_config(self):
        """The loaders' DataConfig (a "random" background is the trainer's business)."""
        from recon.data import DataConfig

        return DataConfig(downscale=self.downscale, max_size=self.max_size,
                          background=self.background, test_every=self.test_every)


@dataclass(frozen=True)
class InitOptions:
    """Where the model starts (scale and opacity: the Gaussians')."""

    source: Literal["auto", "sfm", "random"] = "auto"
    """auto: the dataset's sparse points when it has any, else random; sfm: require points."""
    num_random: int = 20_000
    """Number of random Gaussians (gsplat uses 100k on GPUs; 20k keeps CPU steps fast and the
    strategy grows what the scene needs)."""
    random_extent: float = 1.0
    """Half-width of the random cube, in units of the field of view's half-width at the point
    the cameras look at (1: the cube just fills the images)."""
    scale: float | None = None
    """Initial scale = mean 3-NN distance × this (None: 1.0 for default, 0.1 for mcmc)."""
    opacity: float | None = None
    """Initial opacity (None: 0.1 for default, 0.5 for mcmc, as gsplat)."""
    far_points: int = 0
    """Points on a far sphere around the cameras, where they look, coloured from the photos: the
    sky and distant background of unbounded captures (streets, landscapes). 0: none."""
    far_radius: float = 10.0
    """Radius of that sphere in units of the cameras' spread (pushed out behind the scene's
    points when they reach further)."""


@dataclass(frozen=True)
class OptimOptions:
    """Adam settings; the learning rates are the Gaussians' (one optimizer per parameter,
    gsplat's values)."""

    means_lr: float = 1.6e-4
    """Position learning rate, multiplied by the scene scale."""
    means_lr_final: float = 0.01
    """The position learning rate decays exponentially to this fraction of itself by the end."""
    scales_lr: float = 5e-3
    """Log-scale learning rate."""
    opacities_lr: float = 5e-2
    """Opacity-logit learning rate."""
    quats_lr: float = 1e-3
    """Rotation learning rate."""
    sh0_lr: float = 2.5e-3
    """DC colour learning rate."""
    shN_lr: float = 2.5e-3 / 20
    """Higher SH bands learning rate."""
    appearance_lr: float = 1e-3
    """Learning rate of the per-image colour transforms (--appearance)."""
    eps: float = 1e-15
    """Adam epsilon (tiny, as 3DGS: gradients of far-away splats are tiny too)."""
    scene_scale_factor: float = 1.1
    """Scene scale = this × the largest camera distance from the cameras' centroid."""


@dataclass(frozen=True)
class FitConfig:
    """Fit a scene model to posed images (or to a folder of photos, posed by SfM first)."""

    data: tyro.conf.Positional[Path]
    """A dataset any recon loader reads, or a folder of photos (SfM runs once, into RUN/sfm)."""
    out: Path = Path("runs/fit")
    """Run directory (config.yaml, checkpoints/, metrics.jsonl, ...)."""
    model: ModelName = "gaussians"
    """Scene representation: gaussians (3DGS splats), convexes (3D Convex Splatting) or
    triangles (a soup of soft triangles, Triangle Splatting; --strategy mcmc) or flexicubes (a
    mesh extracted from an SDF grid; objects with masks)."""
    steps: int = 7000
    """Number of optimisation steps (each on --batch-size random training images)."""
    batch_size: int = 1
    """Training images per step, rendered in one call over their cameras; the loss is their
    mean. Above 1 every learning rate is scaled by √B and Adam's betas become 1 - B(1 - β)
    (gsplat's batch rule), so a run of S steps sees B·S images."""
    distributed: bool = False
    """Join the torch.distributed process group torchrun describes (automatic when torchrun
    starts more than one process): each of N ranks renders B/N images of every step and the
    gradients are averaged (gloo on CPUs, NCCL on GPUs, one GPU per rank by LOCAL_RANK)."""
    seed: int = 0
    """Random seed: the same seed and device give the same result."""
    backend: Backend = "auto"
    """Renderer: auto (cuda on a GPU, else cpu), cpu / cuda (recon's kernels), torch (dense
    reference, tiny images only), gsplat (gsplat's CUDA rasterizer; needs a CUDA GPU)."""
    strategy: StrategyName = "default"
    """Densification policy: default (the model's own: 3DGS clone/split/prune, 3DCS split into
    K) or mcmc (relocation, capped)."""
    default_strategy: DefaultStrategy = field(default_factory=DefaultStrategy)
    """Settings of --strategy default."""
    mcmc: MCMCStrategy = field(default_factory=MCMCStrategy)
    """Settings of --strategy mcmc."""
    reg: RegName = "none"
    """Extra regularizer: surface (SuGaR alignment, for meshing; stops the strategy when its
    entropy phase starts), coherence (per-pixel Gaussians for 2-8 views; replaces the strategy
    and the initialisation), connectivity (soft forces joining the edges of a triangle soup), or
    none."""
    convexes: ConvexOptions = field(default_factory=ConvexOptions)
    """Settings of --model convexes (initialisation, learning rates, 3DCS densification)."""
    triangles: TriangleOptions = field(default_factory=TriangleOptions)
    """Settings of --model triangles (initialisation, learning rates, densification rounds)."""
    flexicubes: FlexiCubesOptions = field(default_factory=FlexiCubesOptions)
    """Settings of --model flexicubes (grid, initial sphere, learning rates, loss weights)."""
    surface: SurfaceOptions = field(default_factory=SurfaceOptions)
    """Settings of --reg surface."""
    coherence: CoherenceOptions = field(default_factory=CoherenceOptions)
    """Settings of --reg coherence."""
    connectivity: ConnectivityOptions = field(default_factory=ConnectivityOptions)
    """Settings of --reg connectivity."""
    data_options: Annotated[DataOptions, tyro.conf.arg(name="data")] = field(
        default_factory=DataOptions)
    """How the dataset is read: --data.downscale, --data.max-size, ... (the same options as
    every other command that reads a dataset)."""
    init: InitOptions = field(default_factory=InitOptions)
    optim: OptimOptions = field(default_factory=OptimOptions)
    max_sh_degree: int = 3
    """Highest spherical-harmonic degree of the colours."""
    sh_degree_interval: int = 1000
    """Raise the active SH degree by one every this many steps."""
    ssim_lambda: float = 0.2
    """Loss = (1 - λ) L1 + λ (1 - SSIM)."""
    coverage_weight: float = 0.0
    """Weight of the mean uncovered fraction (1 - alpha) of training images that have no alpha:
    a photo has no background, every pixel is some surface, so nothing may stay translucent
    where the sky matches the training background (with --init.far-points, what --preset
    unbounded sets; 0: off)."""
    eps2d: float = 0.3
    """Screen-space dilation of every footprint (pixels²)."""
    appearance: bool = False
    """Learn an affine colour transform per training image (exposure and white balance that
    change from photo to photo); test images are scored without one (recon.train.appearance)."""
    antialiased: bool = False
    """Mip-Splatting opacity compensation for the dilation."""
    log_every: int = 50
    """Append to metrics.jsonl every this many steps."""
    checkpoint_every: int = 1000
    """Save a checkpoint every this many steps (also on Ctrl-C/SIGTERM and at the end)."""
    keep_checkpoints: int = 2
    """Keep only the newest this many checkpoints (0: keep all)."""
    resume: bool = False
    """Continue the run in --out from its newest checkpoint, with its saved config."""
    force: bool = False
    """Replace an existing run directory."""
    quiet: bool = False
    """No progress bar."""
    viewer: bool = False
    """Watch the fit in the web viewer (its URL is printed; it stays open after the last step
    when run from a terminal, until Ctrl-C)."""
    viewer_host: str = "127.0.0.1"
    """Address the viewer binds; anything but loopback exposes it (no authentication)."""
    viewer_port: int = 8080
    """Viewer port (the next free one when it is busy)."""

    def build_strategy(self):
        """A fresh strategy object with the selected strategy's settings (``default`` is the
        model's own densification)."""
        if self.model == "triangles":  # its only strategy, mcmc: Triangle Splatting's rounds
            chosen = self.triangles.densify
        elif self.model == "flexicubes":  # its own: the grid's coarse-to-fine schedule
            chosen = self.flexicubes.schedule
        elif self.strategy == "mcmc":
            chosen = self.mcmc
        else:
            chosen = self.convexes.densify if self.model == "convexes" else self.default_strategy
        return dataclasses.replace(chosen)

    def reg_options(self) -> SurfaceOptions | CoherenceOptions | ConnectivityOptions | None:
        """The settings of the selected regularizer (None for --reg none)."""
        return {"surface": self.surface, "coherence": self.coherence,
                "connectivity": self.connectivity}.get(self.reg)

    def init_scale(self) -> float:
        if self.init.scale is not None:
            return self.init.scale
        return 0.1 if self.strategy == "mcmc" else 1.0

    def init_opacity(self) -> float:
        if self.init.opacity is not None:
            return self.init.opacity
        return 0.5 if self.strategy == "mcmc" else 0.1

    def validate(self) -> None:
        """Reject settings that cannot work, with what to change."""
        checks = [
            (self.steps >= 1, f"--steps must be at least 1, got {self.steps}."),
            (self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}."),
            (not (self.viewer and (self.distributed or int(os.environ.get("WORLD_SIZE", "1")) > 1)),
             "--viewer watches a one-process fit; under torchrun, fit without it and open the "
             "run with `recon view` afterwards."),
            (self.log_every >= 1, f"--log-every must be at least 1, got {self.log_every}."),
            (self.checkpoint_every >= 1,
             f"--checkpoint-every must be at least 1, got {self.checkpoint_every}."),
            (0 <= self.max_sh_degree <= 3,
             f"--max-sh-degree must be 0..3, got {self.max_sh_degree}."),
            (self.sh_degree_interval >= 1,
             f"--sh-degree-interval must be at least 1, got {self.sh_degree_interval}."),
            (0.0 <= self.ssim_lambda <= 1.0,
             f"--ssim-lambda must be in [0, 1], got {self.ssim_lambda}."),
            (self.coverage_weight >= 0.0,
             f"--coverage-weight must be 0 or more, got {self.coverage_weight}."),
            (0.0 < self.init_opacity() < 1.0,
             f"--init.opacity must be in (0, 1), got {self.init_opacity()}."),
            (self.init_scale() > 0.0, f"--init.scale must be positive, got {self.init_scale()}."),
            (self.init.num_random >= 1,
             f"--init.num-random must be at least 1, got {self.init.num_random}."),
            (self.init.far_points >= 0,
             f"--init.far-points must be 0 or more, got {self.init.far_points}."),
            (self.init.far_radius > 1.0,
             f"--init.far-radius must be above 1 (outside the cameras), got {self.init.far_radius}."),
            (self.data_options.downscale >= 1,
             f"--data.downscale must be at least 1, got {self.data_options.downscale}."),
        ]
        raise_first(checks)
        from recon.models import model_class

        model_class(self.model).check_supported(self.strategy, self.reg)
        if self.model == "convexes":
            self.convexes.validate()
        if self.model == "triangles":
            self.triangles.validate()
        if self.model == "flexicubes":
            self.flexicubes.validate()
        if self.reg_options() is not None:
            self.reg_options().validate()


def _preset(**changes: Any) -> FitConfig:
    return dataclasses.replace(FitConfig(data=tyro.MISSING), **changes)


PRESETS: dict[str, FitConfig] = {
    # Minutes on a laptop CPU (the demo: 64 views at 256², 1000 steps, ~2 min on 2 cores). MCMC
    # with a cap keeps steps cheap; densification starts twice as early and runs twice as often.
    # View-dependent colour is what a short run lacks most: gsplat's higher-band learning rate
    # (sh0/20) and one band per 1000 steps suit 30k steps, so here a band opens every 200 steps
    # and the bands learn as fast as the DC term. On lego_100 (3000 steps, 30k cap, one thread)
    # the test PSNR went from 27.41 dB to 28.31 with the bands at sh0/2 and 28.56 at sh0, at
    # the same cost per step.
    # Convexes (fit them with --strategy default, 3DCS's split: from the random start it prunes
    # to a few thousand and splits where σ's gradient is high) learn opacity at the Gaussians'
    # rate instead of 3DCS's 0.01, a 30k-step setting: on lego_100 at 1000 steps (MCMC, one
    # thread) 24.67 -> 26.35 dB test PSNR; with the bands at the DC rate, 3000 steps of
    # --strategy default reach 28.95 dB.
    # Triangles: the bands at the DC rate too (lego_100, 1500 steps, one thread: 26.58 -> 27.35 dB
    # at a corner rate of 0.001, 25.88 -> 26.87 at 0.0005); Triangle Splatting's rounds every 200
    # steps from 250 (3000 steps: 27.63 dB at step 2000 with rounds every 100, 28.05 every 200;
    # opacity at the Gaussians' rate 0.05 instead of 0.014: 26.95).
    "fast": _preset(steps=1000, strategy="mcmc", sh_degree_interval=200,
                    optim=OptimOptions(shN_lr=2.5e-3),
                    mcmc=MCMCStrategy(cap_max=30_000, refine_start_iter=250, refine_every=50),
                    convexes=ConvexOptions(opacities_lr=0.05, shN_lr=2.5e-3),
                    triangles=TriangleOptions(shN_lr=2.5e-3, densify=TriangleRoundsStrategy(
                        cap_max=30_000, refine_start_iter=250, refine_every=200, views_from=500)),
                    checkpoint_every=500),
    "default": _preset(),
    # gsplat's full schedule (30k steps, 100k random points); best on a GPU.
    "quality": _preset(steps=30_000, init=InitOptions(num_random=100_000),
                       checkpoint_every=7000),
}
# Gaussians for meshing: the fast preset with SuGaR's surface alignment, antialiased splats (no
# 2D dilation fattening the silhouettes) and means that keep moving (lr 2x, decaying to 0.1x, not
# 0.01x): the settings bench/meshes.py scores (its FIT_ARGS with --reg surface).
PRESETS["mesh"] = dataclasses.replace(
    PRESETS["fast"], reg="surface", antialiased=True,
    optim=dataclasses.replace(PRESETS["fast"].optim, means_lr=3.2e-4, means_lr_final=0.1))
# Unbounded captures (streets, landscapes): the fast preset with a far layer for the sky and
# every photo pixel asked to be covered, so no sky stays translucent over the training
# background (bench/photos.py on lund: see the README's table).
PRESETS["unbounded"] = dataclasses.replace(
    PRESETS["fast"], coverage_weight=1.0, init=dataclasses.replace(PRESETS["fast"].init,
                                                                   far_points=3000))
"""Named starting points for ``--preset``; ``data`` is tyro.MISSING (given on the command line)."""


def to_dict(config: FitConfig) -> dict:
    """Plain data (str paths) for config.yaml and checkpoints."""

    def plain(value):
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def from_dict(data: dict) -> FitConfig:
    """Inverse of :func:`to_dict`; unknown keys are an error (a config from another version)."""
    return _build(FitConfig, data)


def _build(cls, data: dict):
    import typing

    hints = typing.get_type_hints(cls)  # Annotated[...] stripped to the type
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ReconError(f"Unknown {cls.__name__} setting(s) {', '.join(unknown)} in the saved "
                         "config; it was written by another recon version. Start a new run.")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            value = _build(hint, value)
        elif name in ("data", "out"):
            value = Path(value)
        kwargs[name] = value
    return cls(**kwargs)


__all__ = ["Backend", "DataOptions", "FitConfig", "InitOptions", "ModelName", "OptimOptions",
           "PRESETS", "StrategyName", "from_dict", "to_dict"]
