"""Putting recon's things into a viser scene: a model, training cameras, meshes.

Everything is in the viewer's world frame: a run's normalised frame (the frame its cameras and
model live in), or a file's own frame when a file is viewed on its own. viser uses OpenCV camera
axes like recon, so poses go over unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from recon.cameras import Camera, Similarity
from recon.viewer.paths import Keyframe

THUMBNAIL_SIZE = 96
"""Longer side of the photo shown inside each frustum (small: one JPEG per training image)."""


def add_model(scene, view, name: str = "/model", visible: bool = True):
    """Add (or replace) what the browser draws of a :class:`SplatView`'s model (its
    ``Model.browser_view``: viser's Gaussian splats, or a mesh such as convexes' hulls); returns
    the viser handle."""
    drawable = view.model.browser_view(view.params)
    if isinstance(drawable, dict):
        return scene.add_gaussian_splats(name, **drawable, visible=visible)
    return scene.add_mesh_trimesh(name, drawable, visible=visible)


def add_training_cameras(scene, cameras: list[Camera], images: Callable[[int], np.ndarray],
                         on_click: Callable[[int, object], None], *,
                         scale: float = 0.1) -> list:
    """One frustum per camera, with the photo as a thumbnail; clicking it calls
    ``on_click(i, client)``. ``images(i)`` gives photo i as uint8 [H, W, C]."""
    handles = []
    for i, camera in enumerate(cameras):
        key = Keyframe.from_camera(camera)
        handle = scene.add_camera_frustum(
            f"/cameras/{i:04d}", fov=key.fov, aspect=camera.width / camera.height, scale=scale,
            image=thumbnail(images(i)), format="jpeg", jpeg_quality=80, wxyz=key.wxyz,
            position=key.position, color=(40, 120, 220))

        def clicked(event, index=i) -> None:
            on_click(index, event.client)

        handle.on_click(clicked)
        handles.append(handle)
    return handles


def add_mesh(scene, path: Path, transform: Similarity | None = None, name: str = "/mesh"):
    """Add a mesh file (anything trimesh reads); ``transform`` maps its vertices into the
    viewer's frame (a run's normalisation for a mesh exported in the input's frame)."""
    import trimesh

    from recon.viewer.server import ViewerError

    try:
        mesh = trimesh.load(path, force="mesh")
    except Exception as exc:  # trimesh raises many types for unreadable files
        raise ViewerError(f"Cannot read the mesh {path}: {exc}. Give a .ply/.obj/.glb/.stl "
                          "mesh file.") from exc
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise ViewerError(f"{path} holds no triangles (a point cloud?); recon view shows "
                          "meshes, 3DGS .ply files and run directories.")
    if transform is not None:
        mesh = mesh.copy()
        mesh.vertices = transform.apply(np.asarray(mesh.vertices))
    return scene.add_mesh_trimesh(name, mesh)


def thumbnail(image: np.ndarray, size: int = THUMBNAIL_SIZE) -> np.ndarray:
    """RGB uint8 thumbnail (alpha composited over white) with the longer side ``size``."""
    from PIL import Image

    channels = image.shape[-1]
    colour = np.repeat(image[..., :1], 3, -1) if channels in (1, 2) else image[..., :3]
    rgb = colour.astype(np.float32)
    if channels in (2, 4):
        alpha = image[..., -1:].astype(np.float32) / 255.0
        rgb = rgb * alpha + 255.0 * (1.0 - alpha)
    pil = Image.fromarray(np.rint(rgb).clip(0, 255).astype(np.uint8))
    pil.thumbnail((size, size))
    return np.asarray(pil)


def camera_scale(cameras: list[Camera]) -> float:
    """A frustum size that reads well and hides little: 5% of the median distance between the
    cameras and their mean centre."""
    centers = np.stack([c.center for c in cameras])
    spread = float(np.median(np.linalg.norm(centers - centers.mean(0), axis=1)))
    return 0.05 * spread if spread > 0 else 0.05


__all__ = ["THUMBNAIL_SIZE", "add_mesh", "add_model", "add_training_cameras", "camera_scale",
           "thumbnail"]
