"""Lens distortion: map normalised image points through a camera's distortion model and back, and
resample a distorted photo to the ideal pinhole camera that recon trains with.

Two models, with coefficients in ``recon.cameras.DISTORTION_NAMES`` order:

- radial-tangential (OpenCV / COLMAP ``OPENCV``): with r^2 = x^2 + y^2 and
  radial = 1 + k1 r^2 + k2 r^4 + k3 r^6 + k4 r^8,
  x_d = x radial + 2 p1 x y + p2 (r^2 + 2 x^2),  y_d = y radial + p1 (r^2 + 2 y^2) + 2 p2 x y;
- fisheye (OpenCV ``fisheye`` / COLMAP ``OPENCV_FISHEYE``): with theta = atan(r),
  theta_d = theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 + k4 theta^8), (x_d, y_d) = theta_d / r (x, y).

Points are normalised image coordinates (x/z, y/z in the camera frame).
"""

from __future__ import annotations

import numpy as np

from recon.cameras import DISTORTION_NAMES, Camera

# Newton iterations for the inverse maps. Each converges quadratically from the distorted point for
# the distortion of real lenses; the cap only matters where the model folds over (no inverse).
_MAX_NEWTON_STEPS = 50
_NEWTON_TOL = 1e-14
# A point whose inverse still misses by this much after the last step is reported as NaN.
_NOT_CONVERGED = 1e-9
# Rows resampled per step in undistort_image, so large photos never need gigabytes of coordinates.
_PIXELS_PER_CHUNK = 1 << 20


def _coefficients(camera: Camera) -> np.ndarray:
    """The camera's distortion coefficients, padded with zeros to the full count of its model."""
    size = 4 if camera.fisheye else len(DISTORTION_NAMES)
    coeffs = np.zeros(size)
    if camera.distortion is not None:
        given = np.asarray(camera.distortion, dtype=np.float64).ravel()
        if len(given) > size:
            raise ValueError(f"{len(given)} distortion coefficients given; this model takes {size}.")
        coeffs[: len(given)] = given
    return coeffs


def _radtan(x: np.ndarray, y: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k1, k2, p1, p2, k3, k4 = d
    r2 = x * x + y * y
    radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * (k3 + r2 * k4)))
    xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
    yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
    return xd, yd


def _radtan_jacobian(x: np.ndarray, y: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, ...]:
    """Partial derivatives (dxd/dx, dxd/dy = dyd/dx, dyd/dy) of :func:`_radtan` (it is symmetric)."""
    k1, k2, p1, p2, k3, k4 = d
    r2 = x * x + y * y
    radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * (k3 + r2 * k4)))
    dradial = k1 + r2 * (2.0 * k2 + r2 * (3.0 * k3 + r2 * 4.0 * k4))  # d radial / d r^2
    dxdx = radial + 2.0 * x * x * dradial + 2.0 * p1 * y + 6.0 * p2 * x
    cross = 2.0 * x * y * dradial + 2.0 * p1 * x + 2.0 * p2 * y
    dydy = radial + 2.0 * y * y * dradial + 6.0 * p1 * y + 2.0 * p2 * x
    return dxdx, cross, dydy


def _fisheye_theta_d(theta: np.ndarray, d: np.ndarray) -> np.ndarray:
    t2 = theta * theta
    return theta * (1.0 + t2 * (d[0] + t2 * (d[1] + t2 * (d[2] + t2 * d[3]))))


def distort_points(xy: np.ndarray, camera: Camera) -> np.ndarray:
    """Normalised ideal points [..., 2] -> where ``camera``'s lens puts them, normalised [..., 2]."""
    xy = np.asarray(xy, dtype=np.float64)
    d = _coefficients(camera)
    x, y = xy[..., 0], xy[..., 1]
    if not camera.fisheye:
        return np.stack(_radtan(x, y, d), axis=-1)
    r = np.hypot(x, y)
    safe_r = np.where(r > 1e-12, r, 1.0)
    # theta_d / r -> 1 as r -> 0 (theta ~ r there), so the centre maps to itself.
    scale = np.where(r > 1e-12, _fisheye_theta_d(np.arctan(r), d) / safe_r, 1.0)
    return xy * scale[..., None]


