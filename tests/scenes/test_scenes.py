"""The built-in scenes: what the folders hold, and that images, depth, normals, cameras and the
ground-truth mesh agree with each other to float32 ray-casting precision."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from recon.cli import main
from recon.data import DataConfig, load_dataset
from recon.errors import DatasetError, OutputExistsError, ReconError
from recon.scenes import render_scene
from recon.scenes.geometry import mesh_file_scene
from recon.scenes.textures import ImageTextureMaterial, NoiseMaterial

SMALL = {"views": 4, "resolution": 48}


def frames(out: Path) -> list[str]:
    return sorted(p.stem for p in (out / "images").glob("*.png"))


def load_view(out: Path, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rgba = np.asarray(Image.open(out / "images" / f"{name}.png"))
    return rgba, np.load(out / "depth" / f"{name}.npy"), np.load(out / "normals" / f"{name}.npy")


def mesh_scene(mesh_path: Path):
    """An open3d ray-casting scene of the ground-truth mesh (for distances to its surface)."""
    import open3d as o3d

    mesh = trimesh.load(mesh_path, process=False)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.asarray(mesh.vertices, np.float32)),
                        o3d.core.Tensor(np.asarray(mesh.faces, np.uint32)))
    return mesh, scene


def backproject(camera, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World points [N,3] of the hit pixel centres, and their rows and columns."""
    rows, cols = np.nonzero(depth > 0)
    z = depth[rows, cols].astype(np.float64)
    cam = np.stack([(cols + 0.5 - camera.cx) / camera.fx * z,
                    (rows + 0.5 - camera.cy) / camera.fy * z, z], -1)
    c2w = camera.camera_to_world
    return cam @ c2w[:3, :3].T + c2w[:3, 3], rows, cols


@pytest.fixture(scope="module")
def default_scene_dir(tmp_path_factory) -> Path:
    """The default scene at its default settings (64 views, 256²), rendered once for this module."""
    out = tmp_path_factory.mktemp("scenes") / "default"
    start = time.perf_counter()
    summary = render_scene("default", out)
    print(f"\ndefault scene: {summary.views} views at {summary.resolution}² rendered in "
          f"{time.perf_counter() - start:.1f} s")
    return out


# -- the default scene ----------------------------------------------------------------------------

def test_default_scene_has_64_views_at_256_with_all_outputs(default_scene_dir):
    out = default_scene_dir
    names = frames(out)
    assert len(names) >= 64
    rgba, depth, normals = load_view(out, names[0])
    assert rgba.shape == (256, 256, 4) and rgba.dtype == np.uint8
    assert depth.shape == (256, 256) and depth.dtype == np.float32
    assert normals.shape == (256, 256, 3) and normals.dtype == np.float32
    meta = json.loads((out / "transforms.json").read_text())
    assert len(meta["frames"]) == len(names)
    assert meta["frames"][0]["depth_file_path"] == f"depth/{names[0]}.npy"
    assert (out / "mesh.ply").is_file()
    assert json.loads((out / "scene.json").read_text())["seed"] == 0


def test_backprojected_depth_lies_on_the_ground_truth_mesh(default_scene_dir):
    """Every hit pixel centre, lifted to 3D with its depth and camera, is on the GT surface.

    Tolerance 1e-4 scene units (the scene is ~4 units across, cameras 4.5 away): open3d casts in
    float32, whose rounding of ray origin, direction and hit distance is ~1e-6 relative."""
    import open3d as o3d

    out = default_scene_dir
    dataset = load_dataset(out, DataConfig(normalize=False))
    _, surface = mesh_scene(out / "mesh.ply")
    worst, count = 0.0, 0
    for camera, name in zip(dataset.cameras, frames(out)):
        _, depth, _ = load_view(out, name)
        points, _, _ = backproject(camera, depth)
        distance = surface.compute_distance(o3d.core.Tensor(points.astype(np.float32))).numpy()
        worst, count = max(worst, float(distance.max())), count + len(points)
    print(f"max distance of {count} back-projected pixels to the GT mesh: {worst:.2e}")
    assert count > 64 * 256 * 256 * 0.5  # the ground fills most of every view
    assert worst < 1e-4


