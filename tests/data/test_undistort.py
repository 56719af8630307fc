"""Lens models: distort/undistort are inverses, and undistorting a photo of a known pattern taken
through a distorted lens gives the pattern an ideal pinhole would see."""

from __future__ import annotations

import numpy as np
import pytest

from recon.cameras import Camera
from recon.data.undistort import distort_points, undistort_image, undistort_points

W, H = 160, 120
# Strong but realistic lenses: the radial-tangential one moves the corners by ~12 px, the fisheye
# is an equidistant-ish lens with a 100-degree diagonal field of view.
RADTAN = Camera(W, H, 90.0, 92.0, 81.0, 59.0, np.eye(4),
                distortion=np.array([-0.25, 0.08, 0.004, -0.003, -0.01, 0.002]))
FISHEYE = Camera(W, H, 70.0, 70.0, 80.0, 60.0, np.eye(4),
                 distortion=np.array([0.03, -0.01, 0.004, -0.001]), fisheye=True)
LENSES = {"radtan": RADTAN, "fisheye": FISHEYE}


def _pinhole(camera: Camera) -> Camera:
    return Camera(camera.width, camera.height, camera.fx, camera.fy, camera.cx, camera.cy, np.eye(4))


@pytest.mark.parametrize("lens", LENSES)
def test_distort_and_undistort_are_inverses(lens):
    """Newton stops at a 1e-14 residual with a Jacobian near 1, so 1e-12 leaves rounding room."""
    camera = LENSES[lens]
    rng = np.random.default_rng(0)
    reach = 0.8 if lens == "radtan" else 3.0  # fisheye: up to 72 degrees off-axis
    ideal = rng.uniform(-reach, reach, (5000, 2))
    ideal[0] = 0.0  # the optical axis maps to itself
    distorted = distort_points(ideal, camera)
    assert np.abs(distorted - ideal).max() > 0.05  # the lens really bends these points
    np.testing.assert_allclose(undistort_points(distorted, camera), ideal, rtol=0, atol=1e-12)
    np.testing.assert_allclose(distort_points(undistort_points(distorted, camera), camera), distorted,
                               rtol=0, atol=1e-12)


def test_points_without_an_inverse_are_nan():
    """x (1 - 0.5 x^2) peaks at r_d = 0.544: a distorted radius beyond it has no ideal point."""
    camera = Camera(W, H, 90.0, 90.0, 80.0, 60.0, np.eye(4), distortion=np.array([-0.5, 0, 0, 0, 0, 0]))
    out = undistort_points(np.array([[0.3, 0.0], [0.6, 0.0], [0.0, -0.7]]), camera)
    assert np.isfinite(out[0]).all() and np.isnan(out[1:]).all()


def test_undistorting_an_ideal_lens_returns_the_photo():
    """Zero coefficients sample every pixel exactly at its centre: a half-pixel slip would blur."""
    camera = Camera(W, H, 90.0, 92.0, 81.0, 59.0, np.eye(4), distortion=np.zeros(6))
    image = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
    np.testing.assert_array_equal(undistort_image(image, camera, _pinhole(camera)), image)


PERIOD, AMPLITUDE = 32.0, 100.0  # pattern period (pinhole pixels) and amplitude (grey levels)
MARGIN = 3  # border pixels left out: their samples may leave the photo and replicate its edge


def _pattern(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A smooth test pattern over pinhole pixel coordinates."""
    return 128.0 + AMPLITUDE * np.sin(2 * np.pi * u / PERIOD) * np.cos(2 * np.pi * v / PERIOD)


def _pixel_centres(camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(camera.width) + 0.5, np.arange(camera.height) + 0.5)


def _source_pixels(camera: Camera, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Where the lens images the pinhole pixel (u, v), in photo pixels [..., 2]."""
    xy = np.stack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy], axis=-1)
    return distort_points(xy, camera) * [camera.fx, camera.fy] + [camera.cx, camera.cy]


def _max_compression(camera: Camera) -> float:
    """The most pinhole pixels the lens squeezes into one photo pixel (inside the margin)."""
    u, v = _pixel_centres(camera)
    inner = (slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))
    u, v, h = u[inner], v[inner], 1e-4
    du = (_source_pixels(camera, u + h, v) - _source_pixels(camera, u - h, v)) / (2 * h)
    dv = (_source_pixels(camera, u, v + h) - _source_pixels(camera, u, v - h)) / (2 * h)
    smallest = np.linalg.svd(np.stack([du, dv], axis=-1), compute_uv=False)[..., -1]
    return float(1.0 / smallest.min())


@pytest.mark.parametrize("lens", LENSES)
def test_undistorted_photo_matches_the_ideal_pinhole_view(lens):
    """Photograph the pattern through the lens analytically, undistort, compare with the pinhole view.

    The photo's pixel at distorted position q shows the pattern at the ideal point undistort(q),
    exactly. Undistorting samples the photo bilinearly, which errs by at most (|g_uu| + |g_vv|) / 8
    for the photo's content g. The pattern's curvature is at most A (2 pi / P)^2 = 3.9 levels/px^2
    in pinhole pixels, and up to m^2 times that in photo pixels where the lens squeezes m pinhole
    pixels into one (m = 1.8 for the radial-tangential lens, 2.7 in the fisheye's corners). So the
    bound is A (2 pi / P)^2 m^2 / 4, plus 1.5 levels for rounding the photo, the result and the
    reference: 4.5 and 8.5 levels. The mean error must stay under one level.
    """
    source = LENSES[lens]
    target = _pinhole(source)
    u, v = _pixel_centres(source)
    distorted = np.stack([(u - source.cx) / source.fx, (v - source.cy) / source.fy], axis=-1)
    ideal = undistort_points(distorted, source)
    photo = np.rint(_pattern(ideal[..., 0] * source.fx + source.cx, ideal[..., 1] * source.fy + source.cy))
    photo = np.repeat(photo[..., None], 3, axis=-1).astype(np.uint8)

    result = undistort_image(photo, source, target)
    assert result.shape == photo.shape and result.dtype == np.uint8
    expected = np.rint(_pattern(*_pixel_centres(target)))
    inner = (slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))
    error = np.abs(result[..., 0].astype(float) - expected)[inner]
    bound = AMPLITUDE * (2 * np.pi / PERIOD) ** 2 * _max_compression(source) ** 2 / 4 + 1.5
    assert error.max() <= bound, (error.max(), bound)
    assert error.mean() < 1.0, error.mean()
    # The test has teeth: the photo itself is far from the pinhole view.
    assert np.abs(photo[..., 0].astype(float) - expected)[inner].mean() > 20.0
    # All channels resampled alike.
    np.testing.assert_array_equal(result[..., 0], result[..., 2])
