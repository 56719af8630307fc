"""The CLI shell: fast help, clean errors (message, exit 2, no traceback), no silent overwrites."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from recon.cli import main
from recon.errors import OutputExistsError, ReconError, prepare_output_dir

RECON = Path(sys.executable).parent / "recon"


def test_help_lists_subcommands_quickly():
    start = time.perf_counter()
    res = subprocess.run([str(RECON), "--help"], capture_output=True, text=True, timeout=30)
    elapsed = time.perf_counter() - start
    assert res.returncode == 0
    for name in ("scene", "process", "info", "demo"):
        assert name in res.stdout
    # Lazy imports: torch/open3d/pycolmap must not load for --help (issue: under 2 s).
    assert elapsed < 2.0, f"recon --help took {elapsed:.2f} s"


def test_help_does_not_import_heavy_modules():
    code = ("import sys; from recon import cli; "
            "print(any(m in sys.modules for m in ('torch', 'open3d', 'pycolmap')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"


def test_user_error_prints_message_and_exits_2_without_traceback(tmp_path):
    res = subprocess.run([str(RECON), "info", str(tmp_path / "nope")], capture_output=True, text=True)
    assert res.returncode == 2
    assert "does not exist" in res.stderr
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout


def test_unknown_format_names_the_accepted_formats(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(SystemExit) as exc:
        main(["info", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "transforms.json" in err and "recon process" in err


def test_output_dir_is_never_overwritten_without_force(tmp_path):
    out = tmp_path / "run"
    prepare_output_dir(out, force=False)
    (out / "result.txt").write_text("precious")
    with pytest.raises(OutputExistsError, match="--force"):
        prepare_output_dir(out, force=False)
    assert (out / "result.txt").read_text() == "precious"
    prepare_output_dir(out, force=True)
    assert not (out / "result.txt").exists()


def test_fit_preset_sets_defaults_and_flags_override():
    from recon.cli import _fit_command, _split_preset

    preset, rest = _split_preset(["data", "--preset", "fast", "--steps", "7", "--out", "r"])
    config = _fit_command(preset).parse(rest)
    assert (preset, config.steps, config.strategy, str(config.out)) == ("fast", 7, "mcmc", "r")
    preset, rest = _split_preset(["data", "--preset=quality"])
    assert _fit_command(preset).parse(rest).steps == 30_000
    with pytest.raises(ReconError, match="Unknown preset"):
        _fit_command("turbo")


def test_fit_on_a_missing_dataset_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fit", str(tmp_path / "nope"), "--out", str(tmp_path / "run")])
    assert exc.value.code == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing written for bad input


def test_scene_writes_under_data_by_default(monkeypatch):
    """`recon scene NAME` writes data/NAME (data/STEM with --mesh), never into scenes/, which
    is the renderer's source in a checkout."""
    import recon.scenes
    from recon import cli

    outs = []
    monkeypatch.setattr(recon.scenes, "render_scene", lambda name, out, **_: outs.append(out) or "")
    cli.main(["scene", "object"])
    cli.main(["scene", "--mesh", "meshes/bunny.ply"])
    cli.main(["scene", "object", "--out", "elsewhere"])
    assert outs == [Path("data/object"), Path("data/bunny"), Path("elsewhere")]
