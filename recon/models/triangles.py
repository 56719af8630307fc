"""Triangle soups (Triangle Splatting, Held et al. 2025) as a model.

The row set holds

* ``vertices`` [N, 3, 3] the three corners of each triangle (world positions),
* ``sigmas`` [N] log window smoothness σ (σ -> 0: a solid triangle),
* ``opacities`` [N] opacity logits,
* ``sh0`` [N, 1, 3], ``shN`` [N, K-1, 3] SH colour, evaluated once per triangle along the
  camera -> centre direction; with ``--triangles.vertex-colors`` [N, 1, 9] / [N, K-1, 9], one
  set per corner (evaluated along the same direction, interpolated by barycentrics).

Initialisation (Triangle Splatting): one triangle per point, its corners at the point plus
2.23 × the mean 3-NN distance along three random unit directions, σ₀ = 1.16, o₀ = 0.28.
Learning rates are the reference's (corners 0.0018 × the scene scale decaying to 1/100, σ
0.0008, opacity 0.014; colour as 3DGS), and so is the opacity L1 term of the loss
(0.0055 · mean opacity). Densification is Triangle Splatting's rounds
(:mod:`recon.strategies.triangle_rounds`: ``split`` subdivides a triangle at its edge midpoints
into 4, ``in_plane_copies`` clones small ones); ``--triangles.opaque-finish`` ends the run with
solid, opaque triangles (``after_step``), and mesh exports weld corners that (nearly) coincide.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from recon.models.base import OPACITY, Model, Params, as_parameters, sh_rows, write_mesh
from recon.models.points import mean_neighbour_distance
from recon.primitives.triangles import Triangles
from recon.render.normals import depth_normals
from recon.schedules import exponential_decay

FINISH_SIGMA = 1e-3  # the opaque finish's σ: r^0.001 > 0.99 for r > 5e-5 (solid but for a sliver)
FINISH_OPACITY = 1.0 - 1e-4
# The finish's push toward opaque: + FINISH_PUSH / mean(opacity) in the loss. The reference adds
# 1 / (0.05 mean opacity) = 20 / mean; in short runs that turned every triangle opaque (lego_100,
# 1000 steps, the last 30 % finishing: 12.9 dB after it; 0.2: 18.3 dB; 0.02: 19.4 dB).
FINISH_PUSH = 0.02
FINISH_PRUNES = 10           # prune rounds over the finish's second half, at thresholds ...
FINISH_PRUNE_FROM, FINISH_PRUNE_TO = 0.1, 0.7  # ... rising from 0.1 to 0.7 (the reference's)


class TriangleModel(Model):
    """A soup of independent soft-edged triangles."""

    name = "triangles"
    noun = "triangles"
    position = "vertices"
    strategies = ("mcmc",)
    regularizers = ("none", "connectivity")
    export_formats = ("ply", "glb", "obj")

    def __init__(self, config, scene_scale: float) -> None:
        super().__init__(config, scene_scale)
        self.options = config.triangles

    # -- parameters ---------------------------------------------------------------------------

    def initialize(self, points, colors, generator, device, cameras=()) -> torch.nn.ParameterDict:
        o = self.options
        centres = torch.as_tensor(np.asarray(points, dtype=np.float32))
        n = len(centres)
        spacing = torch.as_tensor(mean_neighbour_distance(centres.numpy()), dtype=torch.float32)
        dirs = torch.randn(n, 3, 3, generator=generator)
        dirs = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        sh = sh_rows(torch.as_tensor(np.asarray(colors, dtype=np.float32)),
                     self.config.max_sh_degree)
        if o.vertex_colors:  # each corner's coefficients side by side: [N, K, 3 corners × RGB]
            sh = {k: v.repeat(1, 1, 3) for k, v in sh.items()}
        return as_parameters({
            "vertices": centres[:, None, :] + o.size * spacing[:, None, None] * dirs,
            "sigmas": torch.full((n,), math.log(o.sigma)),
            OPACITY: torch.full((n,), math.log(o.opacity / (1.0 - o.opacity))),
            **sh,
        }, device)

    def learning_rates(self, step: int) -> dict[str, float]:
        o = self.options
        vertices = exponential_decay(o.vertices_lr * self.scene_scale, o.vertices_lr_final, step,
                                     self.config.steps)
        return {"vertices": vertices, "sigmas": o.sigma_lr, OPACITY: o.opacities_lr,
                "sh0": o.sh0_lr, "shN": o.shN_lr}

    # -- rendering ----------------------------------------------------------------------------

    def colors(self, params: Params, sh_degree: int) -> Tensor:
        """SH coefficients [N, K, 3] (one colour per triangle), or with vertex colours
        [N, 3, K, 3] (per corner, interpolated across the triangle by barycentrics, RTS)."""
        coefficients = Model.colors(params, sh_degree)
        if not has_vertex_colors(params):
            return coefficients
        return coefficients.unflatten(-1, (3, 3)).transpose(1, 2)

    def primitives(self, params: Params) -> Triangles:
        return Triangles(vertices=params["vertices"], log_sigma=params["sigmas"],
                         opacity_logit=params[OPACITY])

    def loss(self, params: Params, step: int = 0, result=None, camera=None, alpha=None,
             depth=None) -> Tensor | None:
        """λ_opacity · mean(opacity) (unneeded triangles fade and get recycled), while
        densifying λ_size / mean(area) (against shrinking to nothing), during the opaque finish
        mean(σ) + FINISH_PUSH / mean(opacity) (the reference's push), and after
        ``normal_start`` of the run λ_normal · mean(1 − n_rendered · n_depth): the blended face
        normals should agree with the normals of the rendered depth (2DGS's normal
        consistency), which lays the triangles flat on the surface they draw."""
        o = self.options
        terms = []
        if o.opacity_weight > 0:
            terms.append(o.opacity_weight * torch.sigmoid(params[OPACITY]).mean())
        if o.size_weight > 0 and step < o.densify.refine_stop_iter:
            v = params["vertices"]
            area = 0.5 * torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]).norm(dim=-1)
            terms.append(o.size_weight / area.mean().clamp_min(1e-30))
        if self.needs_normals(step) and result is not None and result.normals is not None:
            rendered = result.normals[0] if result.normals.dim() == 4 else result.normals
            depth = result.depth[0] if result.depth.dim() == 3 else result.depth
            agreement = (rendered * depth_normals(depth, camera)).sum(0)
            terms.append(o.normal_weight * (1.0 - agreement).mean())
        if self.finishing(step) is not None:  # the finish pushes towards solid and opaque
            opacity = torch.sigmoid(params[OPACITY]).mean()
            terms.append(params["sigmas"].exp().mean() + FINISH_PUSH / opacity)
        return sum(terms) if terms else None

    def needs_normals(self, step: int) -> bool:
        o = self.options
        return o.normal_weight > 0 and step >= o.normal_start * self.config.steps

    def finishing(self, step: int) -> float | None:
        """Progress t in [0, 1] of the opaque finish at ``step`` (None: not finishing)."""
        total, fraction = self.config.steps, self.options.opaque_finish
        start = (1.0 - fraction) * total
        if fraction <= 0 or step + 1 < start:
            return None
        return min(1.0, (step + 1 - start) / (total - start))

    def after_step(self, params: Params, optimizers: dict, step: int) -> None:
        """The opaque finish's edits (the loss pushes too, see :meth:`loss`): σ is capped at
        σ₀ (1 − t) (at least FINISH_SIGMA), so the triangles turn solid; over the second half,
        FINISH_PRUNES times, the triangles below an opacity rising from 0.1 to 0.7 are removed
        (the reference's game-engine schedule); the last step makes the survivors opaque."""
        from recon.strategies import ops

        t = self.finishing(step)
        if t is None:
            return
        with torch.no_grad():
            cap = max(FINISH_SIGMA, self.options.sigma * (1.0 - t))
            params["sigmas"].clamp_(max=math.log(cap))
        span = self.options.opaque_finish * self.config.steps
        every = max(1, round(span / 2 / FINISH_PRUNES))
        if t >= 0.5 and (step % every == 0 or t == 1.0):
            threshold = FINISH_PRUNE_FROM + (FINISH_PRUNE_TO - FINISH_PRUNE_FROM) * (2 * t - 1)
            transparent = torch.sigmoid(params[OPACITY].detach()) < threshold
            if bool(transparent.any()) and not bool(transparent.all()):
                ops.remove(params, optimizers, transparent)
        if t == 1.0:
            with torch.no_grad():
                params[OPACITY].clamp_(min=math.log(FINISH_OPACITY / (1.0 - FINISH_OPACITY)))

    # -- strategy moves -----------------------------------------------------------------------

    def split(self, params, picked, generator=None) -> tuple[int, dict[str, Tensor]]:
        """Midpoint subdivision: the three corner triangles and the middle one cover the parent
        exactly (colour, σ and opacity copied)."""
        values = {"vertices": _subdivide(params["vertices"].detach()[picked], dim=1)}
        if has_vertex_colors(params):  # corner colours: the midpoints take the edge's mean
            for name in ("sh0", "shN"):
                corners_sh = params[name].detach()[picked].unflatten(-1, (3, 3))  # [M,K,3,3]
                values[name] = _subdivide(corners_sh, dim=2).flatten(-2)
        return 4, values

    def window_sigma(self, params: Params) -> Tensor:
        """[N] the window smoothness σ (small: a sharp-edged, solid triangle)."""
        return params["sigmas"].detach().exp()

    def in_plane_copies(self, params: Params, picked: Tensor, spread: float,
                        generator=None) -> dict[str, Tensor]:
        """Copies of the ``picked`` triangles moved within their own plane: a uniform offset of
        up to ± ½ · ``spread`` × the triangle's box size per axis, its normal part removed."""
        v = params["vertices"].detach()[picked]                                       # [M,3,3]
        normal = face_normals(v)
        box = v.amax(1) - v.amin(1)
        offset = (torch.rand(v.shape[0], 3, dtype=v.dtype, device=v.device,
                             generator=generator) - 0.5) * spread * box
        offset = offset - (offset * normal).sum(-1, keepdim=True) * normal
        return {"vertices": v + offset[:, None, :]}

    # -- downstream ---------------------------------------------------------------------------

    def export(self, format, path, params, normalization, sh_degree) -> Path:
        """The soup as a mesh (ply/glb/obj), one DC colour per triangle on its corners, in the
        input frame, corners closer than ``weld`` × the median edge length merged."""
        if format not in self.export_formats:
            return super().export(format, path, params, normalization, sh_degree)
        return write_mesh(soup_mesh(params, self.options.weld), path, normalization)

    def browser_view(self, params: Params):
        return soup_mesh(params)


def _subdivide(x: Tensor, dim: int) -> Tensor:
    """The 4 midpoint children of per-corner values ``x`` (corners along ``dim``), stacked child
    by child along the first axis (child c of row m at c·M + m): the three corner triangles and
    the middle one."""
    a, b, c = x.unbind(dim)
    ab, bc, ca = (a + b) / 2, (b + c) / 2, (c + a) / 2
    children = [torch.stack(t, dim) for t in ((a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca))]
    return torch.cat(children)


def has_vertex_colors(params: Params) -> bool:
    """Whether the rows hold one colour per corner (``sh0`` of 9 channels) rather than one."""
    return params["sh0"].shape[-1] == 9


def corners(params: Params) -> Tensor:
    """[N, 3, 3] the corners of a triangle row set (the parameter itself, for regularizers)."""
    return params["vertices"]


def face_normals(vertices: Tensor) -> Tensor:
    """[N, 3] unit normals of [N, 3, 3] triangles, by the corners' winding (zero when
    degenerate)."""
    n = torch.linalg.cross(vertices[:, 1] - vertices[:, 0], vertices[:, 2] - vertices[:, 0])
    return n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def soup_mesh(params: Params, weld: float = 0.0):
    """A ``trimesh.Trimesh`` of the soup coloured by each triangle's (or corner's) DC colour (same
    frame as ``params``): one face per triangle, corners closer than ``weld`` × the median edge length
    merged (:func:`recon.mesh.soup.weld`; 0: none merged, 3 private corners per face)."""
    import trimesh

    from recon.mesh.soup import weld as weld_corners
    from recon.render.sh import sh0_to_rgb

    v = params["vertices"].detach().double().cpu()
    n = len(v)
    dc = params["sh0"].detach().float().cpu()[:, 0, :].reshape(n, -1, 3)   # [N, 1 or 3, 3]
    rgb = sh0_to_rgb(dc).clamp(0.0, 1.0).expand(n, 3, 3)
    colours = (rgb * 255).round().to(torch.uint8).numpy()
    if weld <= 0:
        return trimesh.Trimesh(v.reshape(-1, 3).numpy(), np.arange(3 * n).reshape(n, 3),
                               vertex_colors=colours.reshape(-1, 3), process=False)
    edges = (v - v.roll(-1, dims=1)).norm(dim=-1)
    tolerance = weld * float(edges.median()) if n else 0.0
    return weld_corners(v.numpy(), colours, tolerance)


__all__ = ["TriangleModel", "corners", "face_normals", "has_vertex_colors", "soup_mesh"]
