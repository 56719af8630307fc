"""Checkpoints: atomic writes, newest-first lookup, pruning, clear errors, RNG round trip."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from recon.train.checkpoint import (CheckpointError, checkpoint_path, latest_step,
                                    list_checkpoints, load_checkpoint, restore_rng_state,
                                    rng_state, save_checkpoint)


def test_save_load_latest_and_keep(tmp_path):
    for step in (5, 20, 10):
        save_checkpoint(tmp_path, {"step": step, "x": torch.full((3,), float(step))})
    assert [s for s, _ in list_checkpoints(tmp_path)] == [5, 10, 20]
    assert latest_step(tmp_path) == 20
    assert torch.equal(load_checkpoint(tmp_path)["x"], torch.full((3,), 20.0))
    assert load_checkpoint(tmp_path, step=10)["step"] == 10
    save_checkpoint(tmp_path, {"step": 30}, keep=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [20, 30]
    # No temporary files left behind.
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "step_000020.pt", "step_000030.pt"]


def test_failed_save_leaves_no_partial_file(tmp_path):
    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    save_checkpoint(tmp_path, {"step": 1})
    with pytest.raises(RuntimeError, match="boom"):
        save_checkpoint(tmp_path, {"step": 2, "bad": Unpicklable()})
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step_000001.pt"]


def test_errors_say_what_to_do(tmp_path):
    with pytest.raises(CheckpointError, match="recon fit DATA --out RUN"):
        load_checkpoint(tmp_path)
    save_checkpoint(tmp_path, {"step": 3})
    with pytest.raises(CheckpointError, match="available: 3"):
        load_checkpoint(tmp_path, step=4)
    checkpoint_path(tmp_path, 9).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="Delete it"):
        load_checkpoint(tmp_path)


def test_rng_round_trip():
    gen = torch.Generator().manual_seed(4)
    state = rng_state(gen)
    first = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(3, generator=gen))
    restore_rng_state(state, gen)
    second = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(3, generator=gen))
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert first[2] == second[2] and torch.equal(first[3], second[3])
