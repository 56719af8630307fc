"""Checkpoints of a fitting run: ``RUN/checkpoints/step_{step:06d}.pt``.

A checkpoint is ``torch.save`` of a plain dict (see :func:`save_checkpoint`). Writes are atomic
(a temporary file in the same folder, then ``os.replace``), so an interrupted save never leaves a
truncated checkpoint that ``--resume`` would pick up.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import numpy as np
import torch

from recon.errors import ReconError

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step_(\d+)\.pt$")


class CheckpointError(ReconError):
    """A run directory without a usable checkpoint."""


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:06d}.pt"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint of the run, oldest first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def latest_step(run_dir: Path) -> int | None:
    found = list_checkpoints(run_dir)
    return found[-1][0] if found else None


def save_checkpoint(run_dir: Path, payload: dict, keep: int = 0) -> Path:
    """Write ``payload`` (with an int ``"step"``) atomically; then delete all but the newest
    ``keep`` checkpoints (0 keeps every one).

    The payload holds: step, splats {name: tensor}, optimizers {name: state_dict},
    strategy_state, sh_degree (active), max_sh_degree, rng (see :func:`rng_state`), config
    (resolved FitConfig as plain data), normalization (Similarity.to_dict()), data_path,
    data_config, elapsed (training seconds so far), regularizer (the --reg regularizer's state).
    """
    path = checkpoint_path(run_dir, int(payload["step"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if keep > 0:
        for _, old in list_checkpoints(run_dir)[:-keep]:
            old.unlink(missing_ok=True)
    return path


def load_checkpoint(run_dir: Path, step: int | None = None,
                    map_location: str | torch.device = "cpu") -> dict:
    """The checkpoint of ``step`` (the newest when None) of the run in ``run_dir``."""
    run_dir = Path(run_dir)
    found = dict(list_checkpoints(run_dir))
    if not found:
        raise CheckpointError(f"No checkpoint in {run_dir / CHECKPOINT_DIR}. Is {run_dir} a "
                              "recon fit run directory? Fit first with `recon fit DATA --out RUN`.")
    if step is None:
        step = max(found)
    if step not in found:
        raise CheckpointError(f"No checkpoint of step {step} in {run_dir / CHECKPOINT_DIR}; "
                              f"available: {', '.join(map(str, sorted(found)))}.")
    try:
        return torch.load(found[step], map_location=map_location, weights_only=False)
    except Exception as exc:  # a corrupt file: say which and what to do
        raise CheckpointError(f"Cannot read checkpoint {found[step]}: {exc}. Delete it to resume "
                              "from an older one.") from exc


def rng_state(generator: torch.Generator | None = None) -> dict:
    """Every random state a training step draws from: torch (CPU and CUDA), numpy, Python, and
    the trainer's own generator."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def restore_rng_state(state: dict, generator: torch.Generator | None = None) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])


__all__ = ["CHECKPOINT_DIR", "CheckpointError", "checkpoint_path", "latest_step",
           "list_checkpoints", "load_checkpoint", "restore_rng_state", "rng_state",
           "save_checkpoint"]
