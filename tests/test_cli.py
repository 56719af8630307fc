"""The CLI shell: fast help, clean errors (message, exit 2, no traceback), no silent overwrites."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from recon.cli import main
from recon.errors import OutputExistsError, prepare_output_dir

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
