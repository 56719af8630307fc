"""3DGS adaptive density control: clone small splats and split large ones where the screen-space
gradient is high, prune transparent (and, after the first reset, huge) ones, and periodically
reset every opacity. Thresholds are gsplat's ``DefaultStrategy`` defaults.

torch is imported inside the methods so this settings class stays importable without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from recon.errors import ReconError
from recon.strategies.base import OPACITY, Strategy

if TYPE_CHECKING:
    import torch

    from recon.models.base import Model
    from recon.render import RenderResult


@dataclass
class DefaultStrategy(Strategy):
    """Clone / split / prune / opacity reset (3DGS, gsplat's thresholds)."""

    prune_opa: float = 0.005
    """Prune Gaussians whose opacity falls below this."""
    grow_grad2d: float = 0.0002
    """Densify where the mean screen-space gradient norm (NDC units) exceeds this."""
    grow_scale3d: float = 0.01
    """Clone when the largest scale is at most this × scene_scale, split when larger."""
    grow_scale2d: float = 0.05
    """Also split when the screen radius exceeds this fraction of the image (only before
    ``refine_scale2d_stop_iter``)."""
    prune_scale3d: float = 0.1
    """After the first opacity reset, prune Gaussians larger than this × scene_scale."""
    prune_scale2d: float = 0.15
    """After the first reset, prune screen radii above this image fraction (only before
    ``refine_scale2d_stop_iter``)."""
    refine_scale2d_stop_iter: int = 0
    """Use the screen-size rules before this step; 0 turns them off (3DGS's screen pruning is
    inert because of a known bug, and gsplat follows it)."""
    refine_start_iter: int = 500
    """Refine only after this step."""
    refine_stop_iter: int = 15_000
    """Stop gathering statistics, refining and resetting at this step."""
    reset_every: int = 3000
    """Reset every opacity to 2 × prune_opa every this many steps."""
    refine_every: int = 100
    """Refine every this many steps."""
    pause_refine_after_reset: int = 0
    """Skip refinement for this many steps after each reset (statistics still accumulate)."""
    absgrad: bool = False
    """Use the per-pixel absolute gradients (AbsGS; render with ``absgrad=True`` on a native
    backend; gsplat pairs this with grow_grad2d = 0.0006)."""
    revised_opacity: bool = False
    """Give split children opacity 1 − √(1 − o) instead of o (arXiv 2404.06109)."""

    def initialize_state(self, scene_scale: float = 1.0) -> dict:
        """Besides scene_scale: per-Gaussian gradient-norm sums, visible-step counts and (for the
        screen rules) max screen radius, created on the first step."""
        return {**super().initialize_state(scene_scale), "grad2d": None, "count": None,
                "radii": None}

    def step_post_backward(self, params: torch.nn.ParameterDict,
                           optimizers: dict[str, torch.optim.Optimizer], state: dict, step: int,
                           info: RenderResult, model: Model, lr: float | None = None) -> None:
        """Accumulate the gradient statistic; refine every ``refine_every`` steps in the window;
        reset opacities every ``reset_every`` steps. ``lr`` is unused (MCMC needs it)."""
        from recon.strategies import ops

        if step >= self.refine_stop_iter:
            return
        self._accumulate(params, state, info)
        if (step > self.refine_start_iter and step % self.refine_every == 0
                and step % self.reset_every >= self.pause_refine_after_reset):
            self._grow(params, optimizers, state, step, model)
            self._prune(params, optimizers, state, step, model)
            for key in ("grad2d", "count", "radii"):
                state[key].zero_()
        if step % self.reset_every == 0 and step > 0:
            ops.reset_opacity(params, optimizers, 2.0 * self.prune_opa)

    def _accumulate(self, params: torch.nn.ParameterDict, state: dict, info: RenderResult) -> None:
        """Add each visible Gaussian's screen-gradient norm, rescaled from pixels to NDC (× W/2,
        × H/2) and by the number of cameras (the loss averages over them), to its running sum."""
        import torch

        from recon.strategies import ops

        n = ops.num_rows(params)
        if state["grad2d"] is None:
            device = params[OPACITY].device
            for key in ("grad2d", "count", "radii"):
                state[key] = torch.zeros(n, device=device)
        if self.absgrad:
            if info.absgrad is None:
                raise ReconError("DefaultStrategy(absgrad=True) needs render(..., absgrad=True) "
                                 "on a native backend (cpu or cuda); render with it or set "
                                 "absgrad=False.")
            grads = info.absgrad[..., :2]
        else:
            grads = info.means2d.grad
            if grads is None:
                raise ReconError("No screen-space gradient: call step_pre_backward before "
                                 "loss.backward() and render with gradients enabled.")
        height, width = info.alpha.shape[-2:]
        n_cameras = grads.shape[0]
        ndc = torch.tensor([width / 2.0, height / 2.0], device=grads.device,
                           dtype=grads.dtype) * n_cameras
        seen = info.radii > 0                                                        # [B,N]
        ids = torch.nonzero(seen, as_tuple=True)[1]
        norms = (grads.detach()[seen] * ndc).norm(dim=-1)
        state["grad2d"].index_add_(0, ids, norms.to(state["grad2d"].dtype))
        state["count"].index_add_(0, ids, torch.ones_like(norms, dtype=state["count"].dtype))
        if self.refine_scale2d_stop_iter > 0:
            frac = info.radii[seen].to(state["radii"].dtype) / float(max(width, height))
            state["radii"].scatter_reduce_(0, ids, frac, reduce="amax")

    def _grow(self, params: torch.nn.ParameterDict, optimizers: dict[str, torch.optim.Optimizer],
              state: dict, step: int, model: Model) -> tuple[int, int]:
        """Clone small and split large Gaussians whose mean gradient is high. Returns (cloned,
        split)."""
        import torch

        from recon.strategies import ops

        mean_grad = state["grad2d"] / state["count"].clamp_min(1.0)
        high = mean_grad > self.grow_grad2d
        small = model.sizes(params) <= self.grow_scale3d * state["scene_scale"]
        to_split = high & ~small
        if step < self.refine_scale2d_stop_iter:
            to_split |= state["radii"] > self.grow_scale2d
        n_cloned = ops.duplicate(params, optimizers, high & small, state)
        # Clones are appended after the originals, and are never split in the same round.
        to_split = torch.cat([to_split, to_split.new_zeros(n_cloned)])
        n_split = ops.split(params, optimizers, to_split, model,
                            revised_opacity=self.revised_opacity, state=state)
        return n_cloned, n_split

    def _prune(self, params: torch.nn.ParameterDict, optimizers: dict[str, torch.optim.Optimizer],
               state: dict, step: int, model: Model) -> int:
        """Remove transparent Gaussians and, after the first reset, oversized ones."""
        import torch

        from recon.strategies import ops

        prune = torch.sigmoid(params[OPACITY].detach()) < self.prune_opa
        if step > self.reset_every:
            too_big = model.sizes(params) > self.prune_scale3d * state["scene_scale"]
            if step < self.refine_scale2d_stop_iter:
                too_big |= state["radii"] > self.prune_scale2d
            prune |= too_big
        return ops.remove(params, optimizers, prune, state)


__all__ = ["DefaultStrategy"]
