"""SubjectsDataset: per-access transforms that never touch the stored subjects."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchpatch import ScalarImage, Subject, SubjectsDataset, io


def add_one(subject: Subject) -> Subject:
    """A transform that replaces the data of 't1' (a new tensor, not in place)."""
    subject["t1"].set_data(subject["t1"].data + 1)
    return subject


def test_dataset_length_and_indexing(make_subject):
    subjects = [make_subject(subject_id=f"sub-{i}") for i in range(3)]
    dataset = SubjectsDataset(subjects)
    assert len(dataset) == 3
    assert dataset[2]["subject_id"] == "sub-2"
    assert dataset[-1]["subject_id"] == "sub-2"
    assert list(dataset.dry_iter()) == subjects


def test_returned_subject_is_a_new_mapping(make_subject):
    subject = make_subject()
    dataset = SubjectsDataset([subject])
    item = dataset[0]
    assert isinstance(item, Subject)
    assert item is not subject
    item["added"] = 1
    assert "added" not in subject


def test_transform_is_applied_on_every_access():
    calls = []

    def transform(subject: Subject) -> Subject:
        calls.append(subject.name)
        return subject.with_images({"t1": ScalarImage(tensor=subject.t1.data * 2)}, seen=len(calls))

    subject = Subject(t1=ScalarImage(tensor=torch.ones(1, 2, 2, 2)), subject_id="sub-01")
    dataset = SubjectsDataset([subject], transform=transform)
    first, second = dataset[0], dataset[0]
    assert calls == ["sub-01", "sub-01"]
    assert (first["seen"], second["seen"]) == (1, 2)
    assert float(first.t1.data.sum()) == 16.0
    assert float(subject.t1.data.sum()) == 8.0
    assert "seen" not in subject


def test_transform_replacing_image_data_leaves_stored_subject_untouched():
    subject = Subject(t1=ScalarImage(tensor=torch.zeros(1, 2, 2, 2)), subject_id="sub-01")
    dataset = SubjectsDataset([subject], transform=add_one)
    first = dataset[0]
    second = dataset[0]
    assert float(first.t1.data.sum()) == 8.0
    assert float(second.t1.data.sum()) == 8.0  # not 16: the second access starts from the stored data
    assert float(subject.t1.data.sum()) == 0.0


def test_getitem_loads_returned_images_but_not_stored_ones(tmp_path):
    path = tmp_path / "ct.nii.gz"
    io.write_image(np.ones((1, 3, 3, 3), np.float32), np.eye(4), path)
    subject = Subject(ct=ScalarImage(path))
    dataset = SubjectsDataset([subject])
    item = dataset[0]
    assert item.ct.is_loaded
    # Loading every subject into the stored list would keep the whole data set
    # in memory (in every worker) after one epoch.
    assert not subject.ct.is_loaded


def test_load_getitem_false_keeps_images_lazy(tmp_path):
    path = tmp_path / "ct.nii"
    io.write_image(np.ones((1, 3, 3, 3), np.float32), np.eye(4), path)
    dataset = SubjectsDataset([Subject(ct=ScalarImage(path))], load_getitem=False)
    item = dataset[0]
    assert not item.ct.is_loaded
    assert item.ct.spatial_shape == (3, 3, 3)
    assert not item.ct.is_loaded


def test_set_transform_replaces_and_removes_transform(make_subject):
    dataset = SubjectsDataset([make_subject()])
    dataset.set_transform(lambda subject: subject.with_images({}, marked=True))
    assert dataset[0]["marked"] is True
    dataset.set_transform(None)
    assert "marked" not in dataset[0]


def test_transform_returning_non_subject_raises_type_error_naming_subject(make_subject):
    dataset = SubjectsDataset([make_subject(subject_id="sub-05")], transform=lambda subject: dict(subject))
    with pytest.raises(TypeError, match=r"must return a Subject, got dict for subject 'sub-05'"):
        dataset[0]


def test_non_callable_transform_is_rejected(make_subject):
    with pytest.raises(TypeError, match="transform must be callable"):
        SubjectsDataset([make_subject()], transform="flip")


def test_non_subject_in_list_raises_type_error_naming_index(make_subject):
    with pytest.raises(TypeError, match=r"subjects\[1\] must be a Subject, got dict"):
        SubjectsDataset([make_subject(), {"t1": make_subject().t1}])


def test_subjects_must_be_a_sequence(make_subject):
    subject = make_subject()
    with pytest.raises(TypeError, match=r"must be a sequence.*got Subject"):
        SubjectsDataset(subject)
    with pytest.raises(TypeError, match=r"must be a sequence.*got generator"):
        SubjectsDataset(s for s in [subject])


def test_index_must_be_an_int(make_subject):
    dataset = SubjectsDataset([make_subject()])
    with pytest.raises(TypeError, match="index must be an int, got str"):
        dataset["0"]
    with pytest.raises(IndexError):
        dataset[1]
