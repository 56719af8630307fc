"""`recon process`: structure-from-motion on an image folder (pycolmap, CPU).

Accuracy is checked on the built-in default scene against its ground-truth cameras; the error
tests use tiny synthetic folders so they run in well under a second each.
"""

from __future__ import annotations

import shutil
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from recon.cameras import align_similarity
from recon.cli import main
from recon.data import DataConfig, load_dataset
from recon.data.sfm import (EXIF_FOCAL_35MM, EXIF_FOCAL_MM, EXIF_IFD, EXIF_ORIENTATION,
                            EXIF_PLANE_UNIT, EXIF_PLANE_X_RESOLUTION, EXIF_SIZE, SCRATCH,
                            SfMConfig, _exif_focal_priors, _stage_for_sift, exif_focal_px,
                            _upright_copies, process_images, upright_size)
from recon.errors import DatasetError, OutputExistsError, ReconError, SfMError

# The fast accuracy check: the default scene from fewer, smaller views than its own 64 at 256 px.
# Neighbouring views are ~35 degrees apart here, which the affine-adapted SIFT still matches.
FAST_VIEWS, FAST_RESOLUTION = 16, 192
RAW = DataConfig(normalize=False)
TURNED = ("frame_00003.png", "frame_00010.png")
"""Views of the processed scene stored turned, with an EXIF orientation."""


def _noise_images(folder, count=3, size=(96, 80), seed=0):
    """``count`` unrelated random-noise PNGs: decodable, rich in SIFT features, with nothing to match."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"noise_{i}.png"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


# -- input errors (all raised before the output folder is touched) --------------------------------

def test_missing_folder_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        process_images(tmp_path / "nope", tmp_path / "out", quiet=True)
    assert not (tmp_path / "out").exists()


def test_empty_folder_is_a_dataset_error(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(DatasetError, match="holds no images"):
        process_images(tmp_path / "photos", tmp_path / "out", quiet=True)


def test_non_image_files_are_skipped_with_a_warning(tmp_path):
    photos = tmp_path / "photos"
    _noise_images(photos, count=2)
    (photos / "notes.txt").write_text("shot on a phone")
    # The text file is skipped (warning naming it); what remains is too few images.
    with pytest.warns(UserWarning, match="notes.txt"), pytest.raises(DatasetError, match="holds 2 image"):
        process_images(photos, tmp_path / "out", quiet=True)


def test_corrupt_image_is_named(tmp_path):
    photos = tmp_path / "photos"
    paths = _noise_images(photos, count=3)
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[: len(data) // 2])  # header intact, pixel data truncated
    with pytest.raises(DatasetError, match="noise_1.png"):
        process_images(photos, tmp_path / "out", quiet=True)


def test_images_of_different_sizes_are_listed(tmp_path):
    photos = tmp_path / "photos"
    _noise_images(photos, count=3, size=(96, 80))
    Image.new("RGB", (80, 96)).save(photos / "rotated.png")
    with pytest.raises(DatasetError, match=r"most are 96x80, but rotated.png \(80x96\).*Resize"):
        process_images(photos, tmp_path / "out", quiet=True)


def test_force_does_not_delete_old_results_when_the_input_is_bad(tmp_path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    paths = _noise_images(photos, count=3)
    paths[0].write_bytes(b"not a png")
    out.mkdir()
    (out / "transforms.json").write_text("{}")
    with pytest.raises(DatasetError, match="noise_0.png"):
        process_images(photos, out, force=True, quiet=True)
    assert (out / "transforms.json").read_text() == "{}"


def test_existing_output_needs_force(tmp_path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    _noise_images(photos)
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(OutputExistsError, match="--force"):
        process_images(photos, out, quiet=True)
    assert (out / "keep.txt").read_text() == "precious"


def test_image_folder_inside_output_is_refused(tmp_path):
    # `recon process scene/images --out scene --force` would otherwise delete the photos.
    photos = tmp_path / "scene" / "images"
    _noise_images(photos)
    with pytest.raises(ReconError, match="inside the output folder"):
        process_images(photos, tmp_path / "scene", force=True, quiet=True)
    assert len(list(photos.iterdir())) == 3


# -- mapping failure ----------------------------------------------------------------------------

def test_unrelated_images_fail_with_the_unregistered_names(tmp_path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    _noise_images(photos, count=3)
    with pytest.raises(SfMError) as err:
        process_images(photos, out, SfMConfig(num_threads=1), quiet=True)
    message = str(err.value)
    assert "posed only 0 of 3" in message
    assert all(f"noise_{i}.png" in message for i in range(3))
    assert "overlap" in message
    # Nothing misleading is left behind: no scratch folder, no partial dataset.
    assert out.is_dir() and not any(out.iterdir()), sorted(p.name for p in out.iterdir())


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    photos = tmp_path / "photos"
    _noise_images(photos, count=3)
    with pytest.raises(SystemExit) as exc:
        main(["process", str(photos), "--out", str(tmp_path / "out"), "--quiet"])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert "error: Structure-from-motion posed only 0 of 3 images" in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "out" / SCRATCH).exists()


# -- the default scene ----------------------------------------------------------------------------

def _render_default(folder: Path, **kwargs) -> Path:
    from recon.scenes import render_scene

    render_scene("default", folder, seed=0, **kwargs)
    return folder


def _store_turned(path: Path) -> None:
    """Rewrite the photo at ``path`` as a camera held sideways stores it: its pixels turned 90°
    anticlockwise, with EXIF orientation 6 (turn clockwise to show), so it shows as before."""
    with Image.open(path) as im:
        shown = im.copy()
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    shown.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif)


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    """The fast default scene, plus one unrelated noise image, through `process`; two views are
    stored turned with an EXIF orientation (they show as rendered)."""
    root = tmp_path_factory.mktemp("sfm")
    scene = _render_default(root / "scene", views=FAST_VIEWS, resolution=FAST_RESOLUTION)
    photos = root / "photos"
    shutil.copytree(scene / "images", photos)
    for name in TURNED:
        _store_turned(photos / name)
    _noise_images(photos, count=1, size=(FAST_RESOLUTION, FAST_RESOLUTION))
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = process_images(photos, root / "out", quiet=True)
    seconds = time.perf_counter() - start
    print(f"\nprocess: {FAST_VIEWS} views at {FAST_RESOLUTION} px in {seconds:.1f} s")
    return SimpleNamespace(scene=scene, photos=photos, out=out,
                           warnings=[str(w.message) for w in caught])


def _centre_errors(scene: Path, out: Path) -> tuple[np.ndarray, float, list[str]]:
    """Distances of the estimated camera centres from the true ones after a similarity alignment,
    the true cameras' scene radius, and the names of the posed images."""
    truth = load_dataset(scene, RAW)
    true_by_name = {p.name: c for p, c in zip(truth.image_paths, truth.cameras)}
    est = load_dataset(out, RAW, format="transforms")
    names = [p.name for p in est.image_paths]
    est_centres = est.camera_centers()
    true_centres = np.stack([true_by_name[n].center for n in names])
    sim = align_similarity(est_centres, true_centres)
    return np.linalg.norm(sim.apply(est_centres) - true_centres, axis=1), truth.scene_radius(), names


