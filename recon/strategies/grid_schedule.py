"""The FlexiCubes model's strategy (``--model flexicubes``): its grid never gains or loses rows
one by one, but it may refine coarse to fine, doubling its resolution at given points of the
run (e.g. 64³ → 128³ halfway, as FlexiCubes' reference experiments do)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from recon.errors import ReconError
from recon.strategies.base import Strategy

if TYPE_CHECKING:
    import torch

    from recon.models.base import Model


@dataclass
class GridSchedule(Strategy):
    """Coarse to fine: the grid's resolution doubles at each of these fractions of the run."""

    upsample_at: tuple[float, ...] = ()
    """Fractions of the steps (in (0, 1)) after which the grid doubles its resolution; empty:
    the resolution stays --flexicubes.resolution."""

    def check_sanity(self, params: torch.nn.ParameterDict,
                     optimizers: dict[str, torch.optim.Optimizer]) -> None:
        """Every parameter needs its own optimizer (grids have no opacity rows to check)."""
        for name in params.keys():
            if name not in optimizers:
                raise ReconError(f"No optimizer for parameter {name!r}.")

    def step_post_backward(self, params, optimizers, state, step: int, info, model: Model,
                           lr: float | None = None) -> None:
        total = model.config.steps
        if any(step + 1 == round(f * total) for f in self.upsample_at):
            model.upsample(params, optimizers)


__all__ = ["GridSchedule"]
