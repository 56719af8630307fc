"""Watching a fit: live statistics, pause/resume, save and export buttons (`recon fit --viewer`).

:class:`TrainingPanel` is a trainer listener (``Trainer.listeners``): the trainer calls it in the
training thread after every step. That is where it is safe to touch the run, so the buttons only
set flags and the listener carries them out: it saves a checkpoint or exports between two steps,
and it pauses training by blocking until Resume is pressed. It never holds a lock the browser
side needs, and with nobody connected a step costs it one clock read and a few comparisons: the
statistics and splats are sent only to a connected browser, at most ``STATS_INTERVAL`` /
``SCENE_INTERVAL`` seconds apart (``bench/viewer.py`` measures the overhead).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

from recon.viewer.app import Viewer
from recon.viewer.server import wait_for_interrupt
from recon.viewer.views import SplatView

STATS_INTERVAL = 0.5
"""Seconds between updates of the statistics panel."""
SCENE_INTERVAL = 2.0
"""Seconds between new splat snapshots for connected browsers (a snapshot copies the splats and
re-renders every client's view; more often would take time from training)."""


class TrainingPanel:
    """The GUI of a running fit, and the listener that serves it."""

    def __init__(self, viewer: Viewer, trainer) -> None:
        self.viewer = viewer
        self.paused = False
        self.last_export: Path | None = None
        self._resume = threading.Event()
        self._actions: list[str] = []
        self._actions_lock = threading.Lock()
        self._last_stats = self._last_scene = -float("inf")
        self._record: dict | None = None
        gui = viewer.server.gui
        with gui.add_folder("Training", order=-1):
            self.stats = gui.add_markdown(_stats_markdown(trainer, None))
            self.pause_button = gui.add_button("Pause")
            self.save_button = gui.add_button("Save checkpoint")
            self.export_button = gui.add_button("Export model")
            self.status = gui.add_markdown("")
        self.pause_button.on_click(lambda _: self.toggle_pause())
        self.save_button.on_click(lambda _: self.request("save"))
        self.export_button.on_click(lambda _: self.request("export"))
        # A run on random backgrounds is shown over white, as `recon eval` scores it.
        black = trainer.config.data_options.background == "black"
        self.background = (0.0,) * 3 if black else (1.0,) * 3

    # -- called from the GUI threads ------------------------------------------------------------

    def toggle_pause(self) -> None:
        if self.paused:
            self.resume()
        else:
            self._resume.clear()
            self.paused = True
            self.pause_button.label = "Resume"

    def resume(self) -> None:
        self.paused = False
        self._resume.set()
        self.pause_button.label = "Pause"

    def request(self, action: str) -> None:
        """Queue "save" or "export" for the training thread (done between two steps)."""
        with self._actions_lock:
            self._actions.append(action)
        self._resume.set()  # a paused fit wakes up to do it, then pauses again

    # -- called by the trainer after each step --------------------------------------------------

    def __call__(self, trainer, record: dict | None) -> None:
        if record is not None:
            self._record = record
        self._run_actions(trainer)
        if self.viewer.num_clients:
            self._update_browsers(trainer)
        if self.paused:
            self.status.content = f"Paused after step {trainer.step}."
            self._update_browsers(trainer, force=True)
            with _ResumeOnStop(self):
                while self.paused:
                    self._resume.wait(timeout=0.5)
                    self._resume.clear()
                    self._run_actions(trainer)
            self.status.content = ""

    def show_final(self, trainer) -> None:
        """After the last step: the final splats and statistics (the last periodic update may
        be up to ``SCENE_INTERVAL`` old)."""
        self._update_browsers(trainer, force=True)
        self.status.content = f"Finished at step {trainer.step}."

    def _update_browsers(self, trainer, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_stats >= STATS_INTERVAL:
            self._last_stats = now
            self.stats.content = _stats_markdown(trainer, self._record)
        if force or now - self._last_scene >= SCENE_INTERVAL:
            self._last_scene = now
            self.viewer.set_view(snapshot(trainer, self.background))

    def _run_actions(self, trainer) -> None:
        with self._actions_lock:
            actions, self._actions = self._actions, []
        for action in actions:
            if action == "save":
                path = trainer.save_checkpoint()
                self.status.content = f"Saved checkpoint `{path}`."
            elif action == "export":
                from recon.export import export_run

                trainer.save_checkpoint()
                self.last_export = export_run(trainer.run_dir, format="ply", force=True)
                self.status.content = f"Exported `{self.last_export}`."


class _ResumeOnStop:
    """While a fit is paused, Ctrl-C or SIGTERM also resume it: the trainer's own handler only
    sets a flag that it checks after the listeners return, and it then saves a checkpoint and
    stops. (Signal handlers exist only in the main thread; elsewhere this does nothing.)"""

    def __init__(self, panel: TrainingPanel) -> None:
        self._panel = panel
        self._previous: dict = {}

    def __enter__(self) -> _ResumeOnStop:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        previous = self._previous.get(signum)
        if callable(previous):
            previous(signum, frame)
        self._panel.resume()

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def snapshot(trainer, background: tuple[float, float, float]) -> SplatView:
    """A copy of the trainer's model as it is now (the optimiser changes it in place)."""
    config = trainer.config
    params = {k: v.detach().clone() for k, v in trainer.params.items()}
    return SplatView(trainer.model, params, trainer.sh_degree, background=background,
                     backend="auto" if config.backend == "gsplat" else config.backend)


def _stats_markdown(trainer, record: dict | None) -> str:
    lines = [f"**Step** {trainer.step} / {trainer.config.steps}",
             f"**{trainer.model.noun.capitalize()}** {trainer.count:,}",
             f"**Time** {trainer.elapsed:.1f} s"]
    if record is not None:
        lines[1:1] = [f"**Loss** {record['loss']:.4f}", f"**PSNR** {record['psnr']:.2f} dB"]
    return "  \n".join(lines)


def attach_viewer(trainer, host: str, port: int) -> tuple[Viewer, TrainingPanel]:
    """Start a viewer for ``trainer``'s run and register its listener."""
    viewer = Viewer.start(host, port, paths_dir=trainer.run_dir / "camera_paths")
    dataset = trainer.dataset
    viewer.show_cameras(trainer.cameras, lambda i: dataset.image(trainer.train_indices[i]))
    panel = TrainingPanel(viewer, trainer)
    viewer.set_view(snapshot(trainer, panel.background))
    trainer.listeners.append(panel)
    return viewer, panel


def fit_with_viewer(config) -> Path:
    """`recon fit --viewer`: fit while serving the viewer; afterwards keep serving it until
    Ctrl-C when run from a terminal (so the result can be looked at), else stop."""
    from recon.train.trainer import Trainer

    trainer = Trainer.open(config)
    viewer, panel = attach_viewer(trainer, config.viewer_host, config.viewer_port)
    try:
        trainer.train()
        panel.show_final(trainer)
        if sys.stdin is not None and sys.stdin.isatty():
            print(f"Training finished; the viewer stays at {viewer.url}. Ctrl-C to quit.",
                  flush=True)
            wait_for_interrupt()
    finally:
        viewer.close()
    return trainer.run_dir


__all__ = ["SCENE_INTERVAL", "STATS_INTERVAL", "TrainingPanel", "attach_viewer",
           "fit_with_viewer", "snapshot"]
