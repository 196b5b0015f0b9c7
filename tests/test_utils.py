"""torchpatch.utils: collated batches back into subjects (TorchIO's tio.utils helpers)."""

from __future__ import annotations

from typing import Any

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


# TorchIO's small helpers of tio.utils.

GUESSES = ["3", "-2", "0.5", "1e3", "True", "None", "t1", "(1, 2.5)", "[1,2,3]", "(a, 2)", "[0.5, b]", "'x'"]


@pytest.mark.parametrize("string", GUESSES)
def test_guess_type_gives_torchio_values(string: str) -> None:
    tio_utils = pytest.importorskip("torchio.utils")
    assert utils.guess_type(string) == tio_utils.guess_type(string)
    assert type(utils.guess_type(string)) is type(tio_utils.guess_type(string))


def test_small_helpers_give_torchio_results(tmp_path: Any) -> None:
    tio_utils = pytest.importorskip("torchio.utils")
    for value, length in [(2, 3), ((1, 2), 3), ([4], 1), ("ab", 2), (np.int64(3), 2)]:
        assert utils.to_tuple(value, length) == tio_utils.to_tuple(value, length)
    for path in ["/a/t1.nii.gz", "b.nrrd", "c", tmp_path / "d.v2.mha", ["x.nii", "y.mha"]]:
        assert utils.get_stem(path) == tio_utils.get_stem(path)
    for obj in [[1], "a", 3, None, {"a": 1}, torch.zeros(2)]:
        assert utils.is_iterable(obj) == tio_utils.is_iterable(obj)
    for shape in [4, (2, 3, 1), [5, 5, 5], (2.0, 3, 4)]:
        assert utils.parse_spatial_shape(shape) == tio_utils.parse_spatial_shape(shape)
    for bad in [0, (2, 3), (1, 2, 3, 4), (1.5, 2, 2), -1]:
        with pytest.raises(ValueError, match="spatial shape"):
            utils.parse_spatial_shape(bad)
        with pytest.raises(ValueError):
            tio_utils.parse_spatial_shape(bad)
    assert utils.normalize_path("~/x/../y") == tio_utils.normalize_path("~/x/../y")
    with pytest.raises(TypeError, match='"labels" must be a sequence, got int 3'):
        utils.check_sequence(3, "labels")
    assert utils.get_first_item(iter([[1], [2]])) == tio_utils.get_first_item([[1], [2]])

    class A: ...

    class B(A): ...

    class C(B): ...

    class D(A): ...

    assert utils.get_subclasses(A) == tio_utils.get_subclasses(A) == [B, D, C]


def test_compress_gives_torchio_files(tmp_path: Any) -> None:
    tio_utils = pytest.importorskip("torchio.utils")
    import gzip

    source = tmp_path / "volume.nii"
    source.write_bytes(bytes(range(256)) * 40)
    ours, theirs = utils.compress(source), tio_utils.compress(source, tmp_path / "theirs.nii.gz")
    assert ours == tmp_path / "volume.nii.gz"
    assert gzip.decompress(ours.read_bytes()) == gzip.decompress(theirs.read_bytes()) == source.read_bytes()
    assert utils.compress(source, tmp_path / "other.gz") == tmp_path / "other.gz"


@pytest.mark.parametrize("class_", ["ScalarImage", "LabelMap"])
def test_apply_transform_to_file_gives_torchio_files(tmp_path: Any, class_: str, capsys: Any) -> None:
    tio = pytest.importorskip("torchio")
    from torchpatch.transforms import Flip, RandomFlip

    data = torch.arange(24).reshape(1, 2, 3, 4).to(torch.int16)
    ScalarImage(tensor=data).save(tmp_path / "in.nii.gz")
    utils.apply_transform_to_file(tmp_path / "in.nii.gz", Flip((0, 2)), tmp_path / "ours.nii.gz", class_=class_)
    tio.utils.apply_transform_to_file(tmp_path / "in.nii.gz", tio.Flip((0, 2)), tmp_path / "theirs.nii.gz", class_)
    ours, theirs = ScalarImage(tmp_path / "ours.nii.gz"), tio.ScalarImage(tmp_path / "theirs.nii.gz")
    assert torch.equal(ours.data, theirs.data) and ours.data.dtype == theirs.data.dtype
    np.testing.assert_allclose(ours.affine, theirs.affine)
    utils.apply_transform_to_file(tmp_path / "in.nii.gz", RandomFlip(), tmp_path / "r.nii.gz", verbose=True)
    assert capsys.readouterr().out.startswith("Applied transform: {'name': 'RandomFlip'")
    with pytest.raises(ValueError, match="class_ must be one of"):
        utils.apply_transform_to_file(tmp_path / "in.nii.gz", Flip(0), tmp_path / "x.nii.gz", class_="Image")


def test_create_dummy_dataset_writes_torchio_files(tmp_path: Any) -> None:
    tio = pytest.importorskip("torchio")
    np.random.seed(3)
    ours = utils.create_dummy_dataset(3, (4, 7), directory=tmp_path / "ours")
    np.random.seed(3)
    theirs = tio.utils.create_dummy_dataset(3, (4, 7), directory=tmp_path / "theirs")
    for mine, peer in zip(ours, theirs):
        for name in ("one_modality", "segmentation"):
            assert torch.equal(mine[name].data, peer[name].data)
            assert mine[name].data.dtype == peer[name].data.dtype
            assert mine[name].path.name == peer[name].path.name
    # Written once: read again (not drawn again) unless force.
    again = utils.create_dummy_dataset(3, (4, 7), directory=tmp_path / "ours")
    assert torch.equal(again[0].one_modality.data, ours[0].one_modality.data)
    forced = utils.create_dummy_dataset(1, (9, 10), directory=tmp_path / "ours", force=True)
    assert forced[0].one_modality.spatial_shape == (9, 9, 9)


def test_history_collate_keeps_what_undoes_each_row() -> None:
    from torchpatch.transforms import RandomFlip

    subject = Subject(t1=ScalarImage(tensor=torch.arange(4.0).reshape(1, 4, 1, 1)))
    rows = [RandomFlip(axes=(0,), flip_probability=p)(subject) for p in (1.0, 0.0)]
    batch = utils.history_collate(rows)
    assert [len(h) for h in batch["history"]] == [1, 1]
    undone = [row.apply_inverse_transform() for row in utils.get_subjects_from_batch(batch)]
    assert all(torch.equal(row.t1.data, subject.t1.data) for row in undone)
    assert "history" not in utils.history_collate(rows, collate_transforms=False)
    assert utils.history_collate([{"a": 1}]) == {}  # type: ignore[list-item]
