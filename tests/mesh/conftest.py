"""The mesh tests' fitted run, made once per session (both extraction test modules use it)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def fitted(tmp_path_factory):
    """A 300-step fast-preset Gaussian fit of the built-in ``object`` scene (a torus) at 64 px,
    32 views (~15 s): ``root/scene`` (with its mesh.ply) and ``root/run``."""
    from recon.cli import main

    root = tmp_path_factory.mktemp("extract")
    main(["scene", "object", "--out", str(root / "scene"), "--resolution", "64", "--views", "32"])
    main(["fit", str(root / "scene"), "--preset", "fast", "--steps", "300", "--quiet",
          "--out", str(root / "run")])
    return root
