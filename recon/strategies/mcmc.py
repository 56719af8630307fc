"""3DGS-MCMC: the splats are samples of a distribution, moved by noisy gradient steps (SGLD).

There is no clone/split/prune. Every ``refine_every`` steps in the window, dead Gaussians (opacity
≤ ``min_opacity``) are relocated onto live ones sampled ∝ opacity, with opacity and scale corrected
so the copies render like the original (``ops.relocation_correction``), and the set grows by 5 %
up to ``cap_max`` the same way. After every step the means get position noise shaped by each
covariance and gated to transparent splats. The opacity and scale L1 terms that make unhelpful
splats fade (and so get relocated) are part of the loss: see :meth:`MCMCStrategy.regularization`.

torch is imported inside the methods so this settings class stays importable without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from recon.strategies.base import Strategy

if TYPE_CHECKING:
    import torch

    from recon.render import RenderResult

GROWTH_DIVISOR = 20
"""Each growth step adds ⌊N / 20⌋ Gaussians (5 %; integer maths, so no float rounding)."""


@dataclass
class MCMCStrategy(Strategy):
    """Relocation + 5 % growth to a cap + SGLD position noise (3DGS-MCMC, gsplat's defaults)."""

    cap_max: int = 1_000_000
    """Never grow beyond this many Gaussians."""
    noise_lr: float = 5e5
    """Noise scale: the means' current learning rate × this multiplies Σ η."""
    refine_start_iter: int = 500
    """Relocate and grow only after this step."""
    refine_stop_iter: int = 25_000
    """... and before this step (noise continues after it)."""
    refine_every: int = 100
    """Relocate and grow every this many steps."""
    min_opacity: float = 0.005
    """Gaussians at or below this opacity are dead and get relocated; copies never start below."""
    opacity_reg: float = 0.01
    """Weight of the opacity L1 term, mean(sigmoid(opacity logits)); added to the loss by the
    trainer through :meth:`regularization` (3DGS-MCMC uses 0.01; 0.001 for Deep Blending)."""
    scale_reg: float = 0.01
    """Weight of the scale L1 term, mean(exp(log scales)); added with :meth:`regularization`."""

    def regularization(self, params: torch.nn.ParameterDict) -> torch.Tensor:
        """opacity_reg · mean(opacity) + scale_reg · mean(scale): the term the trainer adds to
        the photometric loss (opacities and scales are positive, so these are L1 norms)."""
        import torch

        return (self.opacity_reg * torch.sigmoid(params["opacities"]).mean()
                + self.scale_reg * params["scales"].exp().mean())

    def step_pre_backward(self, params: torch.nn.ParameterDict,
                          optimizers: dict[str, torch.optim.Optimizer], state: dict, step: int,
                          info: RenderResult) -> None:
        """Nothing: MCMC does not read screen-space gradients."""

    def step_post_backward(self, params: torch.nn.ParameterDict,
                           optimizers: dict[str, torch.optim.Optimizer], state: dict, step: int,
                           info: RenderResult, lr: float | None = None) -> None:
        """Relocate and grow on refinement steps, then add position noise. ``lr`` is the means'
        current learning rate; None reads it from ``optimizers["means"]``."""
        import torch

        from recon.strategies import ops

        if (self.refine_start_iter < step < self.refine_stop_iter
                and step % self.refine_every == 0):
            dead = torch.sigmoid(params["opacities"].detach()) <= self.min_opacity
            ops.relocate(params, optimizers, dead, self.min_opacity)
            ops.sample_add(params, optimizers, self.growth(len(params["means"])),
                           self.min_opacity)
        if lr is None:
            lr = optimizers["means"].param_groups[0]["lr"]
        ops.inject_noise(params, lr * self.noise_lr)

    def growth(self, count: int) -> int:
        """How many Gaussians one growth step adds to ``count``: 5 %, never beyond ``cap_max``."""
        return max(0, min(self.cap_max, count + count // GROWTH_DIVISOR) - count)


__all__ = ["MCMCStrategy"]
