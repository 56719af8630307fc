"""TSDF fusion of depth maps and colour (open3d's uniform volume + marching cubes).

The depth maps are the views' level-set depth (:func:`recon.mesh.sugar.level_set_views`) or
their rendered depth (``--tsdf.depth``). Every view's depth map is integrated into a voxel cube
of truncated signed distances with colour; the zero level set is the mesh. The cube is the
bounding cube of the scene's surface sphere, and the voxel size and the truncation follow from
its radius (see :class:`recon.mesh.options.TsdfOptions`): a few hundred voxels across the surface
is what Triangle Splatting's and 2DGS's DTU meshes use (voxel 0.004 of a unit-radius scene), with
the truncation a few voxels wide so thin parts are not smeared together.

open3d's hashed ``ScalableTSDFVolume`` would only allocate voxels near the surface, but in the
open3d wheel recon installs it integrates nothing (every extraction comes back empty, even for a
flat depth map), so the dense ``UniformTSDFVolume`` is used: 256³ voxels take ~1.3 GB.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recon.errors import ReconError
from recon.mesh.views import View, track


def fuse_views(views: Sequence[View], center: np.ndarray, half_size: float, resolution: int,
               truncation: float, progress=None):
    """The ``trimesh.Trimesh`` (with vertex colours) of the zero level of the views' fused TSDF.

    The volume is the cube ``center`` ± ``half_size`` cut into ``resolution``³ voxels;
    ``truncation`` is in voxels.
    """
    import open3d as o3d

    from recon.mesh.io import make_mesh

    if not half_size > 0 or resolution < 8 or not truncation > 1:
        raise ReconError(f"TSDF fusion needs a positive volume, at least 8 voxels across and a "
                         f"truncation wider than one voxel; got half size {half_size:g}, "
                         f"{resolution} voxels and truncation {truncation:g} voxels.")
    integration = o3d.pipelines.integration
    voxel = 2.0 * half_size / resolution
    origin = np.asarray(center, np.float64) - half_size
    volume = integration.UniformTSDFVolume(
        length=2.0 * half_size, resolution=int(resolution), sdf_trunc=float(truncation * voxel),
        color_type=integration.TSDFVolumeColorType.RGB8, origin=origin[:, None])
    for view in track(progress, views, "fusing depth"):
        cam = view.camera
        rgbd = o3d.geometry.RGBDImage.create_from_color_and_depth(
            o3d.geometry.Image(np.ascontiguousarray(np.rint(view.rgb * 255.0).astype(np.uint8))),
            o3d.geometry.Image(np.ascontiguousarray(view.depth, dtype=np.float32)),
            depth_scale=1.0, depth_trunc=float(view.depth.max()) + 1.0,
            convert_rgb_to_intensity=False)
        # open3d puts pixel u's centre at x = (u - cx) / fx; recon at (u + 0.5 - cx) / fx.
        intrinsic = o3d.camera.PinholeCameraIntrinsic(cam.width, cam.height, cam.fx, cam.fy,
                                                      cam.cx - 0.5, cam.cy - 0.5)
        volume.integrate(rgbd, intrinsic, cam.world_to_camera)
    fused = volume.extract_triangle_mesh()
    return make_mesh(np.asarray(fused.vertices), np.asarray(fused.triangles),
                     np.asarray(fused.vertex_colors) if fused.has_vertex_colors() else None)


__all__ = ["fuse_views"]