def test_projected_mesh_vertices_reproduce_the_rendered_depth(default_scene_dir):
    """GT vertices projected through the loaded (normalised) cameras land where the depth map
    holds their camera z.

    Visible: a ray from the camera centre reaches the vertex itself (hit at 1 +- 1e-4 of the way).
    Smooth: the 4x4 depth window around the projection varies by < 1%, which excludes silhouettes
    and sub-pixel features such as the cone's apex. The depth at the projection is interpolated
    bilinearly in 1/z (exact on a plane). Vertices are creases of the faceted surface, so the
    interpolation mixes two planes; with the depth varying < 1% over 3 pixels that error is below
    ~0.33% of depth, hence the 4e-3 bound; the median is ~1e-4."""
    import open3d as o3d

    out = default_scene_dir
    dataset = load_dataset(out)  # normalised: the GT mesh is mapped by dataset.normalization
    mesh, _ = mesh_scene(out / "mesh.ply")
    vertices = dataset.normalization.apply(np.asarray(mesh.vertices))
    occluders = o3d.t.geometry.RaycastingScene()
    occluders.add_triangles(o3d.core.Tensor(vertices.astype(np.float32)),
                            o3d.core.Tensor(np.asarray(mesh.faces, np.uint32)))
    errors = []
    for camera, name in zip(dataset.cameras, frames(out)):
        _, depth, _ = load_view(out, name)
        depth = depth * dataset.normalization.scale
        uv, z = camera.project(vertices)
        x, y = uv[:, 0] - 0.5, uv[:, 1] - 0.5  # pixel-centre grid coordinates
        h, w = depth.shape
        inside = np.flatnonzero((x >= 1) & (y >= 1) & (x < w - 2) & (y < h - 2) & (z > 0))
        to_vertex = vertices[inside] - camera.center
        rays = np.concatenate([np.broadcast_to(camera.center, to_vertex.shape), to_vertex], -1)
        t = occluders.cast_rays(o3d.core.Tensor(rays.astype(np.float32)))["t_hit"].numpy()
        idx = inside[np.abs(t - 1.0) < 1e-4]
        x0, y0 = np.floor(x[idx]).astype(int), np.floor(y[idx]).astype(int)
        window = np.stack([depth[y0 + dy, x0 + dx] for dy in (-1, 0, 1, 2) for dx in (-1, 0, 1, 2)], -1)
        smooth = (window > 0).all(1) & (window.max(1) < 1.01 * window.min(1))
        idx, x0, y0 = idx[smooth], x0[smooth], y0[smooth]
        fx, fy = x[idx] - x0, y[idx] - y0
        inv = ((1 - fx) * (1 - fy) / depth[y0, x0] + fx * (1 - fy) / depth[y0, x0 + 1]
               + (1 - fx) * fy / depth[y0 + 1, x0] + fx * fy / depth[y0 + 1, x0 + 1])
        errors.append(np.abs(z[idx] * inv - 1.0))
    errors = np.concatenate(errors)
    print(f"{len(errors)} visible vertices: relative depth error median {np.median(errors):.1e}, "
          f"max {errors.max():.1e}")
    assert len(errors) > 5000
    assert np.median(errors) < 5e-4
    assert errors.max() < 4e-3


def test_normals_are_unit_face_the_camera_and_match_the_mesh(default_scene_dir):
    """Stored normals are the GT triangles' normals: unit length, pointing back towards the camera,
    and parallel to the normal of the closest GT triangle (|cos| > 0.999 for all but pixels whose
    closest triangle is ambiguous, i.e. on an edge: at most 0.1%)."""
    import open3d as o3d

    out = default_scene_dir
    dataset = load_dataset(out, DataConfig(normalize=False))
    _, surface = mesh_scene(out / "mesh.ply")
    cosines = []
    for camera, name in list(zip(dataset.cameras, frames(out)))[::8]:
        _, depth, normals = load_view(out, name)
        assert (normals[depth == 0] == 0).all()
        points, rows, cols = backproject(camera, depth)
        n = normals[rows, cols].astype(np.float64)
        np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-5)
        assert (np.einsum("ij,ij->i", n, points - camera.center) < 0).all()
        closest = surface.compute_closest_points(o3d.core.Tensor(points.astype(np.float32)))
        cosines.append(np.abs(np.einsum("ij,ij->i", n, closest["primitive_normals"].numpy())))
    cosines = np.concatenate(cosines)
    assert (cosines > 0.999).mean() > 0.999


