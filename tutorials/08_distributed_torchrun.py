"""
Distributed training with torchrun, on CPU
==========================================

With :class:`~torch.nn.parallel.DistributedDataParallel` (DDP), several
processes (ranks) each train a copy of the model on their own data and
average their gradients at every step. For patch training, each rank should
visit its own subjects: pass a :class:`~torch.utils.data.DistributedSampler`
as the queue's ``subject_sampler``, and the :class:`~torchpatch.Queue` of
each rank loads, cuts and mixes the patches of its share of the subjects
only (the queue calls the sampler's ``set_epoch`` every epoch, so the split
changes between epochs).

This script is both the launcher and the training program. Run directly
(``python tutorials/08_distributed_torchrun.py``), it starts itself under
``torchrun`` with two CPU processes that talk over the ``gloo`` backend, and
checks what they report. That is the same as typing::

    torchrun --standalone --nproc_per_node 2 tutorials/08_distributed_torchrun.py
"""

# %%
# What each rank runs
# -------------------
# ``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and the address of rank 0 in
# each process's environment; ``init_process_group`` reads them. Every rank
# builds the same list of subjects; the :class:`~torch.utils.data.DistributedSampler`
# (same ``seed`` on every rank) gives each rank a disjoint half of them. At
# the end, rank 0 gathers which subjects each rank saw and checks that the
# halves were disjoint, and that DDP kept the models identical.

import json
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

import torchpatch as tp
from torchpatch.datasets import phantom_subjects

NUM_SUBJECTS, EPOCHS, SAMPLES_PER_VOLUME, BATCH_SIZE = 8, 3, 4, 4
#: Seconds before anything waiting on another process gives up.
TIMEOUT = 120


def tiny_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv3d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv3d(8, 3, 3, padding=1))


def train_rank() -> None:
    signal.alarm(TIMEOUT)  # a rank never outlives the launcher's patience, even if a peer hangs
    dist.init_process_group("gloo", timeout=timedelta(seconds=TIMEOUT // 2))
    rank, world_size = dist.get_rank(), dist.get_world_size()
    try:
        torch.manual_seed(0)
        dataset = tp.SubjectsDataset(phantom_subjects(NUM_SUBJECTS, 24, seed=0))
        subject_sampler = DistributedSampler(dataset, shuffle=True, seed=0)
        queue = tp.Queue(
            dataset,
            max_length=16,
            samples_per_volume=SAMPLES_PER_VOLUME,
            sampler=tp.LabelSampler(16, "label", label_probabilities={0: 1, 1: 1, 2: 1}),
            num_workers=1,
            subject_sampler=subject_sampler,
            seed=0,
        )
        loader = tp.SubjectsLoader(queue, batch_size=BATCH_SIZE)
        model = DistributedDataParallel(tiny_cnn())  # CPU: no device_ids
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        loss_function = nn.CrossEntropyLoss()
        seen, losses = [], []
        with queue:
            for _ in range(EPOCHS):
                subjects, total, steps = set(), 0.0, 0
                for batch in loader:
                    subjects.update(batch["subject_id"])
                    logits = model(batch["image"][tp.DATA])
                    loss = loss_function(logits, batch["label"][tp.DATA][:, 0].long())
                    optimizer.zero_grad()
                    loss.backward()  # DDP averages the gradients of all ranks here
                    optimizer.step()
                    total, steps = total + loss.item(), steps + 1
                seen.append(sorted(subjects))
                losses.append(total / steps)
        checksum = float(sum(parameter.detach().double().sum() for parameter in model.parameters()))
        report = {"rank": rank, "seen": seen, "losses": losses, "steps": steps, "checksum": checksum}
        reports: list = [None] * world_size
        dist.all_gather_object(reports, report)
        if rank == 0:
            summarise(reports)
    finally:
        dist.destroy_process_group()


def summarise(reports: list) -> None:
    """Rank 0: print what each rank saw and one JSON line for the launcher to check."""
    disjoint, complete = True, True
    for epoch in range(EPOCHS):
        halves = [set(report["seen"][epoch]) for report in reports]
        for report in reports:
            print(f"epoch {epoch + 1}, rank {report['rank']}: {report['seen'][epoch]}")
        disjoint &= not set.intersection(*halves)
        complete &= len(set.union(*halves)) == NUM_SUBJECTS
    for report in reports:
        losses = ", ".join(f"{loss:.3f}" for loss in report["losses"])
        print(f"rank {report['rank']}: {report['steps']} steps per epoch, mean loss per epoch {losses}")
    identical = len({round(report["checksum"], 6) for report in reports}) == 1
    summary = {"disjoint": disjoint, "complete": complete, "identical_models": identical}
    print("RESULT " + json.dumps(summary))


# %%
# The launcher
# ------------
# Without ``RANK`` in the environment, the script starts itself under
# ``torchrun`` (the module ``torch.distributed.run``) with a time limit.
# ``--standalone`` makes the two processes meet on this machine (at a free
# port). The launch gets its own process group, so that on a timeout the
# ranks are stopped with it. Warning filters given to this Python (such as
# ``-W error``) are passed on to the ranks through ``PYTHONWARNINGS``.


def launch() -> dict:
    # This script (sphinx-gallery runs scripts without ``__file__`` but sets ``sys.argv[0]``).
    script = Path(sys.argv[0]).resolve()
    if script.suffix != ".py":
        raise RuntimeError(f"run this tutorial as a script (python {Path(*script.parts[-2:])}), not from {script}")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    if sys.warnoptions:
        environment["PYTHONWARNINGS"] = ",".join(sys.warnoptions)
    process = subprocess.Popen(  # noqa: S603 - this Python running this file
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise RuntimeError(f"torchrun did not finish in {TIMEOUT} s:\n{stdout}\n{stderr[-3000:]}") from None
    if process.returncode != 0:
        raise RuntimeError(f"torchrun failed with exit status {process.returncode}:\n{stdout}\n{stderr[-3000:]}")
    print(stdout.strip())
    results = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    if len(results) != 1:
        raise RuntimeError(f"expected one RESULT line from rank 0, got {len(results)}:\n{stdout}")
    return json.loads(results[0].removeprefix("RESULT "))


# %%
# Run
# ---
# The ranks saw disjoint halves of the subjects in every epoch, together all
# of them, and their models stayed identical because DDP averaged the
# gradients at every step.


def main() -> None:
    if "RANK" in os.environ and "LOCAL_RANK" in os.environ:
        train_rank()
        # Everything is closed (queue, workers, process group): leave without
        # the interpreter's final clean-up, during which gloo's threads were
        # seen, once in many runs, to abort a rank that had finished.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    summary = launch()
    print("summary:", summary)
    if not all(summary.values()):
        raise RuntimeError(f"the distributed run went wrong: {summary}")


if __name__ == "__main__":
    main()
