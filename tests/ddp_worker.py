"""Helper run by ``test_queue_distributed.py``: one rank of a 2-process gloo group on CPU.

Usage::

    python tests/ddp_worker.py RANK WORLD_SIZE PORT OUTPUT.json

Each rank builds the same 6 subjects and a Queue whose ``subject_sampler`` is
a ``DistributedSampler``; for 3 epochs it records ``len(queue)`` and the
``subject_id`` of every patch, and writes them to ``OUTPUT.json``. The ranks
meet over TCP on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import signal
import sys
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from torchpatch import Queue, ScalarImage, Subject, SubjectsDataset, UniformSampler

NUM_SUBJECTS = 6
SAMPLES_PER_VOLUME = 3
EPOCHS = 3
#: Seconds before a rank gives up on its peer (and before it stops itself).
TIMEOUT = 60


def run(rank: int, world_size: int, port: int) -> dict[str, object]:
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=TIMEOUT),
    )
    try:
        subjects = [
            Subject(t1=ScalarImage(tensor=torch.rand(1, 8, 8, 8)), subject_id=f"sub-{index}")
            for index in range(NUM_SUBJECTS)
        ]
        dataset = SubjectsDataset(subjects)
        sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=0)
        queue = Queue(dataset, 4, SAMPLES_PER_VOLUME, UniformSampler(4), subject_sampler=sampler, seed=0)
        epochs = []
        for _ in range(EPOCHS):
            length = len(queue)
            ids = [patch["subject_id"] for patch in queue]
            epochs.append({"length": length, "ids": ids})
        queue.close()
        gathered: list[object] = [None] * world_size
        dist.all_gather_object(gathered, epochs)  # the collective also proves the group works
        return {"rank": rank, "epochs": epochs, "gathered": gathered}
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    signal.alarm(TIMEOUT + 30)  # never outlive the test, whatever happens
    rank, world_size, port, output = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    result = run(rank, world_size, port)
    with open(output, "w", encoding="utf-8") as file:
        json.dump(result, file)
