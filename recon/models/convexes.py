"""Smooth convexes (3D Convex Splatting, Held et al. 2025) as a model.

The row set holds

* ``points`` [N, K, 3] the K free points whose hull is the convex (world positions),
* ``deltas`` [N] log smoothness δ, ``sigmas`` [N] log sharpness σ,
* ``opacities`` [N] opacity logits,
* ``masks`` [N] mask logits (Compact-3DGS's mask, as 3DCS): the renderer multiplies the opacity
  by the straight-through binarisation 1[sigmoid(m) > 0.01], and the loss adds
  β·mean(sigmoid(m)), so convexes the image does not need are switched off and pruned,
* ``sh0`` [N, 1, 3], ``shN`` [N, K'-1, 3] SH colour, evaluated once per convex along the
  camera -> centroid direction.

Initialisation (3DCS): one convex per point, its K points on a Fibonacci sphere of radius
``size`` × the mean distance to the 3 nearest points, δ = ``delta`` / that spacing, σ, opacity
and mask as configured; δ and σ are given for a 1000-px focal length and rescaled to the
training cameras' (:func:`pixel_scale`). Learning rates are the paper's; the points' rate is
multiplied by the scene scale and decays exponentially.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from recon.models.base import OPACITY, Model, Params, as_parameters, sh_rows
from recon.models.points import mean_neighbour_distance
from recon.primitives.convexes import Convexes
from recon.schedules import exponential_decay

MASK_THRESHOLD = 0.01
"""A convex is drawn while sigmoid(mask logit) exceeds this (3DCS's binarisation)."""
INITIAL_MASK_LOGIT = 1.0
"""Masks start on (sigmoid 0.73), far from the threshold."""
CHILD_SHRINK = 0.63
"""A split child is its parent shrunk by this about one of the parent's points (3DCS: 0.63;
0.7 indoors, 0.6 outdoors)."""
CHILD_LOG_SIGMA_FACTOR = 0.88
"""Children's log σ is the parent's × this: 3DCS scales the raw log σ, which raises σ (sharper
children) while σ < 1, as it is from the start."""
CHILD_OPACITY_FACTOR = 0.5
"""Children's opacity is the parent's × this."""
NOISE_GATE_SHARPNESS = 100.0  # the Gaussians' MCMC gate σ(−k (o − t)): noise only where
NOISE_GATE_OPACITY = 0.005    # the convex is nearly transparent


REFERENCE_FOCAL = 1000.0
"""Focal length (px) at which the configured δ₀ and σ₀ apply: the order of 3DCS's training
images (about a thousand pixels wide)."""


def pixel_scale(cameras) -> float:
    """(REFERENCE_FOCAL / f)² for the cameras' mean focal length f (1 without cameras).

    The kernel's lines L_j = n_j·q + c_j have unnormalised normals (|n_j| = edge length in
    pixels), so L is in pixels², and a convex of fixed world size has L ∝ f². Its corner rounding
    and edge softness relative to its size stay the same only if dδ and dσ scale as 1/f²: without
    this, 3DCS's σ₀ at a 100-px image draws every convex as a faint blob over the whole image.
    """
    focal = [0.5 * (c.fx + c.fy) for c in cameras]
    return (REFERENCE_FOCAL / float(np.mean(focal))) ** 2 if focal else 1.0


def fibonacci_sphere(k: int) -> Tensor:
    """[k, 3] unit vectors spread evenly over the sphere (the golden-angle spiral)."""
    i = torch.arange(k, dtype=torch.float64) + 0.5
    z = 1.0 - 2.0 * i / k
    r = torch.sqrt(1.0 - z * z)
    phi = math.pi * (3.0 - math.sqrt(5.0)) * i
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], -1).float()


