"""Convex files (the convex model's exports), in the input's world frame.

``.ply``: binary little-endian, float32, one element ``convex`` with one row per convex:

* ``x_k y_k z_k`` for k = 0..K-1: the points;
* ``delta``, ``sigma``: log δ and log σ;
* ``opacity``: the opacity logit (the mask already folded in: masked-out convexes are not
  written);
* ``f_dc_0..2``, ``f_rest_*``: SH colour as in the 3DGS ``.ply`` (rest ordered [channel]
  [coefficient]; bands above the run's active degree are zero).

The renderer scales δ and σ by the camera depth, so a convex keeps its image when the world is
scaled by s only if δ and σ are divided by s: the file's log δ and log σ are shifted by −log s
of the normalised -> input map. SH bands are rotated with the frame (as for Gaussians).

``.glb`` / ``.obj``: every convex as its closed 3D hull (triangles, outward), one DC colour per
convex on its vertices, for other tools.
"""

from __future__ import annotations

import math
from itertools import combinations
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from recon.cameras import Similarity
from recon.models.base import OPACITY, Params
from recon.models.splat_files import read_element, rotate_sh, write_float_table
from recon.render.sh import num_bases, sh0_to_rgb

HULL_TOLERANCE = 1e-6
"""Relative distance (× the convex's size) within which a point counts as on a face's plane."""


def write_ply(path: Path, params: Params, normalization: Similarity | None,
              sh_degree: int) -> Path:
    """Write the convexes as a ``.ply`` in the input frame (see the module docstring)."""
    c = _to_input_frame(_visible(params), normalization)
    n, k = c["points"].shape[:2]
    rest = c["shN"].clone()
    rest[:, num_bases(sh_degree) - 1:] = 0.0
    rest = rest.transpose(1, 2).reshape(n, -1)
    columns = [c["points"].reshape(n, -1), c["deltas"][:, None], c["sigmas"][:, None],
               c[OPACITY][:, None], c["sh0"][:, 0, :], rest]
    return write_float_table(path, "convex", property_names(k, rest.shape[1]),
                             torch.cat(columns, 1).numpy())


