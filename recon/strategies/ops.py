"""Row edits of a model's parameter set that keep its Adam optimizers consistent.

Every model is a row set (``recon.models.base``): each tensor has one row per primitive. Every
edit (duplicate, split, remove, relocate, sample_add) is expressed the same way: each row of the
new set has a *source* row in the old set, and some new rows are *fresh*. Parameters are gathered
from their source (then the edit overrides what it changes), the Adam moments follow their row
the same way but are zero on fresh rows, Adam's step count is kept, and any per-row tensor of
the strategy state is gathered from the source too. So a row that is merely kept keeps its
moments, and a row that is new or whose values were rewritten starts with none (stale momentum
would push it along a gradient that belonged to a different primitive). The geometry of a split,
of a relocated copy and of the exploration noise is the model's (``Model.split``,
``Model.relocation_overrides``, ``Model.position_noise``).

Parameters are replaced by new ``torch.nn.Parameter`` objects (also inside their optimizer), so
callers must read ``params[name]`` afresh after an edit rather than hold on to the old object.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from recon.models.base import OPACITY, Model, peak_preserving_opacity

Optimizers = dict[str, torch.optim.Optimizer]


def num_rows(params) -> int:
    """The number of rows (primitives) of a parameter set."""
    return int(params[OPACITY].shape[0])


# -- optimizer surgery ------------------------------------------------------------------------
def _gather_rows(values: Tensor, source: Tensor, fresh: Tensor) -> Tensor:
    out = values[source]
    out[fresh] = 0
    return out


def _move_optimizer_state(optimizer: torch.optim.Optimizer, old: Tensor, new: Tensor,
                          source: Tensor, fresh: Tensor) -> None:
    """Swap ``old`` for ``new`` in ``optimizer`` and re-index its per-row state (Adam's exp_avg,
    exp_avg_sq, max_exp_avg_sq) by ``source`` with zeros on ``fresh`` rows. The step count is
    kept, so Adam's bias correction carries on."""
    for group in optimizer.param_groups:
        group["params"] = [new if q is old else q for q in group["params"]]
    state = optimizer.state.pop(old, None)
    if not state:
        return
    for key, value in state.items():
        if key != "step" and torch.is_tensor(value) and value.dim() > 0:
            state[key] = _gather_rows(value, source, fresh)
    optimizer.state[new] = state


@torch.no_grad()
def _edit_rows(params: torch.nn.ParameterDict, optimizers: Optimizers, source: Tensor,
               fresh: Tensor, overrides: dict[str, Tensor] | None = None,
               state: dict | None = None) -> None:
    """The one row edit: new row i comes from old row ``source[i]``; ``fresh`` [len(source)] marks
    rows whose moments start at zero; ``overrides`` replace whole gathered parameters."""
    overrides = overrides or {}
    n_old = num_rows(params)
    for name in list(params.keys()):
        old = params[name]
        value = overrides[name] if name in overrides else old.detach()[source]
        new = torch.nn.Parameter(value.contiguous(), requires_grad=old.requires_grad)
        params[name] = new
        if name in optimizers:
            _move_optimizer_state(optimizers[name], old, new, source, fresh)
    if state:
        for key, value in state.items():
            if torch.is_tensor(value) and value.dim() > 0 and value.shape[0] == n_old:
                state[key] = value[source]


# -- densification ----------------------------------------------------------------------------

def duplicate(params: torch.nn.ParameterDict, optimizers: Optimizers, mask: Tensor,
              state: dict | None = None) -> int:
    """Append an exact copy of every row in ``mask`` [N] (3DGS clone). Returns the count."""
    n = num_rows(params)
    picked = torch.nonzero(mask, as_tuple=False)[:, 0]
    source = torch.cat([torch.arange(n, device=picked.device), picked])
    fresh = torch.arange(len(source), device=picked.device) >= n
    _edit_rows(params, optimizers, source, fresh, state=state)
    return len(picked)


