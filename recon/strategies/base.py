"""The interface every densification strategy offers the trainer, and the checks they share.

A strategy is a dataclass of settings with four hooks (gsplat's convention, so the trainer never
names a strategy):

* ``initialize_state(scene_scale) -> dict``: the strategy's mutable state, saved in checkpoints;
* ``check_sanity(params, optimizers)``: refuse a parameter set the strategy cannot edit;
* ``step_pre_backward(params, optimizers, state, step, info)``: called after render, before
  ``loss.backward()``;
* ``step_post_backward(params, optimizers, state, step, info, model, lr=None)``: called after
  backward (and after the optimizers' step), where densification, pruning, relocation and noise
  happen.

``params`` is a model's row set (``recon.models.base``); ``optimizers`` maps each of its keys to
the Adam that owns that one parameter; ``info`` is the ``RenderResult`` of the step; ``model`` the
``Model`` whose moves (split, relocated copies, noise) the strategy makes. Edits replace the
entries of ``params`` and move the Adam moments along (see ``ops``, the generic row edits).

This module imports no torch, so configs that embed strategies stay importable by the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recon.errors import ReconError

if TYPE_CHECKING:
    import torch

    from recon.models.base import Model
    from recon.render import RenderResult

OPACITY = "opacities"  # recon.models.base.OPACITY (this module imports no torch)


class Strategy:
    """Base of the strategies: shared state setup, sanity check and the pre-backward hook."""

    def initialize_state(self, scene_scale: float = 1.0) -> dict:
        """A fresh state; ``scene_scale`` (the scene's radius) scales world-size thresholds."""
        return {"scene_scale": float(scene_scale)}

    def check_sanity(self, params: torch.nn.ParameterDict,
                     optimizers: dict[str, torch.optim.Optimizer]) -> None:
        """Every parameter needs its own optimizer holding exactly it, and one row per primitive."""
        if OPACITY not in params:
            raise ReconError(f"The parameters lack {OPACITY!r}; every model stores its opacity "
                             "logits there (see recon.models.base).")
        n = len(params[OPACITY])
        for name, p in params.items():
            if p.shape[0] != n:
                raise ReconError(f"Parameter {name!r} has {p.shape[0]} rows but there are {n} "
                                 "primitives; every parameter needs one row per primitive.")
            if name not in optimizers:
                raise ReconError(f"No optimizer for parameter {name!r}; give each parameter its "
                                 "own optimizer (recon.models.base.create_optimizers).")
            held = [q for group in optimizers[name].param_groups for q in group["params"]]
            if len(held) != 1 or held[0] is not p:
                raise ReconError(f"The optimizer for {name!r} must hold exactly that parameter "
                                 f"(it holds {len(held)}), so its moments can be resized with it.")

    def step_pre_backward(self, params: torch.nn.ParameterDict,
                          optimizers: dict[str, torch.optim.Optimizer], state: dict, step: int,
                          info: RenderResult) -> None:
        """Keep the screen-space gradient: strategies read ``info.means2d.grad`` after backward."""
        if info.means2d.requires_grad:
            info.means2d.retain_grad()

    def step_post_backward(self, params: torch.nn.ParameterDict,
                           optimizers: dict[str, torch.optim.Optimizer], state: dict, step: int,
                           info: RenderResult, model: Model, lr: float | None = None) -> None:
        raise NotImplementedError


__all__ = ["Strategy"]