def undistort_points(xy_distorted: np.ndarray, camera: Camera) -> np.ndarray:
    """Inverse of :func:`distort_points` by Newton's method; NaN where it has no inverse.

    A point has no inverse where the model folds over (far outside the calibrated field of view
    of a strongly distorted lens); those come back as NaN rather than as a wrong point.
    """
    target = np.asarray(xy_distorted, dtype=np.float64)
    d = _coefficients(camera)
    if camera.fisheye:
        return _undistort_fisheye(target, d)
    x, y = target[..., 0].copy(), target[..., 1].copy()
    for _ in range(_MAX_NEWTON_STEPS):
        xd, yd = _radtan(x, y, d)
        ex, ey = xd - target[..., 0], yd - target[..., 1]
        if np.all(np.abs(ex) < _NEWTON_TOL) and np.all(np.abs(ey) < _NEWTON_TOL):
            break
        a, b, c = _radtan_jacobian(x, y, d)  # Jacobian [[a, b], [b, c]]
        det = a * c - b * b
        with np.errstate(divide="ignore", invalid="ignore"):
            x = x - (c * ex - b * ey) / det
            y = y - (a * ey - b * ex) / det
    xd, yd = _radtan(x, y, d)
    bad = ~(np.hypot(xd - target[..., 0], yd - target[..., 1]) < _NOT_CONVERGED)
    out = np.stack([x, y], axis=-1)
    out[bad] = np.nan
    return out


def _undistort_fisheye(target: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Solve theta_d(theta) = |xy_d| for theta in [0, pi/2), then r = tan(theta)."""
    r_d = np.hypot(target[..., 0], target[..., 1])
    theta = np.minimum(r_d, 1.5)
    for _ in range(_MAX_NEWTON_STEPS):
        err = _fisheye_theta_d(theta, d) - r_d
        if np.all(np.abs(err) < _NEWTON_TOL):
            break
        t2 = theta * theta
        slope = 1.0 + t2 * (3.0 * d[0] + t2 * (5.0 * d[1] + t2 * (7.0 * d[2] + t2 * 9.0 * d[3])))
        with np.errstate(divide="ignore", invalid="ignore"):
            theta = theta - err / slope
    bad = ~(np.abs(_fisheye_theta_d(theta, d) - r_d) < _NOT_CONVERGED)
    bad |= ~((theta >= 0.0) & (theta < np.pi / 2))
    safe_rd = np.where(r_d > 1e-12, r_d, 1.0)
    with np.errstate(invalid="ignore"):
        scale = np.where(r_d > 1e-12, np.tan(theta) / safe_rd, 1.0)
    out = target * scale[..., None]
    out[bad] = np.nan
    return out


def undistort_image(image: np.ndarray, source: Camera, target: Camera) -> np.ndarray:
    """Resample ``image`` (taken by the distorted ``source`` camera) as the pinhole ``target`` sees it.

    Each target pixel centre is back-projected with the target intrinsics, pushed through the
    source's lens model, projected with the source intrinsics and sampled bilinearly; samples that
    fall outside the photo take the nearest edge pixel. Returns [target.height, target.width, C]
    with ``image``'s dtype.
    """
    image = np.asarray(image)
    if image.shape[:2] != (source.height, source.width):
        raise ValueError(
            f"Image is {image.shape[1]}x{image.shape[0]} but its camera is {source.width}x{source.height}."
        )
    squeeze = image.ndim == 2
    pixels = image[..., None] if squeeze else image
    out = np.empty((target.height, target.width, pixels.shape[-1]), dtype=image.dtype)
    x = (np.arange(target.width) + 0.5 - target.cx) / target.fx
    rows_per_chunk = max(1, _PIXELS_PER_CHUNK // max(target.width, 1))
    for row0 in range(0, target.height, rows_per_chunk):
        rows = np.arange(row0, min(row0 + rows_per_chunk, target.height))
        y = (rows + 0.5 - target.cy) / target.fy
        xy = np.stack(np.broadcast_arrays(x[None, :], y[:, None]), axis=-1)
        xy_d = distort_points(xy, source)
        # Pixel centres sit at +0.5, so array index = pixel coordinate - 0.5.
        u = source.fx * xy_d[..., 0] + source.cx - 0.5
        v = source.fy * xy_d[..., 1] + source.cy - 0.5
        out[rows] = _sample_bilinear(pixels, u, v).astype(image.dtype, copy=False)
    return out[..., 0] if squeeze else out


def _sample_bilinear(pixels: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear lookup of [H, W, C] at array coordinates (u, v), replicating the edge pixels."""
    height, width = pixels.shape[:2]
    u = np.clip(u, 0.0, width - 1.0)
    v = np.clip(v, 0.0, height - 1.0)
    u0, v0 = np.floor(u).astype(np.intp), np.floor(v).astype(np.intp)
    u1, v1 = np.minimum(u0 + 1, width - 1), np.minimum(v0 + 1, height - 1)
    wu, wv = (u - u0)[..., None], (v - v0)[..., None]

    def at(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return pixels[rows, cols].astype(np.float64)  # gather first: never convert the whole photo

    top = at(v0, u0) * (1.0 - wu) + at(v0, u1) * wu
    bottom = at(v1, u0) * (1.0 - wu) + at(v1, u1) * wu
    value = top * (1.0 - wv) + bottom * wv
    if np.issubdtype(pixels.dtype, np.integer):
        info = np.iinfo(pixels.dtype)
        value = np.clip(np.rint(value), info.min, info.max)
    return value
