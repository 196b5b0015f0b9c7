"""
Sliced detection and merging boxes
==================================

A detector trained on small crops misses small objects in a large image, and
a large image may not fit through it at once. Sliced detection runs the
detector on the overlapping patches of a grid, shifts each patch's boxes to
image coordinates, and merges the copies of every object that several
patches saw (:func:`~torchpatch.sliced_detection`). The hard cases are
objects cut by a patch edge: each patch reports its own piece.

This tutorial uses the tree crowns annotated on DeepForest's aerial
photograph ``OSBS_029.png`` (MIT licence) when the repository's sibling
folder ``shared/data`` holds it, and synthetic crowns otherwise.
"""

# %%
# Image and annotated crowns
# --------------------------
# DeepForest's CSV gives one box per crown, ``xmin, ymin, xmax, ymax`` in
# pixels with ``x`` the column: the ``'xyxy'`` format of
# :class:`~torchpatch.BoundingBoxes` on a depth-one image ``(C, I, J, 1)``.

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import torchpatch as tp
from torchpatch.annotations_io import read_csv_boxes
from torchpatch.inference.merge import box_iou, nmm, nms
from torchpatch.viz import plot_annotations, plot_grid

# The repository is the parent of this script's folder (sphinx-gallery runs
# scripts without ``__file__`` but with ``sys.argv[0]`` set to the script).
REPOSITORY = Path(sys.argv[0]).resolve().parents[1]
FOLDER = REPOSITORY.parent / "shared" / "data" / "deepforest"


