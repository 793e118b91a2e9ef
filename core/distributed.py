"""Process-group setup for runs under ``torchrun`` (or launched by ``tunewright`` itself).

torch.distributed, torchrun's rendezvous and PyTorch's DDP are the engines; this module
only reads the environment torchrun sets, starts the process group with the backend
that fits the device (NCCL on CUDA, Gloo on CPU) and offers the few collectives the
trainer and a distributed study need.
"""

from __future__ import annotations

import gc
import os
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist

from tunewright.errors import TunewrightError


class StoppedOnRankZero(TunewrightError):
    """This rank's side of a stop that rank 0 decided at a point every rank reached (a
    hook raised there: a tuning trial pruned, say), so no rank waits alone at the next
    collective."""


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main_process(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def setup(device: torch.device, group_of_one: bool = False) -> DistributedContext:
    """Join the process group torchrun (or the deepspeed launcher) describes. A single
    process needs none, unless ``group_of_one``: DeepSpeed's engine needs a group even for
    one process: under a launcher it joins the launcher's store (torchrun's workers are
    clients of their agent's store, so a store of their own would never answer), and
    started alone it gets one on a free local port."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    launched = launched_by_torchrun() and (int(os.environ["WORLD_SIZE"]) > 1 or group_of_one)
    if not launched:
        if group_of_one and not dist.is_initialized():
            dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{free_local_port()}", rank=0, world_size=1)
        return DistributedContext()
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group(backend)
    return DistributedContext(dist.get_rank(), dist.get_world_size(), int(os.environ["LOCAL_RANK"]))


def free_local_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def teardown(graceful: bool = True) -> None:
    """Leave the process group. ``graceful``: first wait until every rank is done with it,
    since a rank that destroys its group while a peer is still sending can abort that
    peer (seen with Gloo). After an error there is no waiting: the other ranks may never
    arrive, and torchrun takes the job down. Callers drop their DDP-wrapped models first:
    a group that lives on until interpreter exit has its Gloo threads torn down there,
    which has aborted a rank ("terminate called without an active exception")."""
    if dist.is_initialized():
        gc.collect()  # a DDP wrapper in a reference cycle would hold the group until exit
        if graceful:
            dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (nothing to wait for without a process group)."""
    if dist.is_initialized():
        dist.barrier()


def all_reduce_sum(value: float, context: DistributedContext, device: torch.device) -> float:
    """The sum of ``value`` over all ranks (the value itself in a single process)."""
    if not context.is_distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return float(tensor.item())


def gather_objects(obj, context: DistributedContext) -> list:
    """``obj`` from every rank, in rank order (a one-element list in a single process)."""
    if not context.is_distributed:
        return [obj]
    gathered = [None] * context.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj, context: DistributedContext):
    """Rank 0's ``obj`` on every rank (``obj`` itself in a single process)."""
    if not context.is_distributed:
        return obj
    box = [obj if context.is_main_process else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]
