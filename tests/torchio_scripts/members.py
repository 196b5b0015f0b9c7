"""Training and inference leaning on the members of TorchIO 1.x's classes, written as TorchIO's documentation does.

Usage: ``python members.py DATA_DIR OUT_DIR``. A random transform of the script's own built on TorchIO's
``Transform`` helpers, a ``WeightedSampler`` whose probability map the script computes, test-time
augmentation keeping only the intensity transforms (``isinstance``), TorchIO's image and subject members,
the queue's pool and the aggregator's keyword arguments. Only the import line differs from the TorchIO
original.
"""

import json
import sys
from pathlib import Path

import SimpleITK as sitk
import torch

import torchpatch as tio


class RandomContrast(tio.transforms.augmentation.RandomTransform, tio.IntensityTransform):
    """Stretch the intensities around their mean by a random factor, inside an optional mask."""

    def __init__(self, factor=0.3, masking_method=None, **kwargs):
        super().__init__(**kwargs)
        self.factor_range = self.parse_params(factor, 1, "factor", min_constraint=0)[:2]
        self.masking_method = masking_method
        self.args_names = ["factor_range", "masking_method"]

    def apply_transform(self, subject):
        factor = self.sample_uniform(*self.factor_range)
        for image in self.get_images(subject):
            mask = self.get_mask_from_masking_method(self.masking_method, subject, image.data)
            mean = image.data[mask].float().mean()
            image.set_data(torch.where(mask, (image.data - mean) * factor + mean, image.data))
        return subject


class LesionSampler(tio.WeightedSampler):
    """Patches centred mostly on the lesion, sometimes on the rest of the head."""

    def get_probability_map(self, subject):
        return subject.seg.data.float() * 9 + 1


def main(data_dir, out_dir):
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    subjects = [
        tio.Subject(
            t1=tio.ScalarImage(data_dir / f"sub{index}_t1.nii.gz"),
            seg=tio.LabelMap(data_dir / f"sub{index}_seg.nii.gz"),
            name=f"sub{index}",
        )
        for index in range(3)
    ]
    summary = {}
    first = subjects[0]

    # Image and subject members.
    summary["axis_L"] = int(first.t1.axis_name_to_index("L"))
    summary["axis_Superior"] = int(first.t1.axis_name_to_index("Superior"))
    summary["flip_A"] = tio.ScalarImage.flip_axis("A")
    tensor, affine = first.t1.read_and_check(data_dir / "sub0_t1.nii.gz")
    summary["read_shape"] = list(tensor.shape)
    summary["read_origin"] = [float(value) for value in affine[:3, 3]]
    summary["kinds"] = [type(first.get_scalar_image("t1")).__name__, type(first.get_label_map("seg")).__name__]
    first.load()
    first.t1.update(note="reviewed")
    summary["note"] = first.t1["note"]
    summary["copy_keys"] = sorted(key for key in first.t1.copy() if key in ("affine", "data", "note", "type"))

    # The transform of the script's own: TorchIO's helpers.
    contrast = RandomContrast(factor=(0.8, 1.2), masking_method="seg")
    summary["factor_range"] = list(contrast.factor_range)
    summary["contrast_probability"] = contrast.probability
    summary["is_intensity"] = isinstance(contrast, tio.IntensityTransform)
    torch.manual_seed(0)
    draws = [contrast.sample_uniform(*contrast.factor_range) for _ in range(3)]
    summary["draws"] = draws
    summary["bounds"] = [int(value) for value in tio.Transform.parse_bounds((1, 2, 3))]
    summary["anterior_voxels"] = int(tio.Transform.get_mask_from_anatomical_label("Anterior", first.t1.data).sum())

    # Training: augmentation, a sampler of the script's own, the queue's pool.
    augment = tio.Compose([tio.RandomFlip(axes=(0,)), tio.RandomAffine(degrees=5), contrast, tio.RandomNoise(std=5)])
    preprocess = tio.Compose([tio.ToCanonical(), tio.ZNormalization(masking_method=tio.ZNormalization.mean)])
    dataset = tio.SubjectsDataset(subjects, transform=tio.Compose([preprocess, augment]))
    sampler = LesionSampler(patch_size=12, probability_map="seg")
    queue = tio.Queue(dataset, max_length=12, samples_per_volume=4, sampler=sampler, num_workers=0)
    loader = tio.SubjectsLoader(queue, batch_size=4)
    model = torch.nn.Conv3d(1, 2, 3, padding=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    losses, waiting = [], []
    for batch in loader:
        logits = model(batch["t1"][tio.DATA].float())
        loss = torch.nn.functional.cross_entropy(logits, batch["seg"][tio.DATA][:, 0].long())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        waiting.append(len(queue.patches_list))
    summary["losses"] = losses
    summary["patches_waiting"] = waiting

    # The sampler's own map: how often patches are centred on the lesion (10 times the weight of the rest).
    torch.manual_seed(1)
    canonical = preprocess(first)
    locations = [patch[tio.LOCATION] for patch, _ in zip(sampler(canonical), range(300))]
    lesion = canonical.seg.data[0]
    centres = [[int(i) + 6, int(j) + 6, int(k) + 6] for i, j, k in (location[:3].tolist() for location in locations)]
    summary["lesion_fraction"] = sum(int(lesion[i, j, k]) for i, j, k in centres) / len(centres)
    valid = lesion[6:-5, 6:-5, 6:-5].float()  # the centres a 12-voxel patch can have
    summary["expected_fraction"] = float((valid * 10).sum() / (valid * 9 + 1).sum())
    summary["locations_inside"] = all(
        min(location[:3].tolist()) >= 0 and all(e <= s for e, s in zip(location[3:].tolist(), lesion.shape))
        for location in locations
    )

    # Test-time augmentation: only the intensity transforms of the training pipeline.
    intensity = [t for t in augment.transforms if isinstance(t, tio.IntensityTransform)]
    summary["tta_kept"] = [type(t).__name__ for t in intensity]
    summary["tta_spatial"] = [type(t).__name__ for t in augment.transforms if isinstance(t, tio.SpatialTransform)]

    # History: what was applied to a subject.
    flipped = tio.Flip(axes=(0,))(first)
    summary["history_length"] = len(flipped.history)
    summary["flip_config"] = tio.Flip(axes=(0,)).to_hydra_config()["_target_"].rsplit(".", 1)[-1]

    # Grid inference with the aggregator's keyword arguments.
    grid = tio.GridSampler(canonical, patch_size=12, patch_overlap=4)
    aggregator = tio.GridAggregator(grid, overlap_mode="average")
    for batch in tio.SubjectsLoader(grid, batch_size=8):
        aggregator.add_batch(batch_tensor=batch["t1"][tio.DATA].float(), locations=batch[tio.LOCATION])
    stitched = aggregator.get_output_tensor()
    summary["stitch_error"] = float((stitched - canonical.t1.data.float()).abs().max())
    summary["patch_overlap"] = [int(value) for value in aggregator.patch_overlap]

    # A 2D slice saved as a 2D file.
    slice_image = tio.ScalarImage(tensor=canonical.t1.data[..., 10:11].float(), affine=canonical.t1.affine)
    slice_image.save(out_dir / "slice.nrrd", squeeze=True)
    summary["slice_dimension"] = sitk.ReadImage(str(out_dir / "slice.nrrd")).GetDimension()

    (out_dir / "members_summary.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    main(*sys.argv[1:3])
