"""Collation into plain dict batches, in-process and in spawned workers."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from torchpatch import (
    AFFINE,
    DATA,
    INTENSITY,
    LABEL,
    LOCATION,
    PATH,
    STEM,
    TYPE,
    LabelMap,
    ScalarImage,
    Subject,
    SubjectsDataset,
    SubjectsLoader,
    collate_subjects,
    io,
    stacked,
)
from torchpatch.loader import empty_batch


def make_patch(index: int, shape: tuple[int, int, int, int] = (1, 4, 4, 2)) -> Subject:
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    affine[:3, 3] = (index, 0.0, 0.0)
    return Subject(
        t1=ScalarImage(tensor=torch.full(shape, float(index)), affine=affine),
        seg=LabelMap(tensor=torch.full(shape, index, dtype=torch.uint8), affine=affine),
        subject_id=f"sub-{index}",
        age=30 + index,
        weight=0.5 * index,
        location=(index, 0, 0, index + 4, 4, 2),
    )


def test_collate_stacks_images_into_batch_dimension():
    batch = collate_subjects([make_patch(i) for i in range(3)])
    assert batch["t1"][DATA].shape == (3, 1, 4, 4, 2)
    assert batch["t1"][DATA].dtype == torch.float32
    assert batch["seg"][DATA].dtype == torch.uint8
    assert batch["t1"][DATA][:, 0, 0, 0, 0].tolist() == [0.0, 1.0, 2.0]
    assert batch["t1"][AFFINE].shape == (3, 4, 4)
    assert batch["t1"][AFFINE].dtype == torch.float64
    assert batch["t1"][AFFINE][:, 0, 3].tolist() == [0.0, 1.0, 2.0]
    assert batch["t1"][PATH] == [None, None, None]
    assert batch["t1"][STEM] == [None, None, None]
    assert batch["t1"][TYPE] == [INTENSITY] * 3
    assert batch["seg"][TYPE] == [LABEL] * 3


def test_collate_turns_numbers_into_tensors_and_strings_into_lists():
    batch = collate_subjects([make_patch(i) for i in range(2)])
    assert isinstance(batch["age"], torch.Tensor)
    assert batch["age"].tolist() == [30, 31]
    assert batch["weight"].dtype == torch.float32
    assert batch["weight"].tolist() == [0.0, 0.5]
    assert batch["subject_id"] == ["sub-0", "sub-1"]


def test_collate_location_is_b_by_6_int64():
    batch = collate_subjects([make_patch(i) for i in range(2)])
    assert batch[LOCATION].shape == (2, 6)
    assert batch[LOCATION].dtype == torch.int64
    assert batch[LOCATION].tolist() == [[0, 0, 0, 4, 4, 2], [1, 0, 0, 5, 4, 2]]


def test_collate_location_holds_indices_beyond_uint16():
    subject = Subject(t1=ScalarImage(tensor=torch.zeros(1, 1, 1, 1)), location=(100_000, 0, 0, 100_064, 64, 1))
    batch = collate_subjects([subject])
    assert batch[LOCATION].tolist() == [[100_000, 0, 0, 100_064, 64, 1]]


def test_collate_other_metadata():
    subjects = [
        Subject(
            t1=ScalarImage(tensor=torch.zeros(1, 2, 2, 2)),
            flag=bool(i),
            embedding=torch.full((3,), float(i)),
            ragged=torch.zeros(i + 1),
            extra=None,
        )
        for i in range(2)
    ]
    batch = collate_subjects(subjects)
    assert batch["flag"] == [False, True]
    assert batch["embedding"].shape == (2, 3)
    assert isinstance(batch["ragged"], list) and len(batch["ragged"]) == 2
    assert batch["extra"] == [None, None]


def test_collate_file_backed_images_gives_paths_and_stems(tmp_path):
    subjects = []
    for i in range(2):
        path = tmp_path / f"case_{i}.nii.gz"
        io.write_image(np.zeros((1, 2, 2, 2), np.float32), np.eye(4), path)
        subjects.append(Subject(ct=ScalarImage(path)))
    batch = collate_subjects(subjects)
    assert batch["ct"][PATH] == [str(tmp_path / "case_0.nii.gz"), str(tmp_path / "case_1.nii.gz")]
    assert batch["ct"][STEM] == ["case_0", "case_1"]
    assert batch["ct"][DATA].shape == (2, 1, 2, 2, 2)


def test_collate_different_shapes_names_image_and_shapes():
    batch = [make_patch(0, (1, 4, 4, 2)), make_patch(1, (1, 4, 4, 3))]
    message = re.escape("cannot batch image 't1': its shapes differ across the batch [(1, 4, 4, 2), (1, 4, 4, 3)]")
    with pytest.raises(ValueError, match=message):
        collate_subjects(batch)


def test_collate_rejects_empty_batch_and_different_keys():
    with pytest.raises(ValueError, match="empty batch"):
        collate_subjects([])
    other = Subject(t1=ScalarImage(tensor=torch.zeros(1, 4, 4, 2)))
    with pytest.raises(ValueError, match=r"different keys: item 0 has .* item 1 has \['t1'\]"):
        collate_subjects([make_patch(0), other])


def test_collate_accepts_plain_dicts_of_images():
    items = [{"t1": ScalarImage(tensor=torch.zeros(1, 2, 2, 2)), LOCATION: (0, 0, 0, 2, 2, 2)} for _ in range(2)]
    batch = collate_subjects(items)
    assert batch["t1"][DATA].shape == (2, 1, 2, 2, 2)
    assert batch[LOCATION].shape == (2, 6)


def test_subjects_loader_batches_in_process():
    dataset = SubjectsDataset([make_patch(i) for i in range(5)])
    batches = list(SubjectsLoader(dataset, batch_size=2))
    assert [b["t1"][DATA].shape[0] for b in batches] == [2, 2, 1]
    assert batches[0]["subject_id"] == ["sub-0", "sub-1"]
    assert batches[0][LOCATION].dtype == torch.int64


def test_subjects_loader_with_spawned_workers():
    dataset = SubjectsDataset([make_patch(i) for i in range(4)])
    loader = SubjectsLoader(dataset, batch_size=2, num_workers=2, multiprocessing_context="spawn")
    batches = list(loader)
    assert len(batches) == 2
    assert batches[0]["t1"][DATA].shape == (2, 1, 4, 4, 2)
    assert batches[0]["t1"][AFFINE].dtype == torch.float64
    ids = [subject_id for batch in batches for subject_id in batch["subject_id"]]
    assert ids == ["sub-0", "sub-1", "sub-2", "sub-3"]
    assert torch.cat([batch[LOCATION] for batch in batches])[:, 0].tolist() == [0, 1, 2, 3]


# Shared memory in loader workers ------------------------------------------------------------------------------


SHARED_CASES = [
    ((2, 1, 3, 4, 5), torch.float32),
    ((3, 2), torch.bfloat16),
    ((4,), torch.bool),
    ((0, 1, 2), torch.int64),
]


def test_torch_allocates_an_untyped_storage_straight_in_shared_memory():
    # empty_batch relies on this private PyTorch call (share_memory_() would copy): a rename fails here.
    for shape, dtype in SHARED_CASES:
        storage = torch.UntypedStorage._new_shared(int(np.prod(shape)) * dtype.itemsize)
        assert storage.is_shared() and storage.nbytes() == int(np.prod(shape)) * dtype.itemsize
        tensor = torch.empty(0, dtype=dtype).set_(storage, 0, shape)
        assert tensor.shape == shape and tensor.dtype == dtype and tensor.is_contiguous()
        assert tensor.is_shared() and tensor.untyped_storage().data_ptr() == storage.data_ptr()


def test_share_memory_on_a_new_tensor_copies_it():
    # Why empty_batch does not use the public share_memory_(): it moves the voxels to a new buffer.
    tensor = torch.empty(1000)
    before = tensor.data_ptr()
    tensor.share_memory_()
    assert tensor.is_shared() and tensor.data_ptr() != before


class SharedBatches(torch.utils.data.Dataset[tuple[bool, torch.Tensor]]):
    """Each item: whether empty_batch gave shared memory in the worker, and the tensor itself."""

    def __len__(self) -> int:
        return len(SHARED_CASES)

    def __getitem__(self, index: int) -> tuple[bool, torch.Tensor]:
        shape, dtype = SHARED_CASES[index]
        batch = empty_batch(shape, dtype)
        batch.zero_()
        return batch.is_shared(), batch


def test_empty_batch_is_in_shared_memory_inside_a_worker_only():
    assert not empty_batch((2, 3), torch.float32).is_shared()
    loader = torch.utils.data.DataLoader(SharedBatches(), batch_size=None, num_workers=1)
    for (shape, dtype), (shared, batch) in zip(SHARED_CASES, loader):
        assert shared, (shape, dtype)
        assert batch.shape == shape and batch.dtype == dtype and not batch.any()


def _no_room_in_dev_shm(nbytes: int) -> torch.UntypedStorage:
    raise RuntimeError("unable to allocate shared memory(shm): No space left on device (28)")


def test_worker_batches_need_no_room_in_dev_shm(monkeypatch):
    """Batches made in a loader worker live in anonymous files: a full /dev/shm (Docker's 64 MiB) does not stop them."""
    if stacked.anonymous_storage(64) is None:
        pytest.skip("no anonymous shared files (memfd_create) here")
    monkeypatch.setattr(torch.UntypedStorage, "_new_shared", staticmethod(_no_room_in_dev_shm))  # forked workers too
    subjects = [Subject(t1=ScalarImage(tensor=torch.full((1, 8, 8, 8), float(i)))) for i in range(4)]
    loader = SubjectsLoader(SubjectsDataset(subjects), batch_size=2, num_workers=1, multiprocessing_context="fork")
    sums = [float(batch["t1"][DATA].sum()) for batch in loader]
    assert sums == [512.0, 2560.0]