def test_alpha_is_the_hit_coverage_and_the_sky_is_transparent(default_scene_dir):
    """Alpha is the fraction of the 2x2 sub-pixel rays that hit; where it is all or nothing it
    equals the centre ray's hit mask exactly, and partial coverage only occurs on silhouettes."""
    out = default_scene_dir
    partial = total = 0
    saw_sky = False
    for name in frames(out)[::4]:
        rgba, depth, _ = load_view(out, name)
        alpha = rgba[..., 3]
        assert set(np.unique(alpha)) <= {0, 64, 128, 191, 255}  # k/4 coverage, rounded
        full = (alpha == 0) | (alpha == 255)
        np.testing.assert_array_equal((alpha == 255)[full], (depth > 0)[full])
        assert (rgba[alpha == 0][:, :3] == 0).all()  # background: alpha 0, colour 0
        saw_sky |= bool((alpha == 0).any())
        partial, total = partial + int((~full).sum()), total + alpha.size
    assert saw_sky  # low views see past the ground disc
    assert partial / total < 0.02


def test_default_scene_gives_sift_many_features_in_every_view(default_scene_dir):
    """The textures exist for feature matching (SfM must register every view): COLMAP's SIFT
    finds ~300-500 keypoints per 256² view; 200 leaves room without accepting a bland scene."""
    import pycolmap

    extractor = pycolmap.FeatureExtractor.create(device=pycolmap.Device.cpu)
    for name in frames(default_scene_dir)[::8]:
        grey = np.asarray(Image.open(default_scene_dir / "images" / f"{name}.png").convert("L"))
        keypoints, _ = extractor.extract_from_uint8_array(grey)
        assert len(keypoints) >= 200, f"{name}: only {len(keypoints)} SIFT keypoints"


# -- other scenes ---------------------------------------------------------------------------------

def test_same_seed_same_files_other_seed_other_scene(tmp_path):
    a = render_scene("default", tmp_path / "a", seed=3, **SMALL)
    b = render_scene("default", tmp_path / "b", seed=3, **SMALL)
    c = render_scene("default", tmp_path / "c", seed=4, **SMALL)
    for name in frames(a.out):
        for kind in ("images/{}.png", "depth/{}.npy", "normals/{}.npy"):
            path = kind.format(name)
            assert (a.out / path).read_bytes() == (b.out / path).read_bytes(), path
    assert (a.out / "mesh.ply").read_bytes() == (b.out / "mesh.ply").read_bytes()
    differ = [not np.array_equal(load_view(a.out, n)[0], load_view(c.out, n)[0]) for n in frames(a.out)]
    assert all(differ)
    assert (a.out / "mesh.ply").read_bytes() != (c.out / "mesh.ply").read_bytes()


def test_sparse_scene_declares_3_train_and_8_test_views(tmp_path):
    summary = render_scene("sparse", tmp_path / "sparse", resolution=64)
    assert (summary.train_views, summary.test_views) == (3, 8)
    meta = json.loads((summary.out / "transforms.json").read_text())
    assert len(meta["train_filenames"]) == 3 and len(meta["test_filenames"]) == 8
    dataset = load_dataset(summary.out)
    assert dataset.split.count("train") == 3 and dataset.split.count("test") == 8
    train = [c for c, s in zip(dataset.cameras, dataset.split) if s == "train"]
    for first, second in zip(train, train[1:]):
        angle = np.degrees(np.arccos(np.clip(first.forward @ second.forward, -1, 1)))
        assert 30.0 <= angle <= 60.0


