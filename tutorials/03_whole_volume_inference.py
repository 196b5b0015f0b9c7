"""
Whole-volume inference and overlap modes
========================================

A network trained on patches predicts a whole volume patch by patch: a
:class:`~torchpatch.GridSampler` cuts the volume into overlapping patches,
the model runs on batches of them, and a :class:`~torchpatch.GridAggregator`
stitches the outputs back. Where patches overlap, the ``overlap_mode``
decides how their predictions combine, and ``padding_mode`` decides what the
model sees beyond the border of the image.

To see seams clearly we use a "network" whose output near a patch edge is
wrong in a known way: a 7x7x7 mean filter with zero padding. Within three
voxels of a patch edge it averages in zeros that are not in the image, much
as a CNN's border outputs lack context. Run on the whole volume at once it
gives the reference that patch-wise inference should reproduce.
"""

# %%
# A volume and a model with a receptive field
# -------------------------------------------

import matplotlib.pyplot as plt
import torch
from matplotlib.colors import LogNorm
from torch import nn

import torchpatch as tp
from torchpatch.datasets import make_phantom
from torchpatch.viz import plot_grid

subject = make_phantom((48, 48, 48), seed=1)
RADIUS = 3  # the filter reaches 3 voxels on each side
model = nn.Conv3d(1, 1, kernel_size=2 * RADIUS + 1, padding=RADIUS, bias=False)
nn.init.constant_(model.weight, 1 / (2 * RADIUS + 1) ** 3)
model.eval()

with torch.no_grad():
    reference = model(subject["image"].data[None])[0]
print("image", subject["image"].shape, "-> reference output", tuple(reference.shape))

# %%
# The grid loop, written out
# --------------------------
# The sampler is a dataset of patches, so a :class:`~torchpatch.SubjectsLoader`
# batches them; each batch carries the ``LOCATION`` of its patches, which is
# all the aggregator needs to put the outputs back.

PATCH_SIZE, OVERLAP = 24, 8
sampler = tp.GridSampler(subject, patch_size=PATCH_SIZE, patch_overlap=OVERLAP)
aggregator = tp.GridAggregator(sampler, overlap_mode="crop")
loader = tp.SubjectsLoader(sampler, batch_size=8)
print(f"{len(sampler)} patches of {sampler.patch_size}, starts along I: {sampler.grid_starts[0].tolist()}")
with torch.no_grad():
    for batch in loader:
        outputs = model(batch["image"][tp.DATA])  # (B, 1, 24, 24, 24)
        aggregator.add_batch(outputs, batch[tp.LOCATION])
looped = aggregator.get_output_tensor()
print("stitched output", tuple(looped.shape))

# %%
# The same in one call
# --------------------
# :func:`~torchpatch.infer` runs that loop (batches, ``torch.inference_mode``,
# the model's device) and returns a :class:`~torchpatch.ScalarImage` with
# the input's affine.

output = tp.infer(model, subject, PATCH_SIZE, OVERLAP, overlap_mode="crop", image_name="image", progress=False)
print("infer == loop:", torch.equal(output.data, looped), "| spacing", output.spacing)

# %%
# Overlap modes
# -------------
# - ``'crop'``: neighbours split their overlap in the middle, so each voxel
#   comes from one patch, at least ``overlap // 2`` voxels away from that
#   patch's inner edges. With ``overlap // 2 >= 3`` (our filter's reach) no
#   voxel sees a patch edge: crop mode reproduces the whole-volume output.
# - ``'average'``: the mean of every patch that covers a voxel, the edges'
#   errors included.
# - ``'hann'`` and ``'gaussian'``: weighted means, with weights that fall
#   towards each patch's edges, so the edge errors count little.

MODES = ("crop", "average", "hann", "gaussian")
errors = {}
for mode in MODES:
    stitched = tp.infer(model, subject, PATCH_SIZE, OVERLAP, overlap_mode=mode, image_name="image", progress=False)
    errors[mode] = (stitched.data - reference).abs()
    print(f"{mode:9s} max |error| {errors[mode].max():.1e}, mean {errors[mode].mean():.1e}")

# %%
# Crop mode needs enough overlap: with less than twice the model's reach,
# the edge errors come back.

for overlap in (0, 4, 6):
    stitched = tp.infer(model, subject, PATCH_SIZE, overlap, overlap_mode="crop", image_name="image", progress=False)
    print(f"crop, overlap {overlap}: max |error| {(stitched.data - reference).abs().max():.1e}")

# %%
# Where the errors are: a slice through the middle of the volume, errors on
# a logarithmic scale. The seams lie where patch edges fall inside the image
# (on the image border the reference is zero-padded too, so there is no
# error there).

k = 24
figure, axes = plt.subplots(1, 5, figsize=(13, 3), layout="constrained")
axes[0].imshow(reference[0, :, :, k].T.numpy(), cmap="gray")
axes[0].set_title("whole-volume output")
largest = max(float(error.max()) for error in errors.values())
scale = LogNorm(vmin=1e-4, vmax=largest)  # zero errors are drawn black
colours = plt.get_cmap("magma").with_extremes(bad="black", under="black")
for ax, mode in zip(axes[1:], MODES):
    shown = ax.imshow(errors[mode][0, :, :, k].T.numpy(), cmap=colours, norm=scale)
    ax.set_title(f"|error|, {mode}")
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
figure.colorbar(shown, ax=axes[1:], shrink=0.8)

# %%
# Padding the border
# ------------------
# Without ``padding_mode`` the grid stays inside the image, so voxels on the
# border sit on the edge of their patch. With a ``padding_mode``, each axis is
# first padded by ``overlap // 2`` voxels, and border voxels get context like
# inner ones. The mode says what that context is: a constant, the edge
# value, a reflection, ... Here ``'reflect'`` mirrors the image, and the
# result equals the filter run on a mirror-padded whole volume (the ``LOCATION``
# of a border patch then starts below 0, in the image's own grid).

padded = tp.GridSampler(subject, PATCH_SIZE, OVERLAP, padding_mode="reflect")
print(f"no padding: {len(sampler)} patches | reflect: {len(padded)} patches, grid padding {padded.padding}")
print("first location with padding:", padded.locations[0].tolist())

mirrored = nn.functional.pad(subject["image"].data[None], [RADIUS] * 6, mode="reflect")
with torch.no_grad():
    mirror_reference = nn.functional.conv3d(mirrored, model.weight)[0]
for padding_mode in (None, "reflect"):
    stitched = tp.infer(
        model,
        subject,
        PATCH_SIZE,
        OVERLAP,
        overlap_mode="crop",
        padding_mode=padding_mode,
        image_name="image",
        progress=False,
    )
    print(
        f"padding_mode={padding_mode!s:8s} max |error| against the mirrored reference: "
        f"{(stitched.data - mirror_reference).abs().max():.1e}"
    )

figure, axes = plt.subplots(1, 2, figsize=(9, 4.5), layout="constrained")
plot_grid(subject, PATCH_SIZE, OVERLAP, index=k, image_name="image", ax=axes[0], title="padding_mode=None")
plot_grid(
    subject,
    PATCH_SIZE,
    OVERLAP,
    padding_mode="reflect",
    index=k,
    image_name="image",
    ax=axes[1],
    title="padding_mode='reflect'",
)
