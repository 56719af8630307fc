"""Geometry metrics between a predicted and a ground-truth mesh (``recon eval-mesh PRED GT``).

Both surfaces are sampled uniformly by area (the same number of points each, fixed seed), and
every sample is matched to its closest point on the other *surface* (exact point-to-triangle
distance through open3d's ray-casting BVH, so there is no sampling floor as with sample-to-sample
matching):

* accuracy = mean distance pred -> GT, completeness = mean distance GT -> pred;
* Chamfer distance = (accuracy + completeness) / 2, the mean of both directions;
* normal consistency = mean over both directions of |n · n_closest| with n_closest the normal
  of the closest triangle (unsigned: extracted meshes need not share the GT's orientation
  convention; 1 = every normal agrees);
* precision / recall = fraction of pred / GT samples within τ of the other surface, and the
  F-score 2PR / (P + R);
* watertight = every edge of the prediction is shared by exactly two faces, consistently wound.

Distances are reported as fractions of the GT bounding-box diagonal (so scenes of any scale
compare), and τ is given in the same unit. The means are Monte-Carlo estimates over the samples:
100k samples put their standard error far below 0.01% of the diagonal.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from recon.errors import ReconError

DEFAULT_SAMPLES = 100_000
DEFAULT_THRESHOLD = 0.01


@dataclass(frozen=True)
class MeshMetrics:
    """Distances in units of the GT bounding-box diagonal (``diagonal``, in scene units)."""

    chamfer: float
    accuracy: float
    completeness: float
    normal_consistency: float
    fscore: float
    precision: float
    recall: float
    threshold: float
    watertight: bool
    gt_watertight: bool
    diagonal: float

    def to_dict(self) -> dict:
        return asdict(self)


def compare_meshes(pred, gt, samples: int = DEFAULT_SAMPLES,
                   threshold: float = DEFAULT_THRESHOLD, seed: int = 0) -> MeshMetrics:
    """Metrics of ``pred`` against ``gt`` (``trimesh.Trimesh``), see the module docstring."""
    if samples < 1:
        raise ReconError(f"--samples must be at least 1, got {samples}.")
    if not threshold > 0:
        raise ReconError(f"--threshold must be positive (a fraction of the GT bounding-box "
                         f"diagonal, e.g. 0.01), got {threshold}.")
    diagonal = float(np.linalg.norm(gt.bounds[1] - gt.bounds[0]))
    if not diagonal > 0:
        raise ReconError("The ground-truth mesh has a zero-size bounding box; give a real surface.")
    for name, mesh in (("predicted", pred), ("ground-truth", gt)):
        if not mesh.area > 0:
            raise ReconError(f"The {name} mesh has zero surface area; give a real surface.")
    p_pts, p_nrm = _sample(pred, samples, seed)
    g_pts, g_nrm = _sample(gt, samples, seed + 1)
    d_pg, n_pg = _closest(gt, p_pts)
    d_gp, n_gp = _closest(pred, g_pts)
    accuracy, completeness = d_pg.mean() / diagonal, d_gp.mean() / diagonal
    nc = 0.5 * (np.abs((p_nrm * n_pg).sum(1)).mean() + np.abs((g_nrm * n_gp).sum(1)).mean())
    tau = threshold * diagonal
    precision, recall = float((d_pg < tau).mean()), float((d_gp < tau).mean())
    fscore = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return MeshMetrics(
        chamfer=float(0.5 * (accuracy + completeness)), accuracy=float(accuracy),
        completeness=float(completeness), normal_consistency=float(nc), fscore=float(fscore),
        precision=precision, recall=recall, threshold=float(threshold),
        watertight=bool(pred.is_watertight), gt_watertight=bool(gt.is_watertight),
        diagonal=diagonal)


def compare_mesh_files(pred_path, gt_path, samples: int = DEFAULT_SAMPLES,
                       threshold: float = DEFAULT_THRESHOLD, seed: int = 0) -> MeshMetrics:
    """:func:`compare_meshes` on two mesh files (any format :func:`recon.mesh.io.load_mesh` reads)."""
    from recon.mesh.io import load_mesh

    return compare_meshes(load_mesh(pred_path), load_mesh(gt_path), samples, threshold, seed)


def format_metrics(m: MeshMetrics) -> str:
    """A short human-readable report of :class:`MeshMetrics`."""
    return "\n".join([
        f"Chamfer distance    {100 * m.chamfer:.3f}% of the GT bounding-box diagonal "
        f"({m.chamfer * m.diagonal:.5g} scene units)",
        f"  accuracy          {100 * m.accuracy:.3f}%  (pred -> GT)",
        f"  completeness      {100 * m.completeness:.3f}%  (GT -> pred)",
        f"normal consistency  {m.normal_consistency:.4f}",
        f"F-score @ {100 * m.threshold:.2f}%     {m.fscore:.4f}  "
        f"(precision {m.precision:.4f}, recall {m.recall:.4f})",
        f"watertight          {'yes' if m.watertight else 'no'} "
        f"(GT: {'yes' if m.gt_watertight else 'no'})",
    ])


def _closest(mesh, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance [M] from each point to the surface of ``mesh``, and the unit normal [M,3] of
    the triangle where the closest point lies."""
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.asarray(mesh.vertices, np.float32)),
                        o3d.core.Tensor(np.asarray(mesh.faces, np.uint32)))
    found = scene.compute_closest_points(o3d.core.Tensor(points.astype(np.float32)))
    closest = found["points"].numpy().astype(np.float64)
    faces = found["primitive_ids"].numpy().astype(np.int64)
    return np.linalg.norm(points - closest, axis=1), np.asarray(mesh.face_normals)[faces]


def _sample(mesh, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` area-uniform surface points and the unit normals of the faces they lie on."""
    import trimesh

    points, faces = trimesh.sample.sample_surface(mesh, n, seed=seed)
    return np.asarray(points, np.float64), np.asarray(mesh.face_normals[faces], np.float64)


__all__ = ["DEFAULT_SAMPLES", "DEFAULT_THRESHOLD", "MeshMetrics", "compare_mesh_files",
           "compare_meshes", "format_metrics"]
