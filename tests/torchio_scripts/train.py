"""Patch-based training, written the way TorchIO 1.x's documentation writes it.

Usage: ``python train.py DATA_DIR OUT_DIR``, where ``DATA_DIR`` holds ``<name>_t1.nii.gz`` and
``<name>_seg.nii.gz`` pairs. Only the import line differs from the TorchIO original.
"""

import json
import sys
from pathlib import Path

import torch

import torchpatch as tio


def get_subjects(data_dir):
    subjects = []
    for image_path in sorted(data_dir.glob("*_t1.nii.gz")):
        name = image_path.name.split("_")[0]
        subject = tio.Subject(
            t1=tio.ScalarImage(image_path),
            label=tio.LabelMap(data_dir / f"{name}_seg.nii.gz"),
            name=name,
        )
        subjects.append(subject)
    return subjects


def get_model():
    return torch.nn.Sequential(
        torch.nn.Conv3d(1, 4, kernel_size=3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv3d(4, 1, kernel_size=1),
    )


def main():
    data_dir = Path(sys.argv[1])
    out_dir = Path(sys.argv[2])
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    subjects = get_subjects(data_dir)
    training_subjects = subjects[:-1]
    validation_subjects = subjects[-1:]

    preprocessing = tio.Compose(
        [
            tio.ToCanonical(),
            tio.Resample(1.5),
            tio.CropOrPad((24, 24, 24)),
            tio.ZNormalization(masking_method=tio.ZNormalization.mean),
            tio.RescaleIntensity(out_min_max=(-1, 1), percentiles=(0.5, 99.5)),
        ]
    )
    augmentation = tio.Compose(
        [
            tio.RandomFlip(axes=("LR",)),
            tio.OneOf(
                {
                    tio.RandomAffine(scales=(0.9, 1.1), degrees=10): 0.8,
                    tio.RandomElasticDeformation(max_displacement=3): 0.2,
                }
            ),
            tio.RandomNoise(std=(0, 0.1), p=0.5),
        ]
    )
    training_transform = tio.Compose([preprocessing, augmentation])

    training_set = tio.SubjectsDataset(training_subjects, transform=training_transform)
    validation_set = tio.SubjectsDataset(validation_subjects, transform=preprocessing)

    patch_size = 16
    samples_per_volume = 4
    max_queue_length = 16
    training_sampler = tio.LabelSampler(
        patch_size=patch_size,
        label_name="label",
        label_probabilities={0: 1, 1: 3},
    )
    validation_sampler = tio.UniformSampler(patch_size)

    patches_training_set = tio.Queue(
        subjects_dataset=training_set,
        max_length=max_queue_length,
        samples_per_volume=samples_per_volume,
        sampler=training_sampler,
        num_workers=1,
        shuffle_subjects=True,
        shuffle_patches=True,
    )
    patches_validation_set = tio.Queue(
        subjects_dataset=validation_set,
        max_length=max_queue_length,
        samples_per_volume=samples_per_volume,
        sampler=validation_sampler,
        num_workers=0,
        shuffle_subjects=False,
        shuffle_patches=False,
    )
    training_loader = tio.SubjectsLoader(patches_training_set, batch_size=4, num_workers=0)
    validation_loader = tio.SubjectsLoader(patches_validation_set, batch_size=4, num_workers=0)

    model = get_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    summary = {"training_losses": [], "validation_losses": []}
    for _epoch in range(2):
        model.train()
        for batch in training_loader:
            inputs = batch["t1"][tio.DATA]
            targets = batch["label"][tio.DATA].float()
            locations = batch[tio.LOCATION]
            optimizer.zero_grad()
            logits = model(inputs)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
            loss.backward()
            optimizer.step()
            summary["training_losses"].append(loss.item())
            summary["input_shape"] = list(inputs.shape)
            summary["input_dtype"] = str(inputs.dtype)
            summary["target_shape"] = list(targets.shape)
            summary["location_shape"] = list(locations.shape)
            summary["label_values"] = sorted(set(torch.unique(targets).tolist()))
            summary["names"] = sorted(set(summary.get("names", [])) | set(batch["name"]))
        model.eval()
        with torch.no_grad():
            for batch in validation_loader:
                logits = model(batch["t1"][tio.DATA])
                targets = batch["label"][tio.DATA].float()
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
                summary["validation_losses"].append(loss.item())

    preprocessed = validation_set[0]
    summary["preprocessed_shape"] = list(preprocessed["t1"].shape)
    summary["preprocessed_spacing"] = list(preprocessed["t1"].spacing)
    summary["preprocessed_orientation"] = list(preprocessed["t1"].orientation)
    summary["preprocessed_label_dtype"] = str(preprocessed["label"][tio.DATA].dtype)
    torch.save(model.state_dict(), out_dir / "model.pth")
    (out_dir / "train_summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
