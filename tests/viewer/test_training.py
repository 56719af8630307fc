"""The fit's viewer listener: pausing really stops steps; save and export work between steps."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
import torch

from recon.models.splat_files import read_ply
from recon.train.checkpoint import list_checkpoints
from recon.viewer.app import Viewer
from recon.viewer.training import TrainingPanel, attach_viewer


@pytest.fixture
def trainer(blobs_npz, tmp_path):
    from recon.train.config import PRESETS, InitOptions
    from recon.train.trainer import Trainer

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    config = dataclasses.replace(PRESETS["default"], data=blobs_npz, out=tmp_path / "run",
                                 steps=30, quiet=True, checkpoint_every=1000,
                                 init=InitOptions(num_random=500))
    yield Trainer.open(config)
    torch.set_num_threads(previous)


def _wait_for(condition, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def test_pause_blocks_steps_and_buttons_save_and_export(trainer):
    viewer, panel = attach_viewer(trainer, "127.0.0.1", 0)
    try:
        assert trainer.listeners == [panel]
        panel.toggle_pause()                      # what the Pause button calls
        assert panel.pause_button.label == "Resume"
        worker = threading.Thread(target=trainer.train)
        worker.start()
        _wait_for(lambda: trainer.step >= 1)
        time.sleep(0.5)                           # ~10 steps' worth of time
        assert trainer.step == 1 and worker.is_alive()

        panel.request("save")                     # the Save checkpoint button, while paused
        _wait_for(lambda: [s for s, _ in list_checkpoints(trainer.run_dir)] == [1])
        panel.request("export")                   # the Export model button
        _wait_for(lambda: panel.last_export is not None)
        exported = read_ply(panel.last_export)
        assert exported["means"].shape[0] == trainer.count
        time.sleep(0.2)
        assert trainer.step == 1                  # still paused after both actions

        panel.toggle_pause()                      # Resume
        assert panel.pause_button.label == "Pause"
        worker.join(timeout=60)
        assert not worker.is_alive() and trainer.step == 30
        assert "Step** 1 / 30" in panel.stats.content  # nobody connected: stats not refreshed
        panel.show_final(trainer)
        assert "Step** 30 / 30" in panel.stats.content
    finally:
        viewer.close()


def test_listener_with_nobody_connected_does_no_work(trainer, monkeypatch):
    viewer = Viewer.start("127.0.0.1", 0, quiet=True)
    try:
        panel = TrainingPanel(viewer, trainer)
        published = []
        monkeypatch.setattr(viewer, "set_view", published.append)
        trainer.listeners.append(panel)
        trainer.train(until=5)
        assert published == []  # no snapshots copied or rendered for nobody
        monkeypatch.setattr(Viewer, "num_clients", property(lambda self: 1))
        trainer.train(until=8)
        assert len(published) == 1  # one snapshot per SCENE_INTERVAL (2 s) for a browser
        assert published[0].count == trainer.count == trainer.params["means"].shape[0]
    finally:
        viewer.close()


def test_fit_with_viewer_from_the_command_line(blobs_npz, tmp_path, capsys):
    from recon.cli import main

    out = tmp_path / "run"
    main(["fit", str(blobs_npz), "--out", str(out), "--steps", "4", "--init.num-random", "300",
          "--viewer", "--viewer-port", "0", "--quiet"])
    printed = capsys.readouterr().out
    assert "viewer: http://127.0.0.1:" in printed  # the URL, on loopback
    assert f"Run written to {out}" in printed       # no terminal: it returns after the fit
    assert [s for s, _ in list_checkpoints(out)] == [4]


def test_ctrl_c_while_paused_saves_and_stops(trainer):
    import os
    import signal

    from recon.train.trainer import TrainingInterrupted

    viewer, panel = attach_viewer(trainer, "127.0.0.1", 0)
    try:
        panel.toggle_pause()
        # Ctrl-C once the first step has paused (training runs in this, the main thread).
        threading.Thread(target=lambda: (_wait_for(lambda: trainer.step >= 1), time.sleep(0.3),
                                         os.kill(os.getpid(), signal.SIGINT))).start()
        with pytest.raises(TrainingInterrupted, match="after step 1 of 30"):
            trainer.train()
        assert [s for s, _ in list_checkpoints(trainer.run_dir)] == [1]
        assert not panel.paused
    finally:
        viewer.close()
