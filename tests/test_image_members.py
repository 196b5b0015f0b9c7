"""TorchIO's remaining Image members (torchpatch/image_members.py).

TorchIO parity: test_image_members_torchio.py.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from torchpatch import Image, LabelMap, ScalarImage
from torchpatch.image_members import AXIS_PAIRS

# Voxel axes I, J, K pointing left, posterior, superior: orientation LPS.
LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
# I points superior, J right, K anterior: orientation SRA.
SRA = np.array([[0.0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]])


@pytest.fixture
def image() -> ScalarImage:
    return ScalarImage(tensor=torch.arange(24.0).reshape(1, 2, 3, 4), modality="T1")


# Axis names ------------------------------------------------------------------------


FLIPS = [("L", "R"), ("right", "L"), ("p", "A"), ("Anterior", "P"), ("inferior", "S"), ("S", "I")]
FLIPS_2D_AND_ANIMALS = [("top", "B"), ("Bottom", "T"), ("dorsal", "V"), ("v", "D")]


@pytest.mark.parametrize(("axis", "expected"), [*FLIPS, *FLIPS_2D_AND_ANIMALS])
def test_flip_axis_gives_the_opposite_letter(axis, expected) -> None:
    assert Image.flip_axis(axis) == expected
    assert ScalarImage.flip_axis(axis) == expected  # a staticmethod, on subclasses too


def test_flip_axis_pairs_are_involutions() -> None:
    for pair in AXIS_PAIRS:
        for letter in pair:
            assert Image.flip_axis(Image.flip_axis(letter)) == letter


@pytest.mark.parametrize(
    ("affine", "expected"),
    [
        (np.eye(4), {"L": -3, "R": -3, "A": -2, "P": -2, "S": -1, "I": -1}),
        (LPS, {"L": -3, "R": -3, "P": -2, "A": -2, "S": -1, "I": -1}),
        (SRA, {"S": -3, "I": -3, "R": -2, "L": -2, "A": -1, "P": -1}),
    ],
)
def test_axis_name_to_index_follows_the_orientation(affine, expected) -> None:
    image = ScalarImage(tensor=torch.zeros(1, 2, 3, 4), affine=affine)
    for letter, index in expected.items():
        assert image.axis_name_to_index(letter) == index
        assert image.axis_name_to_index(letter.lower() + "xyz") == index  # only the first letter is read


def test_axis_name_to_index_top_and_bottom_are_the_second_axis() -> None:
    image = ScalarImage(tensor=torch.zeros(1, 5, 6, 1), affine=SRA)
    assert image.axis_name_to_index("Top") == image.axis_name_to_index("bottom") == -2


def test_axis_name_to_index_indexes_data_and_spatial_shape() -> None:
    image = ScalarImage(tensor=torch.zeros(1, 2, 3, 4), affine=SRA)
    assert image.data.shape[image.axis_name_to_index("anterior")] == 4
    assert image.spatial_shape[image.axis_name_to_index("left")] == 3


def test_axis_name_to_index_reads_the_header_only(tmp_path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((1, 2, 3, 4), np.float32))
    image = ScalarImage(path, affine=LPS)
    assert image.axis_name_to_index("R") == -3
    assert not image.is_loaded


@pytest.mark.parametrize(("axis", "error"), [(3, TypeError), (None, TypeError), ("", ValueError), ("x", ValueError)])
def test_bad_axis_names_are_refused_naming_the_value(axis, error) -> None:
    with pytest.raises(error, match=repr(axis).replace("(", r"\(")):
        Image.flip_axis(axis)


def test_axis_of_no_direction_of_the_image_names_the_image_and_orientation(image) -> None:
    with pytest.raises(ValueError, match=r"'dorsal' is no axis of ScalarImage, whose orientation is RAS"):
        image.axis_name_to_index("dorsal")
    with pytest.raises(TypeError, match="got int 1"):
        image.axis_name_to_index(1)


# read_and_check and set_check_nans ---------------------------------------------------


def test_read_and_check_reads_without_changing_the_image(tmp_path, image) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.arange(6, dtype=np.uint16).reshape(1, 1, 2, 3))
    voxels, affine = image.read_and_check(path)
    assert voxels.dtype == torch.int32  # torch cannot compute with uint16
    assert voxels.flatten().tolist() == [0, 1, 2, 3, 4, 5]
    assert np.array_equal(affine, np.eye(4)) and affine.dtype == np.float64
    assert image.shape == (1, 2, 3, 4) and image.data.sum() == 276


def test_read_and_check_uses_the_image_reader_and_its_conversions(tmp_path) -> None:
    calls = []

    def reader(path):
        calls.append(path.name)
        return np.array([[[0.0, 2.0]]]), np.diag([2.0, 2.0, 2.0, 1.0])

    label = LabelMap(tmp_path / "a.raw", reader=reader, verify_path=False)
    voxels, affine = label.read_and_check(str(tmp_path / "b.raw"))
    assert calls == ["b.raw"]
    assert voxels.shape == (1, 1, 1, 2) and voxels.dtype == torch.int64  # 3D gets its channel; whole floats: labels
    assert affine[0, 0] == 2.0


def test_read_and_check_warns_on_nan_only_when_asked(tmp_path) -> None:
    def reader(path):
        return np.full((1, 1, 1, 2), np.nan, np.float32), None

    image = ScalarImage(tmp_path / "x.raw", reader=reader, verify_path=False)
    image.read_and_check("x.raw")  # no warning (pytest runs with -W error)
    image.set_check_nans(True)
    with pytest.warns(RuntimeWarning, match=r"NaN values found in 'x.raw' read for ScalarImage"):
        image.read_and_check("x.raw")


def test_read_and_check_refuses_bad_paths_and_voxels(image) -> None:
    with pytest.raises(TypeError, match=r"takes one path .* got list"):
        image.read_and_check(["a.nii", "b.nii"])
    bad = ScalarImage(tensor=torch.zeros(1, 1, 1, 1), reader=lambda path: (np.zeros((2, 2)), None))
    with pytest.raises(ValueError, match=r"3D or 4D .* got shape \(2, 2\)"):
        bad.read_and_check("x.raw")
    singular = ScalarImage(
        tensor=torch.zeros(1, 1, 1, 1), reader=lambda path: (np.zeros((1, 1, 1, 1)), np.zeros((4, 4)))
    )
    with pytest.raises(ValueError, match=r"affine read from 'x.raw' for ScalarImage is singular"):
        singular.read_and_check("x.raw")


def test_set_check_nans_switches_the_warning_of_set_data(image) -> None:
    nan = torch.full((1, 1, 1, 1), float("nan"))
    image.set_data(nan)  # check_nans is off by default
    image.set_check_nans(True)
    assert image.check_nans is True
    with pytest.warns(RuntimeWarning, match="NaN values found"):
        image.set_data(nan)
    image.set_check_nans(np.bool_(False))
    assert image.check_nans is False
    with pytest.raises(TypeError, match=r"check_nans of ScalarImage must be True or False, got str 'yes'"):
        image.set_check_nans("yes")


# dict methods ------------------------------------------------------------------------


def test_copy_is_a_plain_shallow_dict_of_the_items(image) -> None:
    copied = image.copy()
    assert type(copied) is dict
    assert list(copied) == ["data", "affine", "modality", "path", "stem", "type"]
    assert copied["data"] is image.data and copied["modality"] == "T1" and copied["type"] == "intensity"
    copied["modality"] = "T2"
    assert image["modality"] == "T1"


def test_copy_copy_of_an_image_is_still_an_image(image) -> None:
    assert isinstance(copy.copy(image), ScalarImage)  # the method named copy does not change copy.copy


def test_update_sets_metadata_from_mappings_pairs_and_keywords(image) -> None:
    image.update({"site": "Lyon"})
    image.update([("scanner", "3T")], age=40)
    assert image.metadata == {"modality": "T1", "site": "Lyon", "scanner": "3T", "age": 40}
    assert image["age"] == 40 and "scanner" in image


def test_update_replaces_data_and_affine_through_the_checked_setters(image) -> None:
    image.update(data=np.ones((2, 3, 3, 3), np.uint16), affine=np.diag([2.0, 2.0, 2.0, 1.0]))
    assert image.shape == (2, 3, 3, 3) and image.dtype == torch.int32
    assert image.spacing == (2.0, 2.0, 2.0)


def test_update_with_a_bad_value_changes_nothing(image) -> None:
    before = image.data
    with pytest.raises(ValueError, match="must be 4D"):
        image.update(data=torch.zeros(3, 3), affine=np.diag([2.0, 2.0, 2.0, 1.0]), site="Lyon")
    with pytest.raises(ValueError, match="singular"):
        image.update(data=torch.zeros(1, 1, 1, 1), affine=np.zeros((4, 4)), site="Lyon")
    with pytest.raises(ValueError, match=r"affine of ScalarImage must have shape \(4, 4\)"):
        image.update(affine=None)
    assert image.data is before and image.spacing == (1.0, 1.0, 1.0) and "site" not in image.metadata


@pytest.mark.parametrize("key", ["path", "stem", "type"])
def test_update_refuses_the_fixed_fields(image, key) -> None:
    with pytest.raises(ValueError, match=rf"update of ScalarImage cannot change '{key}'"):
        image.update({key: "label", "site": "Lyon"})
    assert image.type == "intensity" and "site" not in image.metadata


def test_update_refuses_non_string_keys_and_non_pairs(image) -> None:
    with pytest.raises(TypeError, match="keys must be str, got int 3"):
        image.update({3: "x"})
    with pytest.raises(TypeError, match=r"element 0 must be a \(key, value\) pair"):
        image.update(["ab c"])


def test_setdefault_returns_existing_values_and_sets_missing_metadata(image) -> None:
    assert image.setdefault("modality", "CT") == "T1"
    assert image.setdefault("type") == "intensity"
    assert torch.equal(image.setdefault("data"), image.data)
    assert image.setdefault("site") is None
    assert image.metadata == {"modality": "T1", "site": None}
    with pytest.raises(TypeError, match="keys must be str"):
        image.setdefault(("a",), 1)


def test_pop_removes_metadata_only(image) -> None:
    assert image.pop("modality") == "T1"
    assert image.metadata == {}
    assert image.pop("modality", "none") == "none"
    with pytest.raises(KeyError, match=r"ScalarImage has no key 'modality' to pop; keys: \['data', 'affine'"):
        image.pop("modality")


@pytest.mark.parametrize("key", ["data", "affine", "path", "stem", "type"])
def test_pop_refuses_the_fields_of_the_image(image, key) -> None:
    with pytest.raises(ValueError, match=rf"cannot pop '{key}' from ScalarImage: it is a field"):
        image.pop(key, None)
    assert image.shape == (1, 2, 3, 4) and image.type == "intensity"


@pytest.mark.parametrize("name", ["clear", "popitem", "fromkeys", "to_video"])
def test_members_that_would_break_an_image_are_not_provided(image, name) -> None:
    assert not hasattr(image, name)
    assert not hasattr(Image, name)
