"""
Exporting patches and counting with heatmaps
============================================

Some tools want a folder of small images rather than a few large ones: YOLO
and COCO trainers, Deep Plant Phenomics, a colleague's script.
:func:`~torchpatch.export_patches` cuts each subject into grid tiles and
writes every tile with its labels moved into the tile's coordinates: masks,
boxes, points, and density maps for counting.

A counting model learns a *density map* whose sum over any region is the
number of objects in it. :func:`~torchpatch.points_to_heatmap` draws one
Gaussian per point that sums to one, on the whole image, so a tile's share
of an object cut by the tile border is a fraction and the tiles' sums still
add up to the count.
"""

# %%
# A field of plants, marked by points
# -----------------------------------
# A synthetic top view (256 x 192 pixels, one channel): dark soil with
# bright plants, each marked by a point at its centre. Points are in pixel
# coordinates, ``x`` along ``I`` (the column), ``y`` along ``J``; a point
# ``p`` lies in pixel ``floor(p)``.

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import torchpatch as tp
from torchpatch.viz import plot_annotations, plot_slice

rng = np.random.default_rng(7)
WIDTH, HEIGHT, NUM_PLANTS = 256, 192, 45
centres = rng.uniform([4, 4], [WIDTH - 4, HEIGHT - 4], size=(NUM_PLANTS, 2))
x, y = np.meshgrid(np.arange(WIDTH) + 0.5, np.arange(HEIGHT) + 0.5, indexing="ij")
field = rng.normal(40, 8, size=(WIDTH, HEIGHT))
for cx, cy in centres:
    field += 160 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 3.0**2))
pixels = torch.from_numpy(field.clip(0, 255).astype(np.uint8))[None, :, :, None]  # (1, I, J, 1)

plants = tp.Points(centres, (WIDTH, HEIGHT))
subject = tp.Subject(photo=tp.ScalarImage(tensor=pixels), plants=plants, subject_id="field")
print(subject)
print(plants)

# %%
# The density map
# ---------------
# ``sigma`` is the Gaussian's standard deviation in pixels. Near the image
# border part of a Gaussian would fall outside; by default each point is
# renormalised so that it still sums to one, so the map sums to the count.

heatmap = tp.points_to_heatmap(plants, subject["photo"], sigma=4.0)
print("heatmap", heatmap.shape, heatmap.dtype, f"sums to {float(heatmap.data.sum()):.3f} for {len(plants)} plants")

# %%
# Export the tiles
# ----------------
# A non-overlapping grid of 64 x 64 tiles (``patch_size=64`` means
# ``(64, 64, 1)`` on a 2D image). With ``points_name`` each tile's points go
# to ``points.csv``; with ``heatmap_sigma`` each tile's share of the density
# map goes to ``heatmaps/``. ``manifest.json`` is written last and records
# every parameter and tile, so an interrupted export is never mistaken for a
# finished one, and a rerun with the same inputs reuses it.

temporary = tempfile.TemporaryDirectory()
output_dir = Path(temporary.name) / "field-tiles"
options = {"patch_size": 64, "image_name": "photo", "points_name": "plants", "heatmap_sigma": 4.0, "progress": False}
result = tp.export_patches(subject, output_dir=output_dir, **options)
print(f"{result.num_patches} tiles written, reused: {result.reused}")
for folder in sorted(p for p in output_dir.iterdir() if p.is_dir()):
    print(f"  {folder.name}/: {len(list(folder.iterdir()))} files, e.g. {sorted(folder.iterdir())[0].name}")
print("  and", ", ".join(sorted(p.name for p in output_dir.iterdir() if p.is_file())))
again = tp.export_patches(subject, output_dir=output_dir, **options)
print("second run reused the export:", again.reused)

# %%
# Counting, tile by tile
# ----------------------
# Each tile's heatmap is read back from disk; its sum is that tile's count
# (fractional where a plant straddles a border), and the sums add up to the
# number of plants. The manifest lists each tile's location and how many
# points fell inside it.

tiles = result.manifest["patches"]
heatmap_sums, point_counts, locations = [], [], []
for tile in tiles:
    tile_heatmap = tp.ScalarImage(output_dir / tile["heatmap"])
    heatmap_sums.append(float(tile_heatmap.data.sum()))
    point_counts.append(tile.get("points", 0))
    locations.append(tile["location"])
print("tile  location                    points  heatmap sum")
for tile, total, count in list(zip(tiles, heatmap_sums, point_counts))[:4]:
    print(f"{tile['index']:4d}  {tile['location']!s:26s}  {count:6d}  {total:11.2f}")
print(f"all {len(tiles)} tiles: {sum(point_counts)} points, heatmap sums add up to {sum(heatmap_sums):.3f}")

# %%
# Pictures
# --------
# The field with its points and the tile grid, the density map with each
# tile's sum, and the counts per tile.

figure, axes = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
plot_annotations(subject, points="plants", image_name="photo", ax=axes[0], title="plants and the 64 x 64 tiles")
plot_slice(heatmap, cmap="magma", ax=axes[1], title="density map (sigma = 4 px) and tile sums")
for ax in axes[:2]:
    for i0, j0, _, i1, j1, _ in locations:
        ax.add_patch(plt.Rectangle((i0, j0), i1 - i0, j1 - j0, fill=False, edgecolor="cyan", linewidth=1))
for (i0, j0, _, i1, j1, _), total in zip(locations, heatmap_sums):
    axes[1].text((i0 + i1) / 2, (j0 + j1) / 2, f"{total:.1f}", color="white", ha="center", va="center")
positions = np.arange(len(tiles))
axes[2].bar(positions - 0.2, point_counts, width=0.4, label="points in the tile")
axes[2].bar(positions + 0.2, heatmap_sums, width=0.4, label="sum of its heatmap")
axes[2].set_xlabel("tile")
axes[2].set_ylabel("plants")
axes[2].set_title("Counts per tile")
axes[2].legend()

temporary.cleanup()
