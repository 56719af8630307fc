"""`recon process`: structure-from-motion on an image folder (pycolmap, CPU).

Accuracy is checked on the built-in default scene against its ground-truth cameras; the error
tests use tiny synthetic folders so they run in well under a second each.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from recon.cli import main
from recon.data.sfm import SCRATCH, SfMConfig, process_images
from recon.errors import DatasetError, OutputExistsError, ReconError, SfMError


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
