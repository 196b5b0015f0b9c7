"""Queue under DistributedDataParallel: each rank gets its own subjects, exactly, every epoch.

Two processes form a gloo group on 127.0.0.1 (CPU only), each running
``tests/ddp_worker.py``; the whole run is bounded by a timeout, so a rank
waiting for a dead peer fails the test instead of hanging CI.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

from torch.utils.data import DistributedSampler

WORLD_SIZE = 2
NUM_SUBJECTS = 6
SAMPLES_PER_VOLUME = 3
EPOCHS = 3
TIMEOUT = 120


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_ranks(tmp_path: Path) -> list[dict]:
    script = Path(__file__).with_name("ddp_worker.py")
    port = free_port()
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    outputs = [tmp_path / f"rank{rank}.json" for rank in range(WORLD_SIZE)]
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), str(rank), str(WORLD_SIZE), str(port), str(outputs[rank])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for rank in range(WORLD_SIZE)
    ]
    try:
        for rank, process in enumerate(processes):
            _, stderr = process.communicate(timeout=TIMEOUT)
            assert process.returncode == 0, f"rank {rank} failed:\n{stderr[-3000:]}"
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    return [json.loads(path.read_text(encoding="utf-8")) for path in outputs]


def test_each_rank_gets_disjoint_subjects_with_exact_patch_counts(tmp_path: Path):
    results = run_ranks(tmp_path)
    everyone = {f"sub-{index}" for index in range(NUM_SUBJECTS)}
    for epoch in range(EPOCHS):
        per_rank = [Counter(result["epochs"][epoch]["ids"]) for result in results]
        for rank, counts in enumerate(per_rank):
            assert results[rank]["epochs"][epoch]["length"] == (NUM_SUBJECTS // WORLD_SIZE) * SAMPLES_PER_VOLUME
            assert len(counts) == NUM_SUBJECTS // WORLD_SIZE, (epoch, rank, counts)
            assert all(count == SAMPLES_PER_VOLUME for count in counts.values()), (epoch, rank, counts)
        subject_sets = [set(counts) for counts in per_rank]
        assert not subject_sets[0] & subject_sets[1], (epoch, subject_sets)
        assert subject_sets[0] | subject_sets[1] == everyone, (epoch, subject_sets)
        # The queue calls set_epoch: each rank's subjects are those of DistributedSampler for this epoch
        # (with seed 0, rank 0 gets subjects {1, 2, 3}, {1, 2, 3}, then {0, 1, 4}).
        for rank in range(WORLD_SIZE):
            reference = DistributedSampler(range(NUM_SUBJECTS), num_replicas=WORLD_SIZE, rank=rank, seed=0)
            reference.set_epoch(epoch)
            assert subject_sets[rank] == {f"sub-{index}" for index in reference}, (epoch, rank, subject_sets)
    # The collective worked and every rank saw the same picture.
    assert results[0]["gathered"] == results[1]["gathered"] == [results[0]["epochs"], results[1]["epochs"]]
