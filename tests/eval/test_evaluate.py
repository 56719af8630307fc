"""evaluate_run and write_report on a tiny fake run (a hand-made checkpoint on the sparse scene)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from recon.data import DataConfig, load_dataset
from recon.errors import OutputExistsError, ReconError
from recon.eval.evaluate import evaluate_run
from recon.eval.report import write_report
from recon.metrics import ssim
from recon.models.base import sh_coefficients
from recon.models.gaussians import create_splats, to_gaussians
from recon.models.points import random_points, viewed_region
from recon.render import render
from recon.scenes import render_scene
from recon.train.checkpoint import load_checkpoint, save_checkpoint
from recon.train.config import DataOptions, FitConfig, to_dict

N = 300
STEP = 1234


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    """2 train + 8 test views of the sparse scene at 32x32 (RGBA, transparent background)."""
    out = tmp_path_factory.mktemp("data") / "sparse"
    render_scene("sparse", out, views=2, resolution=32, force=True)
    return out


def make_run(root: Path, data: Path, background: str = "white",
             opacity: float = 0.6, scale: float = 1.0) -> tuple[Path, dict]:
    """A run directory holding one checkpoint in the trainer's format, and a metrics.jsonl."""
    config = DataConfig(background=background)
    dataset = load_dataset(data, config)
    g = torch.Generator().manual_seed(0)
    center, half = viewed_region(dataset.cameras)
    points, colors = random_points(N, center, half, generator=g)
    splats = create_splats(points, colors, max_sh_degree=3, init_scale=scale, init_opacity=opacity,
                           generator=g)
    # Non-zero higher bands: the active degree (1) must decide which of them count.
    splats["shN"].data = 0.2 * torch.randn(splats["shN"].shape, generator=g)
    run = root / "run"
    save_checkpoint(run, {
        "step": STEP, "model": "gaussians",
        "params": {k: v.detach() for k, v in splats.items()}, "optimizers": {},
        "strategy_state": {}, "sh_degree": 1, "max_sh_degree": 3, "rng": {},
        "config": to_dict(FitConfig(data=data, strategy="mcmc", eps2d=0.3, antialiased=False,
                                    data_options=DataOptions(background=background))),
        "normalization": dataset.normalization.to_dict(), "data_path": str(data),
        "data_config": asdict(config)})
    rows = [{"step": s, "loss": 0.2 / (1 + s / 100), "psnr": 15 + s / 200, "num_primitives": N,
             "sec_per_step": 0.05, "elapsed": 0.05 * s} for s in range(50, STEP + 1, 50)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "config.yaml").write_text(f"data: {data}\nstrategy: mcmc\nmax_sh_degree: 3\n")
    return run, {"splats": splats, "dataset": dataset}


def reference_render(splats, camera, background: float) -> torch.Tensor:
    with torch.no_grad():
        return render(to_gaussians(splats), camera, sh_coefficients(splats),
                      torch.full((3,), background), sh_degree=1, eps2d=0.3).features.clamp(0, 1)


@pytest.mark.parametrize("background", ["white", "black"])
def test_evaluate_run_scores_the_test_split(tmp_path, scene, background):
    run, made = make_run(tmp_path, scene, background)
    result = evaluate_run(run)
    saved = json.loads((run / "eval.json").read_text())
    assert saved == result
    assert set(saved) == {"step", "model", "num_primitives", "psnr", "ssim", "masked_psnr",
                          "corrected_psnr", "per_image"}
    assert saved["step"] == STEP and saved["num_primitives"] == N
    assert saved["model"] == "gaussians"
    dataset = made["dataset"]
    test = dataset.indices("test")
    assert [r["index"] for r in saved["per_image"]] == test and len(test) == 8
    assert saved["psnr"] == pytest.approx(np.mean([r["psnr"] for r in saved["per_image"]]), abs=1e-9)
    assert saved["ssim"] == pytest.approx(np.mean([r["ssim"] for r in saved["per_image"]]), abs=1e-9)
    assert saved["masked_psnr"] == pytest.approx(
        np.mean([r["masked_psnr"] for r in saved["per_image"]]), abs=1e-9)

    bg = 1.0 if background == "white" else 0.0
    for entry in saved["per_image"]:
        i = entry["index"]
        image = dataset.image(i).astype(np.float64) / 255.0
        gt = image[..., :3] * image[..., 3:] + bg * (1.0 - image[..., 3:])  # straight alpha over bg
        pred = reference_render(made["splats"], dataset.cameras[i], bg)
        mse = np.mean((pred.permute(1, 2, 0).numpy().astype(np.float64) - gt) ** 2)
        # float32 pipeline vs float64 recomputation of the same MSE: 1e-4 dB.
        assert entry["psnr"] == pytest.approx(-10 * np.log10(mse), abs=1e-4)
        # The images have alpha: the PSNR over the object's pixels (alpha >= 0.5) alone too.
        inside = dataset.image(i)[..., 3] >= 128
        error = (pred.permute(1, 2, 0).numpy().astype(np.float64) - gt) ** 2
        assert entry["masked_psnr"] == pytest.approx(-10 * np.log10(error[inside].mean()),
                                                     abs=1e-4)
        gt_t = torch.from_numpy(gt).permute(2, 0, 1).float()
        assert entry["ssim"] == pytest.approx(ssim(pred, gt_t).item(), abs=1e-5)
        png = np.asarray(Image.open(run / entry["render"]))
        assert png.shape == (32, 64, 3)  # render | ground truth
        assert np.abs(png[:, 32:].astype(int) - np.rint(gt * 255)).max() <= 1  # 8-bit rounding
        assert np.abs(png[:, :32].astype(int) - np.rint(pred.permute(1, 2, 0).numpy() * 255)).max() <= 1
    # A random 300-splat cloud is a poor model of the scene: low but finite scores.
    assert 5.0 < saved["psnr"] < 25.0 and 0.0 < saved["ssim"] < 0.9


