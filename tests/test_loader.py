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
)


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
