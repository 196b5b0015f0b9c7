"""Tutorial 1: subjects, lazy images and random patches.

Makes two synthetic phantoms, writes them as NIfTI and NRRD files, reads them
back lazily (header first), checks the subject's consistency and draws
class-balanced patches. Runs in a few seconds on a CPU:

    python tutorials/01_subjects_and_patches.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torchpatch as tp
from torchpatch.datasets import make_phantom


def main(folder: Path) -> None:
    phantom = make_phantom((48, 40, 32), seed=0, spacing=(0.8, 0.8, 2.0))
    phantom["image"].save(folder / "t1.nii.gz")
    phantom["label"].save(folder / "seg.nrrd")  # NRRD is LPS on disk; read back as RAS+

    subject = tp.Subject(
        t1=tp.ScalarImage(folder / "t1.nii.gz"), seg=tp.LabelMap(folder / "seg.nrrd"), subject_id="demo"
    )
    print(subject.t1)  # shape, spacing, orientation and memory, before any voxel is read
    print("loaded?", subject.t1.is_loaded)
    subject.check_consistent_space()

    sampler = tp.LabelSampler((24, 24, 8), "seg", label_probabilities={0: 1, 1: 1, 2: 1})
    for patch in sampler(subject, num_patches=3, generator=0):
        centre = (patch[tp.LOCATION][:3] + patch[tp.LOCATION][3:]) // 2
        print("patch", tuple(patch[tp.LOCATION].tolist()), "centre class", int(subject.seg.data[(0, *centre.tolist())]))


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        main(Path(tmp))
