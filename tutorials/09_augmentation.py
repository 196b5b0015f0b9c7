"""
Augment patches with context
============================

Random augmentation (flips, rotations and scalings, elastic deformations,
contrast, noise, MRI bias fields) carries TorchIO 1.x's names and arguments:
``tp.RandomAffine``, ``tp.RandomElasticDeformation``, ``tp.Compose``... A
TorchIO pipeline runs unchanged on a whole subject, but torchpatch can also
run it **per patch, with context**: for each patch the random parameters are
drawn first, the region of the volume the spatial transforms need around the
patch is read, and one resampling (flip, affine and elastic composed) makes
the augmented patch. The cost grows with the patch, not with the volume.

This tutorial augments patches of a synthetic phantom, shows them next to the
plain patches, prints what was applied to one patch, checks that a patch
augmented alone equals the whole subject augmented then cropped, and plugs
the pipeline into the :class:`~torchpatch.Queue`.
"""

# %%
# A phantom and some patches
# --------------------------
# :func:`torchpatch.datasets.phantom_subjects` makes a subject in code: an
# ``'image'`` (a noisy body with bright and dim blobs) and its ``'label'``
# map. A :class:`~torchpatch.LabelSampler` picks patches centred on each
# class equally often; we keep their locations ``(i0, j0, k0, i1, j1, k1)``.

import time

import numpy as np
import torch
from matplotlib import pyplot as plt

import torchpatch as tp
from torchpatch.datasets import phantom_subjects
from torchpatch.transforms.augmentation.context import augment_patches

subject = phantom_subjects(1, (48, 48, 48), seed=0)[0]
PATCH_SIZE = 24
sampler = tp.LabelSampler(PATCH_SIZE, "label", label_probabilities={0: 1, 1: 1, 2: 1})
plain = list(sampler(subject, num_patches=4, generator=0))
locations = torch.stack([patch[tp.LOCATION] for patch in plain])
print("patch locations:")
print(locations)

# %%
# The pipeline
# ------------
# The same objects as in a TorchIO script. Label maps are resampled with
# nearest neighbour and filled with 0 outside the volume; scalar images
# linearly, filled with their minimum. The three spatial transforms in a row
# are composed into one coordinate map and interpolated once.

pipeline = tp.Compose(
    [
        tp.RandomFlip(axes=(0, 1, 2)),
        tp.RandomAffine(scales=0.15, degrees=15),
        tp.RandomElasticDeformation(num_control_points=7, max_displacement=4),
        tp.RandomGamma(log_gamma=0.2),
        tp.RandomNoise(std=(0, 0.05)),
        tp.RandomBiasField(coefficients=0.3),
    ]
)

# %%
# Augmenting patches with context
# -------------------------------
# :func:`~torchpatch.transforms.augmentation.context.augment_patches` is what
# the Queue runs in its workers: each patch gets its own draws from torch's
# generator, reads the box it needs from the subject and comes out at the
# patch's location, with its labels moved with its voxels.

torch.manual_seed(0)
augmented = augment_patches(pipeline, subject, locations)
print("augmented image batch:", tuple(augmented.data["image"].shape))
print("augmented label batch:", tuple(augmented.data["label"].shape))

# %%
# Each row is one patch: the plain patch, then the augmented one, both at
# the middle slice along the third axis, with the label map's contours
# (class 1 in orange, class 2 in cyan).


def show(ax: plt.Axes, image: torch.Tensor, label: torch.Tensor, title: str) -> None:
    k = image.shape[-1] // 2
    ax.imshow(image[0, :, :, k].T.numpy(), cmap="gray", origin="lower", vmin=-0.1, vmax=1.2)
    for value, colour in ((1, "tab:orange"), (2, "tab:cyan")):
        mask = (label[0, :, :, k] == value).float().T.numpy()
        if mask.any():
            ax.contour(mask, levels=[0.5], colors=colour, linewidths=1)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


