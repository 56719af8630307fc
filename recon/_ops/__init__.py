"""Native ops of recon (autograd wrappers and the lazy JIT loader).

Importing this package compiles nothing; the extension is built on the first op call.
"""

from recon._ops.rasterize import rasterize

__all__ = ["rasterize"]