def clone(params: torch.nn.ParameterDict, optimizers: Optimizers, picked: Tensor,
          parents: dict[str, Tensor], copies: dict[str, Tensor],
          state: dict | None = None) -> int:
    """Append a copy of every row in ``picked`` [M]; ``parents`` / ``copies`` ([M, ...] per
    parameter name) replace what the parents keep and what their copies get. Both restart their
    moments. Returns M."""
    n = num_rows(params)
    source = torch.cat([torch.arange(n, device=picked.device), picked])
    fresh = torch.arange(len(source), device=picked.device) >= n
    fresh[picked] = True
    with torch.no_grad():
        overrides = {}
        for name in set(parents) | set(copies):
            gathered = params[name].detach()[source]
            if name in parents:
                gathered[picked] = parents[name]
            if name in copies:
                gathered[n:] = copies[name]
            overrides[name] = gathered
    _edit_rows(params, optimizers, source, fresh, overrides, state)
    return len(picked)


def split(params: torch.nn.ParameterDict, optimizers: Optimizers, mask: Tensor, model: Model,
          *, revised_opacity: bool = False, state: dict | None = None) -> int:
    """Replace every row in ``mask`` [N] by the model's children (``Model.split``). With
    ``revised_opacity`` the C children of opacity o get 1 − (1 − o)^(1/C), so they composite to
    the parent's o (arXiv 2404.06109). Kept rows come first, children last. Returns the number
    split."""
    device = mask.device
    picked = torch.nonzero(mask, as_tuple=False)[:, 0]
    kept = torch.nonzero(~mask, as_tuple=False)[:, 0]
    with torch.no_grad():
        children, values = model.split(params, picked)
        source = torch.cat([kept, picked.repeat(children)])
        if revised_opacity:
            opacity = torch.sigmoid(params[OPACITY].detach()[picked])
            child_o = peak_preserving_opacity(opacity, children)  # int: exactly √ for 2 children
            values[OPACITY] = torch.logit(child_o).repeat(children)
        overrides = {name: torch.cat([params[name].detach()[kept], child])
                     for name, child in values.items()}
    fresh = torch.arange(len(source), device=device) >= len(kept)
    _edit_rows(params, optimizers, source, fresh, overrides, state)
    return len(picked)


def remove(params: torch.nn.ParameterDict, optimizers: Optimizers, mask: Tensor,
           state: dict | None = None) -> int:
    """Delete the rows in ``mask`` [N]; the others keep their order and moments."""
    kept = torch.nonzero(~mask, as_tuple=False)[:, 0]
    fresh = torch.zeros(len(kept), dtype=torch.bool, device=kept.device)
    _edit_rows(params, optimizers, kept, fresh, state=state)
    return int(mask.sum())


@torch.no_grad()
def reset_opacity(params: torch.nn.ParameterDict, optimizers: Optimizers, value: float) -> None:
    """Clamp every opacity to at most ``value`` (3DGS's periodic reset) and zero the opacity
    moments, so the reset is not undone by momentum."""
    logits = params[OPACITY]
    logits.clamp_(max=math.log(value / (1.0 - value)))
    zero_moments(optimizers, logits)


@torch.no_grad()
def zero_moments(optimizers: Optimizers, parameter: Tensor) -> None:
    """Zero the Adam moments of ``parameter`` (after its values were reset, so momentum does
    not undo the reset); the step count is kept."""
    for optimizer in optimizers.values():
        for key, moment in optimizer.state.get(parameter, {}).items():
            if key != "step" and torch.is_tensor(moment) and moment.dim() > 0:
                moment.zero_()


# -- 3DGS-MCMC moves (for every model) ---------------------------------------------------------

