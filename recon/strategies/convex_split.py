"""3D Convex Splatting's densification (``--model convexes --strategy default``).

Always split, never clone: every ``refine_every`` steps in the window, a convex whose mean
accumulated |∂L/∂σ| (over the steps it was visible) reaches ``grow_grad`` becomes K children, one
per point of the parent, each shrunk about its point (``ConvexModel.split``). Convexes are pruned
when transparent (opacity < ``prune_opa``), masked out (sigmoid(mask) ≤ ``prune_mask``) or, after
the first opacity reset, larger than ``prune_size`` × the scene scale; every ``reset_every``
steps every opacity is clamped to ``reset_opacity``. Pruning goes on every ``prune_every`` steps
after the window. Thresholds are 3DCS's (``arguments/__init__.py``) where the run is long;
their counterparts for short CPU runs are in the ``fast`` preset.

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


@dataclass
class ConvexSplitStrategy(Strategy):
    """Split into K / prune / opacity reset (3DCS)."""

    grow_grad: float = 2.5e-5
    """Split convexes whose mean |∂L/∂σ| per visible step exceeds this (3DCS's default)."""
    refine_start_iter: int = 500
    """Split only after this step."""
    refine_stop_iter: int = 9000
    """... and before this step (pruning goes on)."""
    refine_every: int = 200
    """Split and prune every this many steps in the window."""
    prune_every: int = 1000
    """Prune every this many steps after the window."""
    cap_max: int = 1_000_000
    """Never split beyond this many convexes (the highest-gradient ones split first)."""
    prune_opa: float = 0.03
    """Prune convexes whose opacity falls below this."""
    prune_mask: float = 0.01
    """Prune convexes whose mask (sigmoid of the mask logit) is at most this."""
    prune_size: float = 0.3
    """After the first opacity reset, prune convexes larger than this × scene_scale."""
    reset_every: int = 3000
    """Clamp every opacity to ``reset_opacity`` every this many steps (until refine_stop_iter)."""
    reset_opacity: float = 0.2
    """The opacity of the reset."""

    def initialize_state(self, scene_scale: float = 1.0) -> dict:
        """Besides scene_scale: per-convex |∂L/∂σ| sums and visible-step counts (created on the
        first step)."""
        return {**super().initialize_state(scene_scale), "sigma_grad": None, "count": None}

    def step_pre_backward(self, params, optimizers, state, step, info) -> None:
        """Nothing to keep: the σ gradient is read from the model after backward."""

    def step_post_backward(self, params: torch.nn.ParameterDict,
                           optimizers: dict[str, torch.optim.Optimizer], state: dict, step: int,
                           info: RenderResult, model: Model, lr: float | None = None) -> None:
        """Accumulate |∂L/∂σ|, split and prune on refinement steps, prune after the window, and
        reset the opacities."""
        from recon.strategies import ops

        in_window = step < self.refine_stop_iter
        if in_window:
            self._accumulate(params, state, info, model)
        if in_window and step > self.refine_start_iter and step % self.refine_every == 0:
            self._split(params, optimizers, state, model)
            self._prune(params, optimizers, state, step, model)
            state["sigma_grad"].zero_()
            state["count"].zero_()
        elif not in_window and step % self.prune_every == 0:
            self._prune(params, optimizers, state, step, model)
        if in_window and step % self.reset_every == 0 and step > 0:
            ops.reset_opacity(params, optimizers, self.reset_opacity)

    def _accumulate(self, params, state: dict, info: RenderResult, model: Model) -> None:
        import torch

        from recon.strategies import ops

        if state["sigma_grad"] is None:
            n = ops.num_rows(params)
            state["sigma_grad"] = torch.zeros(n, device=params[OPACITY].device)
            state["count"] = torch.zeros(n, device=params[OPACITY].device)
        grad = model.densification_signal(params)
        if grad is None:
            return
        seen = (info.radii > 0).any(0)
        state["sigma_grad"] += torch.where(seen, grad.abs(), 0.0).to(state["sigma_grad"].dtype)
        state["count"] += seen.to(state["count"].dtype)

    def _split(self, params, optimizers, state: dict, model: Model) -> int:
        import torch

        from recon.strategies import ops

        mean_grad = state["sigma_grad"] / state["count"].clamp_min(1.0)
        high = mean_grad >= self.grow_grad
        n = ops.num_rows(params)
        children = model.children_per_split(params)
        room = max(0, (self.cap_max - n) // max(children - 1, 1))
        if int(high.sum()) > room:  # keep the highest gradients under the cap
            keep = torch.topk(torch.where(high, mean_grad, -1.0), room).indices
            high = torch.zeros_like(high)
            high[keep] = True
        return ops.split(params, optimizers, high, model, state=state)

    def _prune(self, params, optimizers, state: dict, step: int, model: Model) -> int:
        import torch

        from recon.strategies import ops

        prune = torch.sigmoid(params[OPACITY].detach()) < self.prune_opa
        prune |= model.masked_out(params, self.prune_mask)
        if step > self.reset_every:
            prune |= model.sizes(params) > self.prune_size * state["scene_scale"]
        if bool(prune.all()):  # never prune the scene away entirely
            return 0
        return ops.remove(params, optimizers, prune, state)


__all__ = ["ConvexSplitStrategy"]
