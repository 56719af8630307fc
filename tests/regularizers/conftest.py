"""The trainer tests' tiny dataset and single-thread setting, shared by path (test folders are
not packages)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "train_conftest", Path(__file__).resolve().parents[1] / "train" / "conftest.py")
_train = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_train)

tiny_npz = _train.tiny_npz
one_thread = _train.one_thread
