"""`recon demo` (what `make demo` runs): the main job on the built-in default scene.

Until fitting lands, the demo renders the default scene to a posed dataset, loads it back through
the dataset loaders and prints what was made and how to use it.
"""

from __future__ import annotations

import time
from pathlib import Path


def run_demo(out: Path, force: bool = True) -> None:
    from recon.data import load_dataset
    from recon.data.info import describe, format_description
    from recon.errors import prepare_output_dir
    from recon.scenes import render_scene

    out = prepare_output_dir(Path(out), force)
    start = time.perf_counter()
    summary = render_scene("default", out / "scene", mesh=None, views=None, resolution=None,
                           seed=0, force=True)
    print(summary)
    dataset = load_dataset(out / "scene")
    print(format_description(describe(out / "scene", dataset.config)))
    print(f"\nDemo finished in {time.perf_counter() - start:.1f} s. Results: {out.resolve()}")
    print(f"Next: `recon info {out / 'scene'}`, or pose your own photos with `recon process PHOTOS --out DIR`.")
