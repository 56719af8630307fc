"""Gaussian splats (3DGS) as a model: gsplat's parameter layout, initialisation and moves.

The row set holds

* ``means`` [N, 3] world positions,
* ``quats`` [N, 4] rotations (w, x, y, z; not kept normalised),
* ``scales`` [N, 3] log standard deviations,
* ``opacities`` [N] opacity logits,
* ``sh0`` [N, 1, 3] and ``shN`` [N, K-1, 3] spherical-harmonic colour, K = (max_sh_degree + 1)².

Learning rates are the config's ``optim`` (gsplat's); the means' rate is multiplied by the scene
scale and decays exponentially over the run.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from recon.models.base import (OPACITY, Model, Params, as_parameters, peak_preserving_opacity,
                               sh_rows)
from recon.models.points import mean_neighbour_distance
from recon.primitives.gaussians import Gaussians, covariances, quat_to_rotmat
from recon.render.sh import sh0_to_rgb
from recon.schedules import exponential_decay

PARAMETER_NAMES = ("means", "quats", "scales", "opacities", "sh0", "shN")

SPLIT_CHILDREN = 2
SPLIT_SCALE_DIVISOR = 1.6  # 3DGS: children's scales are the parent's / (0.8 · SPLIT_CHILDREN)

# cuda/include/noise.h mirrors these two.
NOISE_GATE_SHARPNESS = 100.0  # k of the SGLD opacity gate σ(−k (o − t))
NOISE_GATE_OPACITY = 0.005    # t: splats well above this opacity get (almost) no noise


def to_gaussians(params: Params) -> Gaussians:
    """The splats as a renderable :class:`Gaussians` (shares storage, so gradients flow back)."""
    return Gaussians(means=params["means"], quats=params["quats"], log_scales=params["scales"],
                     opacity_logits=params[OPACITY])


def splat_parameters(means: Tensor, quats: Tensor, log_scales: Tensor, opacity_logits: Tensor,
                     sh0: Tensor, shN: Tensor, device=None) -> torch.nn.ParameterDict:
    """A Gaussian row set (leaf parameters, on ``device`` or the means' device)."""
    values = (means, quats, log_scales, opacity_logits, sh0, shN)
    return as_parameters(dict(zip(PARAMETER_NAMES, values)), device or means.device)


def with_centres(params: Params, means: Tensor, opacity_logits: Tensor) -> dict[str, Tensor]:
    """``params`` with other means and opacity logits (derived ones, to render)."""
    return {**params, "means": means, OPACITY: opacity_logits}


def create_splats(points: np.ndarray, colors: np.ndarray, *, max_sh_degree: int,
                  init_scale: float, init_opacity: float,
                  generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> torch.nn.ParameterDict:
    """Splats centred on ``points`` [N, 3] with RGB ``colors`` [N, 3] in [0, 1].

    Scales are isotropic: the mean distance to the 3 nearest neighbours × ``init_scale``.
    Rotations are uniformly random (normalised Gaussian 4-vectors), opacities all
    ``init_opacity``, colour in the DC band and zeros above it.
    """
    points = np.asarray(points, dtype=np.float32)
    n = len(points)
    dist = mean_neighbour_distance(points)
    log_scales = torch.from_numpy(np.log(dist * init_scale)).float()[:, None]
    quats = torch.randn(n, 4, generator=generator)
    quats = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    colours = sh_rows(torch.as_tensor(np.asarray(colors, dtype=np.float32)), max_sh_degree)
    logit = math.log(init_opacity / (1.0 - init_opacity))
    return splat_parameters(torch.from_numpy(points), quats, log_scales.repeat(1, 3),
                            torch.full((n,), logit), colours["sh0"], colours["shN"], device)


class GaussianModel(Model):
    """3D Gaussian splats (3DGS), drawn with the EWA projection."""

    name = "gaussians"
    noun = "Gaussians"
    position = "means"
    regularizers = ("none", "surface", "coherence")
    export_formats = ("ply", "splat")

    # -- parameters ---------------------------------------------------------------------------

    def initialize(self, points, colors, generator, device, cameras=()) -> torch.nn.ParameterDict:
        """:func:`create_splats` with the config's init scale and opacity."""
        cfg = self.config
        return create_splats(points, colors, max_sh_degree=cfg.max_sh_degree,
                             init_scale=cfg.init_scale(), init_opacity=cfg.init_opacity(),
                             generator=generator, device=device)

    def learning_rates(self, step: int) -> dict[str, float]:
        o = self.config.optim
        means = exponential_decay(o.means_lr * self.scene_scale, o.means_lr_final, step,
                                  self.config.steps)
        return {"means": means, "quats": o.quats_lr, "scales": o.scales_lr,
                OPACITY: o.opacities_lr, "sh0": o.sh0_lr, "shN": o.shN_lr}

    # -- rendering ----------------------------------------------------------------------------

    def primitives(self, params: Params) -> Gaussians:
        return to_gaussians(params)

    def render_options(self) -> dict:
        return {"eps2d": self.config.eps2d, "antialiased": self.config.antialiased}

    # -- strategy moves -----------------------------------------------------------------------

    def sizes(self, params: Params) -> Tensor:
        """The largest standard deviation of each Gaussian."""
        return params["scales"].detach().exp().amax(-1)

    def scale_penalty(self, params: Params) -> Tensor:
        """mean(exp(log scales)) over every axis (3DGS-MCMC's scale L1)."""
        return params["scales"].exp().mean()

    def split(self, params, picked, generator=None) -> tuple[int, dict[str, Tensor]]:
        """3DGS split: two children centred at samples of N(μ, Σ), scales divided by 1.6."""
        means, log_scales = params["means"].detach(), params["scales"].detach()
        scales = log_scales[picked].exp()
        rot = quat_to_rotmat(params["quats"].detach()[picked])                         # [M,3,3]
        z = torch.randn(SPLIT_CHILDREN, len(picked), 3, device=means.device, dtype=means.dtype,
                        generator=generator)
        offsets = (rot[None] @ (scales[None] * z)[..., None])[..., 0]                  # [S,M,3]
        return SPLIT_CHILDREN, {
            "means": (means[picked][None] + offsets).reshape(-1, 3),
            "scales": (scales / SPLIT_SCALE_DIVISOR).log().repeat(SPLIT_CHILDREN, 1),
        }

    def relocation_overrides(self, params, targets, copies) -> dict[str, Tensor]:
        """3DGS-MCMC's rule: the copies keep the peak opacity and the profile's area, so both
        opacity and scale change (:func:`relocation_correction`)."""
        opacity, scales = relocation_correction(torch.sigmoid(params[OPACITY].detach()[targets]),
                                                params["scales"].detach()[targets].exp(), copies)
        return {OPACITY: opacity, "scales": scales.log()}

    def position_noise(self, params, scale, generator=None) -> Tensor:
        """The SGLD position noise Σ·η·scale·σ(−k (o − t)) [N, 3], η ~ N(0, I): shaped by each
        Gaussian's own covariance Σ and gated to vanish for opaque splats (k = 100, t = 0.005;
        3DGS-MCMC's ``train.py``). One native op on the CPU (a few dozen small torch ops cost
        a sixth of a training step), :func:`position_noise_torch` elsewhere; η is drawn by torch
        either way, so both consume the generator alike."""
        means = params["means"]
        eta = torch.randn(means.shape, dtype=means.dtype, device=means.device,
                          generator=generator)
        if means.device.type == "cpu":
            from recon._ops.build import NativeBuildError, load_ops

            try:
                load_ops()
                return torch.ops.recon.gaussian_noise(
                    params["quats"].detach().contiguous(), params["scales"].detach().contiguous(),
                    params[OPACITY].detach().contiguous(), eta, float(scale))
            except NativeBuildError:
                pass
        return position_noise_torch(params, eta, scale)

    # -- downstream ---------------------------------------------------------------------------

    def density(self, params: Params, neighbors: int):
        from recon.models.density import GaussianDensity

        return GaussianDensity(params["means"], params["quats"], params["scales"],
                               torch.sigmoid(params[OPACITY]), neighbors)

    def export(self, format, path, params, normalization, sh_degree) -> Path:
        """The standard 3DGS ``.ply`` or a ``.splat``; SH bands above the active degree are
        written as zeros, so viewers that evaluate every band see exactly what the run renders."""
        from recon.models.splat_files import write_ply, write_splat
        from recon.render.sh import num_bases

        if format not in self.export_formats:
            return super().export(format, path, params, normalization, sh_degree)
        params = dict(params)
        params["shN"] = params["shN"].clone()
        params["shN"][:, num_bases(sh_degree) - 1:] = 0.0
        writer = write_ply if format == "ply" else write_splat
        return writer(path, params, normalization)

    def browser_view(self, params: Params) -> dict[str, np.ndarray]:
        """The arrays viser's Gaussian splats take: centres [N,3], covariances R S² Rᵀ [N,3,3],
        DC colours [N,3] in [0,1] (the browser has no SH: the server-side render shows those),
        and opacities [N,1]."""
        with torch.no_grad():
            cov = covariances(params["quats"].float(), params["scales"].float().exp())
            rgb = sh0_to_rgb(params["sh0"][:, 0, :].float()).clamp(0.0, 1.0)
            alpha = torch.sigmoid(params[OPACITY].float())[:, None]
        return {"centers": params["means"].detach().float().cpu().numpy(),
                "covariances": cov.cpu().numpy(), "rgbs": rgb.cpu().numpy(),
                "opacities": alpha.cpu().numpy()}


# -- the relocation correction ----------------------------------------------------------------

MAX_COPIES = 51
"""Largest number of co-located copies the relocation correction models (3DGS-MCMC's table size);
a Gaussian sampled more often is corrected as if it had this many copies."""


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
    new_o = peak_preserving_opacity(o, n)
    powers = new_o[:, None] ** torch.arange(MAX_COPIES + 1, device=o.device, dtype=torch.float64)
    area = (table[n] * powers).sum(-1)
    factor = o / area
    return new_o.to(opacities.dtype), scales * factor[:, None].to(scales.dtype)


def position_noise_torch(params, eta: Tensor, scale: float) -> Tensor:
    """:meth:`GaussianModel.position_noise` for a given η [N, 3] in torch ops (the reference)."""
    with torch.no_grad():
        opacity = torch.sigmoid(params[OPACITY].detach())
        gate = torch.sigmoid(-NOISE_GATE_SHARPNESS * (opacity - NOISE_GATE_OPACITY))
        cov = covariances(params["quats"].detach(), params["scales"].detach().exp())
        return (cov @ eta[..., None])[..., 0] * (gate * scale)[:, None]


__all__ = ["GaussianModel", "MAX_COPIES", "NOISE_GATE_OPACITY", "NOISE_GATE_SHARPNESS",
           "PARAMETER_NAMES", "create_splats", "splat_parameters", "with_centres",
           "peak_preserving_opacity", "position_noise_torch", "relocation_correction",
           "to_gaussians"]
