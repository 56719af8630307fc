"""Native ops of recon (autograd wrappers and the lazy JIT loader).

Importing this package compiles nothing; the extension is built on the first op call.
"""

from recon._ops.rasterize import Rasterized, rasterize
from recon._ops.sh import spherical_harmonics

__all__ = ["Rasterized", "rasterize", "spherical_harmonics"]
