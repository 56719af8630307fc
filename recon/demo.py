"""`recon demo` (what `make demo` runs): the main job on the built-in default scene.

Renders the default scene to a posed dataset, fits Gaussian splats to it with the MCMC strategy
(the `fast` preset, sized for a laptop CPU), evaluates the held-out views, exports the splats and
writes a report, then says where everything is.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path


def run_demo(out: Path, force: bool = True, steps: int | None = None) -> dict:
    from recon.errors import prepare_output_dir
    from recon.eval.evaluate import evaluate_run
    from recon.eval.report import write_report
    from recon.export import export_run
    from recon.scenes import render_scene
    from recon.train.config import PRESETS
    from recon.train.trainer import fit

    out = prepare_output_dir(Path(out), force)
    start = time.perf_counter()
    scene_dir, run_dir = out / "scene", out / "run"
    print(render_scene("default", scene_dir, mesh=None, views=None, resolution=None, seed=0, force=True))

    config = dataclasses.replace(PRESETS["fast"], data=scene_dir, out=run_dir, strategy="mcmc")
    if steps is not None:
        config = dataclasses.replace(config, steps=steps)
    fit(config)
    result = evaluate_run(run_dir)
    ply = export_run(run_dir, format="ply")
    splat = export_run(run_dir, format="splat")
    report = write_report(run_dir, force=True)
    elapsed = time.perf_counter() - start

    print(f"\nDemo finished in {elapsed:.0f} s: {config.steps} steps, {result['num_primitives']} Gaussians, "
          f"held-out PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.4f} "
          f"({len(result['per_image'])} test views).")
    print(f"  dataset   {scene_dir}")
    print(f"  run       {run_dir}  (config.yaml, checkpoints/, metrics.jsonl, renders/)")
    print(f"  report    {report}")
    print(f"  splats    {ply}  and  {splat}")
    print("View the .ply or .splat in any 3DGS viewer (e.g. SuperSplat, antimatter15/splat); "
          "test renders beside ground truth are in the run's renders/ folder.")
    return {"psnr": result["psnr"], "ssim": result["ssim"], "seconds": elapsed,
            "num_primitives": result["num_primitives"]}
