"""Patches of a large 2D PNG, written the way TorchIO 1.x's documentation writes it.

Usage: ``python two_d.py PNG_PATH OUT_DIR``. TorchIO reads a 2D image as a 4D tensor of shape
(channels, width, height, 1), so 2D patches have size (w, h, 1).
Only the import line differs from the TorchIO original.
"""

import json
import sys
from pathlib import Path

import torch

import torchpatch as tio


def main():
    png_path = Path(sys.argv[1])
    out_dir = Path(sys.argv[2])
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    image = tio.ScalarImage(png_path)
    subject = tio.Subject(image=image)
    summary = {
        "image_shape": list(image.shape),
        "image_dtype": str(image.data.dtype),
        "image_spacing": list(image.spacing),
    }

    transform = tio.Compose(
        [
            tio.RescaleIntensity(out_min_max=(0, 1)),
            tio.RandomFlip(axes=(0, 1), flip_probability=0.5),
        ]
    )
    dataset = tio.SubjectsDataset([subject], transform=transform)
    patch_size = 64, 64, 1
    sampler = tio.UniformSampler(patch_size)
    queue = tio.Queue(dataset, max_length=16, samples_per_volume=8, sampler=sampler, num_workers=0)
    loader = tio.SubjectsLoader(queue, batch_size=4)

    model = torch.nn.Conv2d(3, 1, kernel_size=3, padding=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for _epoch in range(2):
        for batch in loader:
            inputs = batch["image"][tio.DATA].squeeze(-1)  # (B, C, W, H)
            summary["batch_shape"] = list(batch["image"][tio.DATA].shape)
            summary["batch_min"] = min(summary.get("batch_min", 1.0), inputs.min().item())
            summary["batch_max"] = max(summary.get("batch_max", 0.0), inputs.max().item())
            summary["location_shape"] = list(batch[tio.LOCATION].shape)
            optimizer.zero_grad()
            loss = model(inputs).pow(2).mean()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    summary["losses"] = losses

    # Stitch the whole image back from a grid of 2D patches.
    rescaled = tio.RescaleIntensity(out_min_max=(0, 1))(subject)
    grid_sampler = tio.GridSampler(rescaled, patch_size, patch_overlap=(8, 8, 0))
    aggregator = tio.GridAggregator(grid_sampler)
    for patches_batch in tio.SubjectsLoader(grid_sampler, batch_size=16):
        aggregator.add_batch(patches_batch["image"][tio.DATA], patches_batch[tio.LOCATION])
    output = aggregator.get_output_tensor()
    summary["num_grid_patches"] = len(grid_sampler)
    summary["output_shape"] = list(output.shape)
    summary["max_stitch_error"] = (output - rescaled["image"][tio.DATA]).abs().max().item()
    tio.ScalarImage(tensor=output, affine=image.affine).save(out_dir / "stitched.nii.gz")
    (out_dir / "two_d_summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