def test_evaluate_run_counts_holes_in_opaque_photos(tmp_path, scene):
    # The same views as photos without alpha: the pixels the model covers less than half show the
    # background, where a photo has scene; eval reports their fraction instead of a masked PSNR.
    import shutil

    photos = tmp_path / "photos"
    shutil.copytree(scene, photos)
    for png in (photos / "images").glob("*.png"):
        rgba = np.asarray(Image.open(png)).astype(np.float64) / 255.0
        rgb = rgba[..., :3] * rgba[..., 3:] + (1.0 - rgba[..., 3:])
        Image.fromarray(np.rint(rgb * 255).astype(np.uint8)).save(png)
    run, made = make_run(tmp_path, photos, scale=0.2)  # small: part of each view uncovered
    saved = evaluate_run(run)
    assert "masked_psnr" not in saved
    dataset = made["dataset"]
    expected = []
    for entry in saved["per_image"]:
        with torch.no_grad():
            alpha = render(to_gaussians(made["splats"]), dataset.cameras[entry["index"]],
                           sh_coefficients(made["splats"]), torch.ones(3), sh_degree=1,
                           eps2d=0.3).alpha
        expected.append(float((alpha < 0.5).float().mean()))
        assert entry["holes"] == pytest.approx(expected[-1], abs=1 / 32**2)  # one pixel
    assert saved["holes"] == pytest.approx(np.mean([r["holes"] for r in saved["per_image"]]))
    assert 0.05 < saved["holes"] < 0.95


def test_floater_fraction_counts_what_stands_before_every_sparse_point():
    from recon.cameras import Camera
    from recon.eval.evaluate import floater_fraction

    camera = Camera(10, 10, 10.0, 10.0, 5.0, 5.0, np.eye(4))  # at the origin, looking down +z
    rng = np.random.default_rng(0)
    # 200 points the view sees at depths 4..8 (1st percentile ~4.04), 50 behind it.
    seen = np.column_stack([rng.uniform(-1, 1, (200, 2)), rng.uniform(4, 8, 200)])
    points = np.concatenate([seen, seen * [1, 1, -1]])
    depth = torch.full((10, 10), 6.0)
    depth[0, :5] = 1.0       # floaters: nearer than half the nearest points (2.02)
    depth[1, :5] = 3.0       # nearer than the points, but within the margin
    depth[2, :] = 0.0        # nothing drawn: a hole, not a floater
    assert floater_fraction(depth, camera, points) == pytest.approx(5 / 100)
    assert floater_fraction(depth, camera, points, margin=0.9) == pytest.approx(10 / 100)
    assert floater_fraction(depth, camera, points[:10]) is None  # too few points to judge


def test_evaluate_run_refuses_to_overwrite(tmp_path, scene):
    run, _ = make_run(tmp_path, scene)
    first = evaluate_run(run)
    with pytest.raises(OutputExistsError, match="--force"):
        evaluate_run(run)
    assert evaluate_run(run, force=True) == first  # deterministic


def test_write_report_links_existing_images(tmp_path, scene):
    run, _ = make_run(tmp_path, scene)
    path = write_report(run)  # no eval.json yet: evaluates first
    assert path == run / "report.md" and (run / "eval.json").is_file()
    text = path.read_text()
    evaluation = json.loads((run / "eval.json").read_text())
    assert f"| Test PSNR | {evaluation['psnr']:.2f} dB |" in text
    assert f"| Gaussians | {N} |" in text and f"| Steps | {STEP:,} |" in text
    assert "| Strategy | mcmc |" in text and f"| Data | {scene} |" in text
    assert "| Training time | 1 min 00 s |" in text  # the last logged row: step 1200, 60 s
    links = re.findall(r"\]\(([^)]+)\)", text)
    images = [link for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)]
    assert len(images) == 2 and len(links) == 2 + 8
    for link in links:
        assert not Path(link).is_absolute() and (run / link).is_file(), link
    grid = Image.open(run / images[0])
    # 4 rows of render | GT (64x32) with 2-pixel gaps, enlarged 8x to reach 512 pixels wide.
    assert grid.size == (512, 8 * (4 * 32 + 3 * 2))
    plot = Image.open(run / images[1])
    assert plot.size == (1000, 360)
    with pytest.raises(OutputExistsError):
        write_report(run)


def test_evaluate_run_rejects_data_that_changed(tmp_path, scene):
    run, _ = make_run(tmp_path, scene)
    ckpt = load_checkpoint(run)
    ckpt["normalization"]["scale"] *= 1.01  # as if the cameras had been edited since fitting
    save_checkpoint(run, ckpt)
    with pytest.raises(ReconError, match="no longer matches"):
        evaluate_run(run)
    assert not (run / "eval.json").exists()
