"""Every CUDA source compiles with nvcc (plain CUDA, no torch), where nvcc exists."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CUDA = Path(__file__).resolve().parents[2] / "cuda"
SOURCES = sorted((CUDA / "gpu").glob("*.cu"))


def test_there_are_cuda_sources():
    assert {p.name for p in SOURCES} >= {"rasterize_fwd.cu", "rasterize_bwd.cu"}


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_compiles_with_nvcc(source, tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not found: CUDA sources not compile-checked on this machine")
    result = subprocess.run(
        [nvcc, "-c", "-std=c++17", "-I", str(CUDA / "include"), str(source),
         "-o", str(tmp_path / (source.stem + ".o"))],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / (source.stem + ".o")).stat().st_size > 0
