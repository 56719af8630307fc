"""Camera conventions and similarity transforms: the conversions everything else relies on."""

import numpy as np
import pytest

from recon.cameras import (Camera, Similarity, align_similarity, invert_rigid, look_at,
                           rotation_is_valid)


def random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_look_at_puts_target_on_the_optical_axis_with_y_down():
    w2c = look_at([3.0, 0.0, 1.0], [0.0, 0.0, 0.0], up=[0, 0, 1])
    cam = Camera(100, 80, 50.0, 50.0, 50.0, 40.0, w2c)
    uv, z = cam.project(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.5]]))
    assert np.allclose(uv[0], [50.0, 40.0], atol=1e-9)
    assert z[0] == pytest.approx(np.sqrt(10.0))
    # A point above the target (world +z) appears above the centre: smaller v (y down).
    assert uv[1, 1] < 40.0
    assert rotation_is_valid(w2c[:3, :3])
    assert np.allclose(cam.center, [3.0, 0.0, 1.0])


def test_opengl_round_trip_and_axis_flip():
    rng = np.random.default_rng(0)
    c2w_gl = np.eye(4)
    c2w_gl[:3, :3] = random_rotation(rng)
    c2w_gl[:3, 3] = rng.normal(size=3)
    cam = Camera.from_opengl(c2w_gl, 64, 48, 40.0, 40.0, 32.0, 24.0)
    assert np.allclose(cam.opengl_camera_to_world(), c2w_gl, atol=1e-12)
    # OpenGL looks down -z: a point 2 units along the GL camera's -z is straight ahead at depth 2.
    ahead = c2w_gl[:3, 3] - 2.0 * c2w_gl[:3, 2]
    uv, z = cam.project(ahead[None])
    assert np.allclose(uv[0], [32.0, 24.0], atol=1e-9) and z[0] == pytest.approx(2.0)


def test_similarity_maps_cameras_consistently_with_points():
    rng = np.random.default_rng(1)
    cam = Camera(64, 64, 50.0, 50.0, 32.0, 32.0, look_at([2.0, 1.0, 1.5], [0.1, 0.0, 0.2]))
    sim = Similarity(0.37, random_rotation(rng), rng.normal(size=3))
    pts = rng.normal(size=(20, 3)) * 0.3
    uv0, z0 = cam.project(pts)
    uv1, z1 = cam.transformed(sim).project(sim.apply(pts))
    assert np.allclose(uv0, uv1, atol=1e-9)  # a similarity does not change the image
    assert np.allclose(z1, 0.37 * z0, atol=1e-12)  # depths scale with the world
    back = sim.inverse().apply(sim.apply(pts))
    assert np.allclose(back, pts, atol=1e-12)
    both = sim.compose(sim.inverse())
    assert np.allclose(both.matrix(), np.eye(4), atol=1e-12)
    assert np.allclose(Similarity.from_dict(sim.to_dict()).matrix(), sim.matrix())


def test_align_similarity_recovers_a_known_transform():
    rng = np.random.default_rng(2)
    src = rng.normal(size=(30, 3))
    truth = Similarity(2.5, random_rotation(rng), np.array([1.0, -2.0, 0.5]))
    est = align_similarity(src, truth.apply(src))
    assert est.scale == pytest.approx(2.5, rel=1e-10)
    assert np.allclose(est.matrix(), truth.matrix(), atol=1e-9)


def test_scaled_camera_keeps_the_field_of_view_and_pixel_centres():
    cam = Camera(200, 100, 150.0, 150.0, 100.0, 50.0, np.eye(4))
    half = cam.scaled(0.5)
    assert (half.width, half.height) == (100, 50)
    assert half.fov_x == pytest.approx(cam.fov_x)
    assert (half.cx, half.cy) == (50.0, 25.0)


def test_invert_rigid_and_rotation_check():
    rng = np.random.default_rng(3)
    m = np.eye(4)
    m[:3, :3] = random_rotation(rng)
    m[:3, 3] = rng.normal(size=3)
    assert np.allclose(invert_rigid(m) @ m, np.eye(4), atol=1e-12)
    assert not rotation_is_valid(np.diag([1.0, 1.0, -1.0]))  # a reflection
    assert not rotation_is_valid(np.full((3, 3), np.nan))