def test_default_scene_registers_every_view_and_recovers_camera_centres(processed):
    errors, radius, names = _centre_errors(processed.scene, processed.out)
    views = sorted(p.name for p in (processed.scene / "images").iterdir())
    assert sorted(names) == views
    worst = errors.max() / radius
    print(f"max camera-centre error: {worst:.2%} of the scene radius")
    # Measured 0.7 %; 2 % of the radius is the bound (a few pixels of reprojection).
    assert worst < 0.02


def test_focal_length_is_recovered(processed):
    truth = load_dataset(processed.scene, RAW).cameras[0]
    est = load_dataset(processed.out, RAW, format="transforms").cameras[0]
    # Measured 0.05 %: the shared camera is fitted to every view, so 1 % is a loose bound.
    assert est.fx == pytest.approx(truth.fx, rel=0.01)
    assert (est.width, est.height) == (truth.width, truth.height)


def test_unposable_image_is_left_out_with_a_warning(processed):
    assert any("noise_0.png" in w and "1 of 17" in w for w in processed.warnings), processed.warnings
    assert not (processed.out / "images" / "noise_0.png").exists()
    assert "noise_0.png" not in (processed.out / "transforms.json").read_text()


def test_outputs_keep_the_photos_and_points_lie_on_the_scene(processed):
    import open3d as o3d
    import trimesh

    from recon.data.transforms import read_ply_points

    out = processed.out
    assert not (out / SCRATCH).exists()
    for copy in (out / "images").iterdir():  # unchanged: alpha kept, no re-encoding
        if copy.name in TURNED:  # ... but for the turned ones, now stored as they show
            assert np.array_equal(np.asarray(Image.open(copy)),
                                  np.asarray(Image.open(processed.scene / "images" / copy.name)))
        else:
            assert copy.read_bytes() == (processed.photos / copy.name).read_bytes()
    assert set(TURNED) <= {p.name for p in (out / "images").iterdir()}  # and they registered
    points, colors = read_ply_points(out / "sparse_pc.ply")
    assert len(points) > 200 and colors is not None and colors.shape == points.shape
    # Map the points into the true frame with the camera alignment, then measure how far they are
    # from the ground-truth surface.
    truth = load_dataset(processed.scene, RAW)
    true_by_name = {p.name: c for p, c in zip(truth.image_paths, truth.cameras)}
    est = load_dataset(out, RAW, format="transforms")
    sim = align_similarity(est.camera_centers(),
                           np.stack([true_by_name[p.name].center for p in est.image_paths]))
    mesh = trimesh.load(processed.scene / "mesh.ply")
    surface = o3d.t.geometry.RaycastingScene()
    surface.add_triangles(o3d.core.Tensor(np.asarray(mesh.vertices, np.float32)),
                          o3d.core.Tensor(np.asarray(mesh.faces, np.uint32)))
    dist = surface.compute_distance(o3d.core.Tensor(sim.apply(points).astype(np.float32))).numpy()
    dist /= truth.scene_radius()
    # Measured: median 0.06 %, 90th percentile 0.2 % of the radius (a few outliers reach 1.5 %).
    assert np.median(dist) < 0.005
    assert np.percentile(dist, 90) < 0.01


