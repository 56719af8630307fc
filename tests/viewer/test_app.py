"""The viewer's own logic without a browser: what the browser draws of a model, frustum clicks,
path recording, the render loop's moving/resting quality."""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from recon.viewer.app import open_viewer
from recon.viewer.paths import CameraPath, Keyframe
from recon.viewer.render_loop import (FINAL_QUALITY, PREVIEW_MAX_SIDE, PREVIEW_QUALITY,
                                      ClientRenderLoop, RenderSettings, frame_size)
from recon.viewer.scene import add_model, thumbnail
from recon.viewer.views import SplatView


class FakeClient:
    """What the viewer uses of a viser ClientHandle: a camera, a scene, atomic()."""

    def __init__(self, position=(2.0, 0.0, 0.0), wxyz=(1.0, 0.0, 0.0, 0.0)):
        self.client_id = 7
        self.callbacks = []
        self.camera = SimpleNamespace(position=np.array(position), wxyz=np.array(wxyz),
                                      fov=math.radians(50), aspect=4 / 3, image_width=640,
                                      image_height=480, on_update=self.callbacks.append)
        self.frames = []
        self.scene = SimpleNamespace(set_background_image=lambda image, **kw:
                                     self.frames.append((image, kw)))

    def atomic(self):
        return contextlib.nullcontext()


def test_add_model_draws_the_models_browser_view():
    """Gaussians go to viser as Gaussian splats (GaussianModel.browser_view: tested in
    tests/models/test_gaussians.py); a model whose browser view is a mesh goes as a mesh."""
    import trimesh

    from recon.models.gaussians import GaussianModel
    from recon.train.config import FitConfig

    calls = []
    scene = SimpleNamespace(
        add_gaussian_splats=lambda name, visible, **arrays: calls.append(("splats", name,
                                                                          visible, arrays)),
        add_mesh_trimesh=lambda name, mesh, visible: calls.append(("mesh", name, visible, mesh)))
    splats = {"means": torch.zeros(2, 3), "quats": torch.tensor([[1.0, 0, 0, 0]]).repeat(2, 1),
              "scales": torch.zeros(2, 3), "opacities": torch.zeros(2),
              "sh0": torch.zeros(2, 1, 3), "shN": torch.zeros(2, 0, 3)}
    model = GaussianModel(FitConfig(data=Path("x")), 1.0)
    add_model(scene, SplatView(model, splats, 0), visible=False)
    kind, name, visible, arrays = calls.pop()
    assert (kind, name, visible) == ("splats", "/model", False)
    assert set(arrays) == {"centers", "covariances", "rgbs", "opacities"}
    assert arrays["centers"].shape == (2, 3)

    box = trimesh.creation.box()
    hulls = SimpleNamespace(browser_view=lambda params: box, count=lambda params: 1)
    add_model(scene, SplatView(hulls, {}, 0), name="/hulls")
    assert calls.pop() == ("mesh", "/hulls", True, box)


