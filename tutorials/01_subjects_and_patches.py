"""
Subjects, lazy images and random patches
========================================

This first tutorial makes a synthetic phantom, writes it to disk as a NIfTI
image and an NRRD label map, reads both back *lazily* (header first, voxels
only when needed), checks that they share one voxel grid, and draws patches
centred on each class in turn. It runs in a few seconds on a CPU::

    python tutorials/01_subjects_and_patches.py
"""

# %%
# A phantom saved in two formats
# ------------------------------
# :func:`torchpatch.datasets.make_phantom` builds a deterministic subject in
# code: a noisy body (label 0) with bright blobs (label 1) and dimmer blobs
# (label 2). We write the image as NIfTI and the labels as NRRD into a
# temporary folder; NRRD stores LPS coordinates on disk, and torchpatch reads
# every format into RAS+.

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

import torchpatch as tp
from torchpatch.datasets import make_phantom
from torchpatch.viz import plot_slice

temporary = tempfile.TemporaryDirectory()
folder = Path(temporary.name)

phantom = make_phantom((48, 40, 32), seed=0, spacing=(0.8, 0.8, 2.0))
phantom["image"].save(folder / "t1.nii.gz")
phantom["label"].save(folder / "seg.nrrd")

# %%
# Lazy images
# -----------
# An image built from a path reads only the header: shape, spacing and
# orientation are known before a single voxel is decoded.

subject = tp.Subject(
    t1=tp.ScalarImage(folder / "t1.nii.gz"),
    seg=tp.LabelMap(folder / "seg.nrrd"),
    subject_id="demo",
)
print(subject.t1)
print("loaded?", subject.t1.is_loaded)
print("label spacing (RAS+):", subject.seg.spacing, "orientation:", subject.seg.orientation)

# %%
# The two files must describe the same voxel grid (same shape and affine), or
# a patch of one would not hold the same region of the other. The check
# raises an error naming both images when they differ.

subject.check_consistent_space()
print("same grid:", subject.spatial_shape)

# %%
# Patches centred on each class
# -----------------------------
# :class:`~torchpatch.LabelSampler` picks the class of each patch centre with
# the given relative frequencies (here equal), then a voxel of that class.
# Every patch carries its ``LOCATION``: the half-open box
# ``(i0, j0, k0, i1, j1, k1)`` it was cut from, in the subject's voxel grid.

sampler = tp.LabelSampler((24, 24, 8), "seg", label_probabilities={0: 1, 1: 1, 2: 1})
patches = list(sampler(subject, num_patches=6, generator=0))
for patch in patches:
    location = patch[tp.LOCATION]
    centre = (location[:3] + location[3:]) // 2
    centre_class = int(subject.seg.data[(0, *centre.tolist())])
    print("patch", tuple(location.tolist()), "shape", patch.t1.shape, "centre class", centre_class)

# %%
# Where the patches fall
# ----------------------
# The axial slice through the middle of the volume with the labels over it,
# and the patches that cross that slice drawn as rectangles (voxel ``I``
# along x, ``J`` along y).

k = subject.spatial_shape[2] // 2
figure, ax = plt.subplots(figsize=(5, 4.5), layout="constrained")
plot_slice(subject, label="seg", axis=2, index=k, ax=ax, title=f"slice K = {k} and the patches crossing it")
for number, patch in enumerate(patches):
    i0, j0, k0, i1, j1, k1 = patch[tp.LOCATION].tolist()
    if k0 <= k < k1:
        ax.add_patch(Rectangle((i0, j0), i1 - i0, j1 - j0, fill=False, edgecolor=f"C{number}", linewidth=2))

# %%
# The temporary folder (and the files in it) goes away at the end.

temporary.cleanup()
