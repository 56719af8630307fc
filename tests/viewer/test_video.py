"""`recon render`: a camera path video with the right frame count and size, plus PNG frames."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from recon.cli import main
from recon.viewer.paths import CameraPath, orbit_path
from recon.viewer.views import RENDER_MODES, SplatView


def test_render_orbit_video(fitted_run, tmp_path, capsys):
    out = tmp_path / "orbit.mp4"
    main(["render", str(fitted_run), "--path", "orbit", "--out", str(out), "--fps", "8",
          "--seconds", "1.5", "--width", "48", "--height", "35", "--quiet"])
    video = iio.imread(out)
    # 8 fps x 1.5 s = 12 frames; 35 px is rounded up to 36 (H.264 needs even sizes).
    assert video.shape == (12, 36, 48, 3)
    frames = sorted((tmp_path / "orbit_frames").glob("frame_*.png"))
    assert len(frames) == 12
    first = iio.imread(frames[0])
    # The video holds the same pictures (up to H.264's loss) and they are not blank.
    assert np.abs(video[0].astype(float) - first).mean() < 8.0
    assert first.min() < 200  # the blobs are darker than the white background
    assert "12 frames, 48x36 at 8 fps" in capsys.readouterr().out

    # Without --force nothing is replaced.
    with pytest.raises(SystemExit) as exc:
        main(["render", str(fitted_run), "--out", str(out), "--quiet"])
    assert exc.value.code == 2
    assert "already exists" in capsys.readouterr().err


def test_render_json_path_in_depth_mode(fitted_run, tmp_path):
    from recon.run import load_run

    cameras = load_run(fitted_run).dataset.cameras  # paths live in the run's frame
    path_file = orbit_path(cameras, fps=5, seconds=1.0).save(tmp_path / "p.json")
    out = tmp_path / "depth.mp4"
    main(["render", str(fitted_run), "--path", str(path_file), "--out", str(out),
          "--mode", "depth", "--quiet"])
    video = iio.imread(out)
    assert video.shape == (5, 64, 64, 3)  # the path's 5 fps x 1 s, the training size
    assert CameraPath.load(path_file).num_frames == 5
    assert video[..., 0].max() > 100  # the turbo colour map's warm end: the blobs are seen


def test_render_modes_differ_where_the_scene_is(fitted_run):
    from recon.run import load_run

    run = load_run(fitted_run)
    view = SplatView(run.model, run.params, run.sh_degree)
    assert view.count == run.count > 0
    camera = run.dataset.cameras[0]
    images = {mode: view.render(camera, mode) for mode in RENDER_MODES}
    alpha = images["alpha"][..., 0] / 255.0
    drawn = alpha > 0.9
    assert drawn.mean() > 0.05  # the blobs cover part of the image
    # Depth and normal maps are black where nothing was drawn, coloured where it was.
    assert images["depth"][alpha < 0.01].max(initial=0) == 0
    assert images["depth"][drawn].mean() > 40
    assert images["normal"][drawn].mean() > 40
    assert not np.array_equal(images["rgb"], images["depth"])


def test_bad_timing_is_refused_before_writing(fitted_run, tmp_path, capsys):
    out = tmp_path / "v.mp4"
    with pytest.raises(SystemExit) as exc:
        main(["render", str(fitted_run), "--out", str(out), "--fps", "0", "--quiet"])
    assert exc.value.code == 2
    assert "fps and seconds must be positive" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "v_frames").exists()
