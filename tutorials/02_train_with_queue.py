"""
Train a 3D segmentation network with the Queue
==============================================

Whole 3D volumes rarely fit through a network at once, so we train on random
patches. Loading and cutting a volume costs far more than one training step
on a patch of it, so :class:`~torchpatch.Queue` loads each volume once in a
worker process, cuts several patches from it, and mixes them with patches of
other volumes while the model trains.

This tutorial trains a tiny 3D CNN on synthetic phantoms for a few dozen
steps: phantoms, a sampler that balances classes, a queue with two worker
processes and a cache, the training loop with its loss curve, and a quick
check on a held-out phantom.
"""

# %%
# Phantoms
# --------
# :func:`torchpatch.datasets.phantom_subjects` makes deterministic subjects in
# code, each with an ``'image'`` (a noisy body with bright and dim blobs) and a
# ``'label'`` map (0 background, 1 bright blobs, 2 dim blobs). We keep the
# last one aside to check the trained model.

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

import torchpatch as tp
from torchpatch.datasets import phantom_subjects
from torchpatch.demo import dice_scores, tiny_unet

torch.manual_seed(0)
subjects = phantom_subjects(6, (40, 40, 40), seed=0)
training, held_out = subjects[:-1], subjects[-1]
counts = torch.bincount(training[0]["label"].data.flatten().long(), minlength=3)
print(f"{len(training)} training phantoms of shape {training[0]['image'].shape}")
print("voxels per class in the first one:", counts.tolist())

# %%
# Why sample by label
# -------------------
# The blobs are a few percent of each volume, so uniformly drawn patches are
# mostly background. :class:`~torchpatch.LabelSampler` centres patches on
# each class with the frequencies we ask for. We cut 200 patches of 16 voxels
# a side with each sampler (no queue needed: a sampler is called on a
# subject) and count the class of each patch's centre voxel (the centre of a
# patch of 16 is its voxel 8) and the share of each class among all the
# patches' voxels.

PATCH_SIZE = 16
uniform = tp.UniformSampler(PATCH_SIZE)
balanced = tp.LabelSampler(PATCH_SIZE, "label", label_probabilities={0: 1, 1: 1, 2: 1})
for name, sampler in (("UniformSampler", uniform), ("LabelSampler", balanced)):
    centres, voxels = torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long)
    for patch in sampler(training[0], num_patches=200, generator=0):
        labels = patch["label"].data[0]
        centres[int(labels[PATCH_SIZE // 2, PATCH_SIZE // 2, PATCH_SIZE // 2])] += 1
        voxels += torch.bincount(labels.flatten().long(), minlength=3)
    fractions = ", ".join(f"{f:.3f}" for f in (voxels / voxels.sum()).tolist())
    print(f"{name:15s} centre classes {centres.tolist()}, voxel fractions {fractions}")

# %%
# A tiny 3D network
# -----------------
# ``torchpatch.demo.tiny_unet``: three 3x3x3 convolutions (one dilated, for a
# wider view) and a 1x1x1 classifier. It is fully convolutional, so the patch
# size is free. ``dice_scores`` gives the Dice of each foreground class.


# %%
# The queue and the training loop
# -------------------------------
# :class:`~torchpatch.SubjectsDataset` hands subjects to the queue's workers;
# with ``cache_dir`` each subject is written once as memory-mappable ``.npy``
# files (here into a temporary folder), so later epochs read only the bytes
# of each patch. The queue cuts ``samples_per_volume`` patches per subject
# and epoch in ``num_workers`` processes and keeps up to ``max_length`` of
# them mixed. The outer :class:`~torchpatch.SubjectsLoader` must have no
# workers of its own: it only pops ready patches and stacks them into
# batches of shape ``(B, C, I, J, K)``.
#
# The queue starts processes, so the code that builds it runs under
# ``if __name__ == "__main__":``, as any PyTorch script with loader workers
# should (on macOS and Windows, workers re-import the script).

EPOCHS = 5
BATCH_SIZE = 4


def train(cache_dir: Path) -> list[float]:
    dataset = tp.SubjectsDataset(training, cache_dir=cache_dir)
    queue = tp.Queue(
        dataset,
        max_length=24,
        samples_per_volume=8,
        sampler=balanced,
        num_workers=2,
        seed=0,
    )
    loader = tp.SubjectsLoader(queue, batch_size=BATCH_SIZE)
    print(f"{len(queue)} patches per epoch, {len(loader)} batches of {BATCH_SIZE}")

    model = tiny_unet()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_function = nn.CrossEntropyLoss()
    losses = []
    with queue:  # leaving the block stops the workers
        for epoch in range(EPOCHS):
            for batch in loader:
                images = batch["image"][tp.DATA]  # (B, 1, 16, 16, 16)
                targets = batch["label"][tp.DATA][:, 0].long()  # (B, 16, 16, 16)
                loss = loss_function(model(images), targets)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
            print(f"epoch {epoch + 1}: mean loss {np.mean(losses[-len(loader) :]):.3f}")
            if epoch == 0:
                entries = sorted(path.name for path in cache_dir.iterdir())
                print(f"cache after the first epoch: {len(entries)} subject folders")
    print(f"batch shapes: image {tuple(images.shape)}, label {tuple(targets.shape)}")

    # A quick check on the held-out phantom: the whole volume goes through the
    # network in overlapping patches (see the whole-volume inference tutorial).
    model.eval()
    output = tp.infer(model, held_out, patch_size=24, patch_overlap=8, image_name="image", progress=False)
    prediction = output.data.argmax(dim=0)
    truth = held_out["label"].data[0]
    dice_1, dice_2 = dice_scores(prediction, truth)
    print(f"held-out Dice: class 1 = {dice_1:.3f}, class 2 = {dice_2:.3f}")
    return losses


# %%
# Run it and plot the loss
# ------------------------
# Every batch's loss, and its running mean over the batches of one epoch.


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        losses = train(Path(folder) / "cache")
    window = len(losses) // EPOCHS
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    _, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
    ax.plot(np.arange(1, len(losses) + 1), losses, alpha=0.4, label="batch loss")
    ax.plot(np.arange(window, len(losses) + 1), smooth, label=f"mean of {window} batches")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy")
    ax.set_title("Training on queue patches")
    ax.legend()


if __name__ == "__main__":
    main()
