"""The Queue's producer and the decode-once cache: entries written by workers are read while they wait."""

from __future__ import annotations

import numpy as np

from torchpatch import LabelMap, Queue, ScalarImage, Subject, SubjectsDataset, SubjectsLoader, UniformSampler
from torchpatch.cache import SubjectCache
from torchpatch.io.nifti import write_nifti


def file_subjects(folder, count=3):
    rng = np.random.default_rng(0)
    subjects = []
    for index in range(count):
        image, label = folder / f"{index}_t1.nii.gz", folder / f"{index}_seg.nii.gz"
        write_nifti(rng.integers(-500, 500, (1, 24, 20, 16), dtype=np.int16), np.eye(4), image)
        write_nifti(rng.integers(0, 3, (1, 24, 20, 16), dtype=np.uint8), np.eye(4), label)
        subjects.append(Subject(t1=ScalarImage(image), seg=LabelMap(label), subject_id=f"s{index}"))
    return subjects


def test_entries_written_by_workers_are_read_during_that_epoch_not_the_next(tmp_path, monkeypatch):
    parsed = []  # entries parsed in this process (workers parse in theirs)
    parse = SubjectCache._parse
    monkeypatch.setattr(SubjectCache, "_parse", lambda self, folder: parsed.append(folder.name) or parse(self, folder))
    dataset = SubjectsDataset(file_subjects(tmp_path), cache_dir=tmp_path / "cache")
    queue = Queue(dataset, max_length=6, samples_per_volume=2, sampler=UniformSampler(8), num_workers=1, seed=0)
    try:
        loader = SubjectsLoader(queue, batch_size=2)
        first = [batch["t1"]["data"].clone() for batch in loader]  # workers decode and write the entries
        assert len(first) == 3 and len(set(parsed)) == 3  # each read here while the workers worked
        count = len(parsed)
        second = [batch["t1"]["data"] for batch in loader]  # cut by this process's threads
        assert len(second) == 3 and len(parsed) == count  # nothing left to read in the loop
    finally:
        queue.close()
