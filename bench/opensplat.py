"""Benchmark: recon against OpenSplat (pierotofy/OpenSplat, the C++/libtorch splatting trainer
with a CPU path) on nerf_synthetic_lego_200, equal steps, scored by one protocol.

    python bench/opensplat.py --opensplat PATH [--steps 300] [--points 20000] [--preset fast]
                              [--threads N] [--backend cpu] [--opensplat-args="..."]
                              [--keep DIR]

Without --opensplat it prints one ``skipped`` line and exits 0 (`make bench` runs every script).
The repository never downloads OpenSplat; build it from source (tested: v1.1.5, commit 15b7e80)
against the torch in recon's venv and Debian's OpenCV, CPU only:

    apt-get install -y libopencv-dev cmake            # run from the repository root:
    TORCH_CMAKE=$(.venv/bin/python -c "import torch; print(torch.utils.cmake_prefix_path)")
    git clone https://github.com/pierotofy/OpenSplat ../OpenSplat      # v1.1.5 = commit 15b7e80
    cmake -S ../OpenSplat -B ../OpenSplat/build -DCMAKE_BUILD_TYPE=Release -DGPU_RUNTIME=CPU \\
          -DCMAKE_PREFIX_PATH="$TORCH_CMAKE"
    cmake --build ../OpenSplat/build -j$(nproc)    # then: --opensplat ../OpenSplat/build/opensplat

(Its CMakeLists fetches nlohmann_json v3.11.3, nanoflann v1.5.5 and cxxopts v3.2.0 at configure
time; offline, clone those tags and pass -DFETCHCONTENT_SOURCE_DIR_{NLOHMANN_JSON,NANOFLANN,
CXXOPTS}=<dir> -DFETCHCONTENT_FULLY_DISCONNECTED=ON.)

Both trainers start from the same random points and fit the same 100 training views:

1. recon's Trainer is opened on lego_200 with the --preset settings (default: fast), --steps and
   ``--init.source random`` with --points points (uniform in the cube the cameras look at).
   Its initial means and colours, mapped back to the dataset's input frame, become OpenSplat's
   ``ply_file_path`` cloud (float32 xyz + uchar rgb: what OpenSplat's PLY reader takes).
2. The training split is written as a nerfstudio dataset (PINHOLE transforms.json with OpenGL
   camera->world poses, images composited over white as RGB PNGs, since OpenSplat reads 3
   channels and recon trains on white) and OpenSplat trains on it for --steps steps with
   ``--cpu --keep-crs --num-downscales 0`` plus --opensplat-args. --num-downscales 0 trains at full
   resolution from the first step as recon does (its default starts at 1/4 resolution and doubles
   every 3000 steps, so a short run would never see a full-size image); everything else is
   OpenSplat's default (SH band every 1000 steps, densification after 500, its fixed
   (0.613, 0.010, 0.398) background). --keep-crs writes the splats in the input frame (OpenSplat
   centres the cameras and scales them into [-1, 1] internally).
3. recon trains for --steps steps.
4. Both are rendered by recon's renderer (the trainer's, its options) on the 200 test views over
   white, clamped to [0, 1], and scored with recon.metrics' PSNR/SSIM: bench/fit.py's evaluate().
   OpenSplat's .ply is read with recon.models.splat_files.read_ply into recon's normalised frame
   and drawn with all its SH bands (bands not yet active in OpenSplat were never updated, so
   they are zero and drawing them changes nothing). Checked: with the fix below, OpenSplat's own
   --val-render image of a view and recon's render of its .ply agree to 8-bit rounding (mean
   |diff| 0.002 over its background), so the cameras and splats mean the same in both.

OpenSplat v1.1.5's CPU rasterizer (rasterizer/gsplat-cpu/gsplat_cpu.cpp, rasterize_forward_
tensor_cpu) sorts the Gaussians by ``camDepths.data_ptr()``, but camDepths is a strided view
(``pProj[..., 2]``), so the sort keys are other Gaussians' NDC x/y/z and its blending order is
scrambled in training. Scored here in true depth order, as every 3DGS viewer draws them. For a
binary without the bug, patch that line to read ``camDepths.contiguous()`` (kept alive in a local
tensor) and rebuild; the rows report the binary they ran.

Timing: recon's sec_per_step is its trainer's training time (no evaluation, no checkpoint) over
the steps. OpenSplat prints "Step N: loss" after every CPU step; its sec_per_step is the time
between the first and the last of those lines over (steps - 1), which leaves out its start-up
(loading torch and the images) and the final save; ``wall_s`` is the whole process. --threads N
sets torch's threads for recon and OMP_NUM_THREADS for OpenSplat (default: all cores for both).

Output: one JSON line per trainer
{"bench": "opensplat", "impl": "recon"|"opensplat", "steps", "train_s", "sec_per_step", "psnr",
"ssim", "num_primitives", ...} and a summary {"bench": "opensplat_ratio", "sec_per_step_ratio":
opensplat / recon, "psnr_diff": recon - opensplat}.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = (Path(os.environ.get("RECON_SHARED_DATA", REPO.parent / "shared" / "data"))
        / "nerf_synthetic_lego_200")
STEP_LINE = re.compile(r"^Step (\d+): ([-+0-9.eEnaif]+)")
BUILD_HINT = ("build OpenSplat from source against this venv's torch and Debian's libopencv-dev "
              "(cmake -DGPU_RUNTIME=CPU -DCMAKE_PREFIX_PATH=<torch.utils.cmake_prefix_path>; see "
              "this script's docstring) and pass --opensplat PATH/TO/opensplat")


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def evaluate(render_image, dataset, device) -> tuple[float, float]:
    """bench/fit.py's evaluate() (mean test PSNR and SSIM over white, renders clamped to
    [0, 1]): one scoring protocol for the fit benchmarks. Loaded by path, so importing this
    script leaves sys.path alone."""
    spec = importlib.util.spec_from_file_location("bench_fit", Path(__file__).with_name("fit.py"))
    fit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fit)
    return fit.evaluate(render_image, dataset, device)


# -- the nerfstudio dataset OpenSplat reads ----------------------------------------------------
def write_points_ply(path: Path, points: np.ndarray, colors: np.ndarray) -> None:
    """Points [N,3] and uint8 colours [N,3] as a binary .ply of float32 x y z and uchar red green
    blue: OpenSplat's reader takes the vertex coordinates as float32 whatever the header says."""
    from plyfile import PlyData, PlyElement

    rows = np.empty(len(points), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                        ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    for i, axis in enumerate("xyz"):
        rows[axis] = points[:, i]
    for i, channel in enumerate(("red", "green", "blue")):
        rows[channel] = colors[:, i]
    PlyData([PlyElement.describe(rows, "vertex")], text=False, byte_order="<").write(str(path))


def write_nerfstudio(out: Path, dataset, indices: list[int], points: np.ndarray,
                     colors: np.ndarray) -> Path:
    """Views ``indices`` of ``dataset`` (recon's normalised frame) as a nerfstudio dataset in the
    input frame: ``images/*.png`` composited over white, ``points3D.ply`` (``points`` [N,3] in
    the normalised frame, ``colors`` uint8 [N,3]) and transforms.json. Returns transforms.json."""
    from PIL import Image

    from recon.data.dataset import composite_background
    from recon.data.transforms import write_transforms

    to_input = dataset.normalization.inverse()
    (out / "images").mkdir(parents=True, exist_ok=True)
    names = []
    for i in indices:
        rgb = composite_background(dataset.image(i), "white")
        name = f"images/{Path(dataset.image_paths[i]).stem}.png"
        Image.fromarray(np.rint(rgb * 255.0).astype(np.uint8)).save(out / name)
        names.append(name)
    write_points_ply(out / "points3D.ply", to_input.apply(points), colors)
    path = out / "transforms.json"
    write_transforms(path, [dataset.cameras[i].transformed(to_input) for i in indices], names,
                     ply_file_path="points3D.ply")
    return path


# -- the two trainers ----------------------------------------------------------------------------
def recon_config(args, out: Path):
    """The preset's settings with this run's steps and random start (no mid-run checkpoints)."""
    from recon.train.config import PRESETS

    base = PRESETS[args.preset]
    init = dataclasses.replace(base.init, source="random", num_random=args.points)
    return dataclasses.replace(base, data=args.data, out=out, steps=args.steps, quiet=True,
                               force=True, checkpoint_every=10**9, log_every=50, init=init,
                               seed=args.seed, backend=args.backend)


def initial_cloud(trainer) -> tuple[np.ndarray, np.ndarray]:
    """The recon run's starting means [N,3] (normalised frame) and their uint8 colours."""
    from recon.render.sh import sh0_to_rgb

    means = trainer.params["means"].detach().cpu().double().numpy()
    rgb = sh0_to_rgb(trainer.params["sh0"].detach().cpu()[:, 0]).clamp(0.0, 1.0)
    return means, (rgb * 255.0).round().to(torch.uint8).numpy()


def run_opensplat(binary: Path, project: Path, out: Path, steps: int, threads: int | None,
                  extra: list[str]) -> dict:
    """Train OpenSplat on ``project``; the times of its per-step lines and of the process."""
    command = [str(binary), str(project), "-o", str(out / "splat.ply"), "-n", str(steps),
               "--cpu", "--keep-crs", "--num-downscales", "0", *extra]
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    log = out / "opensplat.log"
    (out / "splat.ply").unlink(missing_ok=True)  # a kept folder's last run
    stamps: dict[int, float] = {}
    loss = None
    start = time.perf_counter()
    with open(log, "w") as saved, subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            env=env) as proc:
        for line in proc.stdout:
            now = time.perf_counter()
            saved.write(line)
            match = STEP_LINE.match(line)
            if match:
                stamps[int(match.group(1))] = now
                loss = float(match.group(2))
    wall = time.perf_counter() - start
    if proc.returncode != 0 or not (out / "splat.ply").is_file():
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
        sys.exit(f"{' '.join(command)} failed (exit {proc.returncode}); log {log}:\n{tail}")
    first, last = min(stamps, default=None), max(stamps, default=None)
    if first is None or last == first:
        sys.exit(f"OpenSplat printed fewer than two 'Step N:' lines (is it a CPU run?); see {log}")
    per_step = (stamps[last] - stamps[first]) / (last - first)
    return {"ply": out / "splat.ply", "sec_per_step": per_step, "wall_s": wall,
            "startup_s": stamps[first] - start - per_step, "final_loss": loss,
            "command": command}


