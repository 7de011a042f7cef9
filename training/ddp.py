"""The data-parallel training loop of the PyTorch trainer, importable with torch alone (no
pandas, MLflow or Maestro), so it can be checked wherever torch is installed.

Where a replica computes (`placement`): on a GPU with NCCL when the process sees one (the
pod has `nvidia.com/gpu` limits, so the device plugin gave it CUDA_VISIBLE_DEVICES), on the
CPU with gloo otherwise. `train` runs the epochs: each replica trains a
DistributedDataParallel copy of the same network on its shard of the rows, DDP all-reduces
(averages) the gradients at every backward pass, and at the end of each epoch the replicas
all-reduce their summed losses, which every rank logs: the same figure on every rank shows
the collective ran across them.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as torch_dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

log = logging.getLogger(__name__)

# An epoch's train loss over all replicas -> whatever rank 0 records of it.
EpochCallback = Callable[[int, float], None]


@dataclass(frozen=True)
class Placement:
    """The process group's backend and this replica's device."""

    backend: str
    device: str

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")


def placement(cuda_available: bool, device_count: int, local_rank: int = 0) -> Placement:
    """NCCL on the replica's GPU when it has any (LOCAL_RANK picks one of several), gloo on
    the CPU otherwise (pure)."""
    if cuda_available and device_count > 0:
        return Placement("nccl", f"cuda:{local_rank % device_count}")
    return Placement("gloo", "cpu")


def detect_placement() -> Placement:
    """This process's placement: torch sees only the GPUs CUDA_VISIBLE_DEVICES names."""
    local_rank = int(os.environ.get("LOCAL_RANK") or 0)
    return placement(torch.cuda.is_available(), torch.cuda.device_count(), local_rank)


def init_group(
    where: Placement,
    *,
    master_addr: str,
    master_port: int,
    world_size: int,
    rank: int,
    timeout: timedelta,
) -> None:
    """Join the job's process group: rank 0 serves the rendezvous at MASTER_ADDR:MASTER_PORT
    (a name the cluster DNS resolves: the Master's headless Service), the others connect."""
    if where.cuda:
        torch.cuda.set_device(torch.device(where.device))
    torch_dist.init_process_group(
        where.backend,
        init_method=f"tcp://{master_addr}:{master_port}",
        world_size=world_size,
        rank=rank,
        timeout=timeout,
    )
    log.info(
        "rank %d of %d joined the %s process group at %s:%d (device %s)",
        rank,
        world_size,
        where.backend,
        master_addr,
        master_port,
        where.device,
    )


def leave_group() -> None:
    """Closing the group also tells the other replicas when this one fails."""
    torch_dist.destroy_process_group()


def parameters_sha256(net: nn.Module) -> str:
    """A digest of the weights, to show replicas ended identical (and runs reproduce)."""
    digest = hashlib.sha256()
    for name, tensor in net.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def check_replicas_agree(digest: str, world_size: int) -> None:
    """DDP keeps replicas in step; a difference would mean the model logged is not theirs."""
    digests: list[Any] = [None] * world_size
    torch_dist.all_gather_object(digests, digest)
    if len(set(digests)) != 1:
        raise RuntimeError(f"replicas ended with different weights: {digests}")


@dataclass(frozen=True)
class World:
    """This replica's place in the job (1 replica: not distributed)."""

    size: int = 1
    rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def train(
    net: nn.Module,
    loss_fn: nn.Module,
    dataset: TensorDataset,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
    world: World,
    where: Placement,
    on_epoch: Callable[[int, float], None] | None = None,
) -> int:
    """Train `net` in place (it ends on the CPU); returns the rows this replica trained on
    per epoch. With `world.distributed` the process group must be initialised."""
    net.to(where.device)
    model: nn.Module = net
    if world.distributed:
        ids = [torch.device(where.device).index] if where.cuda else None
        model = DistributedDataParallel(net, device_ids=ids)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    # This replica's shard, reshuffled every epoch (set_epoch) from the seed; padded so that
    # every replica runs the same number of steps (DDP's all-reduce needs all of them).
    sampler: DistributedSampler[Any] = DistributedSampler(
        dataset, num_replicas=world.size, rank=world.rank, shuffle=True, seed=seed
    )
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        model.train()
        totals = torch.zeros(2, dtype=torch.float64, device=where.device)  # losses, rows
        for xb, yb in loader:
            xb, yb = xb.to(where.device), yb.to(where.device)
            optimiser.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()  # DDP all-reduces (averages) the gradients here
            optimiser.step()
            totals += torch.tensor(
                [loss.item() * len(xb), len(xb)], dtype=torch.float64, device=where.device
            )
        if world.distributed:
            torch_dist.all_reduce(totals)
            log.info(
                "rank %d of %d: epoch %d all_reduce over %s: train loss %.6f on %d rows",
                world.rank,
                world.size,
                epoch,
                where.backend,
                float(totals[0] / totals[1]),
                int(totals[1]),
            )
        net.eval()
        if on_epoch is not None:
            on_epoch(epoch, float(totals[0] / totals[1]))
    net.to("cpu")
    return len(sampler)
