"""Nearest-neighbour lists of Gaussian centres (SuGaR evaluates the density over them)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def nearest_neighbors(points: Tensor, k: int) -> Tensor:
    """[N, min(k, N)] long indices of each point's nearest points, itself first (distance 0).

    A k-d tree on the CPU (exact; ~0.1 s for 100k points), then back to ``points``' device.
    Ties between equidistant points are broken by the tree, so only distances are unique; a
    point is put first even when coincident points tie with it.
    """
    from scipy.spatial import cKDTree

    n = len(points)
    k = min(k, n)
    xyz = points.detach().to("cpu", torch.float64).numpy()
    _, idx = cKDTree(xyz).query(xyz, k=k)
    idx = np.asarray(idx, dtype=np.int64).reshape(n, k)
    own = np.arange(n)
    found = idx == own[:, None]
    where = np.where(found.any(1), found.argmax(1), 0)
    idx[own, where] = idx[:, 0]
    idx[:, 0] = own
    return torch.from_numpy(idx).to(points.device)


__all__ = ["nearest_neighbors"]
