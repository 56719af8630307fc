"""Where the scenes' cameras stand: evenly spread orbits looking at the scene centre.

All cameras are OpenCV pinholes built with ``recon.cameras.look_at`` (world z up), square images
with the principal point at the image centre and a fixed field of view.
"""

from __future__ import annotations

import numpy as np

from recon.cameras import Camera, look_at

GOLDEN_ANGLE = np.pi * (3.0 - np.sqrt(5.0))


def fibonacci_directions(count: int, min_z: float = -1.0) -> np.ndarray:
    """``count`` unit vectors spread evenly (equal area each) over the part of the sphere with
    z >= ``min_z``: a Fibonacci spiral, so neighbouring views are about equally far apart."""
    i = np.arange(count) + 0.5
    z = 1.0 - i / count * (1.0 - min_z)
    r = np.sqrt(np.clip(1.0 - z * z, 0.0, None))
    azimuth = GOLDEN_ANGLE * i
    return np.stack([r * np.cos(azimuth), r * np.sin(azimuth), z], -1)


def spherical_directions(azimuth_deg: np.ndarray, elevation_deg: np.ndarray) -> np.ndarray:
    """Unit vectors from azimuths (about +z, from +x) and elevations above the xy plane, in degrees."""
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1)


def orbit_cameras(directions: np.ndarray, target: np.ndarray, distance: float,
                  fov_deg: float, resolution: int) -> list[Camera]:
    """One camera per direction, at ``distance`` from ``target`` along it, looking at ``target``."""
    focal = resolution / (2.0 * np.tan(np.radians(fov_deg) / 2.0))
    half = resolution / 2.0
    target = np.asarray(target, dtype=np.float64)
    return [
        Camera(resolution, resolution, focal, focal, half, half,
               look_at(target + distance * d, target), name=f"frame_{k:05d}")
        for k, d in enumerate(np.asarray(directions, dtype=np.float64))
    ]


def sparse_directions(train: int, test: int) -> tuple[np.ndarray, np.ndarray]:
    """Few-view training directions 45° apart in azimuth at 35° elevation (about 37° between
    neighbours), and held-out test directions spread over the arc they span, at mixed heights."""
    step = 45.0
    train_az = step * np.arange(train)
    span = step * max(train - 1, 1)
    test_az = np.linspace(-0.15 * span, 1.15 * span, test)
    test_el = np.where(np.arange(test) % 2 == 0, 25.0, 50.0)
    return (spherical_directions(train_az, np.full(train, 35.0)),
            spherical_directions(test_az, test_el))