def _corrected_copies(params: torch.nn.ParameterDict, model: Model, targets: Tensor,
                      min_opacity: float) -> dict[str, Tensor]:
    """The targets' new values once each has as many copies as it was sampled plus one (its own
    slot). Opacities are kept in [min_opacity, 1 − ε] so copies are not born dead and logits stay
    finite."""
    copies = torch.bincount(targets, minlength=num_rows(params))[targets] + 1
    values = model.relocation_overrides(params, targets, copies)
    opacity = values[OPACITY]
    values[OPACITY] = torch.logit(opacity.clamp(min_opacity, 1.0 - torch.finfo(opacity.dtype).eps))
    return values


def _sample_by_opacity(logits: Tensor, candidates: Tensor, num: int) -> Tensor:
    """``num`` indices from ``candidates``, drawn with replacement ∝ opacity."""
    weights = torch.sigmoid(logits.detach()[candidates]).double()
    return candidates[torch.multinomial(weights, num, replacement=True)]


def _copy_rows(params: torch.nn.ParameterDict, optimizers: Optimizers, model: Model,
               source: Tensor, targets: Tensor, slots: Tensor, min_opacity: float,
               state: dict | None) -> None:
    """Gather rows by ``source``, where ``slots`` [M] receive copies of ``targets`` [M]; targets
    and slots get the corrected values and zero moments."""
    with torch.no_grad():
        corrected = _corrected_copies(params, model, targets, min_opacity)
        overrides = {}
        for name, value in corrected.items():
            gathered = params[name].detach()[source]
            for rows in (targets, slots):
                gathered[rows] = value
            overrides[name] = gathered
    fresh = torch.zeros(len(source), dtype=torch.bool, device=source.device)
    fresh[torch.cat([targets, slots])] = True  # the corrected rows restart their moments
    _edit_rows(params, optimizers, source, fresh, overrides, state)


def relocate(params: torch.nn.ParameterDict, optimizers: Optimizers, dead: Tensor, model: Model,
             min_opacity: float, state: dict | None = None) -> int:
    """Move every row in ``dead`` [N] onto a live one sampled ∝ opacity: the dead slot takes a
    copy of the target, and target and copies get the model's corrected values
    (``Model.relocation_overrides``). The moments of targets and moved slots restart at zero.
    Returns the number moved (0 when nothing is dead or nothing is alive)."""
    n = num_rows(params)
    dead_idx = torch.nonzero(dead, as_tuple=False)[:, 0]
    alive_idx = torch.nonzero(~dead, as_tuple=False)[:, 0]
    if len(dead_idx) == 0 or len(alive_idx) == 0:
        return 0
    targets = _sample_by_opacity(params[OPACITY], alive_idx, len(dead_idx))
    source = torch.arange(n, device=dead.device)
    source[dead_idx] = targets
    _copy_rows(params, optimizers, model, source, targets, dead_idx, min_opacity, state)
    return len(dead_idx)


def sample_add(params: torch.nn.ParameterDict, optimizers: Optimizers, num: int, model: Model,
               min_opacity: float, state: dict | None = None) -> int:
    """Append ``num`` rows, each a corrected copy of one sampled ∝ opacity (its source gets the
    corrected values too, and zero moments). Returns ``num``."""
    n = num_rows(params)
    if num <= 0:
        return 0
    device = params[OPACITY].device
    targets = _sample_by_opacity(params[OPACITY], torch.arange(n, device=device), num)
    source = torch.cat([torch.arange(n, device=device), targets])
    _copy_rows(params, optimizers, model, source, targets, torch.arange(n, n + num, device=device),
               min_opacity, state)
    return num


@torch.no_grad()
def inject_noise(params: torch.nn.ParameterDict, model: Model, scale: float) -> None:
    """Add the model's exploration noise (``Model.position_noise``) to its positions in place
    (their moments are left alone)."""
    params[model.position].add_(model.position_noise(params, scale))


__all__ = ["duplicate", "inject_noise", "num_rows", "relocate", "remove", "reset_opacity",
           "sample_add", "split", "zero_moments"]
