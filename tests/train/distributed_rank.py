"""One rank of the data-parallel tests (tests/train/test_distributed.py starts it as a process,
with torchrun's environment): fits the tiny dataset and saves its parameters per rank."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import torch

from recon.strategies import DefaultStrategy, MCMCStrategy
from recon.train import distributed
from recon.train.config import FitConfig, InitOptions, OptimOptions
from recon.train.trainer import Trainer, fit


def config(data: Path, out: Path, strategy: str, batch_size: int, steps: int,
           distributed: bool) -> FitConfig:
    """Steps of 2 images: MCMC relocates and grows at steps 10 and 20, or 3DGS densifies.

    The rotations stay fixed: the Gaussians start isotropic, so the exact gradient of their
    quaternions is zero and what is computed is rounding noise, which Adam (normalising by its
    own size) turns into ±lr steps that differ with the order of any float sum. Every other
    parameter's gradient is a real signal, and stays equal to rounding."""
    return FitConfig(
        data=data, out=out, steps=steps, quiet=True, log_every=5, checkpoint_every=10,
        keep_checkpoints=0, init=InitOptions(num_random=300), max_sh_degree=1,
        sh_degree_interval=10, strategy=strategy, optim=OptimOptions(quats_lr=0.0),
        batch_size=batch_size, distributed=distributed,
        mcmc=MCMCStrategy(cap_max=420, refine_start_iter=4, refine_every=10),
        default_strategy=DefaultStrategy(refine_start_iter=4, refine_every=10,
                                         grow_grad2d=0.00005))


def main() -> None:
    args = json.loads(sys.argv[1])
    torch.set_num_threads(1)
    cfg = config(Path(args["data"]), Path(args["out"]), args["strategy"], args["batch_size"],
                 args["steps"], args["distributed"])
    if args.get("model", "gaussians") != "gaussians":  # the conformance test's settings
        sys.path.insert(0, str(Path(__file__).parent))
        from test_model_conformance import model_config

        cfg = dataclasses.replace(
            model_config(args["model"], cfg.data, cfg.out), steps=cfg.steps,
            batch_size=cfg.batch_size, distributed=cfg.distributed)
    if args.get("resume"):
        cfg = dataclasses.replace(cfg, resume=True)
    if args.get("cli"):  # the command's path: fit() also leaves the process group
        fit(cfg)
        return
    trainer = Trainer.open(cfg)
    start = trainer.count
    trainer.train()
    rank = trainer.ranks.rank
    torch.save({"params": {k: p.detach() for k, p in trainer.params.items()},
                "start": start, "step": trainer.step},
               Path(args["save"]) / f"rank{rank}.pt")
    distributed.leave(finished=True)


if __name__ == "__main__":
    main()
