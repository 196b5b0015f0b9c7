"""The Queue's TorchIO-named figures: num_subjects, num_patches, get_max_memory(_pretty)."""

from __future__ import annotations

import pytest
import torch

from torchpatch import LabelMap, Queue, ScalarImage, Subject, SubjectsDataset, SubjectsLoader, UniformSampler


def _dataset(count: int = 3) -> SubjectsDataset:
    return SubjectsDataset(
        [
            Subject(
                t1=ScalarImage(tensor=torch.rand(2, 12, 12, 12)),
                seg=LabelMap(tensor=torch.zeros(1, 12, 12, 12, dtype=torch.uint8)),
            )
            for _ in range(count)
        ]
    )


def test_max_memory_counts_each_image_s_channels_and_dtype() -> None:
    with Queue(_dataset(), 10, 2, UniformSampler(4), start_background=False) as queue:
        # 10 patches of 4^3 voxels: t1 2 channels of 4 bytes, seg 1 of 1 byte.
        assert queue.get_max_memory() == 10 * 64 * (2 * 4 + 1)
        assert queue.get_max_memory_pretty() == "5.6 KiB"
        bigger = Subject(t1=ScalarImage(tensor=torch.rand(1, 400, 400, 400)))
        assert queue.get_max_memory(bigger) == 10 * 64 * 4
    with Queue(_dataset(), 2, 2, UniformSampler((1, 1, 2)), start_background=False) as queue:
        assert queue.get_max_memory_pretty() == "36 Bytes"
    with Queue(_dataset(), 4096, 2, UniformSampler(64), start_background=False) as queue:
        assert queue.get_max_memory_pretty() == "9.0 GiB"


def test_subjects_and_patches_of_an_epoch() -> None:
    with Queue(_dataset(), 4, 2, UniformSampler(4), num_workers=0, seed=0) as queue:
        assert queue.num_subjects == 3 and queue.num_patches == 0
        batches = list(SubjectsLoader(queue, batch_size=2))
        assert sum(len(batch["t1"]["data"]) for batch in batches) == 6 and queue.num_patches == 0
    with Queue(_dataset(), 4, 2, UniformSampler(4), subject_sampler=[0, 2], start_background=False) as queue:
        assert queue.num_subjects == 2
    with (
        Queue(_dataset(), 4, 2, UniformSampler(4), subject_sampler=iter([0, 1]), start_background=False) as queue,
        pytest.raises(ValueError, match="has no length"),
    ):
        _ = queue.num_subjects


def test_same_max_memory_as_torchio_for_float32_images() -> None:
    # TorchIO counts 4 bytes a voxel whatever the dtype: float32 images give the same bytes.
    tio = pytest.importorskip("torchio")
    data = torch.rand(2, 12, 12, 12)
    theirs = tio.Queue(
        tio.SubjectsDataset([tio.Subject(t1=tio.ScalarImage(tensor=data))]), 10, 2, tio.UniformSampler(4)
    )
    mine = SubjectsDataset([Subject(t1=ScalarImage(tensor=data))])
    with Queue(mine, 10, 2, UniformSampler(4), start_background=False) as queue:
        assert queue.get_max_memory() == theirs.get_max_memory() == 5120
        assert queue.get_max_memory_pretty() == theirs.get_max_memory_pretty() == "5.0 KiB"
