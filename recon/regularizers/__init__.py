"""Extra training objectives selected with ``recon fit --reg``: each a small module behind one
interface (:class:`~recon.regularizers.base.Regularizer`), so the trainer never names one.

* ``surface``: SuGaR's surface alignment (opacity entropy, pruning, ideal-SDF and normal terms).
* ``coherence``: CoherentGS's per-pixel Gaussians for a handful of views (depth decoder, disparity
  TV, multi-view consistency of SIFT matches).
* ``connectivity``: Radiant Triangle Soup's soft connectivity forces between the edges of a
  triangle soup that nearly coincide.

Importing this package does not import torch (the fit config embeds the option dataclasses).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from recon.regularizers.options import CoherenceOptions, ConnectivityOptions, SurfaceOptions

if TYPE_CHECKING:
    from recon.regularizers.base import Regularizer, RunContext

RegName = Literal["none", "surface", "coherence", "connectivity"]
REGULARIZERS: tuple[str, ...] = ("none", "surface", "coherence", "connectivity")
"""The ``--reg`` names."""


def build_regularizer(name: str,
                      options: SurfaceOptions | CoherenceOptions | ConnectivityOptions | None,
                      run: RunContext) -> Regularizer:
    """The regularizer ``name`` with its options, for the run described by ``run``."""
    from recon.errors import ReconError

    if name == "none":
        from recon.regularizers.base import Regularizer

        return Regularizer(run)
    if name == "surface":
        from recon.regularizers.surface import SurfaceRegularizer

        return SurfaceRegularizer(options, run)
    if name == "coherence":
        from recon.regularizers.coherence import CoherenceRegularizer

        return CoherenceRegularizer(options, run)
    if name == "connectivity":
        from recon.regularizers.connectivity import ConnectivityRegularizer

        return ConnectivityRegularizer(options, run)
    raise ReconError(f"Unknown regularizer {name!r}; choose one of {', '.join(REGULARIZERS)}.")


__all__ = ["REGULARIZERS", "CoherenceOptions", "ConnectivityOptions", "RegName", "SurfaceOptions",
           "build_regularizer"]
