"""Camera paths: interpolation hits keyframes and stays a rotation, orbits close, JSON trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from recon.viewer.paths import (CameraPath, CameraPathError, Keyframe, look_at_rotation,
                                matrix_to_wxyz, orbit_path, scene_up, training_path)


def _keyframes() -> list[Keyframe]:
    rng = np.random.default_rng(0)
    keys = []
    for i in range(4):
        eye = np.array([3.0 * np.cos(i), 3.0 * np.sin(i), 0.5 * i]) + rng.normal(0, 0.1, 3)
        rot = look_at_rotation(eye, rng.normal(0, 0.2, 3), np.array([0.0, 0.0, 1.0]))
        keys.append(Keyframe(eye, matrix_to_wxyz(rot), fov=np.radians(40 + 5 * i)))
    return keys


@pytest.mark.parametrize("loop", [False, True])
def test_interpolation_hits_keyframes_and_stays_orthonormal(loop):
    keys = _keyframes()
    path = CameraPath(keys, loop=loop)
    for i, key in enumerate(keys):
        pose = path.pose_at(i)
        # Exact up to float rounding: keyframes are the spline's knots.
        np.testing.assert_allclose(pose.position, key.position, atol=1e-12)
        np.testing.assert_allclose(pose.rotation(), key.rotation(), atol=1e-12)
        assert pose.fov == pytest.approx(key.fov, abs=1e-12)
    for s in np.linspace(0, path.num_segments, 57):
        r = path.pose_at(s).rotation()
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-10)
        assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-10)


def test_frames_include_keyframes_when_counts_align():
    keys = _keyframes()
    path = CameraPath(keys, loop=False)
    frames = path.frames(3 * path.num_segments + 1)    # frames 0, 3, 6, 9 are the keyframes
    for i, key in enumerate(keys):
        np.testing.assert_allclose(frames[3 * i].position, key.position, atol=1e-12)
    # Centre positions move smoothly: no step is more than twice the mean step.
    steps = np.linalg.norm(np.diff([f.position for f in frames], axis=0), axis=1)
    assert steps.max() < 2.0 * steps.mean()


def test_orbit_closes_the_loop_and_circles_the_centre(ring_cameras):
    cams = ring_cameras(12)
    path = orbit_path(cams, fps=10, seconds=4.8)
    frames = path.frames()
    assert len(frames) == 48
    # The closing step (last frame -> first) is as long as every other step: the loop is seamless.
    pos = np.array([f.position for f in frames + frames[:1]])
    steps = np.linalg.norm(np.diff(pos, axis=0), axis=1)
    np.testing.assert_allclose(steps, steps.mean(), rtol=0.02)
    np.testing.assert_allclose(path.pose_at(path.num_segments).position, frames[0].position,
                               atol=1e-12)
    # The ring cameras sit 3 from the z axis at height 1 and look at the origin.
    np.testing.assert_allclose(np.linalg.norm(pos[:, :2], axis=1), 3.0, rtol=0.01)
    np.testing.assert_allclose(pos[:, 2], 1.0, atol=1e-6)
    forward = frames[5].rotation()[:, 2]
    to_centre = -frames[5].position / np.linalg.norm(frames[5].position)
    assert forward @ to_centre > 0.999
    np.testing.assert_allclose(scene_up(cams), [0, 0, 1], atol=1e-9)


def test_training_path_passes_through_the_cameras(ring_cameras):
    cams = ring_cameras(5)
    path = training_path(cams, fps=4)
    assert path.seconds == 2.0 and path.num_frames == 8
    first = path.frames()[0].to_camera(cams[0].width, cams[0].height)
    np.testing.assert_allclose(first.world_to_camera, cams[0].world_to_camera, atol=1e-9)
    assert first.fy == pytest.approx(cams[0].fy)


def test_json_round_trip(tmp_path):
    path = CameraPath(_keyframes(), loop=True, fps=24, seconds=3.5)
    file = path.save(tmp_path / "p.json")
    back = CameraPath.load(file)
    assert (back.loop, back.fps, back.seconds) == (True, 24, 3.5)
    for a, b in zip(path.frames(), back.frames()):
        np.testing.assert_allclose(a.position, b.position, atol=1e-12)
        np.testing.assert_allclose(a.rotation(), b.rotation(), atol=1e-12)
    assert json.loads(file.read_text())["keyframes"][1]["fov_degrees"] == pytest.approx(45.0)


def test_bad_paths_are_reported(tmp_path):
    with pytest.raises(CameraPathError, match="at least 2 keyframes"):
        CameraPath(_keyframes()[:1])
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1, "keyframes": [{"position": [0, 0]}]}')
    with pytest.raises(CameraPathError, match="Not a recon camera path"):
        CameraPath.load(bad)
    bad.write_text("not json")
    with pytest.raises(CameraPathError, match="not valid JSON"):
        CameraPath.load(bad)
