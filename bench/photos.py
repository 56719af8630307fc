"""Benchmark: real photo folders end to end, as a user runs them (`recon process`, `recon fit`,
`recon eval`), with and without the options for real captures.

For each folder (default: the two real captures in ../shared/data/photos: ``lund``, a 29-photo
street sequence, and ``skull``, 66 photos around an object; the skull set is "Photogrammetry Test
Set: Skull - Cameramoves - Flash - No Background" by alansartlog, CC BY 4.0) it poses the photos
once with ``recon process``, then fits each variant for --steps steps at --downscale, keeping a
checkpoint at every step of --eval-at, and scores each of those with ``recon eval`` on the test
split (every 8th photo). One JSON line per (folder, variant, step): test PSNR / SSIM, "holes"
(the fraction of test pixels the model leaves less than half covered), "floaters" (of pixels
whose surface stands nearer than half the nearest SfM points of the view), the PSNR after per-image
colour matching for --appearance runs, primitives, and the training seconds up to that step;
then one line per (folder, variant) against ``base`` at the last step.

Variants (--variants): base (the fast preset: MCMC, 30k cap), far (+ --init.far-points 10000:
a far layer of points for the sky and distant background), appearance (+ --appearance:
a per-image affine colour correction), far+appearance, far+random (the far layer trained over a
random background colour per step, which leaves no gain in staying translucent), coverage
(+ --coverage-weight 1: every pixel of a photo asked to be covered), far+coverage, and
unbounded (what --preset unbounded adds to the fast preset: 3000 far points and the coverage
term).

    python bench/photos.py [--folders lund,skull] [--variants base,far] [--steps 7000]
                           [--eval-at 2000,7000] [--downscale 4] [--threads N] [--work DIR]

CPU cost: at --downscale 4 (250 px wide) a step of the fast preset takes about 0.1-0.3 s on one
core, so 7000 steps are 15-30 minutes per variant; run one benchmark at a time on an idle machine
for the seconds to mean anything.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PHOTOS = Path(os.environ.get("RECON_SHARED_DATA", REPO.parent / "shared" / "data")) / "photos"
FOLDERS = {"lund": PHOTOS / "opensfm_lund" / "images",
           "skull": PHOTOS / "skull_cameramoves_flash" / "images"}
VARIANTS = {"base": [], "far": ["--init.far-points", "10000"], "appearance": ["--appearance"],
            "far+appearance": ["--init.far-points", "10000", "--appearance"],
            "far+random": ["--init.far-points", "10000", "--data.background", "random"],
            "coverage": ["--coverage-weight", "1"],
            "far+coverage": ["--init.far-points", "10000", "--coverage-weight", "1"],
            "unbounded": ["--init.far-points", "3000", "--coverage-weight", "1"]}
RECON = [sys.executable, "-m", "recon.cli"]


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def recon(*args: str, log: Path) -> None:
    with open(log, "a") as out:
        done = subprocess.run([*RECON, *args], stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        sys.exit(f"recon {' '.join(args)} failed (exit {done.returncode}); see {log}")


def train_seconds(run: Path, step: int) -> float | None:
    """The run's training seconds at ``step`` (its metrics.jsonl)."""
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["step"] == step:
            return round(record["elapsed"], 1)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folders", default="lund,skull")
    parser.add_argument("--variants", default="base,unbounded,appearance")
    parser.add_argument("--steps", type=int, default=7000)
    parser.add_argument("--eval-at", default="2000,7000")
    parser.add_argument("--downscale", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None, help="OMP/torch threads per fit")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    eval_at = [int(s) for s in args.eval_at.split(",")]
    every = math.gcd(*eval_at)  # checkpoints land on every step of --eval-at
    if max(eval_at) > args.steps:
        sys.exit("--eval-at steps must be at most --steps")
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    work_root = args.work or Path(tempfile.mkdtemp(prefix="recon-bench-photos-"))
    for name in args.folders.split(","):
        work = work_root / name
        work.mkdir(parents=True, exist_ok=True)
        data, log = work / "data", work / "log.txt"
        if not (data / "transforms.json").is_file():
            recon("process", str(FOLDERS[name]), "--out", str(data), "--quiet", "--force", log=log)
        results = {}
        for variant in args.variants.split(","):
            run = work / variant
            recon("fit", str(data), "--out", str(run), "--preset", "fast",
                  "--steps", str(args.steps), "--data.downscale", str(args.downscale),
                  "--checkpoint-every", str(every), "--keep-checkpoints", "0", "--quiet",
                  "--force", *VARIANTS[variant], log=log)
            for step in eval_at:
                recon("eval", str(run), "--step", str(step), "--force", log=log)
                scored = json.loads((run / "eval.json").read_text())
                record = {"bench": "photos", "folder": name, "variant": variant, "step": step,
                          "psnr": round(scored["psnr"], 3), "ssim": round(scored["ssim"], 4),
                          "holes": round(scored.get("holes", 0.0), 5),
                          "floaters": round(scored.get("floaters", 0.0), 5),
                          "num_primitives": scored["num_primitives"],
                          "train_s": train_seconds(run, step), "downscale": args.downscale,
                          "test_images": len(scored["per_image"])}
                if "corrected_psnr" in scored:
                    record["corrected_psnr"] = round(scored["corrected_psnr"], 3)
                emit(record)
            results[variant] = record
        base = results.get("base")
        for variant, record in results.items():
            if base is not None and variant != "base":
                emit({"bench": "photos_versus_base", "folder": name, "variant": variant,
                      "step": record["step"],
                      "psnr_gain": round(record["psnr"] - base["psnr"], 3),
                      "ssim_gain": round(record["ssim"] - base["ssim"], 4),
                      "holes": record["holes"], "holes_base": base["holes"],
                      "floaters": record["floaters"], "floaters_base": base["floaters"]})


if __name__ == "__main__":
    main()