def opensplat_version(binary: Path) -> str:
    done = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
    return done.stdout.strip() or done.stderr.strip()


def render_ply(trainer, ply: Path):
    """``camera -> [3,H,W]`` drawing a 3DGS .ply with the trainer's renderer over white."""
    from recon.models.splat_files import read_ply
    from recon.render.sh import num_bases

    splats = {k: v.to(trainer.device) for k, v in
              read_ply(ply, trainer.dataset.normalization).items()}
    k = splats["shN"].shape[1] + 1
    degree = next(d for d in range(5) if num_bases(d) == k)
    colors = trainer.model.colors(splats, degree)
    background = torch.ones(3, device=trainer.device)
    return (lambda cam: trainer.draw(splats, cam, colors, degree, background, False).features,
            len(splats["means"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--opensplat", type=Path, default=None, help="the opensplat binary")
    ap.add_argument("--data", type=Path, default=DATA, help="a NeRF-synthetic scene folder")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--points", type=int, default=20_000, help="random initial points (both)")
    ap.add_argument("--preset", default="fast", help="recon.train.config.PRESETS entry")
    ap.add_argument("--seed", type=int, default=0, help="recon's seed (and so the points')")
    ap.add_argument("--threads", type=int, default=None, help="torch/OpenMP threads (both)")
    ap.add_argument("--backend", default="cpu",
                    help="recon fit --backend (default cpu: OpenSplat runs with --cpu)")
    ap.add_argument("--opensplat-args", default="",
                    help="extra OpenSplat options, given with '=': "
                         "--opensplat-args='--sh-degree-interval 200'")
    ap.add_argument("--keep", type=Path, default=None,
                    help="work folder to keep (the nerfstudio dataset, OpenSplat's .ply and log)")
    args = ap.parse_args()
    if args.opensplat is None:
        emit({"bench": "opensplat", "skipped": "no --opensplat binary given: " + BUILD_HINT})
        return
    if not os.access(args.opensplat, os.X_OK):
        sys.exit(f"{args.opensplat} is not an executable; {BUILD_HINT}")
    if not args.data.exists():
        sys.exit(f"{args.data} not found; set RECON_SHARED_DATA to the folder holding "
                 "nerf_synthetic_lego_200")
    if args.steps < 2:
        sys.exit("--steps must be at least 2 (OpenSplat's step time is measured between steps)")
    if args.threads:
        torch.set_num_threads(args.threads)

    from recon.train.trainer import Trainer

    with tempfile.TemporaryDirectory(prefix="recon-bench-opensplat-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        trainer = Trainer.open(recon_config(args, work / "recon"))
        points, colors = initial_cloud(trainer)
        project = work / "nerfstudio"
        write_nerfstudio(project, trainer.dataset, trainer.train_indices, points, colors)

        (work / "opensplat").mkdir(exist_ok=True)
        theirs = run_opensplat(args.opensplat, project, work / "opensplat", args.steps,
                               args.threads, args.opensplat_args.split())
        trainer.train(until=args.steps)

        background = torch.ones(3, device=trainer.device)
        colors_now = trainer.model.colors(trainer.params, trainer.sh_degree)
        p, s = evaluate(lambda cam: trainer.draw(trainer.params, cam, colors_now,
                                                 trainer.sh_degree, background, False).features,
                        trainer.dataset, trainer.device)
        ours = {"bench": "opensplat", "impl": "recon", "steps": trainer.step,
                "train_s": round(trainer.elapsed, 2),
                "sec_per_step": round(trainer.elapsed / trainer.step, 4),
                "psnr": round(p, 3), "ssim": round(s, 4), "num_primitives": trainer.count,
                "preset": args.preset, "strategy": trainer.config.strategy,
                "initial_points": len(points), "backend": args.backend,
                "threads": torch.get_num_threads()}
        draw, count = render_ply(trainer, theirs["ply"])
        p, s = evaluate(draw, trainer.dataset, trainer.device)
        other = {"bench": "opensplat", "impl": "opensplat", "steps": args.steps,
                 "train_s": round(theirs["sec_per_step"] * args.steps, 2),
                 "sec_per_step": round(theirs["sec_per_step"], 4),
                 "psnr": round(p, 3), "ssim": round(s, 4), "num_primitives": count,
                 "wall_s": round(theirs["wall_s"], 2), "startup_s": round(theirs["startup_s"], 2),
                 "final_loss": theirs["final_loss"], "initial_points": len(points),
                 "threads": args.threads or "default",
                 "version": opensplat_version(args.opensplat), "binary": str(args.opensplat),
                 "args": theirs["command"][4:]}
        emit(ours)
        emit(other)
        emit({"bench": "opensplat_ratio", "steps": args.steps,
              "sec_per_step_ratio": round(other["sec_per_step"] / ours["sec_per_step"], 3),
              "psnr_diff": round(ours["psnr"] - other["psnr"], 3),
              "ssim_diff": round(ours["ssim"] - other["ssim"], 4)})


if __name__ == "__main__":
    main()
