"""What the viewer and `recon render` draw: a fitted model rendered by recon into an image.

:class:`SplatView` holds one snapshot of Gaussian splats (CPU or training-device tensors, never
the optimiser's live parameters: the trainer updates those in place) and renders it in one of
the render modes as a uint8 RGB image, ready for a JPEG or a video frame:

* ``rgb``: the colours with view-dependent SH, over the run's background;
* ``depth``: expected camera depth through the turbo colour map, near = warm; the range is the
  2nd..98th percentile of the drawn pixels, so one far splat does not flatten the picture;
* ``normal``: camera-space normals (x right, y down, z forward) mapped from [-1, 1] to [0, 1];
* ``alpha``: accumulated opacity as grey.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from recon.cameras import Camera
from recon.models.base import Model

RENDER_MODES = ("rgb", "depth", "normal", "alpha")


@dataclass
class SplatView:
    """A snapshot of a model's parameters and how to draw them."""

    model: Model
    """The ``recon.models.base.Model`` the parameters belong to."""
    params: Mapping[str, Tensor]
    sh_degree: int
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    backend: str = "auto"

    @property
    def count(self) -> int:
        return self.model.count(self.params)

    def render(self, camera: Camera, mode: str = "rgb") -> np.ndarray:
        """uint8 [H, W, 3] image of the splats seen by ``camera`` in render mode ``mode``."""
        from recon.errors import ReconError
        from recon.render import render

        if mode not in RENDER_MODES:
            raise ReconError(f"Unknown render mode {mode!r}; choose one of "
                             f"{', '.join(RENDER_MODES)}.")
        model, params = self.model, self.params
        primitives = model.primitives(params)
        colors = model.colors(params, self.sh_degree)
        background = torch.tensor(self.background, dtype=colors.dtype, device=colors.device)
        with torch.no_grad():
            out = render(primitives, camera, colors, background=background,
                         backend=self.backend, sh_degree=self.sh_degree,
                         depth=mode == "depth", normals=mode == "normal",
                         **model.render_options())
        if mode == "rgb":
            image = out.features.permute(1, 2, 0)
        elif mode == "alpha":
            image = out.alpha[..., None].expand(-1, -1, 3)
        elif mode == "depth":
            image = _colour_depth(out.depth, out.alpha)
        else:
            image = _colour_normals(out.normals, out.alpha)
        return (image.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).cpu().numpy()


def _colour_depth(depth: Tensor, alpha: Tensor) -> Tensor:
    from matplotlib import colormaps

    drawn = alpha > 0.5
    if not bool(drawn.any()):
        return torch.zeros(*depth.shape, 3, device=depth.device)
    values = depth[drawn]
    lo, hi = torch.quantile(values, torch.tensor([0.02, 0.98], device=values.device)).tolist()
    t = ((depth - lo) / max(hi - lo, 1e-6)).clamp(0.0, 1.0)
    lut = torch.as_tensor(colormaps["turbo"](np.linspace(0, 1, 256))[:, :3], dtype=torch.float32,
                          device=depth.device)
    rgb = lut[((1.0 - t) * 255).round().long()]
    return torch.where(drawn[..., None], rgb, torch.zeros_like(rgb))


def _colour_normals(normals: Tensor, alpha: Tensor) -> Tensor:
    # Σ w n is not unit length where the weights do not sum to one: renormalise first.
    n = torch.nn.functional.normalize(normals.permute(1, 2, 0), dim=-1)
    rgb = n * 0.5 + 0.5
    return torch.where((alpha > 0.05)[..., None], rgb, torch.zeros_like(rgb))


__all__ = ["RENDER_MODES", "SplatView"]
