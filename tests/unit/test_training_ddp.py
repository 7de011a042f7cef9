"""The data-parallel loop, with torch alone: placement (pure) and a single-replica train."""

from __future__ import annotations

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