class ConvexModel(Model):
    """3D smooth convexes: the hull of K points, a smoothness δ and a sharpness σ each."""

    name = "convexes"
    noun = "convexes"
    position = "points"
    export_formats = ("ply", "glb", "obj")

    def __init__(self, config, scene_scale: float) -> None:
        super().__init__(config, scene_scale)
        self.options = config.convexes
        self._sigma_grad: Tensor | None = None

    # -- parameters ---------------------------------------------------------------------------

    def initialize(self, points, colors, generator, device, cameras=()) -> torch.nn.ParameterDict:
        """3DCS's initialisation (module docstring), with δ₀ and σ₀ rescaled to the cameras'
        focal length (:func:`pixel_scale`)."""
        o = self.options
        centres = torch.as_tensor(np.asarray(points, dtype=np.float32))
        n = len(centres)
        spacing = torch.as_tensor(mean_neighbour_distance(centres.numpy()), dtype=torch.float32)
        offsets = fibonacci_sphere(o.points)[None] * (o.size * spacing)[:, None, None]
        colours = sh_rows(torch.as_tensor(np.asarray(colors, dtype=np.float32)),
                          self.config.max_sh_degree)
        scale = pixel_scale(cameras)
        return as_parameters({
            "points": centres[:, None, :] + offsets,
            "deltas": torch.log(o.delta * scale / spacing),
            "sigmas": torch.full((n,), math.log(o.sigma * scale)),
            OPACITY: torch.full((n,), math.log(o.opacity / (1.0 - o.opacity))),
            "masks": torch.full((n,), INITIAL_MASK_LOGIT),
            **colours,
        }, device)

    def learning_rates(self, step: int) -> dict[str, float]:
        o = self.options
        points = exponential_decay(o.points_lr * self.scene_scale, o.points_lr_final, step,
                                   self.config.steps)
        return {"points": points, "deltas": o.delta_lr, "sigmas": o.sigma_lr,
                OPACITY: o.opacities_lr, "masks": o.mask_lr, "sh0": o.sh0_lr, "shN": o.shN_lr}

    # -- rendering ----------------------------------------------------------------------------

    def primitives(self, params: Params) -> Convexes:
        """The convexes with the mask folded into the opacity (straight through: the forward
        pass uses the binary mask, the gradient flows to the soft one). While gradients are
        on, the gradient of σ is caught for densification (:meth:`densification_signal`)."""
        log_sigma = params["sigmas"]
        if log_sigma.requires_grad and torch.is_grad_enabled():
            log_sigma = log_sigma.view_as(log_sigma)  # a non-leaf to hang the hook on
            log_sigma.register_hook(self._catch_sigma_grad)
        soft = torch.sigmoid(params["masks"])
        mask = (soft > MASK_THRESHOLD).to(soft.dtype) + soft - soft.detach()
        opacity = torch.sigmoid(params[OPACITY]) * mask
        return Convexes(points=params["points"], log_delta=params["deltas"], log_sigma=log_sigma,
                        opacity_logit=torch.logit(opacity, eps=1e-6))

    def _catch_sigma_grad(self, grad: Tensor) -> None:
        self._sigma_grad = grad.detach().clone()  # its own storage: ranks average it in place

    def backward_signals(self) -> list[Tensor]:
        return [] if self._sigma_grad is None else [self._sigma_grad]

    def loss(self, params: Params, step=0, result=None, camera=None, alpha=None,
             depth=None) -> Tensor | None:
        """β·mean(sigmoid(mask)): switches off convexes the images do not need."""
        weight = self.options.mask_weight
        return weight * torch.sigmoid(params["masks"]).mean() if weight > 0 else None

    # -- strategy moves -----------------------------------------------------------------------

    def densification_signal(self, params: Params) -> Tensor | None:
        """|∂L/∂σ| [N] of the last backward pass (3DCS's split criterion), or None."""
        grad, self._sigma_grad = self._sigma_grad, None
        if grad is None or len(grad) != len(params["sigmas"]):
            return None
        return grad.abs() / params["sigmas"].detach().exp()  # ∂L/∂σ = ∂L/∂log σ / σ

    @staticmethod
    def children_per_split(params: Params) -> int:
        return int(params["points"].shape[1])

    @staticmethod
    def masked_out(params: Params, threshold: float) -> Tensor:
        return torch.sigmoid(params["masks"].detach()) <= threshold

    def sizes(self, params: Params) -> Tensor:
        """The largest per-axis standard deviation of each convex's points (3DCS's "scale")."""
        return params["points"].detach().std(dim=1, unbiased=False).amax(-1)

    def scale_penalty(self, params: Params) -> Tensor:
        """Mean distance of the points to their centroid (MCMC's size L1 for convexes)."""
        points = params["points"]
        return (points - points.mean(1, keepdim=True)).norm(dim=-1).mean()

    def split(self, params, picked, generator=None) -> tuple[int, dict[str, Tensor]]:
        """3DCS split: K children, child j the parent shrunk by 0.63 about its point j (so the
        children stay inside the parent and together cover most of it), σ sharpened, opacity
        halved."""
        points = params["points"].detach()[picked]                                    # [M,K,3]
        k = points.shape[1]
        anchors = points.transpose(0, 1)[:, :, None, :]                              # [K,M,1,3]
        children = anchors + CHILD_SHRINK * (points[None] - anchors)                 # [K,M,K,3]
        opacity = torch.sigmoid(params[OPACITY].detach()[picked]) * CHILD_OPACITY_FACTOR
        return k, {
            "points": children.reshape(-1, k, 3),
            "sigmas": (params["sigmas"].detach()[picked] * CHILD_LOG_SIGMA_FACTOR).repeat(k),
            OPACITY: torch.logit(opacity).repeat(k),
        }

    def relocation_overrides(self, params, targets, copies) -> dict[str, Tensor]:
        """Stacked copies keep the peak opacity, 1 − (1 − o)^(1/n); the shape is kept (a
        convex's profile is flat-topped, so no size correction keeps its area better)."""
        from recon.models.gaussians import peak_preserving_opacity

        opacity = torch.sigmoid(params[OPACITY].detach()[targets])
        return {OPACITY: peak_preserving_opacity(opacity, copies)}

    def position_noise(self, params, scale, generator=None) -> Tensor:
        """A translation of every point of a convex by size²·η·scale·gate, η ~ N(0, I): the
        Gaussians' SGLD noise with the convex's size standing in for the covariance."""
        with torch.no_grad():
            points = params["points"].detach()
            opacity = torch.sigmoid(params[OPACITY].detach())
            gate = torch.sigmoid(-NOISE_GATE_SHARPNESS * (opacity - NOISE_GATE_OPACITY))
            eta = torch.randn(points.shape[0], 3, dtype=points.dtype, device=points.device,
                              generator=generator)
            step = eta * (self.sizes(params) ** 2 * gate * scale)[:, None]
            return step[:, None, :].expand_as(points)

    # -- downstream ---------------------------------------------------------------------------

    def export(self, format, path, params, normalization, sh_degree) -> Path:
        """``ply``: one row per convex (see ``convex_files``); ``glb`` / ``obj``: every convex
        as its closed 3D hull, coloured by its DC colour."""
        from recon.models import convex_files

        if format not in self.export_formats:
            return super().export(format, path, params, normalization, sh_degree)
        if format == "ply":
            return convex_files.write_ply(path, params, normalization, sh_degree)
        return convex_files.write_hulls(path, params, normalization)

    def browser_view(self, params: Params):
        """The hull meshes (DC colour; the server-side render shows the soft edges and SH)."""
        from recon.models.convex_files import hull_mesh

        return hull_mesh(params)


__all__ = ["ConvexModel", "MASK_THRESHOLD", "fibonacci_sphere"]
