"""DDP: two CPU processes (gloo) with DistributedSampler padding give the single-process numbers.

37 videos over 2 ranks: the sampler repeats one video to give each rank 19, so a metric
that summed per rank would count it twice. ``AVVPMetrics`` keys rows by video index and
must equal a single-process run exactly, diagnostics included.
"""

from __future__ import annotations

import os
import pickle
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DistributedSampler

from tests.helpers.metric_cases import make_batch

VIDEOS = 37
WORLD = 2
GATING = "mmcse"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _shard(rank: int) -> list[int]:
    sampler = DistributedSampler(range(VIDEOS), num_replicas=WORLD, rank=rank, shuffle=True, seed=3)
    return list(sampler)


def _worker(rank: int, port: int, out_dir: str) -> None:
    from avvp_lit.metrics import AVVPMetrics

    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        batch = make_batch(VIDEOS, seed=11)
        metric = AVVPMetrics(gating=GATING)
        for rows in torch.tensor(_shard(rank)).split(4):
            metric.update(**{key: value[rows] for key, value in batch.items()})
        results = metric.compute()
        diagnostics = metric.compute_diagnostics()
        local = len(metric.index) and int(torch.cat(metric.index).numel())
        payload = {"results": results, "diagnostics": diagnostics, "local_rows": local}
        (Path(out_dir) / f"rank{rank}.pkl").write_bytes(pickle.dumps(payload))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_gloo_equals_single_process(tmp_path):
    from avvp_lit.metrics import AVVPMetrics, evaluate

    shards = [_shard(rank) for rank in range(WORLD)]
    padded = shards[0] + shards[1]
    assert len(padded) == VIDEOS + 1 and sorted(set(padded)) == list(range(VIDEOS))

    batch = make_batch(VIDEOS, seed=11)
    single = AVVPMetrics(gating=GATING)
    single.update(**batch)
    expected = single.compute()
    expected_diag = single.compute_diagnostics()

    rows = torch.tensor(padded)
    naive = evaluate(
        batch["global_prob"][rows],
        batch["a_prob"][rows],
        batch["v_prob"][rows],
        batch["frame_prob"][rows],
        batch["gt_audio"][rows].transpose(1, 2),
        batch["gt_visual"][rows].transpose(1, 2),
        gating=GATING,
    )
    assert naive != expected  # counting the padded repeat would show

    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    for rank in range(WORLD):
        payload = pickle.loads((tmp_path / f"rank{rank}.pkl").read_bytes())
        assert payload["local_rows"] == len(shards[rank])  # states unsynced again after compute
        assert payload["results"] == expected, f"rank {rank}"
        diag = payload["diagnostics"]
        np.testing.assert_array_equal(diag.index, expected_diag.index)
        np.testing.assert_array_equal(diag.video_scores, expected_diag.video_scores)
        for key, value in expected_diag.class_f1.items():
            np.testing.assert_array_equal(diag.class_f1[key], value)
