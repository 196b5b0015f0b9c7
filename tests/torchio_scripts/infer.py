"""Whole-volume inference with a patch grid, written the way TorchIO 1.x's documentation writes it.

Usage: ``python infer.py IMAGE_PATH OUT_DIR``. The model is a fixed filter (no training), so the
prediction depends only on the image, the preprocessing, the grid and the stitching.
Only the import line differs from the TorchIO original.
"""

import json
import sys
from pathlib import Path

import torch

import torchpatch as tio


def get_model():
    # Two output channels: "background" (minus the local mean) and "foreground" (the local mean).
    model = torch.nn.Conv3d(1, 2, kernel_size=3, padding=1, bias=False)
    with torch.no_grad():
        model.weight[0].fill_(-1 / 27)
        model.weight[1].fill_(1 / 27)
    return model.eval()


def main():
    image_path = Path(sys.argv[1])
    out_dir = Path(sys.argv[2])
    out_dir.mkdir(parents=True, exist_ok=True)

    subject = tio.Subject(t1=tio.ScalarImage(image_path))
    preprocessing = tio.Compose(
        [
            tio.ToCanonical(),
            tio.ZNormalization(),
        ]
    )
    subject = preprocessing(subject)

    patch_size = 16, 16, 12
    patch_overlap = 4, 4, 4
    grid_sampler = tio.inference.GridSampler(subject, patch_size, patch_overlap)
    patch_loader = tio.SubjectsLoader(grid_sampler, batch_size=4)
    aggregator = tio.inference.GridAggregator(grid_sampler)
    probabilities_aggregator = tio.inference.GridAggregator(grid_sampler, overlap_mode="average")

    model = get_model()
    num_patches = 0
    foreground_patches = 0
    with torch.no_grad():
        for patches_batch in patch_loader:
            input_tensor = patches_batch["t1"][tio.DATA]
            locations = patches_batch[tio.LOCATION]
            logits = model(input_tensor)
            labels = logits.argmax(dim=tio.CHANNELS_DIMENSION, keepdim=True)
            aggregator.add_batch(labels, locations)
            probabilities_aggregator.add_batch(logits.softmax(dim=tio.CHANNELS_DIMENSION), locations)
            num_patches += len(input_tensor)
            # The batch's patches as subjects, each with its prediction (to inspect or save them one by one).
            patches = tio.utils.get_subjects_from_batch(patches_batch)
            tio.utils.add_images_from_batch(patches, labels, tio.LabelMap)
            foreground_patches += sum(patch.prediction.count_nonzero() > 0 for patch in patches)

    output_tensor = aggregator.get_output_tensor()
    probabilities = probabilities_aggregator.get_output_tensor()
    prediction = tio.LabelMap(tensor=output_tensor, affine=subject.t1.affine)
    prediction.save(out_dir / "prediction.nii.gz")

    # Test-time augmentation: predict the flipped volume whole, then flip the prediction back.
    flip = tio.Flip(axes=(0,))
    flipped = flip(subject)
    with torch.no_grad():
        flipped_logits = model(flipped.t1.data[None])[0]
    flipped_prediction = tio.Subject(
        t1=flipped.t1, prediction=tio.LabelMap(tensor=flipped_logits.argmax(0, keepdim=True), affine=flipped.t1.affine)
    )
    restored = flip.inverse()(flipped_prediction).prediction
    with torch.no_grad():
        whole = model(subject.t1.data[None])[0].argmax(0, keepdim=True)

    summary = {
        "num_patches": num_patches,
        "num_grid_patches": len(grid_sampler),
        "output_shape": list(output_tensor.shape),
        "probabilities_shape": list(probabilities.shape),
        "probabilities_sum_min": probabilities.sum(dim=0).min().item(),
        "probabilities_sum_max": probabilities.sum(dim=0).max().item(),
        "foreground_fraction": output_tensor.float().mean().item(),
        "foreground_patches": int(foreground_patches),
        "flip_is_invertible": flip.is_invertible(),
        "tta_agreement": (restored.data == whole).float().mean().item(),
        "orientation": prediction.orientation_str,
    }
    (out_dir / "infer_summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
