"""torchpatch.utils: collated batches back into subjects (TorchIO's tio.utils helpers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchpatch import (
    DATA,
    LOCATION,
    GridSampler,
    LabelMap,
    ScalarImage,
    Subject,
    SubjectsDataset,
    SubjectsLoader,
    collate_subjects,
    utils,
)
from torchpatch.transforms import RescaleIntensity


def _rows(count: int = 3) -> list[Subject]:
    subjects = []
    for index in range(count):
        affine = np.diag([0.5, 0.75, 2.0, 1.0])
        affine[:3, 3] = (index, -3.0, 10.0)
        generator = torch.Generator().manual_seed(index)
        subjects.append(
            Subject(
                t1=ScalarImage(tensor=torch.rand(2, 5, 4, 3, generator=generator), affine=affine),
                seg=LabelMap(tensor=torch.randint(0, 3, (1, 5, 4, 3), generator=generator), affine=affine),
                age=30 + index,
                subject_id=f"sub-{index}",
            )
        )
    return subjects


def test_subjects_from_a_batch_are_its_rows() -> None:
    rows = _rows()
    subjects = utils.get_subjects_from_batch(collate_subjects(rows))
    assert len(subjects) == 3
    for row, subject in zip(rows, subjects):
        assert type(subject.t1) is ScalarImage and type(subject.seg) is LabelMap
        assert torch.equal(subject.t1.data, row.t1.data) and torch.equal(subject.seg.data, row.seg.data)
        np.testing.assert_array_equal(subject.t1.affine, row.t1.affine)
        assert int(subject.age) == row.age and subject.subject_id == row.subject_id
    assert utils.get_batch_images_and_size(collate_subjects(rows)) == (["t1", "seg"], 3)


def test_patches_of_a_grid_keep_their_locations() -> None:
    subject = _rows(1)[0]
    batch = next(iter(SubjectsLoader(GridSampler(subject, (3, 2, 3)), batch_size=4)))
    patches = utils.get_subjects_from_batch(batch)
    for row, patch in enumerate(patches):
        assert torch.equal(patch[LOCATION], batch[LOCATION][row])
        i0, j0, k0, i1, j1, k1 = patch[LOCATION].tolist()
        assert torch.equal(patch.t1.data, subject.t1.data[:, i0:i1, j0:j1, k0:k1])


def test_images_from_a_batch_of_outputs_join_their_subjects() -> None:
    subjects = utils.get_subjects_from_batch(collate_subjects(_rows()))
    outputs = torch.rand(3, 4, 5, 4, 3)
    utils.add_images_from_batch(subjects, outputs)
    utils.add_images_from_batch(subjects, outputs.argmax(1, keepdim=True), LabelMap, name="label")
    for row, subject in enumerate(subjects):
        assert type(subject.prediction) is ScalarImage and type(subject.label) is LabelMap
        assert torch.equal(subject.prediction.data, outputs[row])
        np.testing.assert_array_equal(subject.label.affine, subject.t1.affine)


def test_a_dataset_from_a_batch_takes_the_constructor_arguments() -> None:
    dataset = SubjectsDataset.from_batch(collate_subjects(_rows()), transform=RescaleIntensity((0, 1)))
    assert len(dataset) == 3 and float(dataset[1].t1.data.max()) == pytest.approx(1.0)


def test_bad_batches_say_what_is_wrong() -> None:
    with pytest.raises(RuntimeError, match=r"no images .* among its keys \['age'\]"):
        utils.get_subjects_from_batch({"age": [1, 2]})
    with pytest.raises(RuntimeError, match=r"different numbers of rows: \{'t1': 2, 'seg': 3\}"):
        utils.get_batch_images_and_size({"t1": {DATA: torch.zeros(2, 1)}, "seg": {DATA: torch.zeros(3, 1)}})
    batch = collate_subjects(_rows())
    batch["site"] = 7
    with pytest.raises(ValueError, match=r"key 'site' of the batch holds no value per row for its 3 subjects"):
        utils.get_subjects_from_batch(batch)
    batch["site"] = ["a", "b"]
    with pytest.raises(ValueError, match="key 'site'"):
        utils.get_subjects_from_batch(batch)
    subjects = utils.get_subjects_from_batch(collate_subjects(_rows()))
    with pytest.raises(ValueError, match="the tensor has 2 rows for 3 subjects"):
        utils.add_images_from_batch(subjects, torch.zeros(2, 1, 5, 4, 3))


def test_same_subjects_as_torchio_from_the_same_batch() -> None:
    tio = pytest.importorskip("torchio")
    rows = _rows()
    theirs_rows = [
        tio.Subject(
            t1=tio.ScalarImage(tensor=row.t1.data, affine=row.t1.affine),
            seg=tio.LabelMap(tensor=row.seg.data, affine=row.seg.affine),
            age=row.age,
        )
        for row in rows
    ]
    their_batch = next(iter(tio.SubjectsLoader(tio.SubjectsDataset(theirs_rows), batch_size=3)))
    ours = utils.get_subjects_from_batch(their_batch)  # TorchIO's batch, read by torchpatch
    theirs = tio.utils.get_subjects_from_batch(their_batch)
    for mine, their in zip(ours, theirs):
        for name in ("t1", "seg"):
            assert type(mine[name]).__name__ == type(their[name]).__name__
            assert torch.equal(mine[name].data, their[name].data)
            np.testing.assert_allclose(mine[name].affine, their[name].affine)
        assert int(mine.age) == int(their["age"])
