"""Data-parallel fitting on ``torch.distributed`` (``torchrun``: gloo on CPUs, NCCL on GPUs).

Every rank holds the whole model and renders its share of each step's batch (--batch-size B over
N ranks: B/N images each). The ranks stay identical without ever broadcasting parameters:

* gradients are averaged over the ranks (one all-reduce of all of them, flattened), so each
  Adam step sees the mean over the B images, as one process with --batch-size B would;
* the per-primitive statistics strategies read from a render (screen-space gradients, radii,
  largest blending weights) are gathered from every rank into one B-camera result before the
  strategy sees it, so densification and relocation decide on the same numbers everywhere;
* every random draw comes from generators seeded alike on every rank and consumed alike;
* only rank 0 writes (config, metrics, checkpoints); a stop request (Ctrl-C, SIGTERM) on any
  rank is all-reduced after every step, so all ranks stop after the same step.

A rank that dies makes the others' next collective fail (at once when its connections close, at
the latest after ``RECON_DIST_TIMEOUT`` seconds, default 300), and they exit with a clear
message.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
from torch import Tensor

from recon.errors import ReconError

TIMEOUT_ENV = "RECON_DIST_TIMEOUT"


class DistributedError(ReconError):
    """The process group could not be set up, or another rank stopped answering."""


@dataclass
class Ranks:
    """This process's place in the group (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def writes(self) -> bool:
        """Only rank 0 writes files."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(requested: bool, cuda: bool) -> Ranks:
    """Join the process group torchrun describes (environment rendezvous) when asked for, or
    when torchrun started more than one process; else a single-process Ranks."""
    import torch.distributed as dist

    if not (requested or launched_by_torchrun()):
        return Ranks()
    if dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size())
    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
               if k not in os.environ]
    if missing:
        raise DistributedError(
            f"--distributed needs the environment torchrun sets ({', '.join(missing)} missing). "
            "Launch with `torchrun --nproc-per-node N $(which recon) fit ...`.")
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    timeout = datetime.timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, "300")))
    try:
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - any rendezvous failure gets one clear message
        raise DistributedError(f"Could not join the process group: {exc}") from exc
    return Ranks(dist.get_rank(), dist.get_world_size())


def collective(fn, *args, **kwargs):
    """Run a collective, turning a lost peer (timeout, closed connection) into a clear error."""
    try:
        return fn(*args, **kwargs)
    except RuntimeError as exc:
        raise DistributedError(
            "Another rank stopped answering (it crashed or was killed), so this one stops too: "
            f"{exc}. Continue from the last checkpoint with --resume.") from exc


def average_gradients(tensors: list[Tensor], world: int) -> None:
    """Replace each tensor's .grad by its mean over the ranks, with one flattened all-reduce (the
    same tensors, in the same order, on every rank)."""
    import torch.distributed as dist

    flat = torch.cat([t.grad.reshape(-1) for t in tensors])
    collective(dist.all_reduce, flat)
    flat /= world
    offset = 0
    for t in tensors:
        n = t.grad.numel()
        t.grad = flat[offset:offset + n].view_as(t.grad)
        offset += n


def average_in_place(tensors: list[Tensor], world: int) -> None:
    """Each tensor becomes its mean over the ranks (one all-reduce each)."""
    import torch.distributed as dist

    for t in tensors:
        collective(dist.all_reduce, t)
        t /= world


def gather_cameras(local: Tensor, world: int) -> Tensor:
    """[b, ...] per-camera rows of every rank, concatenated in rank order: [world·b, ...]."""
    import torch.distributed as dist

    parts = [torch.empty_like(local) for _ in range(world)]
    collective(dist.all_gather, parts, local.contiguous())
    return torch.cat(parts)


def any_rank(flag: bool, device) -> bool:
    """True on every rank when ``flag`` is true on any rank."""
    import torch.distributed as dist

    value = torch.tensor([1.0 if flag else 0.0], device=device)
    collective(dist.all_reduce, value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def mean_over_ranks(value: Tensor, world: int) -> Tensor:
    import torch.distributed as dist

    value = value.detach().clone().reshape(1)
    collective(dist.all_reduce, value)
    return value[0] / world


def batch_statistics(result, share: float, world: int):
    """The strategy's view of a step rendered by every rank: the per-primitive statistics of all
    the batch's cameras ([B, N, ...], rank order) in one RenderResult. Screen-space gradients are
    scaled by ``share`` (this rank's images / the batch), since each rank's loss is the mean over
    its own images and one process's is the mean over the whole batch; images stay this rank's
    (strategies read only their size)."""
    from recon.render import RenderResult

    def gathered(t: Tensor | None, scale: float = 1.0) -> Tensor | None:
        return None if t is None else gather_cameras(t * scale if scale != 1.0 else t, world)

    means2d = gathered(result.means2d.detach())
    if result.means2d.grad is not None:
        means2d.grad = gathered(result.means2d.grad, share)
    visible = gathered(result.visible)
    return RenderResult(
        features=result.features, alpha=result.alpha, depth=result.depth,
        median_depth=result.median_depth, normals=result.normals, means2d=means2d,
        radii=gathered(result.radii), visible=visible,
        visibility_count=visible.sum(0).to(torch.int32), max_weight=gathered(result.max_weight),
        absgrad=gathered(result.absgrad, share))


def on_rank_zero(ranks: Ranks, work):
    """``work()`` on rank 0 only (creating the run folder, SfM); every rank returns its result,
    or raises its error (so a refused --out stops every rank, not only rank 0)."""
    import torch.distributed as dist

    result, error = None, None
    if ranks.writes:
        try:
            result = work()
        except ReconError as exc:
            error = exc
    if ranks.active:
        box = [None if error is None else str(error), result]
        collective(dist.broadcast_object_list, box, src=0)
        if box[0] is not None and error is None:
            raise ReconError(box[0])
        result = box[1]
    if error is not None:
        raise error
    return result


def leave(finished: bool = False) -> None:
    """Leave the process group: at the end of a fit (``finished``) after a barrier, so no rank
    closes its connections while another still uses them; after an error at once (the others
    may be gone)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if finished:
            collective(dist.barrier)
        dist.destroy_process_group()


__all__ = ["DistributedError", "Ranks", "TIMEOUT_ENV", "any_rank", "average_gradients",
           "average_in_place", "batch_statistics", "collective", "gather_cameras", "launched_by_torchrun", "leave",
           "mean_over_ranks", "on_rank_zero", "setup"]
