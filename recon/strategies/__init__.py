"""Densification policies for Gaussian fitting: where splats are added, moved and removed.

* :class:`DefaultStrategy`: 3DGS clone / split / prune / opacity reset.
* :class:`MCMCStrategy`: 3DGS-MCMC relocation, capped growth and SGLD position noise.

Both are plain dataclasses of settings with the hooks of :class:`Strategy`; the tensor edits they
share live in :mod:`recon.strategies.ops`. Importing this package does not import torch.
"""

from recon.strategies.base import Strategy
from recon.strategies.default import DefaultStrategy
from recon.strategies.mcmc import MCMCStrategy

STRATEGIES = {"default": DefaultStrategy, "mcmc": MCMCStrategy}
"""The ``--strategy`` names."""

__all__ = ["STRATEGIES", "DefaultStrategy", "MCMCStrategy", "Strategy"]
