"""Scene representations. Importing this package registers every built-in primitive type with
the renderer (see recon.primitives.base)."""

from recon.primitives import gaussians
from recon.primitives.gaussians import Gaussians

__all__ = ["Gaussians", "gaussians"]
