"""Scene representations. Importing this package registers every built-in primitive type with
the renderer (see recon.primitives.base)."""

from recon.primitives import convexes, gaussians, triangles
from recon.primitives.convexes import Convexes
from recon.primitives.gaussians import Gaussians
from recon.primitives.triangles import Triangles

__all__ = ["Convexes", "Gaussians", "Triangles", "convexes", "gaussians", "triangles"]
