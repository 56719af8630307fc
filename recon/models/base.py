"""The interface every scene representation offers the trainer and the tools that open a run.

A model's state is a *row set*: a ``torch.nn.ParameterDict`` whose tensors all have one row per
primitive (a Gaussian, a convex, ...), with one Adam per tensor. The row edits of
``recon.strategies.ops`` (append, remove, relocate rows with their Adam moments) therefore work
on every model; what differs per model is only what this class says:

* its parameters: names, initialisation from points (SfM or random), learning rates;
* what it hands ``recon.render.render``: :meth:`primitives`, :meth:`colors` (SH coefficients of
  the active bands) and :meth:`render_options` (projection options), plus :meth:`loss` for terms
  of its own (3DCS's mask);
* the moves strategies make on it: :meth:`split` (children of a densified row),
  :meth:`relocation_overrides` (MCMC's copies that keep the render), :meth:`position_noise`,
  :meth:`sizes` and :meth:`scale_penalty`;
* which strategies and regularizers apply (:attr:`strategies`, :attr:`regularizers`);
* what it exports (:meth:`export`) and the density field mesh extraction may use
  (:meth:`density`), and what the viewer's browser draws (:meth:`browser_view`).

Every model stores its opacity logits under :data:`OPACITY` and its SH colour under ``sh0``
[N, 1, 3] and ``shN`` [N, K-1, 3], so the trainer, MCMC and the viewer read those without
knowing the model. No module outside a model's own names its other parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import Tensor

from recon.errors import ReconError
from recon.render.sh import num_bases, rgb_to_sh0

if TYPE_CHECKING:
    import numpy as np

    from recon.cameras import Camera, Similarity
    from recon.render import RenderResult

OPACITY = "opacities"
"""The opacity logits [N] of every model."""

Params = Mapping[str, Tensor]


class Model:
    """Base of the models: the SH colour and opacity every model shares, and the interface."""

    name: ClassVar[str]
    """The ``--model`` value (also recorded in checkpoints)."""
    noun: ClassVar[str]
    """What one row is called in messages and statistics ("Gaussians", "convexes")."""
    position: ClassVar[str]
    """The parameter that carries the rows' positions: its learning rate decays over the run
    (and sets the MCMC noise), and :meth:`position_noise` is added to it."""
    strategies: ClassVar[tuple[str, ...]] = ("default", "mcmc")
    """The ``--strategy`` values this model supports."""
    regularizers: ClassVar[tuple[str, ...]] = ("none",)
    """The ``--reg`` values this model supports."""
    export_formats: ClassVar[tuple[str, ...]] = ()
    """``recon export --format`` values that export this model itself."""
    use_depth: ClassVar[bool] = False
    """Does :meth:`loss` use the dataset's depth maps (the trainer then loads them)?"""
    needs_masks_or_depth: ClassVar[bool] = False
    """Is the geometry fitted to masks (alpha) or depth maps only, so a dataset with neither is
    refused before any work?"""
    starts_from_points: ClassVar[bool] = True
    """Does :meth:`initialize` place rows at the initial points (so a posed dataset without
    sparse points is worth triangulating first)?"""

    def __init__(self, config, scene_scale: float) -> None:
        """``config`` is the run's ``FitConfig``; ``scene_scale`` its scene radius (world units)."""
        self.config = config
        self.scene_scale = float(scene_scale)

    @classmethod
    def check_supported(cls, strategy: str, reg: str) -> None:
        """Refuse a strategy or regularizer the model does not support, naming what it does."""
        if strategy not in cls.strategies:
            raise ReconError(f"--strategy {strategy} does not apply to --model {cls.name}; "
                             f"choose one of {', '.join(cls.strategies)}.")
        if reg not in cls.regularizers:
            raise ReconError(f"--reg {reg} does not apply to --model {cls.name}; it supports "
                             f"{', '.join(cls.regularizers)}.")

    # -- parameters ---------------------------------------------------------------------------

    def initialize(self, points: np.ndarray, colors: np.ndarray, generator: torch.Generator,
                   device: torch.device, cameras=()) -> torch.nn.ParameterDict:
        """Rows for ``points`` [N, 3] (normalised frame) with RGB ``colors`` [N, 3] in [0, 1];
        ``cameras`` are the training cameras (for sizes that are measured in pixels)."""
        raise NotImplementedError

    def learning_rates(self, step: int) -> dict[str, float]:
        """The learning rate of every parameter at ``step`` (a pure function of the step)."""
        raise NotImplementedError

    @staticmethod
    def count(params: Params) -> int:
        """Number of rows (primitives)."""
        return int(params[OPACITY].shape[0])

    # -- rendering ----------------------------------------------------------------------------

    def primitives(self, params: Params):
        """The renderable primitive set (sharing storage with ``params``, so gradients flow)."""
        raise NotImplementedError

    @staticmethod
    def colors(params: Params, sh_degree: int) -> Tensor:
        """SH coefficients [N, K, 3] of the bands up to ``sh_degree`` (unused bands cost
        nothing)."""
        if sh_degree == 0:
            return params["sh0"]
        return torch.cat([params["sh0"], params["shN"][:, :num_bases(sh_degree) - 1]], 1)

    def render_options(self) -> dict:
        """Keyword options of the primitive's projection (``render(**options)``)."""
        return {}

    def loss(self, params: Params, step: int = 0, result: RenderResult | None = None,
             camera: Camera | None = None, alpha: Tensor | None = None,
             depth: Tensor | None = None) -> Tensor | None:
        """A term of the model's own added to the training loss (None: nothing); ``result`` is
        the step's render of ``camera`` (with depth and normals when :meth:`needs_normals`),
        ``alpha`` [H, W] the training image's alpha and ``depth`` [H, W] its depth map (camera
        z, 0 = unknown; only for models that :attr:`use_depth`), None where there is none."""
        return None

    def needs_normals(self, step: int) -> bool:
        """Should the training render include depth and normal maps for :meth:`loss`?"""
        return False

    def after_step(self, params: Params, optimizers: dict, step: int) -> None:
        """Edits of the model's own schedule after each training step (default: none)."""

    def backward_signals(self) -> list[Tensor]:
        """Tensors the model caught during the last backward pass for its strategy (e.g. the
        convexes' σ gradient); under torchrun they are averaged over the ranks in place, like
        the gradients, so every rank densifies alike (default: none)."""
        return []

    # -- strategy moves -----------------------------------------------------------------------

    def sizes(self, params: Params) -> Tensor:
        """[N] world size of each row (densification and pruning compare it to the scene)."""
        raise NotImplementedError

    def scale_penalty(self, params: Params) -> Tensor:
        """The mean size term MCMC's scale regularizer adds (differentiable)."""
        raise NotImplementedError

    def split(self, params: Params, picked: Tensor,
              generator: torch.Generator | None = None) -> tuple[int, dict[str, Tensor]]:
        """Children of the rows ``picked`` [M]: (children per row C, values [C·M, ...] of the
        parameters the split changes, child c of row m at c·M + m); the other parameters are
        copied from the parent."""
        raise ReconError(f"The {self.name} model has no split move.")

    def relocation_overrides(self, params: Params, targets: Tensor,
                             copies: Tensor) -> dict[str, Tensor]:
        """New values of the rows ``targets`` [M] once each has ``copies`` [M] co-located copies
        (itself included), chosen so that together they render like the original (at least the
        opacity, 1 − (1 − o)^(1/n) keeps the peak)."""
        raise NotImplementedError

    def position_noise(self, params: Params, scale: float,
                       generator: torch.Generator | None = None) -> Tensor:
        """MCMC's exploration noise, shaped like ``params[self.position]``."""
        raise NotImplementedError

    # -- downstream ---------------------------------------------------------------------------

    def density(self, params: Params, neighbors: int):
        """The density field ``d(points, gradient) -> (d, ∇d)`` mesh extraction samples, or None
        when the model has none (then only rendered depth is meshed)."""
        return None

    def export(self, format: str, path: Path, params: Params, normalization: Similarity,
               sh_degree: int) -> Path:
        """Write ``params`` as ``format`` (one of :attr:`export_formats`) in the input's frame."""
        raise ReconError(f"The {self.name} model cannot be exported as {format!r}.")

    def browser_view(self, params: Params):
        """What the viewer's browser draws: the arrays of viser's Gaussian splats (a dict) or a
        ``trimesh.Trimesh``."""
        raise NotImplementedError