def synthetic_crowns(size: int = 400, count: int = 60, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A (3, size, size, 1) uint8 picture of round green crowns on sand, and their (N, 4) boxes."""
    rng = np.random.default_rng(seed)
    i, j = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    picture = np.empty((3, size, size), dtype=np.float32)
    picture[:] = np.array([150.0, 135.0, 100.0])[:, None, None]
    boxes = []
    for _ in range(count):
        ci, cj, radius = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(8, 30)
        picture[:, (i - ci) ** 2 + (j - cj) ** 2 <= radius**2] = rng.uniform([40, 80, 30], [70, 120, 50])[:, None]
        boxes.append([max(ci - radius, 0), max(cj - radius, 0), min(ci + radius, size), min(cj + radius, size)])
    picture += rng.normal(0, 12, size=picture.shape)
    return torch.from_numpy(picture.clip(0, 255).astype(np.uint8))[..., None], torch.tensor(boxes)


if (FOLDER / "OSBS_029.png").exists():
    photo = tp.ScalarImage(FOLDER / "OSBS_029.png")
    crowns = read_csv_boxes(FOLDER / "OSBS_029.csv", photo, image="OSBS_029.png")
    print("using OSBS_029.png and its", len(crowns), "annotated crowns")
else:
    pixels, corners = synthetic_crowns()
    photo = tp.ScalarImage(tensor=pixels)
    crowns = tp.BoundingBoxes(corners, "xyxy", photo.spatial_shape)
    print("shared/data not found: using", len(crowns), "synthetic crowns")
sizes = crowns.sizes()
print(f"image {photo.shape}; crowns {sizes.min():.0f} to {sizes.max():.0f} pixels wide")

# %%
# A stand-in detector
# -------------------
# We have no trained detector here, so we simulate one that behaves like a
# real one at patch edges: it sees only its patch, and reports each crown
# that shows in it, *clipped to the patch*, with jittered corners and a
# score that grows with the visible part of the crown (it skips crowns less
# than a quarter visible). It finds out where its patch lies from two extra
# input channels holding each pixel's ``i`` and ``j``.
#
# A model function takes a batch ``(B, C, 128, 128, 1)`` and returns one
# ``(boxes, scores, classes)`` per patch, boxes in patch coordinates.

PATCH_SIZE, OVERLAP = 128, 48
rng = torch.Generator().manual_seed(0)
shape = photo.spatial_shape
i_index, j_index = torch.meshgrid(torch.arange(shape[0]), torch.arange(shape[1]), indexing="ij")
detector_input = torch.cat([photo.data.float(), i_index[None, ..., None], j_index[None, ..., None]])


def simulated_detector(batch: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    results = []
    for patch in batch:
        corner = torch.stack([patch[3, 0, 0, 0], patch[4, 0, 0, 0]])  # (i0, j0) of this patch
        box = crowns.data - corner.repeat(2)  # crowns in patch coordinates
        clipped = box.clamp(0, PATCH_SIZE)
        visible = (clipped[:, 2:] - clipped[:, :2]).clamp(min=0).prod(1) / (box[:, 2:] - box[:, :2]).prod(1)
        seen = visible >= 0.25
        jitter = torch.randn(int(seen.sum()), 4, generator=rng) * 1.5
        found = (clipped[seen] + jitter).clamp(0, PATCH_SIZE)
        score = 0.55 + 0.4 * visible[seen] + 0.05 * torch.rand(int(seen.sum()), generator=rng)
        proper = (found[:, 2:] > found[:, :2]).all(dim=1)  # jitter could flip a thin piece
        results.append((found[proper], score[proper], torch.zeros(int(proper.sum()), dtype=torch.long)))
    return results


# %%
# Every box of every patch
# ------------------------
# ``method=None`` and ``drop_cut_boxes=False`` return the raw boxes, shifted
# to image coordinates: each crown comes back once per patch that shows it,
# whole or in pieces.

raw = tp.sliced_detection(
    simulated_detector, detector_input, PATCH_SIZE, OVERLAP, method=None, drop_cut_boxes=False, progress=False
)
print(f"{len(raw)} raw boxes from {len(tp.inference.patch_corners(shape, (128, 128, 1), (48, 48, 0)))} patches")

# %%
# Merging
# -------
# - :func:`~torchpatch.inference.merge.nms` over IoU keeps the best box of
#   each group that overlaps by more than the threshold. A piece of a crown
#   has a small IoU with the whole crown, so pieces survive as duplicates.
# - :func:`~torchpatch.inference.merge.nmm` over IoS (intersection over the
#   smaller box) joins every chain of matching boxes into their union: pieces
#   join their crown, but neighbouring crowns that overlap can chain together.
# - :func:`~torchpatch.sliced_detection` by default first drops each box cut
#   by an inner patch edge when another patch saw the crown whole, then runs
#   greedy NMM over IoS on the rest (the defaults of SAHI).

kept = nms(raw.boxes, raw.scores, raw.classes, threshold=0.5, metric="iou")
after_nms = raw.boxes[kept]
after_nmm = nmm(raw.boxes, raw.scores, raw.classes, threshold=0.5, metric="ios").boxes
sliced = tp.sliced_detection(simulated_detector, detector_input, PATCH_SIZE, OVERLAP, progress=False).boxes


def match(found: torch.Tensor) -> str:
    """How many boxes, and how well they match the crowns (IoU of at least 0.5)."""
    iou = box_iou(found, crowns.data)
    recall = float((iou.amax(dim=0) >= 0.5).float().mean())
    precision = float((iou.amax(dim=1) >= 0.5).float().mean())
    return f"{len(found):4d} boxes, recall {recall:.0%}, precision {precision:.0%}"


results = {
    "annotated crowns": crowns.data,
    "raw (no merging)": raw.boxes,
    "NMS, IoU > 0.5": after_nms,
    "NMM, IoS > 0.5": after_nmm,
    "sliced_detection default": sliced,
}
for name, found in results.items():
    print(f"{name:25s} {match(found)}")

# %%
# Before and after merging
# ------------------------
# The last panel shows the patch grid: pieces lie along its inner edges.
# Where annotated crowns overlap each other by more than the threshold (the
# synthetic crowns do, being placed at random), merging also joins distinct
# crowns: the threshold and the metric trade duplicates against such joins.

figure, axes = plt.subplots(2, 3, figsize=(13, 9), layout="constrained")
for ax, (name, found) in zip(axes.flat, results.items()):
    plot_annotations(photo, tp.BoundingBoxes(found, "xyxy", shape), ax=ax, linewidth=1, title=f"{name}: {len(found)}")
plot_grid(photo, PATCH_SIZE, OVERLAP, ax=axes.flat[5], linewidth=2, title="the 25 patches")