def test_thumbnail_composites_alpha_over_white():
    rgba = np.zeros((200, 100, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:100, :, 3] = 255
    thumb = thumbnail(rgba, size=50)
    assert thumb.shape == (50, 25, 3)
    np.testing.assert_array_equal(thumb[5, 5], [255, 0, 0])      # opaque red stays red
    np.testing.assert_array_equal(thumb[45, 5], [255, 255, 255])  # transparent turns white


def test_frustum_click_and_camera_path_recording(fitted_run, tmp_path):
    viewer = open_viewer(fitted_run, port=0, quiet=True)
    try:
        client = FakeClient()
        viewer.go_to_camera(3, client)  # what clicking frustum 3 calls
        expected = Keyframe.from_camera(viewer._cameras[3])
        np.testing.assert_allclose(client.camera.position, expected.position)
        np.testing.assert_allclose(client.camera.wxyz, expected.wxyz)
        assert client.camera.fov == pytest.approx(expected.fov)
        assert viewer.photo.visible and viewer.photo.label == "Training photo 3"

        viewer.paths_dir = tmp_path
        assert viewer.save_camera_path() is None  # no keyframes yet: says so, writes nothing
        assert "at least 2 keyframes" in viewer.path_status.content
        first = viewer.add_keyframe(client)
        client.camera.position = np.array([0.0, 2.0, 0.5])
        second = viewer.add_keyframe(client)
        viewer.path_seconds.value = 2.0
        saved = viewer.save_camera_path()
        path = CameraPath.load(saved)
        assert saved == tmp_path / "path.json" and path.seconds == 2.0
        np.testing.assert_allclose(path.keyframes[0].position, first.position)
        np.testing.assert_allclose(path.keyframes[1].position, second.position)
        viewer.clear_keyframes()
        assert viewer.path_status.content == "0 keyframes"
    finally:
        viewer.close()


def test_render_loop_previews_while_moving_and_sharpens_at_rest():
    sizes = []

    def render(camera, mode):
        sizes.append((camera.width, camera.height))
        return np.zeros((camera.height, camera.width, 3), np.uint8)

    client = FakeClient()
    loop = ClientRenderLoop(client, render, RenderSettings(max_side=400))
    try:
        deadline = time.monotonic() + 10
        while loop.frames_sent < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert loop.last_frame.kind == "final" and sizes[-1] == (400, 300)
        for _ in range(3):  # a drag: camera messages faster than the rest delay
            client.callbacks[0](client.camera)
            time.sleep(0.05)
        deadline = time.monotonic() + 10
        while loop.last_frame.kind != "final" or loop.frames_sent < 3:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        kinds = [kw["jpeg_quality"] for _, kw in client.frames]
        assert PREVIEW_QUALITY in kinds and kinds[-1] == FINAL_QUALITY
        assert (PREVIEW_MAX_SIDE, 192) in sizes  # previews: 640x480 scaled to 256 wide
        assert sizes[-1] == (400, 300)           # at rest: the max-resolution setting
        assert loop.camera_updates == 3
    finally:
        loop.stop()
    assert frame_size(1920, 1080, 1024) == (1024, 576)
    assert frame_size(300, 200, 1024) == (300, 200)  # never upscaled


def test_run_meshes_are_shown_in_the_run_frame(fitted_run, tmp_path, monkeypatch):
    import shutil

    import trimesh

    import recon.viewer.app as app
    from recon.export import export_run
    from recon.viewer.scene import add_mesh

    run = tmp_path / "run"
    shutil.copytree(fitted_run, run)
    export_run(run)                                      # export/splats.ply: not a mesh
    (run / "export" / "convexes.glb").write_bytes(b"")  # a model export: not shown either
    box = trimesh.creation.box(extents=(1.0, 2.0, 3.0))
    box.export(run / "export" / "mesh_tsdf.ply")         # extract-mesh's name, input frame
    shown = []
    monkeypatch.setattr(app, "add_mesh", lambda scene, path, transform, name:
                        shown.append((path.name, transform, name)))
    viewer = open_viewer(run, port=0, quiet=True)
    try:
        assert [(n, name) for n, _, name in shown] == [("mesh_tsdf.ply", "/meshes/mesh_tsdf")]
        transform = shown[0][1]
        # The mesh goes through the run's normalisation, like the cameras did.
        added = []
        scene = SimpleNamespace(add_mesh_trimesh=lambda name, mesh: added.append(mesh))
        add_mesh(scene, run / "export" / "mesh_tsdf.ply", transform)
        np.testing.assert_allclose(added[0].vertices, transform.apply(box.vertices), atol=1e-5)
        assert transform.scale != 1.0  # the blobs' cameras (radius 3) are scaled to a unit sphere
    finally:
        viewer.close()


def test_a_3dgs_ply_file_is_viewed_as_its_splats(fitted_run, tmp_path):
    from recon.export import export_run
    from recon.models.splat_files import read_ply

    ply = export_run(fitted_run, out=tmp_path / "splats.ply")
    viewer = open_viewer(ply, port=0, quiet=True)
    try:
        view = viewer._view
        assert view.model.name == "gaussians" and view.count == len(read_ply(ply)["opacities"])
        assert view.sh_degree == 3  # every band the file holds (max_sh_degree 3)
    finally:
        viewer.close()


def test_the_viewer_opens_over_the_first_training_camera_with_frustums_sized_to_the_scene(
        fitted_run):
    """`recon view` starts where the user took the photos (behind and above the first training
    camera, with its field of view, looking at what the cameras see), and frustum size follows
    the scene's scale, so a scene in millimetres and one in kilometres both read."""
    import dataclasses

    from recon.models.points import viewed_region
    from recon.viewer.scene import camera_scale

    viewer = open_viewer(fitted_run, port=0, quiet=True)
    try:
        cameras, initial = viewer._cameras, viewer.server.initial_camera
        first = Keyframe.from_camera(cameras[0])
        target = viewed_region(cameras)[0]
        np.testing.assert_allclose(initial.look_at, target, atol=1e-5)
        assert initial.fov == pytest.approx(first.fov)
        # Farther from the target than the first camera, and near its direction (within 45°).
        offset, start = first.position - target, np.asarray(initial.position) - target
        assert np.linalg.norm(start) > 1.2 * np.linalg.norm(offset)
        assert offset @ start / (np.linalg.norm(offset) * np.linalg.norm(start)) > math.cos(
            math.radians(45))
    finally:
        viewer.close()

    def scaled(camera, factor):
        w2c = camera.world_to_camera.copy()
        w2c[:3, 3] *= factor  # the same rotations, every centre `factor` times as far out
        return dataclasses.replace(camera, world_to_camera=w2c)

    size = camera_scale(cameras)
    assert 0 < size < 0.1 * max(np.linalg.norm(c.center - cameras[0].center) for c in cameras)
    assert camera_scale([scaled(c, 1000.0) for c in cameras]) == pytest.approx(1000.0 * size)
