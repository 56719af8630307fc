"""Native ops of recon (autograd wrappers and the lazy JIT loader).

Importing this package compiles nothing; the extension is built on the first op call.
"""

from recon._ops.convex_project import ProjectedConvexes, project_convexes
from recon._ops.project import ProjectedGaussians, project_gaussians
from recon._ops.rasterize import Rasterized, rasterize
from recon._ops.sh import spherical_harmonics

__all__ = ["ProjectedConvexes", "ProjectedGaussians", "Rasterized", "project_convexes",
           "project_gaussians", "rasterize", "spherical_harmonics"]
