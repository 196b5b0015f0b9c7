"""Queue workers keep the readers' recycled buffers only while subjects are decoded again (queue/cutting.py)."""

from __future__ import annotations

import numpy as np
import pytest

from torchpatch import LabelMap, ScalarImage, Subject, SubjectsDataset, UniformSampler
from torchpatch.io.buffers import RECYCLER
from torchpatch.io.nifti import write_nifti
from torchpatch.queue.cutting import SubjectPatches
from torchpatch.queue.plan import Task


def file_subjects(folder, count=2, shape=(96, 80, 72)):
    """``count`` subjects of an int16 image and a uint8 label map, written as ``.nii.gz`` in ``folder``."""
    rng = np.random.default_rng(0)
    subjects = []
    for index in range(count):
        image, label = folder / f"{index}_t1.nii.gz", folder / f"{index}_seg.nii.gz"
        write_nifti(rng.integers(-500, 500, (1, *shape), dtype=np.int16), np.eye(4), image)
        write_nifti(rng.integers(0, 3, (1, *shape), dtype=np.uint8), np.eye(4), label)
        subjects.append(Subject(t1=ScalarImage(image), seg=LabelMap(label), subject_id=f"s{index}"))
    return subjects


@pytest.mark.parametrize("cached", [False, True])
def test_buffers_are_kept_only_without_the_cache(tmp_path, cached):
    options = {"cache_dir": tmp_path / "cache"} if cached else {}
    dataset = SubjectsDataset(file_subjects(tmp_path), **options)
    worker = SubjectPatches(dataset, UniformSampler(16), None)
    RECYCLER.clear()
    for index in range(2):
        patches = worker[Task(index, seed=index, num_patches=3)]
        assert len(patches) == 3
    # Without the cache the next epoch decodes these files again into the kept buffers;
    # with it, nothing is decoded again and nothing is kept.
    assert ("0 buffers" in repr(RECYCLER)) == cached