def test_object_scene_has_a_transparent_background_and_a_closed_mesh(tmp_path):
    summary = render_scene("object", tmp_path / "object", views=6, resolution=64)
    for name in frames(summary.out):
        rgba, depth, _ = load_view(summary.out, name)
        alpha = rgba[..., 3]
        border = np.concatenate([alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]])
        assert (border == 0).all()  # the object stays inside the frame
        assert 0.1 < (alpha > 0).mean() < 0.7
        assert ((depth > 0) <= (alpha > 0)).all()  # a hit centre always has coverage
    mesh = trimesh.load(summary.out / "mesh.ply")
    assert mesh.is_watertight
    assert np.linalg.norm(mesh.vertices, axis=1).max() == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("relative, material", [
    ("spot/spot_triangulated.obj", ImageTextureMaterial),  # UVs + sibling spot_texture.png
    ("trimesh_models/fuze.obj", ImageTextureMaterial),  # UVs + texture named by its .mtl
    ("trimesh_models/bunny.ply", NoiseMaterial),  # no colours: procedural texture
])
def test_mesh_files_render_with_their_own_texture(shared_data, tmp_path, relative, material):
    source = shared_data / "meshes" / relative
    geometry, similarity = mesh_file_scene(source, np.random.default_rng(0))
    assert isinstance(geometry.materials[0], material)
    summary = render_scene("mesh", tmp_path / "out", mesh=source, views=3, resolution=48)
    meta = json.loads((summary.out / "scene.json").read_text())
    assert meta["source_mesh"] == str(source.resolve())
    # mesh.ply is the source mesh mapped by the recorded similarity into the cameras' frame.
    original = trimesh.load(source, force="mesh")
    written = trimesh.load(summary.out / "mesh.ply", process=False)
    mapped = type(similarity).from_dict(meta["source_to_scene"]).apply(original.vertices)
    np.testing.assert_allclose(written.vertices, mapped, atol=1e-6)
    for name in frames(summary.out):
        rgba, _, _ = load_view(summary.out, name)
        assert rgba[0, 0, 3] == 0 and (rgba[..., 3] == 255).any()
        assert rgba[rgba[..., 3] == 255][:, :3].std() > 5.0  # textured, not flat


def test_spot_texture_colours_reach_the_image(shared_data, tmp_path):
    """Spot's texture is mostly white with black patches: both show up in the renders (shaded:
    albedo x (0.4 ambient + 0.7 Lambert), so lit white reaches ~255 and black stays near 0)."""
    summary = render_scene("mesh", tmp_path / "spot", mesh=shared_data / "meshes/spot/spot_triangulated.obj",
                           views=6, resolution=64)
    pixels = np.concatenate([load_view(summary.out, n)[0] for n in frames(summary.out)], 1)
    opaque = pixels[pixels[..., 3] == 255][:, :3].astype(float).mean(-1)
    assert np.percentile(opaque, 95) > 200 and np.percentile(opaque, 5) < 50


# -- errors and the command line ------------------------------------------------------------------

def test_bad_arguments_raise_clear_errors(tmp_path):
    with pytest.raises(ReconError, match="--mesh FILE"):
        render_scene("mesh", tmp_path / "a")
    with pytest.raises(ReconError, match="choose one of"):
        render_scene("castle", tmp_path / "a")
    with pytest.raises(ReconError, match="--views"):
        render_scene("default", tmp_path / "a", views=0)
    with pytest.raises(ReconError, match="at most 8"):
        render_scene("sparse", tmp_path / "a", views=9)
    with pytest.raises(DatasetError, match="does not exist"):
        render_scene("mesh", tmp_path / "a", mesh=tmp_path / "missing.obj")
    points_only = tmp_path / "points.ply"
    trimesh.PointCloud(np.random.default_rng(0).random((10, 3))).export(points_only)
    with pytest.raises(DatasetError, match="no triangles"):
        render_scene("mesh", tmp_path / "a", mesh=points_only)


def test_a_bad_mesh_does_not_wipe_the_output_even_with_force(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("results")
    with pytest.raises(DatasetError):
        render_scene("mesh", out, mesh=tmp_path / "missing.obj", force=True)
    assert (out / "keep.txt").read_text() == "results"


def test_cli_writes_the_scene_and_refuses_to_overwrite_without_force(tmp_path, capsys):
    out = tmp_path / "scene"
    args = ["scene", "default", "--out", str(out), "--views", "4", "--resolution", "32"]
    main(args)
    printed = capsys.readouterr().out
    assert f"recon info {out}" in printed and "4 views at 32x32" in printed
    assert len(frames(out)) == 4
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    assert "--force" in capsys.readouterr().err
    with pytest.raises(OutputExistsError):
        render_scene("default", out, views=4, resolution=32)
    main(args + ["--force"])
    assert len(frames(out)) == 4
