"""The fitting loop: it learns, resumes bit for bit, stops cleanly, refuses to overwrite, guards
against NaN, and handles photo folders and backends."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from recon.errors import OutputExistsError
from recon.strategies import MCMCStrategy
from recon.train import checkpoint as ckpt
from recon.train.backends import BackendError
from recon.train.config import FitConfig, InitOptions, from_dict
from recon.run import METRICS_FILE as METRICS
from recon.train.trainer import (NonFiniteError, Trainer, TrainingInterrupted, _is_photo_folder,
                                 fit)


def tiny_config(data: Path, out: Path, **changes) -> FitConfig:
    """Seconds-long runs that still exercise every random source: MCMC relocation, growth and
    noise from step 5 on, and a random background per step."""
    base = FitConfig(
        data=data, out=out, steps=30, quiet=True, log_every=5, checkpoint_every=10,
        strategy="mcmc", mcmc=MCMCStrategy(cap_max=420, refine_start_iter=4, refine_every=5),
        init=InitOptions(num_random=300), sh_degree_interval=10, max_sh_degree=2,
        keep_checkpoints=0)
    base = dataclasses.replace(base, data_options=dataclasses.replace(base.data_options,
                                                                      background="random"))
    return dataclasses.replace(base, **changes)


def full_state(trainer: Trainer) -> dict[str, torch.Tensor]:
    """Every tensor the next step depends on: parameters and Adam moments."""
    state = {f"param/{k}": p.detach().clone() for k, p in trainer.params.items()}
    for name, opt in trainer.optimizers.items():
        for key, value in opt.state[trainer.params[name]].items():
            state[f"adam/{name}/{key}"] = value.clone()
    return state


def test_fit_learns_and_writes_the_run(tiny_npz, tmp_path):
    run = fit(tiny_config(tiny_npz, tmp_path / "run", steps=60, checkpoint_every=25))
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(5, 61, 5))
    assert set(lines[0]) == {"step", "loss", "psnr", "num_primitives", "sec_per_step", "elapsed"}
    # The blobs are easy: 60 steps must lower the loss clearly (seen: ~0.26 -> ~0.10).
    assert lines[-1]["loss"] < 0.7 * lines[0]["loss"]
    # MCMC grows 5 % per refinement (steps 5, 10, ...) up to the cap.
    assert lines[-1]["num_primitives"] == 420
    assert lines[-1]["elapsed"] > lines[0]["elapsed"] > 0
    # Checkpoints every 25 steps and at the end.
    assert [s for s, _ in ckpt.list_checkpoints(run)] == [25, 50, 60]
    saved = from_dict(__import__("yaml").safe_load((run / "config.yaml").read_text()))
    assert saved.init.opacity == 0.5 and saved.init.scale == 0.1  # resolved for mcmc
    assert saved.data == tiny_npz.resolve()
    state = ckpt.load_checkpoint(run)
    assert state["step"] == 60 and state["sh_degree"] == 2 and state["model"] == "gaussians"
    assert len(state["params"]["means"]) == 420


def test_resume_is_bit_identical(tiny_npz, tmp_path):
    straight = Trainer.open(tiny_config(tiny_npz, tmp_path / "a"))
    straight.train()

    first = Trainer.open(tiny_config(tiny_npz, tmp_path / "b"))
    first.train(until=15)
    first.save_checkpoint()
    del first
    # Resume with a config that differs (as a bare `--resume` would): the saved one wins.
    resumed = Trainer.open(tiny_config(tiny_npz, tmp_path / "b", resume=True, steps=5, seed=9))
    assert resumed.step == 15 and resumed.config.steps == 30
    resumed.train()

    a, b = full_state(straight), full_state(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    steps = [json.loads(x)["step"] for x in (tmp_path / "b" / METRICS).read_text().splitlines()]
    assert steps == [5, 10, 15, 20, 25, 30]


def test_resume_from_a_checkpoint_written_before_models(tiny_npz, tmp_path):
    """A checkpoint whose payload names the parameters "splats" (and records no model) resumes
    as a Gaussian run, bit for bit like one that was never interrupted."""
    straight = Trainer.open(tiny_config(tiny_npz, tmp_path / "a"))
    straight.train()

    first = Trainer.open(tiny_config(tiny_npz, tmp_path / "b"))
    first.train(until=15)
    path = first.save_checkpoint()
    del first
    state = torch.load(path, weights_only=False)
    state["splats"] = state.pop("params")
    del state["model"]
    torch.save(state, path)
    resumed = Trainer.open(tiny_config(tiny_npz, tmp_path / "b", resume=True))
    assert resumed.step == 15 and resumed.model.name == "gaussians"
    resumed.train()

    a, b = full_state(straight), full_state(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_drops_log_lines_after_the_checkpoint(tiny_npz, tmp_path):
    trainer = Trainer.open(tiny_config(tiny_npz, tmp_path / "r", checkpoint_every=10))
    trainer.train(until=15)  # checkpoint at 10, log lines at 5, 10, 15 (a hard kill after 15)
    resumed = Trainer.open(tiny_config(tiny_npz, tmp_path / "r", resume=True))
    assert resumed.step == 10
    resumed.train(until=20)
    steps = [json.loads(x)["step"] for x in (tmp_path / "r" / METRICS).read_text().splitlines()]
    assert steps == [5, 10, 15, 20]


def test_refuses_to_overwrite_without_force(tiny_npz, tmp_path):
    fit(tiny_config(tiny_npz, tmp_path / "run", steps=2))
    with pytest.raises(OutputExistsError, match="--force"):
        Trainer.open(tiny_config(tiny_npz, tmp_path / "run", steps=2))
    fit(tiny_config(tiny_npz, tmp_path / "run", steps=3, force=True))
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "run")] == [3]


def test_nan_loss_stops_without_stepping_and_keeps_the_checkpoint(tiny_npz, tmp_path):
    trainer = Trainer.open(tiny_config(tiny_npz, tmp_path / "run"))
    trainer.train(until=10)
    good = ckpt.checkpoint_path(tmp_path / "run", 10)
    good_bytes = good.read_bytes()
    with torch.no_grad():
        trainer.params["sh0"][:] = float("nan")  # every pixel's colour becomes NaN
    before = full_state(trainer)
    with pytest.raises(NonFiniteError,
                       match=r"Step 11: the loss is nan.*step_000010\.pt.*--resume"):
        trainer.train()
    after = full_state(trainer)
    for key in before:  # nothing stepped: parameters and moments untouched
        assert torch.equal(before[key], after[key]) or key.endswith("sh0"), key
    assert trainer.step == 10
    assert good.read_bytes() == good_bytes
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "run")] == [10]


def test_nan_gradient_is_caught(tiny_npz, tmp_path):
    trainer = Trainer.open(tiny_config(tiny_npz, tmp_path / "run"))
    trainer.train(until=2)
    with torch.no_grad():
        trainer.params["means"][:] = float("nan")  # culled, so the loss stays finite
    with pytest.raises(NonFiniteError, match=r"Step 3: (the loss|the gradient)"):
        trainer.train()


def test_non_finite_parameters_are_never_checkpointed(tiny_npz, tmp_path):
    trainer = Trainer.open(tiny_config(tiny_npz, tmp_path / "run"))
    with torch.no_grad():
        trainer.params["shN"][0, 0, 0] = float("inf")  # unused at SH degree 0
    with pytest.raises(NonFiniteError, match="shN"):
        trainer.save_checkpoint()
    assert ckpt.list_checkpoints(tmp_path / "run") == []


def test_sigterm_saves_and_stops(tiny_npz, tmp_path, monkeypatch):
    trainer = Trainer.open(tiny_config(tiny_npz, tmp_path / "run", checkpoint_every=100))
    original = trainer.train_step

    def step_then_signal():
        out = original()
        if trainer.step == 7:
            signal.raise_signal(signal.SIGTERM)
        return out

    monkeypatch.setattr(trainer, "train_step", step_then_signal)
    with pytest.raises(TrainingInterrupted, match="SIGTERM after step 7 of 30.*--resume"):
        trainer.train()
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "run")] == [7]
    # The handler is gone again: SIGTERM's default disposition is back.
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


@pytest.mark.slow
def test_sigterm_from_outside(tiny_npz, tmp_path):
    """A real signal to a real `fit` process: it exits with the message and a checkpoint."""
    out = tmp_path / "run"
    code = ("import sys; from pathlib import Path; sys.path.insert(0, 'tests/train');"
            "from test_trainer import tiny_config; from recon.train.trainer import fit;"
            f"fit(tiny_config(Path({str(tiny_npz)!r}), Path({str(out)!r}), steps=100000,"
            "checkpoint_every=100000, log_every=1))")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).parents[2],
                            stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    import time

    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists()
                                          and metrics.read_text().count("\n") >= 3):
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert "TrainingInterrupted" in err and "stopped by SIGTERM" in err
    (step, _), = ckpt.list_checkpoints(out)
    assert step >= 3


def test_gsplat_backend_needs_cuda(tiny_npz, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(BackendError, match="needs a CUDA GPU"):
        Trainer.open(tiny_config(tiny_npz, tmp_path / "run", backend="gsplat"))
    assert not (tmp_path / "run").exists()


@pytest.mark.gpu
def test_gsplat_backend_learns(tiny_npz, tmp_path):
    run = fit(tiny_config(tiny_npz, tmp_path / "run", backend="gsplat", steps=60))
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["loss"] < 0.7 * lines[0]["loss"]
    assert ckpt.load_checkpoint(run)["params"]["means"].shape == (420, 3)


def test_default_strategy_runs_with_fixed_background(tiny_npz, tmp_path):
    cfg = tiny_config(tiny_npz, tmp_path / "run", strategy="default", steps=20)
    cfg = dataclasses.replace(cfg, data_options=dataclasses.replace(cfg.data_options,
                                                                    background="black"),
                              default_strategy=dataclasses.replace(
                                  cfg.default_strategy, refine_start_iter=5, refine_every=5,
                                  grow_grad2d=1e-6))
    trainer = Trainer.open(cfg)
    trainer.train()
    # With a tiny threshold every seen Gaussian grows at steps 10, 15 (> start 5): more of them.
    assert len(trainer.params["means"]) > 300
    target = trainer._target(0, trainer.fixed_background)
    rgba = trainer.images[0].float() / 255
    assert torch.allclose(target, rgba[:3] * rgba[3:])  # composited on black


def test_photo_folder_runs_sfm_once(tiny_npz, tmp_path, monkeypatch):
    """A plain image folder is posed into RUN/sfm (SfM itself is stubbed: it has its own tests),
    and resuming reuses it."""
    import numpy as np
    from PIL import Image

    import recon.data.sfm as sfm

    photos = tmp_path / "photos"
    photos.mkdir()
    for i, img in enumerate(np.load(tiny_npz)["images_rgba"]):
        Image.fromarray(img).save(photos / f"{i:02d}.png")
    assert _is_photo_folder(photos)
    calls = []

    def fake_process(images, out, cfg=None, *, force=False, quiet=False):
        calls.append(Path(images))
        out.mkdir(parents=True)
        target = out / "posed.npz"
        target.write_bytes(tiny_npz.read_bytes())
        return target

    monkeypatch.setattr(sfm, "process_images", fake_process)
    run = tmp_path / "run"
    Trainer.open(tiny_config(photos, run, steps=4, checkpoint_every=2,
                             keep_checkpoints=1)).train(until=2)
    assert calls == [photos]
    state = ckpt.load_checkpoint(run)
    assert Path(state["data_path"]) == (run / "sfm" / "posed.npz").resolve()

    fit(tiny_config(photos, run, resume=True))
    assert [s for s, _ in ckpt.list_checkpoints(run)] == [4]  # keep_checkpoints=1
    assert calls == [photos]  # not run again


def test_not_a_dataset_nor_photos(tmp_path):
    (tmp_path / "empty").mkdir()
    from recon.errors import DatasetError

    with pytest.raises(DatasetError, match="recon process"):
        Trainer.open(FitConfig(data=tmp_path / "empty", out=tmp_path / "run", quiet=True))
    assert not (tmp_path / "run").exists()