def write_mesh(mesh, path: Path, normalization: Similarity | None) -> Path:
    """Write a model-frame ``trimesh.Trimesh`` to ``path`` (the suffix picks the format), mapped
    to the input's frame by the inverse of ``normalization``: how mesh-like models export."""
    import numpy as np

    if normalization is not None:
        mesh.vertices = normalization.inverse().apply(np.asarray(mesh.vertices))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mesh.export(path)
    return path


def sh_rows(colors: Tensor, max_sh_degree: int) -> dict[str, Tensor]:
    """``sh0`` / ``shN`` rows for RGB ``colors`` [N, 3] in [0, 1]: the DC band renders the colour,
    the higher bands start at zero."""
    rgb = colors.clamp(0.0, 1.0)
    return {"sh0": rgb_to_sh0(rgb)[:, None, :],
            "shN": torch.zeros(len(rgb), num_bases(max_sh_degree) - 1, 3)}


def peak_preserving_opacity(opacities: Tensor, copies: Tensor | int) -> Tensor:
    """1 − (1 − o)^(1/n): the opacity of each of n stacked copies that composite to o (``copies``
    [M] per row, or one Python int for all: a scalar exponent, so n = 2 is exactly the square
    root, as 3DGS's revised split opacity has always been computed)."""
    exponent = 1.0 / copies if isinstance(copies, int) else 1.0 / copies.to(opacities.dtype)
    return 1.0 - torch.pow(1.0 - opacities, exponent)


