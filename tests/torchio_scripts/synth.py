"""SynthSeg-style training on images made from label maps, written the way TorchIO 1.x's documentation writes it.

Usage: ``python synth.py DATA_DIR OUT_DIR``. Transforms of the script's own (TorchIO's base classes, changing
the subject they are given in place), images from label maps, a collate function that keeps each row's
history to undo it, TorchIO's small helpers and a PCA of a feature map. Only the import line differs from
the TorchIO original.
"""

import json
import sys
from pathlib import Path

import torch

import torchpatch as tio


class Gain(tio.IntensityTransform):
    """Multiply the scalar images by a gain (in place, as TorchIO transforms of one's own do)."""

    def __init__(self, gain, **kwargs):
        super().__init__(**kwargs)
        self.gain = gain
        self.args_names = ["gain"]

    def apply_transform(self, subject):
        for name, image in self.get_images_dict(subject).items():
            image.set_data(image.data * self.get_parameter(self.gain, name))
        return subject


class MinMax(tio.transforms.preprocessing.intensity.NormalizationTransform):
    """Map the masked voxels' range onto [0, 1]."""

    def apply_normalization(self, subject, image_name, mask):
        image = subject[image_name]
        inside = image.data[mask.expand_as(image.data)]
        image.set_data((image.data - inside.min()) / (inside.max() - inside.min()))


def main():
    data_dir = Path(sys.argv[1])
    out_dir = Path(sys.argv[2])
    out_dir.mkdir(parents=True, exist_ok=True)

    paths = sorted(data_dir.glob("sub*_seg.nii.gz"))
    subjects = [tio.Subject(seg=tio.LabelMap(path), name=tio.utils.get_stem(path)) for path in paths]
    dataset = tio.SubjectsDataset(subjects, transform=tio.Compose([tio.ToCanonical(), Gain(1.0)]))

    # The images are made from the labels: fixed tissues first, to compare, then random ones to train on.
    fixed = tio.LabelsToImage("seg", mean=[0.2, 0.8], std=[0.0, 0.0])
    synthesis = tio.Compose(
        [
            tio.RandomLabelsToImage("seg", image_key="t1"),
            tio.RandomBlur(std=(0.5, 1.0)),
            MinMax(masking_method="seg"),
            Gain(2.0),
            tio.RandomFlip(axes=(0,), flip_probability=1.0),
        ]
    )
    made = fixed(dataset[0])
    loader = tio.SubjectsLoader(
        tio.SubjectsDataset(subjects, transform=tio.Compose([tio.ToCanonical(), synthesis])),
        batch_size=2,
        collate_fn=tio.utils.history_collate,
    )
    model = torch.nn.Conv3d(1, 2, kernel_size=3, padding=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = []
    undone_equal = []
    for _ in range(2):
        for batch in loader:
            inputs = batch["t1"][tio.DATA].float()
            targets = batch["seg"][tio.DATA].long()[:, 0]
            loss = torch.nn.functional.cross_entropy(model(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            # Each row back as a subject that undoes its flip.
            for row in tio.utils.get_subjects_from_batch(batch):
                undone = row.apply_inverse_transform(warn=False)
                original = tio.ToCanonical()(subjects[paths.index(data_dir / f"{row['name']}.nii.gz")])
                undone_equal.append(bool(torch.equal(undone.seg.data, original.seg.data)))

    # The dataset's subjects are as they were: Gain changed copies, epoch after epoch.
    first = dataset[0].seg.data
    second = dataset[0].seg.data

    # A feature map of the made image, as three colour channels, and its slices as a GIF.
    with torch.no_grad():
        features = model(made.image_from_labels.data[None].float())[0].repeat(3, 1, 1, 1)
    embedding = tio.ScalarImage(tensor=features, affine=made.seg.affine)
    colours = tio.PCA(num_components=3)(embedding)
    colours.to_gif(axis=2, duration=1.0, output_path=out_dir / "colours.gif")

    summary = {
        "names": sorted(subject["name"] for subject in subjects),
        "made_values": sorted(set(made.image_from_labels.data.flatten().tolist())),
        "made_shape": list(made.image_from_labels.shape),
        "made_dtype": str(made.image_from_labels.data.dtype),
        "label_unchanged": bool(torch.equal(made.seg.data, dataset[0].seg.data)),
        "losses": losses,
        "batches": len(losses),
        "undone_equal": all(undone_equal) and len(undone_equal) == 2 * len(subjects),
        "dataset_unchanged": bool(torch.equal(first, second)),
        "pca_shape": list(colours.shape),
        "pca_range_ok": bool(0 <= colours.data.min() <= colours.data.max() <= 1),
        "gif_written": (out_dir / "colours.gif").stat().st_size > 0,
        "to_tuple": list(tio.utils.to_tuple(3, length=3)),
        "guess": tio.utils.guess_type("(1, 2.5)"),
    }
    (out_dir / "synth_summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
