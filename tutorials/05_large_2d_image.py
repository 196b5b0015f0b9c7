"""
A large 2D image as a depth-one volume
======================================

Slides, aerial photographs and plant images are 2D, and often far larger
than a network's input. torchpatch treats a 2D image as a volume of depth
one, ``(C, I, J, 1)`` (``I`` is the column, ``x``; ``J`` the row, ``y``), so
every sampler, the grid, the aggregator and the annotations work on it
unchanged. An int patch size ``p`` on a 2D image means ``(p, p, 1)``.

This tutorial uses the aerial photograph ``OSBS_029.png`` from DeepForest
(400 x 400 pixels, MIT licence) when the repository's sibling folder
``shared/data`` holds it, and otherwise a synthetic stand-in made in code.
"""

# %%
# The image
# ---------

import sys
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle
from torch import nn

import torchpatch as tp
from torchpatch.viz import plot_grid, plot_slice

# The repository is the parent of this script's folder (sphinx-gallery runs
# scripts without ``__file__`` but with ``sys.argv[0]`` set to the script).
REPOSITORY = Path(sys.argv[0]).resolve().parents[1]
SAMPLE = REPOSITORY.parent / "shared" / "data" / "deepforest" / "OSBS_029.png"


def synthetic_aerial(size: int = 400, crowns: int = 60, seed: int = 0) -> torch.Tensor:
    """A (3, size, size, 1) uint8 picture: sandy ground with round green crowns."""
    rng = np.random.default_rng(seed)
    i, j = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    picture = np.empty((3, size, size), dtype=np.float32)
    picture[:] = np.array([150.0, 135.0, 100.0])[:, None, None]
    for _ in range(crowns):
        ci, cj, radius = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(8, 25)
        inside = (i - ci) ** 2 + (j - cj) ** 2 <= radius**2
        picture[:, inside] = rng.uniform([40, 80, 30], [70, 120, 50])[:, None]
    picture += rng.normal(0, 12, size=picture.shape)
    return torch.from_numpy(picture.clip(0, 255).astype(np.uint8))[..., None]


if SAMPLE.exists():
    photo = tp.ScalarImage(SAMPLE)
    print("using", SAMPLE.name)
else:
    photo = tp.ScalarImage(tensor=synthetic_aerial())
    print("shared/data not found: using a synthetic aerial image")
subject = tp.Subject(photo=photo)
print(photo)
print("2D?", subject.is_2d(), "| spatial shape", subject.spatial_shape)

# %%
# Random 2D patches
# -----------------
# ``UniformSampler(96)`` cuts ``(96, 96, 1)`` patches here; their
# ``LOCATION`` always spans ``k`` from 0 to 1. A loader stacks them into
# ``(B, 3, 96, 96, 1)`` batches; ``[..., 0]`` drops the depth for a 2D network.

sampler = tp.UniformSampler(96)
print("patch size on this image:", sampler.get_patch_size(subject.spatial_shape))
patches = list(sampler(subject, num_patches=6, generator=0))
for patch in patches[:3]:
    print("patch", patch["photo"].shape, "at", patch[tp.LOCATION].tolist())
batch = tp.collate_subjects(patches)
print("batch", tuple(batch["photo"][tp.DATA].shape), "-> 2D input", tuple(batch["photo"][tp.DATA][..., 0].shape))

# %%
# A 2D network on depth-one patches
# ---------------------------------
# Any 2D network runs on depth-one patches once the depth axis is dropped
# and restored. Our "network" maps greenness: the excess-green index
# ``2g - r - b`` of the chromatic coordinates (``g = G / (R + G + B)``...),
# smoothed by a 9 x 9 mean filter with zero padding, so its outputs within 4
# pixels of a patch edge differ from those on the whole image.


class Greenness(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.smooth = nn.Conv2d(1, 1, kernel_size=9, padding=4, bias=False)
        nn.init.constant_(self.smooth.weight, 1 / 81)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W)
        red, green, blue = (rgb / rgb.sum(dim=1, keepdim=True).clamp(min=1)).unbind(dim=1)
        return self.smooth((2 * green - red - blue)[:, None])


class OnDepthOne(nn.Module):
    """Run a 2D network on (B, C, I, J, 1) batches."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.network(batch[..., 0])[..., None]


model = OnDepthOne(Greenness()).eval()

# %%
# Grid inference
# --------------
# The grid takes ``patch_size=128`` as ``(128, 128, 1)`` and an int overlap
# ``32`` as ``(32, 32, 0)``: there is nothing to overlap along the depth.

grid = tp.GridSampler(subject, patch_size=128, patch_overlap=32)
print(f"{len(grid)} grid patches of {grid.patch_size}, overlap {grid.patch_overlap}")
greenness = tp.infer(model, subject, 128, 32, overlap_mode="crop", progress=False)
with torch.no_grad():
    whole = model(photo.data[None].float())[0]
print("output", greenness.shape, "| max |stitched - whole image|:", f"{(greenness.data - whole).abs().max():.1e}")

figure, axes = plt.subplots(1, 3, figsize=(14, 4.6), layout="constrained")
plot_slice(subject, ax=axes[0], title="6 random patches of (96, 96, 1)")
for number, patch in enumerate(patches):
    i0, j0, _, i1, j1, _ = patch[tp.LOCATION].tolist()
    axes[0].add_patch(Rectangle((i0, j0), i1 - i0, j1 - j0, fill=False, edgecolor=f"C{number}", linewidth=2))
plot_grid(subject, 128, 32, ax=axes[1])
plot_slice(greenness, cmap="viridis", ax=axes[2], title="greenness, stitched from the grid")
figure.colorbar(axes[2].images[0], ax=axes[2], shrink=0.8)

# %%
# Larger than memory
# ------------------
# A photograph tens of thousands of pixels a side need not be loaded whole:
# saved as uncompressed NIfTI (``.nii``) or ``.npy``, an image is read lazily
# and the grid reads one patch of bytes at a time. Here a 1600 x 1600 mosaic
# of the picture (16 copies) is written to a temporary folder and predicted
# without ever loading it.

with tempfile.TemporaryDirectory() as folder:
    mosaic_path = Path(folder) / "mosaic.nii"
    tp.ScalarImage(tensor=photo.data.repeat(1, 4, 4, 1), affine=photo.affine).save(mosaic_path)
    mosaic = tp.ScalarImage(mosaic_path)
    print(mosaic)
    output = tp.infer(
        model, mosaic, patch_size=256, patch_overlap=32, overlap_mode="crop", batch_size=8, progress=False
    )
    print("output", output.shape, "| mosaic loaded into memory?", mosaic.is_loaded)
    # The means differ a little: inside the mosaic, each copy's edges see
    # their neighbours' pixels where the picture alone sees zero padding.
    print("mean greenness: whole picture", f"{float(whole.mean()):.4f}", "| mosaic", f"{float(output.data.mean()):.4f}")
