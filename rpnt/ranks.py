"""Data-parallel ranks: who am I, how many are we, and the few collectives training needs.

Ranks come from the environment, never from a launcher of ours:

- ``torchrun`` (``python -m torch.distributed.run``) sets ``RANK``, ``WORLD_SIZE``,
  ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
- ``srun`` (SLURM) sets ``SLURM_PROCID``, ``SLURM_STEP_NUM_TASKS``, ``SLURM_LOCALID`` and
  the step's node list; the rendezvous is the step's first node, on a port derived from
  the job id (``MASTER_ADDR`` / ``MASTER_PORT`` win when set). A SLURM batch script that
  is not itself an ``srun`` step is one process.

:func:`init` starts the process group (``nccl`` on CUDA, ``gloo`` on CPU) when there is
more than one rank; every helper here is the identity in a single process, so code that
calls them runs unchanged without ``torch.distributed``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

from rpnt.errors import RpntError


@dataclass(frozen=True)
class Ranks:
    """This process's place among the data-parallel ranks of a run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0  #: rank among the processes of this node (its GPU index)

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes checkpoints, logs and outputs."""
        return self.rank == 0


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: ``gpu[07-09,12],cpu3`` -> ``gpu07``."""
    m = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not m:
        raise RpntError(f"SLURM node list {nodelist!r} is not understood; set MASTER_ADDR")
    prefix, ranges = m.group(1), m.group(2)
    if not ranges:
        return prefix
    return prefix + re.split(r"[-,]", ranges)[0]


def env_ranks(env: Mapping[str, str] | None = None) -> Ranks:
    """The ranks the launcher announced in ``env`` (default ``os.environ``)."""
    env = os.environ if env is None else env
    try:
        if "WORLD_SIZE" in env and "RANK" in env:
            return Ranks(int(env["RANK"]), int(env["WORLD_SIZE"]),
                         int(env.get("LOCAL_RANK", env["RANK"])))
        if "SLURM_STEP_NUM_TASKS" in env and "SLURM_PROCID" in env:
            return Ranks(int(env["SLURM_PROCID"]), int(env["SLURM_STEP_NUM_TASKS"]),
                         int(env.get("SLURM_LOCALID", "0")))
    except ValueError as exc:
        raise RpntError(f"rank variables of the environment are not integers ({exc}); "
                        "start ranks with torchrun or srun") from exc
    return Ranks()


def _rendezvous(env: Mapping[str, str]) -> None:
    """Fill MASTER_ADDR / MASTER_PORT for ``srun``-started ranks (torchrun sets them)."""
    if "MASTER_ADDR" not in os.environ:
        nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST")
        if not nodes:
            raise RpntError("several ranks but neither MASTER_ADDR nor a SLURM node list "
                            "in the environment; start ranks with torchrun or srun")
        os.environ["MASTER_ADDR"] = first_host(nodes)
    if "MASTER_PORT" not in os.environ:
        os.environ["MASTER_PORT"] = str(20000 + int(env.get("SLURM_JOB_ID", "0")) % 20000)


def init(device_type: str = "cpu") -> Ranks:
    """Join the run's process group (once); returns this process's :class:`Ranks`.

    ``device_type`` "cuda" picks NCCL and this rank's GPU (``local_rank``), else gloo.
    """
    if dist.is_available() and dist.is_initialized():
        return current()
    r = env_ranks()
    if r.world > 1:
        if not dist.is_available():
            raise RpntError("several ranks requested but this torch has no torch.distributed")
        _rendezvous(os.environ)
        os.environ.setdefault("RANK", str(r.rank))
        os.environ.setdefault("WORLD_SIZE", str(r.world))
        if device_type == "cuda":  # SLURM may show each task only its own GPU
            torch.cuda.set_device(r.local_rank % max(1, torch.cuda.device_count()))
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo",
                                rank=r.rank, world_size=r.world)
    return r


def current() -> Ranks:
    """The ranks of the initialised process group, or one rank without one."""
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size(),
                     env_ranks().local_rank)
    return Ranks()


def finish() -> None:
    """Leave the process group (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    """True when there is more than one rank."""
    return current().world > 1


def global_sum(x: torch.Tensor) -> torch.Tensor:
    """``x`` summed over ranks, detached (``x`` itself in one process)."""
    if not active():
        return x
    out = x.detach().clone()
    dist.all_reduce(out)
    return out


class _GatherRows(torch.autograd.Function):
    """all_gather along dim 0 whose backward hands each rank the summed gradient of its
    rows (an all_reduce: works on gloo and NCCL alike)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.rows
        return grad[start:start + ctx.rows]


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows of every rank, in rank order, with gradients flowing back to each rank's rows.

    Every rank must hold the same number of rows (the samplers guarantee it).
    """
    if not active():
        return x
    if x.requires_grad:
        return _GatherRows.apply(x)
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Replace each gradient by its mean over ranks, in one flat all_reduce.

    A parameter without a gradient on every rank keeps ``grad = None`` (as in one
    process, where the optimizer then skips it); one with a gradient on some rank gets
    zeros elsewhere before averaging.
    """
    if not active():
        return
    params = list(params)
    if not params:
        return
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32,
                       device=params[0].device)  # NCCL reduces device tensors only
    dist.all_reduce(has, op=dist.ReduceOp.MAX)
    live = [p for p, h in zip(params, has.tolist(), strict=True) if h > 0]
    if not live:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                      for p in live])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for p in live:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (one start for all)."""
    if not active():
        return
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=0)


def barrier() -> None:
    """Wait for every rank (no-op in one process)."""
    if active():
        dist.barrier()
