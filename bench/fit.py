"""Benchmark: `recon fit` on lego_100 (100 train / 6 test views, 100², white background).

For each model (--models: gaussians, convexes, triangles; ``model:strategy`` picks its strategy)
and strategy (--strategies: default, mcmc) it trains with the --preset settings (default: fast,
the CPU preset) for --steps steps and evaluates the test split every --eval-every steps
(evaluation is not counted in the training time), printing one JSON line per evaluation and a
summary line per run: final PSNR / SSIM / primitive count, training seconds, and the training
seconds (and step) at the first evaluation that reached --target dB. Each run of another model is
compared with the Gaussian run of its strategy (else the first Gaussian run) in a ``fit_models``
line (PSNR difference, training-time ratio). A triangle run is also exported as a welded mesh and
drawn by the plain mesh renderer (``fit_mesh``: its test PSNR beside the soft render's, faces,
components, open boundary edges); --opaque-finish F and --reg connectivity set those options.

    python bench/fit.py [--steps 3000] [--models gaussians:mcmc,convexes:default]
                        [--strategies default,mcmc] [--preset fast] [--threads N]
                        [--backend auto] [--reg none] [--opaque-finish F] [--profile]
                        [--reference]

--profile: per-stage time of a training step (data, render = project + SH + binning +
rasterize, loss, backward = rasterize/SH backward + autograd, optimizer, strategy), the time of
every native op, and the step's ratio to their sum (``step_over_native``), on copies of the run
when it first holds >= 20k and >= 50k Gaussians and at its last step (copies, so the timed run is
unaffected).

--reference: also train the CPU reference the targets come from: gsplat's pure-torch projection
and SH (``gsplat.cuda._torch_impl``), recon's binning, tile-padded torch compositing (the peer of
bench/rasterizer.py, autograd backward) and gsplat's own DefaultStrategy, from 20k random
Gaussians in [-1.5, 1.5]³ of the lego frame. About 8 minutes on 2 cores; opt-in.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RECON_SHARED_DATA", REPO.parent / "shared" / "data")) / "lego_100.npz"
PROFILE_AT = (20_000, 50_000)


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def evaluate(render_image, dataset, device) -> tuple[float, float]:
    """Mean test PSNR and SSIM of ``render_image(camera) -> [3, H, W]`` (clamped to [0, 1], as
    gsplat's evaluation) against the test images over white."""
    from recon.data.dataset import composite_background
    from recon.metrics import psnr, ssim

    preds, gts = [], []
    with torch.no_grad():
        for i in dataset.indices("test"):
            preds.append(render_image(dataset.cameras[i]).clamp(0.0, 1.0))
            gt = composite_background(dataset.image(i), "white")
            gts.append(torch.from_numpy(gt).permute(2, 0, 1).to(device))
    pred, gt = torch.stack(preds), torch.stack(gts)
    return float(psnr(pred, gt)), float(ssim(pred, gt))


def recon_config(args, model: str, strategy: str, out: Path):
    """The preset's settings with this run's steps, model and strategy (no checkpoints
    mid-run)."""
    from recon.train.config import PRESETS

    base = PRESETS[args.preset]
    init = dataclasses.replace(base.init, source=args.init_source)
    if args.num_random is not None:
        init = dataclasses.replace(init, num_random=args.num_random)
    triangles = dataclasses.replace(base.triangles, opaque_finish=args.opaque_finish)
    return dataclasses.replace(
        base, data=args.data, out=out, steps=args.steps, model=model, strategy=strategy,
        quiet=True, force=True, checkpoint_every=10**9, log_every=50, init=init,
        backend=args.backend, reg=args.reg, triangles=triangles)


def run_recon(args, model: str, strategy: str, workdir: Path) -> dict:
    from recon.train.trainer import Trainer

    trainer = Trainer.open(recon_config(args, model, strategy, workdir / f"{model}_{strategy}"))
    background = torch.ones(3, device=trainer.device)
    reached = None
    profiled: set[int] = set()
    while trainer.step < args.steps:
        trainer.train(until=trainer.step + args.eval_every)
        colors = trainer.model.colors(trainer.params, trainer.sh_degree)
        p, s = evaluate(lambda cam: trainer.draw(trainer.params, cam, colors, trainer.sh_degree,
                                                 background, False).features,
                        trainer.dataset, trainer.device)
        n = trainer.count
        emit({"bench": "fit", "impl": "recon", "backend": args.backend, "model": model,
              "strategy": strategy, "step": trainer.step, "train_s": round(trainer.elapsed, 2),
              "psnr": round(p, 3), "ssim": round(s, 4), "num_primitives": n})
        if reached is None and p >= args.target:
            reached = (trainer.step, trainer.elapsed)
        due = [c for c in PROFILE_AT if n >= c and c not in profiled]
        if args.profile and (due or trainer.step >= args.steps):
            profiled.update(due)
            emit(profile_copy(trainer, strategy, workdir))
    if model == "triangles":
        emit(soup_as_mesh(trainer, p))
    return {"bench": "fit_summary", "impl": "recon", "backend": args.backend, "model": model,
            "strategy": strategy, "steps": trainer.step, "train_s": round(trainer.elapsed, 2),
            "psnr": round(p, 3), "ssim": round(s, 4), "num_primitives": n, "target_db": args.target,
            "step_to_target": reached[0] if reached else None,
            "time_to_target_s": round(reached[1], 2) if reached else None,
            "threads": torch.get_num_threads()}


def soup_as_mesh(trainer, soft_psnr: float) -> dict:
    """The triangle soup exported as a mesh (welded as ``recon export`` does), drawn by the plain
    mesh renderer on the test views: its PSNR next to the soft render's, and its topology."""
    from recon.mesh.soup import topology
    from recon.models.triangles import soup_mesh
    from recon.render.mesh import render_mesh

    mesh = soup_mesh(trainer.params, trainer.model.options.weld)
    device = trainer.device
    vertices = torch.as_tensor(mesh.vertices, dtype=torch.float32, device=device)
    faces = torch.as_tensor(mesh.faces, dtype=torch.long, device=device)
    colours = torch.as_tensor(mesh.visual.vertex_colors[:, :3] / 255.0, dtype=torch.float32,
                              device=device)
    background = torch.ones(3, device=device)
    # A 0.01 px edge ramp: pixel-centre coverage, as a plain rasterizer (the default 1 px ramp,
    # there for silhouette gradients, widens every face by ~0.5 px: a lot for 2-5 px triangles).
    p, s = evaluate(lambda cam: render_mesh(vertices, faces, colours, cam, background,
                                            band=0.01, depth=False, normals=False).features,
                    trainer.dataset, device)
    return {"bench": "fit_mesh", "model": "triangles", "step": trainer.step,
            "mesh_psnr": round(p, 3), "mesh_ssim": round(s, 4), "soft_psnr": round(soft_psnr, 3),
            "psnr_drop": round(soft_psnr - p, 3), "reg": trainer.config.reg,
            "opaque_finish": trainer.model.options.opaque_finish, **topology(mesh)}


def profile_copy(trainer, strategy: str, workdir: Path, steps: int = 20) -> dict:
    """Per-stage milliseconds per step, measured on a resumed copy of ``trainer``'s run. The
    copy's steps draw from torch's global generator too (MCMC noise), so its state is put back:
    a profiled run stays the same as an unprofiled one."""
    from torch.profiler import ProfilerActivity, profile

    from recon.train.trainer import Trainer

    rng = torch.get_rng_state()
    trainer.save_checkpoint()
    copy_dir = workdir / f"profile-{strategy}"
    shutil.rmtree(copy_dir, ignore_errors=True)
    shutil.copytree(trainer.run_dir, copy_dir)
    copy = Trainer.open(dataclasses.replace(trainer.config, out=copy_dir, resume=True))
    copy.train_step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        copy.train_step()
    plain = (time.perf_counter() - start) / steps
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            copy.train_step()
    totals = {e.key: e for e in prof.key_averages()}

    def ms(key: str, self_time: bool = False) -> float:
        e = totals.get(key)
        if e is None:
            return 0.0
        return (e.self_cpu_time_total if self_time else e.cpu_time_total) / 1000.0 / steps

    stages = {k: ms(f"train.{k}") for k in
              ("data", "render", "loss", "backward", "optimizer", "strategy")}
    # Every native op (recon::*: projection, binning, rasterizer, SH, loss) by its own time.
    native = {key.removeprefix("recon::"): ms(key, True) for key in sorted(totals)
              if key.startswith("recon::")}
    native_total = sum(native.values())
    shutil.rmtree(copy_dir, ignore_errors=True)
    torch.set_rng_state(rng)
    return {"bench": "fit_profile", "strategy": strategy, "step": copy.step - 2 * steps - 1,
            "num_primitives": copy.count, "sh_degree": copy.sh_degree,
            "width": copy.cameras[0].width, "height": copy.cameras[0].height,
            "sec_per_step": round(plain, 4), "threads": torch.get_num_threads(),
            "stages_ms": {k: round(v, 2) for k, v in stages.items()},
            "native_ms": {k: round(v, 2) for k, v in native.items()},
            "native_total_ms": round(native_total, 2),
            "step_over_native": round(1000.0 * plain / native_total, 2) if native_total else None}


# -- the CPU reference (gsplat's torch functions + torch compositing + gsplat DefaultStrategy) --


def reference_renderer():
    """(splats, camera, colors, sh_degree, background) -> (image [3,H,W], gsplat info dict)."""
    from gsplat.cuda._torch_impl import _fully_fused_projection, _spherical_harmonics

    from recon.primitives.gaussians import covariances
    from recon.render.binning import bin_footprints

    sys.path.insert(0, str(Path(__file__).parent))
    from rasterizer import TILE, _peer_composite

    def draw(splats, camera, colors, sh_degree, background):
        means, scales = splats["means"], torch.exp(splats["scales"])
        viewmat = torch.tensor(camera.world_to_camera, dtype=torch.float32)[None]
        K = torch.tensor(camera.K, dtype=torch.float32)[None]
        W, H = camera.width, camera.height
        radii, means2d, depths, conics, _ = _fully_fused_projection(
            means, covariances(splats["quats"], scales), viewmat, K, W, H)
        dirs = means - torch.linalg.inv(viewmat)[0, :3, 3]
        rgb = (_spherical_harmonics(sh_degree, dirs, colors) + 0.5).clamp_min(0.0)
        r = radii.amax(-1)[0]
        m = means2d[0].detach()
        box = torch.stack([m[:, 0] - r, m[:, 1] - r, m[:, 0] + r, m[:, 1] + r], -1)
        box = torch.where((r > 0)[:, None], box, torch.zeros_like(box))
        box = torch.minimum(box.clamp_min(0), torch.tensor([W, H, W, H], dtype=box.dtype))
        bins = bin_footprints(box.floor().to(torch.int32)[None], depths, W, H, TILE)
        opac = torch.sigmoid(splats["opacities"])
        # Σ w c + (1 - Σ w) b = Σ w (c - b) + b: the background without an alpha pass.
        image = _peer_composite(means2d[0], conics[0], rgb - background, opac, bins, W, H)
        image = image + background
        info = {"means2d": means2d, "radii": radii, "width": W, "height": H, "n_cameras": 1,
                "gaussian_ids": None}
        return image.permute(2, 0, 1), info

    return draw


def run_reference(args, workdir: Path) -> dict:
    from gsplat.strategy import DefaultStrategy

    from recon.data import DataConfig, load_dataset
    from recon.data.dataset import composite_background
    from recon.models.base import create_optimizers, sh_coefficients
    from recon.models.gaussians import create_splats
    from recon.train.losses import photometric_loss
    from recon.schedules import active_sh_degree, exponential_decay

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    dataset = load_dataset(args.data, DataConfig(background="white"))
    norm = dataset.normalization
    count = args.num_random or 20_000
    pts = norm.apply((torch.rand(count, 3, generator=gen).numpy() * 3.0 - 1.5))
    splats = create_splats(pts, torch.rand(count, 3, generator=gen).numpy(),
                           max_sh_degree=3, init_scale=1.0, init_opacity=0.1, generator=gen)
    scene_scale = 1.1 * dataset.scene_radius()
    lr0 = 1.6e-4 * scene_scale
    optimizers = create_optimizers(splats, {"means": lr0, "quats": 1e-3, "scales": 5e-3,
                                            "opacities": 5e-2, "sh0": 2.5e-3,
                                            "shN": 2.5e-3 / 20})
    strategy = DefaultStrategy()
    state = strategy.initialize_state(scene_scale=scene_scale)
    train = dataset.indices("train")

    targets = [torch.from_numpy(composite_background(dataset.image(i), "white")).permute(2, 0, 1)
               for i in train]
    draw = reference_renderer()
    background = torch.ones(3)
    elapsed, reached, step = 0.0, None, 0

    while step < args.steps:
        chunk_end = min(step + args.eval_every, args.steps)
        start = time.perf_counter()
        while step < chunk_end:
            epoch, pos = divmod(step, len(train))
            index = int(torch.randperm(len(train), generator=torch.Generator().manual_seed(
                epoch))[pos])
            deg = active_sh_degree(step, 1000, 3)
            for g in optimizers["means"].param_groups:
                g["lr"] = exponential_decay(lr0, 0.01, step, args.steps)
            image, info = draw(splats, dataset.cameras[train[index]], sh_coefficients(splats),
                               deg, background)
            loss = photometric_loss(image, targets[index], 0.2)
            strategy.step_pre_backward(splats, optimizers, state, step, info)
            loss.backward()
            for opt in optimizers.values():
                opt.step()
                opt.zero_grad(set_to_none=True)
            strategy.step_post_backward(splats, optimizers, state, step, info, packed=False)
            step += 1
        elapsed += time.perf_counter() - start
        colors = sh_coefficients(splats)
        p, s = evaluate(lambda cam: draw(splats, cam, colors, active_sh_degree(step, 1000, 3),
                                         background)[0], dataset, background.device)
        emit({"bench": "fit", "impl": "reference", "strategy": "gsplat-default", "step": step,
              "train_s": round(elapsed, 2), "psnr": round(p, 3), "ssim": round(s, 4),
              "num_primitives": len(splats["means"])})
        if reached is None and p >= args.target:
            reached = (step, elapsed)
    return {"bench": "fit_summary", "impl": "reference", "strategy": "gsplat-default",
            "steps": step, "train_s": round(elapsed, 2), "psnr": round(p, 3), "ssim": round(s, 4),
            "num_primitives": len(splats["means"]), "target_db": args.target,
            "step_to_target": reached[0] if reached else None,
            "time_to_target_s": round(reached[1], 2) if reached else None,
            "threads": torch.get_num_threads()}


def runs(args) -> list[tuple[str, str]]:
    """(model, strategy) pairs of --models (``model`` or ``model:strategy``) × --strategies."""
    pairs = []
    for entry in filter(None, args.models.split(",")):
        model, _, strategy = entry.partition(":")
        strategies = [strategy] if strategy else list(filter(None, args.strategies.split(",")))
        pairs += [(model, s) for s in strategies]
    return pairs


def emit_model_comparison(summaries: list[dict]) -> None:
    """Every other model's run against the Gaussian run of its strategy (else the first
    Gaussian run), trained in the same benchmark."""
    recon = [s for s in summaries if s["impl"] == "recon"]
    gaussians = [s for s in recon if s["model"] == "gaussians"]
    for s in recon:
        same = [g for g in gaussians if g["strategy"] == s["strategy"]]
        base = (same or gaussians or [None])[0]
        if s["model"] == "gaussians" or base is None:
            continue
        emit({"bench": "fit_models", "model": s["model"], "versus": "gaussians",
              "strategy": s["strategy"], "strategy_gaussians": base["strategy"],
              "psnr": s["psnr"], "psnr_gaussians": base["psnr"],
              "psnr_difference": round(s["psnr"] - base["psnr"], 3),
              "train_s_ratio": round(s["train_s"] / base["train_s"], 2)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--strategies", default="default,mcmc")
    ap.add_argument("--models", default="gaussians", help="gaussians, convexes or both")
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--target", type=float, default=27.09,
                    help="test PSNR (dB) whose time to reach is reported")
    ap.add_argument("--preset", default="fast", help="recon.train.config.PRESETS entry")
    ap.add_argument("--num-random", type=int, default=None,
                    help="random initial Gaussians (default: the preset's; the reference: 20k)")
    ap.add_argument("--init-source", default="auto", choices=("auto", "sfm", "random"),
                    help="recon fit --init.source (auto: the dataset's points, else points "
                         "triangulated from its posed views, else random)")
    ap.add_argument("--threads", type=int, default=None, help="torch/OpenMP threads")
    ap.add_argument("--backend", default="auto", help="recon fit --backend (cpu on a GPU "
                    "machine times the CPU kernels)")
    ap.add_argument("--reg", default="none", help="recon fit --reg (e.g. connectivity)")
    ap.add_argument("--opaque-finish", type=float, default=0.0,
                    help="triangles: recon fit --triangles.opaque-finish")
    ap.add_argument("--profile", action="store_true", help="per-stage step times")
    ap.add_argument("--reference", action="store_true",
                    help="also train the gsplat-torch CPU reference (~8 min)")
    args = ap.parse_args()
    if not args.data.exists():
        sys.exit(f"{args.data} not found; set RECON_SHARED_DATA to the folder holding lego_100.npz")
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="recon-bench-fit-") as tmp:
        workdir = Path(tmp)
        summaries = [run_recon(args, m, s, workdir) for m, s in runs(args)]
        for summary in summaries:
            summary["preset"] = args.preset
        if args.reference:
            summaries.append(run_reference(args, workdir))
        for summary in summaries:
            emit(summary)
        emit_model_comparison(summaries)
        ref = next((s for s in summaries if s["impl"] == "reference"), None)
        if ref and ref["time_to_target_s"]:
            for s in summaries:
                if s["impl"] == "recon" and s["time_to_target_s"]:
                    emit({"bench": "fit_speedup", "strategy": s["strategy"],
                          "time_to_target_ratio": round(ref["time_to_target_s"]
                                                        / s["time_to_target_s"], 2)})


if __name__ == "__main__":
    main()
