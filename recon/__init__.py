"""recon: differentiable 3D reconstruction (Gaussian splats, convexes, triangles, FlexiCubes)."""

from recon.errors import ReconError

__version__ = "0.1.0"
__all__ = ["ReconError", "__version__"]
