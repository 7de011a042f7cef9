"""The data-parallel loop, with torch alone: placement (pure) and a single-replica train."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from maestro.training import ddp

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("cuda", "count", "local_rank", "expected"),
    [
        (False, 0, 0, ddp.Placement("gloo", "cpu")),
        (True, 0, 0, ddp.Placement("gloo", "cpu")),
        (True, 1, 0, ddp.Placement("nccl", "cuda:0")),
        (True, 2, 3, ddp.Placement("nccl", "cuda:1")),
    ],
    ids=["no-cuda", "cuda-without-devices", "one-gpu", "local-rank-picks"],
)
def test_placement(cuda: bool, count: int, local_rank: int, expected: ddp.Placement) -> None:
    assert ddp.placement(cuda, count, local_rank) == expected


def test_one_replica_trains_and_reports_each_epoch() -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = (x.sum(dim=1, keepdim=True) > 0).float()
    net = nn.Sequential(nn.Linear(3, 1))
    losses: list[float] = []
    rows = ddp.train(
        net,
        nn.BCEWithLogitsLoss(),
        TensorDataset(x, y),
        epochs=5,
        batch_size=16,
        lr=0.1,
        weight_decay=0.0,
        seed=1,
        world=ddp.World(),
        where=ddp.Placement("gloo", "cpu"),
        on_epoch=lambda epoch, loss: losses.append(loss),
    )
    assert rows == 64 and len(losses) == 5
    assert losses[-1] < losses[0]
    assert len(ddp.parameters_sha256(net)) == 64


def ddp_replica(rank: int, port: int, out: Any) -> None:
    from datetime import timedelta

    where = ddp.Placement("gloo", "cpu")
    ddp.init_group(
        where,
        master_addr="127.0.0.1",
        master_port=port,
        world_size=2,
        rank=rank,
        timeout=timedelta(seconds=60),
    )
    try:
        torch.manual_seed(0)
        x = torch.randn(64, 3)
        y = (x.sum(dim=1, keepdim=True) > 0).float()
        net = nn.Sequential(nn.Linear(3, 1))
        losses: list[float] = []
        rows = ddp.train(
            net,
            nn.BCEWithLogitsLoss(),
            TensorDataset(x, y),
            epochs=3,
            batch_size=8,
            lr=0.1,
            weight_decay=0.0,
            seed=1,
            world=ddp.World(2, rank),
            where=where,
            on_epoch=lambda epoch, loss: losses.append(loss),
        )
        digest = ddp.parameters_sha256(net)
        ddp.check_replicas_agree(digest, 2)
    finally:
        ddp.leave_group()
    out.put((rank, rows, losses, digest))


def test_two_replicas_all_reduce_to_the_same_weights_over_gloo() -> None:
    import multiprocessing
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=ddp_replica, args=(r, port, out)) for r in (0, 1)]
    for p in procs:
        p.start()
    results = sorted(out.get(timeout=90) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    (_, rows0, losses0, digest0), (_, rows1, losses1, digest1) = results
    assert rows0 == rows1 == 32  # each replica its half of the rows
    assert losses0 == losses1  # the epoch losses were all-reduced across both
    assert digest0 == digest1  # and the gradients: the same weights
