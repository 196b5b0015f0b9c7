"""Subjects: mapping behaviour, consistency checks, copies, crops and pickling."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
import torch

from torchpatch import LabelMap, ScalarImage, Subject, io
from torchpatch.geometry import shift_affines


def test_subject_is_a_mapping_with_attribute_access(make_subject):
    subject = make_subject(subject_id="sub-01", age=42)
    assert subject["t1"] is subject.t1
    assert subject["age"] == subject.age == 42
    assert len(subject) == 4
    assert list(subject) == ["t1", "seg", "subject_id", "age"]
    assert "seg" in subject
    assert dict(subject.items())["subject_id"] == "sub-01"


def test_images_and_metadata_are_told_apart_by_type(make_subject):
    subject = make_subject(subject_id="sub-01", label_name="seg")
    assert list(subject.images) == ["t1", "seg"]
    assert subject.metadata == {"subject_id": "sub-01", "label_name": "seg"}
    assert subject.get_first_image() is subject.t1
    assert list(subject.get_images_dict()) == ["t1"]  # TorchIO's default: intensity images only
    assert list(subject.get_images_dict(intensity_only=False)) == ["t1", "seg"]
    assert subject.get_images(False, exclude=["t1"]) == [subject.seg]
    assert subject.get_images(False, include=["seg"]) == [subject.seg]


def test_get_images_with_unknown_name_lists_images(make_subject):
    subject = make_subject()
    with pytest.raises(KeyError, match=r"include names \['t2'\] are not images.*\['seg', 't1'\]"):
        subject.get_images(include=["t2"])


def test_missing_attribute_raises_attribute_error_with_keys(make_subject):
    subject = make_subject(age=3)
    with pytest.raises(AttributeError, match=r"no attribute or key 't2'; keys: \['age', 'seg', 't1'\]"):
        _ = subject.t2
    assert not hasattr(subject, "t2")
    assert getattr(subject, "t2", None) is None


def test_missing_key_raises_key_error_with_keys(make_subject):
    subject = make_subject(subject_id="sub-07")
    with pytest.raises(KeyError, match=r"subject 'sub-07' has no key 't2'; keys: \['seg', 'subject_id', 't1'\]"):
        subject["t2"]


def test_subject_accepts_one_mapping_and_keywords():
    t1 = ScalarImage(tensor=torch.zeros(1, 2, 2, 2))
    subject = Subject({"t1": t1, "age": 1}, site="a")
    assert subject.t1 is t1
    assert subject.metadata == {"age": 1, "site": "a"}
    with pytest.raises(TypeError, match="at most one mapping"):
        Subject({"t1": t1}, {"t2": t1})
    with pytest.raises(TypeError, match="must be a mapping, got list"):
        Subject([("t1", t1)])


def test_subject_keys_must_be_strings(make_subject):
    subject = make_subject()
    with pytest.raises(TypeError, match="subject keys must be str, got int 3"):
        subject[3] = "x"


def test_subject_without_images_is_rejected_listing_keys():
    with pytest.raises(ValueError, match=r"at least one Image.*\['age', 'subject_id'\]"):
        Subject(subject_id="sub-01", age=3)
    with pytest.raises(ValueError, match="at least one Image"):
        Subject()


def test_setting_and_deleting_keys(make_subject):
    subject = make_subject()
    subject["t2"] = ScalarImage(tensor=torch.ones(1, 4, 5, 6))
    subject["note"] = "ok"
    assert list(subject.images) == ["t1", "seg", "t2"]
    del subject["note"]
    assert "note" not in subject


def test_name_comes_from_metadata_then_file_stem(tmp_path):
    tensor = ScalarImage(tensor=torch.zeros(1, 2, 2, 2))
    assert Subject(t1=tensor, subject_id="sub-09").name == "sub-09"
    assert Subject(t1=tensor, id=12).name == "12"
    assert Subject(t1=tensor).name == "<unnamed>"
    path = tmp_path / "case_004.nii.gz"
    io.write_image(np.zeros((1, 2, 2, 2), np.float32), np.eye(4), path)
    assert Subject(t1=ScalarImage(path)).name == "case_004"


# Consistency -------------------------------------------------------------------------------


def test_consistent_space_passes_and_gives_shared_geometry(make_subject):
    subject = make_subject(shape=(1, 4, 5, 6))
    subject.check_consistent_space()
    assert subject.spatial_shape == (4, 5, 6)
    assert subject.shape == (1, 4, 5, 6)
    assert subject.spacing == (1.0, 1.0, 1.0)
    assert not subject.is_2d()


def test_images_of_different_shapes_name_both_images_and_shapes():
    subject = Subject(
        t1=ScalarImage(tensor=torch.zeros(1, 4, 4, 4)),
        seg=LabelMap(tensor=torch.zeros(1, 4, 4, 3, dtype=torch.uint8)),
        subject_id="sub-02",
    )
    message = r"subject 'sub-02' have different spatial shapes: 't1' is \(4, 4, 4\) but 'seg' is \(4, 4, 3\)"
    with pytest.raises(ValueError, match=message):
        subject.check_consistent_space()
    with pytest.raises(ValueError, match="different spatial shapes"):
        _ = subject.spatial_shape


def test_images_of_different_affines_name_both_images_and_affines():
    shifted = np.eye(4)
    shifted[0, 3] = 0.5
    subject = Subject(
        t1=ScalarImage(tensor=torch.zeros(1, 4, 4, 4)),
        t2=ScalarImage(tensor=torch.zeros(1, 4, 4, 4), affine=shifted),
    )
    pattern = r"different affines \(max difference 0\.5 > 0\.0001\): 't1' has\n.*but 't2' has\n.*0\.5"
    with pytest.raises(ValueError, match=re.compile(pattern, re.DOTALL)):
        subject.check_consistent_space()
    subject.check_consistent_space(tolerance=0.6)
    near = shifted.copy()
    near[0, 3] = 5e-5  # within the tolerance: accepted, as an equal matrix (-0.0 for 0.0) is
    near[1, 0] = -0.0
    t2 = ScalarImage(tensor=torch.zeros(1, 4, 4, 4), affine=near)
    Subject(t1=ScalarImage(tensor=torch.zeros(1, 4, 4, 4)), t2=t2).check_consistent_space()


def test_channels_may_differ_between_images():
    subject = Subject(
        rgb=ScalarImage(tensor=torch.zeros(3, 8, 8, 1)),
        mask=LabelMap(tensor=torch.zeros(1, 8, 8, 1, dtype=torch.uint8)),
    )
    subject.check_consistent_space()
    assert subject.is_2d()
    assert subject.shape == (3, 8, 8, 1)


def test_lazy_file_images_are_checked_from_headers(tmp_path, monkeypatch):
    io.write_image(np.zeros((1, 4, 4, 2), np.int16), np.eye(4), tmp_path / "ct.nii")
    io.write_image(np.zeros((1, 4, 4, 3), np.uint8), np.eye(4), tmp_path / "seg.nrrd")
    subject = Subject(ct=ScalarImage(tmp_path / "ct.nii"), seg=LabelMap(tmp_path / "seg.nrrd"))

    def refuse(path: object) -> None:
        raise AssertionError("voxels read")

    monkeypatch.setattr(io, "read_array", refuse)
    with pytest.raises(ValueError, match=r"'ct' is \(4, 4, 2\) but 'seg' is \(4, 4, 3\)"):
        subject.check_consistent_space()


# Copies and crops -----------------------------------------------------------------------------


def test_with_images_returns_new_subject_and_leaves_original(make_subject):
    subject = make_subject(subject_id="sub-01")
    replacement = ScalarImage(tensor=torch.ones(1, 4, 5, 6))
    new = subject.with_images({"t1": replacement}, fold=2)
    assert new is not subject
    assert new.t1 is replacement
    assert new.seg is subject.seg
    assert new["fold"] == 2
    assert subject.t1 is not replacement
    assert "fold" not in subject
    new["extra"] = 1
    assert "extra" not in subject


def test_crop_shifts_every_affine_and_keeps_metadata():
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    affine[:3, 3] = (-4.0, 6.0, 1.0)
    data = torch.arange(4 * 5 * 6, dtype=torch.float32).reshape(1, 4, 5, 6)
    subject = Subject(
        t1=ScalarImage(tensor=data, affine=affine),
        seg=LabelMap(tensor=(data > 50).to(torch.uint8), affine=affine),
        subject_id="sub-01",
    )
    patch = subject.crop((1, 2, 3), (3, 5, 6), location=(1, 2, 3, 3, 5, 6))
    assert patch.shape == (1, 2, 3, 3)
    for name in ("t1", "seg"):
        np.testing.assert_array_equal(patch[name].affine[:3, 3], (-2.0, 10.0, 10.0))
        np.testing.assert_array_equal(patch[name].affine[:3, :3], affine[:3, :3])
    assert torch.equal(patch.t1.data, data[:, 1:3, 2:5, 3:6])
    assert patch["subject_id"] == "sub-01"
    assert patch["location"] == (1, 2, 3, 3, 5, 6)
    assert "location" not in subject
    assert subject.shape == (1, 4, 5, 6)


def test_crop_outside_subject_names_region():
    subject = Subject(t1=ScalarImage(tensor=torch.zeros(1, 4, 4, 4)))
    with pytest.raises(ValueError, match=r"region \(0, 0, 0\) -> \(5, 4, 4\) is not inside"):
        subject.crop((0, 0, 0), (5, 4, 4))


def test_load_and_unload_reach_every_file_image(tmp_path):
    io.write_image(np.zeros((1, 2, 2, 2), np.float32), np.eye(4), tmp_path / "a.nii.gz")
    io.write_image(np.zeros((1, 2, 2, 2), np.uint8), np.eye(4), tmp_path / "b.nrrd")
    subject = Subject(a=ScalarImage(tmp_path / "a.nii.gz"), b=LabelMap(tmp_path / "b.nrrd"))
    subject.load()
    assert all(image.is_loaded for image in subject.images.values())
    subject.unload()
    assert not any(image.is_loaded for image in subject.images.values())


# Pickling ----------------------------------------------------------------------------------------


def test_pickle_round_trip_keeps_images_and_metadata(make_subject):
    subject = make_subject(subject_id="sub-01", age=42)
    restored = pickle.loads(pickle.dumps(subject))
    assert isinstance(restored, Subject)
    assert list(restored) == list(subject)
    assert restored.age == 42
    assert torch.equal(restored.t1.data, subject.t1.data)
    assert torch.equal(restored.seg.data, subject.seg.data)
    assert isinstance(restored.seg, LabelMap)
    assert restored.name == "sub-01"


def test_pickle_round_trip_of_lazy_file_backed_subject(tmp_path):
    data = np.arange(8, dtype=np.int16).reshape(1, 2, 2, 2)
    io.write_image(data, np.eye(4), tmp_path / "ct.nii.gz")
    subject = Subject(ct=ScalarImage(tmp_path / "ct.nii.gz"), subject_id="sub-03")
    restored = pickle.loads(pickle.dumps(subject))
    assert not restored.ct.is_loaded
    assert restored.ct.shape == (1, 2, 2, 2)
    assert torch.equal(restored.ct.data, torch.from_numpy(data))
    assert not subject.ct.is_loaded


def test_repr_is_torchio_s(make_subject):
    text = repr(make_subject(subject_id="sub-01"))
    assert text == "Subject(Keys: ('t1', 'seg', 'subject_id'); images: 2)"


def test_add_image_and_remove_image_like_torchio():
    subject = Subject(t1=ScalarImage(tensor=torch.zeros(1, 2, 2, 2)), subject_id="s1")
    subject.add_image(LabelMap(tensor=torch.ones(1, 2, 2, 2)), "seg")
    assert list(subject.images) == ["t1", "seg"]
    with pytest.raises(KeyError, match="'s1' already has 'seg'"):
        subject.add_image(LabelMap(tensor=torch.ones(1, 2, 2, 2)), "seg")
    with pytest.raises(TypeError, match="needs an Image, got Tensor for 'w'"):
        subject.add_image(torch.ones(1, 2, 2, 2), "w")  # type: ignore[arg-type]
    subject.remove_image("seg")
    assert list(subject.images) == ["t1"]
    with pytest.raises(KeyError, match="no image 'subject_id'"):
        subject.remove_image("subject_id")


def test_cutting_no_boxes_gives_an_empty_stack_with_its_images():
    subject = Subject(t1=ScalarImage(tensor=torch.zeros(2, 4, 4, 4)), seg=LabelMap(tensor=torch.zeros(1, 4, 4, 4)))
    stack = subject.cut(np.zeros((0, 6), dtype=np.int64))
    assert len(stack) == 0 and list(stack.data) == ["t1", "seg"]
    assert stack.data["t1"].shape[:2] == (0, 2) and stack.affines["t1"].shape == (0, 4, 4)


def test_images_on_one_grid_get_equal_patch_affines_each_its_own():
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    subject = Subject(
        t1=ScalarImage(tensor=torch.zeros(1, 8, 8, 8), affine=affine),
        seg=LabelMap(tensor=torch.zeros(1, 8, 8, 8, dtype=torch.uint8), affine=affine.copy()),
        t2=ScalarImage(tensor=torch.zeros(1, 8, 8, 8), affine=affine + 1e-6),  # within tolerance, other numbers
    )
    stack = subject.cut([[1, 2, 3, 3, 4, 5], [0, 0, 0, 2, 2, 2]])
    np.testing.assert_array_equal(stack.affines["t1"], stack.affines["seg"])
    assert stack.affines["t1"] is not stack.affines["seg"]
    assert stack.affines["t1"][0, :3, 3].tolist() == [2.0, 6.0, 12.0]
    np.testing.assert_array_equal(stack.affines["t2"], shift_affines(affine + 1e-6, [[1, 2, 3], [0, 0, 0]]))