def sh_degree_of(params: Params) -> int:
    """The SH degree the model's ``shN`` holds bands for."""
    from recon.render.sh import MAX_DEGREE

    k = params["shN"].shape[1] + 1
    return next(d for d in range(MAX_DEGREE + 1) if num_bases(d) == k)


def sh_coefficients(params: Params) -> Tensor:
    """All SH coefficients [N, K, 3] of a model, DC band first."""
    return torch.cat([params["sh0"], params["shN"]], 1)


def as_parameters(values: Mapping[str, Tensor], device) -> torch.nn.ParameterDict:
    """A ParameterDict of contiguous leaf parameters on ``device`` (in the order given)."""
    return torch.nn.ParameterDict(
        {k: torch.nn.Parameter(v.to(device).contiguous()) for k, v in values.items()})


def create_optimizers(params: torch.nn.ParameterDict, lrs: dict[str, float],
                      eps: float = 1e-15, batch_size: int = 1) -> dict[str, torch.optim.Adam]:
    """One Adam per parameter (gsplat's convention), so row edits can move each one's state.

    The fused implementation updates each tensor in one pass (about 6x faster on the CPU than
    the default per-op update, which was a sixth of a training step at 50k Gaussians). For
    batches of B images the betas are 1 - B(1 - β) (gsplat's batch rule: the moments forget at
    the same rate per image seen); the learning rates' √B is the trainer's.
    """
    betas = (0.9, 0.999)
    if batch_size > 1:
        betas = tuple(max(1.0 - batch_size * (1.0 - b), 0.0) for b in betas)
    return {name: torch.optim.Adam([{"params": [params[name]], "lr": lrs[name], "name": name}],
                                   eps=eps, betas=betas, fused=True)
            for name in params.keys()}


__all__ = ["OPACITY", "Model", "Params", "as_parameters", "create_optimizers",
           "peak_preserving_opacity", "sh_coefficients", "sh_degree_of", "sh_rows", "write_mesh"]
