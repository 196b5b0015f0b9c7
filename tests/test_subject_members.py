"""TorchIO's remaining Subject members (torchpatch/subject_members.py).

TorchIO parity: test_subject_members_torchio.py.
"""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from torchpatch import Flip, Image, LabelMap, RandomFlip, RandomGamma, ScalarImage, Subject
from torchpatch.subject import ImageNotFoundError


@pytest.fixture
def subject() -> Subject:
    return Subject(
        t1=ScalarImage(tensor=torch.arange(6.0).reshape(1, 3, 2, 1)),
        seg=LabelMap(tensor=torch.zeros(1, 3, 2, 1, dtype=torch.uint8)),
        subject_id="sub-01",
    )


# Typed lookups -------------------------------------------------------------------------


def test_get_scalar_image_and_get_label_map_return_the_image(subject) -> None:
    assert subject.get_scalar_image("t1") is subject.t1
    assert subject.get_label_map("seg") is subject.seg


def test_get_scalar_image_refuses_a_label_map_naming_subject_and_kinds(subject) -> None:
    with pytest.raises(
        TypeError, match=r"image 'seg' of subject 'sub-01' is a LabelMap, not a ScalarImage; .*\['t1'\]"
    ):
        subject.get_scalar_image("seg")
    with pytest.raises(
        TypeError, match=r"image 't1' of subject 'sub-01' is a ScalarImage, not a LabelMap; .*\['seg'\]"
    ):
        subject.get_label_map("t1")


def test_a_plain_intensity_image_is_not_a_scalar_image(subject) -> None:
    subject["plain"] = Image(tensor=torch.zeros(1, 3, 2, 1), type="intensity")
    with pytest.raises(TypeError, match="is a Image, not a ScalarImage"):
        subject.get_scalar_image("plain")


@pytest.mark.parametrize("name", ["t2", "subject_id"])
def test_typed_lookups_of_missing_images_name_the_subject(subject, name) -> None:
    for method in (subject.get_scalar_image, subject.get_label_map):
        with pytest.raises(ImageNotFoundError, match=rf"image_name '{name}' is not an image of subject 'sub-01'"):
            method(name)


# History -------------------------------------------------------------------------------


def test_a_new_subject_has_an_empty_history(subject) -> None:
    assert subject.applied_transforms == [] and subject.history == []
    assert "history" not in subject


def test_applied_transforms_are_name_parameter_pairs_of_the_records(subject) -> None:
    out = RandomGamma(log_gamma=(0.1, 0.1))(RandomFlip(axes=(0,), flip_probability=1)(subject))
    names = [name for name, _ in out.applied_transforms]
    assert names == ["RandomFlip", "RandomGamma"]
    assert out.applied_transforms[0] == ("RandomFlip", {"axes": [0]})
    assert [record["name"] for record in out["history"]] == names


def test_applied_transforms_is_a_snapshot(subject) -> None:
    subject.applied_transforms.append(("Flip", {"axes": (0,)}))
    assert subject.applied_transforms == []


def test_assigning_applied_transforms_replaces_the_records(subject) -> None:
    subject.applied_transforms = [("Flip", {"axes": (0,)})]
    assert subject["history"] == [{"name": "Flip", "axes": (0,)}]
    assert subject.apply_inverse_transform().t1.data.flatten().tolist() == [4.0, 5.0, 2.0, 3.0, 0.0, 1.0]
    subject.applied_transforms = []
    assert subject["history"] == [] and subject.get_applied_transforms() == []


def test_assigning_no_transforms_to_a_subject_without_history_adds_no_key(subject) -> None:
    subject.applied_transforms = []
    assert "history" not in subject


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ("Flip", TypeError, r"must be a list of \(name, parameters\) pairs, got str"),
        ([("Flip",)], TypeError, r"element 0 must be a \(name, parameters\) pair"),
        ([(3, {})], TypeError, "the transform name must be a str, got 3"),
        ([("Flip", [0])], TypeError, "the parameters of 'Flip' must be a dict, got list"),
        ([("Flip", {"name": "x"})], ValueError, "the parameters of 'Flip' hold a 'name'"),
    ],
)
def test_bad_applied_transforms_are_refused_naming_the_subject(subject, value, error, message) -> None:
    with pytest.raises(error, match=message) as raised:
        subject.applied_transforms = value
    assert "sub-01" in str(raised.value)
    assert "history" not in subject


def test_malformed_records_are_reported_with_their_position(subject) -> None:
    subject["history"] = [{"name": "Flip", "axes": [0]}, {"axes": [1]}]
    with pytest.raises(ValueError, match=r"history record 1 of subject 'sub-01' must be a dict with a 'name'"):
        _ = subject.applied_transforms
    subject["history"] = "RandomFlip"
    with pytest.raises(TypeError, match=r"'history' metadata of subject 'sub-01' must be a list of records, got str"):
        _ = subject.applied_transforms


