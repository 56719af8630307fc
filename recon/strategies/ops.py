"""Edits of a Gaussian parameter set that keep its Adam optimizers consistent.

Every row edit (duplicate, split, remove, relocate, sample_add) is expressed the same way: each
row of the new set has a *source* row in the old set, and some new rows are *fresh*. Parameters
are gathered from their source (then the edit overrides what it changes), the Adam moments follow
their Gaussian the same way but are zero on fresh rows, Adam's step count is kept, and any
per-Gaussian tensor of the strategy state is gathered from the source too. So a Gaussian that is
merely kept keeps its moments, and a Gaussian that is new or whose values were rewritten starts
with none (stale momentum would push it along a gradient that belonged to a different splat).

Parameters are replaced by new ``torch.nn.Parameter`` objects (also inside their optimizer), so
callers must read ``params[name]`` afresh after an edit rather than hold on to the old object.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

from recon.primitives.gaussians import covariances, quat_to_rotmat

Optimizers = dict[str, torch.optim.Optimizer]

MAX_COPIES = 51
"""Largest number of co-located copies the relocation correction models (3DGS-MCMC's table size);
a Gaussian sampled more often is corrected as if it had this many copies."""

SPLIT_CHILDREN = 2
SPLIT_SCALE_DIVISOR = 1.6  # 3DGS: children's scales are the parent's / (0.8 · SPLIT_CHILDREN)

NOISE_GATE_SHARPNESS = 100.0  # k of the SGLD opacity gate σ(−k (o − t))
NOISE_GATE_OPACITY = 0.005    # t: splats well above this opacity get (almost) no noise


# -- the relocation correction ----------------------------------------------------------------

@lru_cache(maxsize=None)
def _signed_binomials() -> Tensor:
    """[MAX_COPIES+1, MAX_COPIES+1] float64 table a[n, j] = (−1)^(j+1) C(n, j) / √j (0 for j = 0
    or j > n): the coefficients of the copies' profile area (see ``relocation_correction``).
    Binomials up to C(51, 25) ≈ 2.5e14 are exact in float64."""
    rows = [[0.0 if j == 0 else (-1) ** (j + 1) * math.comb(n, j) / math.sqrt(j)
             for j in range(MAX_COPIES + 1)] for n in range(MAX_COPIES + 1)]
    return torch.tensor(rows, dtype=torch.float64)


def relocation_correction(opacities: Tensor, scales: Tensor,
                          copies: Tensor) -> tuple[Tensor, Tensor]:
    """Opacity and scale for each of ``copies`` co-located copies of a Gaussian so that together
    they render like the original (3DGS-MCMC's relocation rule).

    opacities [M] in (0, 1), scales [M, 3] (linear, not log), copies [M] integers ≥ 1 (the total
    number of copies, the original included). Returns (opacities [M], scales [M, 3]).

    Derivation. Along a line through the centre the original's opacity profile is o·g(x), g(x) =
    exp(−x²/2σ²). N identical co-located copies (o', σ') composite to 1 − (1 − o'·g'(x))^N.
    * Same peak: 1 − (1 − o')^N = o, so o' = 1 − (1 − o)^(1/N).
    * Same area: expanding the power, 1 − (1 − a)^N = Σ_{j=1..N} (−1)^(j+1) C(N, j) a^j, and
      ∫ g'^j dx = √(2π) σ' / √j, so o σ = σ' Σ_j (−1)^(j+1) C(N, j) o'^j / √j, which gives
      σ' = σ · o / Σ_j (−1)^(j+1) C(N, j) o'^j / √j.
      (The paper writes the denominator as a double sum over i ≤ N and k < i of
      C(i−1, k)(−1)^k o'^(k+1)/√(k+1); summing C(i−1, k) over i gives C(N, k+1), the same sum.)
    The factor applies to all three axes (Σ' = factor² Σ). The terms behave like x^j / j! with
    x = N o' ≈ −ln(1 − o), so the alternating sum is well conditioned; it runs in float64.
    """
    table = _signed_binomials().to(opacities.device)
    o = opacities.double()
    n = copies.long().clamp(1, MAX_COPIES)
    new_o = 1.0 - torch.pow(1.0 - o, 1.0 / n.double())
    powers = new_o[:, None] ** torch.arange(MAX_COPIES + 1, device=o.device, dtype=torch.float64)
    area = (table[n] * powers).sum(-1)
    factor = o / area
    return new_o.to(opacities.dtype), scales * factor[:, None].to(scales.dtype)


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
    n_old = len(params["means"])
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


def _fresh_mask(n: int, rows: Tensor, device: torch.device) -> Tensor:
    mask = torch.zeros(n, dtype=torch.bool, device=device)
    mask[rows] = True
    return mask


# -- 3DGS adaptive density control ------------------------------------------------------------

def duplicate(params: torch.nn.ParameterDict, optimizers: Optimizers, mask: Tensor,
              state: dict | None = None) -> int:
    """Append an exact copy of every Gaussian in ``mask`` [N] (3DGS clone). Returns the count."""
    n = len(params["means"])
    picked = torch.nonzero(mask, as_tuple=False)[:, 0]
    source = torch.cat([torch.arange(n, device=picked.device), picked])
    fresh = torch.arange(len(source), device=picked.device) >= n
    _edit_rows(params, optimizers, source, fresh, state=state)
    return len(picked)


def split(params: torch.nn.ParameterDict, optimizers: Optimizers, mask: Tensor, *,
          revised_opacity: bool = False, state: dict | None = None) -> int:
    """Replace every Gaussian in ``mask`` [N] by SPLIT_CHILDREN children centred at samples of
    N(μ, Σ), scales divided by 1.6 (3DGS split). Opacity is copied, or with ``revised_opacity``
    set to 1 − √(1 − o) so two overlapping children composite to the parent's o (arXiv
    2404.06109). Kept Gaussians come first, children last. Returns the number split."""
    device = mask.device
    picked = torch.nonzero(mask, as_tuple=False)[:, 0]
    kept = torch.nonzero(~mask, as_tuple=False)[:, 0]
    source = torch.cat([kept, picked.repeat(SPLIT_CHILDREN)])
    fresh = torch.arange(len(source), device=device) >= len(kept)
    with torch.no_grad():
        means, log_scales = params["means"].detach(), params["scales"].detach()
        scales = log_scales[picked].exp()
        rot = quat_to_rotmat(params["quats"].detach()[picked])                        # [M,3,3]
        z = torch.randn(SPLIT_CHILDREN, len(picked), 3, device=device, dtype=means.dtype)
        offsets = (rot[None] @ (scales[None] * z)[..., None])[..., 0]                 # [S,M,3]
        children = (means[picked][None] + offsets).reshape(-1, 3)
        overrides = {
            "means": torch.cat([means[kept], children]),
            "scales": torch.cat([log_scales[kept],
                                 (scales / SPLIT_SCALE_DIVISOR).log().repeat(SPLIT_CHILDREN, 1)]),
        }
        if revised_opacity:
            logits = params["opacities"].detach()
            child_o = 1.0 - torch.sqrt(1.0 - torch.sigmoid(logits[picked]))
            overrides["opacities"] = torch.cat([logits[kept],
                                                torch.logit(child_o).repeat(SPLIT_CHILDREN)])
    _edit_rows(params, optimizers, source, fresh, overrides, state)
    return len(picked)


def remove(params: torch.nn.ParameterDict, optimizers: Optimizers, mask: Tensor,
           state: dict | None = None) -> int:
    """Delete the Gaussians in ``mask`` [N]; the others keep their order and moments."""
    kept = torch.nonzero(~mask, as_tuple=False)[:, 0]
    fresh = torch.zeros(len(kept), dtype=torch.bool, device=kept.device)
    _edit_rows(params, optimizers, kept, fresh, state=state)
    return int(mask.sum())


@torch.no_grad()
def reset_opacity(params: torch.nn.ParameterDict, optimizers: Optimizers, value: float) -> None:
    """Clamp every opacity to at most ``value`` (3DGS's periodic reset) and zero the opacity
    moments, so the reset is not undone by momentum."""
    logits = params["opacities"]
    logits.clamp_(max=math.log(value / (1.0 - value)))
    state = optimizers["opacities"].state.get(logits, {})
    for key, moment in state.items():
        if key != "step" and torch.is_tensor(moment) and moment.dim() > 0:
            moment.zero_()


# -- 3DGS-MCMC moves --------------------------------------------------------------------------

def _corrected_copies(params: torch.nn.ParameterDict, targets: Tensor,
                      min_opacity: float) -> tuple[Tensor, Tensor]:
    """Opacity logits and log-scales for the targets once each has as many copies as it was
    sampled plus one (its own slot). Opacities are kept in [min_opacity, 1 − ε] so copies are not
    born dead and logits stay finite."""
    n = len(params["means"])
    logits, log_scales = params["opacities"].detach(), params["scales"].detach()
    copies = torch.bincount(targets, minlength=n)[targets] + 1
    new_o, new_s = relocation_correction(torch.sigmoid(logits[targets]), log_scales[targets].exp(),
                                         copies)
    eps = torch.finfo(new_o.dtype).eps
    new_o = new_o.clamp(min_opacity, 1.0 - eps)
    return torch.logit(new_o), new_s.log()


def _sample_by_opacity(logits: Tensor, candidates: Tensor, num: int) -> Tensor:
    """``num`` indices from ``candidates``, drawn with replacement ∝ opacity."""
    weights = torch.sigmoid(logits.detach()[candidates]).double()
    return candidates[torch.multinomial(weights, num, replacement=True)]


def relocate(params: torch.nn.ParameterDict, optimizers: Optimizers, dead: Tensor,
             min_opacity: float, state: dict | None = None) -> int:
    """Move every Gaussian in ``dead`` [N] onto a live one sampled ∝ opacity: the dead slot takes
    a copy of the target and target and copies get the corrected opacity and scale. The moments
    of targets and moved slots restart at zero. Returns the number moved (0 when nothing is
    dead or nothing is alive)."""
    n = len(params["means"])
    dead_idx = torch.nonzero(dead, as_tuple=False)[:, 0]
    alive_idx = torch.nonzero(~dead, as_tuple=False)[:, 0]
    if len(dead_idx) == 0 or len(alive_idx) == 0:
        return 0
    with torch.no_grad():
        targets = _sample_by_opacity(params["opacities"], alive_idx, len(dead_idx))
        logit, log_scale = _corrected_copies(params, targets, min_opacity)
        source = torch.arange(n, device=dead.device)
        source[dead_idx] = targets
        logits = params["opacities"].detach()[source]
        log_scales = params["scales"].detach()[source]
        for rows in (targets, dead_idx):
            logits[rows] = logit
            log_scales[rows] = log_scale
    fresh = _fresh_mask(n, torch.cat([targets, dead_idx]), dead.device)
    _edit_rows(params, optimizers, source, fresh, {"opacities": logits, "scales": log_scales},
               state)
    return len(dead_idx)


def sample_add(params: torch.nn.ParameterDict, optimizers: Optimizers, num: int,
               min_opacity: float, state: dict | None = None) -> int:
    """Append ``num`` Gaussians, each a corrected copy of one sampled ∝ opacity (its source gets
    the corrected opacity and scale too, and zero moments). Returns ``num``."""
    n = len(params["means"])
    if num <= 0:
        return 0
    device = params["means"].device
    with torch.no_grad():
        targets = _sample_by_opacity(params["opacities"], torch.arange(n, device=device), num)
        logit, log_scale = _corrected_copies(params, targets, min_opacity)
        source = torch.cat([torch.arange(n, device=device), targets])
        logits = params["opacities"].detach()[source]
        log_scales = params["scales"].detach()[source]
        for rows in (targets, torch.arange(n, n + num, device=device)):
            logits[rows] = logit
            log_scales[rows] = log_scale
    fresh = _fresh_mask(n + num, torch.cat([targets, torch.arange(n, n + num, device=device)]),
                        device)
    _edit_rows(params, optimizers, source, fresh, {"opacities": logits, "scales": log_scales},
               state)
    return num


def position_noise(params: torch.nn.ParameterDict, scale: float) -> Tensor:
    """The SGLD position noise Σ·η·scale·σ(−k (o − t)) [N, 3], η ~ N(0, I): shaped by each
    Gaussian's own covariance Σ (so its covariance is scale² gate² Σ²) and gated to vanish for
    opaque splats (k = 100, t = 0.005; 3DGS-MCMC's ``train.py``)."""
    with torch.no_grad():
        opacity = torch.sigmoid(params["opacities"].detach())
        gate = torch.sigmoid(-NOISE_GATE_SHARPNESS * (opacity - NOISE_GATE_OPACITY))
        cov = covariances(params["quats"].detach(), params["scales"].detach().exp())
        eta = torch.randn_like(params["means"])
        return (cov @ eta[..., None])[..., 0] * (gate * scale)[:, None]


@torch.no_grad()
def inject_noise(params: torch.nn.ParameterDict, scale: float) -> None:
    """Add :func:`position_noise` to the means in place (their moments are left alone)."""
    params["means"].add_(position_noise(params, scale))


__all__ = ["MAX_COPIES", "NOISE_GATE_OPACITY", "NOISE_GATE_SHARPNESS", "duplicate",
           "inject_noise", "position_noise", "relocate", "relocation_correction", "remove",
           "reset_opacity", "sample_add", "split"]
