"""
Weighted sampling and label sampling
====================================

Where patch centres fall decides what a network learns. Drawn uniformly,
centres land mostly on background; small structures are rarely seen. Two
samplers steer them:

- :class:`~torchpatch.LabelSampler` picks the *class* of each centre with
  the frequencies you give (``label_probabilities``), then a voxel of that
  class: small classes are seen as often as large ones.
- :class:`~torchpatch.WeightedSampler` draws centres in proportion to any
  non-negative *probability map* (``probability_map``): class weights, edge
  maps, a previous model's errors, ...

We draw patches from one 2D phantom with both, and with
:class:`~torchpatch.UniformSampler` for comparison, and plot where their
centres fall.
"""

# %%
# A 2D phantom and a probability map
# ----------------------------------
# A 2D image is a volume of depth one, ``(C, I, J, 1)``, so an int patch size
# ``32`` means ``(32, 32, 1)``. For the weighted sampler we build a map that
# favours the borders of the blobs (where segmentation errors happen) and
# gives the rest of the body a small weight; air gets none.

import matplotlib.pyplot as plt
import numpy as np
import torch

import torchpatch as tp
from torchpatch.datasets import make_phantom
from torchpatch.viz import plot_slice

subject = make_phantom((128, 128, 1), seed=4)
labels = subject["label"].data[0, :, :, 0]
body = subject["image"].data[0, :, :, 0] > 0.15  # the body is 0.3 bright, air 0 (plus noise)

# A voxel is on a border when its 5x5 neighbourhood holds more than one class.
pooled = labels[None, None].float()
highest = torch.nn.functional.max_pool2d(pooled, 5, stride=1, padding=2)[0, 0]
lowest = -torch.nn.functional.max_pool2d(-pooled, 5, stride=1, padding=2)[0, 0]
border = (highest != lowest) & (highest > 0)
weights = 0.05 * body.float() + border.float()
subject["weights"] = tp.ScalarImage(tensor=weights[None, :, :, None])
print(subject)
print("voxels per class:", torch.bincount(labels.flatten().long()).tolist(), "| border voxels:", int(border.sum()))

# %%
# Three samplers, 600 patches each
# --------------------------------
# A sampler called on a subject yields patches; each patch's ``LOCATION``
# ``(i0, j0, k0, i1, j1, k1)`` gives its centre, ``i0 + 32 // 2`` and so on.

PATCH_SIZE, NUM_PATCHES = 32, 600
samplers = {
    "UniformSampler": tp.UniformSampler(PATCH_SIZE),
    "LabelSampler {0: 1, 1: 1, 2: 1}": tp.LabelSampler(PATCH_SIZE, "label", label_probabilities={0: 1, 1: 1, 2: 1}),
    "WeightedSampler (border map)": tp.WeightedSampler(PATCH_SIZE, probability_map="weights"),
}
centres = {}
for name, sampler in samplers.items():
    locations = torch.stack([patch[tp.LOCATION] for patch in sampler(subject, NUM_PATCHES, generator=0)])
    centres[name] = locations[:, :2] + PATCH_SIZE // 2  # (i, j) of each centre voxel
first = next(samplers["UniformSampler"](subject, 1, generator=0))
print("patch shape:", first["image"].shape, "| location:", first[tp.LOCATION].tolist())

# %%
# Classes at the centres
# ----------------------
# The label sampler balances the classes whatever their size. The weighted
# sampler follows its map: the share of centres on the blob borders should
# match the share of the map's mass there (among the centres where a patch
# fits, i.e. at least 16 voxels from the image edge).

class_counts = {}
for name, found in centres.items():
    centre_classes = labels[found[:, 0], found[:, 1]].long()
    class_counts[name] = torch.bincount(centre_classes, minlength=3)
    on_border = float(border[found[:, 0], found[:, 1]].float().mean())
    print(f"{name:32s} centre classes {class_counts[name].tolist()}, on a border {on_border:.0%}")

half = PATCH_SIZE // 2
valid = (slice(half, 128 - PATCH_SIZE + half + 1),) * 2
expected = float(weights[valid][border[valid]].sum() / weights[valid].sum())
print(f"expected share of weighted centres on a border: {expected:.0%}")

# %%
# Where the centres fall
# ----------------------
# Each panel shows the phantom with its labels (class 1 orange, class 2
# green), the centres as dots, and the dashed square where centres of
# 32-voxel patches can lie. The weighted panel shows its probability map.

figure, axes = plt.subplots(1, 4, figsize=(15, 4), layout="constrained")
for ax, (name, found) in zip(axes, centres.items()):
    if name.startswith("Weighted"):
        plot_slice(subject, image_name="weights", cmap="viridis", ax=ax, title=name)
    else:
        plot_slice(subject, label="label", image_name="image", ax=ax, title=name)
    ax.scatter(found[:, 0] + 0.5, found[:, 1] + 0.5, s=4, c="red")
    ax.add_patch(plt.Rectangle((half, half), 128 - PATCH_SIZE, 128 - PATCH_SIZE, fill=False, ls="--", ec="white"))

share_in_image = torch.bincount(labels.flatten().long(), minlength=3) / labels.numel()
bars = axes[3]
positions = np.arange(3)
bars.bar(positions - 0.3, share_in_image.numpy(), width=0.2, label="voxels of the image", color="grey")
for offset, (name, counts) in zip((-0.1, 0.1, 0.3), class_counts.items()):
    bars.bar(positions + offset, (counts / counts.sum()).numpy(), width=0.2, label=name.split(" ")[0])
bars.set_xticks(positions, ["class 0", "class 1", "class 2"])
bars.set_ylabel("share of patch centres")
bars.set_title("Class of the centre voxel")
bars.legend(fontsize=8)