def read_ply(path: Path, normalization: Similarity | None = None) -> dict[str, Tensor]:
    """Read a convex ``.ply`` back (input frame, or recon's normalised frame with the
    ``normalization`` it was written with); masks come back fully on."""
    row = read_element(path, "convex", "convexes", "a recon convex .ply")
    names = row.dtype.names
    k = sum(1 for name in names if name.startswith("x_"))
    num_rest = sum(1 for name in names if name.startswith("f_rest_"))

    def cols(keys) -> Tensor:
        return torch.from_numpy(np.stack([np.asarray(row[key], np.float32) for key in keys], 1))

    n = len(row)
    points = cols([f"{a}_{i}" for i in range(k) for a in "xyz"]).reshape(n, k, 3)
    params = {"points": points, "deltas": cols(["delta"])[:, 0], "sigmas": cols(["sigma"])[:, 0],
              OPACITY: cols(["opacity"])[:, 0], "masks": torch.full((n,), 10.0),
              "sh0": cols(["f_dc_0", "f_dc_1", "f_dc_2"])[:, None, :],
              "shN": cols([f"f_rest_{i}" for i in range(num_rest)]).reshape(
                  n, 3, num_rest // 3).transpose(1, 2).contiguous()}
    if normalization is None:
        return params
    return _transform(params, normalization)


def property_names(k: int, num_rest: int) -> list[str]:
    """The ``convex`` properties in file order."""
    return ([f"{a}_{i}" for i in range(k) for a in "xyz"] + ["delta", "sigma", "opacity"]
            + ["f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(num_rest)])


def write_hulls(path: Path, params: Params, normalization: Similarity | None) -> Path:
    """Every visible convex as its closed hull mesh (``.glb`` / ``.obj``) in the input frame."""
    c = _to_input_frame(_visible(params), normalization)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    hull_mesh(c).export(path)
    return path


def hull_mesh(params: Params):
    """A ``trimesh.Trimesh`` of every convex's 3D hull with its DC colour (same frame as
    ``params``)."""
    import trimesh

    points = params["points"].detach().float().cpu()
    n, k = points.shape[:2]
    faces, used = hull_faces(points)
    rows = torch.nonzero(used, as_tuple=False)                                     # [F, 2]
    tris = faces[rows[:, 1]] if len(rows) else torch.zeros(0, 3, dtype=torch.long)
    flip = _outward_flip(points, faces)[rows[:, 0], rows[:, 1]]
    tris = torch.where(flip[:, None], tris[:, [0, 2, 1]], tris)
    vertex_ids = rows[:, :1] * k + tris                                           # global ids
    rgb = sh0_to_rgb(params["sh0"].detach().float().cpu()[:, 0, :]).clamp(0.0, 1.0)
    colours = (rgb[:, None, :].expand(n, k, 3).reshape(-1, 3) * 255).round().to(torch.uint8)
    return trimesh.Trimesh(points.reshape(-1, 3).numpy(), vertex_ids.numpy(),
                           vertex_colors=colours.numpy(), process=False)


def hull_faces(points: Tensor) -> tuple[Tensor, Tensor]:
    """The triangles of each point set's 3D convex hull, vectorised over the sets.

    points [N, K, 3]. Returns the candidate triples [T, 3] (every 3-subset of the K points) and
    ``used`` [N, T]: the triple is a hull face when every other point lies on one side of its
    plane. Points within ``HULL_TOLERANCE`` of the plane count as on it; a face with four or
    more coplanar points is covered once, by the fan from its lowest-index point: the triples
    (first, b, c) with no other point of the face strictly inside the angle b-first-c.
    """
    k = points.shape[1]
    triples = torch.tensor(list(combinations(range(k), 3)), dtype=torch.long)
    a, b, c = (points[:, triples[:, i]] for i in range(3))                         # [N,T,3]
    normal = torch.cross(b - a, c - a, dim=-1)
    size = (points - points.mean(1, keepdim=True)).norm(dim=-1).amax(-1)           # [N]
    side = torch.einsum("ntd,nkd->ntk", normal, points) - (normal * a).sum(-1, keepdim=True)
    tol = HULL_TOLERANCE * normal.norm(dim=-1, keepdim=True) * size[:, None, None]
    above, below = (side > tol).any(-1), (side < -tol).any(-1)
    on_plane = side.abs() <= tol                                                   # [N,T,K]
    first_on_plane = torch.argmax(on_plane.to(torch.uint8), dim=-1)                # lowest index
    rel = points[:, None] - a[:, :, None]                                          # [N,T,K,3]
    ab, ac = ((v - a)[:, :, None].expand_as(rel) for v in (b, c))
    inside_b = (torch.cross(ab, rel, dim=-1) * normal[:, :, None]).sum(-1)   # p left of a->b
    inside_c = (torch.cross(rel, ac, dim=-1) * normal[:, :, None]).sum(-1)   # p right of a->c
    wedge_tol = tol * normal.norm(dim=-1, keepdim=True)
    in_wedge = on_plane & (inside_b > wedge_tol) & (inside_c > wedge_tol)
    fan = (triples[None, :, 0] == first_on_plane) & ~in_wedge.any(-1)
    degenerate = normal.norm(dim=-1) <= 1e-12 * size[:, None] ** 2
    return triples, ~(above & below) & fan & ~degenerate


def _outward_flip(points: Tensor, faces: Tensor) -> Tensor:
    """[N, T] True where a face's (a, b, c) winding points into its hull (flip it)."""
    a, b, c = (points[:, faces[:, i]] for i in range(3))
    normal = torch.cross(b - a, c - a, dim=-1)
    return ((points.mean(1, keepdim=True) - a) * normal).sum(-1) > 0


def _visible(params: Params) -> dict[str, Tensor]:
    """The convexes the renderer draws (mask on), detached on the CPU, with the mask folded
    away."""
    from recon.models.convexes import MASK_THRESHOLD

    keep = torch.sigmoid(params["masks"].detach()) > MASK_THRESHOLD
    return {name: value.detach().cpu()[keep.cpu()] for name, value in params.items()}


def _to_input_frame(params: dict[str, Tensor], normalization: Similarity | None) -> dict:
    return params if normalization is None else _transform(params, normalization.inverse())


def _transform(params: dict[str, Tensor], sim: Similarity) -> dict[str, Tensor]:
    """The same convexes after the world is mapped by ``sim`` (x' = s R x + t)."""
    out = dict(params)
    rot = torch.as_tensor(sim.rotation, dtype=torch.float64)
    shift = torch.as_tensor(sim.translation, dtype=torch.float64)
    points = params["points"]
    out["points"] = (points.double() @ rot.T * sim.scale + shift).to(points.dtype)
    for name in ("deltas", "sigmas"):  # δ, σ are per depth unit: divide by s
        out[name] = params[name] - math.log(sim.scale)
    out["shN"] = rotate_sh(params["shN"], sim.rotation)
    return out


__all__ = ["hull_faces", "hull_mesh", "property_names", "read_ply", "write_hulls", "write_ply"]
