"""Correspondences between posed views: pycolmap SIFT matches, and the 3D points they give when
triangulated with the known poses: the "sparse SfM points" of a posed sparse-view capture (the
coherence regularizer), and the starting points of a posed dataset that ships none (LLFF, DTU,
Blender/nerfstudio without a point cloud).

Matching runs COLMAP's CPU pipeline as ``recon.data.sfm`` does (SIFT with affine shapes,
exhaustive matching or a given list of pairs, geometric verification), in a scratch folder, and
keeps only the verified inlier matches. Keypoints are in pixel coordinates with pixel centres at
half-integers (COLMAP's convention and recon's).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon.cameras import Camera

PEAK_THRESHOLD = 0.002
"""SIFT contrast threshold (COLMAP's default is 0.0067): the input views of a sparse capture are
few and often small, and every extra match constrains the depth."""
MAX_REPROJECTION_ERROR = 2.0
"""Pixels; a triangulated match farther than this from either keypoint is dropped."""
MAX_PAIR_ANGLE = 60.0
"""Degrees: views whose optical axes differ by more are not matched (little overlap, and SIFT
does not match across such changes of viewpoint)."""
MIN_TRIANGULATION_ANGLE = 2.0
"""Degrees: a point whose two rays meet at a narrower angle is dropped (COLMAP's point
triangulator uses 1.5)."""


@dataclass
class PairMatches:
    """Verified matches between two views."""

    first: int
    second: int
    xy_first: np.ndarray
    """[M, 2] float pixel coordinates in view ``first``."""
    xy_second: np.ndarray
    """[M, 2] the matching coordinates in view ``second``."""


def sift_matches(images: list[np.ndarray], *, seed: int = 0,
                 pairs: list[tuple[int, int]] | None = None) -> list[PairMatches]:
    """Verified SIFT matches between every pair of ``images`` (uint8 [H, W, 3]), or only between
    the ``pairs`` of view indices given; pairs without verified matches are left out."""
    import pycolmap
    from PIL import Image

    with tempfile.TemporaryDirectory(prefix="recon-matches-") as scratch:
        folder = Path(scratch) / "images"
        folder.mkdir()
        names = [f"view_{i:03d}.png" for i in range(len(images))]
        for name, image in zip(names, images):
            Image.fromarray(image).save(folder / name)
        database = Path(scratch) / "database.db"
        extraction = pycolmap.FeatureExtractionOptions()
        extraction.use_gpu = False
        extraction.num_threads = 1  # tiny images: threads only add start-up cost
        extraction.sift.estimate_affine_shape = True  # wide baselines (see recon.data.sfm)
        extraction.sift.peak_threshold = PEAK_THRESHOLD
        pycolmap.set_random_seed(seed)
        previous = pycolmap.logging.minloglevel
        pycolmap.logging.minloglevel = pycolmap.logging.ERROR
        try:
            pycolmap.extract_features(database, folder, image_names=names,
                                      camera_mode=pycolmap.CameraMode.SINGLE,
                                      extraction_options=extraction, device=pycolmap.Device.cpu)
            matching = pycolmap.FeatureMatchingOptions()
            matching.use_gpu = False
            matching.num_threads = 1
            verification = pycolmap.TwoViewGeometryOptions()
            verification.ransac.random_seed = seed
            if pairs is None:
                pycolmap.match_exhaustive(database, matching_options=matching,
                                          verification_options=verification,
                                          device=pycolmap.Device.cpu)
            else:
                listed = Path(scratch) / "pairs.txt"
                listed.write_text("".join(f"{names[a]} {names[b]}\n" for a, b in pairs))
                pairing = pycolmap.ImportedPairingOptions()
                pairing.match_list_path = str(listed)
                pycolmap.match_image_pairs(database, matching_options=matching,
                                           pairing_options=pairing,
                                           verification_options=verification,
                                           device=pycolmap.Device.cpu)
            return _read_matches(database, names)
        finally:
            pycolmap.logging.minloglevel = previous


def _read_matches(database: Path, names: list[str]) -> list[PairMatches]:
    import pycolmap

    db = pycolmap.Database.open(database)
    try:
        view_of = {im.image_id: names.index(im.name) for im in db.read_all_images()}
        keypoints = {i: db.read_keypoints(i)[:, :2] for i in view_of}
        pair_ids, geometries = db.read_two_view_geometries()
        found = []
        for pair_id, geometry in zip(pair_ids, geometries):
            inliers = np.asarray(geometry.inlier_matches).reshape(-1, 2)
            if len(inliers) == 0:
                continue
            a, b = pycolmap.pair_id_to_image_pair(pair_id)
            found.append(PairMatches(view_of[a], view_of[b], keypoints[a][inliers[:, 0]],
                                     keypoints[b][inliers[:, 1]]))
        return sorted(found, key=lambda m: (m.first, m.second))
    finally:
        db.close()


def triangulate(first: Camera, second: Camera, xy_first: np.ndarray,
                xy_second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear (DLT) triangulation of matched pixels with known cameras.

    Returns world points [M, 3] and a [M] bool mask of the trustworthy ones: in front of both
    cameras and reprojecting within MAX_REPROJECTION_ERROR pixels in both views.
    """
    projections = [c.K @ c.world_to_camera[:3] for c in (first, second)]
    rows = []
    for P, xy in zip(projections, (xy_first, xy_second)):
        rows.append(xy[:, :1] * P[2] - P[0])
        rows.append(xy[:, 1:2] * P[2] - P[1])
    A = np.stack(rows, 1)                                                     # [M, 4, 4]
    _, _, vt = np.linalg.svd(A)
    homogeneous = vt[:, -1]
    w = homogeneous[:, 3:]
    points = homogeneous[:, :3] / np.where(np.abs(w) > 1e-12, w, 1e-12)
    good = np.ones(len(points), dtype=bool)
    for camera, xy in zip((first, second), (xy_first, xy_second)):
        uv, z = camera.project(points)
        good &= (z > 0) & (np.linalg.norm(uv - xy, axis=1) < MAX_REPROJECTION_ERROR)
    return points, good


def neighbour_pairs(cameras: list[Camera], neighbours: int) -> list[tuple[int, int]]:
    """Each view paired with its ``neighbours`` nearest views (camera centres) among those that
    look the same way (optical axes less than MAX_PAIR_ANGLE apart), each pair once."""
    centres = np.stack([c.center for c in cameras])
    axes = np.stack([c.camera_to_world[:3, 2] for c in cameras])
    distance = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    facing = axes @ axes.T > np.cos(np.radians(MAX_PAIR_ANGLE))
    distance = np.where(facing, distance, np.inf)
    np.fill_diagonal(distance, np.inf)
    pairs = set()
    for i, row in enumerate(distance):
        for j in np.argsort(row, kind="stable")[:neighbours]:
            if np.isfinite(row[j]):
                pairs.add((min(i, int(j)), max(i, int(j))))
    return sorted(pairs)


def triangulated_points(cameras: list[Camera], images: list[np.ndarray], *, neighbours: int = 4,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sparse points [M, 3] and their RGB [M, 3] (uint8) for posed views that come without any:
    SIFT matches between each view and its ``neighbours`` nearest (:func:`neighbour_pairs`),
    triangulated with the known cameras (:func:`triangulate`), keeping the points seen from
    rays at least MIN_TRIANGULATION_ANGLE apart (narrower ones fix depth poorly). The colour is
    the first view's pixel at the match."""
    found = sift_matches(images, seed=seed, pairs=neighbour_pairs(cameras, neighbours))
    points, colors = [np.zeros((0, 3))], [np.zeros((0, 3), np.uint8)]
    for m in found:
        first, second = cameras[m.first], cameras[m.second]
        xyz, good = triangulate(first, second, m.xy_first, m.xy_second)
        rays = [xyz - c.center for c in (first, second)]
        cosine = (rays[0] * rays[1]).sum(1) / np.maximum(
            np.linalg.norm(rays[0], axis=1) * np.linalg.norm(rays[1], axis=1), 1e-12)
        good &= cosine < np.cos(np.radians(MIN_TRIANGULATION_ANGLE))
        image = images[m.first]
        col = np.clip(m.xy_first[good, 0].astype(int), 0, image.shape[1] - 1)
        row = np.clip(m.xy_first[good, 1].astype(int), 0, image.shape[0] - 1)
        points.append(xyz[good])
        colors.append(image[row, col, :3])
    return np.concatenate(points), np.concatenate(colors)


__all__ = ["MAX_PAIR_ANGLE", "MAX_REPROJECTION_ERROR", "MIN_TRIANGULATION_ANGLE", "PairMatches",
           "neighbour_pairs", "sift_matches", "triangulate", "triangulated_points"]
