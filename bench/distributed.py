"""Benchmark: data-parallel fitting on this machine (torch.distributed, gloo).

    python bench/distributed.py [--steps 300] [--rows 10000,100000,1000000]

1. Throughput: `recon fit nerf_synthetic_lego_200 --preset fast --batch-size 2` for --steps steps
   as one process with 2 threads, and as 2 rank processes with 1 thread each (the environment
   torchrun gives, gloo): training images per second from rank 0's training time
   (metrics.jsonl's ``elapsed``), and the test PSNR of each run (``recon eval``).
2. Communication: the all-reduce of a step's gradients between 2 gloo ranks on this machine for
   10k-1M Gaussians (59 floats each: SH degree 3), median of 10 after a warm-up, beside the
   size in MB.

Prints one JSON line per measurement. The machine has 2 cores, so both layouts use them all.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = (Path(os.environ.get("RECON_SHARED_DATA", REPO.parent / "shared" / "data"))
        / "nerf_synthetic_lego_200")
FLOATS_PER_GAUSSIAN = 3 + 4 + 3 + 1 + 3 + 45  # means, quats, scales, opacity, SH (degree 3)


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_env(rank: int, world: int, port: int, threads: int) -> dict:
    return dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS=str(threads))


def launch(command: list[str], world: int, threads: int) -> None:
    """Run ``command`` as ``world`` ranks (torchrun's environment), waiting for all."""
    port = free_port()
    procs = [subprocess.Popen(command, env=rank_env(r, world, port, threads),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in range(world)]
    for p in procs:
        output = p.communicate()[0]
        if p.returncode != 0:
            sys.exit(f"{' '.join(command)} failed:\n{output[-3000:]}")


def fit_throughput(args, work: Path) -> None:
    recon = [sys.executable, "-m", "recon.cli"]
    for layout, world, threads in (("1 process x 2 threads", 1, 2),
                                   ("2 processes x 1 thread", 2, 1)):
        run = work / f"run{world}"
        fit = [*recon, "fit", str(args.data), "--out", str(run), "--preset", "fast",
               "--strategy", "mcmc", "--steps", str(args.steps), "--batch-size", "2",
               "--checkpoint-every", str(10**9), "--log-every", "50", "--quiet", "--force"]
        if world > 1:
            fit.append("--distributed")
        launch(fit, world, threads)
        last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
        subprocess.run([*recon, "eval", str(run), "--force"], check=True, capture_output=True)
        scored = json.loads((run / "eval.json").read_text())
        emit({"bench": "distributed_fit", "layout": layout, "ranks": world, "threads": threads,
              "batch_size": 2, "steps": last["step"], "train_s": round(last["elapsed"], 2),
              "images_per_s": round(2 * last["step"] / last["elapsed"], 2),
              "psnr": round(scored["psnr"], 3), "num_primitives": last["num_primitives"]})


def allreduce_worker(rows: list[int], out: Path) -> None:
    """Rank body: time the gradient all-reduce for each row count (rank 0 writes the result)."""
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    results = []
    for n in rows:
        flat = torch.ones(n * FLOATS_PER_GAUSSIAN)
        for _ in range(2):
            dist.all_reduce(flat)
        times = []
        for _ in range(10):
            dist.barrier()
            start = time.perf_counter()
            dist.all_reduce(flat)
            times.append(time.perf_counter() - start)
        times.sort()
        results.append({"rows": n, "megabytes": round(flat.numel() * 4 / 1e6, 2),
                        "allreduce_ms": round(1000 * times[len(times) // 2], 3)})
    if dist.get_rank() == 0:
        out.write_text(json.dumps(results))
    dist.destroy_process_group()


def allreduce_cost(args, work: Path) -> None:
    out = work / "allreduce.json"
    launch([sys.executable, __file__, "--worker", str(out), "--rows", args.rows], 2, 1)
    for record in json.loads(out.read_text()):
        emit({"bench": "distributed_allreduce", "ranks": 2, "backend": "gloo", **record})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rows", default="10000,100000,1000000")
    ap.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        allreduce_worker([int(r) for r in args.rows.split(",")], args.worker)
        return
    if not args.data.exists():
        sys.exit(f"{args.data} not found; set RECON_SHARED_DATA to the folder holding it")
    with tempfile.TemporaryDirectory(prefix="recon-bench-distributed-") as tmp:
        fit_throughput(args, Path(tmp))
        allreduce_cost(args, Path(tmp))


if __name__ == "__main__":
    main()