fig, axes = plt.subplots(len(plain), 2, figsize=(4.5, 2.2 * len(plain)), layout="constrained")
for row, patch in enumerate(plain):
    show(axes[row, 0], patch["image"].data, patch["label"].data, f"patch {row}: original")
    show(axes[row, 1], augmented.data["image"][row], augmented.data["label"][row], f"patch {row}: augmented")

# %%
# What was applied
# ----------------
# Every patch records the parameters drawn for it, one record per transform
# applied, in its ``'history'`` list (a collated batch keeps one list per
# patch). A record replays with the transform's ``apply_params``. Long lists
# (the elastic control points' displacements in mm, the bias field's
# polynomial coefficients) are summarised here by their shape.


def summary(value: object) -> str:
    array = np.asarray(value, dtype=object)
    if array.ndim and array.size > 6:
        return f"array of shape {array.shape}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {summary(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list):
        return "[" + ", ".join(summary(v) for v in value) + "]"
    return repr(value)


for record in augmented[0]["history"]:
    fields = ", ".join(f"{key}={summary(value)}" for key, value in record.items() if key != "name")
    print(f"{record['name']:25s} {fields}")

# %%
# A patch equals the whole subject augmented, then cropped
# --------------------------------------------------------
# With the same seed, a patch augmented alone equals the pipeline applied to
# the whole subject and cropped to the patch, up to floating-point rounding:
# the context read around the patch holds every voxel the spatial transforms
# sample, and the bias field and gamma are computed at the patch's own
# positions. Gaussian noise is the exception by design: it is drawn for the
# patch's voxels only (the same distribution, other values), so we compare
# the pipeline without it too.


def compare(transform: tp.Compose, seed: int) -> tuple[float, int, float, float]:
    i0, j0, k0, i1, j1, k1 = locations[0].tolist()
    torch.manual_seed(seed)
    start = time.perf_counter()
    whole = transform(subject)
    middle = time.perf_counter()
    torch.manual_seed(seed)
    patch = augment_patches(transform, subject, locations[:1])
    end = time.perf_counter()
    difference = (whole["image"].data[:, i0:i1, j0:j1, k0:k1] - patch.data["image"][0]).abs().max()
    mismatched = int((whole["label"].data[:, i0:i1, j0:j1, k0:k1] != patch.data["label"][0]).sum())
    return float(difference), mismatched, middle - start, end - middle


without_noise = tp.Compose([t for t in pipeline.transforms if not isinstance(t, tp.RandomNoise)])
for name, transform in (("without noise", without_noise), ("with noise", pipeline)):
    for seed in range(3):
        difference, mismatched, whole_s, patch_s = compare(transform, seed)
        print(
            f"{name:13s} seed {seed}: max |image difference| {difference:.2e}, "
            f"label voxels that differ {mismatched}  "
            f"(whole subject {whole_s * 1000:.0f} ms, patch {patch_s * 1000:.0f} ms)"
        )

# %%
# In the Queue
# ------------
# ``Queue(patch_transform=pipeline)`` augments every patch this way in the
# workers. Draws are seeded per subject from the queue's ``seed``, so the
# same seed gives the same patches whatever ``num_workers`` is. (For the
# whole-subject way TorchIO uses, pass the pipeline to
# ``SubjectsDataset(transform=...)`` instead: every patch of a subject then
# shares one draw, and the whole volume is resampled.)
#
# The queue starts worker processes when ``num_workers > 0``, so it is built
# under ``if __name__ == "__main__":``.


def queue_patches(num_workers: int) -> list[dict]:
    queue = tp.Queue(
        tp.SubjectsDataset([subject]),
        max_length=4,
        samples_per_volume=4,
        sampler=sampler,
        num_workers=num_workers,
        shuffle_patches=False,
        seed=7,
        patch_transform=pipeline,
    )
    with queue:
        return [queue[index] for index in range(len(queue))]


if __name__ == "__main__":
    first, second = queue_patches(0), queue_patches(2)
    same = all(torch.equal(a["image"].data, b["image"].data) for a, b in zip(first, second))
    print(f"{len(first)} patches; 0 and 2 workers give the same patches: {same}")
    print("first patch's transforms:", [record["name"] for record in first[0]["history"]])
