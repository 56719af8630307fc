"""The interface between the trainer and a regularizer.

A regularizer is built once per run from a :class:`RunContext` (the training views, the device,
the run's seeded generator, ...). Per step the trainer asks it

1. ``strategy_active(step)``: may the densification strategy run (and add its own terms)?
2. ``renderable(splats)``: the Gaussians to draw (a regularizer that derives positions from its
   own parameters, like coherence, returns them here; the default draws ``splats``);
3. ``needs_depth(step)``: should the render include the expected-depth map?
4. ``loss(StepContext)``: a term added to the photometric loss (or None);
5. after backward, ``optimizer_step()`` for parameters the regularizer owns (``parameters()``);
6. after the splats' optimizers and the strategy, ``after_step(...)`` for edits of the splats
   (pruning, writing derived values back so checkpoints and exports see what was rendered).

``state_dict()`` / ``load_state_dict()`` carry everything else a resumed run needs to repeat an
uninterrupted one bit for bit; random draws use ``RunContext.generator`` (saved by the trainer).
The base class is the ``--reg none`` regularizer: every hook does nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from recon.cameras import Camera
    from recon.data import Dataset
    from recon.render import RenderResult


@dataclass
class RunContext:
    """What a regularizer may know about its run."""

    cameras: list[Camera]
    """The training cameras, in the trainer's order (``StepContext.view`` indexes them)."""
    images: Tensor
    """uint8 [V, C, H, W] training images on the device (C = 4 when they carry alpha)."""
    dataset: Dataset
    scene_scale: float
    """The scene's radius (world units): world-size settings are multiples of it."""
    total_steps: int
    max_sh_degree: int
    device: torch.device
    generator: torch.Generator
    """The run's seeded CPU generator (its state is checkpointed)."""


@dataclass
class StepContext:
    """One training step, as the loss hook sees it."""

    step: int
    splats: Mapping[str, Tensor]
    """The Gaussians that were rendered (``renderable``'s result)."""
    result: RenderResult
    camera: Camera
    view: int
    """Index of ``camera`` in ``RunContext.cameras``."""
    target: Tensor
    """[3, H, W] ground-truth image (composited over the step's background)."""


class Regularizer:
    """No regularization (``--reg none``); the base of the others."""

    def __init__(self, run: RunContext) -> None:
        self.run = run

    def initial_splats(self) -> torch.nn.ParameterDict | None:
        """The splats a new run starts from, or None for the trainer's usual initialisation."""
        return None

    def strategy_active(self, step: int) -> bool:
        return True

    def renderable(self, splats: torch.nn.ParameterDict) -> Mapping[str, Tensor]:
        return splats

    def needs_depth(self, step: int) -> bool:
        return False

    def loss(self, ctx: StepContext) -> Tensor | None:
        return None

    def parameters(self) -> list[Tensor]:
        """Parameters the regularizer owns and steps in :meth:`optimizer_step`."""
        return []

    def optimizer_step(self) -> None:
        """Step (and zero the gradients of) the regularizer's own optimizers."""

    def after_step(self, splats: torch.nn.ParameterDict,
                   optimizers: dict[str, torch.optim.Optimizer], strategy_state: dict,
                   step: int) -> None:
        """Edit the splats after the step (use ``recon.strategies.ops`` to keep Adam aligned)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (tensors already on the CPU or the device)."""


__all__ = ["Regularizer", "RunContext", "StepContext"]
