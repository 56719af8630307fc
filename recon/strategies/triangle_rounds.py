"""Triangle Splatting's densification rounds (``--model triangles --strategy mcmc``).

MCMC-flavoured: no gradient thresholds. Every ``refine_every`` steps in the window the soup
grows toward min(``cap_max``, ``growth`` × N) and replaces its dead triangles:

* dead: largest blending weight since the last round below ``min_weight``, or opacity at most
  ``min_opacity``, or (after ``views_from``) resolved in fewer than ``min_views`` of the views
  rendered since the last round;
* candidates are drawn without replacement ∝ opacity or ∝ 1/σ (sharp triangles), alternating
  round by round, as long as the new rows fit the growth plus the dead (never past the cap);
* a candidate larger than ``split_pixels`` on screen (its largest extent since the last round)
  is subdivided at its edge midpoints into 4 (+3 rows); a smaller one is cloned with an in-plane
  offset of up to ``clone_spread`` × its size (+1 row), parent and clone each taking opacity
  1 − √(1 − o) so the pair composites to the parent's opacity;
* the dead are removed. New and rewritten rows restart their Adam moments.

After the window, and while the model makes its opaque finish, dead triangles are only removed. "Resolved" is read off the renderer's screen
radius (≥ ``resolved_radius`` px): the reference counts views where the incircle exceeds 1 px,
and the soup's screen box is what the render result reports per view.

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

STATS = ("max_weight", "extent", "views")


@dataclass
class TriangleRoundsStrategy(Strategy):
    """Growth rounds with subdivision / in-plane clones and recycling of the dead (Triangle
    Splatting). Defaults are the reference's (``arguments/__init__.py``)."""

    cap_max: int = 1_000_000
    """Never grow beyond this many triangles (the reference: 4M on a 24 GB GPU)."""
    growth: float = 1.3
    """Each round aims at min(cap_max, growth × N) triangles, plus replacements for the dead."""
    refine_start_iter: int = 500
    """Rounds only after this step ..."""
    refine_stop_iter: int = 25_000
    """... and before this one (afterwards the dead are only removed)."""
    refine_every: int = 500
    """Steps between rounds."""
    split_pixels: float = 24.0
    """Candidates larger than this on screen (pixels) are subdivided into 4, smaller ones cloned."""
    clone_spread: float = 1.5
    """A clone moves in its plane by up to ± ½ × this × the parent's box size, per axis."""
    min_weight: float = 0.022
    """Dead when the largest blending weight α·T since the last round is below this."""
    min_opacity: float = 0.014
    """Dead when the opacity is at most this."""
    min_views: int = 2
    """Dead (after ``views_from``) when resolved in fewer views than this since the last round."""
    views_from: int = 1000
    """The view count only judges after this step (triangles need time to find their place)."""
    resolved_radius: int = 1
    """A view resolves a triangle when its screen radius is at least this many pixels."""

    def initialize_state(self, scene_scale: float = 1.0) -> dict:
        """Besides scene_scale: the round counter (odd rounds sample ∝ 1/σ) and the per-triangle
        statistics since the last round (created on the first step)."""
        return {**super().initialize_state(scene_scale), "round": 0,
                **{name: None for name in STATS}}

    def step_pre_backward(self, params, optimizers, state, step, info) -> None:
        """Nothing: the statistics are read from the render result after backward."""

    def step_post_backward(self, params: torch.nn.ParameterDict,
                           optimizers: dict[str, torch.optim.Optimizer], state: dict, step: int,
                           info: RenderResult, model: Model, lr: float | None = None) -> None:
        """Accumulate the statistics; run a round (in the window, unless the model is making its
        opaque finish) or remove the dead (otherwise) every ``refine_every`` steps."""
        self._accumulate(params, state, info)
        if step % self.refine_every or step <= self.refine_start_iter:
            return
        if step < self.refine_stop_iter and model.finishing(step) is None:
            self.grow(params, optimizers, state, step, model)
        else:
            from recon.strategies import ops

            dead = self.dead(params, state, step)
            if not bool(dead.all()):  # a soup is never emptied (nothing would be left to fit)
                ops.remove(params, optimizers, dead)
        self._reset(params, state)

    # -- the round ----------------------------------------------------------------------------

    def dead(self, params, state: dict, step: int) -> torch.Tensor:
        """[N] bool: the triangles the round recycles."""
        import torch

        opacity = torch.sigmoid(params[OPACITY].detach())
        dead = (state["max_weight"] < self.min_weight) | (opacity <= self.min_opacity)
        if step > self.views_from:
            dead |= state["views"] < self.min_views
        return dead

    def grow(self, params, optimizers, state: dict, step: int, model: Model) -> dict[str, int]:
        """One round; returns how many were subdivided, cloned and removed."""
        import torch

        from recon.strategies import ops

        n = ops.num_rows(params)
        dead = self.dead(params, state, step)
        if bool(dead.all()):  # nothing alive to draw from: leave the soup as it is
            return {"subdivided": 0, "cloned": 0, "removed": 0}
        budget = max(0, min(self.cap_max, int(self.growth * n)) - n) + int(dead.sum())
        if state["round"] % 2 == 0:
            weights = torch.sigmoid(params[OPACITY].detach())
        else:
            weights = 1.0 / model.window_sigma(params).clamp_min(torch.finfo(torch.float32).eps)
        weights = torch.where(dead, torch.zeros_like(weights), weights).double()
        state["round"] += 1
        big = state["extent"] > self.split_pixels
        picked = _draw(weights, budget, big)
        # Remove the dead first, then address the candidates in the shortened set.
        ops.remove(params, optimizers, dead)
        new_index = torch.cumsum(~dead, 0) - 1
        picked_big, picked_small = new_index[picked[big[picked]]], new_index[picked[~big[picked]]]

        if len(picked_small):
            with torch.no_grad():
                opacity = torch.sigmoid(params[OPACITY].detach()[picked_small])
                halved = torch.logit(1.0 - torch.sqrt(1.0 - opacity))
            ops.clone(params, optimizers, picked_small, {OPACITY: halved},
                      {OPACITY: halved, **model.in_plane_copies(params, picked_small,
                                                                 self.clone_spread)})
        if len(picked_big):
            mask = torch.zeros(ops.num_rows(params), dtype=torch.bool, device=dead.device)
            mask[picked_big] = True
            ops.split(params, optimizers, mask, model)
        return {"subdivided": len(picked_big), "cloned": len(picked_small),
                "removed": int(dead.sum())}

    # -- statistics ---------------------------------------------------------------------------

    def _accumulate(self, params, state: dict, info: RenderResult) -> None:
        import torch

        if state["max_weight"] is None or len(state["max_weight"]) != len(params[OPACITY]):
            self._reset(params, state)
        radii = info.radii.detach()
        state["max_weight"] = torch.maximum(state["max_weight"], info.max_weight.amax(0))
        state["extent"] = torch.maximum(state["extent"], 2.0 * radii.amax(0).to(torch.float32))
        state["views"] += (radii >= self.resolved_radius).sum(0).to(torch.int32)

    def _reset(self, params, state: dict) -> None:
        import torch

        opacity = params[OPACITY]
        zeros = torch.zeros(len(opacity), device=opacity.device)
        state["max_weight"], state["extent"] = zeros, zeros.clone()
        state["views"] = torch.zeros(len(opacity), dtype=torch.int32, device=opacity.device)


def _draw(weights: torch.Tensor, budget: int, big: torch.Tensor) -> torch.Tensor:
    """Indices drawn without replacement ∝ ``weights`` while their total cost (3 new rows for a
    ``big`` one, subdivided into 4; 1 for a clone) stays within ``budget``."""
    import torch

    available = int((weights > 0).sum())
    count = min(budget, available)
    if count <= 0:
        return torch.zeros(0, dtype=torch.long, device=weights.device)
    drawn = torch.multinomial(weights, count, replacement=False)
    cost = torch.cumsum(torch.where(big[drawn], 3, 1), 0)
    return drawn[cost <= budget]  # a prefix (cost grows): never past the cap


__all__ = ["TriangleRoundsStrategy"]
