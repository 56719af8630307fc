"""Scene representations, one module each, registered by name (``recon fit --model NAME``).

Each is a :class:`recon.models.base.Model`: the trainer, strategies, checkpoints and every tool
that opens a run reach a representation only through that interface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recon.errors import ReconError

if TYPE_CHECKING:  # this package's __init__ stays torch-free: configs import its options
    from recon.models.base import Model

MODEL_NAMES = ("gaussians", "convexes", "triangles", "flexicubes")


def model_class(name: str) -> type[Model]:
    """The model registered under ``name``."""
    if name == "gaussians":
        from recon.models.gaussians import GaussianModel

        return GaussianModel
    if name == "convexes":
        from recon.models.convexes import ConvexModel

        return ConvexModel
    if name == "triangles":
        from recon.models.triangles import TriangleModel

        return TriangleModel
    if name == "flexicubes":
        from recon.models.flexicubes import FlexiCubesModel

        return FlexiCubesModel
    raise ReconError(f"Unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}.")


def build_model(config, scene_scale: float) -> Model:
    """The model a ``FitConfig`` selects, with its settings and the scene's scale."""
    return model_class(config.model)(config, scene_scale)


__all__ = ["MODEL_NAMES", "build_model", "model_class"]
