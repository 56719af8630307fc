"""3DGS-MCMC: the splats are samples of a distribution, moved by noisy gradient steps (SGLD).

There is no clone/split/prune. Every ``refine_every`` steps in the window, dead rows (opacity
≤ ``min_opacity``) are relocated onto live ones sampled ∝ opacity, with the values the model
corrects so the copies render like the original (``Model.relocation_overrides``: opacity and
scale for Gaussians), and the set grows by 5 % up to ``cap_max`` the same way. After every step
the positions get the model's noise (for Gaussians shaped by each covariance and gated to
transparent splats). Every model that is a row set can use it. The opacity and scale L1 terms
that make unhelpful primitives fade (and so get relocated) are part of the loss: see
:meth:`MCMCStrategy.regularization`.

torch is imported inside the methods so this settings class stays importable without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from recon.strategies.base import OPACITY, Strategy

if TYPE_CHECKING:
    import torch

    from recon.models.base import Model
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

    def regularization(self, params: torch.nn.ParameterDict, model: Model) -> torch.Tensor:
        """opacity_reg · mean(opacity) + scale_reg · the model's mean size: the term the trainer
        adds to the photometric loss (opacities and sizes are positive, so these are L1 norms)."""
        import torch

        return (self.opacity_reg * torch.sigmoid(params[OPACITY]).mean()
                + self.scale_reg * model.scale_penalty(params))

    def step_pre_backward(self, params: torch.nn.ParameterDict,
                          optimizers: dict[str, torch.optim.Optimizer], state: dict, step: int,
                          info: RenderResult) -> None:
        """Nothing: MCMC does not read screen-space gradients."""

    def step_post_backward(self, params: torch.nn.ParameterDict,
                           optimizers: dict[str, torch.optim.Optimizer], state: dict, step: int,
                           info: RenderResult, model: Model, lr: float | None = None) -> None:
        """Relocate and grow on refinement steps, then add position noise. ``lr`` is the
        positions' current learning rate; None reads it from their optimizer."""
        import torch

        from recon.strategies import ops

        if (self.refine_start_iter < step < self.refine_stop_iter
                and step % self.refine_every == 0):
            dead = torch.sigmoid(params[OPACITY].detach()) <= self.min_opacity
            ops.relocate(params, optimizers, dead, model, self.min_opacity)
            ops.sample_add(params, optimizers, self.growth(ops.num_rows(params)), model,
                           self.min_opacity)
        if lr is None:
            lr = optimizers[model.position].param_groups[0]["lr"]
        ops.inject_noise(params, model, lr * self.noise_lr)

    def growth(self, count: int) -> int:
        """How many Gaussians one growth step adds to ``count``: 5 %, never beyond ``cap_max``."""
        return max(0, min(self.cap_max, count + count // GROWTH_DIVISOR) - count)


__all__ = ["MCMCStrategy"]
