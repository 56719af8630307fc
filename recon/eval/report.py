"""``RUN/report.md``: a one-page summary of a fitted run.

A table of the numbers (steps, primitives, test PSNR/SSIM, training time), a grid of test renders
beside their ground truth, and the training loss and PSNR against the step. The images go to
``RUN/report/`` and are linked relatively, so the folder can be moved or zipped as a whole.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from recon.errors import OutputExistsError, ReconError

REPORT_FILE = "report.md"
REPORT_DIR = "report"
GRID_ROWS = 4
GRID_MIN_WIDTH = 512
"""Small renders are enlarged (nearest neighbour, integer factor) to at least this width, so
the pixels of a low-resolution run stay visible in the report."""


def write_report(run_dir: Path, force: bool = False) -> Path:
    """Write ``RUN/report.md`` (and its images) from ``eval.json`` and ``metrics.jsonl``.

    Evaluates the newest checkpoint first when the run has no ``eval.json`` yet. Refuses to
    replace an existing report unless ``force``.
    """
    from recon.eval.evaluate import EVAL_FILE, evaluate_run
    from recon.run import primitive_count

    run_dir = Path(run_dir)
    path = run_dir / REPORT_FILE
    if path.exists() and not force:
        raise OutputExistsError(f"{path} already exists. Pass --force to write it again.")
    evaluation = (json.loads((run_dir / EVAL_FILE).read_text()) if (run_dir / EVAL_FILE).is_file()
                  else evaluate_run(run_dir))
    metrics = read_metrics(run_dir)
    images = run_dir / REPORT_DIR
    images.mkdir(exist_ok=True)
    grid = render_grid(run_dir, evaluation, images / "renders.png")
    curves = plot_curves(metrics, evaluation, images / "training.png") if metrics else None

    config = _read_config(run_dir)
    rows = [(name, str(config[key])) for name, key in
            (("Data", "data"), ("Strategy", "strategy"), ("SH degree", "max_sh_degree"))
            if key in config]
    rows += [("Steps", f"{evaluation['step']:,}"),
            (str(config.get("model", "gaussians")).capitalize(),
             f"{primitive_count(evaluation):,}"),
            ("Test PSNR", f"{evaluation['psnr']:.2f} dB"),
            ("Test SSIM", f"{evaluation['ssim']:.4f}"),
            ("Test images", str(len(evaluation["per_image"])))]
    if "corrected_psnr" in evaluation:
        rows.insert(-2, ("Test PSNR, colour-matched", f"{evaluation['corrected_psnr']:.2f} dB"))
    if "masked_psnr" in evaluation:
        rows.insert(-2, ("Test PSNR, object only", f"{evaluation['masked_psnr']:.2f} dB"))
    for key, label in (("holes", "Holes (test pixels < ½ covered)"),
                       ("floaters", "Floaters (test pixels before the SfM points)")):
        if key in evaluation:
            rows.insert(-1, (label, f"{evaluation[key]:.2%}"))
    if metrics and "elapsed" in metrics[-1]:
        rows.append(("Training time", _duration(float(metrics[-1]["elapsed"]))))
    lines = [f"# recon report: {run_dir.resolve().name}", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    lines += ["", "## Test renders", "",
              f"Render (left) beside ground truth (right), {grid['shown']} of "
              f"{len(evaluation['per_image'])} test images.", "",
              f"![test renders]({grid['path'].relative_to(run_dir).as_posix()})", ""]
    if curves is not None:
        lines += ["## Training", "", f"![loss and PSNR]({curves.relative_to(run_dir).as_posix()})", ""]
    lines += ["## Per image", "", "| image | PSNR (dB) | SSIM |", "|---|---|---|"]
    lines += [f"| [{r['name']}]({r['render']}) | {r['psnr']:.2f} | {r['ssim']:.4f} |"
              for r in evaluation["per_image"]]
    path.write_text("\n".join(lines) + "\n")
    return path


def read_metrics(run_dir: Path) -> list[dict]:
    """The rows of ``RUN/metrics.jsonl`` (empty when the run logged none)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ReconError(f"Line {number} of {path} is not JSON ({exc}); the file is damaged. "
                             "Delete the line to write the report.") from exc
    return rows


def _read_config(run_dir: Path) -> dict:
    """The run's resolved ``config.yaml`` (empty when absent or unreadable: it only adds rows)."""
    import yaml

    path = Path(run_dir) / "config.yaml"
    try:
        config = yaml.safe_load(path.read_text()) if path.is_file() else {}
    except yaml.YAMLError:
        return {}
    return config if isinstance(config, dict) else {}


def render_grid(run_dir: Path, evaluation: dict, path: Path) -> dict:
    """Stack up to GRID_ROWS test renders (each render | ground truth), evenly spread over the
    test split, into one PNG; returns {"path", "shown"}."""
    from PIL import Image

    per_image = evaluation["per_image"]
    if not per_image:
        raise ReconError(f"{run_dir / 'eval.json'} lists no test images; evaluate the run again.")
    picks = np.unique(np.linspace(0, len(per_image) - 1, min(GRID_ROWS, len(per_image))).round())
    tiles = []
    for k in picks.astype(int):
        tile = Path(run_dir) / per_image[k]["render"]
        if not tile.is_file():
            raise ReconError(f"Test render {tile} is missing; run `recon eval {run_dir} --force`.")
        with Image.open(tile) as im:
            tiles.append(np.asarray(im.convert("RGB")))
    width = max(t.shape[1] for t in tiles)
    gap = np.full((2, width, 3), 255, np.uint8)
    padded = [np.pad(t, ((0, 0), (0, width - t.shape[1]), (0, 0)), constant_values=255) for t in tiles]
    stacked = np.concatenate([x for t in padded for x in (t, gap)][:-1], axis=0)
    factor = -(-GRID_MIN_WIDTH // width)
    stacked = stacked.repeat(factor, axis=0).repeat(factor, axis=1)
    Image.fromarray(stacked).save(path)
    return {"path": path, "shown": len(tiles)}


def plot_curves(metrics: list[dict], evaluation: dict, path: Path) -> Path:
    """Training loss (log scale) and training PSNR against the step, with the test PSNR."""
    # A bare Figure renders with the Agg canvas and leaves pyplot's global state alone.
    from matplotlib.figure import Figure

    steps = [m["step"] for m in metrics]
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax_loss, ax_psnr = fig.subplots(1, 2)
    ax_loss.plot(steps, [m.get("loss", np.nan) for m in metrics], color="tab:blue")
    ax_loss.set(xlabel="step", ylabel="loss", yscale="log", title="Training loss")
    ax_psnr.plot(steps, [m.get("psnr", np.nan) for m in metrics], color="tab:orange", label="train")
    ax_psnr.axhline(evaluation["psnr"], color="tab:green", linestyle="--",
                    label=f"test, step {evaluation['step']}: {evaluation['psnr']:.2f} dB")
    ax_psnr.set(xlabel="step", ylabel="PSNR (dB)", title="PSNR")
    ax_psnr.legend(loc="lower right")
    for ax in (ax_loss, ax_psnr):
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100)
    return path


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


__all__ = ["REPORT_FILE", "read_metrics", "write_report"]