def test_history_is_the_applied_transforms_as_transforms(subject) -> None:
    flipped = RandomFlip(axes=(0,), flip_probability=1)(subject)
    assert [type(replay.transform).__name__ for replay in flipped.history] == ["RandomFlip"]
    assert flipped.history[0].params == {"axes": [0]}
    again = flipped.history[0](subject)  # replays the same flip
    assert torch.equal(again.t1.data, flipped.t1.data)
    assert flipped["history"] == [{"name": "RandomFlip", "axes": [0]}]  # the records stay under the key


def test_add_transform_appends_a_record_in_place(subject) -> None:
    subject.add_transform(Flip(axes=(0,)), {"axes": (0,)})
    subject.add_transform(RandomGamma(), {"gamma": {"t1": 1.0}})
    assert subject["history"] == [{"name": "Flip", "axes": (0,)}, {"name": "RandomGamma", "gamma": {"t1": 1.0}}]
    assert [type(replay.transform).__name__ for replay in subject.history] == ["Flip", "RandomGamma"]


def test_add_transform_leaves_subjects_sharing_the_list_unchanged(subject) -> None:
    flipped = RandomFlip(axes=(0,), flip_probability=1)(subject)
    twin = flipped.with_images({})  # shares the store's values, the history list too
    flipped.add_transform(Flip(axes=(1,)), {"axes": (1,)})
    assert len(flipped["history"]) == 2 and len(twin["history"]) == 1


def test_add_transform_names_an_object_without_name_by_its_class(subject) -> None:
    class Shift:
        def __call__(self, subject):
            return subject

    subject.add_transform(Shift(), {"by": 1})
    assert subject.applied_transforms == [("Shift", {"by": 1})]


@pytest.mark.parametrize(
    ("transform", "parameters", "error", "message"),
    [
        (Flip, {}, TypeError, r"needs the transform applied \(an instance\), got <class"),
        ("Flip", {}, TypeError, r"needs the transform applied \(an instance\), got 'Flip'"),
        (Flip(axes=(0,)), ("axes", 0), TypeError, "the parameters of 'Flip' must be a dict, got tuple"),
        (Flip(axes=(0,)), {"name": "Flop"}, ValueError, r"hold a 'name' \('Flop'\)"),
    ],
)
def test_add_transform_refuses_bad_input(subject, transform, parameters, error, message) -> None:
    with pytest.raises(error, match=message) as raised:
        subject.add_transform(transform, parameters)
    assert "sub-01" in str(raised.value)
    assert "history" not in subject


# dict members, dir ------------------------------------------------------------------------


def test_copy_is_a_plain_shallow_dict(subject) -> None:
    copied = subject.copy()
    assert type(copied) is dict
    assert list(copied) == ["t1", "seg", "subject_id"]
    assert copied["t1"] is subject.t1
    del copied["t1"]
    assert "t1" in subject


def test_copy_keeps_the_history_records(subject) -> None:
    flipped = RandomFlip(axes=(0,), flip_probability=1)(subject)
    assert flipped.copy()["history"] == [{"name": "RandomFlip", "axes": [0]}]


def test_copy_copy_and_pickle_still_give_subjects(subject) -> None:
    assert isinstance(copy.copy(subject), Subject)
    assert list(pickle.loads(pickle.dumps(subject))) == ["t1", "seg", "subject_id"]


def test_update_attributes_is_a_no_op_because_attribute_access_is_dynamic(subject) -> None:
    subject["t2"] = ScalarImage(tensor=torch.ones(1, 3, 2, 1))
    assert subject.t2 is subject["t2"]  # before the call already
    assert subject.update_attributes() is None
    assert set(vars(subject)) == {"_store"}  # no key copied to an attribute: they stay in one place
    del subject["t2"]
    with pytest.raises(AttributeError, match="no attribute or key 't2'"):
        _ = subject.t2


def test_dir_lists_the_keys_and_the_members(subject) -> None:
    names = dir(subject)
    assert {"t1", "seg", "subject_id"} <= set(names)
    assert {"get_label_map", "applied_transforms", "history", "copy", "images"} <= set(names)
    assert names == sorted(set(names))
    subject["t2"] = ScalarImage(tensor=torch.ones(1, 3, 2, 1))
    assert "t2" in dir(subject)


def test_fromkeys_is_not_provided(subject) -> None:
    assert not hasattr(subject, "fromkeys")
    assert not hasattr(Subject, "fromkeys")


def test_get_image_takes_torchio_keyword() -> None:
    import torch

    from torchpatch import ScalarImage, Subject

    subject = Subject(t1=ScalarImage(tensor=torch.zeros(1, 2, 2, 2)))
    assert subject.get_image(image_name="t1") is subject.t1
