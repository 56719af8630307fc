"""The strategy tests' small Gaussian sets and camera, shared by path (test folders are not
packages)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "strategies_conftest", Path(__file__).resolve().parents[1] / "strategies" / "conftest.py")
_strategies = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_strategies)

splat_set = _strategies.splat_set
optimizers_for = _strategies.optimizers_for
test_camera = _strategies.test_camera