def test_transforms_json_holds_the_cameras_of_the_sparse_model(processed):
    import pycolmap

    from_json = load_dataset(processed.out, RAW, format="transforms")
    from_colmap = load_dataset(processed.out, RAW, format="colmap")
    model = pycolmap.Reconstruction(str(processed.out / "sparse" / "0"))  # an independent reader
    assert [p.name for p in from_json.image_paths] == [p.name for p in from_colmap.image_paths]
    assert from_json.source_cameras is not None  # SIMPLE_RADIAL: written distorted, as estimated
    for i, path in enumerate(from_json.image_paths):
        a, b = from_json.cameras[i], from_colmap.cameras[i]
        assert np.abs(a.world_to_camera - b.world_to_camera).max() <= 1e-6
        assert np.abs(a.K - b.K).max() <= 1e-6
        src_a, src_b = from_json.source_cameras[i], from_colmap.source_cameras[i]
        assert np.abs(src_a.distortion - src_b.distortion).max() <= 1e-6
        image = model.find_image_with_name(path.name)
        assert np.abs(a.world_to_camera[:3] - image.cam_from_world().matrix()).max() <= 1e-6
        assert src_a.distortion[0] == pytest.approx(image.camera.params[3], abs=1e-6)
    np.testing.assert_allclose(from_json.points, from_colmap.points, atol=1e-6)


@pytest.mark.slow
def test_default_scene_at_full_size_through_the_cli(tmp_path, capsys):
    scene = _render_default(tmp_path / "scene")
    start = time.perf_counter()
    main(["process", str(scene / "images"), "--out", str(tmp_path / "out"), "--quiet"])
    seconds = time.perf_counter() - start
    assert "Posed dataset written to" in capsys.readouterr().out
    errors, radius, names = _centre_errors(scene, tmp_path / "out")
    with capsys.disabled():
        print(f"\nprocess (CLI): {len(names)} views at 256 px in {seconds:.1f} s, "
              f"max camera-centre error {errors.max() / radius:.2%} of the scene radius")
    assert len(names) == 64
    assert errors.max() / radius < 0.02  # measured 0.5 %


# -- compositing for SIFT -----------------------------------------------------------------------

