"""The Queue's producer and the decode-once cache: entries written by workers are read while they wait."""

from __future__ import annotations

# The worker tests' file subjects (tests/queue is on sys.path while pytest collects it).
from test_worker_buffers import file_subjects

from torchpatch import Queue, SubjectsDataset, SubjectsLoader, UniformSampler
from torchpatch.cache import SubjectCache


def test_entries_written_by_workers_are_read_during_that_epoch_not_the_next(tmp_path, monkeypatch):
    parsed = []  # entries parsed in this process (workers parse in theirs)
    parse = SubjectCache._parse
    monkeypatch.setattr(SubjectCache, "_parse", lambda self, folder: parsed.append(folder.name) or parse(self, folder))
    dataset = SubjectsDataset(file_subjects(tmp_path, 3, (24, 20, 16)), cache_dir=tmp_path / "cache")
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
