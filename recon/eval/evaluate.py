"""`recon eval RUN`: render the test split of a fitted run and score it with PSNR and SSIM.

Writes ``RUN/eval.json`` ({"step", "model", "num_primitives", "psnr", "ssim", "corrected_psnr",
"per_image": [...]}, the means being over the test images; runs evaluated before models existed
wrote "num_gaussians") and ``RUN/renders/test_XXXX.png`` (render | ground truth side by side,
XXXX = the image's index in the dataset). Beside PSNR and SSIM:

- "corrected_psnr": the PSNR after the affine colour transform that best maps each render onto
  its photo (recon.train.appearance): the protocol for runs fitted with ``--appearance``, whose
  test photos have no transform of their own, and for others what an exposure change costs;
- "masked_psnr", when the test images have alpha or masks: the PSNR over the object's pixels
  (alpha at least 0.5) alone, as DTU evaluations report it;
- "holes", when they have neither: the fraction of pixels the model leaves less than half covered
  (a photo is opaque everywhere, so these show the background colour instead of the scene);
- "floaters", when the dataset has sparse points: the fraction of pixels whose median depth lies
  nearer than half the 1st-percentile depth of the points the view sees (something in front of
  everything SfM found there).

The test images are seen exactly as in training: the run is opened with ``recon.run.load_run``
(the same resolution and normalised frame), images with alpha are composited over the run's
background colour, and the model is rendered with the active SH degree and projection options of
the checkpoint. A run trained on random backgrounds
is scored over white, the usual choice for synthetic scenes. Rendered colours are clamped to
[0, 1] before scoring (as gsplat's evaluation does).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from recon.errors import OutputExistsError, ReconError

EVAL_FILE = "eval.json"
RENDERS_DIR = "renders"


def evaluate_run(run_dir: Path, step: int | None = None, backend: str = "auto",
                 force: bool = False) -> dict:
    """Evaluate the checkpoint of ``step`` (the newest when None) on the test split.

    ``backend`` picks the renderer as ``recon fit --backend`` does (auto: recon's kernels on the
    GPU when there is one, else on the CPU; gsplat: gsplat's CUDA rasterizer).
    Refuses to replace an existing ``eval.json`` unless ``force``. Returns what it wrote to
    ``eval.json``.
    """
    from recon.metrics import masked_psnr, psnr, ssim
    from recon.train.appearance import colour_matched
    from recon.run import load_run
    from recon.train.backends import renderer, training_device

    run_dir = Path(run_dir)
    out_file = run_dir / EVAL_FILE
    if out_file.exists() and not force:
        raise OutputExistsError(f"{out_file} already exists. Pass --force to evaluate again.")
    run = load_run(run_dir, step)
    dataset, background = run.dataset, run.background
    test = dataset.indices("test")
    if not test:
        raise ReconError(f"The dataset at {run.data_path} has no test images, so there is "
                         "nothing to evaluate. Fit with a test split "
                         "(e.g. --data.test-every 8).")
    device = training_device(backend)
    draw = renderer(backend, run.model)
    params = run.params_on(device)
    colors = run.model.colors(params, run.sh_degree)
    bg = torch.tensor([1.0 if background == "white" else 0.0] * 3, device=device)

    points = None if dataset.points is None or not len(dataset.points) else dataset.points
    renders = run_dir / RENDERS_DIR
    renders.mkdir(parents=True, exist_ok=True)
    for old in renders.glob("test_*.png"):
        old.unlink()
    per_image = []
    for i in test:
        with torch.no_grad():
            drawn = draw(params, dataset.cameras[i], colors, run.sh_degree, bg, absgrad=False,
                         depth=points is not None)
        pred = drawn.features.clamp(0.0, 1.0)
        image = dataset.image(i)
        gt = _ground_truth(image, background, device)
        png = renders / f"test_{i:04d}.png"
        _save_side_by_side(png, pred, gt)
        per_image.append({
            "index": i, "name": dataset.image_paths[i].name,
            "psnr": float(psnr(pred, gt)), "ssim": float(ssim(pred, gt)),
            "render": png.relative_to(run_dir).as_posix(),
        })
        # Scored as the photo's exposure and white balance would show it, too: the measure of a
        # run fitted with --appearance, and what a run without it would gain from one.
        matched = colour_matched(pred, gt).clamp(0.0, 1.0)
        per_image[-1]["corrected_psnr"] = float(psnr(matched, gt))
        if image.shape[-1] in (2, 4):  # alpha or a mask: the object's pixels alone too
            inside = torch.from_numpy(image[..., -1] >= 128).to(device)
            per_image[-1]["masked_psnr"] = float(masked_psnr(pred, gt, inside))
        else:  # a photo is opaque everywhere: where the model is not, the background shows
            per_image[-1]["holes"] = float((drawn.alpha < 0.5).float().mean())
        if points is not None:
            floaters = floater_fraction(drawn.median_depth, dataset.cameras[i], points)
            if floaters is not None:
                per_image[-1]["floaters"] = floaters
    result = {
        "step": run.step,
        "model": run.model.name,
        "num_primitives": run.count,
        "psnr": float(np.mean([r["psnr"] for r in per_image])),
        "ssim": float(np.mean([r["ssim"] for r in per_image])),
        "per_image": per_image,
    }
    result["corrected_psnr"] = float(np.mean([r["corrected_psnr"] for r in per_image]))
    if all("masked_psnr" in r for r in per_image):
        result["masked_psnr"] = float(np.nanmean([r["masked_psnr"] for r in per_image]))
    for key in ("holes", "floaters"):
        if all(key in r for r in per_image):
            result[key] = float(np.mean([r[key] for r in per_image]))
    out_file.write_text(json.dumps(result, indent=2) + "\n")
    return result


def floater_fraction(median_depth: torch.Tensor, camera, points: np.ndarray,
                     percentile: float = 1.0, margin: float = 0.5) -> float | None:
    """The fraction of a view's pixels whose median depth (the surface the render shows, 0 where
    nothing is drawn) lies nearer than ``margin`` x the ``percentile``-th depth of the sparse
    ``points`` the view sees: what stands in front of everything SfM found there (floaters).
    None when the view sees fewer than 20 points."""
    uv, z = camera.project(points)
    seen = (z > 0) & (uv >= 0).all(1) & (uv[:, 0] < camera.width) & (uv[:, 1] < camera.height)
    if seen.sum() < 20:
        return None
    nearest = float(np.percentile(z[seen], percentile))
    shown = median_depth > 0
    return float((shown & (median_depth < margin * nearest)).float().mean())


def _ground_truth(image: np.ndarray, background: str, device) -> torch.Tensor:
    from recon.data.dataset import composite_background

    rgb = composite_background(image, background)
    if rgb.shape[-1] == 1:  # a greyscale photo: the splats are always RGB
        rgb = np.repeat(rgb, 3, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).to(device)


def _save_side_by_side(path: Path, pred: torch.Tensor, gt: torch.Tensor) -> None:
    """PNG of the render (left) beside the ground truth (right)."""
    from PIL import Image

    both = torch.cat([pred, gt], dim=2).permute(1, 2, 0).cpu().numpy()
    Image.fromarray(np.rint(both * 255.0).clip(0, 255).astype(np.uint8)).save(path)


__all__ = ["EVAL_FILE", "RENDERS_DIR", "evaluate_run"]