def test_transparent_pixels_are_composited_for_sift(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255  # red stored under alpha 0 must not reach SIFT
    rgba[:4, :, 3] = 255
    Image.fromarray(rgba).save(tmp_path / "cut.png")
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(tmp_path / "photo.jpg", quality=80)
    _stage_for_sift([tmp_path / "cut.png", tmp_path / "photo.jpg"], tmp_path / "staged", "white")
    staged = np.asarray(Image.open(tmp_path / "staged" / "cut.png"))
    assert staged.shape == (8, 8, 3)
    assert (staged[:4] == [255, 0, 0]).all() and (staged[4:] == 255).all()
    # Opaque photos are copied byte for byte (no second JPEG compression).
    assert (tmp_path / "staged" / "photo.jpg").read_bytes() == (tmp_path / "photo.jpg").read_bytes()


def test_exif_orientation_is_honoured(tmp_path):
    """A photo stored turned (orientation 6) counts at its shown size, and SfM and everything
    after it see its shown pixels; photos without a turn are copied byte for byte."""
    shown = np.random.default_rng(0).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    Image.fromarray(shown).save(tmp_path / "turned.png")
    _store_turned(tmp_path / "turned.png")
    Image.fromarray(shown).save(tmp_path / "plain.png")
    assert Image.open(tmp_path / "turned.png").size == (6, 10)      # stored sideways
    assert upright_size(tmp_path / "turned.png") == (10, 6)
    copies = _upright_copies([tmp_path / "turned.png", tmp_path / "plain.png"], tmp_path / "up")
    assert np.array_equal(np.asarray(Image.open(copies[0])), shown)
    assert Image.open(copies[0]).getexif().get(EXIF_ORIENTATION, 1) == 1
    assert copies[1].read_bytes() == (tmp_path / "plain.png").read_bytes()


def test_portrait_and_landscape_photos_stop_before_any_work(tmp_path):
    photos = tmp_path / "photos"
    _noise_images(photos, count=3, size=(96, 80))
    Image.new("RGB", (96, 80)).save(photos / "portrait.png")
    _store_turned(photos / "portrait.png")   # stored 80x96, shown 96x80: fits the others
    Image.new("RGB", (96, 80)).save(photos / "held_up.png", exif=_orientation(6))  # shown 80x96
    with pytest.raises(DatasetError, match=r"held_up.png \(80x96\) \(as shown upright"):
        process_images(photos, tmp_path / "out", quiet=True)
    assert not (tmp_path / "out").exists()


def _with_focal(path: Path, size: tuple[int, int], tags: dict | None = None) -> Path:
    """A noise photo of ``size`` whose EXIF holds ``tags`` (sub-IFD tag id -> value)."""
    exif = Image.Exif()
    exif.get_ifd(EXIF_IFD).update(tags or {})
    noise = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, exif=exif, quality=95)
    return path


def test_exif_focal_length_in_pixels(tmp_path):
    # 55 mm on a sensor of 4,000 px per inch: 8,661 px at the written size; the photo was
    # since halved (the EXIF size says 2000 x 1334), so 4,331 px.
    sensor = _with_focal(tmp_path / "a.jpg", (1000, 667), {
        EXIF_FOCAL_MM: 55.0, EXIF_PLANE_X_RESOLUTION: 4000.0, EXIF_PLANE_UNIT: 2,
        EXIF_SIZE[0]: 2000, EXIF_SIZE[1]: 1334})
    assert exif_focal_px(sensor) == pytest.approx(55.0 * 4000.0 / 25.4 / 2.0, rel=1e-9)
    # Only the 35 mm equivalent: 36 mm across the longer side, portrait or landscape alike.
    film = _with_focal(tmp_path / "b.jpg", (600, 800), {EXIF_FOCAL_MM: 4.3,
                                                          EXIF_FOCAL_35MM: 27})
    assert exif_focal_px(film) == pytest.approx(27 / 36 * 800, rel=1e-9)
    assert exif_focal_px(_with_focal(tmp_path / "c.jpg", (64, 48))) is None


def test_exif_focal_length_becomes_the_cameras_prior(tmp_path):
    """A body COLMAP's sensor table lacks (no Make/Model here) still starts from its EXIF focal
    length, marked as a prior, instead of COLMAP's 1.2 x the longer side."""
    import pycolmap

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        _with_focal(photos / f"{i}.jpg", (160, 120), {EXIF_FOCAL_MM: 50.0,
                                                       EXIF_PLANE_X_RESOLUTION: 40.0,
                                                       EXIF_PLANE_UNIT: 4})
    database = tmp_path / "database.db"
    pycolmap.extract_features(database, photos, camera_mode=pycolmap.CameraMode.SINGLE,
                              device=pycolmap.Device.cpu)
    _exif_focal_priors(database, photos)
    db = pycolmap.Database.open(database)
    try:
        [camera] = db.read_all_cameras()
    finally:
        db.close()
    assert camera.has_prior_focal_length
    assert camera.focal_length == pytest.approx(50.0 * 40.0, rel=1e-9)  # 2000 px


def _orientation(value: int) -> Image.Exif:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = value
    return exif


@pytest.mark.slow
def test_the_street_sequence_is_posed_whole(shared_data, tmp_path):
    """lund, 29 photos along a street and round a corner: every photo posed, at under a pixel
    of mean reprojection error (measured: 29, 0.68 px; with COLMAP's registration thresholds
    the five photos after the corner were left out)."""
    import pycolmap

    main(["process", str(shared_data / "photos" / "opensfm_lund" / "images"),
          "--out", str(tmp_path / "out"), "--quiet"])
    model = pycolmap.Reconstruction(str(tmp_path / "out" / "sparse" / "0"))
    assert model.num_reg_images() == 29
    assert model.compute_mean_reprojection_error() < 1.0
