"""Correspondences between a few posed views: pycolmap SIFT matches, and the 3D points they give
when triangulated with the known poses (the "sparse SfM points" of a posed sparse-view capture).

Matching runs COLMAP's CPU pipeline as ``recon.data.sfm`` does (SIFT with affine shapes,
exhaustive matching, geometric verification), in a scratch folder, and keeps only the verified
inlier matches. Keypoints are in pixel coordinates with pixel centres at half-integers (COLMAP's
convention and recon's).
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


@dataclass
class PairMatches:
    """Verified matches between two views."""

    first: int
    second: int
    xy_first: np.ndarray
    """[M, 2] float pixel coordinates in view ``first``."""
    xy_second: np.ndarray
    """[M, 2] the matching coordinates in view ``second``."""


def sift_matches(images: list[np.ndarray], *, seed: int = 0) -> list[PairMatches]:
    """Verified SIFT matches between every pair of ``images`` (uint8 [H, W, 3]); pairs without
    verified matches are left out."""
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
            pycolmap.match_exhaustive(database, matching_options=matching,
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


__all__ = ["MAX_REPROJECTION_ERROR", "PairMatches", "sift_matches", "triangulate"]
