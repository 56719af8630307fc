"""recon.run.load_run: a run reopened as it was trained (model, parameters, data at the fitted
resolution, settings), and runs written before models existed ("splats", "num_gaussians")."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from scipy.spatial.transform import Rotation

from recon.cameras import look_at
from recon.data.colmap import ColmapCamera, ColmapImage, ColmapModel, ColmapPoint3D, write_model
from recon.models.gaussians import GaussianModel
from recon.run import CONFIG_FILE, METRICS_FILE, load_run, primitive_count
from recon.strategies import MCMCStrategy
from recon.train import checkpoint as ckpt
from recon.train.config import DataOptions, FitConfig, InitOptions
from recon.train.trainer import Trainer, fit

# The trainer tests' tiny dataset and single-thread setting (test folders are not packages).
_spec = importlib.util.spec_from_file_location(
    "train_conftest", Path(__file__).resolve().parent / "train" / "conftest.py")
_train = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_train)
tiny_npz = _train.tiny_npz
one_thread = _train.one_thread


def tiny_config(data: Path, out: Path, **changes) -> FitConfig:
    """A seconds-long MCMC fit on random backgrounds (as tests/train/test_trainer.py's)."""
    base = FitConfig(
        data=data, out=out, steps=12, quiet=True, log_every=4, checkpoint_every=6,
        strategy="mcmc", mcmc=MCMCStrategy(cap_max=330, refine_start_iter=2, refine_every=4),
        init=InitOptions(num_random=300), sh_degree_interval=5, max_sh_degree=2,
        keep_checkpoints=0, data_options=DataOptions(background="random"))
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def fitted(tiny_npz, tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    return fit(tiny_config(tiny_npz, tmp_path_factory.mktemp("runs") / "run"))


def test_load_run_opens_the_checkpoint_as_trained(fitted, tiny_npz):
    run = load_run(fitted)
    saved = ckpt.load_checkpoint(fitted)
    assert run.step == 12 and run.sh_degree == 2 and run.run_dir == fitted
    assert isinstance(run.model, GaussianModel) and run.checkpoint["model"] == "gaussians"
    assert run.config.strategy == "mcmc" and run.config.steps == 12
    assert run.data_path == tiny_npz.resolve()
    assert run.background == "white"  # a run on random backgrounds is shown over white
    assert list(run.params) == list(saved["params"])
    for name, value in saved["params"].items():
        assert run.params[name].device.type == "cpu" and not run.params[name].requires_grad
        assert torch.equal(run.params[name], value), name
    assert run.count == len(saved["params"]["means"]) == 330
    assert all(torch.equal(v, run.params[k]) for k, v in run.params_on("cpu").items())
    # The model is the trainer's: same scene scale, so the same learning rates.
    trainer = Trainer.open(tiny_config(tiny_npz, fitted, resume=True))
    assert run.model.learning_rates(12) == trainer.model.learning_rates(12)
    assert run.model.render_options() == trainer.model.render_options()
    assert load_run(fitted, step=6).step == 6
    lines = [json.loads(x) for x in (fitted / METRICS_FILE).read_text().splitlines()]
    assert [primitive_count(r) for r in lines] == [r["num_primitives"] for r in lines]


# -- a run fitted with --data.downscale from a folder with images_N -----------------------

SIZE = (64, 48)


def colmap_scene(root: Path, n: int = 6) -> Path:
    """A COLMAP scene (PINHOLE cameras on a ring around 40 points) with full-size photos in
    images/ and half-size ones in images_2/."""
    rng = np.random.default_rng(0)
    xyz = rng.uniform(-0.5, 0.5, (40, 3))
    model = ColmapModel()
    (root / "images").mkdir(parents=True)
    (root / "images_2").mkdir()
    for i, a in enumerate(np.linspace(0, 2 * np.pi, n, endpoint=False)):
        w2c = look_at([3 * np.cos(a), 3 * np.sin(a), 1.0], [0, 0, 0])
        x, y, z, w = Rotation.from_matrix(w2c[:3, :3]).as_quat()
        model.cameras[i + 1] = ColmapCamera(i + 1, "PINHOLE", SIZE[0], SIZE[1],
                                            np.array([60.0, 60.0, 32.0, 24.0]))
        name = f"view_{i:02d}.png"
        model.images[i + 1] = ColmapImage(i + 1, np.array([w, x, y, z]), w2c[:3, 3], i + 1, name,
                                          np.zeros((0, 2)), np.zeros(0, dtype=np.int64))
        pixels = rng.integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / name)
        Image.fromarray(pixels[::2, ::2]).save(root / "images_2" / name)
    for j, p in enumerate(xyz):
        model.points[j] = ColmapPoint3D(j, p, rng.integers(0, 256, 3).astype(np.uint8), 0.5,
                                        np.zeros((0, 2), dtype=np.int64))
    write_model(model, root / "sparse" / "0", binary=True)
    return root


def test_a_run_fitted_on_images_n_reopens_at_that_resolution(tmp_path):
    """``--data.downscale 2`` reads images_2/ (the loader consumes the downscale); the
    run, its resumption and every tool that opens it must see those photos again, not images/."""
    scene = colmap_scene(tmp_path / "scene")
    config = FitConfig(data=scene, out=tmp_path / "run", steps=3, quiet=True, checkpoint_every=3,
                       data_options=DataOptions(downscale=2))
    trainer = Trainer.open(config)
    assert tuple(trainer.images.shape[-2:]) == (24, 32)
    trainer.train()

    run = load_run(tmp_path / "run")
    assert run.config.data_options.downscale == 2
    assert all((c.width, c.height) == (32, 24) for c in run.dataset.cameras)
    assert np.array_equal(run.dataset.image(0),
                          np.asarray(Image.open(scene / "images_2" / "view_00.png")))
    resumed = Trainer.open(dataclasses.replace(config, resume=True, steps=5))
    assert tuple(resumed.images.shape[-2:]) == (24, 32)
    assert torch.equal(resumed.images, trainer.images)


# -- runs written before models existed -----------------------------------------------------------

def test_a_run_written_before_models_still_opens(fitted, tmp_path):
    """Checkpoints that call the parameters "splats" (and name no model), and metrics.jsonl /
    eval.json lines with "num_gaussians", open, evaluate, report and export as Gaussians."""
    from recon.eval.evaluate import evaluate_run
    from recon.eval.report import write_report
    from recon.export import export_run
    from recon.models.splat_files import read_ply

    old = tmp_path / "old"
    shutil.copytree(fitted, old)
    for _, path in ckpt.list_checkpoints(old):
        state = torch.load(path, weights_only=False)
        state["splats"] = state.pop("params")
        del state["model"]
        del state["config"]["convexes"]  # settings that did not exist yet
        torch.save(state, path)
    config = yaml.safe_load((old / CONFIG_FILE).read_text())
    del config["convexes"]
    (old / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False))
    lines = [json.loads(x) for x in (old / METRICS_FILE).read_text().splitlines()]
    for line in lines:
        line["num_gaussians"] = line.pop("num_primitives")
    (old / METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert [primitive_count(r) for r in lines] == [r["num_gaussians"] for r in lines]

    run, new = load_run(old), load_run(fitted)
    assert isinstance(run.model, GaussianModel) and run.count == new.count == 330
    assert list(run.params) == list(new.params)
    assert all(torch.equal(run.params[k], new.params[k]) for k in new.params)
    assert load_run(old, step=6).step == 6

    result = evaluate_run(old)
    assert result["num_primitives"] == 330 and result["model"] == "gaussians"
    evaluation = json.loads((old / "eval.json").read_text())
    evaluation["num_gaussians"] = evaluation.pop("num_primitives")
    del evaluation["model"]
    (old / "eval.json").write_text(json.dumps(evaluation))
    report = write_report(old, force=True).read_text()
    assert "| Gaussians | 330 |" in report

    exported = read_ply(export_run(old, "ply"))
    assert exported["means"].shape == (330, 3)
