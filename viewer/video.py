"""`recon render RUN --path orbit|train|FILE.json --out video.mp4`: a fly-through video of a run.

Every frame is rendered by recon from the run's checkpoint (view-dependent colour, the run's
background) along a camera path (:mod:`recon.viewer.paths`), written as an H.264 mp4 through
imageio-ffmpeg (an ffmpeg binary ships inside that wheel) and as numbered PNGs in
``<video stem>_frames/`` beside the video, for editing or for another encoder.
"""

from __future__ import annotations

from pathlib import Path

from recon.errors import OutputExistsError, ReconError


def render_camera_path(run_dir: Path, path: str | Path, out: Path, *, mode: str = "rgb",
                       fps: float | None = None, seconds: float | None = None,
                       width: int | None = None, height: int | None = None,
                       step: int | None = None, backend: str = "auto",
                       force: bool = False, quiet: bool = True) -> dict:
    """Render ``path`` ("orbit", "train" or a camera path JSON) of the run in ``run_dir``.

    Size defaults to the training images' size; odd sizes are rounded up to even ones (H.264's
    4:2:0 chroma needs them). Returns {"video", "frames_dir", "num_frames", "width", "height",
    "fps"}.
    """
    import dataclasses

    import imageio.v2 as imageio
    import torch

    from recon.run import load_run
    from recon.train.backends import training_device
    from recon.viewer.paths import CameraPath, orbit_path, training_path
    from recon.viewer.views import RENDER_MODES, SplatView

    if mode not in RENDER_MODES:
        raise ReconError(f"Unknown --mode {mode!r}; choose one of {', '.join(RENDER_MODES)}.")
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise ReconError(f"--out {out} must end in .mp4 (the PNG frames go beside it).")
    frames_dir = out.parent / f"{out.stem}_frames"
    for existing in (out, frames_dir):
        if existing.exists() and not force:
            raise OutputExistsError(f"{existing} already exists. Pass --force to replace it, "
                                    "or choose another --out.")
    run = load_run(run_dir, step)
    dataset = run.dataset
    train_cameras = [dataset.cameras[i] for i in dataset.indices("train")] or dataset.cameras
    if str(path) == "orbit":
        camera_path = orbit_path(train_cameras)
    elif str(path) == "train":
        camera_path = training_path(train_cameras)
    else:
        camera_path = CameraPath.load(Path(path))
    camera_path = dataclasses.replace(  # checks the new timing
        camera_path, fps=camera_path.fps if fps is None else fps,
        seconds=camera_path.seconds if seconds is None else seconds)
    w = _even(width if width is not None else train_cameras[0].width)
    h = _even(height if height is not None else train_cameras[0].height)

    device = training_device(backend)
    background = (1.0,) * 3 if run.background == "white" else (0.0,) * 3
    view = SplatView(run.model, run.params_on(device), run.sh_degree, background=background,
                     backend=backend)
    poses = camera_path.frames()
    if frames_dir.exists():
        for old in frames_dir.glob("frame_*.png"):
            old.unlink()
    frames_dir.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), _Progress(quiet, len(poses)) as progress, \
            imageio.get_writer(out, fps=camera_path.fps, codec="libx264", quality=8,
                               macro_block_size=2, ffmpeg_log_level="error") as writer:
        for i, pose in enumerate(poses):
            frame = view.render(pose.to_camera(w, h), mode)
            writer.append_data(frame)
            imageio.imwrite(frames_dir / f"frame_{i:05d}.png", frame)
            progress.advance()
    return {"video": out, "frames_dir": frames_dir, "num_frames": len(poses), "width": w,
            "height": h, "fps": camera_path.fps}


def _even(n: int) -> int:
    if n < 2:
        raise ReconError(f"Video size must be at least 2 pixels, got {n}.")
    return int(n + (n % 2))


class _Progress:
    """A rich progress bar over the frames (nothing when quiet)."""

    def __init__(self, quiet: bool, total: int) -> None:
        self._bar = None
        if not quiet:
            from rich.progress import Progress

            self._bar = Progress(transient=True)
            self._task = self._bar.add_task("render", total=total)

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()


__all__ = ["render_camera_path"]
